// Tag engine snapshots: the bundled demo data under every tag kind, saved and loaded into a
// fresh engine over the same profile store, compared output by output (catalogue, every
// person's tags, the bitmaps and vectors behind audiences, pending re-evaluations), then
// both moved on with the same inputs; cut and corrupted bytes fail with DataLoss; the
// bitmap encoding and its checks.
#include <cstring>
#include <set>

#include "../../src/audience.hpp"
#include "../../src/bitmap_io.hpp"
#include "../../src/snapshot.hpp"
#include "../../src/tags_internal.hpp"
#include "helpers.hpp"

using namespace cdptest;
using cdp::Engine;
using cdp::TagEngine;

namespace {


// Beside the bundled tags (rule, statistic, score, import, rfm by thresholds): the kinds
// and options they leave out, several of them time-dependent (windows, half-lives,
// days_since), a tag reading tags, rfm by quantiles (cut points from the population), and
// a condition given as a JSON AST.
constexpr const char* kMoreTags = R"J([
  {"name":"spend_band","kind":"bucket","description":"spend in bands","expr":"tags.spend","buckets":[
     {"max":100,"value":"under 100"},{"min":100,"max":1000,"value":"100 to 1000"},{"min":1000,"value":"1000 and over"}],
   "default":"none"},
  {"name":"orders_30d","kind":"statistic","fn":"count","event":"order","window":"30d"},
  {"name":"last_order","kind":"statistic","fn":"last","event":"order","type":"timestamp"},
  {"name":"lapsed","kind":"rule","when":"days_since(purchase) > 60"},
  {"name":"fav_channel","kind":"preference","event":"order","prop":"channel","weight":"amount","half_life_days":30},
  {"name":"top_cats","kind":"preference","event":["order","purchase"],"prop":"category","top":3,"window":"14d"},
  {"name":"heat","kind":"score","rules":[{"event":"order","points":10,"cap":20,"per":"week"},{"event":"mp_login","points":2}],
   "half_life_days":7,"window":"60d"},
  {"name":"rfm_q","kind":"rfm","quantiles":4,"default":"unscored"},
  {"name":"big_lapsed","kind":"rule","version":3,"when":"tags.spend_band == \"1000 and over\" && tags.lapsed"},
  {"name":"sh_active","kind":"rule","description":"as a UI writes it","when":{"op":"||","args":[
     {"op":">=","args":[{"agg":"count","event":"order","window":{"last_days":30}},{"lit":1,"type":"int"}]},
     {"op":"==","args":[{"ref":"attrs","name":"city"},{"lit":"上海","type":"string"}]}]}}
])J";

// Orders with string properties (the bundled data has none) for preferences, on some of
// the bundled persons and on new ones, over the three weeks before end.
std::string PropertyOrders(int64_t end) {
  static const char* kMobiles[] = {"135-9695-9122", "+86 138 1726 5409", "173-7236-9580", "15967709919",
                                   "183 2664 1043", "185 3868 8677"};
  static const char* kChannels[] = {"tmall", "jd", "douyin"};
  static const char* kCats[] = {"skincare", "makeup", "fragrance", "body", "hair"};
  std::vector<std::string> lines;
  for (int i = 0; i < 60; ++i) {
    std::string mobile = i % 3 == 0 ? kMobiles[i % 6] : "1390000" + std::to_string(1000 + i % 17);
    const int64_t ts = end - (i % 21) * kDay - (i % 5) * kHour;
    lines.push_back(Rec("shop", ts, "\"mobile\":\"" + mobile + "\"",
                        "\"event\":{\"type\":\"" + std::string(i % 4 == 0 ? "purchase" : "order") +
                            "\",\"amount\":" + std::to_string(20 + (i * 37) % 900) + ",\"channel\":\"" +
                            kChannels[i % 3] + "\",\"category\":\"" + kCats[(i * 7) % 5] + "\"}"));
  }
  return Join(lines);
}

