// Consent per person and channel (PIPL): records state it, and a bad statement makes the
// line malformed naming consent.CHANNEL while the batch goes on; the latest statement by
// record time wins in any arrival order, through merges and splits; consent() reads it,
// or the configured default, in expressions and tags; journey and machine intents on a
// channel the person has not consented to are not emitted (no_consent) and the journey
// goes on as after a capped intent; statements survive snapshots (the profile store's and
// a reopened engine's) and leave with a forgotten person.
#include <string>
#include <vector>

#include "cdp/expr.hpp"
#include "cdp/profile.hpp"
#include "helpers.hpp"
#include "snapshot.hpp"

using namespace cdptest;
using cdp::Engine;

namespace {


constexpr const char* kA = R"("mobile":"13900000001")";
constexpr const char* kB = R"("member_no":"M-2")";
constexpr const char* kC = R"("mobile":"13900000003")";

std::string Say(std::string_view source, int64_t ts, std::string_view ids, std::string_view consent) {
  return Rec(source, ts, ids, "\"consent\":" + std::string(consent));
}

std::string Event(int64_t ts, std::string_view ids, std::string_view type) {
  return Rec("shop", ts, ids, "\"event\":{\"type\":\"" + std::string(type) + "\"}");
}

uint64_t IdOf(Engine& e, std::string_view ids) {
  // ids is "type":"value"
  const size_t colon = ids.find("\":\"");
  return Resolve(e, ids.substr(1, colon - 1), ids.substr(colon + 3, ids.size() - colon - 4));
}

// The person document's consent object, minified ("{}" when empty).
std::string ConsentDoc(Engine& e, uint64_t oneid) {
  auto p = e.PersonJson(oneid, true);
  REQUIRE_MESSAGE(p.ok(), std::string(p.status().message()));
  Json j(*p);
  return std::string(simdjson::minify(j["consent"]));
}

// consent("channel") evaluated on the person.
std::string Eval(Engine& e, uint64_t oneid, std::string_view text) {
  auto x = e.CompileExpr(text, false);
  REQUIRE_MESSAGE(x.ok(), std::string(x.status().message()));
  cdp::Evaluator ev;
  auto r = e.EvalExpr(*x, oneid, kMar1 + 30 * kDay, ev);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  Json j(*r);
  return std::string(simdjson::minify(j["value"]));
}

struct Err {
  uint64_t line, column;
  std::string field, message;
};

std::vector<Err> Errors(const std::string& report) {
  Json j(report);
  std::vector<Err> out;
  for (auto x : Arr(j["errors"]))
    out.push_back({U(x["line"]), U(x["column"]), std::string(x["field"].get_string().value()),
                   std::string(x["message"].get_string().value())});
  return out;
}

void DefineLife(Engine& e, const std::string& json) {
  auto r = e.DefineLifecycle(json);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

std::string Advance(Engine& e, int64_t now) {
  auto r = e.Advance(now);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

// The intent feed events as "step:status" for one person, in order.
std::vector<std::string> IntentStatuses(Engine& e, uint64_t oneid) {
  std::vector<std::string> out;
  for (const std::string& s : FeedOf(e, "intent")) {
    Json j(s);
    if (U(j["oneid"]) != oneid) continue;
    out.push_back(std::string(j["step"].get_string().value()) + ":" + std::string(j["status"].get_string().value()));
  }
  return out;
}

// The outbox's intents as "origin/step" for one person.
std::vector<std::string> Outbox(Engine& e, uint64_t oneid) {
  Json j(e.OutboxJson(0, 1000));
  std::vector<std::string> out;
  for (auto x : Arr(j["intents"]))
    if (U(x["oneid"]) == oneid)
      out.push_back(std::string(x["origin"].get_string().value()) + "/" + std::string(x["step"].get_string().value()));
  return out;
}

uint64_t LifeStat(Engine& e, const char* key) {
  Json j(e.StatsJson());
  return U(j["lifecycle"][key]);
}

}  // namespace

TEST_CASE("consent: records state it per channel; a bad statement makes the line malformed, the batch goes on") {
  auto e = OpenEngine(R"({"profile":{"max_attrs_per_record":3}})");
  const std::vector<std::string> lines = {
      Say("crm", kMar1, kA, R"({"sms":false,"wechat_template":true,"email":null})"),  // 1 ok
      Say("crm", kMar1, kB, R"("no")"),                                                // 2 not an object
      Say("crm", kMar1, kB, R"({"email":true,"sms":"no"})"),                           // 3 a string
      Say("crm", kMar1, kB, R"({"sms":1})"),                                           // 4 a number
      Say("crm", kMar1, kB, R"({"s m s":true})"),                                      // 5 a bad channel name
      Say("crm", kMar1, kB, R"({"sms":true,"sms":false})"),                            // 6 a channel twice
      Say("crm", kMar1, kB, R"({"sms":null,"sms":false})"),                            // 7 twice, once unstated
      Say("crm", kMar1, kB, R"({"sms":true},"consent":{"sms":false})"),                // 8 consent twice
      Say("crm", kMar1, kB, R"({"a":true,"b":true,"c":null,"d":false})"),              // 9 over the limit
      Say("crm", kMar1, kC, R"(null,"attrs":{"city":"上海"})"),                        // 10 ok: null states nothing
  };
  const std::string report = Ingest(*e, Join(lines));
  Json j(report);
  CHECK(U(j["accepted"]) == 2);
  CHECK(U(j["rejected"]) == 8);
  const auto errs = Errors(report);
  REQUIRE(errs.size() == 8);
  const std::vector<std::pair<uint64_t, std::string>> want = {
      {2, "consent"},     {3, "consent.sms"}, {4, "consent.sms"}, {5, "consent.s m s"},
      {6, "consent.sms"}, {7, "consent.sms"}, {8, "consent"},     {9, "consent.d"}};
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(errs[i].line == want[i].first);
    CHECK(errs[i].field == want[i].second);
  }
  // The column is the value's (1-based bytes).
  CHECK(errs[1].column == lines[2].find(R"("no")") + 1);
  CHECK(errs[1].message == "expected true (granted), false (withdrawn) or null");
  CHECK(errs[3].message.find("channel names are 1-64") != std::string::npos);
  CHECK(errs[4].message.find("twice") != std::string::npos);
  CHECK(errs[5].message.find("twice") != std::string::npos);
  CHECK(errs[6].message.find("twice") != std::string::npos);
  CHECK(errs[7].message == "more than 3 channels");
  // The malformed lines left nothing; the good ones landed with their statements, shown
  // apart from the attributes.
  CHECK(IdOf(*e, kB) == 0);
  const uint64_t a = IdOf(*e, kA), c = IdOf(*e, kC);
  REQUIRE(a != 0);
  REQUIRE(c != 0);
  CHECK(ConsentDoc(*e, a) == R"({"sms":{"granted":false,"source":"crm","ts":1709222400000},)"
                             R"("wechat_template":{"granted":true,"source":"crm","ts":1709222400000}})");
  Json pa(*e->PersonJson(a, true));
  CHECK(std::string(simdjson::minify(pa["attributes"])) == "{}");
  CHECK(ConsentDoc(*e, c) == "{}");
  CHECK(Eval(*e, a, R"([consent("sms"), consent("wechat_template"), consent("email")])") == "[false,true,true]");
  // One record: the error names the field.
  auto one = e->IngestRecord(Say("crm", kMar1, kB, R"({"sms":"no"})"));
  REQUIRE_FALSE(one.ok());
  CHECK(std::string(one.status().message()).find("consent.sms") != std::string::npos);
}

TEST_CASE("consent: the latest statement by record time wins, whatever order records arrive in") {
  // Withdrawn at +2d (crm), granted at +1d (app), unstated at +3d (pos), email granted.
  const std::string w2 = Say("crm", kMar1 + 2 * kDay, kA, R"({"sms":false})");
  const std::string g1 = Say("app", kMar1 + kDay, kA, R"({"sms":true,"email":true})");
  const std::string n3 = Say("pos", kMar1 + 3 * kDay, kA, R"({"sms":null})");
  const std::vector<std::vector<std::string>> orders = {
      {Join({w2}), Join({g1, n3})}, {Join({n3, g1}), Join({w2})}, {Join({g1}), Join({n3}), Join({w2})},
      {Join({w2, g1, n3})}};
  for (const auto& batches : orders) {
    auto e = OpenEngine();
    for (const std::string& b : batches) Ingest(*e, b);
    const uint64_t a = IdOf(*e, kA);
    const std::string doc = ConsentDoc(*e, a);
    CHECK(doc == R"({"email":{"granted":true,"source":"app","ts":1709308800000},)"
                 R"("sms":{"granted":false,"source":"crm","ts":1709395200000}})");
    CHECK(Eval(*e, a, R"(consent("sms"))") == "false");

    // A later grant wins; a withdrawal dated before it, arriving after it, does not.
    Ingest(*e, Say("app", kMar1 + 5 * kDay, kA, R"({"sms":true})"));
    Ingest(*e, Say("crm", kMar1 + 4 * kDay, kA, R"({"sms":false})"));
    CHECK(Eval(*e, a, R"(consent("sms"))") == "true");
  }

  // Two statements of one source at the same instant: the withdrawal wins, either way round.
  for (bool grant_first : {true, false}) {
    auto e = OpenEngine();
    const std::string g = Say("crm", kMar1, kA, R"({"sms":true})"), w = Say("crm", kMar1, kA, R"({"sms":false})");
    Ingest(*e, grant_first ? g : w);
    Ingest(*e, grant_first ? w : g);
    CHECK(Eval(*e, IdOf(*e, kA), R"(consent("sms"))") == "false");
  }
}

TEST_CASE("consent: a merge keeps the latest statement of either person; a split gives each side its own") {
  auto e = OpenEngine();
  Ingest(*e, Join({Say("crm", kMar1 + 2 * kDay, kA, R"({"sms":false})"),
                   Say("crm", kMar1 + kDay, kA, R"({"email":true})"),
                   Say("app", kMar1 + 3 * kDay, kB, R"({"sms":true})"),
                   Say("app", kMar1 + 4 * kDay, kB, R"({"email":false})")}));
  const uint64_t a = IdOf(*e, kA), b = IdOf(*e, kB);
  REQUIRE(a != b);
  const std::string a_alone = ConsentDoc(*e, a), b_alone = ConsentDoc(*e, b);
  CHECK(Eval(*e, a, R"([consent("sms"), consent("email")])") == "[false,true]");
  CHECK(Eval(*e, b, R"([consent("sms"), consent("email")])") == "[true,false]");

  // A record joining them (stating nothing): B's statements are the later ones.
  Ingest(*e, Rec("pos", kMar1 + 5 * kDay, std::string(kA) + "," + kB));
  const uint64_t m = IdOf(*e, kA);
  REQUIRE(IdOf(*e, kB) == m);
  CHECK(Eval(*e, m, R"([consent("sms"), consent("email")])") == "[true,false]");
  CHECK(ConsentDoc(*e, m) == R"({"email":{"granted":false,"source":"app","ts":1709568000000},)"
                             R"("sms":{"granted":true,"source":"app","ts":1709481600000}})");

  // Split off the member number: each side has its own statements again.
  auto r = e->Split(m, R"(["member_no:M-2"])");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  const uint64_t a2 = IdOf(*e, kA), b2 = IdOf(*e, kB);
  REQUIRE(a2 != b2);
  CHECK(ConsentDoc(*e, a2) == a_alone);
  CHECK(ConsentDoc(*e, b2) == b_alone);
}

TEST_CASE("consent: privacy.consent sets the defaults; consent() in tags follows new statements") {
  auto e = OpenEngine(R"({"privacy":{"consent":{"default":"denied","channels":{"sms":"granted"}}}})");
  auto t = e->DefineTags(R"J([{"name":"sms_ok","kind":"rule","when":"consent(\"sms\")"},
                             {"name":"email_ok","kind":"rule","when":"consent(\"email\")"}])J");
  REQUIRE_MESSAGE(t.ok(), std::string(t.status().message()));
  Ingest(*e, Join({Event(kMar1, kA, "visit"), Event(kMar1, kC, "visit")}));
  const uint64_t a = IdOf(*e, kA), c = IdOf(*e, kC);
  auto tag = [&](uint64_t who, const char* name) {
    Json j(*e->PersonTags(who));
    return std::string(simdjson::minify(j["tags"][name]["value"]));
  };
  // No statements: the channel's default, else the default.
  CHECK(tag(a, "sms_ok") == "true");
  CHECK(tag(a, "email_ok") == "false");
  CHECK(Eval(*e, a, R"(consent("wecom"))") == "false");
  // A's statements reach the tags that read them, and audiences.
  Ingest(*e, Say("crm", kMar1 + kDay, kA, R"({"sms":false,"email":true})"));
  CHECK(tag(a, "sms_ok") == "false");
  CHECK(tag(a, "email_ok") == "true");
  CHECK(tag(c, "sms_ok") == "true");
  CHECK(tag(c, "email_ok") == "false");
  auto count = [&](std::string_view expr) {
    std::string req = "{\"expr\":\"" + std::string(expr) + "\"}";
    auto r = e->Audience("count", req);
    REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
    Json j(*r);
    return U(j["count"]);
  };
  CHECK(count(R"(consent(\"email\"))") == 1);
  CHECK(count(R"(tags.sms_ok)") == 1);
}

