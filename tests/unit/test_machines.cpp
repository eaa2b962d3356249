// Lifecycle machines: events, every timer kind across Asia/Shanghai midnights and month
// ends, conditions, monotonic ladders (events, imports, manual sets), per-period resets,
// actions into the outbox, merges of persons in different states, definition errors, and
// a persistent engine reopened with pending deadlines.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "helpers.hpp"

using namespace cdptest;
using cdp::Engine;

namespace {


std::string Mobile(int i) { return "\"mobile\":\"139" + std::to_string(10000000 + i) + "\""; }

std::string Ev(int person, int64_t ts, std::string_view type, std::string_view extra = "") {
  std::string ev = "\"event\":{\"type\":\"" + std::string(type) + "\"}";
  if (!extra.empty()) ev += "," + std::string(extra);
  return Rec("shop", ts, Mobile(person), ev);
}

void Define(Engine& e, const std::string& json) {
  auto r = e.DefineLifecycle(json);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

uint64_t Id(Engine& e, int person) { return Resolve(e, "mobile", "139" + std::to_string(10000000 + person)); }

std::string StateOf(Engine& e, int person, const char* machine) {
  uint64_t id = Id(e, person);
  REQUIRE(id != 0);
  auto r = e.PersonLifecycle(id);
  REQUIRE(r.ok());
  Json j(*r);
  std::string_view s;
  if (j["states"][machine]["state"].get(s)) return "none";
  return std::string(s);
}

void Advance(Engine& e, int64_t now) {
  auto r = e.Advance(now);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

std::string Error(Engine& e, const std::string& json) {
  auto r = e.DefineLifecycle(json);
  REQUIRE(!r.ok());
  return std::string(r.status().message());
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

const char* kActivity = R"J({"machines":[{"name":"activity","states":["new","active","dormant","churned"],
  "initial":"new","transitions":[
   {"from":"new","to":"active","on":"order"},
   {"from":"active","restart":true,"on":"order"},
   {"from":"active","to":"dormant","after":"30d"},
   {"from":"dormant","to":"churned","after":"60d"},
   {"from":["dormant","churned"],"to":"active","on":"order","action":"welcome_back","payload":{"who":"{{attrs.name}}","n":"{{count(order)}}"}}]}]})J";

}  // namespace

TEST_CASE("machines: events move persons; an after timer fires at its instant, not a millisecond before") {
  auto e = OpenEngine();
  Define(*e, kActivity);
  Ingest(*e, Join({Ev(1, kMar1 + 10 * kHour, "visit"), Ev(2, kMar1 + 11 * kHour, "order")}));
  CHECK(StateOf(*e, 1, "activity") == "new");
  CHECK(StateOf(*e, 2, "activity") == "active");
  const int64_t due = kMar1 + 11 * kHour + 30 * kDay;
  Advance(*e, due - 1);
  CHECK(StateOf(*e, 2, "activity") == "active");
  auto r = e->Advance(due);
  REQUIRE(r.ok());
  CHECK(StateOf(*e, 2, "activity") == "dormant");
  Json j(*r);
  CHECK(U(j["lifecycle"]["fired"]) == 1);
  CHECK(j["lifecycle"]["next"].get_int64().value() == due + 60 * kDay);
  // The transition is in the feed and the history with its reason.
  auto feed = FeedOf(*e, "state_changed");
  REQUIRE(feed.size() >= 3);
  CHECK(feed.back().find("\"reason\":\"timer\"") != std::string::npos);
  CHECK(feed.back().find("\"transition\":\"transitions[2]\"") != std::string::npos);
  auto person = e->PersonLifecycle(Id(*e, 2));
  Json pj(*person);
  auto hist = Arr(pj["history"]);
  REQUIRE(hist.size() == 3);  // initial, order, timer
  CHECK(hist.at(1)["event"].get_string().value() == "order");
  CHECK(hist.at(2)["to"].get_string().value() == "dormant");
}

