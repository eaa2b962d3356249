// Snapshots of the lifecycle's loyalty and journeys parts (LoyaltyPart / JourneysPart
// Save and Load, through Lifecycle::Save / Load): over the bundled data plus refunds,
// manual earnings, debts, overrides with expiry, capped rules, deferred intents, a slot
// freed by a drop, a journey that loops and audience entries, a loaded lifecycle renders and re-saves the same
// as the original and emits nothing while loading; then both go on the same through
// timers, events, manual operations, a merge, a redefinition of each part and a drop.
// Journeys that cancel many instances at once (a redefinition, a drop) report them in the
// same order in every engine. Bad bytes in either part fail with DataLoss.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cdp/lifecycle.hpp"
#include "helpers.hpp"
#include "life_snapshot.hpp"
#include "snapshot.hpp"

using namespace cdptest;

namespace {

// 2024-01-20T00:00:00+08:00, two weeks after the last bundled record.
constexpr int64_t kT = 1705680000000;

// Every bundled record in one batch: the engine files a batch in time order.
std::string Bundled() {
  std::string out;
  for (const char* f : {"app", "crm", "events", "pos", "tmall", "wechat", "wecom"}) out += DataFile(std::string(f) + ".ndjson");
  return out;
}

std::string Phone(int i) { return "1391000" + std::to_string(1000 + i); }

std::string Ev(int i, int64_t ts, std::string_view type, std::string_view more = "") {
  return Rec("shop", ts, "\"mobile\":\"" + Phone(i) + "\"", "\"event\":{\"type\":\"" + std::string(type) + "\"" +
                                                               std::string(more) + "}");
}

std::string Order(int i, int64_t ts, int yuan, std::string_view ref) {
  return Ev(i, ts, "order", ",\"amount\":" + std::to_string(yuan) + ",\"order_id\":\"" + std::string(ref) + "\"");
}

void Define(cdp::Engine& e, const std::string& doc) {
  auto r = e.DefineLifecycle(doc);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
}

std::string Op(cdp::Engine& e, int i, std::string_view op, std::string_view fields) {
  auto r = e.LifecycleApply("{\"op\":\"" + std::string(op) + "\",\"type\":\"mobile\",\"value\":\"" + Phone(i) +
                            "\"," + std::string(fields) + "}");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

std::string At(int64_t ts) { return "\"ts\":" + std::to_string(ts); }

// A journey defined first and dropped later, so the bundled journeys sit past a free slot
// that the next new journey takes.
constexpr const char* kTemp =
    R"({"journeys":[{"name":"temp","entry":{"on":"app_download"},"steps":[{"id":"w","wait":"30d"},{"action":"x"}]}]})";

// A journey that goes round: its instances count laps, which their intents' keys carry.
constexpr const char* kLoop =
    R"({"journeys":[{"name":"loop","entry":{"on":"mp_login"},"reentry":"always","steps":[
      {"id":"ping","action":"ping","channel":"app"},{"id":"w","wait":"3d"},{"id":"again","goto":"ping"}]}]})";

