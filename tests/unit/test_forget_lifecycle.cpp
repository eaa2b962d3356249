// Erasure in the lifecycle (Lifecycle::Forget): over an engine with a machine that emits
// intents and waits on a timer, a loyalty program with operators' reasons and order
// references, and a journey whose intent waits for the send window, one person of three
// (who absorbed a fourth by a merge) is forgotten. Nothing of theirs is left to read, in
// the outbox (acknowledged intents included) or in Save's bytes; their timers never fire;
// the others render as before, and from then on the engine goes on exactly as one that
// never saw the person; a saved and loaded copy goes on as the original. The timers go
// from the heap in place (life::EraseTimers), which leaves a heap of the others.
#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cdp/lifecycle.hpp"
#include "helpers.hpp"
#include "life_internal.hpp"
#include "life_snapshot.hpp"
#include "snapshot.hpp"

using namespace cdptest;

namespace {

constexpr int64_t kT = 1709222400000;  // 2024-03-01T00:00:00+08:00

// A machine whose first move emits an intent with the person's nickname, and whose next
// waits ten days; points by order with references, refunds and a daily cap, growth and
// tiers; a journey entered by an order that greets (the payload names the person and the
// city), waits two days and follows up, and one that nudges a browser at once; sent
// between 09:00 and 21:00 and at most twice a day.
constexpr const char* kDefinitions = R"({
  "machines":[{"name":"stage","states":["new","active","dormant"],"initial":"new","transitions":[
    {"from":"new","to":"active","on":["signup","order"],"action":"thanks","channel":"sms",
     "payload":{"nick":"{{attrs.nickname}}"}},
    {"from":"active","to":"dormant","after":"10d","action":"winback","payload":{"nick":"{{attrs.nickname}}"}}]}],
  "loyalty":{"name":"club",
    "points":{"earn":[{"id":"order_points","on":"order","per_yuan":1,"expires":"365d","max_per_day":5}],
              "refund":{"on":"refund","ref":"order_id"}},
    "growth":{"earn":[{"id":"order_growth","on":"order","per_yuan":1}]},
    "tiers":{"metric":"growth","levels":[{"name":"basic","min":0},{"name":"gold","min":250}]}},
  "journeys":[{"name":"welcome","entry":{"on":"order"},"reentry":"once","steps":[
    {"id":"hello","action":"hello","channel":"sms","payload":{"nick":"{{attrs.nickname}}","city":"{{attrs.city}}"}},
    {"id":"w","wait":"2d"},
    {"id":"again","action":"followup","channel":"sms","payload":{"text":"hi {{attrs.nickname}}"}}]},
   {"name":"nudge","entry":{"on":"browse"},"steps":[{"id":"nudge","action":"nudge","channel":"app"}]}],
  "delivery":{"send_window":["09:00","21:00"],"caps":{"per_day":2}}})";

// The forgotten person's values, found nowhere else, and the value shared with others.
constexpr const char* kUnique[] = {"ZhaoLei-7731", "拉萨",          "ORD-UNIQ-7731", "apology-ZL-7731",
                                   "bonus-ZL-7731", "REF-ZL-7731", "ZL-mail-8842"};
constexpr const char* kShared = "上海";

// When the person was nudged: a time no one else has, kept in the send log of the caps.
constexpr int64_t kNudged = kT + 11 * kHour + 7 * kMin;

std::string Phone(int i) { return "139" + std::to_string(10000000 + i); }
std::string Mobile(int i) { return "\"mobile\":\"" + Phone(i) + "\""; }
constexpr const char* kMail = "\"email\":\"zl7731@example.com\"";

std::string Event(std::string_view ids, int64_t ts, std::string_view type, std::string_view more = "",
                  std::string_view attrs = "") {
  std::string extra = "\"event\":{\"type\":\"" + std::string(type) + "\"" + std::string(more) + "}";
  if (!attrs.empty()) extra += ",\"attrs\":{" + std::string(attrs) + "}";
  return Rec("shop", ts, ids, extra);
}

