// Fuzz target: the documents a host writes by hand: tag definitions, lifecycle definitions
// (machines, loyalty, journeys, delivery) and audience requests. The first byte picks what
// the rest is, (byte - '0') mod 7, so that corpus files start with a digit:
//   0 tag definitions (DefineTags)       1 a lifecycle document (DefineLifecycle)
//   2 count  3 members  4 distribution  5 export (Audience)
//   6 a request saved as an audience (SaveAudience), named "fuzzed", or "big" (a base
//     audience, replaced) when (byte - '0') / 7 is odd.
// Each input runs on a fresh in-memory engine holding a few persons with events, and a base
// of tags, a lifecycle and a saved audience that fuzzed documents can read and redefine.
// Inputs over 8 KB are skipped. Any input may be refused; none may crash or hang, and after
// every call:
//  - every catalogue, person and result is valid JSON, and each tag's person count is the
//    number of persons holding it;
//  - a refused call and every audience query leave the catalogues and the feed unchanged;
//  - an accepted definition is in the catalogue, and the engine keeps working under it:
//    later records, then the clock moved on by weeks and by a year;
//  - an audience count equals the persons for whom the expression, evaluated one by one,
//    is true; a first page that has room lists every member; a distribution's counts add
//    up; a saved audience recounts to what saving it counted.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cdp/engine.hpp"
#include "fuzz_check.hpp"

namespace {

constexpr int64_t kMar1 = 1709222400000;  // 2024-03-01T00:00:00+08:00
constexpr int64_t kDay = 86'400'000;

// A small step budget: an expression may cost at most this per person and evaluation, so a
// costly fuzzed expression is refused quickly instead of running for seconds.
constexpr std::string_view kConfig = R"({"limits":{"max_expr_steps":20000}})";

// Six persons over the first days of March 2024: identifiers, attributes and one event per
// record, at noon of its day.
std::string Records() {
  auto at = [](int day) { return std::to_string(kMar1 + day * kDay + kDay / 2); };
  std::string out;
  auto rec = [&](const char* source, int day, const char* ids, const char* attrs, const char* event) {
    out += std::string("{\"source\":\"") + source + "\",\"ts\":" + at(day) + ",\"ids\":{" + ids + "}";
    if (*attrs) out += std::string(",\"attrs\":{") + attrs + "}";
    if (*event) out += std::string(",\"event\":{") + event + "}";
    out += "}\n";
  };
  rec("crm", 0, R"("mobile":"13910000001","member_no":"M1")", R"("city":"上海","gender":"f","birthday":"1990-03-05")",
      R"("type":"member_join")");
  rec("tmall", 1, R"("mobile":"13910000001")", "", R"("type":"order","amount":199,"channel":"tmall","order_id":"O1")");
  rec("pos", 2, R"("member_no":"M1")", "", R"("type":"purchase","amount":538.85)");
  rec("wechat", 1, R"("mobile":"13910000002","unionid":"oU_2")", R"("city":"杭州")", R"("type":"follow")");
  rec("wechat", 3, R"("unionid":"oU_2")", "", R"("type":"mp_login")");
  rec("wecom", 4, R"("unionid":"oU_2")", "", R"("type":"guide_added")");
  rec("jd", 2, R"("member_no":"M3","jd_pin":"jd-3")", R"("gender":"m")", R"("type":"order","amount":20,"channel":"jd","order_id":"O3")");
  rec("jd", 5, R"("jd_pin":"jd-3")", "", R"("type":"order","amount":35.5,"channel":"jd","order_id":"O4")");
  rec("jd", 6, R"("jd_pin":"jd-3")", "", R"("type":"refund","amount":35.5,"order_id":"O4")");
  rec("pos", 3, R"("mobile":"13910000004")", R"("city":"上海")", R"("type":"purchase","amount":88)");
  rec("app", 4, R"("device_id":"dev-5")", "", R"("type":"mp_login")");
  rec("crm", 5, R"("mobile":"13910000006","unionid":"oU_6")", R"("city":"北京")", R"("type":"member_join")");
  rec("pos", 7, R"("mobile":"13910000006")", "", R"("type":"event_checkin")");
  rec("tmall", 8, R"("mobile":"13910000006")", "", R"("type":"order","amount":6000,"channel":"tmall","order_id":"O6")");
  return out;
}

// Later records, for the engine to take under a newly accepted definition.
std::string LaterRecords() {
  auto at = [](int day) { return std::to_string(kMar1 + day * kDay + 10 * 3'600'000); };
  return "{\"source\":\"tmall\",\"ts\":" + at(20) +
         ",\"ids\":{\"mobile\":\"13910000002\"},\"event\":{\"type\":\"order\",\"amount\":99,\"channel\":\"tmall\",\"order_id\":\"O7\"}}\n"
         "{\"source\":\"pos\",\"ts\":" + at(21) +
         ",\"ids\":{\"member_no\":\"M1\"},\"event\":{\"type\":\"purchase\",\"amount\":1200}}\n"
         "{\"source\":\"wechat\",\"ts\":" + at(22) +
         ",\"ids\":{\"unionid\":\"oU_7\"},\"attrs\":{\"city\":\"成都\"},\"event\":{\"type\":\"follow\"}}\n"
         "{\"source\":\"crm\",\"ts\":" + at(23) +
         ",\"ids\":{\"mobile\":\"13910000004\",\"member_no\":\"M4\"},\"event\":{\"type\":\"member_join\"}}\n"
         "{\"source\":\"tmall\",\"ts\":" + at(24) +
         ",\"ids\":{\"mobile\":\"13910000001\"},\"event\":{\"type\":\"refund\",\"amount\":199,\"order_id\":\"O1\"}}\n";
}

constexpr std::string_view kBaseTags = R"J([
  {"name":"spend","kind":"statistic","expr":"sum(purchase.amount) + sum(order.amount)"},
  {"name":"orders","kind":"statistic","expr":"count(order) + count(purchase)"},
  {"name":"tier","kind":"rule","rules":[{"when":"tags.spend >= yuan(500)","value":"high"},{"when":"tags.spend > 0","value":"low"}],"default":"none"},
  {"name":"channels","kind":"preference","event":"order","prop":"channel","top":2},
  {"name":"engagement","kind":"score","rules":[{"event":"follow","points":10},{"event":"mp_login","points":5,"cap":10,"per":"day"}]},
  {"name":"city","kind":"import"},
  {"name":"recent","kind":"rule","when":"count(order, 30d) + count(purchase, 30d) > 0"}
])J";