TEST_CASE("machines: a restart on an event moves the deadline; an event after a missed deadline sees the timer first") {
  auto e = OpenEngine();
  Define(*e, kActivity);
  Ingest(*e, Ev(1, kMar1, "order"));
  Ingest(*e, Ev(1, kMar1 + 20 * kDay, "order"));  // restarts the 30 days
  Advance(*e, kMar1 + 30 * kDay);
  CHECK(StateOf(*e, 1, "activity") == "active");
  Advance(*e, kMar1 + 50 * kDay);
  CHECK(StateOf(*e, 1, "activity") == "dormant");
  // The churn deadline (day 110) has passed when an order of day 120 arrives without an
  // advance in between: the timer fires first, then the order recalls the person from churned.
  Ingest(*e, Ev(1, kMar1 + 120 * kDay, "order"));
  CHECK(StateOf(*e, 1, "activity") == "active");
  auto feed = FeedOf(*e, "state_changed");
  REQUIRE(feed.size() >= 2);
  CHECK(feed[feed.size() - 2].find("\"to\":\"churned\"") != std::string::npos);
  CHECK(feed.back().find("\"from\":\"churned\"") != std::string::npos);
  // The recall's action reached the outbox with its rendered payload.
  Json out(e->OutboxJson(0, 10));
  auto intents = Arr(out["intents"]);
  REQUIRE(intents.size() == 1);
  CHECK(intents.at(0)["action"].get_string().value() == "welcome_back");
  CHECK(intents.at(0)["payload"]["n"].get_int64().value() == 3);
  CHECK(intents.at(0)["payload"]["who"].is_null());
}

TEST_CASE("machines: at a local time, on the Nth day, and at period ends across Shanghai midnight and month end") {
  auto e = OpenEngine();
  Define(*e, R"J({"machines":[{"name":"t","states":["a","b","c","d","e"],"initial":"a","transitions":[
     {"from":"a","to":"b","at":"09:30"},
     {"from":"b","to":"c","at":"00:00","days":2},
     {"from":"c","to":"d","at":"month_end"},
     {"from":"d","to":"e","at":"year_end"}]}]})J");
  // Entered at 2024-03-30 23:59:59.999 local (a ms before midnight): the next 09:30 is on the 31st.
  const int64_t t0 = kMar1 + 30 * kDay - 1;
  Ingest(*e, Ev(1, t0, "visit"));
  const int64_t b_at = kMar1 + 30 * kDay + 9 * kHour + 30 * 60000;
  Advance(*e, b_at - 1);
  CHECK(StateOf(*e, 1, "t") == "a");
  Advance(*e, b_at);
  CHECK(StateOf(*e, 1, "t") == "b");
  // Two local days after 2024-03-31 at 00:00: 2024-04-02T00:00+08:00.
  const int64_t c_at = kMar1 + 32 * kDay;
  Advance(*e, c_at - 1);
  CHECK(StateOf(*e, 1, "t") == "b");
  Advance(*e, c_at);
  CHECK(StateOf(*e, 1, "t") == "c");
  // Month end: the first instant of May, local.
  const int64_t may1 = kMar1 + 61 * kDay;
  Advance(*e, may1 - 1);
  CHECK(StateOf(*e, 1, "t") == "c");
  Advance(*e, may1);
  CHECK(StateOf(*e, 1, "t") == "d");
  const int64_t y2025 = 1735660800000;  // 2025-01-01T00:00:00+08:00
  auto r = e->Advance(y2025 - 1);
  REQUIRE(r.ok());
  CHECK(Json(*r)["lifecycle"]["next"].get_int64().value() == y2025);
  Advance(*e, y2025);
  CHECK(StateOf(*e, 1, "t") == "e");
}

