// Loyalty (docs/loyalty.md) through the engine: earning per yuan and fixed, multipliers,
// expiry at Asia/Shanghai month and year ends, spending order and locks, refunds and
// debt, tiers (upgrade, each downgrade mode, overrides), merges, definition errors, and a
// persistent engine that comes back with the same ledger and deadlines.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

#include "helpers.hpp"

using namespace cdptest;
using cdp::Engine;

namespace {

constexpr int64_t kApr1 = 1711900800000;      // 2024-04-01T00:00:00+08:00
constexpr int64_t kDec31 = 1735574400000;     // 2024-12-31T00:00:00+08:00
constexpr int64_t kJan2024 = 1704038400000;   // 2024-01-01T00:00:00+08:00
constexpr int64_t kJan1 = 1735660800000;      // 2025-01-01T00:00:00+08:00 (2024-12-31T16:00Z)
constexpr int64_t kJan1Next = 1767196800000;  // 2026-01-01T00:00:00+08:00
constexpr int64_t kNull = INT64_MIN;

std::string Number(int person) { return "139" + std::to_string(10000000 + person); }
std::string Mobile(int person) { return "\"mobile\":\"" + Number(person) + "\""; }

std::string Event(int person, int64_t ts, std::string_view type, std::string_view more = "") {
  return Rec("shop", ts, Mobile(person),
             "\"event\":{\"type\":\"" + std::string(type) + "\"" + std::string(more) + "}");
}
std::string Order(int person, int64_t ts, std::string_view yuan, std::string_view id = "") {
  std::string more = ",\"amount\":\"" + std::string(yuan) + "\"";
  if (!id.empty()) more += ",\"order_id\":\"" + std::string(id) + "\"";
  return Event(person, ts, "order", more);
}

void Define(Engine& e, const std::string& json) {
  auto r = e.DefineLifecycle(json);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

std::string DefineError(Engine& e, const std::string& json) {
  auto r = e.DefineLifecycle(json);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

uint64_t Id(Engine& e, int person) {
  uint64_t id = Resolve(e, "mobile", Number(person));
  REQUIRE(id != 0);
  return id;
}

// The person's "loyalty" object, minified.
std::string Loyalty(Engine& e, int person) {
  auto r = e.PersonLifecycle(Id(e, person));
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  Json j(*r);
  return std::string(simdjson::minify(j["loyalty"]));
}

int64_t Int(const std::string& obj, const char* key) {
  Json j(obj);
  simdjson::dom::element v;
  if (j.root[key].get(v) || v.is_null()) return kNull;
  return v.get_int64().value();
}

std::string Str(const std::string& obj, const char* key) {
  Json j(obj);
  simdjson::dom::element v;
  if (j.root[key].get(v) || v.is_null()) return "null";
  if (v.is_string()) return std::string(v.get_string().value());
  return std::string(simdjson::minify(v));
}

int64_t Points(Engine& e, int person) { return Int(Loyalty(e, person), "points"); }
std::string Tier(Engine& e, int person) { return Str(Loyalty(e, person), "tier"); }

struct LotView {
  int64_t points, remaining, expires_at, locked_until;
  std::string rule;
};

std::vector<LotView> Lots(Engine& e, int person) {
  Json j(Loyalty(e, person));
  std::vector<LotView> out;
  for (auto l : Arr(j["lots"])) {
    auto t = [&](const char* k) { return l[k].is_null() ? kNull : l[k].get_int64().value(); };
    out.push_back(LotView{t("points"), t("remaining"), t("expires_at"), t("locked_until"),
                          std::string(l["rule"].get_string().value())});
  }
  return out;
}

// A manual operation on a person; fields is the rest of the object.
absl::StatusOr<std::string> TryOp(Engine& e, int person, std::string_view op, std::string_view fields) {
  std::string json = "{\"op\":\"" + std::string(op) + "\",\"type\":\"mobile\",\"value\":\"" + Number(person) + "\"";
  if (!fields.empty()) json += "," + std::string(fields);
  return e.LifecycleApply(json + "}");
}
std::string Op(Engine& e, int person, std::string_view op, std::string_view fields) {
  auto r = TryOp(e, person, op, fields);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}
std::string At(int64_t ts) { return "\"ts\":" + std::to_string(ts); }

void Advance(Engine& e, int64_t now) {
  auto r = e.Advance(now);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

// Feed "points" events with the given op (and person, when not 0).
std::vector<std::string> PointsFeed(Engine& e, std::string_view op, uint64_t oneid = 0) {
  std::vector<std::string> out;
  for (const std::string& ev : FeedOf(e, "points"))
    if (Str(ev, "op") == op && (oneid == 0 || static_cast<uint64_t>(Int(ev, "oneid")) == oneid)) out.push_back(ev);
  return out;
}

std::vector<std::string> TierFeed(Engine& e, uint64_t oneid) {
  std::vector<std::string> out;
  for (const std::string& ev : FeedOf(e, "tier_changed"))
    if (static_cast<uint64_t>(Int(ev, "oneid")) == oneid) out.push_back(ev);
  return out;
}

std::string EvalState(Engine& e, int person, std::string_view text) {
  auto x = e.CompileExpr(text, false);
  REQUIRE_MESSAGE(x.ok(), std::string(x.status().message()));
  cdp::Evaluator ev(e.expr_limits());
  auto r = e.EvalExpr(*x, Id(e, person), e.Now(), ev);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return Str(*r, "value");
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  REQUIRE_MESSAGE(f.good(), path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Points by a points balance with tiers V1 0, V2 1000, V3 2000, V4 3000 and a downgrade.
std::string ByPoints(std::string_view downgrade) {
  return R"({"loyalty":{"name":"member","points":{"earn":[{"id":"order_points","on":"order","per_yuan":1}]},
    "tiers":{"metric":"points","levels":[{"name":"V1","min":0},{"name":"V2","min":1000},{"name":"V3","min":2000},
             {"name":"V4","min":3000}],"downgrade":)" +
         std::string(downgrade) + "}}}";
}

}  // namespace

TEST_CASE("loyalty: points per yuan (rounded down) and fixed, guards, caps per local day, growth") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member",
    "points":{"earn":[
      {"id":"order_points","on":"order","per_yuan":1},
      {"id":"first_order","on":"order","points":100,"when":"count(order) == 1"},
      {"id":"follow","on":"follow","points":20,"max_per_day":1},
      {"id":"tmall_only","on":"order","points":7,"where":{"channel":["tmall","jd"]}}]},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":0.5}]}}})");
  // Mar 1 20:00 and Mar 2 01:00 local are one UTC day and two local days.
  // (A batch files every record's facts before the lifecycle sees its events, so a guard
  // counting orders would see the batch's later orders too: the first order comes alone.)
  Ingest(*e, Order(1, kMar1 + 10 * kHour, "199.99"));
  Ingest(*e, Join({Event(1, kMar1 + 20 * kHour, "follow"),
                   Event(1, kMar1 + 21 * kHour, "follow"), Event(1, kMar1 + 25 * kHour, "follow"),
                   Order(1, kMar1 + 26 * kHour, "50.50", "A2") , Event(2, kMar1, "app_open"),
                   Event(1, kMar1 + 27 * kHour, "order", ",\"amount\":\"1.00\",\"channel\":\"tmall\"")}));
  // 199 + 100 (first order) + 20 + 20 (one follow a local day) + 50 + 1 + 7 (tmall).
  std::string l = Loyalty(*e, 1);
  CHECK(Int(l, "points") == 397);
  CHECK(Int(l, "available") == 397);
  CHECK(Int(l, "growth") == 99 + 25 + 0);  // 99.995 → 99, 25.25 → 25, 0.5 → 0
  CHECK(Str(l, "member") == "true");
  CHECK(PointsFeed(*e, "earn", Id(*e, 1)).size() == 7 + 2);  // points lots and growth earnings
  auto earns = PointsFeed(*e, "earn", Id(*e, 1));
  CHECK(Str(earns[0], "reason") == "order_points");
  CHECK(Int(earns[0], "points") == 199);
  CHECK(Int(earns[0], "ts") == kMar1 + 10 * kHour);
  CHECK(Str(earns[0], "expires_at") == "null");
  // An event type no rule reads leaves a person out of the program.
  std::string other = Loyalty(*e, 2);
  CHECK(Str(other, "member") == "false");
  CHECK(Str(other, "tier") == "null");
  CHECK(Int(other, "points") == 0);
}

TEST_CASE("loyalty: tier and birthday multipliers by the local date") {
  for (const char* config : {"", R"({"attributes":{"birthday":{"type":"date"}}})"}) {
    CAPTURE(config);
    auto e = OpenEngine(config);
    Define(*e, R"({"loyalty":{"name":"member",
      "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1},
                        {"id":"follow","on":"follow","points":20}],
                "multipliers":{"tiers":{"V2":1.2},"birthday":2,"birthday_attr":"birthday"}},
      "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
      "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":1000}]}}})");
    Ingest(*e, Rec("crm", kMar1, Mobile(1), R"("attrs":{"birthday":"1990-03-05"})"));
    Ingest(*e, Order(1, kMar1 + 1 * kDay + 12 * kHour, "100"));  // V1, not the birthday
    CHECK(Points(*e, 1) == 100);
    Ingest(*e, Order(1, kMar1 + 2 * kDay + 12 * kHour, "1000"));  // V1 when earned, V2 after
    CHECK(Points(*e, 1) == 1100);
    CHECK(Tier(*e, 1) == "V2");
    Ingest(*e, Order(1, kMar1 + 3 * kDay + 12 * kHour, "100"));  // V2: × 1.2
    CHECK(Points(*e, 1) == 1220);
    Ingest(*e, Order(1, kMar1 + 4 * kDay + 23 * kHour + 30 * 60000, "100"));  // 5 March 23:30 local: × 2.4
    CHECK(Points(*e, 1) == 1460);
    std::string last;
    for (const auto& ev : PointsFeed(*e, "earn"))
      if (Str(ev, "ledger") == "points") last = ev;
    CHECK(Str(last, "multiplier") == "2.4");
    Ingest(*e, Event(1, kMar1 + 4 * kDay + 23 * kHour + 40 * 60000, "follow"));  // a fixed bonus is not multiplied
    CHECK(Points(*e, 1) == 1480);
    // 6 March 00:10 local is still 5 March in UTC: no longer the birthday.
    Ingest(*e, Order(1, kMar1 + 5 * kDay + 10 * 60000, "100"));
    CHECK(Points(*e, 1) == 1600);
  }
}