constexpr std::string_view kBaseLifecycle = R"J({
  "machines":[{"name":"aipl","monotonic":true,"states":["aware","interest","purchase","loyal"],"initial":"aware",
    "transitions":[{"from":"aware","to":"interest","on":["follow","mp_login","member_join"]},
      {"from":["aware","interest"],"to":"purchase","on":["order","purchase"]},
      {"from":"purchase","to":"loyal","on":["order","purchase"],"when":"tags.orders >= 2","action":"loyal_welcome","channel":"sms"}]},
    {"name":"activity","states":["new","active","dormant"],"initial":"new",
    "transitions":[{"from":"new","to":"active","on":["order","purchase"]},{"from":"active","restart":true,"on":["order","purchase"]},
      {"from":["new","active"],"to":"dormant","after":"30d"},{"from":"dormant","to":"active","on":["order","purchase"],"action":"welcome_back"}]}],
  "loyalty":{"name":"member","enroll":"first(member_join) <= now()",
    "points":{"earn":[{"id":"order","on":"order","per_yuan":1,"expires":"365d"},{"id":"store","on":"purchase","per_yuan":1},{"id":"join","on":"member_join","points":200,"max_total":1}],
      "refund":{"on":"refund","ref":"order_id","within":"30d"}},
    "tiers":{"metric":{"expr":"tags.spend"},"levels":[{"name":"V1","min":0},{"name":"V2","min":1000}]}},
  "journeys":[{"name":"welcome","entry":{"on":"follow"},"steps":[{"id":"hi","action":"welcome","channel":"wechat"},{"wait":"1d"},
    {"if":"count(order) > 0","then":"done"},{"action":"coupon","channel":"sms"},{"id":"done","end":true}]}],
  "delivery":{"send_window":["09:00","21:00"],"caps":{"per_day":2}}
})J";

