// Tags: every kind, incremental upkeep, Advance across local midnights, merges and splits,
// the change feed, definition errors; audiences: the bitmap planner against per-person
// evaluation on random populations and random expressions.
#include <random>

#include "../../src/audience.hpp"
#include "../../src/json_util.hpp"
#include "cdp/tags.hpp"
#include "helpers.hpp"

using namespace cdptest;
using cdp::Engine;

namespace {


std::string Mobile(int i) { return "\"mobile\":\"139" + std::to_string(10000000 + i) + "\""; }

std::string Order(int person, int64_t ts, int yuan, std::string_view channel = "tmall") {
  return Rec("shop", ts, Mobile(person),
             "\"event\":{\"type\":\"order\",\"amount\":" + std::to_string(yuan) + ",\"channel\":\"" +
                 std::string(channel) + "\"}");
}

std::string Define(Engine& e, const std::string& json) {
  auto r = e.DefineTags(json);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

std::string TagOf(Engine& e, int person, const char* tag) {
  uint64_t id = Resolve(e, "mobile", "139" + std::to_string(10000000 + person));
  REQUIRE(id != 0);
  auto r = e.PersonTags(id);
  REQUIRE(r.ok());
  Json j(*r);
  simdjson::dom::element v;
  if (j["tags"][tag]["value"].get(v)) return "null";
  return std::string(simdjson::minify(v));
}

uint64_t Count(Engine& e, const std::string& expr) {
  std::string req = "{\"expr\":";
  cdp::json::AppendString(req, expr);
  auto r = e.Audience("count", req + "}");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  Json j(*r);
  return U(j["count"]);
}

}  // namespace


TEST_CASE("tags: rule, statistic, bucket, import; values and reasons in the feed") {
  auto e = OpenEngine();
  Ingest(*e, Join({Order(1, kMar1 + 10 * kHour, 300), Order(1, kMar1 + 30 * kHour, 500),
                   Order(2, kMar1 + 12 * kHour, 50),
                   Rec("crm", kMar1, Mobile(3), "\"attrs\":{\"birth_year\":1996,\"identity\":\"distributor\"}"),
                   Rec("crm", kMar1, Mobile(2), "\"attrs\":{\"birth_year\":1987}")}));
  Define(*e, R"J([
    {"name":"spend","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
    {"name":"orders_30d","kind":"statistic","fn":"count","event":"order","window":"30d"},
    {"name":"value","kind":"rule","version":2,"rules":[
       {"when":"tags.spend >= yuan(500)","value":"high"},{"when":"tags.spend > 0","value":"low"}],"default":"none"},
    {"name":"buyer","kind":"rule","when":"count(order) > 0"},
    {"name":"age_band","kind":"bucket","expr":"attrs.birth_year","buckets":[
       {"min":1995,"value":"95后"},{"min":1985,"max":1995,"value":"85后"},{"min":1970,"max":1985,"value":"70/75后"}]},
    {"name":"identity","kind":"import"}])J");
  CHECK(TagOf(*e, 1, "spend") == "800.0");  // 800.00 in the document; minified here
  CHECK(TagOf(*e, 1, "orders_30d") == "2");
  CHECK(TagOf(*e, 1, "value") == "\"high\"");
  CHECK(TagOf(*e, 2, "value") == "\"low\"");
  CHECK(TagOf(*e, 3, "value") == "\"none\"");
  CHECK(TagOf(*e, 3, "buyer") == "false");
  CHECK(TagOf(*e, 3, "age_band") == "\"95后\"");
  CHECK(TagOf(*e, 2, "age_band") == "\"85后\"");
  CHECK(TagOf(*e, 1, "age_band") == "null");
  CHECK(TagOf(*e, 3, "identity") == "\"distributor\"");

  // Incremental: a new order re-evaluates that person's dependent tags, with the reason.
  Ingest(*e, Order(2, kMar1 + 40 * kHour, 600));
  CHECK(TagOf(*e, 2, "value") == "\"high\"");
  auto changes = FeedOf(*e, "tag_changed");
  bool found = false;
  for (const auto& c : changes)
    if (c.find("\"tag\":\"value\"") != std::string::npos && c.find("\"to\":\"high\"") != std::string::npos) {
      CHECK(c.find("\"reason\":\"rules[0]\"") != std::string::npos);
      CHECK(c.find("\"version\":2") != std::string::npos);
      found = true;
    }
  CHECK(found);
  // An import's value and its source.
  Ingest(*e, Rec("hr", kMar1 + 50 * kHour, Mobile(3), "\"attrs\":{\"identity\":\"employee\"}"));
  CHECK(TagOf(*e, 3, "identity") == "\"employee\"");
  CHECK(FeedOf(*e, "tag_changed").back().find("imported from hr") != std::string::npos);
  CHECK(FeedOf(*e, "tag_defined").size() == 6);
}

TEST_CASE("tags: a person first seen after the definitions gets every tag, also those its records do not touch") {
  auto e = OpenEngine();
  Define(*e, R"J([{"name":"buyer","kind":"rule","when":"count(order) > 0"},
                  {"name":"no_city","kind":"rule","when":"attrs.city == null"}])J");
  Ingest(*e, Rec("app", kMar1, Mobile(1), R"("event":{"type":"visit"})"));
  CHECK(TagOf(*e, 1, "buyer") == "false");
  CHECK(TagOf(*e, 1, "no_city") == "true");
  CHECK(Count(*e, "tags.no_city") == 1);
  // Later records re-evaluate only what they touch, as before.
  Ingest(*e, Rec("crm", kMar1 + kHour, Mobile(1), R"("attrs":{"city":"上海"})"));
  CHECK(TagOf(*e, 1, "no_city") == "false");
  CHECK(TagOf(*e, 1, "buyer") == "false");
}