TEST_CASE("loyalty: month-end, year-end and after-N-days expiry at Asia/Shanghai midnights") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member","points":{"earn":[
      {"id":"order_points","on":"order","per_yuan":1,"expires":"month_end"},
      {"id":"follow","on":"follow","points":10,"expires":"year_end"},
      {"id":"checkin","on":"event_checkin","points":5,"expires":{"after":"30d"}},
      {"id":"guide","on":"guide_added","points":3,"expires":{"year_end":1}}]}}})");
  const int64_t checkin = kMar1 + 10 * kHour;
  Ingest(*e, Join({Event(1, checkin, "event_checkin"), Order(1, kMar1 + 14 * kDay + 12 * kHour, "100"),
                   Event(1, kMar1 + 20 * kDay, "guide_added")}));
  auto lots = Lots(*e, 1);
  REQUIRE(lots.size() == 3);
  CHECK(lots[0].expires_at == checkin + 30 * kDay);
  CHECK(lots[1].expires_at == kApr1);
  CHECK(lots[2].expires_at == kJan1Next);  // the end of the year after
  Advance(*e, checkin + 30 * kDay - 1);
  CHECK(Points(*e, 1) == 108);
  Advance(*e, checkin + 30 * kDay);
  CHECK(Points(*e, 1) == 103);
  Advance(*e, kApr1 - 1);
  CHECK(Points(*e, 1) == 103);
  Advance(*e, kApr1);
  CHECK(Points(*e, 1) == 3);
  auto expired = PointsFeed(*e, "expire");
  REQUIRE(expired.size() == 2);
  CHECK(Int(expired[0], "ts") == checkin + 30 * kDay);
  CHECK(Int(expired[1], "ts") == kApr1);
  CHECK(Int(expired[1], "points") == -100);
  CHECK(Int(expired[1], "balance") == 3);

  // 23:30 on 31 December local expires with 2024; 00:30 on 1 January local (16:30 UTC on
  // 31 December) belongs to 2025 and lasts until 2026.
  Ingest(*e, Join({Event(2, kDec31 + 23 * kHour + 30 * 60000, "follow"),
                   Event(3, kDec31 + 23 * kHour + 30 * 60000, "follow"), Event(3, kJan1 + 30 * 60000, "follow")}));
  lots = Lots(*e, 2);
  REQUIRE(lots.size() == 1);
  CHECK(lots[0].expires_at == kJan1);
  Advance(*e, kJan1 - 1);
  CHECK(Points(*e, 2) == 10);
  Advance(*e, kJan1);
  CHECK(Points(*e, 2) == 0);
  auto gone = PointsFeed(*e, "expire", Id(*e, 2));
  REQUIRE(gone.size() == 1);
  CHECK(Int(gone[0], "ts") == kJan1);
  Ingest(*e, Event(2, kJan1 + 30 * 60000, "follow"));
  lots = Lots(*e, 2);
  REQUIRE(lots.size() == 1);
  CHECK(lots[0].expires_at == kJan1Next);
  // Person 3's second event came after the first lot's deadline, before any Advance got
  // there: the lot left at its deadline all the same.
  lots = Lots(*e, 3);
  REQUIRE(lots.size() == 1);
  CHECK(lots[0].expires_at == kJan1Next);
  gone = PointsFeed(*e, "expire", Id(*e, 3));
  REQUIRE(gone.size() == 1);
  CHECK(Int(gone[0], "ts") == kJan1);
  CHECK(Int(gone[0], "balance") == 0);
}

