// Times a caller hands the engine are 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z: a
// record's ts outside makes its line malformed (field ts) while the rest of the batch
// lands; the clock of Advance, an audience's "now", EvalExpr's now and an operation's "ts"
// outside are InvalidArgument and change nothing. Both ends are accepted.
#include <cstdint>
#include <limits>

#include "helpers.hpp"

using namespace cdptest;

namespace {

constexpr int64_t kLast = 253402300799999;  // 9999-12-31T23:59:59.999Z
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

std::string Mobile(int i) { return "\"mobile\":\"139" + std::to_string(10000000 + i) + "\""; }

std::string Order(int person, const std::string& ts) {
  return "{\"source\":\"shop\",\"ts\":" + ts + ",\"ids\":{" + Mobile(person) +
         "},\"event\":{\"type\":\"order\",\"amount\":10}}";
}

std::string SetState(uint64_t oneid, const std::string& ts) {
  return "{\"op\":\"set_state\",\"oneid\":" + std::to_string(oneid) + ",\"machine\":\"m\",\"state\":\"b\",\"ts\":" + ts + "}";
}

bool Refused(const absl::Status& st, std::string_view needle) {
  return st.code() == absl::StatusCode::kInvalidArgument &&
         std::string(st.message()).find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("time bounds: a record's ts outside 1970 to 9999 makes its line malformed; the batch lands") {
  auto e = OpenEngine();
  REQUIRE(e->DefineTags(R"([{"name":"recent","kind":"rule","when":"count(order, 30d) > 0"}])").ok());
  const std::string report = Ingest(*e, Join({
      Order(1, std::to_string(kMar1)),                // 1 ok
      Order(2, "-1"),                                 // 2 before 1970
      Order(3, std::to_string(kLast + 1)),            // 3 after 9999
      Order(4, std::to_string(kMax)),                 // 4 the fuzzer's
      Order(5, "\"9999-12-31T23:59:59.999-00:01\""),  // 5 after 9999 in UTC
      Order(6, "\"1969-12-31T23:59:59.999Z\""),       // 6 before 1970
      Order(7, "0"),                                  // 7 the first instant
      Order(8, std::to_string(kLast)),                // 8 the last
      Order(9, "\"9999-12-31T23:59:59.999Z\""),       // 9 the last, as text
  }));
  Json j(report);
  CHECK(U(j["accepted"]) == 4);
  CHECK(U(j["rejected"]) == 5);
  auto errors = Arr(j["errors"]);
  REQUIRE(errors.size() == 5);
  uint64_t line = 2;
  for (auto err : errors) {
    CAPTURE(line);
    CHECK(U(err["line"]) == line++);
    CHECK(err["field"].get_string().value() == "ts");
    CHECK(err["message"].get_string().value() == "outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z");
    CHECK(U(err["column"]) == Order(1, "").find("ts\":") + 5);  // the value's
  }
  for (int p : {2, 3, 4, 5, 6}) CHECK(Resolve(*e, "mobile", "139" + std::to_string(10000000 + p)) == 0);
  for (int p : {1, 7, 8, 9}) CHECK(Resolve(*e, "mobile", "139" + std::to_string(10000000 + p)) != 0);
  // The clock is the newest record time, the last instant: windows and days still work there.
  CHECK(e->Now() == kLast);
  Json tags(*e->PersonTags(Resolve(*e, "mobile", "13910000008")));
  CHECK(tags["tags"]["recent"]["value"].get_bool().value());
  // One record alone: refused, naming the field.
  auto one = e->IngestRecord(Order(10, std::to_string(kMax)));
  REQUIRE_FALSE(one.ok());
  CHECK(Refused(one.status(), "field ts"));
}

TEST_CASE("time bounds: Advance, an audience's now, EvalExpr and an operation's ts") {
  auto e = OpenEngine();
  REQUIRE(e->DefineLifecycle(R"({"machines":[{"name":"m","states":["a","b"],"transitions":[]}]})").ok());
  Ingest(*e, Order(1, std::to_string(kMar1)));
  const uint64_t p = Resolve(*e, "mobile", "13910000001");
  const std::string before = Fingerprint(*e);

  for (int64_t now : {int64_t{-1}, kLast + 1, kMax, std::numeric_limits<int64_t>::min()}) {
    CAPTURE(now);
    auto adv = e->Advance(now);
    REQUIRE_FALSE(adv.ok());
    CHECK(Refused(adv.status(), "advance: a time before 1970 or after 9999"));

    for (const char* op : {"count", "members", "distribution", "export"}) {
      auto r = e->Audience(op, "{\"expr\":\"count(order, 30d) > 0\",\"now\":" + std::to_string(now) + "}");
      REQUIRE_FALSE(r.ok());
      CHECK(Refused(r.status(), "now: expected epoch milliseconds, 1970 to 9999"));
    }
    auto saved = e->SaveAudience("a", "{\"expr\":\"true\",\"now\":" + std::to_string(now) + "}");
    REQUIRE_FALSE(saved.ok());
    CHECK(Refused(saved.status(), "now:"));

    auto x = e->CompileExpr("count(order, 30d)", false);
    REQUIRE(x.ok());
    cdp::Evaluator ev(e->expr_limits());
    auto v = e->EvalExpr(*x, p, now, ev);
    REQUIRE_FALSE(v.ok());
    CHECK(Refused(v.status(), "now is a time before 1970 or after 9999"));

    auto set = e->LifecycleApply(SetState(p, std::to_string(now)));
    REQUIRE_FALSE(set.ok());
    CHECK(Refused(set.status(), "ts: expected the operation's time (epoch ms, 1970 to 9999)"));
  }
  // A "now" or "ts" of another type is refused the same way, not ignored.
  CHECK(Refused(e->Audience("count", R"({"expr":"true","now":"today"})").status(), "now:"));
  CHECK(Refused(e->LifecycleApply(SetState(p, "\"soon\"")).status(), "ts:"));
  CHECK(Fingerprint(*e) == before);  // nothing refused changed anything

  // Both ends are times like any other.
  auto first = e->Audience("count", R"({"expr":"count(order, 30d) > 0","now":0})");
  REQUIRE(first.ok());
  CHECK(U(Json(*first)["count"]) == 0);
  auto last = e->Audience("count", "{\"expr\":\"count(order) > 0\",\"now\":" + std::to_string(kLast) + "}");
  REQUIRE(last.ok());
  CHECK(U(Json(*last)["count"]) == 1);
  auto set = e->LifecycleApply(SetState(p, std::to_string(kLast)));
  REQUIRE_MESSAGE(set.ok(), std::string(set.status().message()));
  auto adv = e->Advance(kLast);
  REQUIRE_MESSAGE(adv.ok(), std::string(adv.status().message()));
  CHECK(Json(*adv)["now"].get_int64().value() == kLast);
}
