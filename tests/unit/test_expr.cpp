// The expression language: every operator and function with its null semantics, windows
// over local days, valid_until, error positions, caps, the AST round trip, allocation-free
// evaluation, and the reference documentation's examples.
#include <doctest/doctest.h>

#include <deque>
#include <cstdlib>
#include <fstream>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cdp/expr.hpp"
#include "cdp/record.hpp"
#include "expr_internal.hpp"
#include "fake_subject.hpp"

// Counting allocations on this thread while a test asks for it: the evaluator promises
// none after warm-up. This is the one replacement of the global operator new in
// cdp_unit_tests; it replaces every plain and nothrow form so that no allocation and its
// release go through different allocators. Sanitizer builds keep their own allocator and
// skip the check.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CDP_COUNT_ALLOCS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define CDP_COUNT_ALLOCS 0
#endif
#endif
#ifndef CDP_COUNT_ALLOCS
#define CDP_COUNT_ALLOCS 1
#endif
namespace {
thread_local bool g_count_allocs = false;
thread_local size_t g_allocs = 0;
}  // namespace
#if CDP_COUNT_ALLOCS
namespace {
void* CountedAlloc(size_t n) noexcept {
  if (g_count_allocs) ++g_allocs;
  return std::malloc(n ? n : 1);
}
}  // namespace
void* operator new(size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  if (void* p = CountedAlloc(n)) return p;
  throw std::bad_alloc();
}
void* operator new(size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void* operator new[](size_t n, const std::nothrow_t&) noexcept { return CountedAlloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#endif

using cdp::EvalResult;
using cdp::Expr;
using cdp::kForever;
using cdp::Value;
using cdptest::FakeNames;
using cdptest::FakeSubject;

namespace {

int64_t T(std::string_view iso) {
  auto t = cdp::ParseTimestamp(iso);
  REQUIRE_MESSAGE(t.ok(), std::string(iso));
  return *t;
}

std::string Json(const Value& v) {
  std::string out;
  cdp::AppendValueJson(out, v);
  return out;
}

// A person and a clock: 2024-03-15 (Friday) 12:00 in Shanghai unless a test moves it.
struct Env {
  explicit Env(std::string_view zone = "Asia/Shanghai") : names(zone), person(names) {}
  FakeNames names;
  FakeSubject person;
  cdp::Evaluator ev;
  std::deque<Expr> kept;  // results may point into an expression's constants
  int64_t now = T("2024-03-15T12:00:00+08:00");

  Expr Compile(std::string_view text) {
    auto e = Expr::Compile(text, names);
    REQUIRE_MESSAGE(e.ok(), std::string(text), ": ", std::string(e.status().message()));
    kept.push_back(*e);
    return *e;
  }
  EvalResult Run(std::string_view text, int64_t at = INT64_MIN) {
    Expr e = Compile(text);
    auto r = ev.Eval(e, person, at == INT64_MIN ? now : at);
    REQUIRE_MESSAGE(r.ok(), std::string(text), ": ", std::string(r.status().message()));
    return *r;
  }
  // The value as JSON, the easiest thing to compare.
  std::string J(std::string_view text, int64_t at = INT64_MIN) { return Json(Run(text, at).value); }
  std::string Kind(std::string_view text) { return std::string(cdp::ValueKindName(Run(text).value.kind)); }
  std::string Err(std::string_view text) {
    auto e = Expr::Compile(text, names);
    REQUIRE_MESSAGE(!e.ok(), std::string(text), " compiled");
    CHECK(e.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(e.status().message());
  }
  std::string AstErr(std::string_view json) {
    auto e = Expr::FromAst(json, names);
    REQUIRE_MESSAGE(!e.ok(), std::string(json), " was accepted");
    return std::string(e.status().message());
  }
};

}  // namespace

TEST_CASE("expr: literals") {
  Env e;
  CHECK(e.J("42") == "42");
  CHECK(e.J("-7") == "-7");
  CHECK(e.J("2.5") == "2.5");
  CHECK(e.J("1e3") == "1000");
  CHECK(e.J("true") == "true");
  CHECK(e.J("null") == "null");
  CHECK(e.J(R"("a\"b\n\u4e0a")") == "\"a\\\"b\\n上\"");
  CHECK(e.J("'single'") == "\"single\"");
  CHECK(e.J("30d") == "2592000000");
  CHECK(e.Kind("30d") == "duration");
  CHECK(e.J("1d12h") == "129600000");
  CHECK(e.J("15m + 10s + 500ms") == "910500");
  CHECK(e.J("date(\"2024-03-01\")") == "\"2024-03-01\"");
  CHECK(e.J("timestamp(\"2024-03-01T10:00:00+08:00\")") == std::to_string(T("2024-03-01T10:00:00+08:00")));
  CHECK(e.J("money(\"199.00\")") == "199.00");
  CHECK(e.J("yuan(199)") == "199.00");
  CHECK(e.J("yuan(0.29)") == "0.29");
  CHECK(e.J("duration(\"1d12h\")") == "129600000");
  CHECK(e.J("[1, 'a', [true]]") == "[1,\"a\",[true]]");
  CHECK(e.J("// a comment\n1 // another\n+ 1") == "2");
}

TEST_CASE("expr: arithmetic on ints and doubles, overflow and division by zero are null") {
  Env e;
  CHECK(e.J("1 + 2 * 3") == "7");
  CHECK(e.J("(1 + 2) * 3") == "9");
  CHECK(e.J("7 / 2") == "3");
  CHECK(e.J("-7 / 2") == "-3");
  CHECK(e.J("7 % 3") == "1");
  CHECK(e.J("7 / 2.0") == "3.5");
  CHECK(e.J("0.1 + 0.2") == "0.30000000000000004");
  CHECK(e.J("9223372036854775807 + 1") == "null");
  CHECK(e.J("-9223372036854775807 - 2") == "null");
  CHECK(e.J("4611686018427387904 * 2") == "null");
  CHECK(e.J("1 / 0") == "null");
  CHECK(e.J("1 % 0") == "null");
  CHECK(e.J("1.0 / 0") == "null");
  CHECK(e.J("1e308 * 10.0") == "null");
  CHECK(e.J("-(3)") == "-3");
  CHECK(e.J("'ab' + 'cd'") == "\"abcd\"");
}

TEST_CASE("expr: money arithmetic is exact and rounds half to even") {
  Env e;
  CHECK(e.J("yuan(199) + 1") == "200.00");  // a number beside money is yuan
  CHECK(e.J("yuan(199) - 0.5") == "198.50");
  CHECK(e.J("1 + yuan(2)") == "3.00");
  CHECK(e.J("yuan(10) * 3") == "30.00");
  CHECK(e.J("yuan(0.05) * 0.5") == "0.02");   // 2.5 fen → 2 (even)
  CHECK(e.J("yuan(0.15) * 0.5") == "0.08");   // 7.5 fen → 8 (even)
  CHECK(e.J("yuan(10) / 3") == "3.33");
  CHECK(e.J("yuan(0.05) / 2") == "0.02");
  CHECK(e.J("yuan(0.07) / 2") == "0.04");
  CHECK(e.J("yuan(-0.05) / 2") == "-0.02");
  CHECK(e.J("yuan(10) / yuan(4)") == "2.5");
  CHECK(e.Kind("yuan(10) / yuan(4)") == "double");
  CHECK(e.J("yuan(10) / 0") == "null");
  CHECK(e.J("yuan(10) / yuan(0)") == "null");
  CHECK(e.J("-yuan(1.5)") == "-1.50");
  CHECK(e.J("money('92233720368547758.07') + 1") == "null");
}

TEST_CASE("expr: time arithmetic") {
  Env e;
  CHECK(e.Kind("timestamp('2024-03-01T00:00:00Z') + 1d") == "timestamp");
  CHECK(e.J("timestamp('2024-03-02T00:00:00Z') - timestamp('2024-03-01T00:00:00Z') == 1d") == "true");
  CHECK(e.J("date('2024-02-28') + 1") == "\"2024-02-29\"");
  CHECK(e.J("date('2024-03-01') - date('2024-02-01')") == "29");
  CHECK(e.J("date('2024-03-01') - 1") == "\"2024-02-29\"");
  CHECK(e.J("2 * 12h") == "86400000");
  CHECK(e.J("1d / 4") == "21600000");
  CHECK(e.J("1d / 0") == "null");
}

TEST_CASE("expr: comparisons across kinds") {
  Env e;
  CHECK(e.J("money('199.00') > 100") == "true");  // 19900 fen compares as 199 yuan
  CHECK(e.J("money('199.00') == 199") == "true");
  CHECK(e.J("money('199.99') == 199.99") == "true");
  CHECK(e.J("1 == 1.0") == "true");
  CHECK(e.J("2 < 2.5") == "true");
  CHECK(e.J("'abc' < 'abd'") == "true");
  CHECK(e.J("'b' >= 'a'") == "true");
  CHECK(e.J("date('2024-03-01') < date('2024-03-02')") == "true");
  CHECK(e.J("[1, 2] == [1, 2.0]") == "true");
  CHECK(e.J("2 in [1, 2, 3]") == "true");
  CHECK(e.J("'x' in ['a', 'b']") == "false");
  CHECK(e.J("null == null") == "true");
  CHECK(e.J("null != 1") == "true");
  // Different kinds are unequal at run time (statically known mismatches do not compile).
  e.person.SetAttr("s", "1");
  CHECK(e.J("attrs.s == 1") == "false");
  CHECK(e.J("attrs.s != 1") == "true");
  CHECK(e.J("attrs.s < 2") == "false");
  CHECK(e.J("attrs.s >= 2") == "false");
}

TEST_CASE("expr: null and missing values, operator by operator") {
  Env e;  // attrs.missing is not set
  for (const char* op : {"<", "<=", ">", ">=", "=="}) CHECK(e.J(std::string("attrs.missing ") + op + " 1") == "false");
  CHECK(e.J("attrs.missing != 1") == "true");
  CHECK(e.J("attrs.missing == null") == "true");
  CHECK(e.J("attrs.missing != null") == "false");
  CHECK(e.J("attrs.missing && true") == "false");
  CHECK(e.J("attrs.missing || true") == "true");
  CHECK(e.J("attrs.missing || false") == "false");
  CHECK(e.J("!attrs.missing") == "true");
  CHECK(e.J("attrs.missing ? 1 : 2") == "2");
  CHECK(e.J("attrs.missing + 1") == "null");
  CHECK(e.J("-attrs.missing") == "null");
  CHECK(e.J("attrs.missing * yuan(2)") == "null");
  CHECK(e.J("has(attrs.missing)") == "false");
  CHECK(e.J("size(attrs.missing)") == "0");
  CHECK(e.J("contains(attrs.missing, 'a')") == "null");
  CHECK(e.J("attrs.missing.lower()") == "null");
  CHECK(e.J("attrs.missing in [1, null]") == "false");
  CHECK(e.J("attrs.missing[0]") == "null");
  CHECK(e.J("year(attrs.missing)") == "null");
  // A runtime type mismatch is null too, and null is false in a condition.
  e.person.SetAttr("city", "上海");
  CHECK(e.J("attrs.city * 2") == "null");
  CHECK(e.J("attrs.city && true") == "false");
  CHECK(e.J("size(attrs.city)") == "2");
  CHECK(e.J("has(attrs.city)") == "true");
}

TEST_CASE("expr: logic short-circuits") {
  Env e;
  CHECK(e.J("true && false") == "false");
  CHECK(e.J("true && true && true") == "true");
  CHECK(e.J("false || false || true") == "true");
  CHECK(e.J("!true") == "false");
  CHECK(e.J("true ? 'a' : 'b'") == "\"a\"");
  CHECK(e.J("false ? 1 : true ? 2 : 3") == "2");
  // The right side is not evaluated: no event scan happens.
  e.person.AddEvent("order", e.now - 1000, 100);
  CHECK(e.J("false && count(order, 30d) > 0") == "false");
  CHECK(e.person.day_totals_calls == 0);
}

TEST_CASE("expr: string and list functions, method form") {
  Env e;
  e.person.SetAttr("name", "Alice Chen").SetAttr("tags", e.person.KeepList({e.person.Keep("vip"), e.person.Keep("new")}));
  CHECK(e.J("contains(attrs.name, 'Chen')") == "true");
  CHECK(e.J("attrs.name.contains('chen')") == "false");
  CHECK(e.J("attrs.name.lower().contains('chen')") == "true");
  CHECK(e.J("attrs.name.startsWith('Ali')") == "true");
  CHECK(e.J("endsWith(attrs.name, 'Chen')") == "true");
  CHECK(e.J("upper(attrs.name)") == "\"ALICE CHEN\"");
  CHECK(e.J("lower('上海ABC')") == "\"上海abc\"");
  CHECK(e.J("size('上海')") == "2");
  CHECK(e.J("attrs.tags.size()") == "2");
  CHECK(e.J("'vip' in attrs.tags") == "true");
  CHECK(e.J("attrs.tags.contains('new')") == "true");
  CHECK(e.J("attrs.tags[1]") == "\"new\"");
  CHECK(e.J("attrs.tags[2]") == "null");
  CHECK(e.J("attrs.tags[-1]") == "null");
  CHECK(e.J("attrs.name + '!' ") == "\"Alice Chen!\"");
  CHECK(e.J("matches(attrs.name, '^A\\\\w+ C')") == "true");
  CHECK(e.J("attrs.name.matches('chen$')") == "false");
  CHECK(e.J("attrs['name'] == attrs.name") == "true");
}

TEST_CASE("expr: conversions and numeric functions") {
  Env e;
  CHECK(e.J("int(3.9)") == "3");
  CHECK(e.J("int(-3.9)") == "-3");
  CHECK(e.J("int('42')") == "42");
  CHECK(e.J("int('4x')") == "null");
  CHECK(e.J("int(yuan(199.99))") == "199");
  CHECK(e.J("int(true)") == "1");
  CHECK(e.J("int(1e300)") == "null");
  CHECK(e.J("double(3)") == "3");
  CHECK(e.Kind("double(3)") == "double");
  CHECK(e.J("double('2.5')") == "2.5");
  CHECK(e.J("double(yuan(1.5))") == "1.5");
  CHECK(e.J("string(42)") == "\"42\"");
  CHECK(e.J("string(yuan(5))") == "\"5.00\"");
  CHECK(e.J("string(2.5)") == "\"2.5\"");
  CHECK(e.J("string(true)") == "\"true\"");
  CHECK(e.J("string(date('2024-03-01'))") == "\"2024-03-01\"");
  CHECK(e.J("string(timestamp('2024-03-01T02:00:00Z'))") == "\"2024-03-01T10:00:00+08:00\"");
  CHECK(e.J("string(1d12h)") == "\"1d12h\"");
  CHECK(e.J("abs(-5)") == "5");
  CHECK(e.J("abs(-2.5)") == "2.5");
  CHECK(e.J("abs(-yuan(3))") == "3.00");
  CHECK(e.J("abs(-9223372036854775807 - 1)") == "null");
  CHECK(e.J("least(3, 2.5)") == "2.5");
  CHECK(e.J("greatest(yuan(1), 2)") == "2");
  CHECK(e.J("least('b', 'a')") == "\"a\"");
  CHECK(e.J("greatest(attrs.missing, 1)") == "null");
  e.person.SetAttr("spend", Value::Double(12.345)).SetAttr("n", Value::Int(7)).SetAttr("day", "2024-02-29");
  CHECK(e.J("money(attrs.spend)") == "12.34");  // 1234.5 fen → 1234 (even)
  CHECK(e.J("yuan(attrs.n)") == "7.00");
  CHECK(e.J("date(attrs.day)") == "\"2024-02-29\"");
  CHECK(e.J("date(attrs.missing)") == "null");
  CHECK(e.J("timestamp(date('2024-03-01'))") == std::to_string(T("2024-03-01T00:00:00+08:00")));
  CHECK(e.J("duration(3600000) == 1h") == "true");
}

TEST_CASE("expr: date parts, zones, days_between, today and now") {
  Env e;
  int64_t ts = T("2024-03-10T23:30:00Z");  // Monday 07:30 in Shanghai; Sunday 19:30 in New York (EDT)
  e.person.SetAttr("at", Value::Timestamp(ts));
  CHECK(e.J("year(attrs.at)") == "2024");
  CHECK(e.J("month(attrs.at)") == "3");
  CHECK(e.J("day(attrs.at)") == "11");
  CHECK(e.J("weekday(attrs.at)") == "1");
  CHECK(e.J("hour(attrs.at)") == "7");
  CHECK(e.J("attrs.at.day('America/New_York')") == "10");
  CHECK(e.J("weekday(attrs.at, 'America/New_York')") == "7");
  CHECK(e.J("hour(attrs.at, 'America/New_York')") == "19");
  CHECK(e.J("hour(attrs.at, '+05:30')") == "5");
  CHECK(e.J("month(date('2024-02-29'))") == "2");
  CHECK(e.J("weekday(date('2024-03-17'))") == "7");
  CHECK(e.J("today()") == "\"2024-03-15\"");
  CHECK(e.J("now()") == std::to_string(e.now));
  CHECK(e.J("days_between(attrs.at, today())") == "4");
  CHECK(e.J("days_between(date('2024-01-01'), date('2024-12-31'))") == "365");
  CHECK(e.J("days_between(today(), attrs.at)") == "-4");
  CHECK(e.J("date(now()) == today()") == "true");
  CHECK(e.Err("hour(date('2024-03-01'))").find("hour: argument 1 cannot be date") != std::string::npos);
  CHECK(e.Err("year(now(), 'Mars/Base')").find("unknown time zone 'Mars/Base'") != std::string::npos);
  CHECK(e.Err("year(now(), attrs.zone)").find("the zone is a string literal") != std::string::npos);
}

TEST_CASE("expr: person context") {
  Env e;
  CHECK(e.J("person.first_seen") == "null");
  CHECK(e.J("has(person.last_seen)") == "false");
  e.person.SetSeen(T("2023-01-01T00:00:00Z"), T("2024-03-01T00:00:00Z")).SetIds("mobile", 2).SetTag("vip", Value::Bool(true));
  CHECK(e.J("person.first_seen < person.last_seen") == "true");
  CHECK(e.J("ids.mobile") == "2");
  CHECK(e.J("ids.email") == "0");
  CHECK(e.J("has(ids.mobile)") == "true");
  CHECK(e.J("has(ids.email)") == "false");
  CHECK(e.J("ids.mobile > 0 && !has(ids.unionid)") == "true");
  CHECK(e.J("tags.vip == true") == "true");
  CHECK(e.J("state.lifecycle == null") == "true");
  CHECK(e.Err("ids.mobile > 0 && ids.wechat > 0") == "line 1, column 19: unknown identifier type 'wechat'");
  CHECK(e.Err("person.age") == "line 1, column 1: unknown person field 'age': person.first_seen or person.last_seen");
}

// ---- windows ----

TEST_CASE("expr: window functions over local days (Asia/Shanghai)") {
  Env e;  // now: 2024-03-15 12:00 +08:00
  auto& p = e.person;
  p.AddEvent("order", T("2024-03-15T00:00:00+08:00"), 10000, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("A")}});
  p.AddEvent("order", T("2024-03-14T23:59:59+08:00"), 5000, {{"channel", p.Keep("jd")}, {"sku", p.Keep("B")}});
  p.AddEvent("order", T("2024-02-15T00:00:00+08:00"), 2000, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("A")}});
  p.AddEvent("order", T("2024-02-14T23:59:59+08:00"), 999, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("C")}});
  p.AddEvent("order", T("2023-12-31T23:00:00+08:00"), 100, {{"channel", p.Keep("jd")}});
  p.AddEvent("visit", T("2024-03-15T08:00:00+08:00"), -1, {{"page", p.Keep("home")}});
  p.AddEvent("visit", T("2024-03-15T09:00:00+08:00"));

  // 30d = [2024-02-15, 2024-03-15]: the 2024-02-14 23:59:59 order is out.
  CHECK(e.J("count(order, 30d)") == "3");
  CHECK(e.J("count(order, last_days(30))") == "3");
  CHECK(e.J("count(order, 1d)") == "1");
  // Excluding today: [2024-02-14, 2024-03-14].
  CHECK(e.J("count(order, last_days(30, false))") == "3");
  CHECK(e.J("count(order, last_days(1, false))") == "1");
  CHECK(e.J("count(order, this_month)") == "2");
  CHECK(e.J("count(order, last_month)") == "2");
  CHECK(e.J("count(order, this_year)") == "4");
  CHECK(e.J("count(order, last_year())") == "1");
  CHECK(e.J("count(order, between('2024-02-14', date('2024-02-15')))") == "2");
  CHECK(e.J("count(order)") == "5");
  CHECK(e.J("count('order')") == "5");
  CHECK(e.J("count('*', 1d)") == "3");
  CHECK(e.J("count(refund, 30d)") == "0");
  CHECK(e.J("sum(order.amount, 30d)") == "170.00");
  CHECK(e.J("avg(order.amount, 30d)") == "56.67");
  CHECK(e.J("avg(order.amount, 30d, event.channel == 'none')") == "null");
  CHECK(e.J("min(order.amount, 30d)") == "20.00");
  CHECK(e.J("max(order.amount)") == "100.00");
  CHECK(e.J("distinct(order.sku)") == "3");
  CHECK(e.J("distinct(order.channel, 30d)") == "2");
  CHECK(e.J("active_days(order, 30d)") == "3");
  CHECK(e.J("active_days(visit, 30d)") == "1");
  CHECK(e.J("first(order) == timestamp('2023-12-31T23:00:00+08:00')") == "true");
  CHECK(e.J("last(order) == timestamp('2024-03-15T00:00:00+08:00')") == "true");
  CHECK(e.J("last(order, 30d, event.channel == 'jd') == timestamp('2024-03-14T23:59:59+08:00')") == "true");
  CHECK(e.J("first(refund)") == "null");
  CHECK(e.J("days_since(order)") == "0");
  CHECK(e.J("days_since(order, event.channel == 'jd')") == "1");
  CHECK(e.J("days_since(refund)") == "null");
  // Filters.
  CHECK(e.J("count(order, 30d, event.channel == 'tmall')") == "2");
  CHECK(e.J("count(order, event.channel == 'tmall' && event.amount >= 20)") == "2");
  CHECK(e.J("sum(order.amount, 30d, event.channel == 'tmall')") == "120.00");
  CHECK(e.J("count(order, event.sku in ['A', 'B'])") == "3");
  CHECK(e.J("count(visit, has(event.page))") == "1");
  CHECK(e.J("active_days(order, 30d, event.amount > 30)") == "2");
  CHECK(e.J("count(order, event.ts >= timestamp('2024-03-01T00:00:00+08:00'))") == "2");
  CHECK(e.J("sum(visit.amount, 1d)") == "0.00");
}