TEST_CASE("tags: a relative window turns off on the right local day through Advance") {
  auto e = OpenEngine();
  // An order at 23:30 local on March 1: in "the last 30 days" through March 30, out on March 31.
  Ingest(*e, Order(1, kMar1 + 23 * kHour + 30 * 60000, 100));
  REQUIRE(e->Advance(kMar1 + 23 * kHour + 40 * 60000).ok());
  Define(*e, R"J({"name":"recent_buyer","kind":"rule","when":"count(order, 30d) > 0"})J");
  CHECK(TagOf(*e, 1, "recent_buyer") == "true");
  auto a = e->Advance(kMar1 + 29 * kDay + 23 * kHour);  // March 30, 23:00
  REQUIRE(a.ok());
  CHECK(TagOf(*e, 1, "recent_buyer") == "true");
  Json j(*a);
  CHECK(j["next"].get_int64().value() == kMar1 + 30 * kDay);  // midnight starting March 31
  auto b = e->Advance(kMar1 + 30 * kDay - 1);
  REQUIRE(b.ok());
  CHECK(TagOf(*e, 1, "recent_buyer") == "true");
  auto c = e->Advance(kMar1 + 30 * kDay);
  REQUIRE(c.ok());
  CHECK(TagOf(*e, 1, "recent_buyer") == "false");
  Json jc(*c);
  CHECK(U(jc["persons"]) == 1);
  CHECK(U(jc["changed"]) == 1);
  // Nothing is pending: the value holds without new input.
  CHECK(jc["next"].is_null());
  CHECK(!e->Advance(kMar1).ok());  // the clock does not go back
}