std::string Attrs(std::string_view nick, std::string_view city) {
  return "\"nickname\":\"" + std::string(nick) + "\",\"city\":\"" + std::string(city) + "\"";
}

std::string Order(std::string_view ids, int64_t ts, int yuan, std::string_view ref) {
  return Event(ids, ts, "order", ",\"amount\":" + std::to_string(yuan) + ",\"order_id\":\"" + std::string(ref) + "\"");
}

void Op(cdp::Engine& e, int person, std::string_view fields) {
  auto r = e.LifecycleApply("{\"type\":\"mobile\",\"value\":\"" + Phone(person) + "\"," + std::string(fields) + "}");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

// Persons 1 and 2 live in 上海 and order in the morning; person 0 (拉萨) signs up, is
// nudged for browsing, has points given and spent by an operator, orders late in the
// evening (the journey's greeting waits for 09:00), and absorbs person 3, known by an
// email, who signed up on their own. Without the person: the same inputs for persons 1
// and 2 alone.
std::unique_ptr<cdp::Engine> Built(bool with_person) {
  auto e = OpenEngine();
  auto def = e->DefineLifecycle(kDefinitions);
  REQUIRE_MESSAGE(def.ok(), std::string(def.status().message()));
  std::vector<std::string> day = {
      Event(Mobile(1), kT + 10 * kHour, "signup", "", Attrs("Wang", kShared)),
      Event(Mobile(2), kT + 10 * kHour + kMin, "signup", "", Attrs("Li", kShared)),
      Order(Mobile(1), kT + 10 * kHour + 30 * kMin, 120, "O-1"),
      Order(Mobile(2), kT + 10 * kHour + 45 * kMin, 300, "O-2"),
  };
  if (with_person) {
    day.push_back(Event(Mobile(0), kT + 11 * kHour, "signup", "", Attrs("ZhaoLei-7731", "拉萨")));
    day.push_back(Event(Mobile(0), kNudged, "browse"));
    day.push_back(Event(kMail, kT + 12 * kHour, "signup", "", "\"nickname\":\"ZL-mail-8842\""));
  }
  Ingest(*e, Join(day), false);
  Op(*e, 1, R"("op":"earn","points":10,"reason":"goodwill","ts":)" + std::to_string(kT + 13 * kHour));
  if (with_person) {
    // The apology's lot expires first, so spending takes it whole and it is compacted
    // away: its reason stays interned, named by no lot.
    const std::string at = ",\"ts\":" + std::to_string(kT + 13 * kHour);
    Op(*e, 0, R"("op":"earn","points":50,"reason":"apology-ZL-7731","expires":"1d")" + at);
    Op(*e, 0, R"("op":"earn","points":80,"reason":"bonus-ZL-7731","ref":"REF-ZL-7731")" + at);
    Op(*e, 0, R"("op":"earn","points":10,"reason":"goodwill")" + at);
    Op(*e, 0, R"("op":"spend","points":50,"reason":"spent-ZL-7731")" + at);
    // The merge comes in a batch of its own: a batch is linked whole before its events
    // reach the lifecycle, and the greeting should name the person before the merge.
    Ingest(*e, Join({Order(Mobile(0), kT + 22 * kHour, 300, "ORD-UNIQ-7731")}), false);
    Ingest(*e, Join({Rec("crm", kT + 22 * kHour + 30 * kMin, Mobile(0) + "," + kMail)}), false);
  }
  return e;
}

uint64_t Id(cdp::Engine& e, int person) { return Resolve(e, "mobile", Phone(person)); }

// The outbox's intents as text without their ids (which the forgotten person's intents
// used up in one engine and not in the other).
std::vector<std::string> Intents(const cdp::Lifecycle& l) {
  Json j(l.OutboxJson(0, 1000000));
  std::vector<std::string> out;
  for (auto in : Arr(j["intents"])) {
    std::string s;
    for (auto [k, v] : simdjson::dom::object(in))
      if (k != "id") s += std::string(k) + "=" + std::string(simdjson::minify(v)) + " ";
    out.push_back(s);
  }
  return out;
}

uint64_t Stat(const cdp::Lifecycle& l, const char* key) {
  Json j(l.StatsJson());
  return U(j[key]);
}

std::string Person(const cdp::Lifecycle& l, uint64_t oneid) {
  std::string out;
  l.AppendPerson(out, oneid);
  return out;
}

std::string Bytes(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &v, 8);
  return s;
}