TEST_CASE("expr: the fast path reads day totals, filters and min/max scan") {
  Env e;
  e.person.AddEvent("order", e.now - 1000, 100);
  auto& p = e.person;
  e.J("count(order) + active_days(order, this_month) > 0 && sum(order.amount, this_year) > 0 && avg(order.amount) > 0");
  CHECK(p.day_totals_calls == 4);
  CHECK(p.scan_calls == 0);
  // A sliding window reads day totals for its value and scans only to bound valid_until:
  // from the window's start, meeting its oldest event, then on past the window's end.
  e.J("count(order, 30d)");
  CHECK(p.day_totals_calls == 5);
  CHECK(p.scan_calls == 1);
  // When the totals say the window is empty, the scan starts past its end.
  e.J("count(refund, 30d)");
  CHECK(p.day_totals_calls == 6);
  CHECK(p.scan_calls == 2);
  // Filters and min/max scan the window; oldest first, that scan also meets its oldest
  // event, and one more scan looks past the window.
  e.J("count(order, 30d, event.amount > 0)");
  e.J("max(order.amount, 30d)");
  e.J("distinct(order.sku)");
  CHECK(p.scan_calls == 7);
  CHECK(p.day_totals_calls == 6);

  // A window of many events: the first scan stops after a few and a second one looks past
  // the window, unless the oldest leaves tomorrow, the earliest change there is.
  Env m;
  for (int i = 0; i < 20; ++i) m.person.AddEvent("order", m.now - i * 60'000, 100);
  m.J("count(order, 30d)");
  CHECK(m.person.scan_calls == 2);
  m.J("count(order, 1d)");
  CHECK(m.person.scan_calls == 3);
}

TEST_CASE("expr: windows around month ends and leap days") {
  Env e;
  e.now = T("2024-03-01T00:30:00+08:00");  // just after midnight on the 1st
  auto& p = e.person;
  p.AddEvent("order", T("2024-02-29T23:59:00+08:00"), 100);
  p.AddEvent("order", T("2024-02-01T00:00:00+08:00"), 100);
  p.AddEvent("order", T("2024-01-31T23:59:59+08:00"), 100);
  CHECK(e.J("count(order, this_month)") == "0");
  CHECK(e.J("count(order, last_month)") == "2");
  CHECK(e.J("count(order, 1d)") == "0");
  CHECK(e.J("count(order, 2d)") == "1");
  CHECK(e.J("count(order, last_days(1, false))") == "1");
  CHECK(e.J("days_since(order)") == "1");
  e.now = T("2024-01-15T12:00:00+08:00");  // last month wraps the year
  CHECK(e.J("count(order, last_month)") == "0");
  CHECK(e.J("count(order, last_year)") == "0");
  e.now = T("2025-01-02T12:00:00+08:00");
  CHECK(e.J("count(order, last_year)") == "3");
  CHECK(e.J("count(order, this_year)") == "0");
}

TEST_CASE("expr: windows across a DST change (America/New_York)") {
  Env e("America/New_York");
  // 2024-03-10: clocks go 02:00 → 03:00; the local day is 23 hours long.
  auto& p = e.person;
  p.AddEvent("order", T("2024-03-10T00:30:00-05:00"), 100);
  p.AddEvent("order", T("2024-03-10T23:30:00-04:00"), 100);
  p.AddEvent("order", T("2024-03-09T23:59:59-05:00"), 100);
  e.now = T("2024-03-10T12:00:00-04:00");
  CHECK(e.J("count(order, 1d)") == "2");
  CHECK(e.J("active_days(order, 2d)") == "2");
  CHECK(e.J("count(order, 1d, event.amount > 0)") == "2");  // the scan path agrees
  auto r = e.Run("count(order, 1d)");
  CHECK(r.valid_until == T("2024-03-11T00:00:00-04:00"));
  e.now = T("2024-03-11T00:00:00-04:00");
  CHECK(e.J("days_since(order)") == "1");
  CHECK(e.J("today()") == "\"2024-03-11\"");
  // November: the 25-hour day.
  e.now = T("2024-11-03T23:59:00-05:00");
  CHECK(e.Run("today()").valid_until == T("2024-11-04T00:00:00-05:00"));
}

// ---- valid_until ----

TEST_CASE("expr: valid_until") {
  Env e;
  int64_t midnight = T("2024-03-16T00:00:00+08:00");
  auto vu = [&](std::string_view text) { return e.Run(text).valid_until; };
  CHECK(vu("1 + 1") == kForever);
  CHECK(vu("attrs.city == 'x'") == kForever);
  CHECK(vu("count(order) > 0") == kForever);
  CHECK(vu("count(order, between('2024-01-01', '2024-02-01')) > 0") == kForever);
  CHECK(vu("count(order, 30d) >= 2") == kForever);  // no order: the window stays empty
  CHECK(vu("today() == date('2024-03-15')") == midnight);
  CHECK(vu("days_since(order) == null") == midnight);
  CHECK(vu("int(now()) > 0") == e.now + 1);  // not linear in now(): conservative
  CHECK(vu("hour(now()) == 12") == e.now + 1);
  CHECK(vu("days_between(person.first_seen, now())") == midnight);
  CHECK(vu("weekday(now(), 'UTC') == 5") == T("2024-03-16T00:00:00Z"));
  // A false time-independent operand decides `&&` alone.
  CHECK(vu("false && count(order, 30d) > 0") == kForever);
  CHECK(vu("attrs.missing == 1 && today() > date('2024-01-01')") == kForever);
  CHECK(vu("true && days_since(order) == null") == midnight);
  CHECK(vu("true || today() > date('2024-01-01')") == kForever);
  CHECK(vu("today() > date('2024-01-01') || false") == midnight);
  CHECK(vu("false ? today() : 1") == kForever);
  CHECK(vu("count(order, 30d, event.ts > now() - 1h) > 0") == kForever);  // the filter never ran

  // now() linear in a comparison: the exact flip instant.
  int64_t last = T("2024-02-01T00:00:00+08:00");
  e.person.SetSeen(last - 1000, last);
  auto r = e.Run("now() - person.last_seen > 30d");
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == kForever);  // only grows
  e.person.SetSeen(last - 1000, e.now - 1000);
  r = e.Run("now() - person.last_seen > 30d");
  CHECK(Json(r.value) == "false");
  CHECK(r.valid_until == e.now - 1000 + 30 * cdp::kMsPerDay + 1);
  // At that instant it is true, one ms before it is still false.
  CHECK(e.J("now() - person.last_seen > 30d", r.valid_until) == "true");
  CHECK(e.J("now() - person.last_seen > 30d", r.valid_until - 1) == "false");
  r = e.Run("person.last_seen + 7d >= now()");
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == e.now - 1000 + 7 * cdp::kMsPerDay + 1);
  CHECK(e.J("person.last_seen + 7d >= now()", r.valid_until) == "false");
  CHECK(e.J("person.last_seen + 7d >= now()", r.valid_until - 1) == "true");
  r = e.Run("now() < timestamp('2024-03-15T12:00:05+08:00')");
  CHECK(r.valid_until == e.now + 5000);
  r = e.Run("now() == timestamp('2024-03-15T12:00:05+08:00')");
  CHECK(Json(r.value) == "false");
  CHECK(r.valid_until == e.now + 5000);
  r = e.Run("timestamp('2024-03-15T12:00:05+08:00') - now() > 2s");  // slope −1
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == e.now + 3000);
  CHECK(e.J("timestamp('2024-03-15T12:00:05+08:00') - now() > 2s", e.now + 2999) == "true");
  CHECK(e.J("timestamp('2024-03-15T12:00:05+08:00') - now() > 2s", e.now + 3000) == "false");
  r = e.Run("now() - attrs.missing > 1d");  // null stays null
  CHECK(r.valid_until == kForever);
  r = e.Run("now() - person.last_seen > 30d && count(order, 7d) == 0");
  CHECK(r.valid_until == e.now - 1000 + 30 * cdp::kMsPerDay + 1);  // false: the first operand decides
}

