// Local calendar days: civil arithmetic, zone loading, days and their first instants
// across midnight, month and year ends, leap days and daylight-saving changes.
#include <doctest/doctest.h>

#include <string>

#include "cdp/calendar.hpp"
#include "cdp/record.hpp"

using cdp::TimeZone;

namespace {

int64_t T(std::string_view iso) {
  auto t = cdp::ParseTimestamp(iso);
  REQUIRE_MESSAGE(t.ok(), std::string(iso));
  return *t;
}

TimeZone Zone(std::string_view name) {
  auto z = TimeZone::Load(name);
  REQUIRE_MESSAGE(z.ok(), std::string(name), ": ", std::string(z.status().message()));
  return *z;
}

int32_t Day(int y, int m, int d) { return cdp::DaysFromCivil(y, m, d); }

}  // namespace

TEST_CASE("calendar: civil day arithmetic") {
  CHECK(Day(1970, 1, 1) == 0);
  CHECK(Day(1969, 12, 31) == -1);
  CHECK(Day(2000, 3, 1) - Day(2000, 2, 28) == 2);  // 2000 is a leap year
  CHECK(Day(1900, 3, 1) - Day(1900, 2, 28) == 1);  // 1900 is not
  CHECK(Day(2024, 3, 1) - Day(2024, 2, 28) == 2);
  CHECK(Day(2023, 3, 1) - Day(2023, 2, 28) == 1);
  for (int32_t d = -800'000; d <= 800'000; d += 997) {
    int y, m, dd;
    cdp::CivilFromDays(d, y, m, dd);
    CHECK(Day(y, m, dd) == d);
  }
  int y, m, d;
  cdp::CivilFromDays(Day(2024, 2, 29), y, m, d);
  CHECK((y == 2024 && m == 2 && d == 29));
  CHECK(cdp::WeekdayOfDay(0) == 4);                   // Thursday
  CHECK(cdp::WeekdayOfDay(Day(2024, 3, 17)) == 7);    // Sunday
  CHECK(cdp::WeekdayOfDay(Day(2024, 3, 18)) == 1);    // Monday
  CHECK(cdp::WeekdayOfDay(Day(1969, 12, 29)) == 1);   // negative days
  CHECK(cdp::DaysInMonth(2024, 2) == 29);
  CHECK(cdp::DaysInMonth(2100, 2) == 28);
  CHECK(cdp::DaysInMonth(2000, 2) == 29);
  CHECK(cdp::DaysInMonth(2023, 4) == 30);
  CHECK(cdp::DaysInMonth(2023, 12) == 31);
  CHECK(cdp::FloorDay(-1) == -1);
  CHECK(cdp::FloorDay(0) == 0);
  CHECK(cdp::FloorDay(cdp::kMsPerDay - 1) == 0);
  CHECK(cdp::FloorDay(-cdp::kMsPerDay) == -1);
  CHECK(cdp::FloorDay(-cdp::kMsPerDay - 1) == -2);
}

TEST_CASE("calendar: which zone names load") {
  for (const char* ok : {"UTC", "Z", "GMT", "+08:00", "-0530", "+8", "UTC+8", "UTC+05:30", "UTC+5:30", "GMT-3",
                         "Asia/Shanghai", "America/New_York", "Europe/Berlin", "Etc/GMT+8"})
    CHECK_MESSAGE(TimeZone::Load(ok).ok(), ok);
  for (const char* bad : {"", "+", "+8:0", "+15", "+08:60", "UTC+", "08:00", "Mars/Olympus", "+08:00x", "+123"})
    CHECK_MESSAGE(!TimeZone::Load(bad).ok(), bad);
  auto bad = TimeZone::Load("Mars/Olympus");
  CHECK(std::string(bad.status().message()).find("unknown time zone 'Mars/Olympus'") != std::string::npos);
  CHECK(Zone("UTC+5:30").OffsetSeconds(0) == 5 * 3600 + 1800);
  CHECK(Zone("-0530").OffsetSeconds(0) == -(5 * 3600 + 1800));
  CHECK(Zone("+8").OffsetSeconds(0) == 8 * 3600);
  CHECK(Zone("Etc/GMT+8").OffsetSeconds(0) == -8 * 3600);  // POSIX sign: west of Greenwich
  CHECK(Zone("Asia/Shanghai").name() == "Asia/Shanghai");
  CHECK(TimeZone().name() == "UTC");
}