bool Has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// Feed lines with the outbox ids of intent events ("id":N) left out.
std::vector<std::string> WithoutIds(std::vector<std::string> lines) {
  for (std::string& l : lines) {
    const size_t at = l.find("{\"id\":");
    if (at == std::string::npos) continue;
    size_t end = at + 6;
    while (end < l.size() && l[end] != ',') end++;
    l.erase(at + 1, end - at);
  }
  return lines;
}

std::string Notes(const cdp::Lifecycle::AdvanceStats& st) {
  return std::to_string(st.fired) + " " + std::to_string(st.transitions) + " " + std::to_string(st.intents) + " " +
         std::to_string(st.next);
}

}  // namespace

TEST_CASE("lifecycle forget: nothing of the person is left, and the rest goes on as if they never were") {
  auto e = Built(true);
  auto ref = Built(false);
  cdp::Lifecycle& life = e->lifecycle();
  const uint64_t p0 = Id(*e, 0), p1 = Id(*e, 1), p2 = Id(*e, 2);
  const uint64_t p3 = Resolve(*e, "email", "zl7731@example.com");
  REQUIRE(p0 != 0);
  REQUIRE(p3 == p0);  // absorbed: the email is the person's now
  REQUIRE(Id(*ref, 1) == p1);
  REQUIRE(Id(*ref, 2) == p2);
  // The OneID person 3 had before the merge is in the merge's feed event.
  uint64_t absorbed = 0;
  for (const std::string& ev : FeedOf(*e, "merged")) {
    Json j(ev);
    CHECK(U(j["survivor"]) == p0);
    absorbed = U(j["absorbed"]);
  }
  REQUIRE(absorbed != 0);
  REQUIRE(absorbed != p0);

  // What the person had: states, history, points, a journey instance with a deferred
  // greeting, and intents of both OneIDs, one of them acknowledged.
  const std::string before0 = Person(life, p0);
  CHECK(Has(before0, "\"stage\":{\"state\":\"active\""));
  CHECK(Has(before0, "\"member\":true"));
  CHECK(Has(before0, "REF-ZL-7731"));
  CHECK(Has(before0, "\"deferred\":1"));
  uint64_t first0 = 0, of_absorbed = 0;
  {
    Json j(life.OutboxJson(0, 1000));
    for (auto in : Arr(j["intents"])) {
      if (U(in["oneid"]) == p0 && first0 == 0) first0 = U(in["id"]);
      of_absorbed += U(in["oneid"]) == absorbed;
    }
  }
  REQUIRE(first0 != 0);
  CHECK(of_absorbed == 1);  // the absorbed person's thanks
  REQUIRE(e->AckIntents("{\"ids\":[" + std::to_string(first0) + "]}").ok());
  const std::string saved_before = Saved(life);
  for (const char* v : kUnique) CHECK_MESSAGE(Has(saved_before, v), std::string(v));
  CHECK(Has(saved_before, Bytes(p0)));
  CHECK(Has(saved_before, Bytes(absorbed)));
  CHECK(Has(saved_before, Bytes(kNudged)));

  const std::string before1 = Person(life, p1), before2 = Person(life, p2);
  const uint64_t fed = e->feed().next();
  const uint64_t timers = Stat(life, "timers");

  const std::vector<uint64_t> merged = {absorbed};
  REQUIRE(life.Forget(p0, merged));

  // Nothing to read: the person renders as nobody, reads no state, owns no intent.
  const std::string nobody = Person(life, 987654321);
  CHECK(Person(life, p0) == nobody);
  CHECK(Person(life, absorbed) == nobody);
  CHECK(life.State(static_cast<uint32_t>(e->profiles().FindMachine("stage")), p0).kind == cdp::ValueKind::kNull);
  CHECK(life.State(static_cast<uint32_t>(e->profiles().FindMachine("club")), p0).kind == cdp::ValueKind::kNull);
  CHECK(life.StateAt("stage", p0, kT + 23 * kHour) == -1);
  const std::string outbox = life.OutboxJson(0, 1000000);
  CHECK_FALSE(Has(outbox, std::to_string(p0)));
  CHECK_FALSE(Has(outbox, std::to_string(absorbed)));
  CHECK(Intents(life) == Intents(ref->lifecycle()));
  // The others are as they were, and as in the engine without the person.
  CHECK(Person(life, p1) == before1);
  CHECK(Person(life, p2) == before2);
  CHECK(Person(life, p1) == Person(ref->lifecycle(), p1));
  CHECK(Person(life, p2) == Person(ref->lifecycle(), p2));
  CHECK(Stat(life, "outbox_pending") == Stat(ref->lifecycle(), "outbox_pending"));
  CHECK(Stat(life, "timers") < timers);
  CHECK(Stat(life, "timers") == Stat(ref->lifecycle(), "timers"));
  CHECK(e->feed().next() == fed);  // the engine writes the one event of a forget
  // Counters of decisions stay: the journey entered three times, one of them the person's.
  CHECK(Has(life.CatalogJson(), "\"entered\":3"));
  CHECK(Has(life.CatalogJson(), "\"members\":2"));
  // A second forget finds nothing, and nor does one of a stranger.
  CHECK_FALSE(life.Forget(p0, merged));
  CHECK_FALSE(life.Forget(987654321));

  // Not a byte of the person in the snapshot; the shared city and reason stay.
  const std::string saved = Saved(life);
  for (const char* v : kUnique) CHECK_MESSAGE(!Has(saved, v), std::string(v));
  CHECK_FALSE(Has(saved, std::to_string(p0)));
  CHECK_FALSE(Has(saved, std::to_string(absorbed)));
  CHECK_FALSE(Has(saved, Bytes(p0)));
  CHECK_FALSE(Has(saved, Bytes(absorbed)));
  CHECK_FALSE(Has(saved, Bytes(kNudged)));  // neither the intent's times nor the send log's
  CHECK(Has(saved, kShared));
  CHECK(Has(saved, "goodwill"));

  // Saved and loaded, it is the same; both copies then go on the same.
  Fresh fresh(*e);
  const absl::Status loaded = fresh.Load(saved);
  REQUIRE_MESSAGE(loaded.ok(), std::string(loaded.message()));
  CHECK(Saved(fresh.life) == saved);
  const auto observe = [&](const cdp::Lifecycle& l) { return Observe(l, e->profiles(), {"stage", "club", "welcome"}); };
  CHECK(observe(fresh.life) == observe(life));

  // Past every deadline the person had (the greeting at 09:00, the follow-up, the machine's
  // ten days, the apology's expiry): nothing fires for them, and the rest fires as in the
  // engine without them.
  const uint64_t cursor = e->feed().next(), ref_cursor = ref->feed().next();
  for (int64_t at : {kT + kDay + 9 * kHour, kT + 3 * kDay + 9 * kHour, kT + 12 * kDay, kT + 40 * kDay}) {
    CAPTURE(at);
    const auto a = life.Advance(at), b = ref->lifecycle().Advance(at), c = fresh.life.Advance(at);
    CHECK(Notes(a) == Notes(b));
    CHECK(Notes(c) == Notes(a));
    CHECK(Intents(life) == Intents(ref->lifecycle()));
    CHECK(Person(life, p1) == Person(ref->lifecycle(), p1));
    CHECK(Person(life, p2) == Person(ref->lifecycle(), p2));
    CHECK(observe(fresh.life) == observe(life));
  }
  // The loaded copy fed what the original fed.
  const std::vector<std::string> advanced = FeedFrom(e->feed(), cursor);
  CHECK(advanced.size() > 5);
  CHECK(FeedFrom(fresh.feed, 0) == advanced);
  CHECK(Saved(fresh.life) == Saved(life));

  // Later inputs for the others, too: an order and a refund of person 1.
  const std::string later = Join({Order(Mobile(1), kT + 41 * kDay, 200, "O-9"),
                                  Event(Mobile(1), kT + 41 * kDay + kHour, "refund", ",\"order_id\":\"O-9\"")});
  Ingest(*e, later, false);
  Ingest(*ref, later, false);
  CHECK(Person(life, p1) == Person(ref->lifecycle(), p1));
  CHECK(Intents(life) == Intents(ref->lifecycle()));
  // The feed since the forget, but for the outbox ids in intent events.
  const std::vector<std::string> lines = WithoutIds(FeedFrom(e->feed(), cursor));
  CHECK(lines == WithoutIds(FeedFrom(ref->feed(), ref_cursor)));
  for (const std::string& line : lines) {
    CHECK_FALSE(Has(line, std::to_string(p0)));
    CHECK_FALSE(Has(line, std::to_string(absorbed)));
  }
  CHECK(Person(life, p0) == nobody);
}