// The engine of the tests: the bundled machines, loyalty program and journeys over the
// bundled data, advanced to kT; then a day of synthetic members (persons 0 to 5) with
// orders by reference, a refund, capped check-ins, late-evening entries whose intents
// wait for the send window, and manual earnings, spending, a debt and tier overrides.
std::unique_ptr<cdp::Engine> Built() {
  auto e = OpenEngine();
  Define(*e, DataFile("machines.json"));
  Define(*e, DataFile("loyalty.json"));
  Define(*e, kTemp);
  Define(*e, DataFile("journeys.json"));
  Define(*e, kLoop);
  Ingest(*e, Bundled(), false);
  REQUIRE(e->DropLifecycle("journey", "temp").ok());
  REQUIRE(e->Advance(kT).ok());

  std::vector<std::string> day;
  for (int i = 0; i < 6; ++i) day.push_back(Ev(i, kT + kHour + i * kMin, "member_join"));
  day.push_back(Order(0, kT + 2 * kHour, 1500, "SO-1"));
  day.push_back(Order(0, kT + 3 * kHour, 800, "SO-2"));
  day.push_back(Ev(0, kT + 4 * kHour, "refund", ",\"order_id\":\"SO-1\""));
  day.push_back(Ev(1, kT + 5 * kHour, "purchase", ",\"amount\":7000,\"order_id\":\"P-1\""));
  day.push_back(Ev(1, kT + 5 * kHour + kMin, "event_checkin"));
  day.push_back(Ev(1, kT + 6 * kHour, "event_checkin"));  // over the rule's daily cap
  day.push_back(Ev(3, kT + 10 * kHour, "guide_added"));   // the member journey's wait_for: yes
  day.push_back(Ev(5, kT + 11 * kHour, "mp_login"));
  day.push_back(Order(4, kT + 22 * kHour + 30 * kMin, 300, "SO-4"));  // its tier-up notice waits for 09:00
  day.push_back(Ev(2, kT + 23 * kHour, "follow"));                     // so does the fan journey's welcome
  Ingest(*e, Join(day), false);

  Op(*e, 0, "earn", R"("points":500,"reason":"goodwill","ref":"GW-1","expires":"30d","lock":"2d",)" + At(kT + 7 * kHour));
  Op(*e, 1, "spend", R"("points":100,"reason":"gift",)" + At(kT + 8 * kHour));
  Op(*e, 5, "adjust", R"("points":-5000,"reason":"chargeback",)" + At(kT + 12 * kHour));
  Op(*e, 2, "tier", R"("pin":"V2","until":)" + std::to_string(kT + 40 * kDay) + "," + At(kT + 13 * kHour));
  Op(*e, 3, "tier", R"("floor":"V3",)" + At(kT + 14 * kHour));
  Op(*e, 5, "enter", R"("journey":"repurchase","force":true,)" + At(kT + 15 * kHour));
  Op(*e, 4, "exit", R"("journey":"member","reason":"asked",)" + At(kT + 16 * kHour));
  // Gold from 5000 yuan: every member waits for a re-evaluation at the engine's clock.
  std::string loyalty = DataFile("loyalty.json");
  const std::string gold = R"("min": 6000)";
  REQUIRE(loyalty.find(gold) != std::string::npos);
  Define(*e, loyalty.replace(loyalty.find(gold), gold.size(), R"("min": 5000)"));
  return e;
}

// What a reader sees (Observe, life_snapshot.hpp): state.<name> for the program's
// tiers and each journey.
std::string Observed(const cdp::Lifecycle& l, const cdp::ProfileStore& store) {
  return Observe(l, store, {"member", "fan", "first_purchase", "repurchase", "loyal", "loop", "late"});
}

// Where a part's bytes begin (its marker's length) and end (the next part's, or the end).
struct Span {
  size_t begin, end;
};
Span PartSpan(const std::string& bytes, std::string_view name, std::string_view next) {
  auto marker = [&](std::string_view n, size_t from) {
    std::string m(8, '\0');
    const uint64_t len = n.size();
    std::memcpy(m.data(), &len, 8);
    m += n;
    size_t at = bytes.find(m, from);
    REQUIRE(at != std::string::npos);
    return at;
  };
  const size_t begin = marker(name, 0);
  return Span{begin, next.empty() ? bytes.size() : marker(next, begin)};
}

int Count(const std::string& text, std::string_view what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

}  // namespace