TEST_CASE("loyalty: spending draws the earliest-expiring unlocked lots; locks end by timer") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member","points":{"earn":[{"id":"order_points","on":"order","per_yuan":1}]}}})");
  Ingest(*e, Event(1, kMar1, "app_open"));
  const int64_t t0 = kMar1 + 10 * kHour;
  Op(*e, 1, "earn", "\"points\":100,\"reason\":\"welcome\"," + At(t0));  // never expires
  Op(*e, 1, "earn", "\"points\":50,\"expires\":\"60d\"," + At(t0 + 1));
  Op(*e, 1, "earn", "\"points\":30,\"expires\":\"10d\",\"lock\":\"7d\"," + At(t0 + 2));
  Op(*e, 1, "earn", "\"points\":40,\"expires\":\"30d\"," + At(t0 + 3));
  Op(*e, 1, "earn", "\"points\":5,\"reason\":\"late\"," + At(t0 + 4));  // never expires, earned later
  std::string l = Loyalty(*e, 1);
  CHECK(Int(l, "points") == 225);
  CHECK(Int(l, "available") == 195);
  CHECK(Int(l, "locked") == 30);

  // 60: the 30-day lot (40), then the 60-day one; the locked 10-day lot is skipped.
  std::string r = Op(*e, 1, "spend", "\"points\":60," + At(t0 + kDay));
  CHECK(Int(r, "balance") == 165);
  auto lots = Lots(*e, 1);
  REQUIRE(lots.size() == 4);
  CHECK(lots[0].remaining == 30);  // 10 days, locked
  CHECK(lots[0].locked_until == t0 + 2 + 7 * kDay);
  CHECK(lots[1].remaining == 30);  // 60 days
  CHECK(lots[2].rule == "welcome");
  CHECK(lots[3].rule == "late");

  // Short: refused with what is available, and nothing changes.
  auto refused = TryOp(*e, 1, "spend", "\"points\":200," + At(t0 + kDay));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(refused.status().message()).find("135 available (30 locked)") != std::string::npos);
  CHECK(Points(*e, 1) == 165);

  Advance(*e, t0 + 2 + 7 * kDay);
  auto unlocked = PointsFeed(*e, "unlock");
  REQUIRE(unlocked.size() == 1);
  CHECK(Int(unlocked[0], "ts") == t0 + 2 + 7 * kDay);
  CHECK(Int(unlocked[0], "available") == 165);
  // Unlocked, the 10-day lot goes first now; then the 60-day lot; then never-expiring
  // lots in earning order.
  Op(*e, 1, "spend", "\"points\":90," + At(t0 + 8 * kDay));
  lots = Lots(*e, 1);
  REQUIRE(lots.size() == 2);
  CHECK(lots[0].rule == "welcome");
  CHECK(lots[0].remaining == 70);
  CHECK(lots[1].remaining == 5);
  CHECK(Int(Loyalty(*e, 1), "available") == 75);
}

