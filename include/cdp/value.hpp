// cdp/value.hpp — the typed values of profiles and expressions.
//
// A Value is 16 bytes and owns nothing: strings and lists point into storage that outlives
// the evaluation (the profile store's pools, an expression's constants, an evaluator's
// scratch). That is what lets an expression be evaluated without allocating.
//
// Money is integer fen (1 yuan = 100 fen), never binary floating point. Timestamps are epoch
// milliseconds (UTC); durations are milliseconds; dates are local calendar days counted
// from 1970-01-01 (see calendar.hpp).
#pragma once

#include <cstdint>
#include <string_view>

namespace cdp {

enum class ValueKind : uint8_t {
  kNull, kBool, kInt, kDouble, kMoney, kString, kTimestamp, kDuration, kDate, kList,
};
std::string_view ValueKindName(ValueKind k);

struct Value {
  ValueKind kind = ValueKind::kNull;
  uint32_t len = 0;  // kString: bytes; kList: items
  union {
    bool b;
    int64_t i;            // kInt, kMoney (fen), kTimestamp (ms), kDuration (ms), kDate (day)
    double d;
    const char* s;
    const Value* items;
  };

  Value() : i(0) {}
  static Value Null() { return Value(); }
  static Value Bool(bool v) { Value x; x.kind = ValueKind::kBool; x.b = v; return x; }
  static Value Int(int64_t v) { return Of(ValueKind::kInt, v); }
  static Value Double(double v) { Value x; x.kind = ValueKind::kDouble; x.d = v; return x; }
  static Value Money(int64_t fen) { return Of(ValueKind::kMoney, fen); }
  static Value Timestamp(int64_t ms) { return Of(ValueKind::kTimestamp, ms); }
  static Value Duration(int64_t ms) { return Of(ValueKind::kDuration, ms); }
  static Value Date(int64_t day) { return Of(ValueKind::kDate, day); }
  static Value String(std::string_view v) {
    Value x;
    x.kind = ValueKind::kString;
    x.s = v.data();
    x.len = static_cast<uint32_t>(v.size());
    return x;
  }
  static Value List(const Value* items, uint32_t n) {
    Value x;
    x.kind = ValueKind::kList;
    x.items = items;
    x.len = n;
    return x;
  }

  bool is_null() const { return kind == ValueKind::kNull; }
  std::string_view str() const { return {s, len}; }

 private:
  static Value Of(ValueKind k, int64_t v) { Value x; x.kind = k; x.i = v; return x; }
};
static_assert(sizeof(Value) == 16);

}  // namespace cdp
