// Internal to the engine's implementation files (engine.cpp, engine_tags.cpp): the state
// behind Engine's private pointers, and the scope that guards writes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "cdp/engine.hpp"
#include "record_parser.hpp"
#include "wal.hpp"

namespace cdp {

// The kinds of write-ahead log entries: one per write method whose effect is state.
// Pinned: a kind is never renumbered, since logs outlive library versions. Compiling an
// expression is not logged: the names it registers change no query result.
enum class LogKind : uint16_t {
  kIngest = 1,            // the NDJSON batch, exactly as given (the assign flag changes only the report)
  kRecord = 2,            // IngestRecord's text
  kRemoveIdentifier = 3,  // type, value
  kRemoveSource = 4,      // source
  kSplit = 5,             // OneID, identifiers JSON
  kAddRule = 6,           // kind, type a, value a, type b, value b, note
  kRemoveRule = 7,        // rule id
  kTrimFeed = 8,          // cursor
  kDefineTags = 9,        // definitions JSON
  kDropTag = 10,          // name
  kAdvance = 11,          // now (ms, as u64 bits)
  kSaveAudience = 12,     // name, request JSON
  kDropAudience = 13,     // name
  kRecountAudience = 14,  // name
  kDefineLifecycle = 15,  // definitions JSON
  kDropLifecycle = 16,    // kind, name
  kLifecycleApply = 17,   // operation JSON, the clock when applied (ms, as u64 bits)
  kAckIntents = 18,       // acknowledgement JSON
  kForget = 19,           // {"oneids":[...]}: the persons, by OneID only
  kIngestHashed = 20,     // a parsed batch (Engine::EncodeBatch): ingests when identifiers are hashed
};
inline uint16_t K(LogKind k) { return static_cast<uint16_t>(k); }

// Keyed hashes (HMAC-SHA-256, first 16 bytes) of forgotten identifiers, so a late record
// carrying one is recognised without the value being kept. The key is random per engine
// (made when the state begins, carried in snapshots): a dictionary of hashes computed
// elsewhere matches nothing here. A 65536-bit prefilter of a plain hash makes records with
// no forgotten identifier (nearly all) cost a bit test per identifier, not an HMAC; 16
// bits per value are too few to recover a value from.
class Tombstones {
 public:
  Tombstones();  // with a fresh random key
  bool empty() const { return set_.empty(); }
  size_t size() const { return set_.size(); }
  void Add(std::string_view type, std::string_view value);
  bool Erase(std::string_view type, std::string_view value);
  bool Contains(std::string_view type, std::string_view value) const;
  void Save(snap::Writer& w) const;
  void Load(snap::Reader& r);

 private:
  using Key = std::pair<uint64_t, uint64_t>;
  Key KeyOf(std::string_view type, std::string_view value) const;
  static uint32_t Bit(std::string_view type, std::string_view value);
  std::string key_;
  absl::flat_hash_set<Key> set_;
  std::vector<uint64_t> filter_ = std::vector<uint64_t>(1024);  // 65536 bits; may hold stale bits
};

struct Engine::Impl {
  NameTable sources;
  std::unique_ptr<RecordParser> parser;
  uint64_t records = 0;          // record ids handed out (one per input line)
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  // Persistent engines only. dir is declared first so that it is destroyed last: the
  // directory stays locked until the log is closed.
  std::unique_ptr<DataDir> dir;
  std::unique_ptr<Wal> wal;
  WalRecovery recovery;
  // Snapshots: the one loaded at open (empty: none), those skipped as unreadable, the
  // log size when the last one was taken (or at open), and the automatic snapshot that
  // the next write takes.
  std::string snapshot_loaded;
  std::vector<std::pair<std::string, std::string>> snapshots_skipped;  // file, why
  uint64_t log_at_snapshot = 0;
  uint64_t snapshots_taken = 0;
  bool snapshot_due = false;
  absl::Status snapshot_failed;  // the last automatic snapshot's failure (writes go on)
  absl::Status failed;  // why writes are refused (the in-memory state is ahead of the log)
  // Erasure (src/engine_privacy.cpp): persons forgotten, and whether a forget has happened
  // since the last snapshot, so raw values of the person may still be on disk: the next
  // snapshot (taken at once by a compacting forget, or at open) then removes every older
  // snapshot and log segment.
  Tombstones tombstones;
  uint64_t forgotten = 0;
  bool erasure_pending = false;
  bool snapshot_erasure = false;  // the snapshot loaded at open completed an erasure
  // Hashed identifiers: the host's key (empty: no type is hashed), never written
  // anywhere, and wiped when the engine closes.
  std::string key;
  ~Impl();
};

// Hashed identifiers (src/engine_privacy.cpp). CheckKey: whether a key fits a config
// (needed exactly when a type is hashed; at least 16 bytes). CheckDirKey: whether a
// directory was created under this key, from its key_check file; new_key is set when
// the directory has none yet, and WriteDirKey then stores it.
absl::Status CheckKey(const EngineConfig& cfg, std::string_view key);
absl::Status CheckDirKey(const std::string& dir, std::string_view key, bool& new_key);
absl::Status WriteDirKey(const std::string& dir, std::string_view key);

// One piece of evidence as JSON: {"from","to","rule","source","record","ts","count"}.
void WriteLink(json::Writer& w, const Engine& e, const Link& l, const NameTable& sources);
// A manual rule as JSON: {"id","kind","a","b","note"} (cdp_rules_list, the access export).
void WriteRule(json::Writer& w, const Engine& e, const ManualRule& r);

// Marks a persistent engine failed when an exception (out of memory) leaves a write
// half-applied: the in-memory state may then differ from any fold of the log, so nothing
// more may be logged on top of it.
struct Engine::WriteScope {
  explicit WriteScope(Engine& e) : engine(e), exceptions(std::uncaught_exceptions()) {}
  ~WriteScope() {
    if (std::uncaught_exceptions() > exceptions && engine.impl_->wal && engine.impl_->failed.ok())
      engine.impl_->failed = absl::UnavailableError(
          "a write was interrupted (out of memory?) after it began to change the engine; writes are refused "
          "until the directory is reopened");
  }
  Engine& engine;
  int exceptions;
};

// Saved audiences ("audience packages"): a name for an audience request, re-counted on
// demand, remembering the members of the last count to report who entered and left.
struct Engine::SavedAudiences {
  // Members are remembered by profile slot, and a slot changes hands: a merge or a
  // forget frees it and a new person may take it. So when a slot is freed it leaves
  // `last` at once and counts in `departed`, and the next count reports it as left (and
  // a newcomer in the slot as entered), as it would a member who stopped matching.
  struct Saved {
    std::string request;
    Bitmap last;            // the members at the last count that still hold their slots
    uint64_t departed = 0;  // members at the last count who have ended since
    uint64_t count = 0;
    int64_t counted_at = kNoTime;
    uint64_t counts = 0;  // how many times it was counted
  };
  std::map<std::string, Saved, std::less<>> by_name;
};

}  // namespace cdp
