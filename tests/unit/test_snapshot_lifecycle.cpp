// Snapshots of the lifecycle core and its machines (Lifecycle::Save / Load): a lifecycle
// loaded from the bundled demo data's saved bytes renders, answers and re-saves the same
// as the original, emits nothing while loading, and then goes on the same through timers,
// events, manual moves, merges and acknowledgements; definitions come back in the same
// slots after drops; bad bytes fail with DataLoss. Loyalty and journeys: the file
// test_snapshot_lifecycle2.cpp.
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


// The bundled records in time order, one batch.
std::string Records() { return Join(BundledLines()); }

// Machines beside the bundled ones: local-time timers on a later day with a rendered
// payload, a weekly reset, and a guard on a condition. "temp" is defined and dropped
// between them, so the machines after it sit past an empty slot.
constexpr const char* kTemp = R"({"machines":[{"name":"temp","states":["a","b"],"initial":"a","transitions":[
  {"from":"a","to":"b","on":"order"}]}]})";
constexpr const char* kMore = R"({"machines":[
  {"name":"nudge","states":["idle","nudged","quiet"],"initial":"idle","transitions":[
    {"from":"idle","to":"nudged","at":"10:00","days":3,"when":"count(order) + count(purchase) > 0",
     "action":"nudge","channel":"sms","payload":{"city":"{{attrs.city}}","text":"hi {{attrs.city}}"}},
    {"from":"idle","to":"quiet","after":"20d"},
    {"from":"nudged","to":"idle","on":["order","purchase"]},
    {"from":"quiet","to":"idle","at":"day_end"}]},
  {"name":"weekly","reset":"week","states":["none","seen"],"initial":"none","transitions":[
    {"from":"none","to":"seen","when":"count(order, 7d) + count(purchase, 7d) > 0",
     "action":"weekly_seen"}]}]})";

// The engine of the tests: every machine above over the bundled data, advanced part way,
// with a manual move and some intents acknowledged.
std::unique_ptr<cdp::Engine> Built() {
  auto e = OpenEngine();
  for (const std::string& doc : {DataFile("machines.json"), std::string(kTemp), std::string(kMore)}) {
    auto r = e->DefineLifecycle(doc);
    REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
    if (doc == kTemp) REQUIRE(e->DropLifecycle("machine", "temp").ok());
  }
  Ingest(*e, Records(), false);
  REQUIRE(e->Advance(e->Now() + 45 * kDay).ok());
  auto one = e->profiles().AtSlot(0);
  REQUIRE(one != nullptr);
  auto set = e->LifecycleApply(R"({"op":"set_state","oneid":)" + std::to_string(one->oneid) +
                               R"(,"machine":"activity","state":"churned"})");
  REQUIRE_MESSAGE(set.ok(), std::string(set.status().message()));
  REQUIRE(e->AckIntents(R"({"through":2})").ok());
  REQUIRE(e->AckIntents(R"({"ids":[5]})").ok());
  return e;
}

// What a reader sees (Observe, life_snapshot.hpp) over the machines of these tests.
std::string Observed(const cdp::Lifecycle& l, const cdp::ProfileStore& store, const std::vector<uint64_t>& extra = {}) {
  return Observe(l, store, {"aipl", "fast", "activity", "temp", "nudge", "weekly"}, extra);
}

}  // namespace

TEST_CASE("lifecycle snapshot: machines load equal to the original and emit nothing while loading") {
  auto e = Built();
  cdp::Lifecycle& orig = e->lifecycle();
  const std::string bytes = Saved(orig);
  Fresh fresh(*e);
  const absl::Status loaded = fresh.Load(bytes);
  REQUIRE_MESSAGE(loaded.ok(), std::string(loaded.message()));
  CHECK(fresh.feed.next() == 1);  // no person entered again, nothing fed

  const std::string want = Observed(orig, e->profiles());
  CHECK(want.find("\"nudge\"") != std::string::npos);
  CHECK(want.find("\"welcome_back\"") != std::string::npos);  // intents in the outbox
  CHECK(Observed(fresh.life, e->profiles()) == want);
  // Every saved array and string comes back byte for byte.
  CHECK(Saved(fresh.life) == bytes);
  // "temp" is gone; "nudge" and "weekly" sit past its empty slot, where their timers
  // (which name the slot) find them, here and as both go on (the next test).
  Json cat(orig.CatalogJson());
  auto names = Arr(cat["machines"]);
  REQUIRE(names.size() == 5);
  CHECK(names.at(3)["name"].get_string().value() == "nudge");
  CHECK(orig.CatalogJson().find("\"temp\"") == std::string::npos);
  // The same timers are pending: an Advance to the engine's clock fires none, on both.
  const int64_t now = e->Now();
  auto a = orig.Advance(now), b = fresh.life.Advance(now);
  CHECK(a.fired == 0);
  CHECK(b.fired == 0);
  CHECK(a.next == b.next);
  CHECK(a.next != cdp::kForever);
}