TEST_CASE("loyalty: a refund reverses the order's earning; what was spent becomes a debt later earnings pay") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1,"expires":"365d"}],
              "refund":{"on":"refund","ref":"order_id"}},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]}}})");
  const int64_t t = kMar1 + 10 * kHour;
  Ingest(*e, Order(1, t, "200", "A1"));
  Op(*e, 1, "spend", "\"points\":150," + At(t + kHour));
  Ingest(*e, Order(1, t + 2 * kHour, "100", "A2"));
  // A1 had 50 left; the 150 spent come off A2's lot; 50 are missing.
  Ingest(*e, Event(1, t + 3 * kHour, "refund", ",\"order_id\":\"A1\""));
  std::string l = Loyalty(*e, 1);
  CHECK(Int(l, "points") == 0);
  CHECK(Int(l, "debt") == 50);
  CHECK(Int(l, "growth") == 100);
  auto refunds = PointsFeed(*e, "refund");
  REQUIRE(refunds.size() == 2);  // points and growth
  CHECK(Str(refunds[0], "ledger") == "points");
  CHECK(Int(refunds[0], "points") == -150);
  CHECK(Int(refunds[0], "taken_back") == 50);
  CHECK(Int(refunds[0], "from_balance") == 100);
  CHECK(Int(refunds[0], "debt_added") == 50);
  CHECK(Int(refunds[0], "debt") == 50);
  CHECK(Str(refunds[1], "ledger") == "growth");
  CHECK(Int(refunds[1], "points") == -200);

  // The next earning pays the debt first.
  Ingest(*e, Order(1, t + 4 * kHour, "80", "A3"));
  l = Loyalty(*e, 1);
  CHECK(Int(l, "points") == 30);
  CHECK(Int(l, "debt") == 0);
  std::string paid;
  for (const auto& ev : PointsFeed(*e, "earn"))
    if (Str(ev, "ledger") == "points") paid = ev;
  CHECK(Int(paid, "debt_paid") == 50);

  // A2's points paid for A1's spending: refunding A2 claws them back from A3's lot.
  std::string r = Op(*e, 1, "refund", "\"ref\":\"A2\"," + At(t + 5 * kHour));
  CHECK(Int(r, "reversed") == 100);
  CHECK(Int(r, "from_balance") == 30);
  CHECK(Int(r, "debt") == 70);  // 380 earned, 150 spent, 300 refunded
  CHECK(Int(r, "growth") == 80);
  // A refund is reversed once.
  r = Op(*e, 1, "refund", "\"ref\":\"A1\"," + At(t + 6 * kHour));
  CHECK(Int(r, "reversed") == 0);
  CHECK(Int(r, "debt") == 70);
}

TEST_CASE("loyalty: upgrade at the threshold, points_to_next_tier, state.<name> and history") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1}]},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
    "tiers":{"metric":"growth","levels":[{"name":"V1","min":0},{"name":"V2","min":2000},{"name":"gold","min":6000}]}}})");
  const int64_t t = kMar1 + 10 * kHour;
  Ingest(*e, Order(1, t, "1999"));
  std::string l = Loyalty(*e, 1);
  CHECK(Str(l, "tier") == "V1");
  CHECK(Str(l, "next_tier") == "V2");
  CHECK(Int(l, "points_to_next_tier") == 1);
  CHECK(EvalState(*e, 1, "state.member") == "V1");
  Ingest(*e, Order(1, t + kHour, "1"));
  l = Loyalty(*e, 1);
  CHECK(Str(l, "tier") == "V2");
  CHECK(Int(l, "tier_since") == t + kHour);
  CHECK(EvalState(*e, 1, "state.member == \"V2\"") == "true");
  // Gold needs 6000: a member with 4000 is 2000 away.
  Ingest(*e, Order(1, t + 2 * kHour, "2000"));
  l = Loyalty(*e, 1);
  CHECK(Str(l, "next_tier") == "gold");
  CHECK(Int(l, "points_to_next_tier") == 2000);
  CHECK(Int(l, "next_evaluation") == kNull);  // no downgrade rule: nothing to evaluate
  // Several levels at once.
  Ingest(*e, Order(2, t, "7000"));
  CHECK(Tier(*e, 2) == "gold");
  CHECK(Str(Loyalty(*e, 2), "next_tier") == "null");
  CHECK(Str(Loyalty(*e, 2), "points_to_next_tier") == "null");

  auto changes = TierFeed(*e, Id(*e, 1));
  REQUIRE(changes.size() == 2);
  CHECK(Str(changes[0], "from") == "null");
  CHECK(Str(changes[0], "to") == "V1");
  CHECK(Str(changes[1], "from") == "V1");
  CHECK(Str(changes[1], "to") == "V2");
  CHECK(Str(changes[1], "reason") == "event");
  CHECK(Int(changes[1], "metric") == 2000);
  Json h(*e->PersonLifecycle(Id(*e, 1)));
  auto history = Arr(h["history"]);
  REQUIRE(history.size() == 2);
  auto last = history.at(1).value();
  CHECK(std::string(last["machine"].get_string().value()) == "member");
  CHECK(std::string(last["from"].get_string().value()) == "V1");
  CHECK(std::string(last["to"].get_string().value()) == "V2");
  CHECK(std::string(last["event"].get_string().value()) == "order");
}