TEST_CASE("lifecycle forget: intents of a OneID merged into the person go only when it is named") {
  auto e = Built(true);
  cdp::Lifecycle& life = e->lifecycle();
  const uint64_t p0 = Id(*e, 0);
  uint64_t absorbed = 0;
  for (const std::string& ev : FeedOf(*e, "merged")) absorbed = U(Json(ev)["absorbed"]);
  REQUIRE(absorbed != 0);
  REQUIRE(Has(life.OutboxJson(0, 1000), std::to_string(absorbed)));
  REQUIRE(life.Forget(p0));
  // The lifecycle does not know which OneIDs redirect to the person; the engine does.
  CHECK(Has(life.OutboxJson(0, 1000), std::to_string(absorbed)));
  CHECK(Has(Saved(life), "ZL-mail-8842"));
  // Holding nothing but intents is still something to forget.
  CHECK(life.Forget(absorbed));
  CHECK_FALSE(Has(life.OutboxJson(0, 1000), std::to_string(absorbed)));
  const std::string saved = Saved(life);
  for (const char* v : kUnique) CHECK_MESSAGE(!Has(saved, v), std::string(v));
  Fresh fresh(*e);
  REQUIRE(fresh.Load(saved).ok());
  CHECK(Saved(fresh.life) == saved);
}