constexpr std::string_view kBaseAudience = R"J({"expr":"tags.spend >= yuan(100)","holdout":{"salt":"s","percent":50}})J";

// What a refused call or a query must leave as it was.
struct Visible {
  std::string tags, life, audiences;
  uint64_t feed = 0;
  explicit Visible(const cdp::Engine& e)
      : tags(e.TagsJson()), life(e.LifecycleJson()), audiences(e.AudiencesJson()), feed(e.feed().next()) {}
  bool operator==(const Visible&) const = default;
};

// A result's array (held by a named value: a range-for over a temporary simdjson_result's
// value_unsafe() would read freed memory).
simdjson::dom::array ArrayAt(simdjson::dom::element e, const char* key) {
  simdjson::dom::array a;
  FUZZ_CHECK(!e[key].get(a));
  return a;
}

std::vector<uint64_t> Persons(const cdp::Engine& e) {
  std::vector<uint64_t> out;
  cdpfuzz::Json page(e.PersonsPage(0, 1000, false));
  simdjson::dom::array persons;
  FUZZ_CHECK(!page.root["persons"].get(persons));
  for (auto p : persons) out.push_back(p["oneid"].get_uint64().value_unsafe());
  FUZZ_CHECK(page.U("next") == 0);  // a few persons: one page
  return out;
}

// Everything a reader can see is valid JSON, and the tag columns agree with the persons.
void CheckEngine(const cdp::Engine& e) {
  cdpfuzz::Json tags(e.TagsJson());
  cdpfuzz::Json life(e.LifecycleJson());
  cdpfuzz::Json stats(e.StatsJson());
  cdpfuzz::Json audiences(e.AudiencesJson());
  cdpfuzz::Json outbox(e.OutboxJson(0, 1000));
  uint64_t next = e.feed().next();
  cdpfuzz::Json feed(e.FeedJson(next > 256 ? next - 256 : 0, 256));
  std::vector<uint64_t> persons = Persons(e);
  std::vector<std::unique_ptr<cdpfuzz::Json>> person_tags;  // elements point into their parser: not moved
  for (uint64_t id : persons) {
    auto p = e.PersonJson(id, true);
    FUZZ_CHECK(p.ok());
    cdpfuzz::Json pj(*p);
    auto l = e.PersonLifecycle(id);
    FUZZ_CHECK(l.ok());
    cdpfuzz::Json lj(*l);
    auto t = e.PersonTags(id);
    FUZZ_CHECK(t.ok());
    person_tags.push_back(std::make_unique<cdpfuzz::Json>(*t));
  }
  simdjson::dom::array list;
  FUZZ_CHECK(!tags.root["tags"].get(list));
  for (auto t : list) {
    std::string_view name = t["name"].get_string().value_unsafe();
    uint64_t holding = 0;
    for (auto& pt : person_tags) holding += pt->root["tags"][name].error() == simdjson::SUCCESS;
    FUZZ_CHECK(t["persons"].get_uint64().value_unsafe() == holding);
  }
}

bool Listed(simdjson::dom::element catalogue, const char* key, std::string_view name) {
  simdjson::dom::array list;
  if (catalogue[key].get(list)) return false;
  for (auto x : list)
    if (x["name"].get_string().value_unsafe() == name) return true;
  return false;
}

// After an accepted definition: the engine goes on under it.
void RunOn(cdp::Engine& e) {
  auto report = e.IngestNdjson(LaterRecords(), true);
  FUZZ_CHECK(report.ok());
  cdpfuzz::Json r(*report);
  FUZZ_CHECK(r.U("accepted") == 5);
  CheckEngine(e);
  for (int64_t now : {kMar1 + 45 * kDay, kMar1 + 400 * kDay}) {
    auto adv = e.Advance(now);
    FUZZ_CHECK(adv.ok());
    cdpfuzz::Json a(*adv);
    CheckEngine(e);
  }
}