TEST_CASE("loyalty: downgrade on drop, at once or after the minimum dwell, by spending and by expiry") {
  const int64_t t0 = kMar1 + 10 * kHour;
  SUBCASE("at once") {
    auto e = OpenEngine();
    Define(*e, ByPoints(R"({"mode":"on_drop"})"));
    Ingest(*e, Event(1, kMar1, "app_open"));
    Op(*e, 1, "earn", "\"points\":3500," + At(t0));
    CHECK(Tier(*e, 1) == "V4");
    Op(*e, 1, "spend", "\"points\":1000," + At(t0 + kHour));
    CHECK(Tier(*e, 1) == "V3");
    Op(*e, 1, "spend", "\"points\":2000," + At(t0 + 2 * kHour));  // two levels down at once
    CHECK(Tier(*e, 1) == "V1");
    CHECK(Str(TierFeed(*e, Id(*e, 1)).back(), "reason") == "manual");
    // Expiring points lower the balance at their deadline, and the tier with it.
    Op(*e, 1, "earn", "\"points\":1200,\"expires\":\"10d\"," + At(t0 + 3 * kHour));
    CHECK(Tier(*e, 1) == "V2");
    Advance(*e, t0 + 3 * kHour + 10 * kDay);
    CHECK(Tier(*e, 1) == "V1");
    auto last = TierFeed(*e, Id(*e, 1)).back();
    CHECK(Str(last, "reason") == "timer");
    CHECK(Int(last, "ts") == t0 + 3 * kHour + 10 * kDay);
  }
  SUBCASE("after the minimum dwell") {
    auto e = OpenEngine();
    Define(*e, ByPoints(R"({"mode":"on_drop","min_dwell":"30d"})"));
    Ingest(*e, Event(1, kMar1, "app_open"));
    Op(*e, 1, "earn", "\"points\":3500," + At(t0));
    Op(*e, 1, "spend", "\"points\":3000," + At(t0 + 5 * kDay));
    std::string l = Loyalty(*e, 1);
    CHECK(Str(l, "tier") == "V4");
    CHECK(Int(l, "next_evaluation") == t0 + 30 * kDay);
    Advance(*e, t0 + 30 * kDay - 1);
    CHECK(Tier(*e, 1) == "V4");
    Advance(*e, t0 + 30 * kDay);
    CHECK(Tier(*e, 1) == "V1");
    CHECK(Int(Loyalty(*e, 1), "tier_since") == t0 + 30 * kDay);
    CHECK(Int(Loyalty(*e, 1), "next_evaluation") == kNull);
  }
}

TEST_CASE("loyalty: periodic downgrade from registration, at most max_steps, not before min_dwell") {
  auto e = OpenEngine();
  Define(*e, ByPoints(R"({"mode":"periodic","every":"30d","from":"registration","max_steps":1,"min_dwell":"45d"})"));
  Ingest(*e, Event(1, kMar1, "app_open"));
  const int64_t t0 = kMar1 + 10 * kHour;
  Op(*e, 1, "earn", "\"points\":3000," + At(t0));  // registers at t0, V4
  Op(*e, 1, "spend", "\"points\":3000," + At(t0 + kDay));
  std::string l = Loyalty(*e, 1);
  CHECK(Str(l, "tier") == "V4");  // periodic: nothing happens before the evaluation
  CHECK(Int(l, "next_evaluation") == t0 + 30 * kDay);
  Advance(*e, t0 + 30 * kDay);
  CHECK(Tier(*e, 1) == "V4");  // 30 days in V4: under the 45-day dwell
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 60 * kDay);
  Advance(*e, t0 + 60 * kDay - 1);
  CHECK(Tier(*e, 1) == "V4");
  Advance(*e, t0 + 60 * kDay);
  CHECK(Tier(*e, 1) == "V3");  // one step, though the balance says V1
  auto last = TierFeed(*e, Id(*e, 1)).back();
  CHECK(Str(last, "reason") == "timer");
  CHECK(Int(last, "ts") == t0 + 60 * kDay);
  Advance(*e, t0 + 90 * kDay);
  CHECK(Tier(*e, 1) == "V3");  // 30 days in V3
  Advance(*e, t0 + 120 * kDay);
  CHECK(Tier(*e, 1) == "V2");
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 150 * kDay);  // registration, not the change
  // Upgrades never wait.
  Op(*e, 1, "earn", "\"points\":3100," + At(t0 + 121 * kDay));
  CHECK(Tier(*e, 1) == "V4");
}

TEST_CASE("loyalty: periodic downgrade from the last change") {
  auto e = OpenEngine();
  Define(*e, ByPoints(R"({"mode":"periodic","every":"30d","from":"last_change"})"));
  Ingest(*e, Event(1, kMar1, "app_open"));
  const int64_t t0 = kMar1 + 10 * kHour;
  Op(*e, 1, "earn", "\"points\":3000," + At(t0));
  Op(*e, 1, "spend", "\"points\":3000," + At(t0 + kDay));
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 30 * kDay);
  Advance(*e, t0 + 30 * kDay);
  CHECK(Tier(*e, 1) == "V3");  // max_steps defaults to 1
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 60 * kDay);
  Op(*e, 1, "earn", "\"points\":3000," + At(t0 + 40 * kDay));  // back to V4: the period restarts
  CHECK(Tier(*e, 1) == "V4");
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 70 * kDay);
  Advance(*e, t0 + 70 * kDay);
  CHECK(Tier(*e, 1) == "V4");  // the balance still says V4
  CHECK(Int(Loyalty(*e, 1), "next_evaluation") == t0 + 100 * kDay);
}

