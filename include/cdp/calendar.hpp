// cdp/calendar.hpp — local calendar days in the engine's time zone.
//
// "Bought in the last 30 days" means 30 local calendar days where the brand operates, not
// 30 × 24 hours and not in the machine's zone. The engine has one zone (an IANA name such
// as Asia/Shanghai, the default, or a fixed offset such as +08:00 / UTC+8); nothing here
// reads the process's TZ setting or the clock.
//
// A day is a count of local calendar days from 1970-01-01; DayStart maps it back to the
// first instant of that local day. Zones whose offset no longer changes (China since 1991)
// take a fixed-offset fast path for instants after their last transition.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cdp {

inline constexpr int64_t kMsPerDay = 86'400'000;

// The instants a caller may hand the engine (a record's ts, the clock of cdp_advance, a
// request's "now", an operation's "ts"): 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z.
// Every instant the engine then derives (a local day, a deadline up to 36600 days later)
// stays far inside int64_t, so none of that arithmetic needs overflow checks.
inline constexpr int64_t kFirstTime = 0;
inline constexpr int64_t kLastTime = 253'402'300'799'999;
inline constexpr bool InTimeRange(int64_t ms) { return ms >= kFirstTime && ms <= kLastTime; }

// Zone-free calendar arithmetic (proleptic Gregorian).
int32_t DaysFromCivil(int64_t year, int month, int day);
void CivilFromDays(int32_t days, int& year, int& month, int& day);
int WeekdayOfDay(int32_t days);  // ISO: 1 = Monday … 7 = Sunday
int DaysInMonth(int64_t year, int month);
// Floor division of milliseconds into days (correct for negative values).
inline int32_t FloorDay(int64_t ms) {
  int64_t q = ms / kMsPerDay;
  if (ms % kMsPerDay < 0) --q;
  return static_cast<int32_t>(q);
}

class TimeZone {
 public:
  // UTC.
  TimeZone();
  // "Asia/Shanghai" (IANA, from the system's tzdata), "UTC", "Z", "+08:00", "-0530",
  // "UTC+8", "UTC+05:30". An unknown name is an error naming it.
  static absl::StatusOr<TimeZone> Load(std::string_view name);

  const std::string& name() const { return name_; }
  // The offset from UTC in seconds at the instant ms.
  int32_t OffsetSeconds(int64_t ms) const;
  // The local calendar day of an instant.
  int32_t DayOf(int64_t ms) const {
    if (ms >= fixed_from_) return FloorDay(ms + fixed_offset_ms_);
    return FloorDay(ms + int64_t{OffsetSeconds(ms)} * 1000);
  }
  // The first instant of a local day (local midnight, or the first instant after it when
  // a transition skips midnight).
  int64_t DayStart(int32_t day) const;

  struct Civil {
    int64_t year;
    int month, day, hour, minute, second, millisecond;
    int weekday;  // ISO: 1 = Monday … 7 = Sunday
  };
  Civil ToCivil(int64_t ms) const;
  // Local wall time to an instant. A time skipped by a transition maps forward past the
  // gap; a repeated time maps to its first occurrence.
  int64_t FromCivil(int64_t year, int month, int day, int hour, int minute, int second) const;

 private:
  std::string name_ = "UTC";
  absl::TimeZone tz_;
  int64_t fixed_from_ = INT64_MIN;  // at and after this instant the offset is fixed
  int64_t fixed_offset_ms_ = 0;
};

}  // namespace cdp