TEST_CASE("machines: guards are evaluated at the deadline; a false guard waits for the state's next timer") {
  auto e = OpenEngine();
  Define(*e, R"J({"machines":[{"name":"g","states":["s","vip","plain"],"initial":"s","transitions":[
     {"from":"s","to":"vip","after":"1d","when":"count(order, 7d) >= 2"},
     {"from":"s","to":"plain","after":"3d"}]}]})J");
  Ingest(*e, Join({Ev(1, kMar1, "order"), Ev(1, kMar1 + kHour, "order"), Ev(2, kMar1, "order")}));
  Advance(*e, kMar1 + kDay);
  CHECK(StateOf(*e, 1, "g") == "vip");
  CHECK(StateOf(*e, 2, "g") == "s");
  Advance(*e, kMar1 + 3 * kDay);
  CHECK(StateOf(*e, 2, "g") == "plain");
}

TEST_CASE("machines: a monotonic ladder never moves back, by event, import or manual set") {
  auto e = OpenEngine();
  Define(*e, R"J({"machines":[{"name":"aipl","monotonic":true,"import":"stage",
     "states":["aware","interest","purchase","loyal"],"initial":"aware","transitions":[
     {"from":"*","to":"interest","on":"follow"},
     {"from":"*","to":"purchase","on":"order"}]}]})J");
  Ingest(*e, Ev(1, kMar1, "order"));
  CHECK(StateOf(*e, 1, "aipl") == "purchase");
  Ingest(*e, Ev(1, kMar1 + kHour, "follow"));  // "*" -> interest would go back: refused
  CHECK(StateOf(*e, 1, "aipl") == "purchase");
  Ingest(*e, Rec("crm", kMar1 + 2 * kHour, Mobile(1), "\"attrs\":{\"stage\":\"interest\"}"));
  CHECK(StateOf(*e, 1, "aipl") == "purchase");
  Ingest(*e, Rec("crm", kMar1 + 3 * kHour, Mobile(1), "\"attrs\":{\"stage\":\"loyal\"}"));
  CHECK(StateOf(*e, 1, "aipl") == "loyal");
  auto r = e->LifecycleApply(R"({"op":"set_state","machine":"aipl","state":"aware","type":"mobile","value":"13910000001"})");
  REQUIRE(!r.ok());
  CHECK(std::string(r.status().message()).find("monotonic: loyal -> aware moves backwards") != std::string::npos);
  Json cat(e->LifecycleJson());
  CHECK(U(cat["machines"].at(0)["refused_backward"]) == 2);
  // A ladder defined backwards is refused with the transition's path.
  auto err = Error(*e, R"J({"machines":[{"name":"m","monotonic":true,"states":["a","b"],"initial":"a",
     "transitions":[{"from":"b","to":"a","on":"x"}]}]})J");
  CHECK(err == "machines[0] (m).transitions[0].to: m is monotonic: b -> a moves backwards");
}

TEST_CASE("machines: manual set and tags reading state.*") {
  auto e = OpenEngine();
  Define(*e, kActivity);
  REQUIRE(e->DefineTags(R"([{"name":"engaged","kind":"rule","when":"state.activity == \"active\""}])").ok());
  Ingest(*e, Ev(1, kMar1, "visit"));
  uint64_t id = Id(*e, 1);
  auto tag = [&] { Json j(*e->PersonTags(id)); simdjson::dom::element v; return !j["tags"]["engaged"]["value"].get(v) && v.get_bool().value(); };
  CHECK(!tag());
  auto r = e->LifecycleApply("{\"op\":\"set_state\",\"machine\":\"activity\",\"state\":\"active\",\"oneid\":" +
                             std::to_string(id) + "}");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  CHECK(Json(*r)["changed"].get_bool().value());
  CHECK(tag());
  // The timer of the state entered by hand runs from the manual set.
  Advance(*e, kMar1 + 30 * kDay);
  CHECK(StateOf(*e, 1, "activity") == "dormant");
  CHECK(!tag());
  auto count = e->Audience("count", R"({"expr":"state.activity == \"dormant\""})");
  REQUIRE(count.ok());
  CHECK(U(Json(*count)["count"]) == 1);
}