std::string Define(TagEngine& t, const std::string& json, int64_t now) {
  auto r = t.Define(json, now);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

// An engine with a rich tag state: definitions before and after the data, a dropped tag
// (a gap in the ids), a redefinition that leaves a reader time-dependent (that flag is
// sticky), incremental updates after the definitions, and an Advance.
std::unique_ptr<Engine> Build() {
  auto e = OpenEngine();
  REQUIRE(e->DefineTags(DataFile("tags.json")).ok());
  REQUIRE(e->DefineTags(R"({"name":"scratch","kind":"rule","when":"count(order) > 3"})").ok());
  REQUIRE(e->DropTag("scratch").ok());
  std::string all;
  for (const char* f : {"crm", "pos", "tmall", "wechat", "wecom", "app", "events"}) all += DataFile(std::string(f) + ".ndjson");
  REQUIRE(e->IngestNdjson(all, false).ok());
  const int64_t end = e->Now();
  Ingest(*e, PropertyOrders(end));
  REQUIRE(e->DefineTags(kMoreTags).ok());
  REQUIRE(e->DefineTags(R"([{"name":"base","kind":"statistic","fn":"count","event":"order","window":"30d"},
                            {"name":"derived","kind":"rule","when":"tags.base > 0"}])")
              .ok());
  REQUIRE(e->DefineTags(R"({"name":"base","kind":"statistic","version":2,"fn":"count","event":"order"})").ok());
  Ingest(*e, Join({Rec("shop", end + kHour, "\"mobile\":\"13900001003\"",
                       "\"event\":{\"type\":\"order\",\"amount\":1500,\"channel\":\"jd\",\"category\":\"hair\"}"),
                   Rec("crm", end + kHour, "\"mobile\":\"13900001004\"", "\"attrs\":{\"city\":\"杭州\",\"gender\":\"M\"}")}));
  REQUIRE(e->Advance(end + kDay).ok());
  return e;
}

std::unique_ptr<TagEngine> Fresh(Engine& e, cdp::Feed& feed) {
  auto t = std::make_unique<TagEngine>(e.profiles(), feed, e.expr_limits(), e.config().limits.max_tags);
  t->SetStates(&e.lifecycle());
  return t;
}

std::string SaveTags(const TagEngine& t) {
  cdp::snap::Writer w;
  t.Save(w);
  return w.bytes();
}

// Every observable output, and the columns and bitmaps behind them.
void CheckSame(const TagEngine& a, const TagEngine& b) {
  CHECK(a.CatalogJson() == b.CatalogJson());
  CHECK(Persons(a) == Persons(b));
  CHECK(a.order() == b.order());
  CHECK(a.evaluations() == b.evaluations());
  CHECK(a.universe() == b.universe());
  for (uint32_t t : a.order()) {
    INFO("tag ", a.def(t).name);
    const cdp::tags::Column& x = *a.column(t);
    const cdp::tags::Column& y = *b.column(t);
    CHECK(x.with_value == y.with_value);
    CHECK(x.code == y.code);
    CHECK(x.enc == y.enc);
    CHECK(x.list == y.list);
    CHECK(x.strings == y.strings);
    CHECK(x.code_kind == y.code_kind);
    CHECK(x.by_code == y.by_code);
    CHECK(x.exists == y.exists);
    CHECK(x.slices == y.slices);
    REQUIRE(x.lists.size() == y.lists.size());
    for (size_t i = 0; i < x.lists.size(); ++i) CHECK(x.lists[i].codes == y.lists[i].codes);
    // The rebuilt indexes answer as the originals do.
    for (uint32_t c = 1; c <= x.strings.size(); ++c) CHECK(y.FindCode(x.CodeValue(c)) == c);
  }
}

// The feed events from cursor on, rendered with their texts.
std::vector<std::string> Events(const cdp::Feed& f, uint64_t cursor) {
  std::vector<std::string> out;
  f.Read(cursor, UINT32_MAX, [&](const cdp::FeedEvent& e) {
    out.push_back(std::string(cdp::FeedKindName(e.kind)) + " ts=" + std::to_string(e.ts) + " a=" + std::to_string(e.a) +
                  " b=" + std::to_string(e.b) + " count=" + std::to_string(e.count) + " " +
                  (e.text == 0xFFFFFFFFu ? "" : f.text(e.text)));
  });
  return out;
}

}  // namespace