TEST_CASE("expr: valid_until of a sliding window is the day its events change") {
  Env e;  // now: 2024-03-15 12:00 +08:00
  auto& p = e.person;
  const char* any = "count(order, 30d) > 0";
  const char* excl = "count(order, last_days(30, false)) > 0";
  // No order at all, then one before the window, then a visit after it (another type): the
  // window of orders stays empty, whatever the date.
  CHECK(e.Run(any).valid_until == kForever);
  p.AddEvent("order", T("2024-01-10T09:00:00+08:00"), 100);
  p.AddEvent("visit", T("2024-03-20T09:00:00+08:00"));
  CHECK(e.Run(any).valid_until == kForever);
  CHECK(e.Run(excl).valid_until == kForever);
  CHECK(e.Run("sum(order.amount, 7d, event.amount > 0)").valid_until == kForever);
  // Any type sees the visit coming.
  CHECK(e.Run("count('*', 30d) == 0").valid_until == T("2024-03-20T00:00:00+08:00"));

  // The last order 10 days ago leaves [today - 29, today] on the day after its 30th.
  p.AddEvent("order", T("2024-03-05T15:00:00+08:00"), 100);
  auto r = e.Run(any);
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == T("2024-04-04T00:00:00+08:00"));  // order day + 30
  CHECK(e.J(any, r.valid_until) == "false");
  CHECK(e.J(any, r.valid_until - 1) == "true");
  // Without today the window is a day older, so the order stays a day longer.
  r = e.Run(excl);
  CHECK(r.valid_until == T("2024-04-05T00:00:00+08:00"));
  CHECK(e.J(excl, r.valid_until) == "false");
  CHECK(e.J(excl, r.valid_until - 1) == "true");
  // Every aggregate but days_since, on each path (day totals, a filtered scan, a scan
  // newest first), has the same bound: the window's events decide it.
  for (const char* text : {"sum(order.amount, 30d)", "count(order, 30d, event.amount > 0)", "last(order, 30d)",
                           "min(order.amount, 30d)", "distinct(order.amount, 30d)", "active_days(order, 30d)",
                           "avg(order.amount, 30d)", "first(order, 30d)", "max(order.amount, last_days(30))"})
    CHECK_MESSAGE(e.Run(text).valid_until == T("2024-04-04T00:00:00+08:00"), text);

  // days_since and today() still move every midnight; so do calendar periods.
  int64_t midnight = T("2024-03-16T00:00:00+08:00");
  CHECK(e.Run("days_since(order) == 10").valid_until == midnight);
  CHECK(e.Run("days_since(order, 30d) == 10").valid_until == midnight);
  CHECK(e.Run("count(order, 30d) > 0 && today() < date('2025-01-01')").valid_until == midnight);
  CHECK(e.Run("count(order, this_month) > 0").valid_until == midnight);
  CHECK(e.Run("count(order, last_month) == 0").valid_until == midnight);
  // A filter on now() adds its own flip instant: the order placed 30 minutes ago stops
  // matching `event.ts > now() - 1h` in 30 minutes.
  p.AddEvent("order", e.now - 30 * 60'000, 100);
  const char* recent = "count(order, 30d, event.ts > now() - 1h) > 0";
  r = e.Run(recent);
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == e.now + 30 * 60'000);
  CHECK(e.J(recent, r.valid_until) == "false");
  CHECK(e.J(recent, r.valid_until - 1) == "true");
}