TEST_CASE("machines: FAST+ layers from conditions, placed again at each month's start") {
  auto e = OpenEngine();
  std::string defs = ReadFile(std::string(CDP_SOURCE_DIR) + "/examples/data/machines.json");
  Define(*e, defs);
  Ingest(*e, Join({Ev(1, kMar1 + kHour, "follow"), Ev(2, kMar1 + kHour, "member_join"),
                   Ev(3, kMar1 + kHour, "order"), Ev(4, kMar1 + kHour, "order"), Ev(4, kMar1 + 3 * kDay, "purchase")}));
  CHECK(StateOf(*e, 1, "fast") == "private_domain");
  CHECK(StateOf(*e, 2, "fast") == "member");
  CHECK(StateOf(*e, 3, "fast") == "purchased");
  CHECK(StateOf(*e, 4, "fast") == "repurchase");
  CHECK(StateOf(*e, 1, "aipl") == "interest");
  CHECK(StateOf(*e, 4, "aipl") == "purchase");  // two buys: loyal needs three in 365 days
  // April: buying days are counted again from zero.
  const int64_t apr1 = kMar1 + 31 * kDay;
  Advance(*e, apr1);
  CHECK(StateOf(*e, 3, "fast") == "outside");
  CHECK(StateOf(*e, 4, "fast") == "outside");
  CHECK(StateOf(*e, 2, "fast") == "member");
  // FAST+ metrics read the layers from the machine's history: March as it ended.
  auto m = e->Metrics(R"({"metric":"fast","machine":"fast","period":{"from":"2024-03-01","to":"2024-03-31"}})");
  REQUIRE_MESSAGE(m.ok(), std::string(m.status().message()));
  Json mj(*m);
  CHECK(U(mj["capital"]) == 4);
  CHECK(U(mj["previous_capital"]) == 0);
  CHECK(U(mj["conversion"]["deepened"]) == 4);
  auto layers = Arr(mj["layers"]);
  REQUIRE(layers.size() == 5);  // the states after "outside"
  CHECK(layers.at(0)["name"].get_string().value() == "private_domain");
  CHECK(U(layers.at(3)["persons"]) == 1);  // repurchase
  CHECK(!e->Metrics(R"({"metric":"fast","machine":"nope","period":{"from":"2024-03-01","to":"2024-03-31"}})").ok());
  Ingest(*e, Ev(4, apr1 + kDay, "order"));
  CHECK(StateOf(*e, 4, "fast") == "purchased");
  CHECK(StateOf(*e, 4, "aipl") == "loyal");
  // The loyal transition's action carries its rendered payload.
  Json out(e->OutboxJson(0, 10));
  auto intents = Arr(out["intents"]);
  REQUIRE(intents.size() == 1);
  CHECK(intents.at(0)["action"].get_string().value() == "loyal_welcome");
  CHECK(intents.at(0)["payload"]["orders"].get_int64().value() == 3);
}