TEST_CASE("consent: privacy.consent is checked with positioned errors and merges into the default") {
  auto cfg = cdp::ParseConfig(R"({"privacy":{"consent":{"channels":{"sms":"denied","email":"denied"}}}})");
  REQUIRE(cfg.ok());
  CHECK(cfg->consent.granted);
  CHECK_FALSE(cfg->consent.For("sms"));
  CHECK(cfg->consent.For("wechat_template"));
  cfg = cdp::ParseConfig(R"({"privacy":{"consent":{"default":"denied","channels":{"sms":"granted"}},"tombstones":"consent"}})");
  REQUIRE(cfg.ok());
  CHECK_FALSE(cfg->consent.For("email"));
  CHECK(cfg->consent.For("sms"));
  CHECK(cfg->tombstones == cdp::EngineConfig::Tombstones::kConsent);
  // The built-in default grants everything.
  cfg = cdp::ParseConfig("");
  REQUIRE(cfg.ok());
  CHECK(cfg->consent.granted);
  CHECK(cfg->consent.channels.empty());

  auto error = [](std::string_view json) {
    auto c = cdp::ParseConfig(json);
    REQUIRE_MESSAGE(!c.ok(), json);
    return std::string(c.status().message());
  };
  CHECK(error(R"({"privacy":{"consent":{"default":"maybe"}}})") ==
        R"(config: privacy.consent.default: expected "granted" or "denied")");
  CHECK(error(R"({"privacy":{"consent":{"channels":{"sms":true}}}})").find("privacy.consent.channels.sms:") !=
        std::string::npos);
  CHECK(error(R"({"privacy":{"consent":{"channels":{"s m s":"granted"}}}})") ==
        "config: privacy.consent.channels.s m s: channel names are 1-64 of [A-Za-z0-9_.-]");
  CHECK(error(R"({"privacy":{"consent":{"channel":{}}}})") == "config: privacy.consent.channel: unknown key");
  CHECK(error(R"({"privacy":{"consent":"granted"}})") == "config: privacy.consent: expected an object");
  CHECK(error(R"({"privacy":{"consent":{"channels":[]}}})").find("privacy.consent.channels:") != std::string::npos);
}

