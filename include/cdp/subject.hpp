// cdp/subject.hpp — what an expression may read, and how it names things.
//
// The expression language (expr.hpp) sits above the profile store and below tags and
// lifecycle. It reads one person through Subject, an interface the profile store
// implements (and that tags and machines will extend with tags.<name> and
// state.<machine>). Names are resolved to dense ids once, when an expression is compiled,
// through Names; evaluation then never looks up a string.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "cdp/calendar.hpp"
#include "cdp/value.hpp"

namespace cdp {

inline constexpr uint32_t kAnyEventType = 0xFFFFFFFFu;
inline constexpr int64_t kNoTime = INT64_MIN;  // FirstSeen/LastSeen of a person with no records

// Consent (PIPL): a person's statement about a contact channel ("sms") is profile data,
// kept as the attribute kConsentPrefix + channel. Records cannot give an attribute that
// name (':' is not allowed in theirs), and being an attribute, the statement follows merges,
// splits, snapshots, erasure and access exports with the rest of the profile. Its value is
// kConsentGranted or kConsentWithdrawn under the `latest` rule: strings rather than bools
// because survivorship breaks a tie of time and source by value, and of two statements
// made at the same instant by one source the withdrawal must win ("withdrawn" > "granted").
inline constexpr std::string_view kConsentPrefix = "consent:";
inline constexpr std::string_view kConsentGranted = "granted";
inline constexpr std::string_view kConsentWithdrawn = "withdrawn";
// A consent attribute's value read back: the statement, or the default when there is none.
inline bool ConsentGiven(const Value& v, bool default_granted) {
  if (v.kind != ValueKind::kString) return default_granted;
  return v.str() == kConsentGranted;
}

// One stored event, as a scan hands it out. handle is the store's own reference, for Prop.
struct EventView {
  int64_t ts;          // epoch ms
  int64_t amount;      // fen; 0 when the event carried none
  uint32_t type;
  bool has_amount;
  uint64_t handle;
};

class Subject {
 public:
  virtual ~Subject() = default;
  // The surviving value of an attribute (by its survivorship rule), or null.
  virtual Value Attr(uint32_t attr) const = 0;
  // The earliest and latest time of any record placed on the person, or kNoTime.
  virtual int64_t FirstSeen() const = 0;
  virtual int64_t LastSeen() const = 0;
  // Live identifiers of a type that the person holds.
  virtual uint32_t IdCount(uint32_t id_type) const = 0;
  // Tags and machine states come with later layers; null until then.
  virtual Value Tag(uint32_t /*tag*/) const { return Value(); }
  virtual Value State(uint32_t /*machine*/) const { return Value(); }

  // Exact totals of the events of a type (or kAnyEventType) over the local days
  // [first_day, last_day], from the day counters where they reach.
  struct Totals {
    uint64_t count = 0;
    int64_t amount = 0;       // fen
    uint32_t active_days = 0; // distinct local days with at least one event
  };
  virtual Totals DayTotals(uint32_t type, int32_t first_day, int32_t last_day) const = 0;
  // The events of a type (or kAnyEventType) with from_ms <= ts < to_ms, oldest first (or
  // newest first when reverse). f returns false to stop.
  virtual void Scan(uint32_t type, int64_t from_ms, int64_t to_ms, bool reverse,
                    absl::FunctionRef<bool(const EventView&)> f) const = 0;
  // A property of a scanned event, or null. The value stays valid while the store is not
  // written to.
  virtual Value Prop(const EventView& e, uint32_t key) const = 0;
};

// Machine states by OneID, for subjects that can read them (the lifecycle implements it).
class StateReader {
 public:
  virtual ~StateReader() = default;
  virtual Value State(uint32_t machine, uint64_t oneid) const = 0;
};

// Name resolution for compiling expressions. Attribute names, event types, property keys,
// tags and machines are open sets: a name not seen yet is interned, so an expression may
// name an attribute before the first record carries it. Identifier types are a closed
// set (the config's): an unknown one is -1, and the compiler reports it.
class Names {
 public:
  virtual ~Names() = default;
  virtual uint32_t Attr(std::string_view name) = 0;
  virtual uint32_t EventType(std::string_view name) = 0;
  virtual uint32_t PropKey(std::string_view name) = 0;
  virtual uint32_t Tag(std::string_view name) = 0;
  virtual uint32_t Machine(std::string_view name) = 0;
  virtual int IdType(std::string_view name) const = 0;
  // What consent(channel) gives a person who never stated consent for the channel: the
  // engine's privacy.consent default for it (true: granted).
  virtual bool ConsentDefault(std::string_view channel) const = 0;
  // The zone that local days, today() and date parts use.
  virtual const TimeZone& Zone() const = 0;
};

}  // namespace cdp