TEST_CASE("expr: valid_until of a sliding window counts future-dated events") {
  Env e;  // now: 2024-03-15 12:00 +08:00
  auto& p = e.person;
  const char* in = "count(order, 30d)";
  const char* ex = "count(order, last_days(30, false))";
  // Dated after the window: it enters on its own day, or the day after without today.
  p.AddEvent("order", T("2024-03-20T10:00:00+08:00"), 100);
  auto r = e.Run(in);
  CHECK(Json(r.value) == "0");
  CHECK(r.valid_until == T("2024-03-20T00:00:00+08:00"));
  CHECK(e.J(in, r.valid_until) == "1");
  CHECK(e.J(in, r.valid_until - 1) == "0");
  r = e.Run(ex);
  CHECK(r.valid_until == T("2024-03-21T00:00:00+08:00"));
  CHECK(e.J(ex, r.valid_until) == "1");
  CHECK(e.J(ex, r.valid_until - 1) == "0");
  // Later today, after now: inside the window that includes today, so it bounds the value
  // only when it leaves; the window without today takes it in tomorrow.
  p.AddEvent("order", T("2024-03-15T20:00:00+08:00"), 100);
  r = e.Run(in);
  CHECK(Json(r.value) == "1");
  CHECK(r.valid_until == T("2024-03-20T00:00:00+08:00"));  // the 20th's order enters first
  r = e.Run(ex);
  CHECK(Json(r.value) == "0");
  CHECK(r.valid_until == T("2024-03-16T00:00:00+08:00"));
  CHECK(e.J(ex, r.valid_until) == "1");
}

TEST_CASE("expr: valid_until of a sliding window falls on local midnight (Asia/Shanghai)") {
  Env e;  // now: 2024-03-15 12:00 +08:00; 30d = [2024-02-15, 2024-03-15]
  auto& p = e.person;
  // At the very first instant of the window: it leaves at the next local midnight, which is
  // 16:00 UTC, not 00:00 UTC.
  p.AddEvent("order", T("2024-02-15T00:00:00+08:00"), 100);
  p.AddEvent("order", T("2024-02-14T23:59:59.999+08:00"), 100);  // the last instant before it
  const char* text = "count(order, 30d)";
  auto r = e.Run(text);
  CHECK(Json(r.value) == "1");
  CHECK(r.valid_until == T("2024-03-15T16:00:00Z"));
  CHECK(e.J(text, r.valid_until) == "0");
  CHECK(e.J(text, r.valid_until - 1) == "1");
  // A future order on the 17th at 07:00 local is still the 16th in UTC: it enters on the
  // local 17th.
  Env f;
  f.person.AddEvent("order", T("2024-03-17T07:00:00+08:00"), 100);
  r = f.Run(text);
  CHECK(r.valid_until == T("2024-03-16T16:00:00Z"));
  CHECK(f.J(text, r.valid_until) == "1");
  CHECK(f.J(text, r.valid_until - 1) == "0");
}