TEST_CASE("lifecycle forget: timers taken out of the heap in place leave a heap of the others") {
  std::mt19937_64 rng(7);
  const std::greater<> after;
  auto less = [](const cdp::life::Timer& a, const cdp::life::Timer& b) { return b > a; };
  for (int round = 0; round < 400; ++round) {
    CAPTURE(round);
    // Few distinct times and persons, so equal keys and runs of selected timers (at the
    // end too) are common; sometimes every timer is selected, sometimes none.
    const size_t n = rng() % 200;
    const uint32_t persons = 1 + rng() % 6;
    std::vector<cdp::life::Timer> heap;
    for (size_t i = 0; i < n; ++i)
      heap.push_back(cdp::life::Timer{static_cast<int64_t>(rng() % 20), static_cast<uint32_t>(rng() % 3),
                                      static_cast<uint32_t>(rng() % persons), static_cast<uint32_t>(rng() % 4),
                                      static_cast<uint32_t>(rng() % 3)});
    std::make_heap(heap.begin(), heap.end(), after);
    const uint32_t gone = static_cast<uint32_t>(rng() % (persons + 1));  // == persons: none
    std::vector<cdp::life::Timer> want;
    for (const auto& t : heap)
      if (t.person != gone && !(round % 7 == 0)) want.push_back(t);
    cdp::life::EraseTimers(heap, [&](const cdp::life::Timer& t) { return t.person == gone || round % 7 == 0; });
    CHECK(std::is_heap(heap.begin(), heap.end(), after));
    std::sort(want.begin(), want.end(), less);
    std::sort(heap.begin(), heap.end(), less);
    CHECK(std::equal(heap.begin(), heap.end(), want.begin(), want.end(),
                     [](const cdp::life::Timer& a, const cdp::life::Timer& b) { return !(a > b) && !(b > a); }));
  }
}