TEST_CASE("lifecycle snapshot: the loaded machines go on exactly as the original") {
  auto e = Built();
  cdp::Lifecycle& orig = e->lifecycle();
  Fresh fresh(*e);
  REQUIRE(fresh.Load(Saved(orig)).ok());
  const uint64_t cursor = e->feed().next();
  std::vector<uint64_t> changed;
  orig.TakeStateChanges(changed);
  REQUIRE(changed.empty());  // the engine took them after its last write

  // Both get the same inputs, straight through the lifecycle's API (the store and tags
  // they read are shared and do not change).
  const std::vector<uint64_t> ids = OneIds(e->profiles());
  REQUIRE(ids.size() > 20);
  const uint64_t stranger = 555000111;  // a person without a profile
  int64_t t = e->Now();
  const uint32_t order = e->profiles().EventType("order"), follow = e->profiles().EventType("follow");
  std::vector<std::string> orig_notes, fresh_notes;
  for (int round = 0; round < 6; ++round) {
    CAPTURE(round);
    t += (round % 2 ? 37 : 3) * kDay + 5 * kHour;
    for (cdp::Lifecycle* l : {&orig, &fresh.life}) {
      auto st = l->Advance(t);
      for (size_t i = static_cast<size_t>(round); i < ids.size(); i += 4) {
        cdp::LifeEvent ev;
        ev.oneid = ids[i];
        ev.type = i % 3 ? order : follow;
        ev.ts = t + static_cast<int64_t>(i) * 60000;
        l->OnEvent(ev);
      }
      cdp::LifeEvent ev;
      ev.oneid = stranger;
      ev.type = order;
      ev.ts = t + kHour;
      l->OnEvent(ev);
      auto resolve = [](uint64_t id, std::string_view, std::string_view) -> absl::StatusOr<uint64_t> { return id; };
      const std::string op = R"({"op":"set_state","machine":"nudge","state":"quiet","oneid":)" +
                             std::to_string(ids[round + 1]) + "}";
      REQUIRE(l->Apply(op, t + 2 * kHour, resolve).ok());
      if (round == 2) l->OnMerge(ids[7], ids[8], t + 3 * kHour);
      // Definitions change on both: a machine redefined (its persons stay, its timers are
      // scheduled again), one dropped, a new one entering everyone.
      if (round == 3) REQUIRE(l->Define(std::string(kMore).replace(std::string(kMore).find("20d"), 3, "9d"), t).ok());
      if (round == 4) {
        REQUIRE(l->Drop("machine", "weekly").ok());
        REQUIRE(l->Define(kTemp, t).ok());
      }
      REQUIRE(l->Ack(R"({"ids":[)" + std::to_string(4 + round * 3) + "]}").ok());
      // What the round returned and changed, to compare.
      l->TakeStateChanges(changed);
      std::sort(changed.begin(), changed.end());
      std::string note = "advance " + std::to_string(st.fired) + " " + std::to_string(st.transitions) + " " +
                         std::to_string(st.intents) + " " + std::to_string(st.next) + " changed";
      for (uint64_t c : changed) note += " " + std::to_string(c);
      (l == &orig ? orig_notes : fresh_notes).push_back(note);
    }
    CHECK(fresh_notes.back() == orig_notes.back());
    CHECK(Observed(fresh.life, e->profiles(), {stranger}) == Observed(orig, e->profiles(), {stranger}));
  }
  const std::vector<std::string> fed = FeedFrom(e->feed(), cursor);
  CHECK(fed.size() > 50);
  CHECK(FeedFrom(fresh.feed, 0) == fed);
  // Nothing hidden went astray either (the saved structs have no padding to differ in).
  CHECK(Saved(fresh.life) == Saved(orig));
}