TEST_CASE("expr: valid_until of a sliding window across a DST change (America/New_York)") {
  Env e("America/New_York");
  e.now = T("2024-03-20T12:00:00-04:00");
  // Placed on the 23-hour day; 30d on 2024-03-20 starts on 2024-02-20.
  e.person.AddEvent("order", T("2024-03-10T03:30:00-04:00"), 100);
  auto r = e.Run("count(order, 30d) > 0");
  CHECK(r.valid_until == T("2024-04-09T00:00:00-04:00"));
  CHECK(e.J("count(order, 30d) > 0", r.valid_until) == "false");
  CHECK(e.J("count(order, 30d) > 0", r.valid_until - 1) == "true");
}

// Random persons and windows: valid_until is exactly the first local midnight at which the
// window's events (counted by brute force here) differ from today's, and the value holds
// at every midnight before it and 1 ms before it.
TEST_CASE("expr: valid_until of sliding windows over random persons (seeded)") {
  std::mt19937_64 rng(20240315);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const char* shapes[] = {
      "count(order, W)",        "count(order, W, event.amount > 5000)", "sum(order.amount, W)",
      "sum(order.amount, W, event.sku == 'A')", "distinct(order.sku, W)", "distinct(order.sku, W, event.amount > 5000)",
      "last(order, W)",         "min(order.amount, W)",                 "count('*', W)",
  };
  int checked_finite = 0, checked_forever = 0;
  for (int person = 0; person < 150; ++person) {
    Env e;
    const cdp::TimeZone& zone = e.names.Zone();
    int32_t today = zone.DayOf(e.now);
    e.now = zone.DayStart(today) + pick(0, cdp::kMsPerDay - 1);
    struct Ev {
      int32_t day;
      bool order;
    };
    std::vector<Ev> evs;
    // Mostly a few events, as most persons have; every third person many, past the point
    // where the look-up's first scan stops walking.
    int n_events = static_cast<int>(pick(0, person % 3 == 0 ? 40 : 10));
    for (int i = 0; i < n_events; ++i) {
      int32_t day = today + static_cast<int32_t>(pick(-70, 10));
      int64_t start = zone.DayStart(day), len = zone.DayStart(day + 1) - start;
      int64_t at = pick(0, 3);  // the day's edges are the interesting instants
      int64_t ts = at == 0 ? start : at == 1 ? start + len - 1 : start + pick(0, len - 1);
      bool order = pick(0, 9) < 7;
      evs.push_back({day, order});
      if (order)
        e.person.AddEvent("order", ts, pick(0, 10000), {{"sku", e.person.Keep(pick(0, 1) ? "A" : "B")}});
      else
        e.person.AddEvent("visit", ts);
    }
    for (int trial = 0; trial < 4; ++trial) {
      std::string shape = shapes[pick(0, std::size(shapes) - 1)];
      int32_t n = static_cast<int32_t>(pick(1, 40));
      bool include_today = pick(0, 1);
      std::string w = include_today ? (pick(0, 1) ? std::to_string(n) + "d" : "last_days(" + std::to_string(n) + ")")
                                    : "last_days(" + std::to_string(n) + ", false)";
      std::string text = shape.replace(shape.find('W'), 1, w);
      bool any_type = text.find("'*'") != std::string::npos;
      // The window's events on day d, as indices into evs.
      auto content = [&](int32_t d) {
        int32_t first = include_today ? d - n + 1 : d - n, last = include_today ? d : d - 1;
        std::vector<size_t> in;
        for (size_t i = 0; i < evs.size(); ++i)
          if ((any_type || evs[i].order) && evs[i].day >= first && evs[i].day <= last) in.push_back(i);
        return in;
      };
      int64_t want = kForever;
      for (int32_t s = 1; s <= 200; ++s) {
        if (content(today + s) != content(today)) {
          want = zone.DayStart(today + s);
          break;
        }
      }
      EvalResult r = e.Run(text);
      std::string v = Json(r.value);
      CHECK_MESSAGE(r.valid_until == want, text);
      if (r.valid_until == kForever) {
        ++checked_forever;
        continue;
      }
      ++checked_finite;
      CHECK_MESSAGE(e.J(text, r.valid_until - 1) == v, text);
      for (int32_t d = today + 1; zone.DayStart(d) < r.valid_until; ++d) {
        EvalResult later = e.Run(text, zone.DayStart(d));
        CHECK_MESSAGE(Json(later.value) == v, text, " changed on day ", d - today);
        CHECK_MESSAGE(later.valid_until == r.valid_until, text);
      }
    }
  }
  // Both outcomes were exercised, not just one.
  CHECK(checked_finite > 200);
  CHECK(checked_forever > 50);
}

TEST_CASE("expr: time_dependent and result_type") {
  Env e;
  CHECK(!e.Compile("attrs.a == 1 && count(order) > 1").time_dependent());
  CHECK(!e.Compile("count(order, between('2024-01-01', '2024-02-01'))").time_dependent());
  CHECK(e.Compile("count(order, 30d) > 1").time_dependent());
  CHECK(e.Compile("days_since(order)").time_dependent());
  CHECK(e.Compile("now()").time_dependent());
  CHECK(e.Compile("count(order, event.ts > now())").time_dependent());
  CHECK(e.Compile("attrs.a == 1").result_type() == "bool");
  CHECK(e.Compile("sum(order.amount, 7d)").result_type() == "money");
  CHECK(e.Compile("sum(order.qty, 7d)").result_type() == "any");
  CHECK(e.Compile("attrs.a").result_type() == "any");
  CHECK(e.Compile("today() + 1").result_type() == "date");
}

// ---- errors ----

TEST_CASE("expr: syntax errors say where") {
  Env e;
  CHECK(e.Err("count(order, 30d, event.amount > 1, 2)") ==
        "line 1, column 35: expected ')' after the arguments of count, found ','");
  CHECK(e.Err("attrs.city == ") == "line 1, column 15: expected a value, found the end of the expression");
  CHECK(e.Err("(1 + 2") == "line 1, column 7: expected ')' to close '(', found the end of the expression");
  CHECK(e.Err("1 +\n  * 2") == "line 2, column 3: expected a value, found '*'");
  CHECK(e.Err("'abc") == "line 1, column 1: unterminated string");
  // A raw NUL is refused as the JSON AST refuses it, so every text that compiles has an
  // AST that compiles (found by fuzz_expr; the input is in its corpus).
  CHECK(e.Err(std::string("'a\0b'", 5)) == "line 1, column 3: strings may not contain NUL");
  CHECK(e.Err("count('') > 0").starts_with("line 1, column 7: expected an event type as the first argument of count"));
  CHECK(e.Err("attrs.城市 == 1 &") == "line 1, column 15: unexpected character '&'");
  CHECK(e.Err("1 2") == "line 1, column 3: expected an operator or the end of the expression, found '2'");
  CHECK(e.Err("30x") == "line 1, column 3: unknown duration unit in '30x': use d, h, m, s or ms");
  CHECK(e.Err("foo(1)") == "line 1, column 1: unknown function 'foo'");
  CHECK(e.Err("city == 1") .starts_with("line 1, column 1: unknown name 'city'"));
  CHECK(e.Err("event.amount > 1").starts_with("line 1, column 1: event fields exist only in the filter"));
  CHECK(e.Err("count(order, 12h)") == "line 1, column 14: a window is a whole number of days, e.g. 30d");
  CHECK(e.Err("size(this_month)").starts_with("line 1, column 6: 'this_month' is a window"));
  CHECK(e.Err("count(order, 30d, 7d)") == "line 1, column 19: count takes one window");
  CHECK(e.Err("count(order, count(visit) > 1)") .find("cannot be nested") != std::string::npos);
  CHECK(e.Err("attrs.x.foo") .find("is not a method call") != std::string::npos);
  CHECK(e.Err("'\\q'") == "line 1, column 2: unknown escape '\\q'");
  CHECK(e.Err("99999999999999999999") == "line 1, column 1: integer out of range: 99999999999999999999");
  CHECK(e.Err("between('2024-02-01', '2024-01-01')").starts_with("line 1, column 1: between(...) is a window"));
  CHECK(e.Err("count(order, between('2024-02-01', '2024-01-01'))") == "line 1, column 14: between: the first date is after the second");
}

TEST_CASE("expr: type errors are compile errors with positions") {
  Env e;
  CHECK(e.Err("\"a\" * 2") == "line 1, column 5: '*' does not apply to string and int");
  CHECK(e.Err("size(1, 2)") == "line 1, column 1: size takes 1 argument, found 2");
  CHECK(e.Err("size(1)") == "line 1, column 6: size: argument 1 cannot be int");
  CHECK(e.Err("today(1)") == "line 1, column 1: today takes 0 arguments, found 1");
  CHECK(e.Err("1 && true") == "line 1, column 1: expected a condition (bool), found int");
  CHECK(e.Err("'a' == 1") == "line 1, column 5: '==' compares string with int: always false");
  CHECK(e.Err("attrs.x < null").find("with null is always false") != std::string::npos);
  CHECK(e.Err("true < false") == "line 1, column 6: '<' does not apply to bool and bool");
  CHECK(e.Err("yuan(1) * yuan(2)") == "line 1, column 9: '*' does not apply to money and money");
  CHECK(e.Err("1.5 % 2") == "line 1, column 5: '%' does not apply to double and int");
  CHECK(e.Err("1 in 'abc'") == "line 1, column 3: 'in' needs a list on its right, found string");
  CHECK(e.Err("sum(order, 30d)") == "line 1, column 1: sum needs an event property, e.g. sum(order.amount, 30d)");
  CHECK(e.Err("count(order.amount)") == "line 1, column 1: count takes an event type, not a property: count(order)");
  CHECK(e.Err("count(order, 30d, 1)") == "line 1, column 19: expected a condition (bool), found int");
  CHECK(e.Err("date('2024-02-30')") == "line 1, column 1: date: expected \"YYYY-MM-DD\", found \"2024-02-30\"");
  CHECK(e.Err("money('1.234')").starts_with("line 1, column 1: money: amount has more than two decimal places"));
  CHECK(e.Err("matches(attrs.x, '(a')") == "line 1, column 18: matches: bad pattern at byte 2: missing ')'");
  CHECK(e.Err("'x'.count()").find("count is a window function") != std::string::npos);
}

