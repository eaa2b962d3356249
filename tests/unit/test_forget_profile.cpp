// Erasure in the profile store and the tags (ProfileStore::Forget, TagEngine::Forget):
// three persons share a city; the forgotten one also has values no one else has (a name,
// an earlier name and city, an email, a list item, an event property) and tags made of
// them. After the forget: the person is not found, their slot leaves every column, bitmap
// and the universe, the others read as before and as in an engine that never saw the
// person, the saved bytes and the wiped memory hold none of the unique values but still
// the shared ones, a loaded copy equals the original and goes on the same under new
// records (one re-using a wiped value), and the order of the two layers' calls, batching,
// and a forget by an absorbed OneID do not matter.
#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "../../src/json_util.hpp"
#include "../../src/tags_internal.hpp"
#include "cdp/profile.hpp"
#include "cdp/tags.hpp"
#include "helpers.hpp"
#include "record_parser.hpp"
#include "snapshot.hpp"

using namespace cdptest;
using cdp::Engine;
using cdp::NodeId;
using cdp::Profile;
using cdp::ProfileStore;
using cdp::TagEngine;

namespace {


constexpr const char* kConfig = R"({"attributes":{
    "name":      {"survivorship":"latest"},
    "email":     {"survivorship":"latest"},
    "city":      {"survivorship":"latest"},
    "interests": {"type":"list","survivorship":"union"}}})";

// Strings (import), a list item's JSON (import of a list), preferences over an event
// property (a string and a list), a number, a bool reading a tag, and a windowed count (a
// pending re-evaluation per person).
constexpr const char* kTags = R"J([
  {"name":"city","kind":"import"},
  {"name":"name","kind":"import"},
  {"name":"interests","kind":"import"},
  {"name":"notes","kind":"preference","event":"order","prop":"note","top":3},
  {"name":"channels","kind":"preference","event":"order","prop":"channel","top":3},
  {"name":"spend","kind":"statistic","expr":"sum(order.amount)"},
  {"name":"big","kind":"rule","when":"tags.spend > yuan(50)"},
  {"name":"recent","kind":"rule","when":"count(order, 30d) > 0"}
])J";

// What only the forgotten person had (now or before), and what others have.
const std::vector<std::string> kUnique = {"Zhang Wuji", "Zhang Old", "zhang.wuji@example.cn", "kungfu-secret",
                                          "gift for Zhao Min", "杭州"};
const std::vector<std::string> kKept = {"上海", "coffee", "Li Lei", "Han Meimei", "han@example.cn", "tmall", "birthday"};

std::string Order(std::string_view ids, int64_t ts, int yuan, std::string_view channel, std::string_view note,
                  std::string_view attrs = "") {
  std::string extra = "\"event\":{\"type\":\"order\",\"amount\":" + std::to_string(yuan) + ",\"channel\":\"" +
                      std::string(channel) + "\",\"note\":\"" + std::string(note) + "\"}";
  if (!attrs.empty()) extra = "\"attrs\":{" + std::string(attrs) + "}," + extra;
  return Rec("shop", ts, ids, extra);
}

constexpr const char* kA = R"("mobile":"13800000001")";
constexpr const char* kB = R"("mobile":"13800000002")";
constexpr const char* kZ = R"("mobile":"13800000009")";
constexpr const char* kZMember = R"("member_no":"Z-0009")";