TEST_CASE("loyalty: manual floor, ceiling and pin, with expiry by timer and clear") {
  auto e = OpenEngine();
  Define(*e, ByPoints(R"({"mode":"on_drop"})"));
  Ingest(*e, Event(1, kMar1, "app_open"));
  const int64_t t0 = kMar1 + 10 * kHour;
  Op(*e, 1, "earn", "\"points\":10," + At(t0));
  std::string r = Op(*e, 1, "tier", "\"floor\":\"V2\",\"until\":" + std::to_string(t0 + 10 * kDay) + "," + At(t0));
  CHECK(Str(r, "tier") == "V2");
  std::string l = Loyalty(*e, 1);
  CHECK(Str(l, "tier") == "V2");
  CHECK(Str(l, "earned_tier") == "V1");
  CHECK(Str(l, "override") == R"({"kind":"floor","tier":"V2","until":)" + std::to_string(t0 + 10 * kDay) + "}");
  CHECK(Str(TierFeed(*e, Id(*e, 1)).back(), "reason") == "manual");
  Op(*e, 1, "earn", "\"points\":2000," + At(t0 + kDay));  // above the floor: the rules win
  CHECK(Tier(*e, 1) == "V3");
  Op(*e, 1, "spend", "\"points\":2000," + At(t0 + 2 * kDay));  // back under: the floor holds
  CHECK(Tier(*e, 1) == "V2");
  Advance(*e, t0 + 10 * kDay - 1);
  CHECK(Tier(*e, 1) == "V2");
  Advance(*e, t0 + 10 * kDay);
  CHECK(Tier(*e, 1) == "V1");
  CHECK(Str(Loyalty(*e, 1), "override") == "null");
  CHECK(Str(TierFeed(*e, Id(*e, 1)).back(), "reason") == "timer");

  // A ceiling without expiry holds until cleared.
  Op(*e, 1, "earn", "\"points\":3000," + At(t0 + 11 * kDay));
  CHECK(Tier(*e, 1) == "V4");
  Op(*e, 1, "tier", "\"ceiling\":\"V2\"," + At(t0 + 11 * kDay));
  CHECK(Tier(*e, 1) == "V2");
  Op(*e, 1, "earn", "\"points\":500," + At(t0 + 12 * kDay));
  CHECK(Tier(*e, 1) == "V2");
  CHECK(Str(Loyalty(*e, 1), "earned_tier") == "V4");
  Op(*e, 1, "tier", "\"clear\":true," + At(t0 + 13 * kDay));
  CHECK(Tier(*e, 1) == "V4");

  // A pin is the tier whatever the rules say, until it ends.
  Op(*e, 1, "tier", "\"pin\":\"V1\",\"until\":" + std::to_string(t0 + 20 * kDay) + "," + At(t0 + 14 * kDay));
  CHECK(Tier(*e, 1) == "V1");
  Advance(*e, t0 + 20 * kDay);
  CHECK(Tier(*e, 1) == "V4");

  // Refused operations name the field.
  auto bad = TryOp(*e, 1, "tier", "\"floor\":\"V9\"");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()) == "floor: no tier \"V9\"");
  bad = TryOp(*e, 1, "tier", "\"floor\":\"V2\",\"pin\":\"V3\"");
  REQUIRE_FALSE(bad.ok());
  bad = TryOp(*e, 1, "tier", "\"pin\":\"V2\",\"until\":" + std::to_string(t0) + "," + At(t0 + 21 * kDay));
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).rfind("until:", 0) == 0);
}

TEST_CASE("loyalty: a merge combines lots with their expiries, adds growth and debts, keeps the higher tier") {
  auto e = OpenEngine();
  Define(*e, R"({"loyalty":{"name":"member",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1,"expires":"month_end"}]},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
    "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":1000}]}}})");
  const int64_t t = kMar1 + 10 * kHour;
  Ingest(*e, Order(1, t, "1200"));  // V2, a lot expiring at the end of March
  Op(*e, 1, "spend", "\"points\":200," + At(t + kHour));
  Ingest(*e, Order(2, t + 2 * kHour, "300"));  // V1
  Op(*e, 2, "earn", "\"points\":40,\"expires\":\"90d\"," + At(t + 3 * kHour));
  // Person 3 owes 30; person 4 holds 100.
  Ingest(*e, Order(3, t, "300"));
  Op(*e, 3, "adjust", "\"points\":-330,\"reason\":\"fraud\"," + At(t + kHour));
  CHECK(Int(Loyalty(*e, 3), "debt") == 30);
  Ingest(*e, Order(4, t, "100"));
  const int64_t v2_since = Int(Loyalty(*e, 1), "tier_since");
  // Overrides: 5 has a pin and 6 none; 7 a floor and 8 a ceiling.
  Ingest(*e, Join({Order(5, t, "10"), Order(6, t, "10"), Order(7, t, "10"), Order(8, t, "10")}));
  Op(*e, 5, "tier", "\"pin\":\"V2\"," + At(t + kHour));
  Op(*e, 7, "tier", "\"floor\":\"V2\"," + At(t + kHour));
  Op(*e, 8, "tier", "\"ceiling\":\"V1\"," + At(t + kHour));
  const uint64_t id7 = Id(*e, 7);

  Ingest(*e, Join({Rec("crm", t + 4 * kHour, Mobile(1) + ",\"email\":\"a@x.com\""),
                   Rec("crm", t + 5 * kHour, Mobile(2) + ",\"email\":\"a@x.com\""),
                   Rec("crm", t + 4 * kHour, Mobile(3) + ",\"email\":\"b@x.com\""),
                   Rec("crm", t + 5 * kHour, Mobile(4) + ",\"email\":\"b@x.com\""),
                   Rec("crm", t + 4 * kHour, Mobile(5) + ",\"email\":\"c@x.com\""),
                   Rec("crm", t + 5 * kHour, Mobile(6) + ",\"email\":\"c@x.com\""),
                   Rec("crm", t + 4 * kHour, Mobile(7) + ",\"email\":\"d@x.com\""),
                   Rec("crm", t + 5 * kHour, Mobile(8) + ",\"email\":\"d@x.com\"")}));
  REQUIRE(Id(*e, 1) == Id(*e, 2));
  REQUIRE(Id(*e, 3) == Id(*e, 4));
  std::string l = Loyalty(*e, 1);
  CHECK(Int(l, "points") == 1000 + 300 + 40);
  CHECK(Int(l, "growth") == 1500);
  CHECK(Str(l, "tier") == "V2");
  CHECK(Int(l, "tier_since") == v2_since);
  auto lots = Lots(*e, 1);
  REQUIRE(lots.size() == 3);
  CHECK(lots[0].expires_at == kApr1);
  CHECK(lots[1].expires_at == kApr1);
  CHECK(lots[2].expires_at == t + 3 * kHour + 90 * kDay);
  // The survivor's override wins; a lone one is kept whoever survives.
  REQUIRE(Id(*e, 5) == Id(*e, 6));
  REQUIRE(Id(*e, 7) == Id(*e, 8));
  CHECK(Tier(*e, 5) == "V2");
  CHECK(Str(Str(Loyalty(*e, 5), "override"), "kind") == "pin");
  CHECK(Str(Str(Loyalty(*e, 7), "override"), "kind") == (Id(*e, 7) == id7 ? "floor" : "ceiling"));
  // A debt joined to a balance is paid from it.
  std::string owed = Loyalty(*e, 3);
  CHECK(Int(owed, "debt") == 0);
  CHECK(Int(owed, "points") == 70);
  auto merges = PointsFeed(*e, "merge", Id(*e, 3));
  REQUIRE(merges.size() == 1);
  CHECK(Int(merges[0], "debt_paid") == 30);
  // The absorbed person's deadline is the survivor's now.
  Advance(*e, kApr1);
  CHECK(Points(*e, 1) == 40);
  Advance(*e, t + 3 * kHour + 90 * kDay);
  CHECK(Points(*e, 1) == 0);

}

