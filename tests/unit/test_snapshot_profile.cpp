// Snapshots of the profile store (ProfileStore::Save/Load): a store loaded from its bytes
// into a fresh one over the same config, graph and sources shows the same for every
// person and slot, hands out the same ids and slots next, and goes on the same as the
// original under further records, merges, splits, identifier and source removal. Bad
// bytes (any truncation, an absurd count, an index out of range) are refused with
// DataLoss.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cdp/expr.hpp"
#include "cdp/profile.hpp"
#include "helpers.hpp"
#include "record_parser.hpp"
#include "snapshot.hpp"

using namespace cdptest;
using cdp::Engine;
using cdp::NodeId;
using cdp::Profile;
using cdp::ProfileStore;
using cdp::ProfileView;

namespace {

constexpr int64_t kJun2023 = 1685548800000;  // 2023-06-01T00:00:00+08:00
constexpr int64_t kJun2025 = 1748707200000;  // 2025-06-01T00:00:00+08:00

// Every survivorship rule, so the loaded store must find each attribute's policy again;
// source_priority also fills the lazy source ranks.
constexpr const char* kConfig = R"({"attributes":{
    "city":      {"survivorship":"source_priority","sources":["crm","pos","tmall"]},
    "gender":    {"survivorship":"first"},
    "store":     {"survivorship":"latest"},
    "visits":    {"type":"int","survivorship":"sum"},
    "max_spend": {"type":"money","survivorship":"max"},
    "birthday":  {"type":"date","survivorship":"min"},
    "nick":      {"survivorship":"non_empty"},
    "interests": {"type":"list","survivorship":"union"}}})";

// Records over the bundled persons and new ones with what the bundled data lacks: lists,
// every attribute type, event properties, an amount past int32 fen, several identifier
// sets per person.
std::string Extra(int from, int to, int64_t base) {
  std::string out;
  for (int i = from; i < to; ++i) {
    const int64_t ts = base + static_cast<int64_t>(i) * 7 * 3600000;
    // 40 persons per 120 records: each range of 120 brings new ones.
    const int k = i / 120 * 100 + i % 40;
    std::string ids = "\"mobile\":\"137" + std::to_string(20000000 + k) + "\"";
    if (i % 3 == 0 && i % 40 < 20) ids += ",\"member_no\":\"X" + std::to_string(k) + "\"";
    if (i % 4 == 1) ids += ",\"device_id\":\"dev-" + std::to_string(k) + "\"";
    std::string attrs = "\"attrs\":{\"visits\":" + std::to_string(i % 5) + ",\"interests\":[\"i" +
                        std::to_string(i % 7) + "\",\"i" + std::to_string(i % 3) + "\"],\"nick\":\"" +
                        (i % 4 ? "n" + std::to_string(i % 9) : "") + "\",\"max_spend\":\"" + std::to_string(i % 97) +
                        ".50\",\"birthday\":\"199" + std::to_string(i % 10) + "-0" + std::to_string(1 + i % 9) +
                        "-1" + std::to_string(i % 10) + "\",\"city\":\"c" + std::to_string(i % 6) + "\"}";
    std::string event;
    if (i % 11 == 0) event = ",\"event\":{\"type\":\"wire\",\"amount\":\"30000000.00\",\"bank\":\"b" + std::to_string(i % 4) + "\"}";
    else if (i % 2 == 0)
      event = ",\"event\":{\"type\":\"order\",\"amount\":" + std::to_string(10 + i % 300) + ",\"channel\":\"ch" +
              std::to_string(i % 5) + "\",\"sku\":\"S" + std::to_string(i % 13) + "\",\"tags\":[\"t" +
              std::to_string(i % 4) + "\"]}";
    else if (i % 5 == 1) event = ",\"event\":{\"type\":\"visit\",\"page\":" + std::to_string(i % 8) + "}";
    static const char* kSources[] = {"crm", "pos", "tmall", "app", "wechat"};
    out += Rec(kSources[i % 5], ts, ids, attrs + event) + "\n";
  }
  return out;
}