TEST_CASE("expr: caps are errors, never hangs") {
  Env e;
  std::string deep(10'000, '(');
  deep += "1" + std::string(10'000, ')');
  CHECK(e.Err(deep).find("nests deeper than 128 levels") != std::string::npos);
  std::string nots(10'000, '!');
  CHECK(e.Err(nots + "true").find("nests deeper than 128 levels") != std::string::npos);
  std::string chain = "1";
  for (int i = 0; i < 300; ++i) chain += " + 1";
  CHECK(e.Err(chain).find("nests deeper than 128 levels") != std::string::npos);
  std::string list = "[";
  for (int i = 0; i < 10'001; ++i) list += (i ? ",1" : "1");
  list += "]";
  CHECK(e.Err("1 in " + list).find("more than 4096 nodes") != std::string::npos);
  cdp::ExprLimits big;
  big.max_nodes = 100'000;
  auto huge = Expr::Compile("1 in " + list, e.names, big);
  CHECK(huge.status().message() == "line 1, column 6: the list has more than 10000 items");
  cdp::ExprLimits small;
  small.max_nodes = 10;
  auto r = Expr::Compile("1+1+1+1+1+1+1+1", e.names, small);
  CHECK(r.status().message().find("more than 10 nodes") != std::string::npos);
  small = {};
  small.max_text_bytes = 8;
  r = Expr::Compile("1 + 1 + 1", e.names, small);
  CHECK(r.status().message() == "the expression is 9 bytes, over the limit of 8");

  // Steps: a long scan and a hard regex both stop at the cap.
  for (int i = 0; i < 2000; ++i) e.person.AddEvent("order", e.now - i * 1000, 100);
  cdp::ExprLimits lim;
  lim.max_steps = 1000;
  cdp::Evaluator ev(lim);
  auto scan = ev.Eval(e.Compile("count(order, event.amount > 0)"), e.person, e.now);
  CHECK(scan.status().code() == absl::StatusCode::kResourceExhausted);
  e.person.SetAttr("long", std::string(5000, 'a'));
  auto rx = ev.Eval(e.Compile("attrs.long.matches('(a|aa)*(a*)*b')"), e.person, e.now);
  CHECK(rx.status().code() == absl::StatusCode::kResourceExhausted);
  // The same evaluator keeps working.
  auto ok = ev.Eval(e.Compile("1 + 1"), e.person, e.now);
  REQUIRE(ok.ok());
  CHECK(Json(ok->value) == "2");
}

// ---- regex ----

TEST_CASE("expr: the regex subset") {
  auto m = [](std::string_view pat, std::string_view text) {
    cdp::expr::Regex re;
    std::string why;
    size_t at;
    REQUIRE_MESSAGE(cdp::expr::CompileRegex(pat, re, &why, &at), std::string(pat), ": ", why);
    cdp::expr::RegexScratch sc;
    uint64_t steps = 1'000'000;
    int r = cdp::expr::MatchRegex(re, text, sc, steps);
    REQUIRE(r >= 0);
    return r == 1;
  };
  CHECK(m("abc", "xxabcxx"));
  CHECK(!m("^abc", "xxabc"));
  CHECK(m("^abc$", "abc"));
  CHECK(!m("^abc$", "abcd"));
  CHECK(m("a.c", "abc"));
  CHECK(m("^.$", "上"));  // . is one character, not one byte
  CHECK(m("^1[3-9]\\d{9}$", "13812345678"));
  CHECK(!m("^1[3-9]\\d{9}$", "1381234567"));
  CHECK(!m("^1[3-9]\\d{9}$", "12812345678"));
  CHECK(m("^[^@\\s]+@[\\w.-]+$", "a.b@example.com"));
  CHECK(!m("^[^@\\s]+@[\\w.-]+$", "a b@example.com"));
  CHECK(m("^(ab|cd)+$", "abcdab"));
  CHECK(!m("^(ab|cd)+$", "abca"));
  CHECK(m("^a{2,3}$", "aaa"));
  CHECK(!m("^a{2,3}$", "aaaa"));
  CHECK(m("^a{2,}$", "aaaaa"));
  CHECK(m("^a{2}b?$", "aab"));
  CHECK(m("^(?:x|y)*z$", "xyxz"));
  CHECK(m("^[上海北京]+$", "上海"));
  CHECK(m("^\\D+$", "abc"));
  CHECK(!m("^\\W$", "a"));
  CHECK(m("\\.", "a.b"));
  CHECK(!m("\\.", "ab"));
  CHECK(m("^$", ""));
  CHECK(m("", "anything"));
  CHECK(m("[]a]", "]"));
  CHECK(m("^[a-]+$", "a-a"));
  // Pathological for backtracking engines, linear here.
  CHECK(!m("^(a*)*b$", std::string(3000, 'a')));
  CHECK(!m("(a|aa)+c", std::string(3000, 'a')));
  for (const char* bad : {"(a", "a)", "[a", "*a", "a**", "a{2,1}", "a{1001}", "\\q", "(?=a)", "^*", "[z-a]"}) {
    cdp::expr::Regex re;
    CHECK_MESSAGE(!cdp::expr::CompileRegex(bad, re, nullptr, nullptr), bad);
  }
  cdp::expr::Regex re;
  CHECK(!cdp::expr::CompileRegex(std::string(1025, 'a'), re, nullptr, nullptr));
  CHECK(!cdp::expr::CompileRegex("(a{1000}){1000}", re, nullptr, nullptr));  // expansion capped
  Env e;
  e.person.SetAttr("pat", "^a+$").SetAttr("bad", "(").SetAttr("s", "aaa");
  CHECK(e.J("attrs.s.matches(attrs.pat)") == "true");  // compiled at run time
  CHECK(e.J("attrs.s.matches(attrs.bad)") == "null");
}

// ---- the AST ----

TEST_CASE("expr: canonical AST JSON") {
  Env e;
  Expr x = e.Compile("attrs.city == \"上海\" && ids.mobile > 0 && count(order, 30d, event.channel == 'tmall') >= 2 && -yuan(1.5) < 0");
  CHECK(x.AstJson() ==
        R"({"op":"&&","args":[{"op":"==","args":[{"ref":"attrs","name":"city"},{"lit":"上海","type":"string"}]},)"
        R"({"op":">","args":[{"ref":"ids","name":"mobile"},{"lit":0,"type":"int"}]},)"
        R"({"op":">=","args":[{"agg":"count","event":"order","window":{"last_days":30},"where":{"op":"==","args":[{"ref":"event","name":"channel"},{"lit":"tmall","type":"string"}]}},{"lit":2,"type":"int"}]},)"
        R"({"op":"<","args":[{"lit":"-1.50","type":"money"},{"lit":0,"type":"int"}]}]})");
  CHECK(e.Compile("sum(order.amount, last_days(7, false))").AstJson() ==
        R"({"agg":"sum","event":"order","prop":"amount","window":{"last_days":7,"include_today":false}})");
  CHECK(e.Compile("first(order, this_month)").AstJson() == R"({"agg":"first","event":"order","window":{"period":"this_month"}})");
  CHECK(e.Compile("count(order, between('2024-01-01', '2024-01-31'))").AstJson() ==
        R"({"agg":"count","event":"order","window":{"from":"2024-01-01","to":"2024-01-31"}})");
  CHECK(e.Compile("'a'.contains('b')").AstJson() == e.Compile("contains('a', 'b')").AstJson());
  CHECK(e.Compile("[1, 2.5, null, date('2024-01-01'), 1h, timestamp('1970-01-01T00:00:01Z')]").AstJson() ==
        R"({"op":"list","args":[{"lit":1,"type":"int"},{"lit":2.5,"type":"double"},{"lit":null,"type":"null"},)"
        R"({"lit":"2024-01-01","type":"date"},{"lit":3600000,"type":"duration"},{"lit":1000,"type":"timestamp"}]})");
  CHECK(e.Compile("-attrs.x").AstJson() == R"({"op":"neg","args":[{"ref":"attrs","name":"x"}]})");
}

TEST_CASE("expr: FromAst reads what a UI builds, and says where it is wrong") {
  Env e;
  auto x = Expr::FromAst(R"({"op":"&&","args":[{"op":">=","args":[{"agg":"count","event":"order","window":{"last_days":30}},{"lit":2}]},
      {"op":"==","args":[{"ref":"attrs","name":"city"},{"lit":"上海"}]}]})", e.names);
  REQUIRE_MESSAGE(x.ok(), std::string(x.status().message()));
  e.person.SetAttr("city", "上海");
  e.person.AddEvent("order", e.now, 1).AddEvent("order", e.now - 1, 1);
  auto r = e.ev.Eval(*x, e.person, e.now);
  REQUIRE(r.ok());
  CHECK(Json(r->value) == "true");
  // Typed literals in their UI-friendly forms normalise.
  auto y = Expr::FromAst(R"({"op":"<","args":[{"lit":199,"type":"money"},{"lit":"2024-03-01T00:00:00Z","type":"timestamp"}]})", e.names);
  CHECK(y.status().message() == "root: '<' compares money with timestamp: always false");
  y = Expr::FromAst(R"({"call":"yuan","args":[{"lit":"1.50"}]})", e.names);
  REQUIRE(y.ok());
  CHECK(y->AstJson() == R"({"lit":"1.50","type":"money"})");

  CHECK(e.AstErr(R"({"op":"&&","args":[{"lit":true},{"op":"!","args":[{"op":"=~","args":[]}]}]})") ==
        "args[1].args[0]: unknown op \"=~\"");
  CHECK(e.AstErr(R"({"op":"!","args":[]})") == "root: \"!\" needs 1 arg, found 0");
  CHECK(e.AstErr(R"({"call":"size","args":[{"lit":1},{"lit":2}]})") == "root: size takes 1 argument, found 2");
  CHECK(e.AstErr(R"({"op":"==","args":[{"ref":"ids","name":"wechat"},{"lit":1}]})") == "args[0]: unknown identifier type 'wechat'");
  CHECK(e.AstErr(R"({"agg":"count","event":"order","window":{"last_days":0}})") == "window: last_days is 1 to 36600");
  CHECK(e.AstErr(R"({"agg":"count","event":"order","where":{"agg":"count","event":"x"}})") ==
        "where: aggregates cannot be nested in the \"where\" of another");
  CHECK(e.AstErr(R"({"ref":"event","name":"amount"})") == "root: event fields exist only in the \"where\" of an aggregate");
  CHECK(e.AstErr(R"({"lit":1,"type":"int","extra":1})") == "root: unknown key \"extra\"");
  CHECK(e.AstErr(R"({"lit":1.5,"type":"int"})") == "root: a int literal needs an integer (int64)");
  CHECK(e.AstErr(R"({"lit":[1]})").find("lists are {\"op\":\"list\"}") != std::string::npos);
  CHECK(e.AstErr(R"({"op":"+","args":[1,2]})") == "args[0]: expected an object (a node)");
  CHECK(e.AstErr(R"({"op":"+", "args":)").starts_with("invalid JSON at line 1"));
  CHECK(e.AstErr("[]") == "root: expected an object (a node)");
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += R"({"op":"!","args":[)";
  deep += R"({"lit":true})";
  for (int i = 0; i < 200; ++i) deep += "]}";
  CHECK(e.AstErr(deep).find("nests deeper than 128 levels") != std::string::npos);
}

namespace {

// Random well-typed expressions: each generator returns text of the named type.
struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  int Pick(int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); }

  std::string Int(int d) {
    if (d <= 0) {
      switch (Pick(4)) {
        case 0: return std::to_string(Pick(100));
        case 1: return "ids.mobile";
        case 2: return "count(order, " + Window() + ")";
        default: return "size(attrs.name)";
      }
    }
    switch (Pick(8)) {
      case 0: return "(" + Int(d - 1) + " + " + Int(d - 1) + ")";
      case 1: return "(" + Int(d - 1) + " * " + Int(d - 1) + ")";
      case 2: return "(" + Int(d - 1) + " % " + Int(d - 1) + ")";
      case 3: return "-" + Int(d - 1);
      case 4: return "(" + Bool(d - 1) + " ? " + Int(d - 1) + " : " + Int(d - 1) + ")";
      case 5: return "days_between(" + Date(d - 1) + ", today())";
      case 6: return "count(order, " + Window() + ", " + Filter(d) + ")";
      default: return "abs(" + Int(d - 1) + ")";
    }
  }
  std::string Money(int d) {
    switch (Pick(d <= 0 ? 2 : 4)) {
      case 0: return "yuan(" + std::to_string(Pick(1000)) + "." + std::to_string(10 + Pick(90)) + ")";
      case 1: return "sum(order.amount, " + Window() + ")";
      case 2: return "(" + Money(d - 1) + " + " + Int(d - 1) + ")";
      default: return "(" + Money(d - 1) + " * 0.5)";
    }
  }
  std::string Str(int d) {
    switch (Pick(d <= 0 ? 2 : 4)) {
      case 0: return Pick(2) ? "'上海'" : "\"a\\\"b\"";
      case 1: return "attrs.city";
      case 2: return "lower(" + Str(d - 1) + ")";
      default: return "(" + Str(d - 1) + " + " + Str(d - 1) + ")";
    }
  }
  std::string Date(int d) {
    switch (Pick(d <= 0 ? 2 : 3)) {
      case 0: return "date('2024-0" + std::to_string(1 + Pick(9)) + "-1" + std::to_string(Pick(10)) + "')";
      case 1: return "today()";
      default: return "(" + Date(d - 1) + " + " + Int(d - 1) + ")";
    }
  }
  std::string Window() {
    switch (Pick(5)) {
      case 0: return std::to_string(1 + Pick(90)) + "d";
      case 1: return "last_days(" + std::to_string(1 + Pick(9)) + ", false)";
      case 2: return Pick(2) ? "this_month" : "last_year";
      case 3: return "between('2024-01-01', '2024-03-0" + std::to_string(1 + Pick(9)) + "')";
      default: return "last_days(7)";
    }
  }
  std::string Filter(int) {
    switch (Pick(3)) {
      case 0: return "event.amount >= " + std::to_string(Pick(100));
      case 1: return "event.channel == 'tmall'";
      default: return "(event.channel in ['jd', 'tmall'] || event.amount < yuan(" + std::to_string(Pick(500)) + "))";
    }
  }
  std::string Bool(int d) {
    if (d <= 0) {
      switch (Pick(3)) {
        case 0: return Pick(2) ? "true" : "false";
        case 1: return "has(attrs.city)";
        default: return "attrs.vip";
      }
    }
    switch (Pick(10)) {
      case 0: return "(" + Bool(d - 1) + " && " + Bool(d - 1) + ")";
      case 1: return "(" + Bool(d - 1) + " || " + Bool(d - 1) + ")";
      case 2: return "!(" + Bool(d - 1) + ")";
      case 3: return Int(d - 1) + " < " + Int(d - 1);
      case 4: return Money(d - 1) + " >= " + Int(d - 1);
      case 5: return Str(d - 1) + " == " + Str(d - 1);
      case 6: return Str(d - 1) + ".contains(" + Str(d - 1) + ")";
      case 7: return Date(d - 1) + " != " + Date(d - 1);
      case 8: return "now() - person.last_seen > " + std::to_string(1 + Pick(60)) + "d";
      default: return Str(d - 1) + " in [" + Str(d - 1) + ", 'x']";
    }
  }
};

}  // namespace