TEST_CASE("consent: a journey's intent on a channel without consent is not emitted; the journey goes on") {
  // sms is granted unless withdrawn, email denied unless granted; an intent without a
  // channel is never checked.
  auto e = OpenEngine(R"({"privacy":{"consent":{"default":"denied","channels":{"sms":"granted"}}}})");
  DefineLife(*e, R"({"journeys":[{"name":"promo","entry":{"on":"follow"},"steps":[
      {"id":"hello","action":"hello","channel":"sms"},
      {"id":"t1","wait":"1d"},
      {"id":"again","action":"again","channel":"sms"},
      {"id":"note","action":"note"},
      {"id":"mail","action":"mail","channel":"email"},
      {"id":"t2","wait":"1d"},
      {"id":"last","action":"last","channel":"sms"}]}]})");
  const int64_t t0 = kMar1 + 10 * kHour;
  Ingest(*e, Join({Say("crm", t0 - kHour, kA, R"({"sms":false})"), Event(t0, kA, "follow"), Event(t0, kC, "follow")}));
  const uint64_t a = IdOf(*e, kA), c = IdOf(*e, kC);
  // A withdrew sms: the welcome is not sent, the journey waits as after a sent one.
  CHECK(IntentStatuses(*e, a) == std::vector<std::string>{"hello:no_consent"});
  CHECK(Outbox(*e, a).empty());
  {
    Json life(*e->PersonLifecycle(a));
    auto j = Arr(life["journeys"]).at(0).value();
    CHECK(std::string(j["step"].get_string().value()) == "t1");
    CHECK(j["active"].get_bool().value());
  }
  // A grants sms again: the next sms goes out. Email was never granted: denied by default.
  Ingest(*e, Say("app", t0 + 2 * kHour, kA, R"({"sms":true})"));
  Advance(*e, t0 + kDay);
  CHECK(IntentStatuses(*e, a) ==
        std::vector<std::string>{"hello:no_consent", "again:queued", "note:queued", "mail:no_consent"});
  CHECK(Outbox(*e, a) == std::vector<std::string>{"journey:promo/again", "journey:promo/note"});
  // Withdrawn once more before the last step; the journey completes all the same.
  Ingest(*e, Say("crm", t0 + kDay + kHour, kA, R"({"sms":false})"));
  Advance(*e, t0 + 2 * kDay);
  CHECK(IntentStatuses(*e, a).back() == "last:no_consent");
  CHECK(Outbox(*e, a).size() == 2);
  // C never stated anything: sms by its channel default, email refused by the default.
  CHECK(IntentStatuses(*e, c) == std::vector<std::string>{"hello:queued", "again:queued", "note:queued",
                                                          "mail:no_consent", "last:queued"});
  for (uint64_t who : {a, c}) {
    Json life(*e->PersonLifecycle(who));
    auto j = Arr(life["journeys"]).at(0).value();
    CHECK_FALSE(j["active"].get_bool().value());
    CHECK(std::string(j["last_end"].get_string().value()) == "completed");
  }
  Json cat(e->LifecycleJson());
  auto intents = Arr(cat["journeys"]).at(0)["intents"];
  CHECK(U(intents["no_consent"]) == 4);
  CHECK(U(intents["queued"]) == 6);
  CHECK(LifeStat(*e, "intents_no_consent") == 4);
}

