// record_parser.hpp — NDJSON records into a Batch (simdjson on-demand, one pass a line).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "cdp/policy.hpp"
#include "cdp/record.hpp"

namespace cdp {

namespace snap { class Writer; class Reader; }

// Names interned to dense indexes (sources, identifier types).
class NameTable {
 public:
  uint32_t Intern(std::string_view name);
  int Find(std::string_view name) const;
  const std::string& Name(uint32_t i) const { return names_[i]; }
  size_t size() const { return names_.size(); }
  // Snapshots (src/snapshot.hpp): Load into an empty table.
  void Save(snap::Writer& w) const;
  void Load(snap::Reader& r);

 private:
  std::vector<std::string> names_;
  absl::flat_hash_map<std::string, uint32_t, StrHash, StrEq> index_;
};

class RecordParser {
 public:
  // Unknown identifier types a record names are registered into cfg.types (when the config
  // accepts them), so the parser and the graph share one list of types.
  // key: the host's key for types stored hashed (IdPolicy::hashed); empty when none is.
  RecordParser(EngineConfig& cfg, NameTable& sources, std::string_view key = {});
  ~RecordParser();

  // Parses NDJSON. Never fails as a whole: malformed lines become Batch::errors.
  // read_only: register no new identifier type or source (unknown ones are skipped).
  void ParseNdjson(std::string_view data, Batch& out, bool read_only = false);

  // The id of an identifier type, registered the way a record naming it would register
  // it (-1: unknown and not accepted). Replaying a logged batch registers its types so.
  int TypeId(std::string_view name);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cdp