// The records of A and B; with_z adds Z's: a name and city under a mobile that a later
// record from the same source overwrites (the earlier strings are then used by no one),
// an email and interests under a member number (a second person), then an order carrying
// both (a merge).
std::vector<std::string> Batches(bool with_z) {
  std::vector<std::string> first = {
      Rec("crm", kMar1, kA, R"("attrs":{"name":"Li Lei","city":"上海","interests":["coffee","tea"]})"),
      Rec("crm", kMar1, kB, R"("attrs":{"name":"Han Meimei","city":"上海","email":"han@example.cn"})"),
      Order(kA, kMar1 + kDay, 100, "tmall", "birthday"),
      Order(kB, kMar1 + 2 * kDay, 30, "jd", "birthday")};
  if (!with_z) return {Join(first)};
  first.push_back(Rec("crm", kMar1, kZ, R"("attrs":{"name":"Zhang Old","city":"杭州"})"));
  first.push_back(Rec("crm", kMar1 + kDay, kZMember,
                      R"("attrs":{"email":"zhang.wuji@example.cn","interests":["coffee","kungfu-secret"]})"));
  return {Join(first),
          Join({Rec("crm", kMar1 + 2 * kDay, kZ, R"("attrs":{"name":"Zhang Wuji","city":"上海"})"),
                Order(std::string(kZ) + "," + kZMember, kMar1 + 3 * kDay, 880, "tmall", "gift for Zhao Min")})};
}

bool Contains(const std::string& hay, std::string_view needle) { return hay.find(needle) != std::string::npos; }

// Views into the store's string pool of the unique values p refers to (list items and
// event properties included).
void UniqueViews(const ProfileStore& s, const Profile& p, std::vector<std::string_view>& out) {
  auto add = [&](const cdp::Value& v) {
    auto one = [&](std::string_view x) {
      if (std::find(kUnique.begin(), kUnique.end(), x) != kUnique.end()) out.push_back(x);
    };
    if (v.kind == cdp::ValueKind::kString) one(v.str());
    if (v.kind == cdp::ValueKind::kList)
      for (uint32_t i = 0; i < v.len; ++i) one(v.items[i].str());
  };
  for (const auto& a : p.attrs) add(s.Load(a.value));
  for (const auto& o : p.obs) add(s.Load(o.value));
  for (const auto& pr : p.props) add(s.Load(pr.value));
}

// An engine with the tags and the records; z_absorbed: the OneID Z's member number had
// before the merge; z_views: views of Z's unique strings, the overwritten ones included.
std::unique_ptr<Engine> Build(bool with_z, uint64_t* z_absorbed = nullptr,
                              std::vector<std::string_view>* z_views = nullptr) {
  auto e = OpenEngine(kConfig);
  REQUIRE(e->DefineTags(kTags).ok());
  auto batches = Batches(with_z);
  Ingest(*e, batches[0]);
  if (!with_z) return e;
  const uint64_t member = Resolve(*e, "member_no", "Z-0009");
  const uint64_t mobile = Resolve(*e, "mobile", "13800000009");
  REQUIRE(member != mobile);
  if (z_absorbed) *z_absorbed = member;
  if (z_views) UniqueViews(e->profiles(), *e->profiles().Find(mobile), *z_views);
  Ingest(*e, batches[1]);
  REQUIRE(Resolve(*e, "member_no", "Z-0009") == mobile);
  if (z_views) UniqueViews(e->profiles(), *e->profiles().Find(mobile), *z_views);
  return e;
}

uint64_t Id(Engine& e, std::string_view ids) {
  const std::string s(ids);
  const size_t colon = s.find("\":\"");
  return Resolve(e, s.substr(1, colon - 1), s.substr(colon + 3, s.size() - colon - 4));
}

std::string SaveStore(const ProfileStore& s) {
  cdp::snap::Writer w;
  s.Save(w);
  return w.bytes();
}

std::string SaveTags(const TagEngine& t) {
  cdp::snap::Writer w;
  t.Save(w);
  return w.bytes();
}

absl::Status Load(ProfileStore& s, std::string_view bytes) {
  cdp::snap::Reader r(bytes);
  absl::Status st = s.Load(r);
  if (st.ok() && !r.done()) return absl::DataLossError("bytes left over");
  return st;
}

uint64_t Count(Engine& e, const std::string& expr) {
  std::string req = "{\"expr\":";
  cdp::json::AppendString(req, expr);
  auto r = e.Audience("count", req + "}");
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  Json j(*r);
  return U(j["count"]);
}