TEST_CASE("consent: a deferred intent is checked again when released") {
  auto e = OpenEngine();
  DefineLife(*e, R"({"journeys":[{"name":"night","entry":{"on":"follow"},"steps":[
                      {"id":"hi","action":"hi","channel":"sms"}]}],
                     "delivery":{"send_window":["09:00","21:00"]}})");
  const int64_t late = kMar1 + 22 * kHour, open = kMar1 + kDay + 9 * kHour;
  Ingest(*e, Join({Say("crm", late - kHour, kA, R"({"sms":false})"), Event(late, kA, "follow"),
                   Event(late, kB, "follow"), Event(late, kC, "follow")}));
  const uint64_t a = IdOf(*e, kA), b = IdOf(*e, kB), c = IdOf(*e, kC);
  // Decided without consent: refused at once, not deferred.
  CHECK(IntentStatuses(*e, a) == std::vector<std::string>{"hi:no_consent"});
  CHECK(IntentStatuses(*e, b) == std::vector<std::string>{"hi:deferred"});
  // B withdraws during the night; C does nothing.
  Ingest(*e, Say("crm", late + kHour, kB, R"({"sms":false})"));
  Advance(*e, open);
  CHECK(IntentStatuses(*e, b) == std::vector<std::string>{"hi:deferred", "hi:no_consent"});
  CHECK(IntentStatuses(*e, c) == std::vector<std::string>{"hi:deferred", "hi:queued"});
  CHECK(Outbox(*e, b).empty());
  CHECK(Outbox(*e, c) == std::vector<std::string>{"journey:night/hi"});
}