// The persons the feed has named (live and absorbed), for SlotOf.
std::vector<uint64_t> OneIds(const Engine& e) {
  std::vector<uint64_t> out;
  e.feed().Read(0, UINT32_MAX, [&](const cdp::FeedEvent& ev) {
    if (ev.a) out.push_back(ev.a);
    if (ev.b) out.push_back(ev.b);
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string Str(const cdp::Stored& v) { return std::to_string(static_cast<int>(v.kind)) + ":" + std::to_string(v.bits); }

// A profile's stored arrays, internal ids included (string and list ids, identifier set
// indexes, node ids): the loaded store must be the same to the bit, not just look alike.
std::string Raw(const Profile& p) {
  std::string o = "oneid " + std::to_string(p.oneid) + " cells_from " + std::to_string(p.cells_from) + " seen " +
                  std::to_string(p.first_seen) + ".." + std::to_string(p.last_seen) + "\ncells";
  for (const auto& c : p.cells)
    o += " " + std::to_string(c.type) + "/" + std::to_string(c.day) + "/" + std::to_string(c.count) + "/" + std::to_string(c.amount);
  o += "\nattrs";
  for (const auto& a : p.attrs)
    o += " " + std::to_string(a.attr) + "=" + Str(a.value) + "@" + std::to_string(a.source) + "/" + std::to_string(a.ts);
  o += "\nid_counts";
  for (const auto& c : p.id_counts) o += " " + std::to_string(c.type) + ":" + std::to_string(c.count);
  o += "\nevents";
  for (const auto& e : p.events)
    o += " " + std::to_string(e.key) + "/" + std::to_string(e.amount) + "/" + std::to_string(e.idset) + "/" + std::to_string(e.props);
  o += "\nprops";
  for (const auto& pr : p.props) o += " " + std::to_string(pr.key) + "=" + Str(pr.value);
  o += "\nidsets";
  for (const auto& x : p.idsets)
    o += " " + std::to_string(x.hash) + "/" + std::to_string(x.nodes_off) + "+" + std::to_string(x.nodes_len) + "/" +
         std::to_string(x.source) + "/" + std::to_string(x.first_ts) + ".." + std::to_string(x.last_ts) + "/" +
         std::to_string(x.records);
  o += "\nnodes";
  for (NodeId n : p.idset_nodes) o += " " + std::to_string(n);
  o += "\nobs";
  for (const auto& x : p.obs)
    o += " " + std::to_string(x.attr) + "/" + std::to_string(x.idset) + "=" + Str(x.value) + "@" + std::to_string(x.ts);
  return o + "\n";
}

// What the engine's person document and the expressions read of a profile: attributes
// with lineage and rule, event summaries, identifier counts, day totals over windows that
// fall in the counters, before them and across, every event with its properties, and the
// canonical text.
std::string Show(const ProfileStore& s, const Profile& p) {
  ProfileView v(s, &p, p.oneid);
  std::string o = s.Canonical(p);
  for (const auto& a : p.attrs) {
    std::string value;
    cdp::AppendValueJson(value, v.Attr(a.attr));
    o += s.AttrName(a.attr) + " = " + value + " from " + s.SourceName(a.source) + " at " + std::to_string(a.ts) +
         " by " + std::string(cdp::SurvivorshipName(s.RuleOf(a.attr))) + "\n";
  }
  for (const auto& t : s.Summarize(p))
    o += s.EventTypeName(t.type) + " " + std::to_string(t.count) + " " + std::to_string(t.amount) + " " +
         std::to_string(t.first) + ".." + std::to_string(t.last) + "\n";
  for (uint32_t t = 0; t < 32; ++t) o += std::to_string(v.IdCount(t)) + " ";
  std::vector<uint32_t> types = {cdp::kAnyEventType};
  for (const auto& e : p.events) types.push_back(e.type());
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  // Days in 64 bits: cells_from is INT32_MIN for a profile made before any event.
  auto day = [](int64_t d) { return static_cast<int32_t>(std::clamp<int64_t>(d, INT32_MIN, INT32_MAX)); };
  const int64_t from = p.cells_from, newest = p.cells.empty() ? from : p.cells.back().day;
  const std::pair<int32_t, int32_t> windows[] = {
      {INT32_MIN, INT32_MAX}, {day(newest - 30), day(newest)}, {day(from - 20), day(from + 20)}, {0, day(from - 1)}};
  for (uint32_t t : types) {
    for (auto [first, last] : windows) {
      auto tot = v.DayTotals(t, first, last);
      o += "\n" + std::to_string(t) + " " + std::to_string(tot.count) + " " + std::to_string(tot.amount) + " " +
           std::to_string(tot.active_days);
    }
  }
  std::vector<uint32_t> keys;
  for (const auto& pr : p.props) keys.push_back(pr.key);
  v.Scan(cdp::kAnyEventType, INT64_MIN, INT64_MAX, true, [&](const cdp::EventView& e) {
    o += "\nevent " + std::to_string(e.ts) + " " + std::to_string(e.amount) + " " + std::to_string(e.type) + " " +
         std::to_string(e.has_amount);
    for (uint32_t k : keys) {
      std::string value;
      cdp::AppendValueJson(value, v.Prop(e, k));
      o += " " + value;
    }
    return true;
  });
  return o + "\n";
}

// Both stores show the same in every slot, and every OneID finds the same slot.
void CheckSame(const ProfileStore& a, const ProfileStore& b, const std::vector<uint64_t>& oneids) {
  REQUIRE(a.slots() == b.slots());
  for (uint32_t slot = 0; slot < a.slots(); ++slot) {
    const Profile* pa = a.AtSlot(slot);
    const Profile* pb = b.AtSlot(slot);
    REQUIRE((pa == nullptr) == (pb == nullptr));
    if (!pa) continue;
    CHECK(Raw(*pa) == Raw(*pb));
    CHECK(Show(a, *pa) == Show(b, *pb));
  }
  for (uint64_t id : oneids) {
    CHECK(a.SlotOf(id) == b.SlotOf(id));
    const Profile* pa = a.Find(id);
    const Profile* pb = b.Find(id);
    CHECK((pa ? a.SlotOf(pa->oneid) : -1) == (pb ? b.SlotOf(pb->oneid) : -1));
  }
  auto ca = a.counts(), cb = b.counts();
  CHECK(ca.profiles == cb.profiles);
  CHECK(ca.events == cb.events);
  CHECK(ca.attributes == cb.attributes);
  CHECK(ca.cells == cb.cells);
  CHECK(ca.props == cb.props);
}

// The name tables hold the same names under the same ids: a new name gets the same id in
// both (so the tables are as long) and every id below it names the same. (The probe
// names stay in both stores, alike.)
void CheckNames(ProfileStore& a, ProfileStore& b) {
  const uint32_t attrs = a.Attr("probe attribute");
  CHECK(b.Attr("probe attribute") == attrs);
  for (uint32_t i = 0; i < attrs; ++i) {
    CHECK(a.AttrName(i) == b.AttrName(i));
    CHECK(a.RuleOf(i) == b.RuleOf(i));
  }
  const uint32_t types = a.EventType("probe type");
  CHECK(b.EventType("probe type") == types);
  for (uint32_t i = 0; i < types; ++i) CHECK(a.EventTypeName(i) == b.EventTypeName(i));
  const uint32_t keys = a.PropKey("probe key");
  CHECK(b.PropKey("probe key") == keys);
  for (uint32_t i = 0; i < keys; ++i) CHECK(a.PropKeyName(i) == b.PropKeyName(i));
  const uint32_t tags = a.Tag("probe tag");
  CHECK(b.Tag("probe tag") == tags);
  for (uint32_t i = 0; i < tags; ++i) CHECK(a.TagName(i) == b.TagName(i));
  const uint32_t machines = a.Machine("probe machine");
  CHECK(b.Machine("probe machine") == machines);
  for (uint32_t i = 0; i < machines; ++i) {
    CHECK(a.MachineName(i) == b.MachineName(i));
    CHECK(b.FindMachine(a.MachineName(i)) == int64_t{i});
  }
}

// What TakeChanges hands over, as text.
std::string Changes(ProfileStore& s) {
  std::vector<cdp::ProfileChange> changed;
  std::vector<uint32_t> freed;
  s.TakeChanges(changed, freed);
  std::string o;
  for (const auto& c : changed) {
    o += std::to_string(c.slot) + (c.all ? " all" : " attrs");
    for (uint32_t x : c.attrs) o += " " + std::to_string(x);
    o += " events";
    for (uint32_t x : c.events) o += " " + std::to_string(x);
    o += "\n";
  }
  o += "freed";
  for (uint32_t s : freed) o += " " + std::to_string(s);
  return o;
}

std::string SaveBytes(const ProfileStore& s) {
  cdp::snap::Writer w;
  s.Save(w);
  return w.bytes();
}

absl::Status LoadBytes(ProfileStore& s, std::string_view bytes) {
  cdp::snap::Reader r(bytes);
  absl::Status st = s.Load(r);
  if (st.ok() && !r.done()) return absl::DataLossError("bytes left over");
  return st;
}

// An engine over the bundled data, one channel per batch (so later channels merge persons
// that already have profiles), then generated records, and last two records that each
// join two persons: the absorbed persons' slots are free when the store is saved, to be
// reused in the order they were freed.
std::unique_ptr<Engine> Built() {
  auto e = OpenEngine(kConfig);
  for (const char* f : {"crm", "pos", "tmall", "wechat", "wecom", "app", "events"})
    Ingest(*e, DataFile(std::string(f) + ".ndjson"), false);
  Ingest(*e, Extra(0, 120, kJun2023), false);
  const size_t merges = FeedOf(*e, "merged").size();
  Ingest(*e, Rec("tmall", kJun2023 + 40 * kDay, R"("mobile":"13720000021","tb_nick":"tb_yyxdhkt")",
                 R"("attrs":{"nick":"joined"})") + "\n", false);
  Ingest(*e, Rec("tmall", kJun2023 + 41 * kDay, R"("mobile":"13720000023","tb_nick":"tb_dsxpexy")") + "\n", false);
  REQUIRE(FeedOf(*e, "merged").size() == merges + 2);
  return e;
}

uint32_t FreeSlots(const ProfileStore& s) {
  uint32_t n = 0;
  for (uint32_t slot = 0; slot < s.slots(); ++slot) n += s.AtSlot(slot) == nullptr;
  return n;
}

// Drives the original and the loaded store the way the engine does, over one graph: link,
// move the facts of the persons identity changed, file, flush. cfg and sources are the
// parser's: the stores' own, or copies that must not grow (an engine's, whose tables the
// test cannot write to).
class Twins {
 public:
  Twins(cdp::IdentityGraph& g, const cdp::Feed& feed, cdp::EngineConfig& cfg, cdp::NameTable& sources,
        ProfileStore& a, ProfileStore& b)
      : g_(g), feed_(feed), cfg_(cfg), sources_(sources), parser_(cfg, sources), a_(a), b_(b),
        types_(cfg.types.size()) {}

  void Records(const std::string& ndjson) {
    cdp::Batch batch;
    parser_.ParseNdjson(ndjson, batch);
    REQUIRE(batch.errors.empty());
    REQUIRE(sources_.size() == a_.sources().size());
    if (&sources_ != &a_.sources()) REQUIRE(cfg_.types.size() == types_);
    const uint64_t from = feed_.next();
    cdp::LinkStats st;
    std::vector<NodeId> nodes(batch.ids.size(), cdp::kNoNode);
    for (const cdp::Record& r : batch.records) g_.AddRecord(batch, r, ++seq_, st, nodes.data() + r.ids_begin);
    Sync(from, {});
    for (const cdp::Record& r : batch.records)
      CHECK(a_.AddRecord(batch, r, nodes.data() + r.ids_begin) == b_.AddRecord(batch, r, nodes.data() + r.ids_begin));
    a_.Flush();
    b_.Flush();
  }

  // Moves facts after identity changed: the persons the feed names from `from` on, and ids.
  void Sync(uint64_t from, std::vector<uint64_t> ids) {
    feed_.Read(from, UINT32_MAX, [&](const cdp::FeedEvent& ev) {
      using K = cdp::FeedEvent::Kind;
      if (ev.kind == K::kMerged || ev.kind == K::kSplit || ev.kind == K::kIdQuarantined || ev.kind == K::kIdRemoved ||
          ev.kind == K::kRuleAdded || ev.kind == K::kRuleRemoved) {
        ids.push_back(ev.a);
        ids.push_back(ev.b);
      }
    });
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    a_.Reconcile(ids);
    b_.Reconcile(ids);
  }

 private:
  cdp::IdentityGraph& g_;
  const cdp::Feed& feed_;
  cdp::EngineConfig& cfg_;
  cdp::NameTable& sources_;
  cdp::RecordParser parser_;
  ProfileStore& a_;
  ProfileStore& b_;
  const size_t types_;
  uint64_t seq_ = uint64_t{1} << 40;
};

}  // namespace

TEST_CASE("profile snapshot: a loaded store equals the original and goes on the same") {
  auto e = Built();
  ProfileStore& a = e->profiles();
  REQUIRE(FreeSlots(a) >= 2);
  REQUIRE(a.counts().props > 0);
  const std::string bytes = SaveBytes(a);

  ProfileStore b(e->config(), e->graph(), a.sources());
  REQUIRE(LoadBytes(b, bytes).ok());
  CheckSame(a, b, OneIds(*e));
  // Saving the loaded store gives the same bytes: nothing was lost or reordered.
  CHECK(SaveBytes(b) == bytes);
  // The engine saves between writes: the last one flushed and handed its changes over.
  CHECK(Changes(b) == "freed");
  CHECK(Changes(a) == "freed");
  // Arrays come back exactly sized: the loaded store holds no more than the original.
  auto ma = a.Memory(), mb = b.Memory();
  REQUIRE(ma.size() == mb.size());
  for (size_t i = 0; i < ma.size(); ++i) {
    CHECK(ma[i].first == mb[i].first);
    CHECK(mb[i].second <= ma[i].second);
  }
  CheckNames(a, b);

  cdp::EngineConfig cfg = e->config();
  cdp::NameTable sources = a.sources();
  Twins t(e->graph(), e->feed(), cfg, sources, a, b);
  SUBCASE("further records: new persons fill the free slots, then merges, a split, removals") {
    const uint32_t slots = a.slots();
    const size_t merges = FeedOf(*e, "merged").size();
    // New persons, new strings, lists and names: the next slot, string and list ids.
    t.Records(Extra(120, 200, kJun2023 + 60 * kDay));
    CHECK(FreeSlots(a) == 0);  // the free slots went to new persons, in both
    CHECK(a.slots() > slots);
    CheckSame(a, b, OneIds(*e));
    // A record joining two persons who both have profiles, and one two years on: the day
    // counters of the persons it touches are cut to the new horizon.
    const Profile* later = a.Find(Resolve(*e, "mobile", "13720000003"));
    REQUIRE(later != nullptr);
    const int32_t cells_from = later->cells_from;
    t.Records(Rec("tmall", kJun2023 + 90 * kDay, R"("mobile":"13720000022","tb_nick":"tb_yeebuyt")",
                  R"("event":{"type":"order","amount":12})") + "\n" +
              Rec("pos", kJun2025, R"("mobile":"13720000003")", R"("event":{"type":"order","amount":"88.00"})") + "\n");
    CHECK(FreeSlots(a) > 0);
    CHECK(FeedOf(*e, "merged").size() > merges);
    CHECK(a.Find(Resolve(*e, "mobile", "13720000003"))->cells_from > cells_from);
    CheckSame(a, b, OneIds(*e));

    // A split: one identifier of a person with several leaves with the facts it owns.
    cdp::IdentityGraph& g = e->graph();
    const Profile* big = nullptr;
    for (uint32_t slot = 0; slot < a.slots(); ++slot) {
      const Profile* p = a.AtSlot(slot);
      if (p && p->idsets.size() >= 3 && g.Members(g.PersonAnchor(p->oneid)).size() >= 3) {
        big = p;
        break;
      }
    }
    REQUIRE(big != nullptr);
    std::vector<NodeId> members = g.Members(g.PersonAnchor(big->oneid));
    uint64_t from = e->feed().next(), rule = 0;
    t.Sync(from, g.Split({members.back()}, rule));
    CheckSame(a, b, OneIds(*e));
    // Removing an identifier.
    from = e->feed().next();
    t.Sync(from, g.RemoveIdentifier(members.front()));
    CheckSame(a, b, OneIds(*e));
    // Removing a source: its facts leave every profile, some profiles with them.
    const int pos = a.sources().Find("pos");
    REQUIRE(pos >= 0);
    from = e->feed().next();
    bool found = false;
    std::vector<uint64_t> ids = g.RemoveSource(static_cast<uint32_t>(pos), found);
    const bool dropped = a.DropSource(static_cast<uint32_t>(pos));
    CHECK(dropped);
    CHECK(b.DropSource(static_cast<uint32_t>(pos)) == dropped);
    t.Sync(from, ids);
    CheckSame(a, b, OneIds(*e));
    // More records after all that, reusing what the removals freed.
    t.Records(Extra(200, 260, kJun2023 + 120 * kDay));
    CheckSame(a, b, OneIds(*e));
    CheckNames(a, b);
    // The same changes for the tags, slot by slot.
    const std::string changes = Changes(a);
    CHECK(changes.find("all") != std::string::npos);
    CHECK(changes == Changes(b));
  }

  SUBCASE("a store saved with a record filed but not yet flushed or handed over") {
    t.Records(Extra(300, 330, kJun2023 + 200 * kDay));
    CHECK(Changes(a) == Changes(b));
    // File records on a only (known persons and a new one) and save before Flush.
    cdp::RecordParser parser(cfg, sources);
    cdp::Batch batch;
    parser.ParseNdjson(Extra(330, 332, kJun2023 + 210 * kDay) +
                           Rec("app", kJun2023 + 211 * kDay, R"("mobile":"13729999999")", R"("attrs":{"nick":"new"})"),
                       batch);
    REQUIRE(batch.errors.empty());
    std::vector<NodeId> nodes(batch.ids.size(), cdp::kNoNode);
    cdp::LinkStats st;
    for (const cdp::Record& r : batch.records) e->graph().AddRecord(batch, r, 1, st, nodes.data() + r.ids_begin);
    for (const cdp::Record& r : batch.records) a.AddRecord(batch, r, nodes.data() + r.ids_begin);
    ProfileStore c(e->config(), e->graph(), a.sources());
    REQUIRE(LoadBytes(c, SaveBytes(a)).ok());
    a.Flush();
    c.Flush();
    CheckSame(a, c, OneIds(*e));
    const std::string changes = Changes(a);
    CHECK(changes != "freed");
    CHECK(changes == Changes(c));
  }
}

TEST_CASE("profile snapshot: an empty store round-trips and starts like a new one") {
  // The layers by hand, so new sources and identifier types can be registered after the
  // load, as an engine's parser would.
  auto cfg = cdp::ParseConfig(kConfig);
  REQUIRE(cfg.ok());
  cdp::NameTable sources;
  cdp::Feed feed;
  cdp::IdentityGraph g(*cfg, feed);
  ProfileStore a(*cfg, g, sources);
  const std::string bytes = SaveBytes(a);
  ProfileStore b(*cfg, g, sources);
  REQUIRE(LoadBytes(b, bytes).ok());
  CHECK(b.slots() == 0);
  CHECK(SaveBytes(b) == bytes);
  Twins t(g, feed, *cfg, sources, a, b);
  t.Records(Extra(0, 40, kJun2023) + Rec("shop", kJun2023, R"("loyalty_card":"L1")", R"("attrs":{"nick":"x"})") + "\n");
  CHECK(a.SourceName(a.AtSlot(a.slots() - 1)->attrs[0].source) == "shop");
  std::vector<uint64_t> oneids;
  feed.Read(0, UINT32_MAX, [&](const cdp::FeedEvent& ev) { oneids.push_back(ev.a); });
  CheckSame(a, b, oneids);
  CheckNames(a, b);
  CHECK(Changes(a) == Changes(b));
}

TEST_CASE("profile snapshot: bad bytes fail with DataLoss") {
  auto e = Built();
  const ProfileStore& a = e->profiles();
  const std::string bytes = SaveBytes(a);
  auto load = [&](std::string_view b) {
    ProfileStore fresh(e->config(), e->graph(), a.sources());
    cdp::snap::Reader r(b);
    absl::Status st = fresh.Load(r);
    if (!st.ok()) {
      // Left empty, not half made.
      CHECK(fresh.slots() == 0);
      CHECK(fresh.counts().profiles == 0);
    } else if (!r.done()) {
      st = absl::DataLossError("bytes left over");
    }
    return st;
  };
  REQUIRE(load(bytes).ok());

  SUBCASE("every truncation in a sample") {
    std::vector<size_t> cuts;
    for (size_t n = 0; n < 300; ++n) cuts.push_back(n);
    for (size_t n = 300; n < bytes.size(); n += bytes.size() / 400 + 1) cuts.push_back(n);
    for (size_t n = bytes.size() - 300; n < bytes.size(); ++n) cuts.push_back(n);
    for (size_t n : cuts) {
      absl::Status st = load(std::string_view(bytes).substr(0, n));
      CHECK_MESSAGE(absl::IsDataLoss(st), "cut at ", n, " of ", bytes.size(), ": ", st.ToString());
    }
  }

  // Locates the fields of the profile in slot 0: the slot count, then slot 0's OneID and
  // cells_from are a pattern found once.
  REQUIRE(a.AtSlot(0) != nullptr);
  const Profile& p0 = *a.AtSlot(0);
  std::string pattern(20, '\0');
  const uint64_t slots = a.slots();
  std::memcpy(pattern.data(), &slots, 8);
  std::memcpy(pattern.data() + 8, &p0.oneid, 8);
  std::memcpy(pattern.data() + 16, &p0.cells_from, 4);
  const size_t at = bytes.find(pattern);
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.find(pattern, at + 1) == std::string::npos);
  const size_t events_at = at + 8 + 8 + 4 + 8 + 8 + (8 + 12 * p0.cells.size()) + (8 + 32 * p0.attrs.size()) +
                           (8 + 8 * p0.id_counts.size());
  uint64_t events = 0;
  std::memcpy(&events, bytes.data() + events_at, 8);
  REQUIRE(events == p0.events.size());
  REQUIRE(events > 0);
  auto with = [&](size_t offset, auto value) {
    std::string b = bytes;
    std::memcpy(b.data() + offset, &value, sizeof value);
    return b;
  };

  SUBCASE("an absurd count fails before anything is allocated for it") {
    for (size_t offset : {size_t{16}, at, events_at}) {
      absl::Status st = load(with(offset, uint64_t{1} << 60));
      CHECK(absl::IsDataLoss(st));
      CHECK_MESSAGE(st.message().find("cannot fit") != std::string_view::npos, st.ToString());
    }
  }

  SUBCASE("a count off by one fails") {
    CHECK(absl::IsDataLoss(load(with(events_at, events + 1))));
    CHECK(absl::IsDataLoss(load(with(at, slots + 1))));
  }

  SUBCASE("an index past its array fails") {
    // The first event's identifier set (EventRow: key, amount, then idset).
    absl::Status st = load(with(events_at + 8 + 12, uint32_t{0x7FFFFFF0}));
    CHECK(absl::IsDataLoss(st));
    CHECK_MESSAGE(st.message().find("an event out of range") != std::string_view::npos, st.ToString());
    // A OneID given twice: slot 0's written as another live profile's.
    const Profile* other = nullptr;
    for (uint32_t s = 1; s < a.slots() && !other; ++s) other = a.AtSlot(s);
    REQUIRE(other != nullptr);
    st = load(with(at + 8, other->oneid));
    CHECK(absl::IsDataLoss(st));
    CHECK_MESSAGE(st.message().find("two profiles") != std::string_view::npos, st.ToString());
  }

  SUBCASE("another part's bytes") {
    absl::Status st = load(std::string_view(bytes).substr(1));
    CHECK(absl::IsDataLoss(st));
  }
}