TEST_CASE("machines: merging persons in different states") {
  auto e = OpenEngine();
  Define(*e, R"J({"machines":[
    {"name":"ladder","monotonic":true,"states":["a","b","c"],"initial":"a","transitions":[
      {"from":"a","to":"b","on":"x"},{"from":"b","to":"c","on":"y"}]},
    {"name":"mood","states":["calm","busy"],"initial":"calm","transitions":[
      {"from":"calm","to":"busy","on":"y"},{"from":"busy","to":"calm","on":"x"}]}]})J");
  // Person A (mobile 1) climbs to c; person B (email) later reaches b and is busy->calm recently.
  Ingest(*e, Join({Rec("s", kMar1, Mobile(1), R"("event":{"type":"x"})"),
                   Rec("s", kMar1 + kHour, Mobile(1), R"("event":{"type":"y"})"),
                   Rec("s", kMar1 + 2 * kHour, R"("email":"b@x.com")", R"("event":{"type":"x"})")}));
  uint64_t a = Id(*e, 1);
  uint64_t b = Resolve(*e, "email", "b@x.com");
  REQUIRE(a != b);
  // A is busy (entered at +1h); B is calm... B never left calm (x from calm does nothing).
  Ingest(*e, Rec("s", kMar1 + 3 * kHour, Mobile(1) + R"(,"email":"b@x.com")"));
  uint64_t m = Id(*e, 1);
  REQUIRE(Resolve(*e, "email", "b@x.com") == m);
  CHECK(StateOf(*e, 1, "ladder") == "c");  // the furthest stage
  Json cat(e->LifecycleJson());
  CHECK(U(cat["machines"].at(0)["persons"]["c"]) == 1);
  CHECK(U(cat["machines"].at(0)["persons"]["b"]) == 0);
  CHECK(U(cat["machines"].at(0)["persons"]["a"]) == 0);
  // Non-monotonic: the state entered last wins (B's calm was entered at +2h, A's busy at +1h).
  CHECK(StateOf(*e, 1, "mood") == "calm");
  auto merged = FeedOf(*e, "state_changed");
  CHECK(merged.back().find("\"reason\":\"merge\"") != std::string::npos);
}

TEST_CASE("machines: definition errors name the path") {
  auto e = OpenEngine();
  CHECK(Error(*e, R"({"machines":[{"name":"m","states":["a"],"transitions":[{"from":"a","to":"b","on":"x"}]}]})") ==
        "machines[0] (m).transitions[0].to: unknown state \"b\"");
  CHECK(Error(*e, R"({"machines":[{"name":"m","states":["a","b"],"transitions":[{"from":"a","to":"b","after":"soon"}]}]})")
            .find("machines[0] (m).transitions[0].after: expected a duration") == 0);
  CHECK(Error(*e, R"({"machines":[{"name":"m","states":["a","b"],"transitions":[{"from":"a","to":"b","when":"count(order,"}]}]})")
            .find("machines[0] (m).transitions[0].when: line 1, column") == 0);
  CHECK(Error(*e, R"({"machines":[{"name":"m","states":["a","b"],"transitions":[{"from":"a","to":"b"}]}]})") ==
        "machines[0] (m).transitions[0]: needs a trigger: \"on\" (events), \"after\", \"at\", or a \"when\" condition");
  CHECK(Error(*e, R"({"machines":[{"name":"m","states":["a"],"transitions":[],"colour":1}]})") ==
        "machines[0].colour: unknown key");
  CHECK(Error(*e, R"({"machine":[]})").find("machine: unknown section") == 0);
  CHECK(Error(*e, "{\"machines\":[}").find("lifecycle definitions: line 1, column 14") == 0);
  // Timers under a minute: two states timing out into each other would make an Advance's
  // work grow with the milliseconds it covers, and 0 would never let it return.
  for (const char* after : {"0", "1", "59999", "\"59s\""}) {
    CAPTURE(after);
    CHECK(Error(*e, std::string(R"({"machines":[{"name":"m","states":["a","b"],"transitions":[{"from":"a","to":"b","on":"x"},)"
                                R"({"from":"b","to":"a","after":)") + after + "}]}]}") ==
          "machines[0] (m).transitions[1].after: at least a minute (\"1m\"); to move at once, use a \"when\" condition");
  }
  // Nothing was installed by the refused documents.
  Json cat(e->LifecycleJson());
  CHECK(Arr(cat["machines"]).size() == 0);
}

TEST_CASE("machines: timers of a minute are accepted and fire to the millisecond") {
  auto e = OpenEngine();
  Define(*e, R"({"machines":[{"name":"m","states":["a","b"],"transitions":[{"from":"a","to":"b","after":"1m"},)"
             R"({"from":"b","to":"a","after":60000}]}]})");
  Ingest(*e, Ev(1, kMar1, "visit"));
  Advance(*e, kMar1 + 60000 - 1);
  CHECK(StateOf(*e, 1, "m") == "a");
  Advance(*e, kMar1 + 60000);
  CHECK(StateOf(*e, 1, "m") == "b");
  Advance(*e, kMar1 + 5 * 60000);
  CHECK(StateOf(*e, 1, "m") == "b");  // a, b, a, b, a, b
}

namespace {

// A cycle of one-minute timers for persons who saw "blink", beside the activity machine:
// the cycle fires 1440 times a day, past what one Advance fires for a person.
const std::string kBlink = R"J({"machines":[{"name":"blink","states":["on","off"],"start":"blink","transitions":[
   {"from":"on","to":"off","after":"1m"},{"from":"off","to":"on","after":"1m"}]},
  {"name":"activity","states":["new","active","dormant"],"transitions":[
   {"from":"new","to":"active","on":"order"},{"from":"active","to":"dormant","after":"1d"}]}]})J";