TEST_CASE("tags: rfm by thresholds and quantiles, preference, score with caps") {
  auto e = OpenEngine();
  std::vector<std::string> recs;
  // Person k (1..10) ordered k times, the last one k days before March 20, 100 yuan each.
  const int64_t mar20 = kMar1 + 19 * kDay;
  for (int k = 1; k <= 10; ++k)
    for (int i = 0; i < k; ++i) recs.push_back(Order(k, mar20 - (k + i) * kDay + 12 * kHour, 100, i % 3 ? "jd" : "tmall"));
  // Person 1 follows three times a day for two days (capped at 20 a day), searches once.
  for (int i = 0; i < 3; ++i) {
    recs.push_back(Rec("wx", mar20 - kDay + i * kHour, Mobile(1), "\"event\":{\"type\":\"follow\"}"));
    recs.push_back(Rec("wx", mar20 - 2 * kDay + i * kHour, Mobile(1), "\"event\":{\"type\":\"follow\"}"));
  }
  recs.push_back(Rec("app", mar20 - kDay, Mobile(1), "\"event\":{\"type\":\"search\"}"));
  Ingest(*e, Join(recs));
  REQUIRE(e->Advance(mar20).ok());
  Define(*e, R"J([
    {"name":"rfm","kind":"rfm","thresholds":{"r":[5,10],"f":[3,7],"m":[300,700]},
     "groups":[{"value":"high value","r":[2,3],"f":[3,3],"m":[3,3]},{"value":"recent","r":[3,3]}],"default":"other"},
    {"name":"rfm_q","kind":"rfm","quantiles":2},
    {"name":"channel","kind":"preference","event":"order","prop":"channel"},
    {"name":"channels","kind":"preference","event":"order","prop":"channel","top":2},
    {"name":"activity","kind":"score","rules":[{"event":"follow","points":20,"cap":20,"per":"day"},
                                               {"event":"search","points":15}]}])J");
  // Person 9: 9 orders (F 3), 900 yuan (M 3), last 9 days ago (R: 9 <= 10 → 2).
  CHECK(TagOf(*e, 9, "rfm") == "\"high value\"");
  CHECK(TagOf(*e, 1, "rfm") == "\"recent\"");      // R 3 (1 day), F 1, M 1
  CHECK(TagOf(*e, 6, "rfm") == "\"other\"");       // R 2 (6 days), F 2, M 2
  CHECK(TagOf(*e, 1, "rfm_q").find("R2") != std::string::npos);  // recent half
  CHECK(TagOf(*e, 10, "rfm_q") == "\"R1F2M2\"");
  CHECK(TagOf(*e, 9, "channel") == "\"jd\"");      // 6 of 9 orders on jd
  CHECK(TagOf(*e, 1, "channel") == "\"tmall\"");
  CHECK(TagOf(*e, 9, "channels") == "[\"jd\",\"tmall\"]");
  CHECK(TagOf(*e, 1, "activity") == "55");         // 20 + 20 (capped) + 15
  CHECK(TagOf(*e, 2, "activity") == "0");
  CHECK(Count(*e, "\"jd\" in tags.channels") == 9);  // person 1 has a single tmall order
}

TEST_CASE("tags: definition errors name the definition and the field; cycles give the path") {
  auto e = OpenEngine();
  auto bad = [&](const std::string& json, const std::string& want) {
    auto r = e->DefineTags(json);
    REQUIRE(!r.ok());
    CHECK_MESSAGE(std::string(r.status().message()).find(want) != std::string::npos, r.status().message());
  };
  bad(R"J({"name":"x","kind":"rule","rules":[{"when":"count(order, 30d) >","value":"a"}]})J",
      "tag (x).rules[0].when: line 1, column");
  bad(R"J([{"name":"a","kind":"rule","when":"true"},{"name":"b","kind":"nope"}])J", "tags[1] (b).kind");
  bad(R"J({"name":"x","kind":"bucket","expr":"attrs.age","buckets":[{"min":5,"max":1,"value":"v"}]})J",
      "buckets[0]: min must be below max");
  bad(R"J({"name":"x","kind":"rule","when":"tags.missing == 1"})J", "tags.missing, which is not defined");
  bad(R"J({"name":"x","kind":"rule","when":"true",})J", "line 1, column");
  bad(R"J({"name":"x","kind":"statistic","expr":"attrs.city"})J", "give \"type\"");
  Define(*e, R"J([{"name":"a","kind":"rule","when":"true"},{"name":"b","kind":"rule","when":"tags.a"}])J");
  bad(R"J({"name":"a","kind":"rule","when":"tags.b"})J", "tag cycle: a -> b -> a");
  // Nothing of a refused call was installed; a read dependency blocks a drop.
  CHECK(e->TagsJson().find("\"name\":\"x\"") == std::string::npos);
  CHECK(absl::IsFailedPrecondition(e->DropTag("a")));
  CHECK(e->DropTag("b").ok());
  CHECK(e->DropTag("a").ok());
  CHECK(absl::IsNotFound(e->DropTag("a")));
}