TEST_CASE("lifecycle snapshot: loyalty and journeys load equal to the original and emit nothing while loading") {
  auto e = Built();
  cdp::Lifecycle& orig = e->lifecycle();
  const std::string bytes = Saved(orig);
  Fresh fresh(*e);
  REQUIRE_MESSAGE(fresh.Load(bytes).ok(), std::string(fresh.Load(bytes).message()));
  CHECK(fresh.feed.next() == 1);

  const std::string want = Observed(orig, e->profiles());
  // The state is the rich one the test means: every kind of ledger and journey state.
  CHECK(want.find(R"("ref":"SO-2")") != std::string::npos);
  CHECK(want.find(R"("rule":"goodwill")") != std::string::npos);
  CHECK(Count(want, R"("debt":0,)") < Count(want, R"("debt":)"));
  CHECK(want.find(R"("kind":"pin","tier":"V2","until":)") != std::string::npos);
  CHECK(want.find(R"("kind":"floor","tier":"V3","until":null)") != std::string::npos);
  CHECK(Count(want, R"("deferred":1)") >= 2);
  CHECK(Count(want, R"("active":true)") >= 5);
  CHECK(want.find(R"("waiting_for":["guide_added"])") != std::string::npos);
  CHECK(want.find(R"("last_end":"exited")") != std::string::npos);
  CHECK(want.find(R"("journey":"loyal","active":true)") != std::string::npos);  // an audience entry
  CHECK(want.find(R"(:ping:3",)") != std::string::npos);  // an intent of a third lap
  CHECK(Observed(fresh.life, e->profiles()) == want);
  CHECK(orig.StatsJson().find("\"timers\":0,") == std::string::npos);
  // Every member, lot, track, deferred intent and counter comes back byte for byte.
  CHECK(Saved(fresh.life) == bytes);

  // The timers the core saved still find their members and instances: the re-evaluation
  // after the redefinition, the next morning (the deferred intents go out at 09:00) and
  // the days after fire the same.
  for (int64_t t : {e->Now(), kT + 34 * kHour, kT + 3 * kDay}) {
    auto a = orig.Advance(t);
    auto b = fresh.life.Advance(t);
    CHECK(a.fired > 0);
    CHECK(b.fired == a.fired);
    CHECK(b.transitions == a.transitions);
    CHECK(b.intents == a.intents);
    CHECK(b.next == a.next);
  }
  CHECK(Observed(fresh.life, e->profiles()) == Observed(orig, e->profiles()));
}

TEST_CASE("lifecycle snapshot: loaded loyalty and journeys go on exactly as the original") {
  auto e = Built();
  cdp::Lifecycle& orig = e->lifecycle();
  Fresh fresh(*e);
  REQUIRE(fresh.Load(Saved(orig)).ok());
  const uint64_t cursor = e->feed().next();

  const std::vector<uint64_t> ids = OneIds(e->profiles());
  REQUIRE(ids.size() > 40);
  auto syn = [&](int i) { return Resolve(*e, "mobile", Phone(i)); };
  auto resolve = [](uint64_t id, std::string_view, std::string_view) -> absl::StatusOr<uint64_t> { return id; };
  cdp::ProfileStore& store = e->profiles();
  const uint32_t types[] = {store.EventType("order"),       store.EventType("purchase"),  store.EventType("follow"),
                            store.EventType("member_join"), store.EventType("guide_added"),
                            store.EventType("event_checkin"), store.EventType("mp_login")};
  // The redefinitions of round 3: the fan journey loses its first wait (instances waiting
  // there are cancelled, the others carry on), a new journey takes the dropped one's slot,
  // and the program's silver tier is renamed and moved (members are re-evaluated).
  std::string journeys = DataFile("journeys.json");
  const std::string t1 = R"({"id": "t1", "wait": "1d"},)";
  REQUIRE(journeys.find(t1) != std::string::npos);
  journeys.replace(journeys.find(t1), t1.size(), "");
  const std::string late =
      R"({"journeys":[{"name":"late","entry":{"on":"mp_login"},"reentry":"always","steps":[
        {"id":"hi","action":"late_hello","channel":"sms"},{"id":"w","wait":"2d"},{"id":"bye","action":"late_bye"}]}]})";
  std::string loyalty = DataFile("loyalty.json");
  for (auto [from, to] : {std::pair<std::string, std::string>{R"("name": "V2", "description": "silver: 1000 yuan in twelve months", "min": 1000)",
                                                              R"("name": "S", "min": 2000)"},
                          {R"("V2": 1.2)", R"("S": 1.2)"}}) {
    REQUIRE(loyalty.find(from) != std::string::npos);
    loyalty.replace(loyalty.find(from), from.size(), to);
  }

  int64_t t = kT + kDay;
  std::vector<std::string> orig_notes, fresh_notes;
  for (int round = 0; round < 7; ++round) {
    CAPTURE(round);
    t += (round % 2 ? 9 : 2) * kDay + 5 * kHour;
    for (cdp::Lifecycle* l : {&orig, &fresh.life}) {
      std::string note;
      auto st = l->Advance(t);
      note += "advance " + std::to_string(st.fired) + " " + std::to_string(st.transitions) + " " +
              std::to_string(st.intents) + " " + std::to_string(st.next) + "\n";
      for (size_t i = static_cast<size_t>(round); i < ids.size(); i += 5) {
        cdp::LifeEvent ev;
        ev.oneid = ids[i];
        ev.type = types[(i + static_cast<size_t>(round)) % 7];
        ev.ts = t + static_cast<int64_t>(i) * kMin;
        ev.amount = static_cast<int64_t>(i % 13) * 25000;  // fen
        ev.has_amount = ev.amount > 0;
        l->OnEvent(ev);
      }
      auto apply = [&](int i, const std::string& fields) {
        auto r = l->Apply("{\"oneid\":" + std::to_string(syn(i)) + "," + fields + "}", t + 2 * kHour, resolve);
        note += (r.ok() ? *r : std::string(r.status().message())) + "\n";
      };
      apply(round % 6, R"("op":"earn","points":)" + std::to_string(100 + round) + R"(,"reason":"round)" +
                           std::to_string(round) + R"(","ref":"R)" + std::to_string(round) + "\"");
      apply((round + 1) % 6, R"("op":"spend","points":50)");
      apply(0, R"("op":"refund","ref":")" + std::string(round == 1 ? "SO-2" : "R0") + "\"");
      apply(5, R"("op":"earn","points":3000)");  // pays the debt
      apply(2, round == 4 ? R"("op":"tier","clear":true)" : R"("op":"tier","ceiling":"V1","until":)" +
                                                                std::to_string(t + 5 * kDay));
      apply(round % 6, R"("op":"enter","journey":"first_purchase","force":true)");
      apply((round + 3) % 6, R"("op":"exit","journey":"fan")");
      if (round == 2) l->OnMerge(syn(0), syn(1), t + 3 * kHour);
      if (round == 3) {
        for (const std::string& doc : {journeys, late, loyalty}) {
          auto r = l->Define(doc, t + 4 * kHour);
          REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
        }
      }
      if (round == 4) REQUIRE(l->Drop("journey", "member").ok());
      REQUIRE(l->Ack(R"({"ids":[)" + std::to_string(3 + round * 4) + "]}").ok());
      std::vector<uint64_t> changed;
      l->TakeStateChanges(changed);
      std::sort(changed.begin(), changed.end());
      note += "changed";
      for (uint64_t c : changed) note += " " + std::to_string(c);
      (l == &orig ? orig_notes : fresh_notes).push_back(note);
    }
    CHECK(fresh_notes.back() == orig_notes.back());
    CHECK(Observed(fresh.life, e->profiles()) == Observed(orig, e->profiles()));
  }
  // The two parts save the same bytes (the core's and the machines' records carry struct
  // padding, which new entries fill with whatever the stack held).
  auto parts = [](const std::string& b) { return b.substr(PartSpan(b, "lifecycle.loyalty", "").begin); };
  CHECK(parts(Saved(fresh.life)) == parts(Saved(orig)));
  const std::vector<std::string> fed = FeedFrom(e->feed(), cursor);
  CHECK(FeedFrom(fresh.feed, 0) == fed);
  // The rounds did what they are meant to: timers fired, intents went out and came back
  // deferred or capped, refunds clawed back, a redefinition cancelled and re-evaluated.
  auto fed_with = [&](std::string_view what) {
    return std::count_if(fed.begin(), fed.end(), [&](const std::string& s) { return s.find(what) != std::string::npos; });
  };
  CHECK(fed_with(R"("status":"queued")") > 20);
  CHECK(fed_with(R"("status":"deferred")") > 0);
  CHECK(fed_with(R"("status":"capped")") > 0);
  CHECK(fed_with(R"("op":"refund")") > 0);
  CHECK(fed_with(R"("reason":"definition")") > 0);
  CHECK(fed_with(R"("reason":"dropped")") > 0);
  CHECK(fed_with(R"("to":"S")") > 0);
}