TEST_CASE("loyalty: an enrolment guard; redefinition keeps ledgers and re-evaluates tiers") {
  auto e = OpenEngine();
  std::string def = R"({"loyalty":{"name":"member","enroll":"count(member_join) > 0",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1}]},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
    "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":1000}]}}})";
  Define(*e, def);
  const int64_t t = kMar1 + 10 * kHour;
  Ingest(*e, Order(1, t, "1500"));
  CHECK(Str(Loyalty(*e, 1), "member") == "false");
  CHECK(Points(*e, 1) == 0);
  Ingest(*e, Rec("crm", t + kHour, Mobile(1) + ",\"member_no\":\"M1\"", R"("event":{"type":"member_join"})"));
  CHECK(Str(Loyalty(*e, 1), "member") == "true");
  Ingest(*e, Order(1, t + 2 * kHour, "1200"));
  CHECK(Points(*e, 1) == 1200);
  CHECK(Tier(*e, 1) == "V2");

  // New rules and a new level: the ledger stays, the tier moves at the next timer.
  Define(*e, R"({"loyalty":{"name":"member",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":2}]},
    "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
    "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":1000},{"name":"V3","min":1100}]}}})");
  CHECK(Points(*e, 1) == 1200);
  CHECK(Tier(*e, 1) == "V2");
  Advance(*e, t + 3 * kHour);
  CHECK(Tier(*e, 1) == "V3");
  CHECK(Str(TierFeed(*e, Id(*e, 1)).back(), "reason") == "definition");
  Ingest(*e, Order(1, t + 4 * kHour, "10"));
  CHECK(Points(*e, 1) == 1220);

  Json cat(e->LifecycleJson());
  CHECK(std::string(cat["loyalty"]["name"].get_string().value()) == "member");
  CHECK(cat["loyalty"]["members"].get_uint64().value() == 1);
  REQUIRE(e->DropLifecycle("loyalty", "member").ok());
  Json dropped(e->LifecycleJson());
  CHECK(dropped["loyalty"].is_null());
  CHECK(Loyalty(*e, 1) == "null");
}

TEST_CASE("loyalty: definition errors name their path; a refused definition changes nothing") {
  auto e = OpenEngine();
  auto err = [&](std::string body) { return DefineError(*e, R"({"loyalty":{"name":"member",)" + body + "}}"); };
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order"}]})").rfind("loyalty.points.earn[0]: expected \"per_yuan\"", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","per_yaun":1}]})")
            .rfind("loyalty.points.earn[0].per_yaun: unknown key", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","points":5,"expires":"someday"}]})")
            .rfind("loyalty.points.earn[0].expires: expected \"never\"", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","points":5},{"id":"a","on":"follow","points":1}]})")
            .rfind("loyalty.points.earn[1].id: \"a\" is used twice", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","points":5,"when":"count(order) >"}]})")
            .rfind("loyalty.points.earn[0].when: line 1, column", 0) == 0);
  CHECK(err(R"("growth":{"earn":[{"id":"g","on":"order","per_yuan":1,"lock":"7d"}]})")
            .rfind("loyalty.growth.earn[0].lock: unknown key", 0) == 0);
  CHECK(err(R"("growth":{"earn":[{"id":"g","on":"order","per_yuan":1}]},
               "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":0}]})")
            .rfind("loyalty.tiers.levels[1].min: levels go up", 0) == 0);
  CHECK(err(R"("growth":{"earn":[{"id":"g","on":"order","per_yuan":1}]},
               "tiers":{"levels":[{"name":"V1","min":5}]})")
            .rfind("loyalty.tiers.levels[0].min:", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","per_yuan":1}],"multipliers":{"tiers":{"V9":2}}},
               "tiers":{"metric":"points","levels":[{"name":"V1","min":0}]})")
            .rfind("loyalty.points.multipliers.tiers.V9: no such tier", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","per_yuan":1}]},
               "tiers":{"metric":"points","levels":[{"name":"V1","min":0}],"downgrade":{"mode":"periodic"}})")
            .rfind("loyalty.tiers.downgrade.every:", 0) == 0);
  CHECK(err(R"("points":{"earn":[{"id":"a","on":"order","per_yuan":1}]},
               "tiers":{"levels":[{"name":"V1","min":0}]})")
            .rfind("loyalty.tiers.metric: tiers by growth need growth rules", 0) == 0);
  CHECK(err(R"("tiers":{"metric":{"expr":"\"gold\""},"levels":[{"name":"V1","min":0}]})")
            .rfind("loyalty.tiers.metric.expr: expected a number", 0) == 0);
  CHECK(err(R"("points":{"refund":{"on":"refund"}})").rfind("loyalty.points.refund.ref:", 0) == 0);
  CHECK(DefineError(*e, R"({"loyalty":{"points":{}}})").rfind("loyalty.name:", 0) == 0);

  // A good definition, then a bad one: the first stays.
  Define(*e, R"({"loyalty":{"name":"member","points":{"earn":[{"id":"a","on":"order","per_yuan":1}]}}})");
  err(R"("points":{"earn":[{"id":"a","on":"order"}]})");
  Ingest(*e, Order(1, kMar1, "10"));
  CHECK(Points(*e, 1) == 10);
  // Operations without a program, or malformed, are refused.
  auto r = TryOp(*e, 1, "spend", "\"points\":-5");
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).rfind("points:", 0) == 0);
}