TEST_CASE("tags and bitmaps follow merges and splits") {
  auto e = OpenEngine();
  Ingest(*e, Join({Order(1, kMar1, 300), Rec("wx", kMar1, "\"unionid\":\"u1\"", "\"event\":{\"type\":\"order\",\"amount\":400}")}));
  Define(*e, R"J([{"name":"spend","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
                 {"name":"big","kind":"rule","when":"tags.spend >= yuan(500)"}])J");
  CHECK(Count(*e, "tags.big") == 0);
  CHECK(Count(*e, "tags.spend >= 300") == 2);
  // The member logs in with both: one person, 700 yuan.
  Ingest(*e, Rec("app", kMar1 + kHour, Mobile(1) + ",\"unionid\":\"u1\""));
  CHECK(TagOf(*e, 1, "spend") == "700.0");
  CHECK(Count(*e, "tags.big") == 1);
  CHECK(Count(*e, "tags.spend >= 300") == 1);
  CHECK(Count(*e, "true") == 1);
  // Split them again: each side has its own orders back.
  uint64_t id = Resolve(*e, "mobile", "13910000001");
  auto split = e->Split(id, R"J(["unionid:u1"])J");
  REQUIRE_MESSAGE(split.ok(), std::string(split.status().message()));
  CHECK(TagOf(*e, 1, "spend") == "300.0");
  CHECK(Count(*e, "tags.big") == 0);
  CHECK(Count(*e, "tags.spend == yuan(400)") == 1);
  CHECK(Count(*e, "true") == 2);
}

TEST_CASE("audiences: members, distribution, holdout, export with channel fallback, saved") {
  auto e = OpenEngine();
  std::vector<std::string> recs;
  for (int k = 1; k <= 40; ++k) recs.push_back(Order(k, kMar1 + k * kHour, k * 10, k % 4 ? "tmall" : "jd"));
  recs.push_back(Rec("jd", kMar1, "\"buyer_id\":\"jd-7\"", "\"event\":{\"type\":\"order\",\"amount\":999}"));
  Ingest(*e, Join(recs));
  Define(*e, R"J([{"name":"spend","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
                 {"name":"channel","kind":"preference","event":"order","prop":"channel"}])J");
  auto run = [&](const char* op, const std::string& req) {
    auto r = e->Audience(op, req);
    REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
    return *r;
  };
  Json c(run("count", R"J({"expr":"tags.spend >= 200","holdout":{"salt":"c1","percent":25}})J"));
  CHECK(U(c["count"]) == 22);  // persons 20..40 and the jd buyer
  CHECK(U(c["target"]) + U(c["holdout"]) == 22);
  CHECK(U(c["holdout"]) > 0);
  // Holdout membership is a pure function of OneID and salt.
  Json m(run("members", R"J({"expr":"tags.spend >= 200","holdout":{"salt":"c1","percent":25},"limit":100,"ids":["mobile"]})J"));
  uint64_t held = 0;
  for (auto x : Arr(m["members"])) {
    bool h = x["holdout"].get_bool().value();
    CHECK(h == cdp::InHoldout(U(x["oneid"]), "c1", 2500));
    held += h;
  }
  CHECK(held == U(c["holdout"]));
  // Paging covers every member once.
  uint64_t cursor = 0, seen = 0;
  do {
    Json p(run("members", "{\"expr\":\"tags.spend >= 200\",\"limit\":5,\"cursor\":" + std::to_string(cursor) + "}"));
    seen += Arr(p["members"]).size();
    cursor = U(p["next"]);
  } while (cursor);
  CHECK(seen == 22);
  Json d(run("distribution", R"J({"expr":"true","tags":["channel"],"top":1})J"));
  CHECK(std::string(simdjson::minify(d["tags"]["channel"])) ==
        R"J({"values":[{"value":"tmall","count":30}],"other":10,"none":1})J");
  // Export for SMS: mobile when held, else the channel the person came from.
  std::string out = run("export", R"J({"expr":"tags.spend >= yuan(400)","channel":["mobile"],"format":"csv"})J");
  INFO(out);
  CHECK(out.find("mobile,13910000040,,") != std::string::npos);
  CHECK(out.find("buyer_id,jd-7,jd,") != std::string::npos);
  // A saved audience re-counts and reports who entered and left.
  REQUIRE(e->SaveAudience("big", R"J({"expr":"tags.spend >= 390"})J").ok());
  Json r1(*e->RecountAudience("big"));
  CHECK(U(r1["count"]) == 3);
  Ingest(*e, Order(1, kMar1 + 50 * kHour, 500));
  Json r2(*e->RecountAudience("big"));
  CHECK(U(r2["count"]) == 4);
  CHECK(U(r2["entered"]) == 1);
  CHECK(U(r2["left"]) == 0);
  CHECK(FeedOf(*e, "audience_counted").size() == 2);
}