// A person's state_changed events in feed order, without the feed's sequence numbers.
std::vector<std::string> Transitions(Engine& e, uint64_t oneid) {
  std::vector<std::string> out;
  for (const std::string& ev : FeedOf(e, "state_changed")) {
    Json j(ev);
    if (U(j["oneid"]) != oneid) continue;
    out.push_back(ev.substr(ev.find(",\"kind\"")));
  }
  return out;
}

int64_t LifeNext(const std::string& report) {
  Json j(report);
  return j["lifecycle"]["next"].get_int64().value();
}

}  // namespace

TEST_CASE("machines: an Advance fires at most 1000 timers of a person; the rest wait for the next call") {
  auto e = OpenEngine();
  Define(*e, kBlink);
  Ingest(*e, Join({Ev(1, kMar1, "blink"), Ev(1, kMar1, "order"), Ev(2, kMar1, "order")}));
  const uint64_t p1 = Id(*e, 1), p2 = Id(*e, 2);
  const int64_t now = kMar1 + 2 * kDay;  // 2880 blink deadlines and the activity one for person 1

  auto r = e->Advance(now);
  REQUIRE(r.ok());
  Json j(*r);
  CHECK(U(j["lifecycle"]["fired"]) == 1000 + 1);  // person 1's cap, and person 2's deadline
  CHECK(U(j["lifecycle"]["capped"]) == 1);
  // Person 1 stopped at the instant of the 1000th (16h40m in): the day's deadline waits.
  const int64_t stop = kMar1 + 1000 * 60000;
  CHECK(LifeNext(*r) == stop + 60000);
  CHECK(LifeNext(*r) <= now);
  CHECK(StateOf(*e, 1, "activity") == "active");
  CHECK(StateOf(*e, 2, "activity") == "dormant");
  Json life(*e->PersonLifecycle(p1));
  CHECK(life["states"]["blink"]["since"].get_int64().value() == stop);
  CHECK(Transitions(*e, p2).size() == 3);  // entered, active, dormant

  // The next calls at the same clock go on from there, 1000 at a time, in order.
  r = e->Advance(now);
  REQUIRE(r.ok());
  CHECK(U(Json(*r)["lifecycle"]["fired"]) == 1000);
  CHECK(U(Json(*r)["lifecycle"]["capped"]) == 1);
  r = e->Advance(now);
  REQUIRE(r.ok());
  Json last(*r);
  CHECK(U(last["lifecycle"]["fired"]) == 881);
  CHECK(last["lifecycle"]["capped"].error() == simdjson::NO_SUCH_FIELD);  // absent when none stopped
  CHECK(LifeNext(*r) == now + 60000);
  CHECK(StateOf(*e, 1, "activity") == "dormant");
  CHECK(StateOf(*e, 1, "blink") == "on");

  // Nothing was lost or reordered: person 1's transitions are those of an engine advanced
  // every ten hours, which never reaches the cap.
  auto f = OpenEngine();
  Define(*f, kBlink);
  Ingest(*f, Join({Ev(1, kMar1, "blink"), Ev(1, kMar1, "order"), Ev(2, kMar1, "order")}));
  for (int64_t t = kMar1 + 10 * kHour; t < now; t += 10 * kHour) {
    auto s = f->Advance(t);
    REQUIRE(s.ok());
    CHECK(Json(*s)["lifecycle"]["capped"].error() == simdjson::NO_SUCH_FIELD);
  }
  Advance(*f, now);
  CHECK(Transitions(*e, p1).size() == 3 + 2880 + 1);  // entering both machines, the order, then the timers
  CHECK(Transitions(*e, p1) == Transitions(*f, p1));
  CHECK(Transitions(*e, p2) == Transitions(*f, p2));
}