TEST_CASE("tag snapshots: a loaded engine equals the original, and moves on exactly as it does") {
  auto e = Build();
  TagEngine& orig = e->tags();
  REQUIRE(orig.order().size() >= 20);
  const uint64_t engine_feed = e->feed().next();
  const std::string bytes = SaveTags(orig);

  cdp::Feed feed;
  auto loaded = Fresh(*e, feed);
  cdp::snap::Reader r(bytes);
  auto st = loaded->Load(r);
  REQUIRE_MESSAGE(st.ok(), std::string(st.message()));
  CHECK(r.done());
  // Loading evaluates nothing and tells nobody.
  CHECK(feed.next() == 1);
  CHECK(e->feed().next() == engine_feed);
  CHECK(loaded->evaluations() == orig.evaluations());
  CheckSame(orig, *loaded);

  // The state covers what the test means to cover.
  Json cat(orig.CatalogJson());
  std::set<std::string> kinds;
  bool sticky = false, list_tag = false;
  for (auto t : Arr(cat["tags"])) {
    kinds.insert(std::string(t["kind"].get_string().value()));
    if (t["name"].get_string().value() == "derived") sticky = t["time_dependent"].get_bool().value();
    if (t["index"].get_string().value() == "list") list_tag = U(t["persons"]) > 0;
  }
  CHECK(kinds == std::set<std::string>{"bucket", "import", "preference", "rfm", "rule", "score", "statistic"});
  CHECK(sticky);    // derived read a windowed base, redefined since without a window
  CHECK(list_tag);  // top_cats holds lists
  CHECK(orig.column(static_cast<uint32_t>(orig.Find("rfm_q")))->with_value > 0);
  CHECK(orig.Find("scratch") < 0);

  // Audiences: the bitmap planner gives the same members on both, and on the loaded one
  // the same as evaluating person by person.
  const int64_t now = e->Now();
  for (const char* text : {"tags.value_tier == \"high\"", "tags.spend >= yuan(300) && tags.recent_buyer",
                           "tags.orders_30d > 0 || tags.stage == \"interest\"", "\"skincare\" in tags.top_cats",
                           "tags.heat > 5 && !(tags.fav_channel == \"jd\")", "tags.rfm_q != \"unscored\"",
                           "tags.last_order >= timestamp(\"2023-03-01T00:00:00+08:00\")", "tags.derived",
                           "tags.city == \"上海\" || tags.gender == \"M\"", "tags.sh_active && tags.orders > 0"}) {
    INFO(text);
    auto x = e->CompileExpr(text, false);
    REQUIRE_MESSAGE(x.ok(), std::string(x.status().message()));
    auto a = cdp::SelectAudience(orig, e->profiles(), *x, now, e->expr_limits(), nullptr);
    auto b = cdp::SelectAudience(*loaded, e->profiles(), *x, now, e->expr_limits(), nullptr);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
    CHECK(*b == cdp::SelectAudienceByScan(*loaded, *x, now, e->expr_limits()));
  }

  // Time: the same persons re-evaluated, the same changes (feed events with their
  // reasons), the same next due time, day after day across windows and half-lives.
  uint64_t ca = e->feed().next(), cb = feed.next();
  uint64_t moved = 0;
  std::vector<int64_t> times = {now, now + kHour};
  for (int64_t t = now + kDay / 2; t <= now + 75 * kDay; t += kDay / 2) times.push_back(t);
  for (int64_t t : times) {
    INFO("advance to ", t);
    TagEngine::AdvanceStats sa = orig.Advance(t), sb = loaded->Advance(t);
    CHECK(sa.persons == sb.persons);
    CHECK(sa.changed == sb.changed);
    CHECK(sa.next == sb.next);
    moved += sa.changed;
    auto ea = Events(e->feed(), ca), eb = Events(feed, cb);
    CHECK(ea == eb);
    ca = e->feed().next();
    cb = feed.next();
  }
  CHECK(moved > 0);
  CheckSame(orig, *loaded);

  // Definitions after the load: a new tag reading loaded ones, a redefinition (its readers
  // are re-evaluated against the loaded values), a drop. Same reports, same feed.
  const int64_t later = now + 80 * kDay;
  for (const char* defs : {R"({"name":"vip","kind":"rule","rules":[{"when":"tags.value_tier == \"high\" && tags.heat > 0","value":"hot"},
                                {"when":"tags.value_tier == \"high\"","value":"warm"}],"default":"cold"})",
                           R"({"name":"spend_band","kind":"bucket","version":2,"expr":"tags.spend","buckets":[
                                {"max":300,"value":"low"},{"min":300,"value":"high"}]})",
                           R"({"name":"rfm_q","kind":"rfm","quantiles":3})"}) {
    CHECK(Define(orig, defs, later) == Define(*loaded, defs, later));
  }
  CHECK(orig.Drop("big_lapsed").ok());
  CHECK(loaded->Drop("big_lapsed").ok());
  CHECK(Events(e->feed(), ca) == Events(feed, cb));
  CheckSame(orig, *loaded);

  // And a snapshot of the loaded engine is the snapshot of the original.
  CHECK(SaveTags(*loaded) == SaveTags(orig));
}