TEST_CASE("expr: AST round trip over generated expressions (seeded)") {
  Env e;
  auto& p = e.person;
  p.SetAttr("city", "上海").SetAttr("name", "Alice").SetAttr("vip", Value::Bool(true)).SetIds("mobile", 1);
  p.SetSeen(e.now - 90 * cdp::kMsPerDay, e.now - 10 * cdp::kMsPerDay);
  for (int i = 0; i < 40; ++i)
    p.AddEvent("order", e.now - i * 37 * 3'600'000LL, 100 * i, {{"channel", p.Keep(i % 3 ? "tmall" : "jd")}});
  Gen g(20240315);
  for (int i = 0; i < 500; ++i) {
    std::string text = g.Bool(1 + g.Pick(4));
    auto a = Expr::Compile(text, e.names);
    REQUIRE_MESSAGE(a.ok(), text, ": ", std::string(a.status().message()));
    auto b = Expr::FromAst(a->AstJson(), e.names);
    REQUIRE_MESSAGE(b.ok(), a->AstJson(), ": ", std::string(b.status().message()));
    CHECK(b->AstJson() == a->AstJson());
    auto ra = e.ev.Eval(*a, p, e.now);
    REQUIRE(ra.ok());
    std::string va = Json(ra->value);
    int64_t vua = ra->valid_until;
    auto rb = e.ev.Eval(*b, p, e.now);
    REQUIRE(rb.ok());
    CHECK_MESSAGE(Json(rb->value) == va, text);
    CHECK(rb->valid_until == vua);
    // valid_until is honest: the value holds until then (checked one ms before).
    if (vua != kForever && vua - 1 > e.now) {
      auto later = e.ev.Eval(*a, p, vua - 1);
      REQUIRE(later.ok());
      CHECK_MESSAGE(Json(later->value) == va, text, " changed before valid_until");
    }
  }
}

