// cdp/record.hpp — a touchpoint record after parsing, before linking.
//
// The wire format is NDJSON (docs/records.md):
//   {"source":"tmall","ts":1700000000000,"ids":{"mobile":"+86 138-0013-8000"},
//    "attrs":{"city":"上海"},"event":{"type":"order","amount":199.00},"consent":{"sms":false}}
// Parsing turns each line into a Record whose identifiers are already normalised and
// validated under their type's policy. Raw bytes stay in the caller's batch; a Record
// holds views into it and into the batch's own arena, so a batch allocates O(1) times.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cdp/policy.hpp"
#include "cdp/value.hpp"

namespace cdp {

// One identifier of a record, normalised. value views into Batch::arena.
struct RecordId {
  uint32_t type;
  uint32_t value_off;
  uint32_t value_len;
};

// A typed attribute or event property as a record carried it, before the profile store
// interns it. Names and strings are in Batch::kept.
struct FieldIn {
  uint32_t name_off, name_len;
  ValueKind kind;
  uint32_t str_off, str_len;  // kString: the text; kList: items in Batch::list_items
  int64_t bits;               // kBool, kInt, kMoney (fen), kTimestamp (ms), kDate (day); kDouble's bits
};

struct Record {
  int64_t ts = 0;              // epoch milliseconds, UTC
  uint32_t line = 0;           // 1-based line within the batch
  uint32_t source = 0;         // interned source name (Batch::sources)
  uint32_t ids_begin = 0;      // into Batch::ids
  uint32_t ids_count = 0;
  uint64_t key = 0;            // content hash: the order-independent tie-break
  // For the profile layer: attributes and the event's properties (Batch::fields), the
  // event's type (Batch::kept; empty: no event) and its amount in integer fen.
  uint32_t attrs_begin = 0, attrs_count = 0;
  uint32_t props_begin = 0, props_count = 0;
  uint32_t event_type_off = 0, event_type_len = 0;
  int64_t amount_fen = 0;
  bool has_amount = false;
  // Consent statements (Batch::fields): the name is the channel, the value a kBool (true
  // granted, false withdrawn), or kNull for a channel the record names without stating.
  uint32_t consent_begin = 0, consent_count = 0;
};

// A malformed line: where, which field, and why.
struct RecordError {
  uint32_t line;
  uint32_t column;
  std::string field;
  std::string message;
};

// A parsed batch. Owns the normalised values; views the input for attrs and event.
struct Batch {
  std::vector<Record> records;
  std::vector<RecordId> ids;
  std::string arena;                     // normalised identifier values
  std::string kept;                      // attribute and property names and strings, event types
  std::vector<FieldIn> fields;           // attributes, event properties, consent statements
  std::vector<std::pair<uint32_t, uint32_t>> list_items;  // (offset, length) in kept
  std::vector<std::string> sources;      // local source names, index = Record::source
  std::vector<RecordError> errors;       // at most limits.max_errors_listed kept
  uint32_t lines = 0;                    // non-blank lines seen
  uint32_t rejected = 0;                 // malformed lines
  uint64_t ids_accepted = 0;
  uint64_t ids_rejected[static_cast<size_t>(Rejection::kCount_)] = {};
  std::vector<std::pair<std::string, uint64_t>> unknown_types;  // newly seen type names
  // A sample of rejected values per (type, reason) for the change feed: bounded.
  struct RejectedValue { uint32_t type; Rejection reason; uint32_t line; int64_t ts; std::string value; };
  std::vector<RejectedValue> rejected_values;

  std::string_view Value(const RecordId& id) const {
    return std::string_view(arena).substr(id.value_off, id.value_len);
  }
  std::string_view Kept(uint32_t off, uint32_t len) const { return std::string_view(kept).substr(off, len); }
  std::string_view Name(const FieldIn& f) const { return Kept(f.name_off, f.name_len); }
  std::string_view Str(const FieldIn& f) const { return Kept(f.str_off, f.str_len); }
  std::string_view EventType(const Record& r) const {
    return std::string_view(kept).substr(r.event_type_off, r.event_type_len);
  }
};

// Converts a decimal yuan amount (JSON number text or string, e.g. "199.00", "0.29",
// "1e2") to integer fen exactly, without binary floating point. Fails on more than two
// significant decimal places, on overflow, or on anything that is not a number.
absl::StatusOr<int64_t> YuanToFen(std::string_view text);

// Parses a timestamp: integer epoch milliseconds, or ISO-8601 with a UTC offset
// ("2024-03-01T10:00:00+08:00", "...Z", optional fraction of a second).
absl::StatusOr<int64_t> ParseTimestamp(std::string_view iso);

}  // namespace cdp