TEST_CASE("tag snapshots: an engine without tags, and one whose tags were all dropped") {
  auto e = OpenEngine();
  Ingest(*e, Join({Rec("shop", 1709222400000, "\"mobile\":\"13900000001\"", "\"event\":{\"type\":\"order\",\"amount\":5}"),
                   Rec("shop", 1709222400000, "\"mobile\":\"13900000002\"", "\"event\":{\"type\":\"order\",\"amount\":7}")}));
  for (int round = 0; round < 2; ++round) {
    cdp::Feed feed;
    auto loaded = Fresh(*e, feed);
    const std::string bytes = SaveTags(e->tags());
    cdp::snap::Reader r(bytes);
    auto st = loaded->Load(r);
    REQUIRE_MESSAGE(st.ok(), std::string(st.message()));
    CHECK(r.done());
    CHECK(loaded->universe().cardinality() == 2);
    CheckSame(e->tags(), *loaded);
    REQUIRE(e->DefineTags(R"({"name":"big","kind":"rule","when":"sum(order.amount) > 6"})").ok());
    REQUIRE(e->DropTag("big").ok());
  }
}

TEST_CASE("tag snapshots: cut or corrupted bytes fail with DataLoss, never crash") {
  auto e = Build();
  const std::string bytes = SaveTags(e->tags());
  REQUIRE(bytes.size() > 2000);
  cdp::Feed feed;
  const uint64_t engine_feed = e->feed().next();
  auto load = [&](std::string_view b) {
    auto t = Fresh(*e, feed);
    cdp::snap::Reader r(b);
    return t->Load(r);
  };
  REQUIRE(load(bytes).ok());

  // Every cut in the first definition and its column, then cuts across the rest.
  std::vector<size_t> cuts;
  for (size_t n = 0; n < 300; ++n) cuts.push_back(n);
  for (size_t n = 300; n < bytes.size(); n += 1 + bytes.size() / 400) cuts.push_back(n);
  cuts.push_back(bytes.size() - 1);
  for (size_t n : cuts) {
    INFO("cut at ", n, " of ", bytes.size());
    auto st = load(std::string_view(bytes).substr(0, n));
    CHECK(st.code() == absl::StatusCode::kDataLoss);
  }

  // A count past the bytes left: the number of tags (after the part name and the
  // evaluation counter).
  {
    std::string bad = bytes;
    const size_t at = 8 + 4 + 8;
    uint64_t tags;
    std::memcpy(&tags, bad.data() + at, 8);
    REQUIRE(tags == e->tags().order().size());
    for (uint64_t n : {uint64_t{1} << 40, ~uint64_t{0}, uint64_t{100000}}) {
      std::memcpy(bad.data() + at, &n, 8);
      auto st = load(bad);
      CHECK(st.code() == absl::StatusCode::kDataLoss);
    }
  }

  // Any byte changed anywhere: either still a consistent state (a description's letter,
  // a counter, a number's value) or DataLoss; never a crash, never another error.
  size_t failed = 0, tried = 0;
  for (size_t i = 0; i < bytes.size(); i += i < 300 ? 1 : 1 + bytes.size() / 500) {
    for (uint8_t x : {uint8_t{0xFF}, uint8_t{0x01}}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(bad[i] ^ x);
      auto st = load(bad);
      INFO("byte ", i, " xor ", int{x}, ": ", st.message());
      CHECK((st.ok() || st.code() == absl::StatusCode::kDataLoss));
      failed += !st.ok();
      ++tried;
    }
  }
  CHECK(failed > tried / 2);
  // The failed loads told nobody.
  CHECK(feed.next() == 1);
  CHECK(e->feed().next() == engine_feed);
}