void Define(cdp::Engine& e, bool lifecycle, std::string_view doc) {
  const Visible before(e);
  auto r = lifecycle ? e.DefineLifecycle(doc) : e.DefineTags(doc);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    FUZZ_CHECK(Visible(e) == before);
    CheckEngine(e);
    return;
  }
  cdpfuzz::Json answer(*r);
  simdjson::dom::array names;
  if (lifecycle) {
    cdpfuzz::Json catalogue(e.LifecycleJson());
    for (const char* kind : {"machines", "journeys"}) {  // present when the document defines some
      if (answer.root[kind].get(names)) continue;
      for (auto n : names) FUZZ_CHECK(Listed(catalogue.root, kind, n.get_string().value_unsafe()));
    }
  } else {
    cdpfuzz::Json catalogue(e.TagsJson());
    FUZZ_CHECK(!answer.root["defined"].get(names));
    for (auto d : names) FUZZ_CHECK(Listed(catalogue.root, "tags", d["name"].get_string().value_unsafe()));
  }
  CheckEngine(e);
  RunOn(e);
}

// A request's option, or its default when absent (the query checked its type).
template <class T>
T Option(simdjson::dom::object req, const char* key, T dflt) {
  T v;
  return req[key].get(v) ? dflt : v;
}

// The persons for whom the request's expression is true at now, one by one; -1 when an
// evaluation fails (over the step budget), which the planner may have avoided.
int64_t CountByScan(cdp::Engine& e, simdjson::dom::object req, int64_t now) {
  std::string_view text;
  simdjson::dom::element ast;
  absl::StatusOr<cdp::Expr> x = absl::UnknownError("");
  if (!req["expr"].get(text)) x = e.CompileExpr(text, false);
  else if (!req["ast"].get(ast)) x = e.CompileExpr(simdjson::minify(ast), true);
  FUZZ_CHECK(x.ok());  // the query compiled it
  cdp::Evaluator ev(e.expr_limits());
  int64_t n = 0;
  for (uint64_t id : Persons(e)) {
    auto v = e.EvalExpr(*x, id, now, ev);
    if (!v.ok()) return -1;
    cdpfuzz::Json j(*v);
    bool b = false;
    n += !j.root["value"].get(b) && b;
  }
  return n;
}

void Query(cdp::Engine& e, int op, std::string_view request) {
  static constexpr const char* kOps[] = {"count", "members", "distribution", "export"};
  const Visible before(e);
  auto r = e.Audience(kOps[op], request);
  FUZZ_CHECK(Visible(e) == before);  // a query changes nothing, answered or refused
  CheckEngine(e);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    return;
  }
  simdjson::dom::parser rp;
  simdjson::dom::object req;
  FUZZ_CHECK(!rp.parse(request.data(), request.size()).get(req));  // it was answered
  const bool plain = req["audience"].error() && req["group"].error();
  if (op == 3) {  // export: lines of JSON, or CSV under its header
    const auto format = Option<std::string_view>(req, "format", "ndjson");
    std::string_view out = *r;
    if (format == "csv") {
      FUZZ_CHECK(out.substr(0, 32) == "oneid,type,value,source,holdout\n");
      return;
    }
    simdjson::dom::parser lp;
    while (!out.empty()) {
      size_t eol = out.find('\n');
      FUZZ_CHECK(eol != std::string_view::npos);
      simdjson::dom::object line;
      FUZZ_CHECK(!lp.parse(std::string(out.substr(0, eol))).get(line));
      out.remove_prefix(eol + 1);
    }
    return;
  }
  cdpfuzz::Json answer(*r);
  const uint64_t count = answer.U("count");
  if (op == 0 && plain) {
    int64_t now = 0;
    FUZZ_CHECK(!answer.root["now"].get(now));
    int64_t scanned = CountByScan(e, req, now);
    FUZZ_CHECK(scanned < 0 || static_cast<uint64_t>(scanned) == count);
  } else if (op == 1) {
    const uint64_t limit = std::clamp<uint64_t>(Option<uint64_t>(req, "limit", 100), 1, 10000);
    const uint64_t cursor = Option<uint64_t>(req, "cursor", 0);
    simdjson::dom::array members;
    FUZZ_CHECK(!answer.root["members"].get(members));
    const uint64_t next = answer.U("next");
    FUZZ_CHECK(members.size() <= limit && members.size() <= count);
    if (next != 0) FUZZ_CHECK(members.size() == limit);
    if (cursor == 0 && count <= limit) FUZZ_CHECK(members.size() == count && next == 0);
  } else if (op == 2) {
    cdpfuzz::Json catalogue(e.TagsJson());
    simdjson::dom::object per_tag;
    FUZZ_CHECK(!answer.root["tags"].get(per_tag));
    for (auto [name, d] : per_tag) {
      uint64_t sum = d["other"].get_uint64().value_unsafe();
      const uint64_t none = d["none"].get_uint64().value_unsafe();
      FUZZ_CHECK(none <= count);
      for (auto v : ArrayAt(d, "values")) {
        const uint64_t n = v["count"].get_uint64().value_unsafe();
        FUZZ_CHECK(n >= 1 && n <= count - none);
        sum += n;
      }
      // Each member holds one value or none, but a list tag's member holds several items.
      bool list = false;
      for (auto t : ArrayAt(catalogue.root, "tags"))
        if (t["name"].get_string().value_unsafe() == name) list = t["index"].get_string().value_unsafe() == "list";
      if (!list) FUZZ_CHECK(sum + none == count);
    }
  }
}