TEST_CASE("lifecycle snapshot: journeys cancelled together are reported in the same order in every engine") {
  // Two engines built the same way hold their instances in hash tables of different
  // layouts; a redefinition and a drop that cancel many instances at once feed them in
  // person order, so the two feeds (and a replay of the log) agree.
  std::vector<std::vector<std::string>> feeds;
  for (int k = 0; k < 2; ++k) {
    auto e = OpenEngine();
    Define(*e, R"({"journeys":[{"name":"j","entry":{"on":"follow"},"steps":[{"id":"a","wait":"1d"},{"id":"b","wait":"1d"}]},
                               {"name":"k","entry":{"on":"follow"},"steps":[{"id":"a","wait":"1d"}]}]})");
    std::vector<std::string> recs;
    for (int i = 0; i < 200; ++i) recs.push_back(Ev(i, kT + i * kMin, "follow"));
    Ingest(*e, Join(recs), false);
    const uint64_t cursor = e->feed().next();
    Define(*e, R"({"journeys":[{"name":"j","entry":{"on":"follow"},"steps":[{"id":"b","wait":"1d"}]}]})");
    REQUIRE(e->DropLifecycle("journey", "k").ok());
    feeds.push_back(FeedFrom(e->feed(), cursor));
  }
  CHECK(std::count_if(feeds[0].begin(), feeds[0].end(),
                      [](const std::string& s) { return s.find(R"("event":"cancelled")") != std::string::npos; }) == 400);
  CHECK(feeds[0] == feeds[1]);
}