TEST_CASE("tag snapshots: Load wants a fresh engine") {
  auto e = Build();
  const std::string bytes = SaveTags(e->tags());
  cdp::snap::Reader r(bytes);
  CHECK(e->tags().Load(r).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("bitmap snapshots: round trips, and malformed bitmaps are refused") {
  cdp::Bitmap sparse, dense, runs, mixed;
  for (uint32_t i = 0; i < 1000; ++i) sparse.add(i * 7919u);
  for (uint32_t i = 0; i < 70000; ++i)
    if (i % 3) dense.add(i);
  runs.addRange(5, 200000);
  runs.runOptimize();
  mixed = sparse | dense | runs;
  mixed.add(UINT32_MAX);
  mixed.runOptimize();
  cdp::snap::Writer w;
  const std::vector<cdp::Bitmap> all = {cdp::Bitmap(), sparse, dense, runs, mixed};
  for (const auto& b : all) cdp::SaveBitmap(w, b);
  {
    cdp::snap::Reader r(w.bytes());
    for (const auto& b : all) {
      cdp::Bitmap got = cdp::Bitmap::bitmapOf(1, 42u);  // replaced, not added to
      REQUIRE(cdp::LoadBitmap(r, got));
      CHECK(got == b);
      CHECK(got.getSizeInBytes() == b.getSizeInBytes());  // run containers stay runs
    }
    CHECK(r.done());
    CHECK(r.ok());
  }
  // Cut anywhere: refused before deserializing.
  for (size_t n = 0; n < w.bytes().size(); n += 1 + n / 4) {
    cdp::snap::Reader r(std::string_view(w.bytes()).substr(0, n));
    bool all_read = true;
    for (size_t i = 0; i < all.size() && all_read; ++i) {
      cdp::Bitmap got;
      all_read = cdp::LoadBitmap(r, got);
      if (!all_read) CHECK(got.isEmpty());
    }
    CHECK(!all_read);
    CHECK(r.status().code() == absl::StatusCode::kDataLoss);
  }
  auto refused = [](const std::string& payload) {
    cdp::snap::Writer bw;
    bw.Str(payload);
    cdp::snap::Reader r(bw.bytes());
    cdp::Bitmap got;
    const bool ok = cdp::LoadBitmap(r, got);
    INFO(r.status().message());
    CHECK(got.isEmpty());
    return !ok && r.status().code() == absl::StatusCode::kDataLoss;
  };
  auto le = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>(v >> (8 * i));
  };
  // Bytes after a whole bitmap, and a bitmap cut short inside its string.
  {
    std::string s(sparse.getSizeInBytes(), '\0');
    sparse.write(s.data());
    CHECK(refused(s + "x"));
    CHECK(refused(s.substr(0, s.size() - 1)));
    CHECK(refused(""));
  }
  // One run container whose run ends past 65535: CRoaring's bounded reader takes it, and
  // setting its range in a bitset would write out of bounds.
  {
    std::string s;
    le(s, 12347, 4);  // cookie with runs, one container
    s += '\x01';      // container 0 is a run container
    le(s, 0, 2);      // key
    le(s, 0, 2);      // cardinality - 1 (not used for runs)
    le(s, 1, 2);      // one run
    le(s, 65000, 2);
    le(s, 1000, 2);
    CHECK(refused(s));
  }
  // An array container out of order, and keys out of order.
  {
    std::string s;
    le(s, 12346, 4);  // cookie without runs
    le(s, 1, 4);      // one container
    le(s, 0, 2);
    le(s, 1, 2);      // two values
    le(s, 16, 4);     // its offset
    le(s, 9, 2);
    le(s, 3, 2);
    CHECK(refused(s));
  }
  {
    std::string s;
    le(s, 12346, 4);
    le(s, 2, 4);  // two containers, keys 5 then 2
    le(s, 5, 2);
    le(s, 0, 2);
    le(s, 2, 2);
    le(s, 0, 2);
    le(s, 24, 4);
    le(s, 26, 4);
    le(s, 1, 2);
    le(s, 1, 2);
    CHECK(refused(s));
  }
}