TEST_CASE("machines: a capped Advance is replayed from the log to the same state") {
  TempDir dir;
  std::string before;
  {
    auto e = OpenAt(dir.path);
    Define(*e, kBlink);
    Ingest(*e, Join({Ev(1, kMar1, "blink"), Ev(2, kMar1, "blink")}));
    auto r = e->Advance(kMar1 + kDay);
    REQUIRE(r.ok());
    CHECK(U(Json(*r)["lifecycle"]["capped"]) == 2);
    before = Fingerprint(*e);
  }
  auto e = OpenAt(dir.path);
  CHECK(Fingerprint(*e) == before);
  // And it goes on from where the two persons stopped, as the live engine would have.
  auto r = e->Advance(kMar1 + kDay);
  REQUIRE(r.ok());
  CHECK(U(Json(*r)["lifecycle"]["fired"]) == 2 * 440);
  CHECK(StateOf(*e, 1, "blink") == "on");
}

TEST_CASE("machines: a persistent engine reopened keeps states and pending deadlines") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("cdp_machines_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const int64_t due = kMar1 + 30 * kDay;
  {
    auto e = Engine::Open("", dir.string());
    REQUIRE(e.ok());
    Define(**e, kActivity);
    Ingest(**e, Ev(1, kMar1, "order"));
    Advance(**e, kMar1 + kDay);
  }
  auto e = Engine::Open("", dir.string());
  REQUIRE_MESSAGE(e.ok(), std::string(e.status().message()));
  CHECK(StateOf(**e, 1, "activity") == "active");
  auto r = (*e)->Advance(due);
  REQUIRE(r.ok());
  CHECK(U(Json(*r)["lifecycle"]["fired"]) == 1);
  CHECK(StateOf(**e, 1, "activity") == "dormant");
  e->reset();
  fs::remove_all(dir);
}

TEST_CASE("machines: a guard reads the profile as of its record, not the batch's later records") {
  const char* defs = R"J({"machines":[{"name":"m","states":["s","member_buyer"],"initial":"s","transitions":[
     {"from":"s","to":"member_buyer","on":"order","when":"count(member_join) > 0"}]}]})J";
  // One batch: the order comes before the join, so it is not a member's order. The same
  // records one batch each give the same answer.
  for (bool one_batch : {true, false}) {
    auto e = OpenEngine();
    Define(*e, defs);
    std::vector<std::string> recs = {Ev(1, kMar1, "order"), Ev(1, kMar1 + kHour, "member_join")};
    if (one_batch) {
      Ingest(*e, Join(recs));
    } else {
      for (const auto& r : recs) Ingest(*e, r);
    }
    CHECK(StateOf(*e, 1, "m") == "s");
    Ingest(*e, Ev(1, kMar1 + 2 * kHour, "order"));
    CHECK(StateOf(*e, 1, "m") == "member_buyer");
  }
}