TEST_CASE("lifecycle snapshot: bad bytes in the loyalty or journeys part fail with DataLoss") {
  auto e = Built();
  const std::string bytes = Saved(e->lifecycle());
  const Span loyalty = PartSpan(bytes, "lifecycle.loyalty", "journeys");
  const Span journeys = PartSpan(bytes, "lifecycle.journeys", "");
  REQUIRE(loyalty.begin < loyalty.end);
  REQUIRE(journeys.end == bytes.size());
  auto load = [&](const std::string& b) {
    Fresh fresh(*e);
    return fresh.Load(b);
  };
  REQUIRE(load(bytes).ok());

  SUBCASE("cut short anywhere in either part") {
    for (Span s : {loyalty, journeys}) {
      // Every cut in the first records, then one in every 97 bytes to the end.
      for (size_t cut = s.begin; cut < s.end; cut += cut < s.begin + 600 ? 1 : 97) {
        CAPTURE(cut);
        absl::Status st = load(bytes.substr(0, cut));
        REQUIRE(st.code() == absl::StatusCode::kDataLoss);
      }
    }
  }

  // The counts each part reads, found by walking the format the way Load does.
  auto put = [](std::string b, size_t at, uint64_t v) {
    std::memcpy(b.data() + at, &v, 8);
    return b;
  };
  auto at = [&](cdp::snap::Reader& r) { return bytes.size() - r.Left(); };
  SUBCASE("a count made huge") {
    std::vector<size_t> counts;
    {
      cdp::snap::Reader r(std::string_view(bytes).substr(loyalty.begin));
      REQUIRE(r.Part("lifecycle.loyalty"));
      counts.push_back(at(r));  // the name pool
      for (uint64_t i = 0, n = r.U64(); i < n; ++i) r.Str();
      r.Bool();
      r.Str();
      r.U32();
      counts.push_back(at(r));  // the tier names
      std::vector<uint32_t> levels;
      r.Vec(levels);
      r.U64();
      r.U32();
      counts.push_back(at(r));  // the members
      REQUIRE(r.U64() > 0);
      for (int k = 0; k < 13; ++k) r.U64();  // its fixed fields
      counts.push_back(at(r));  // the first member's lots
    }
    {
      cdp::snap::Reader r(std::string_view(bytes).substr(journeys.begin));
      REQUIRE(r.Part("lifecycle.journeys"));
      counts.push_back(at(r));  // the slots
      for (uint64_t i = 0, n = r.U64(); i < n; ++i) r.Str(), r.Str();
      r.Str();
      counts.push_back(at(r));  // the deferred intents
      for (uint64_t i = 0, n = r.U64(); i < n; ++i) {
        for (int k = 0; k < 8; ++k) r.U64();  // its fixed fields
        for (int f = 0; f < 6; ++f) r.Str();
      }
      r.U32();
      for (uint64_t k = 0; k < 15; ++k) r.U64();  // the first journey's totals
      counts.push_back(at(r));  // the first journey's tracks
      REQUIRE(r.ok());
    }
    for (size_t c : counts) {
      for (uint64_t v : {uint64_t{1} << 40, ~uint64_t{0}, uint64_t{1} << 20}) {
        CAPTURE(c);
        CAPTURE(v);
        CHECK(load(put(bytes, c, v)).code() == absl::StatusCode::kDataLoss);
      }
    }
  }

  SUBCASE("an index out of range") {
    // The first member's person, past the last person.
    cdp::snap::Reader r(std::string_view(bytes).substr(loyalty.begin));
    REQUIRE(r.Part("lifecycle.loyalty"));
    for (uint64_t i = 0, n = r.U64(); i < n; ++i) r.Str();
    r.Bool();
    r.Str();
    r.U32();
    std::vector<uint32_t> levels;
    r.Vec(levels);
    r.U64();
    r.U32();
    REQUIRE(r.U64() > 0);
    const size_t person = at(r) + 88;  // after ten times and the metric
    std::string b = bytes;
    const uint32_t past = 1u << 30;
    std::memcpy(b.data() + person, &past, 4);
    absl::Status st = load(b);
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(st.message()).find("lifecycle.loyalty") != std::string::npos);
  }

  SUBCASE("every word of the parts overwritten: DataLoss or a load, never a crash") {
    size_t failed = 0, loaded = 0;
    for (Span s : {loyalty, journeys}) {
      for (size_t c = s.begin; c + 8 <= s.end; c += 8) {
        absl::Status st = load(put(bytes, c, 0x7FFFFFFFFFFFull));
        CHECK((st.ok() || st.code() == absl::StatusCode::kDataLoss));
        (st.ok() ? loaded : failed)++;
        if (c > s.begin + 4000) c += 8 * 37;  // a sample past the first records
      }
    }
    CHECK(failed > 0);
  }
}

TEST_CASE("lifecycle snapshot: the loyalty and journeys parts' bytes per member and per track") {
  // Reported, not checked: what the bundled-data engine's parts cost.
  auto e = Built();
  const std::string bytes = Saved(e->lifecycle());
  const Span loyalty = PartSpan(bytes, "lifecycle.loyalty", "journeys");
  const Span journeys = PartSpan(bytes, "lifecycle.journeys", "");
  Json cat(e->lifecycle().CatalogJson());
  const uint64_t members = U(cat["loyalty"]["members"]);
  uint64_t tracks = 0;
  for (auto j : Arr(cat["journeys"])) tracks += U(j["persons"]);
  REQUIRE(members > 0);
  REQUIRE(tracks > 0);
  MESSAGE("loyalty: " << (loyalty.end - loyalty.begin) << " bytes for " << members << " members ("
                      << (loyalty.end - loyalty.begin) / members << " per member); journeys: "
                      << (journeys.end - journeys.begin) << " bytes for " << tracks << " tracks ("
                      << (journeys.end - journeys.begin) / tracks << " per track)");
}