TEST_CASE("consent: a machine's action on a channel without consent is not emitted; the transition says so") {
  auto e = OpenEngine();
  DefineLife(*e, R"({"machines":[{"name":"m","states":["new","buyer"],"transitions":[
      {"from":"new","to":"buyer","on":"order","action":"thanks","channel":"sms"}]}]})");
  Ingest(*e, Join({Say("crm", kMar1, kA, R"({"sms":false,"email":true})"), Say("crm", kMar1, kC, R"({"email":false})"),
                   Event(kMar1 + kHour, kA, "order"), Event(kMar1 + kHour, kC, "order")}));
  const uint64_t a = IdOf(*e, kA), c = IdOf(*e, kC);
  CHECK(Outbox(*e, a).empty());
  CHECK(Outbox(*e, c) == std::vector<std::string>{"machine:m/new->buyer"});
  int refused = 0, plain = 0;
  for (const std::string& s : FeedOf(*e, "state_changed")) {
    if (s.find("\"to\":\"buyer\"") == std::string::npos) continue;
    Json j(s);
    const bool says = s.find(R"("intent":"no_consent")") != std::string::npos;
    (U(j["oneid"]) == a ? refused : plain) += says;
    if (U(j["oneid"]) == c) CHECK_FALSE(says);
  }
  CHECK(refused == 1);
  CHECK(plain == 0);
  CHECK(LifeStat(*e, "intents_no_consent") == 1);
  // The person is in the new state all the same.
  CHECK(Eval(*e, a, R"(state.m)") == R"("buyer")");
}