TEST_CASE("calendar: Asia/Shanghai days across midnight, month and year ends") {
  TimeZone sh = Zone("Asia/Shanghai");
  CHECK(sh.DayOf(T("2024-03-15T00:00:00+08:00")) == Day(2024, 3, 15));
  CHECK(sh.DayOf(T("2024-03-14T23:59:59.999+08:00")) == Day(2024, 3, 14));
  CHECK(sh.DayOf(T("2024-03-14T16:00:00Z")) == Day(2024, 3, 15));  // UTC's evening is Shanghai's next day
  CHECK(sh.DayOf(T("2024-02-29T23:59:59+08:00")) == Day(2024, 2, 29));
  CHECK(sh.DayOf(T("2024-03-01T00:00:00+08:00")) == Day(2024, 3, 1));
  CHECK(sh.DayOf(T("2023-12-31T16:00:00Z")) == Day(2024, 1, 1));
  CHECK(sh.DayStart(Day(2024, 3, 1)) == T("2024-03-01T00:00:00+08:00"));
  CHECK(sh.DayStart(Day(2024, 1, 1)) == T("2023-12-31T16:00:00Z"));
  CHECK(sh.OffsetSeconds(T("2024-07-01T00:00:00Z")) == 8 * 3600);
  auto c = sh.ToCivil(T("2024-03-14T16:30:15.250Z"));
  CHECK(c.year == 2024);
  CHECK(c.month == 3);
  CHECK(c.day == 15);
  CHECK(c.hour == 0);
  CHECK(c.minute == 30);
  CHECK(c.second == 15);
  CHECK(c.millisecond == 250);
  CHECK(c.weekday == 5);
  CHECK(sh.FromCivil(2024, 3, 15, 0, 30, 15) == T("2024-03-15T00:30:15+08:00"));
  // Before 1970 and before the fast path: China kept summer time 1986–1991.
  CHECK(sh.OffsetSeconds(T("1990-07-01T00:00:00Z")) == 9 * 3600);
  CHECK(sh.DayOf(T("1990-07-01T15:30:00Z")) == Day(1990, 7, 2));  // 00:30 +09:00
  CHECK(sh.DayStart(Day(1990, 7, 2)) == T("1990-07-02T00:00:00+09:00"));
  CHECK(sh.DayOf(T("1960-01-01T00:00:00+08:00")) == Day(1960, 1, 1));
}

TEST_CASE("calendar: the fast path starts after the last transition, not an hour early") {
  // Summer time in China ended 1991-09-15 02:00 +09:00 (→ 01:00 +08:00), 1991-09-14T17:00Z.
  // The repeated hour 01:00–02:00 local must keep +09:00 on its first pass.
  TimeZone sh = Zone("Asia/Shanghai");
  CHECK(sh.OffsetSeconds(T("1991-09-14T16:30:00Z")) == 9 * 3600);
  CHECK(sh.OffsetSeconds(T("1991-09-14T16:59:59.999Z")) == 9 * 3600);
  CHECK(sh.OffsetSeconds(T("1991-09-14T17:00:00Z")) == 8 * 3600);
  CHECK(sh.ToCivil(T("1991-09-14T16:30:00Z")).hour == 1);
  CHECK(sh.ToCivil(T("1991-09-14T17:30:00Z")).hour == 1);  // the second 01:30
  // The first occurrence of a repeated wall time.
  CHECK(sh.FromCivil(1991, 9, 15, 1, 30, 0) == T("1991-09-14T16:30:00Z"));
}

