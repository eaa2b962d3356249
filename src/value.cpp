#include "cdp/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

#include "cdp/calendar.hpp"
#include "cdp/expr.hpp"
#include "expr_internal.hpp"
#include "json_util.hpp"

namespace cdp {

std::string_view ValueKindName(ValueKind k) {
  switch (k) {
    case ValueKind::kNull: return "null";
    case ValueKind::kBool: return "bool";
    case ValueKind::kInt: return "int";
    case ValueKind::kDouble: return "double";
    case ValueKind::kMoney: return "money";
    case ValueKind::kString: return "string";
    case ValueKind::kTimestamp: return "timestamp";
    case ValueKind::kDuration: return "duration";
    case ValueKind::kDate: return "date";
    case ValueKind::kList: return "list";
  }
  return "unknown";
}

namespace expr {

std::string DateText(int32_t day) {
  int y, m, d;
  CivilFromDays(day, y, m, d);
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, d);
  return std::string(buf, static_cast<size_t>(n));
}

bool ParseDate(std::string_view s, int32_t& day) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  int v[3] = {0, 0, 0};
  const int start[3] = {0, 5, 8}, len[3] = {4, 2, 2};
  for (int f = 0; f < 3; ++f)
    for (int k = 0; k < len[f]; ++k) {
      char c = s[static_cast<size_t>(start[f] + k)];
      if (c < '0' || c > '9') return false;
      v[f] = v[f] * 10 + (c - '0');
    }
  if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > DaysInMonth(v[0], v[1])) return false;
  day = DaysFromCivil(v[0], v[1], v[2]);
  return true;
}

void AppendMoney(std::string& out, int64_t fen) {
  // Unsigned arithmetic: -INT64_MIN does not exist as int64.
  uint64_t a = fen < 0 ? 0 - static_cast<uint64_t>(fen) : static_cast<uint64_t>(fen);
  if (fen < 0) out += '-';
  out += std::to_string(a / 100);
  out += '.';
  out += static_cast<char>('0' + a % 100 / 10);
  out += static_cast<char>('0' + a % 10);
}

void AppendDouble(std::string& out, double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  // The shortest form of a large whole double is a string of digits (2.28e20 as
  // "228348586694687096832"), which JSON readers take for an integer, and one past 64
  // bits they refuse (the expression fuzzer's find). Those are written in exponent form.
  if (std::fabs(d) >= 1e15 && std::find_if(buf, r.ptr, [](char c) { return c == '.' || c == 'e'; }) == r.ptr)
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  out.append(buf, r.ptr);
}

}  // namespace expr

void AppendValueJson(std::string& out, const Value& v) {
  switch (v.kind) {
    case ValueKind::kNull: out += "null"; return;
    case ValueKind::kBool: out += v.b ? "true" : "false"; return;
    case ValueKind::kInt:
    case ValueKind::kTimestamp:
    case ValueKind::kDuration: out += std::to_string(v.i); return;
    case ValueKind::kDouble:
      if (!std::isfinite(v.d)) out += "null";
      else expr::AppendDouble(out, v.d);
      return;
    case ValueKind::kMoney: expr::AppendMoney(out, v.i); return;
    case ValueKind::kString: json::AppendString(out, v.str()); return;
    case ValueKind::kDate:
      out += '"';
      out += expr::DateText(static_cast<int32_t>(v.i));
      out += '"';
      return;
    case ValueKind::kList:
      out += '[';
      for (uint32_t k = 0; k < v.len; ++k) {
        if (k) out += ',';
        AppendValueJson(out, v.items[k]);
      }
      out += ']';
      return;
  }
}

}  // namespace cdp

namespace cdp::expr {

bool DurationUnit(std::string_view s, size_t& i, int64_t& unit) {
  if (s.substr(i, 2) == "ms") { unit = 1; i += 2; return true; }
  if (i >= s.size()) return false;
  switch (s[i]) {
    case 'd': unit = kMsPerDay; break;
    case 'h': unit = 3'600'000; break;
    case 'm': unit = 60'000; break;
    case 's': unit = 1000; break;
    default: return false;
  }
  ++i;
  return true;
}

bool ParseDurationText(std::string_view s, int64_t& ms) {
  int64_t total = 0;
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && s[i] == '-') { neg = true; ++i; }
  if (i >= s.size()) return false;
  while (i < s.size()) {
    int64_t n = 0;
    size_t start = i;
    for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
      if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, s[i] - '0', &n)) return false;
    if (i == start || i >= s.size()) return false;
    int64_t unit;
    if (!DurationUnit(s, i, unit)) return false;
    if (__builtin_mul_overflow(n, unit, &n) || __builtin_add_overflow(total, n, &total)) return false;
  }
  ms = neg ? -total : total;
  return true;
}

void AppendDurationText(std::string& out, int64_t ms) {
  if (ms == 0) { out += "0s"; return; }
  uint64_t a = ms < 0 ? 0 - static_cast<uint64_t>(ms) : static_cast<uint64_t>(ms);
  if (ms < 0) out += '-';
  static constexpr struct { uint64_t unit; const char* name; } kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (const auto& u : kUnits) {
    if (a >= u.unit) {
      out += std::to_string(a / u.unit);
      out += u.name;
      a %= u.unit;
    }
  }
}

void AppendTimestampText(std::string& out, int64_t ms, const TimeZone& zone) {
  TimeZone::Civil c = zone.ToCivil(ms);
  int off = zone.OffsetSeconds(ms) / 60;
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d", static_cast<long long>(c.year),
                        c.month, c.day, c.hour, c.minute, c.second);
  out.append(buf, static_cast<size_t>(n));
  if (c.millisecond) {
    n = std::snprintf(buf, sizeof buf, ".%03d", c.millisecond);
    out.append(buf, static_cast<size_t>(n));
  }
  if (off == 0) {
    out += 'Z';
  } else {
    n = std::snprintf(buf, sizeof buf, "%c%02d:%02d", off < 0 ? '-' : '+', std::abs(off) / 60, std::abs(off) % 60);
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace cdp::expr