TEST_CASE("consent: statements survive the profile store's snapshot and a reopened engine") {
  const std::string records = Join({Say("crm", kMar1 + 2 * kDay, kA, R"({"sms":false})"),
                                    Say("app", kMar1 + kDay, kA, R"({"sms":true,"email":true})"),
                                    Say("app", kMar1 + 3 * kDay, kB, R"({"sms":true})"),
                                    Rec("pos", kMar1 + 4 * kDay, std::string(kC) + "," + kB),
                                    Say("crm", kMar1 + 5 * kDay, kC, R"({"wecom":false})")});
  SUBCASE("the store's Save and Load") {
    auto e = OpenEngine();
    Ingest(*e, records);
    const cdp::ProfileStore& a = e->profiles();
    cdp::snap::Writer w;
    a.Save(w);
    cdp::ProfileStore b(e->config(), e->graph(), a.sources());
    cdp::snap::Reader r(w.bytes());
    REQUIRE(b.Load(r).ok());
    REQUIRE(r.done());
    for (std::string_view ids : {kA, kB, kC}) {
      const uint64_t id = IdOf(*e, ids);
      const cdp::Profile* pa = a.Find(id);
      const cdp::Profile* pb = b.Find(id);
      REQUIRE(pa != nullptr);
      REQUIRE(pb != nullptr);
      CHECK(a.Canonical(*pa) == b.Canonical(*pb));
      for (std::string_view ch : {"sms", "email", "wecom", "never"}) {
        CAPTURE(ch);
        CHECK(a.Consented(pa, ch) == b.Consented(pb, ch));
      }
    }
    const uint64_t cb = IdOf(*e, kC);
    CHECK(b.Consented(b.Find(cb), "sms"));
    CHECK_FALSE(b.Consented(b.Find(cb), "wecom"));
    CHECK_FALSE(b.Consented(b.Find(IdOf(*e, kA)), "sms"));
  }
  SUBCASE("an engine snapshotted and reopened, then going on") {
    TempDir dir;
    const std::string journey =
        R"({"journeys":[{"name":"j","entry":{"on":"follow"},"steps":[{"id":"hi","action":"hi","channel":"sms"}]}]})";
    std::string docs;
    {
      auto e = OpenAt(dir.path);
      DefineLife(*e, journey);
      Ingest(*e, records);
      REQUIRE(e->Snapshot().ok());
      for (std::string_view ids : {kA, kC}) docs += ConsentDoc(*e, IdOf(*e, ids));
    }
    auto e = OpenAt(dir.path);
    std::string again;
    for (std::string_view ids : {kA, kC}) again += ConsentDoc(*e, IdOf(*e, ids));
    CHECK(again == docs);
    CHECK(docs.find(R"("wecom":{"granted":false)") != std::string::npos);
    Ingest(*e, Join({Event(kMar1 + 6 * kDay, kA, "follow"), Event(kMar1 + 6 * kDay, kC, "follow")}));
    CHECK(IntentStatuses(*e, IdOf(*e, kA)) == std::vector<std::string>{"hi:no_consent"});
    CHECK(IntentStatuses(*e, IdOf(*e, kC)) == std::vector<std::string>{"hi:queued"});
  }
}