// What a host reads of a person: the document and the tags.
std::string Render(const Engine& e, uint64_t oneid) {
  auto doc = e.PersonJson(oneid, false);
  auto tags = e.PersonTags(oneid);
  REQUIRE(doc.ok());
  REQUIRE(tags.ok());
  return *doc + "\n" + *tags;
}

std::string Str(const cdp::Stored& v) { return std::to_string(static_cast<int>(v.kind)) + ":" + std::to_string(v.bits); }

// Every slot's stored arrays, internal ids included (string and list ids, identifier set
// indexes), field by field: Save's bytes carry the structs' padding, which differs
// between stores that hold the same.
std::string Raw(const ProfileStore& s) {
  std::string o;
  for (uint32_t slot = 0; slot < s.slots(); ++slot) {
    const Profile* p = s.AtSlot(slot);
    o += "slot " + std::to_string(slot);
    if (!p) {
      o += " free\n";
      continue;
    }
    o += " oneid " + std::to_string(p->oneid) + " cells_from " + std::to_string(p->cells_from) + " seen " +
         std::to_string(p->first_seen) + ".." + std::to_string(p->last_seen) + "\ncells";
    for (const auto& c : p->cells)
      o += " " + std::to_string(c.type) + "/" + std::to_string(c.day) + "/" + std::to_string(c.count) + "/" +
           std::to_string(c.amount);
    o += "\nattrs";
    for (const auto& a : p->attrs)
      o += " " + std::to_string(a.attr) + "=" + Str(a.value) + "@" + std::to_string(a.source) + "/" + std::to_string(a.ts);
    o += "\nid_counts";
    for (const auto& c : p->id_counts) o += " " + std::to_string(c.type) + ":" + std::to_string(c.count);
    o += "\nevents";
    for (const auto& e : p->events)
      o += " " + std::to_string(e.key) + "/" + std::to_string(e.amount) + "/" + std::to_string(e.idset) + "/" +
           std::to_string(e.props);
    o += "\nprops";
    for (const auto& pr : p->props) o += " " + std::to_string(pr.key) + "=" + Str(pr.value);
    o += "\nidsets";
    for (const auto& x : p->idsets)
      o += " " + std::to_string(x.hash) + "/" + std::to_string(x.nodes_off) + "+" + std::to_string(x.nodes_len) + "/" +
           std::to_string(x.source) + "/" + std::to_string(x.first_ts) + ".." + std::to_string(x.last_ts) + "/" +
           std::to_string(x.records);
    o += "\nnodes";
    for (NodeId n : p->idset_nodes) o += " " + std::to_string(n);
    o += "\nobs";
    for (const auto& x : p->obs)
      o += " " + std::to_string(x.attr) + "/" + std::to_string(x.idset) + "=" + Str(x.value) + "@" + std::to_string(x.ts);
    o += "\n";
  }
  return o;
}

std::string Canonicals(const ProfileStore& s) {
  std::string out;
  for (uint32_t slot = 0; slot < s.slots(); ++slot)
    if (const Profile* p = s.AtSlot(slot)) out += std::to_string(slot) + " " + std::to_string(p->oneid) + "\n" + s.Canonical(*p);
    else out += std::to_string(slot) + " free\n";
  return out;
}

// No column, bitmap or the universe holds the slot.
void CheckSlotGone(const TagEngine& t, uint32_t slot) {
  CHECK(!t.universe().contains(slot));
  for (uint32_t tag : t.order()) {
    INFO("tag ", t.def(tag).name);
    const cdp::tags::Column& c = *t.column(tag);
    CHECK(!c.Has(slot));
    CHECK(t.Get(tag, slot).kind == cdp::ValueKind::kNull);
    for (const auto& b : c.by_code) CHECK(!b.contains(slot));
    CHECK(!c.exists.contains(slot));
    for (const auto& b : c.slices) CHECK(!b.contains(slot));
  }
}