TEST_CASE("calendar: America/New_York across daylight-saving changes") {
  TimeZone ny = Zone("America/New_York");
  // 2024-03-10: 02:00 EST → 03:00 EDT. The day is 23 hours long.
  CHECK(ny.DayStart(Day(2024, 3, 10)) == T("2024-03-10T00:00:00-05:00"));
  CHECK(ny.DayStart(Day(2024, 3, 11)) == T("2024-03-11T00:00:00-04:00"));
  CHECK(ny.DayStart(Day(2024, 3, 11)) - ny.DayStart(Day(2024, 3, 10)) == 23 * 3'600'000LL);
  CHECK(ny.DayOf(T("2024-03-10T23:59:59-04:00")) == Day(2024, 3, 10));
  CHECK(ny.DayOf(T("2024-03-11T00:00:00-04:00")) == Day(2024, 3, 11));
  CHECK(ny.OffsetSeconds(T("2024-03-10T06:59:59Z")) == -5 * 3600);
  CHECK(ny.OffsetSeconds(T("2024-03-10T07:00:00Z")) == -4 * 3600);
  // A skipped wall time maps forward past the gap: 02:30 does not exist; 03:00 EDT does.
  CHECK(ny.FromCivil(2024, 3, 10, 2, 30, 0) == T("2024-03-10T03:00:00-04:00"));
  // 2024-11-03: 02:00 EDT → 01:00 EST. The day is 25 hours long; 01:30 happens twice.
  CHECK(ny.DayStart(Day(2024, 11, 4)) - ny.DayStart(Day(2024, 11, 3)) == 25 * 3'600'000LL);
  CHECK(ny.FromCivil(2024, 11, 3, 1, 30, 0) == T("2024-11-03T01:30:00-04:00"));
  CHECK(ny.ToCivil(T("2024-11-03T01:30:00-05:00")).hour == 1);
  CHECK(ny.DayOf(T("2024-11-03T23:30:00-05:00")) == Day(2024, 11, 3));
  CHECK(ny.DayOf(T("2024-11-04T04:59:59Z")) == Day(2024, 11, 3));
  CHECK(ny.DayOf(T("2024-11-04T05:00:00Z")) == Day(2024, 11, 4));
  // Far in the future the rule still applies (no fast path for zones with summer time).
  CHECK(ny.OffsetSeconds(T("2300-07-01T12:00:00Z")) == -4 * 3600);
  CHECK(ny.OffsetSeconds(T("2300-01-01T12:00:00Z")) == -5 * 3600);
}

TEST_CASE("calendar: Europe/Berlin across daylight-saving changes and month ends") {
  TimeZone be = Zone("Europe/Berlin");
  // 2024-03-31 (the last day of March): 02:00 CET → 03:00 CEST.
  CHECK(be.DayStart(Day(2024, 3, 31)) == T("2024-03-31T00:00:00+01:00"));
  CHECK(be.DayStart(Day(2024, 4, 1)) == T("2024-04-01T00:00:00+02:00"));
  CHECK(be.DayOf(T("2024-03-31T21:59:59Z")) == Day(2024, 3, 31));
  CHECK(be.DayOf(T("2024-03-31T22:00:00Z")) == Day(2024, 4, 1));
  CHECK(be.ToCivil(T("2024-03-31T01:00:00Z")).hour == 3);
  // 2024-10-27: 03:00 CEST → 02:00 CET.
  CHECK(be.DayStart(Day(2024, 10, 28)) - be.DayStart(Day(2024, 10, 27)) == 25 * 3'600'000LL);
  CHECK(be.DayOf(T("2024-10-31T23:00:00Z")) == Day(2024, 11, 1));
  CHECK(be.DayOf(T("2024-12-31T22:59:59Z")) == Day(2024, 12, 31));
  CHECK(be.DayOf(T("2024-12-31T23:00:00Z")) == Day(2025, 1, 1));
}

TEST_CASE("calendar: fixed offsets and UTC") {
  TimeZone utc;
  CHECK(utc.DayOf(-1) == -1);
  CHECK(utc.DayStart(Day(2024, 2, 29)) == T("2024-02-29T00:00:00Z"));
  TimeZone in = Zone("UTC+5:30");
  CHECK(in.DayOf(T("2024-02-29T18:29:59Z")) == Day(2024, 2, 29));
  CHECK(in.DayOf(T("2024-02-29T18:30:00Z")) == Day(2024, 3, 1));
  CHECK(in.DayStart(Day(2024, 3, 1)) == T("2024-03-01T00:00:00+05:30"));
  TimeZone w = Zone("-08:00");
  CHECK(w.DayOf(T("2024-01-01T07:59:59Z")) == Day(2023, 12, 31));
  auto c = w.ToCivil(T("2024-01-01T07:59:59Z"));
  CHECK((c.year == 2023 && c.month == 12 && c.day == 31 && c.hour == 23 && c.weekday == 7));
  CHECK(w.FromCivil(2023, 12, 31, 23, 59, 59) == T("2024-01-01T07:59:59Z"));
  // Every day's start is in that day, and the instant before it in the day before.
  for (const char* name : {"Asia/Shanghai", "America/New_York", "Europe/Berlin", "UTC+5:30", "-08:00"}) {
    TimeZone z = Zone(name);
    for (int32_t d = Day(2023, 1, 1); d < Day(2025, 1, 1); ++d) {
      int64_t s = z.DayStart(d);
      REQUIRE_MESSAGE(z.DayOf(s) == d, name, " day ", d);
      REQUIRE_MESSAGE(z.DayOf(s - 1) == d - 1, name, " day ", d);
    }
  }
}