TEST_CASE("consent: the access export lists the statements; a forgotten person's go with them") {
  auto e = OpenEngine();
  auto never = OpenEngine();
  // Only C ever withdraws anything, so the stored "withdrawn" is C's alone.
  const std::string others = Join({Say("crm", kMar1, kA, R"({"sms":true})"), Say("app", kMar1, kB, R"({"email":true})")});
  Ingest(*e, others);
  Ingest(*never, others);
  Ingest(*e, Say("crm", kMar1 + kDay, kC, R"({"sms":false,"wecom":false})"));
  const uint64_t c = IdOf(*e, kC);

  Json ex(*e->ExportPerson(c));
  CHECK(std::string(simdjson::minify(ex["person"]["consent"])) ==
        R"({"sms":{"granted":false,"source":"crm","ts":1709308800000},"wecom":{"granted":false,"source":"crm","ts":1709308800000}})");
  std::vector<std::string> observed;
  for (auto o : Arr(ex["observations"]))
    observed.push_back(std::string(o["attribute"].get_string().value()) + "=" + std::string(simdjson::minify(o["value"])));
  CHECK(observed == std::vector<std::string>{R"(consent:sms="withdrawn")", R"(consent:wecom="withdrawn")"});

  auto saved = [](const cdp::ProfileStore& s) {
    cdp::snap::Writer w;
    s.Save(w);
    return w.bytes();
  };
  CHECK(saved(e->profiles()).find("withdrawn") != std::string::npos);
  auto f = e->Forget("{\"oneids\":[" + std::to_string(c) + "]}");
  REQUIRE_MESSAGE(f.ok(), std::string(f.status().message()));
  CHECK(e->PersonJson(c, true).status().code() == absl::StatusCode::kNotFound);
  // Nothing of C's statements is left in the store: its values are gone from the bytes
  // (the channel names stay, as names do), and the others read as in an engine that never
  // saw C.
  CHECK(saved(e->profiles()).find("withdrawn") == std::string::npos);
  for (std::string_view ids : {kA, kB}) CHECK(ConsentDoc(*e, IdOf(*e, ids)) == ConsentDoc(*never, IdOf(*never, ids)));
  CHECK(e->profiles().counts().attributes == never->profiles().counts().attributes);
}