// Every value a column holds as text (category values and list items).
std::vector<std::string> ColumnTexts(const TagEngine& t) {
  std::vector<std::string> out;
  for (uint32_t tag : t.order())
    for (const std::string& s : t.column(tag)->strings) out.push_back(s);
  return out;
}

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

// Files the same records into two stores over one graph the way the engine does (link,
// move the facts of persons whose identity changed, file, flush), then brings each store's
// tags up to date.
class Twins {
 public:
  Twins(Engine& e, ProfileStore& a, ProfileStore& b, TagEngine& ta, TagEngine& tb)
      : e_(e), cfg_(e.config()), sources_(a.sources()), parser_(cfg_, sources_), a_(a), b_(b), ta_(ta), tb_(tb) {}

  void Records(const std::string& ndjson, int64_t now) {
    cdp::Batch batch;
    parser_.ParseNdjson(ndjson, batch);
    REQUIRE(batch.errors.empty());
    REQUIRE(sources_.size() == a_.sources().size());  // no new source: the engine's table is not ours
    const uint64_t from = e_.feed().next();
    cdp::LinkStats st;
    std::vector<NodeId> nodes(batch.ids.size(), cdp::kNoNode);
    for (const cdp::Record& r : batch.records) e_.graph().AddRecord(batch, r, ++seq_, st, nodes.data() + r.ids_begin);
    std::vector<uint64_t> ids;
    e_.feed().Read(from, UINT32_MAX, [&](const cdp::FeedEvent& ev) {
      if (ev.kind == cdp::FeedEvent::Kind::kMerged) {
        ids.push_back(ev.a);
        ids.push_back(ev.b);
      }
    });
    a_.Reconcile(ids);
    b_.Reconcile(ids);
    for (const cdp::Record& r : batch.records)
      CHECK(a_.AddRecord(batch, r, nodes.data() + r.ids_begin) == b_.AddRecord(batch, r, nodes.data() + r.ids_begin));
    a_.Flush();
    b_.Flush();
    ta_.Update(now);
    tb_.Update(now);
  }

 private:
  Engine& e_;
  cdp::EngineConfig cfg_;
  cdp::NameTable sources_;
  cdp::RecordParser parser_;
  ProfileStore& a_;
  ProfileStore& b_;
  TagEngine& ta_;
  TagEngine& tb_;
  uint64_t seq_ = uint64_t{1} << 40;
};

}  // namespace