void Save(cdp::Engine& e, bool replace, std::string_view request) {
  const char* name = replace ? "big" : "fuzzed";
  const Visible before(e);
  auto r = e.SaveAudience(name, request);
  if (!r.ok()) {
    FUZZ_CHECK(!r.status().message().empty());
    FUZZ_CHECK(Visible(e) == before);
    CheckEngine(e);
    return;
  }
  Visible after(e);
  FUZZ_CHECK(after.tags == before.tags && after.life == before.life && after.feed == before.feed);
  CheckEngine(e);
  cdpfuzz::Json saved(*r);
  cdpfuzz::Json list(e.AudiencesJson());
  FUZZ_CHECK(Listed(list.root, "audiences", name));
  // A recount selects the saved request again at the engine's clock: the persons saving
  // counted, unless the request gave its own "now" or "group", which the count that saving
  // answers honours and a recount does not.
  auto recount = e.RecountAudience(name);
  FUZZ_CHECK(recount.ok());
  cdpfuzz::Json rc(*recount);
  simdjson::dom::parser rp;
  simdjson::dom::object req;
  FUZZ_CHECK(!rp.parse(request.data(), request.size()).get(req));
  if (req["now"].error() && req["group"].error()) FUZZ_CHECK(rc.U("count") == saved.U("count"));
  CheckEngine(e);
}

// The base must be accepted: a failure here is the target's own bug, shown with its cause.
void Must(const absl::Status& st) {
  if (!st.ok()) std::fprintf(stderr, "base: %s\n", st.ToString().c_str());
  FUZZ_CHECK(st.ok());
}

std::unique_ptr<cdp::Engine> Base() {
  auto opened = cdp::Engine::Open(kConfig);
  FUZZ_CHECK(opened.ok());
  std::unique_ptr<cdp::Engine> e = std::move(*opened);
  auto report = e->IngestNdjson(Records(), true);
  FUZZ_CHECK(report.ok());
  cdpfuzz::Json r(*report);
  FUZZ_CHECK(r.U("rejected") == 0);
  Must(e->DefineTags(kBaseTags).status());
  Must(e->DefineLifecycle(kBaseLifecycle).status());
  Must(e->SaveAudience("big", kBaseAudience).status());
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 8192) return 0;  // longer documents add time, not coverage
  const uint8_t pick = static_cast<uint8_t>(data[0] - '0');
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::unique_ptr<cdp::Engine> engine = Base();
  cdp::Engine& e = *engine;
  switch (pick % 7) {
    case 0: Define(e, false, rest); break;
    case 1: Define(e, true, rest); break;
    case 6: Save(e, pick / 7 % 2, rest); break;
    default: Query(e, pick % 7 - 2, rest); break;
  }
  return 0;
}