TEST_CASE("loyalty: a persistent engine reopened has the same ledger and pending expiries") {
  namespace fs = std::filesystem;
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cdp-loyalty-XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{tmpl};
  const std::string dir = tmpl + "/engine";
  const int64_t t = kMar1 + 10 * kHour;
  std::string before;
  uint64_t id;
  {
    auto opened = Engine::Open("", dir);
    REQUIRE_MESSAGE(opened.ok(), std::string(opened.status().message()));
    Engine& e = **opened;
    Define(e, R"({"loyalty":{"name":"member",
      "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1,"expires":"month_end","lock":"7d"}],
                "refund":{"on":"refund","ref":"order_id"}},
      "growth":{"earn":[{"id":"spend","on":"order","per_yuan":1}]},
      "tiers":{"levels":[{"name":"V1","min":0},{"name":"V2","min":1000}],"downgrade":{"mode":"on_drop"}}}})");
    Ingest(e, Join({Order(1, t, "1200", "A1"), Order(1, t + kHour, "300", "A2")}));
    CHECK(Int(Loyalty(e, 1), "locked") == 1500);
    Advance(e, t + 8 * kDay);  // unlocked
    Op(e, 1, "spend", "\"points\":100");  // at the engine's clock, from A1
    Ingest(e, Event(1, t + 9 * kDay, "refund", ",\"order_id\":\"A1\""));  // 100 come off A2
    CHECK(Tier(e, 1) == "V1");
    Op(e, 1, "tier", "\"floor\":\"V2\",\"until\":" + std::to_string(kApr1 + 5 * kDay) + "," + At(t + 9 * kDay + kHour));
    id = Id(e, 1);
    before = *e.PersonLifecycle(id);
    CHECK(Int(Loyalty(e, 1), "points") == 200);
    CHECK(Tier(e, 1) == "V2");
  }
  auto reopened = Engine::Open("", dir);
  REQUIRE_MESSAGE(reopened.ok(), std::string(reopened.status().message()));
  Engine& e = **reopened;
  CHECK(*e.PersonLifecycle(id) == before);
  // The deadlines came back: the lot expires at the end of March, the floor five days later.
  Advance(e, kApr1);
  CHECK(Points(e, 1) == 0);
  CHECK(Int(PointsFeed(e, "expire").back(), "ts") == kApr1);
  CHECK(Tier(e, 1) == "V2");
  Advance(e, kApr1 + 5 * kDay);
  CHECK(Tier(e, 1) == "V1");
}

TEST_CASE("loyalty: the bundled program over the demo data") {
  auto e = OpenEngine();
  const std::string dir = std::string(CDP_SOURCE_DIR) + "/examples/data/";
  Define(*e, ReadFile(dir + "loyalty.json"));
  std::string all;
  for (const char* f : {"crm", "pos", "tmall", "wechat", "wecom", "app", "events"}) all += ReadFile(dir + f + ".ndjson");
  REQUIRE(e->IngestNdjson(all, false).ok());
  Json cat(e->LifecycleJson());
  const uint64_t members = cat["loyalty"]["members"].get_uint64().value();
  CHECK(members >= 20);

  // Who is in the program, by the feed.
  std::set<uint64_t> ids;
  for (const auto& ev : FeedOf(*e, "points")) ids.insert(static_cast<uint64_t>(Int(ev, "oneid")));
  for (const auto& ev : FeedOf(*e, "tier_changed")) ids.insert(static_cast<uint64_t>(Int(ev, "oneid")));
  std::map<std::string, int> tiers;
  int64_t points = 0;
  for (uint64_t id : ids) {
    auto p = e->PersonLifecycle(id);
    if (!p.ok()) continue;  // merged away later in the data
    Json j(*p);
    std::string l(simdjson::minify(j["loyalty"]));
    if (Str(l, "member") != "true") continue;
    tiers[Str(l, "tier")]++;
    points += Int(l, "points");
    // Points earned in a year last until the end of the next (2023's until the end of 2024).
    for (auto lot : Arr(j["loyalty"]["lots"]))
      if (std::string_view(lot["rule"].get_string().value()) == "store_purchase")
        CHECK(lot["expires_at"].get_int64().value() ==
              (lot["earned_at"].get_int64().value() < kJan2024 ? kJan1 : kJan1Next));
  }
  CHECK(tiers["V1"] + tiers["V2"] == static_cast<int>(members));
  CHECK(tiers["V2"] > 0);
  CHECK(points > 0);

  // At the start of 2026 every lot has expired, and the yearly reviews brought V2 members
  // back to V1 (nobody bought since January 2024).
  Advance(*e, kJan1Next);
  for (uint64_t id : ids) {
    auto p = e->PersonLifecycle(id);
    if (!p.ok()) continue;
    Json j(*p);
    std::string l(simdjson::minify(j["loyalty"]));
    if (Str(l, "member") != "true") continue;
    CHECK(Int(l, "points") == 0);
    CHECK(Str(l, "tier") == "V1");
  }
  bool reviewed = false;
  for (const auto& ev : FeedOf(*e, "tier_changed")) reviewed |= Str(ev, "to") == "V1" && Str(ev, "reason") == "timer";
  CHECK(reviewed);
}

TEST_CASE("loyalty: the definitions shown in docs/loyalty.md are accepted") {
  const std::string page = ReadFile(std::string(CDP_SOURCE_DIR) + "/docs/loyalty.md");
  int checked = 0;
  for (size_t at = page.find("```json\n"); at != std::string::npos; at = page.find("```json\n", at + 1)) {
    size_t from = at + 8, to = page.find("```", from);
    REQUIRE(to != std::string::npos);
    std::string block = page.substr(from, to - from);
    if (block.rfind("{\"loyalty\"", 0) != 0) continue;
    auto e = OpenEngine();
    Define(*e, block);
    checked++;
  }
  CHECK(checked >= 1);
}