TEST_CASE("forget: the person's profile and tags go, the others stay as they were") {
  uint64_t absorbed = 0;
  std::vector<std::string_view> z_views;  // into the pool's memory, which the pool keeps
  auto e = Build(true, &absorbed, &z_views);
  auto never = Build(false);
  ProfileStore& store = e->profiles();
  TagEngine& tags = e->tags();
  const uint64_t a = Id(*e, kA), b = Id(*e, kB), z = Id(*e, kZ);
  REQUIRE(absorbed != 0);
  REQUIRE(absorbed != z);
  const int64_t z_slot = store.SlotOf(z);
  REQUIRE(z_slot >= 0);
  const int64_t now = e->Now();
  std::sort(z_views.begin(), z_views.end());
  z_views.erase(std::unique(z_views.begin(), z_views.end()), z_views.end());
  CHECK(z_views.size() == kUnique.size());

  // The state holds what the test is about: Z's unique values in both layers' bytes, Z
  // counted in the audiences.
  const std::string store_before = SaveStore(store), tags_before = SaveTags(tags);
  for (const auto& s : kUnique) CHECK_MESSAGE(Contains(store_before, s), s);
  for (const char* s : {"Zhang Wuji", "gift for Zhao Min", "kungfu-secret"}) CHECK_MESSAGE(Contains(tags_before, s), s);
  CHECK(Count(*e, "tags.city == \"上海\"") == 3);
  CHECK(Count(*e, "tags.big") == 2);
  CHECK(Count(*e, "\"tmall\" in tags.channels") == 2);
  CHECK(tags.universe().cardinality() == 3);
  const std::string render_a = Render(*e, a), render_b = Render(*e, b);
  // Those renders are the ones of an engine that never saw Z.
  CHECK(render_a == Render(*never, a));
  CHECK(render_b == Render(*never, b));

  const uint64_t profiles = store.counts().profiles;

  // The layers' calls as the engine makes them: tags first (they find the slot through the
  // store), then the store, then the Update that follows every write. A forget by the
  // absorbed OneID reaches the person it now is.
  const uint64_t feed = e->feed().next();
  CHECK(tags.Forget(std::span<const uint64_t>(&absorbed, 1)) == 1);
  CHECK(store.Forget(absorbed));
  tags.Update(now);
  CHECK(e->feed().next() == feed);  // neither layer tells the feed

  // Gone from the store.
  CHECK(store.Find(z) == nullptr);
  CHECK(store.SlotOf(z) == -1);
  CHECK(store.SlotOf(absorbed) == -1);
  CHECK(store.AtSlot(static_cast<uint32_t>(z_slot)) == nullptr);
  CHECK(store.counts().profiles == profiles - 1);
  CHECK(!store.Forget(z));  // nothing left to forget
  for (std::string_view v : z_views) CHECK(AllZero(v));
  // Gone from the tags: no value, no bit, no audience.
  CheckSlotGone(tags, static_cast<uint32_t>(z_slot));
  CHECK(tags.universe().cardinality() == 2);
  CHECK(Count(*e, "tags.city == \"上海\"") == 2);
  CHECK(Count(*e, "tags.big") == 1);
  CHECK(Count(*e, "\"tmall\" in tags.channels") == 1);
  CHECK(Count(*e, "\"gift for Zhao Min\" in tags.notes") == 0);
  for (const std::string& s : ColumnTexts(tags))
    for (const auto& u : kUnique) CHECK_MESSAGE(!Contains(s, u), s);
  // The catalogue counts the values held: A's and B's names, not Z's two, now or before.
  {
    Json cat(tags.CatalogJson());
    uint64_t names = 0;
    for (auto t : Arr(cat["tags"]))
      if (t["name"].get_string().value() == "name") names = U(t["values"]);
    CHECK(names == 2);
  }
  // The others read as before, and as if Z had never been.
  CHECK(Render(*e, a) == render_a);
  CHECK(Render(*e, b) == render_b);

  // Neither layer's bytes hold a value only Z had; the shared ones stay.
  const std::string store_after = SaveStore(store), tags_after = SaveTags(tags);
  for (const auto& s : kUnique) {
    CHECK_MESSAGE(!Contains(store_after, s), s);
    CHECK_MESSAGE(!Contains(tags_after, s), s);
  }
  for (const auto& s : kKept) CHECK_MESSAGE(Contains(store_after, s), s);
  for (const char* s : {"上海", "Li Lei", "tmall", "birthday"}) CHECK_MESSAGE(Contains(tags_after, s), s);

  // A loaded copy of both layers equals the original, byte for byte and slot by slot.
  ProfileStore store2(e->config(), e->graph(), store.sources());
  REQUIRE(Load(store2, store_after).ok());
  CHECK(SaveStore(store2) == store_after);
  CHECK(Canonicals(store2) == Canonicals(store));
  cdp::Feed feed2;
  TagEngine tags2(store2, feed2, e->expr_limits(), e->config().limits.max_tags);
  {
    cdp::snap::Reader r(tags_after);
    auto st = tags2.Load(r);
    REQUIRE_MESSAGE(st.ok(), std::string(st.message()));
    CHECK(r.done());
  }
  CHECK(SaveTags(tags2) == tags_after);
  CHECK(Persons(tags2) == Persons(tags));

  // Both go on the same: the freed slot is reused by a new person, and A takes Z's wiped
  // name and note, which are interned again as new strings, read back whole and indexed.
  Twins t(*e, store, store2, tags, tags2);
  const int64_t later = now + kDay;
  t.Records(Join({Rec("crm", later, R"("mobile":"13800000003")", R"("attrs":{"name":"Wang Wu","city":"上海"})"),
                  Order(kA, later, 70, "tmall", "gift for Zhao Min", R"("name":"Zhang Wuji")")}),
            later);
  CHECK(Raw(store2) == Raw(store));
  CHECK(Canonicals(store2) == Canonicals(store));
  CHECK(SaveTags(tags2) == SaveTags(tags));
  CHECK(Persons(tags2) == Persons(tags));
  const uint64_t c = Resolve(*e, "mobile", "13800000003");
  CHECK(store.SlotOf(c) == z_slot);  // the free slot, taken again
  const int64_t a_slot = store.SlotOf(a);
  REQUIRE(a_slot >= 0);
  const auto name = static_cast<uint32_t>(tags.Find("name"));
  CHECK(tags.Get(name, static_cast<uint32_t>(a_slot)).str() == "Zhang Wuji");
  CHECK(Count(*e, "tags.name == \"Zhang Wuji\"") == 1);
  CHECK(Count(*e, "\"gift for Zhao Min\" in tags.notes") == 1);
  CHECK(Count(*e, "tags.city == \"上海\"") == 3);
  {
    const Profile* p = store.Find(a);
    REQUIRE(p != nullptr);
    const uint32_t attr = store.Attr("name");
    bool found = false;
    for (const auto& v : p->attrs)
      if (v.attr == attr) {
        found = true;
        CHECK(store.String(static_cast<uint32_t>(v.value.bits)) == "Zhang Wuji");
      }
    CHECK(found);
  }
  // Time moves both the same way.
  for (int64_t when : {later + 10 * kDay, later + 40 * kDay}) {
    auto sa = tags.Advance(when), sb = tags2.Advance(when);
    CHECK(sa.persons == sb.persons);
    CHECK(sa.changed == sb.changed);
    CHECK(sa.next == sb.next);
  }
  CHECK(SaveTags(tags2) == SaveTags(tags));

  // B's profile and tags are those of an engine that never saw Z, at the same time.
  REQUIRE(never->Advance(later + 40 * kDay).ok());
  CHECK(Render(*e, b) == Render(*never, b));
}

