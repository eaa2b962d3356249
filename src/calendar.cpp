#include "cdp/calendar.hpp"

#include <cctype>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "util.hpp"

namespace cdp {

// Howard Hinnant's days_from_civil / civil_from_days.
int32_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int32_t>(era * 146097 + doe - 719468);
}

void CivilFromDays(int32_t days, int& year, int& month, int& day) {
  int64_t z = int64_t{days} + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = static_cast<int>(yoe + era * 400 + (month <= 2));
}

int WeekdayOfDay(int32_t days) {
  // 1970-01-01 was a Thursday (4).
  int64_t w = (int64_t{days} + 3) % 7;
  if (w < 0) w += 7;
  return static_cast<int>(w) + 1;
}

int DaysInMonth(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2) return (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)) ? 29 : 28;
  return kDays[m - 1];
}

namespace {

// "+08:00", "-0530", "+8", optionally after "UTC" or "GMT": seconds east of UTC.
bool ParseOffset(std::string_view s, int32_t& seconds) {
  if (s.starts_with("UTC") || s.starts_with("GMT")) s.remove_prefix(3);
  if (s.empty() || (s[0] != '+' && s[0] != '-')) return false;
  bool neg = s[0] == '-';
  s.remove_prefix(1);
  int h = 0, m = 0, digits = 0;
  size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && digits < 2; ++i, ++digits)
    h = h * 10 + (s[i] - '0');
  if (digits == 0) return false;
  if (i < s.size() && s[i] == ':') ++i;
  int md = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && md < 2; ++i, ++md)
    m = m * 10 + (s[i] - '0');
  if (i != s.size() || (md != 0 && md != 2) || h > 14 || m > 59) return false;
  seconds = (h * 3600 + m * 60) * (neg ? -1 : 1);
  return true;
}

}  // namespace

TimeZone::TimeZone() : tz_(absl::UTCTimeZone()) {}

absl::StatusOr<TimeZone> TimeZone::Load(std::string_view name) {
  TimeZone z;
  z.name_ = std::string(name);
  int32_t off = 0;
  if (name == "UTC" || name == "Z" || name == "GMT") {
    z.tz_ = absl::UTCTimeZone();
    return z;
  }
  if (ParseOffset(name, off)) {
    z.tz_ = absl::FixedTimeZone(off);
    z.fixed_offset_ms_ = int64_t{off} * 1000;
    return z;
  }
  if (!absl::LoadTimeZone(std::string(name), &z.tz_))
    return absl::InvalidArgumentError(
        Cat("unknown time zone '", name, "': use an IANA name (Asia/Shanghai) or an offset (+08:00)"));
  // The fast path: after the zone's last transition, if it has no recurring rule.
  const absl::Time far = absl::FromUnixSeconds(int64_t{13'000'000'000});  // year 2381
  absl::TimeZone::CivilTransition tr;
  if (z.tz_.NextTransition(far, &tr)) {
    z.fixed_from_ = INT64_MAX;  // daylight saving time still in force: no fast path
  } else {
    int64_t from = INT64_MIN;
    if (z.tz_.PrevTransition(far, &tr)) {
      // The instant of the transition. tr.to is a wall time; after a fall-back it occurs
      // twice, and absl::FromCivil would give its first occurrence, still at the old
      // offset (an hour early for China's 1991 change).
      absl::TimeZone::TimeInfo ti = z.tz_.At(tr.to);
      from = absl::ToUnixMillis(ti.kind == absl::TimeZone::TimeInfo::UNIQUE ? ti.pre : ti.trans);
    }
    z.fixed_from_ = from;
    z.fixed_offset_ms_ = int64_t{z.tz_.At(far).offset} * 1000;
  }
  return z;
}

int32_t TimeZone::OffsetSeconds(int64_t ms) const {
  if (ms >= fixed_from_) return static_cast<int32_t>(fixed_offset_ms_ / 1000);
  return tz_.At(absl::FromUnixMillis(ms)).offset;
}

int64_t TimeZone::DayStart(int32_t day) const {
  int y, m, d;
  CivilFromDays(day, y, m, d);
  return FromCivil(y, m, d, 0, 0, 0);
}

TimeZone::Civil TimeZone::ToCivil(int64_t ms) const {
  int64_t local = ms + int64_t{OffsetSeconds(ms)} * 1000;
  int32_t day = FloorDay(local);
  int64_t in_day = local - int64_t{day} * kMsPerDay;
  Civil c{};
  int y, m, d;
  CivilFromDays(day, y, m, d);
  c.year = y;
  c.month = m;
  c.day = d;
  c.hour = static_cast<int>(in_day / 3'600'000);
  c.minute = static_cast<int>(in_day / 60'000 % 60);
  c.second = static_cast<int>(in_day / 1000 % 60);
  c.millisecond = static_cast<int>(in_day % 1000);
  c.weekday = WeekdayOfDay(day);
  return c;
}

int64_t TimeZone::FromCivil(int64_t year, int month, int day, int hour, int minute, int second) const {
  int64_t local_s = int64_t{DaysFromCivil(year, month, day)} * 86400 + hour * 3600 + minute * 60 + second;
  if (fixed_from_ != INT64_MAX) {
    // Wall times within a day of the last transition may be ambiguous or skipped: absl
    // decides those.
    int64_t guess = (local_s * 1000) - fixed_offset_ms_;
    if (fixed_from_ == INT64_MIN || guess >= fixed_from_ + kMsPerDay) return guess;
  }
  absl::TimeZone::TimeInfo ti = tz_.At(absl::CivilSecond(year, month, day, hour, minute, second));
  // kSkipped: the wall time does not exist; `trans` is the instant the gap begins, which
  // is the first instant after the skipped time. kRepeated: the first occurrence (`pre`).
  absl::Time t = ti.kind == absl::TimeZone::TimeInfo::SKIPPED ? ti.trans : ti.pre;
  return absl::ToUnixMillis(t);
}

}  // namespace cdp