TEST_CASE("audiences: the bitmap planner equals per-person evaluation on random data") {
  std::mt19937_64 rng(20261124);
  for (int trial = 0; trial < 6; ++trial) {
    auto e = OpenEngine();
    std::vector<std::string> recs;
    const char* cities[] = {"上海", "北京", "杭州", "成都"};
    const char* channels[] = {"tmall", "jd", "app", "mini"};
    for (int k = 0; k < 300; ++k) {
      int orders = static_cast<int>(rng() % 5);
      for (int i = 0; i < orders; ++i)
        recs.push_back(Order(k, kMar1 - static_cast<int64_t>(rng() % 60) * kDay, static_cast<int>(rng() % 500) - 50,
                             channels[rng() % 4]));
      std::string attrs = "\"attrs\":{";
      if (rng() % 5) attrs += std::string("\"city\":\"") + cities[rng() % 4] + "\",";
      attrs += "\"level\":" + std::to_string(rng() % 7) + "}";
      recs.push_back(Rec("crm", kMar1 - static_cast<int64_t>(rng() % 10) * kDay, Mobile(k), attrs));
    }
    Ingest(*e, Join(recs));
    REQUIRE(e->Advance(kMar1 + kDay).ok());
    Define(*e, R"J([
      {"name":"spend","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
      {"name":"n","kind":"statistic","fn":"count","event":"order","window":"30d"},
      {"name":"avg","kind":"statistic","expr":"double(count(order)) / 3.0","type":"double"},
      {"name":"city","kind":"import"},
      {"name":"chan","kind":"preference","event":"order","prop":"channel","top":2},
      {"name":"vip","kind":"rule","when":"tags.spend > yuan(400)"}])J");
    const std::vector<std::string> leaves = {
        "tags.spend >= yuan(100)", "tags.spend < 250", "tags.spend == yuan(0)", "tags.spend != 100",
        "tags.n > 1", "tags.n <= 0", "tags.n == 2", "1 < tags.n", "tags.avg >= 0.5", "tags.avg != 1.0",
        "tags.city == \"上海\"", "tags.city != \"北京\"", "tags.city == null", "tags.city in [\"杭州\", \"成都\"]",
        "tags.city > \"北\"", "\"jd\" in tags.chan", "size(tags.chan) == 1", "tags.vip", "!tags.vip",
        "attrs.level >= 3", "count(order, 7d) > 0", "tags.missing == null", "tags.spend + 1 > 100",
        "startsWith(tags.city, \"上\")", "tags.n % 2 == 0", "abs(tags.spend - yuan(100)) < 50",
        "tags.n * tags.n > 3"};
    for (int q = 0; q < 60; ++q) {
      std::function<std::string(int)> gen = [&](int depth) -> std::string {
        if (depth == 0 || rng() % 3 == 0) return leaves[rng() % leaves.size()];
        switch (rng() % 3) {
          case 0: return "(" + gen(depth - 1) + " && " + gen(depth - 1) + ")";
          case 1: return "(" + gen(depth - 1) + " || " + gen(depth - 1) + ")";
          default: return "!(" + gen(depth - 1) + ")";
        }
      };
      std::string text = gen(3);
      auto x = e->CompileExpr(text, false);
      REQUIRE_MESSAGE(x.ok(), text);
      cdp::PlanStats st;
      auto planned = cdp::SelectAudience(e->tags(), e->profiles(), *x, e->Now(), e->expr_limits(), &st);
      REQUIRE(planned.ok());
      cdp::Bitmap scanned = cdp::SelectAudienceByScan(e->tags(), *x, e->Now(), e->expr_limits());
      CHECK_MESSAGE(*planned == scanned, text);
    }
  }
}