TEST_CASE("forget: the order of the tags' and the store's calls does not matter, nor batching") {
  auto one = Build(true), two = Build(true), three = Build(true);
  const uint64_t z = Id(*one, kZ), b = Id(*one, kB);
  const int64_t now = one->Now();
  const uint32_t z_slot = static_cast<uint32_t>(one->profiles().SlotOf(z));

  // The tags first (the engine's order).
  CHECK(one->tags().Forget(std::span<const uint64_t>(&z, 1)) == 1);
  CHECK(one->profiles().Forget(z));
  one->tags().Update(now);
  // The store first: its Update clears the freed slot from every column and bitmap, but
  // leaves the values in the columns' dictionaries, which TagEngine::Forget then drops.
  CHECK(two->profiles().Forget(z));
  two->tags().Update(now);
  CheckSlotGone(two->tags(), z_slot);
  CHECK(Count(*two, "tags.city == \"上海\"") == 2);
  CHECK(two->tags().Forget(std::span<const uint64_t>(&z, 1)) == 0);  // no profile by now
  CHECK(SaveTags(two->tags()) == SaveTags(one->tags()));
  CHECK(Raw(two->profiles()) == Raw(one->profiles()));

  // Two persons in one call are the same as one after the other.
  CHECK(one->tags().Forget(std::span<const uint64_t>(&b, 1)) == 1);
  CHECK(one->profiles().Forget(b));
  one->tags().Update(now);
  const uint64_t both[] = {z, b};
  CHECK(three->tags().Forget(both) == 2);
  CHECK(three->profiles().Forget(both) == 2);
  three->tags().Update(now);
  CHECK(SaveTags(three->tags()) == SaveTags(one->tags()));
  CHECK(Raw(three->profiles()) == Raw(one->profiles()));
  const std::string bytes = SaveStore(three->profiles());
  for (const char* s : {"Han Meimei", "han@example.cn", "Zhang Wuji"}) CHECK_MESSAGE(!Contains(bytes, s), s);
  for (const char* s : {"Li Lei", "上海", "coffee", "birthday"}) CHECK_MESSAGE(Contains(bytes, s), s);

  // A person without a profile: nothing changes.
  const std::string tags_bytes = SaveTags(three->tags());
  const uint64_t nobody = 12345;
  CHECK(three->tags().Forget(std::span<const uint64_t>(&nobody, 1)) == 0);
  CHECK(!three->profiles().Forget(nobody));
  CHECK(SaveStore(three->profiles()) == bytes);
  CHECK(SaveTags(three->tags()) == tags_bytes);
}