TEST_CASE("lifecycle snapshot: cut or corrupt bytes fail with DataLoss, never a crash") {
  auto e = Built();
  const std::string bytes = Saved(e->lifecycle());
  auto load = [&](std::string_view b) {
    Fresh f(*e);
    return f.Load(b);
  };
  REQUIRE(load(bytes).ok());

  // Cut short anywhere: in the markers and definitions (densely), then across the rest.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < std::min<size_t>(bytes.size(), 2048); n += 5) cuts.push_back(n);
  for (size_t n = 2048; n < bytes.size(); n += bytes.size() / 150 + 1) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  for (size_t n : cuts) {
    CAPTURE(n);
    CHECK(load(std::string_view(bytes).substr(0, n)).code() == absl::StatusCode::kDataLoss);
  }

  // Where the persons begin: past the marker and the definitions.
  cdp::snap::Reader skip(bytes);
  REQUIRE(skip.Part("lifecycle"));
  for (uint64_t i = 0, n = skip.U64(); i < n; ++i) {
    skip.I64();
    skip.Str();
    skip.Str();
    skip.Str();
  }
  REQUIRE(skip.ok());
  const size_t persons_at = bytes.size() - skip.Left();
  auto with_u64 = [&](size_t at, uint64_t v) {
    std::string b = bytes;
    std::memcpy(b.data() + at, &v, 8);
    return b;
  };
  // Counts no bytes could hold: refused before anything is allocated for them.
  for (size_t at : {size_t{17}, persons_at}) {
    CAPTURE(at);
    absl::Status st = load(with_u64(at, uint64_t{1} << 60));
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(st.message()).find("cannot fit") != std::string::npos);
  }
  // A saved definition that no longer installs.
  std::string bad = bytes;
  const size_t brace = bad.find("{\n  \"machines\"");
  REQUIRE(brace != std::string::npos);
  bad[brace] = '[';
  absl::Status st = load(bad);
  CHECK(st.code() == absl::StatusCode::kDataLoss);
  CHECK(std::string(st.message()).find("definitions[0] no longer install") != std::string::npos);
  // A person listed twice.
  {
    cdp::snap::Reader r(std::string_view(bytes).substr(persons_at));
    std::vector<uint64_t> oneids;
    REQUIRE(r.Vec(oneids));
    size_t i = 1;
    while (i < oneids.size() && oneids[i] == 0) ++i;  // merged away: no longer listed
    REQUIRE(i + 1 < oneids.size());
    st = load(with_u64(persons_at + 8 + (i + 1) * 8, oneids[i]));
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(std::string(st.message()).find("listed twice") != std::string::npos);
  }
  // Any eight bytes overwritten: loaded or refused, never out of bounds (ASan builds).
  for (size_t at = persons_at; at + 8 <= bytes.size(); at += 8 * 13) {
    CAPTURE(at);
    st = load(with_u64(at, ~uint64_t{0}));
    CHECK((st.ok() || st.code() == absl::StatusCode::kDataLoss));
  }
  // Loading over definitions already installed is a caller's error, not bad bytes.
  Fresh used(*e);
  REQUIRE(used.life.Define(kTemp, 0).ok());
  cdp::snap::Reader r(bytes);
  CHECK(used.life.Load(r).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("lifecycle snapshot: definitions travel as the documents and drops that made them") {
  auto e = OpenEngine();
  Fresh orig(*e);
  // A document defined twice in a row is kept once; a dropped machine defined again
  // takes a new slot past its old one, which stays empty.
  for (const char* doc : {kTemp, kTemp}) REQUIRE(orig.life.Define(doc, 0).ok());
  REQUIRE(orig.life.Drop("machine", "temp").ok());
  REQUIRE(orig.life.Define(kMore, 0).ok());
  REQUIRE(orig.life.Define(kTemp, 0).ok());
  const std::string bytes = Saved(orig.life);
  cdp::snap::Reader r(bytes);
  REQUIRE(r.Part("lifecycle"));
  REQUIRE(r.U64() == 4);
  std::vector<std::string> ops;
  for (int i = 0; i < 4; ++i) {
    r.I64();
    std::string json(r.Str()), kind(r.Str()), name(r.Str());
    ops.push_back(json.empty() ? "drop " + kind + " " + name : json);
  }
  CHECK(ops == std::vector<std::string>{kTemp, "drop machine temp", kMore, kTemp});

  Fresh loaded(*e);
  REQUIRE(loaded.Load(bytes).ok());
  CHECK(loaded.life.CatalogJson() == orig.life.CatalogJson());
  CHECK(Saved(loaded.life) == bytes);
  // The loaded definitions are live: a person's event moves the machine in slot 3.
  for (Fresh* f : {&orig, &loaded}) {
    cdp::LifeEvent ev;
    ev.oneid = 42;
    ev.type = e->profiles().EventType("order");
    ev.ts = 1000;
    f->life.OnEvent(ev);
  }
  std::string a, b;
  orig.life.AppendPerson(a, 42);
  loaded.life.AppendPerson(b, 42);
  CHECK(a.find("\"temp\":{\"state\":\"b\"") != std::string::npos);
  CHECK(b == a);
}