TEST_CASE("expr: evaluation does not allocate after warm-up") {
  Env e;
  auto& p = e.person;
  p.SetAttr("city", "上海").SetAttr("gender", "m").SetIds("mobile", 1);
  for (int i = 0; i < 50; ++i)
    p.AddEvent("order", e.now - i * 20 * 3'600'000LL, 10000 + i, {{"sku", p.Keep("S" + std::to_string(i % 7))}});
  std::vector<Expr> exprs = {
      e.Compile("attrs.city == \"上海\" && ids.mobile > 0 && count(order, 30d) >= 2 && sum(order.amount, 90d) > 500 && attrs.gender != \"f\""),
      e.Compile("lower(attrs.city + 'ABC').matches('^上.*c$') && distinct(order.sku, 30d) > 3"),
      e.Compile("string(yuan(3)) + string(today()) + string(now())"),
      e.Compile("count(order, 30d, event.sku in ['S1', 'S2']) + size([attrs.city, attrs.gender])"),
      e.Compile("attrs.city.matches(attrs.gender + '*')"),
  };
  for (const Expr& x : exprs) REQUIRE(e.ev.Eval(x, p, e.now).ok());  // warm-up
  g_allocs = 0;
  g_count_allocs = true;
  for (int round = 0; round < 3; ++round)
    for (const Expr& x : exprs) (void)e.ev.Eval(x, p, e.now + round);
  g_count_allocs = false;
  if (CDP_COUNT_ALLOCS) CHECK(g_allocs == 0);
}

TEST_CASE("expr: AppendValueJson") {
  Value items[] = {Value::Int(1), Value::String("x")};
  CHECK(Json(Value::List(items, 2)) == "[1,\"x\"]");
  CHECK(Json(Value::Money(19900)) == "199.00");
  CHECK(Json(Value::Money(-5)) == "-0.05");
  CHECK(Json(Value::Money(INT64_MIN)) == "-92233720368547758.08");
  CHECK(Json(Value::Double(0.1)) == "0.1");
  CHECK(Json(Value::Double(1e300)) == "1e+300");
  CHECK(Json(Value::Double(std::numeric_limits<double>::infinity())) == "null");
  CHECK(Json(Value::Date(0)) == "\"1970-01-01\"");
  CHECK(Json(Value::Timestamp(-1)) == "-1");
  CHECK(Json(Value::Duration(5)) == "5");
  CHECK(Json(Value::Bool(false)) == "false");
  CHECK(Json(Value()) == "null");
  CHECK(cdp::ValueKindName(cdp::ValueKind::kMoney) == "money");
}

TEST_CASE("expr: consent(channel) is the person's statement, else the channel's default, else the default") {
  Env e;
  e.person.SetConsent("sms", false).SetConsent("email", true);
  e.names.consent_granted = false;
  e.names.consent_defaults["wechat_template"] = true;
  e.names.consent_defaults["email"] = false;
  CHECK(e.J("consent(\"sms\")") == "false");            // withdrawn
  CHECK(e.J("consent(\"email\")") == "true");           // granted, over the channel's default
  CHECK(e.J("consent(\"wechat_template\")") == "true"); // not stated: the channel's default
  CHECK(e.J("consent('wecom')") == "false");            // not stated, no channel default
  // The default is resolved when the expression compiles (the config is fixed per engine).
  e.names.consent_granted = true;
  CHECK(e.J("consent('wecom')") == "true");
  CHECK(e.J("consent(\"sms\")") == "false");
  // A bool in conditions, never null, and valid until a record changes it.
  const EvalResult r = e.Run("!consent('sms') && consent('email') && count(order, 30d) == 0");
  CHECK(Json(r.value) == "true");
  CHECK(r.valid_until == kForever);
  const Expr x = e.Compile("consent('sms')");
  CHECK_FALSE(x.time_dependent());
  CHECK(x.result_type() == "bool");
  // It reads the channel's consent attribute, a name records cannot give an attribute.
  CHECK(std::find(e.names.attrs.begin(), e.names.attrs.end(), "consent:sms") != e.names.attrs.end());
  // The JSON AST is an ordinary call, read back the same.
  CHECK(x.AstJson() == R"({"call":"consent","args":[{"lit":"sms","type":"string"}]})");
  auto y = Expr::FromAst(x.AstJson(), e.names);
  REQUIRE(y.ok());
  CHECK(y->AstJson() == x.AstJson());
  auto v = e.ev.Eval(*y, e.person, e.now);
  REQUIRE(v.ok());
  CHECK(Json(v->value) == "false");
  // The channel is a literal channel name, known when compiling.
  CHECK(e.Err("consent(attrs.channel)").find("consent: the channel is a string literal") != std::string::npos);
  CHECK(e.Err("consent(\"s m s\")").find("channel names are 1-64") != std::string::npos);
  CHECK(e.Err("consent(\"\")").find("channel names are 1-64") != std::string::npos);
  CHECK(e.Err("consent()").find("consent takes 1 argument") != std::string::npos);
  CHECK(e.Err("consent('sms', 'email')").find("consent takes 1 argument") != std::string::npos);
  CHECK(e.Err("consent('sms') + 1").find("does not apply to bool") != std::string::npos);
  CHECK(e.AstErr(R"({"call":"consent","args":[{"ref":"attrs","name":"ch"}]})").find("string literal") != std::string::npos);
}

// ---- the reference documentation ----

namespace {
// The fixture person of docs/expressions.md ("The examples' person").
void DocPerson(Env& e) {
  auto& p = e.person;
  e.now = T("2024-03-15T12:00:00+08:00");
  p.SetAttr("city", "上海").SetAttr("gender", "f").SetAttr("name", "Li Na").SetAttr("level", Value::Int(3));
  p.SetAttr("birthday", Value::Date(cdp::DaysFromCivil(1990, 3, 20)));
  p.SetAttr("interests", p.KeepList({p.Keep("beauty"), p.Keep("travel")}));
  p.SetIds("mobile", 1).SetIds("member_no", 1);
  p.SetConsent("sms", false);
  p.SetSeen(T("2023-06-01T10:00:00+08:00"), T("2024-03-14T20:00:00+08:00"));
  p.AddEvent("order", T("2024-03-14T20:00:00+08:00"), 19900, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("A1")}});
  p.AddEvent("order", T("2024-03-02T09:00:00+08:00"), 35000, {{"channel", p.Keep("store")}, {"sku", p.Keep("B7")}});
  p.AddEvent("order", T("2024-02-10T15:00:00+08:00"), 8800, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("A1")}});
  p.AddEvent("order", T("2023-11-11T00:05:00+08:00"), 52000, {{"channel", p.Keep("tmall")}, {"sku", p.Keep("C3")}});
  p.AddEvent("visit", T("2024-03-15T09:30:00+08:00"), -1, {{"page", p.Keep("home")}});
  p.AddEvent("visit", T("2024-03-10T11:00:00+08:00"), -1, {{"page", p.Keep("product")}});
}
}  // namespace

TEST_CASE("expr: every example in docs/expressions.md compiles, and annotated ones evaluate as stated") {
  std::ifstream f(std::string(CDP_SOURCE_DIR) + "/docs/expressions.md");
  REQUIRE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  std::string doc = ss.str();
  Env e;
  DocPerson(e);
  int blocks = 0, checked = 0;
  size_t pos = 0;
  while ((pos = doc.find("```expr\n", pos)) != std::string::npos) {
    size_t start = pos + 8;
    size_t end = doc.find("```", start);
    REQUIRE(end != std::string::npos);
    std::string block = doc.substr(start, end - start);
    pos = end + 3;
    ++blocks;
    auto x = Expr::Compile(block, e.names);
    CHECK_MESSAGE(x.ok(), block, ": ", std::string(x.status().message()));
    if (!x.ok()) continue;
    size_t arrow = block.rfind("// => ");
    if (arrow == std::string::npos) continue;
    std::string want = block.substr(arrow + 6);
    while (!want.empty() && (want.back() == '\n' || want.back() == ' ')) want.pop_back();
    auto r = e.ev.Eval(*x, e.person, e.now);
    REQUIRE(r.ok());
    CHECK_MESSAGE(Json(r->value) == want, block);
    ++checked;
  }
  CHECK(blocks >= 30);
  CHECK(checked >= 20);
  // The valid_until instants its section states in prose.
  auto vu = [&](std::string_view text) {
    auto x = Expr::Compile(text, e.names);
    REQUIRE(x.ok());
    auto r = e.ev.Eval(*x, e.person, e.now);
    REQUIRE(r.ok());
    return r->valid_until;
  };
  CHECK(vu("now() - person.last_seen > 30d") == T("2024-04-13T20:00:00.001+08:00"));
  CHECK(vu("attrs.city == \"北京\" && count(order, 30d) > 0") == kForever);
  CHECK(vu("count(order, 30d) >= 1") == T("2024-04-01T00:00:00+08:00"));
  CHECK(e.J("count(order, 30d) >= 1", T("2024-04-12T23:59:59.999+08:00")) == "true");
  CHECK(e.J("count(order, 30d) >= 1", T("2024-04-13T00:00:00+08:00")) == "false");
}

TEST_CASE("a large whole double is written with an exponent, so JSON readers keep it a double") {
  std::string out;
  cdp::AppendValueJson(out, cdp::Value::Double(922.7148 * 1544148 * 148 * 15423 * 70212.0));
  CHECK(out.find('e') != std::string::npos);
  CHECK(std::stod(out) == 922.7148 * 1544148 * 148 * 15423 * 70212.0);
  out.clear();
  cdp::AppendValueJson(out, cdp::Value::Double(123456789012.0));
  CHECK(out == "123456789012");  // below 1e15 the digits stay as they are
}