TEST_CASE("forget: wiped strings, lists and tag values load only from their own bytes") {
  auto e = Build(true);
  const uint64_t z = Id(*e, kZ);
  REQUIRE(e->tags().Forget(std::span<const uint64_t>(&z, 1)) == 1);
  REQUIRE(e->profiles().Forget(z));
  e->tags().Update(e->Now());
  // The tags' bytes: wiped values in category and list columns.
  const TagEngine& tags = e->tags();
  REQUIRE(tags.column(static_cast<uint32_t>(tags.Find("name")))->dead > 0);
  const cdp::tags::Column& notes = *tags.column(static_cast<uint32_t>(tags.Find("notes")));
  REQUIRE(notes.dead > 0);
  REQUIRE(std::any_of(notes.lists.begin(), notes.lists.end(), [](const auto& l) { return l.dead; }));
  const std::string tag_bytes = SaveTags(tags);
  cdp::Feed feed;
  auto load_tags = [&](std::string_view b) {
    TagEngine t(e->profiles(), feed, e->expr_limits(), e->config().limits.max_tags);
    cdp::snap::Reader r(b);
    return t.Load(r);
  };
  REQUIRE(load_tags(tag_bytes).ok());
  for (size_t n = 0; n < tag_bytes.size(); n += 1 + n / 64) {
    INFO("tags cut at ", n);
    CHECK(load_tags(std::string_view(tag_bytes).substr(0, n)).code() == absl::StatusCode::kDataLoss);
  }
  for (size_t i = 0; i < tag_bytes.size(); i += 1 + i / 128) {
    std::string bad = tag_bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    auto st = load_tags(bad);
    INFO("tags byte ", i, ": ", st.message());
    CHECK((st.ok() || st.code() == absl::StatusCode::kDataLoss));
  }

  // The store's bytes: wiped strings and lists.
  const std::string bytes = SaveStore(e->profiles());
  // Every cut fails with DataLoss; any byte changed loads consistently or fails so.
  for (size_t n = 0; n < bytes.size(); n += 1 + n / 64) {
    ProfileStore s(e->config(), e->graph(), e->profiles().sources());
    INFO("cut at ", n);
    CHECK(Load(s, std::string_view(bytes).substr(0, n)).code() == absl::StatusCode::kDataLoss);
  }
  size_t failed = 0, tried = 0;
  for (size_t i = 0; i < bytes.size(); i += 1 + i / 128) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    ProfileStore s(e->config(), e->graph(), e->profiles().sources());
    auto st = Load(s, bad);
    INFO("byte ", i, ": ", st.message());
    CHECK((st.ok() || st.code() == absl::StatusCode::kDataLoss));
    failed += !st.ok();
    ++tried;
  }
  CHECK(failed > 0);
  CHECK(tried > 0);
}
