// Snapshots of the identity graph and the change feed: a graph loaded from a snapshot
// answers every lookup like the one saved, and goes on to link, unmerge and hand out
// OneIDs, node ids and rule ids exactly as the original does.
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "helpers.hpp"
#include "record_parser.hpp"
#include "snapshot.hpp"

using namespace cdptest;
using cdp::IdentityGraph;
using cdp::NodeId;

namespace {

constexpr int64_t kT0 = 1700000000000;

std::string Mobile(int i) { return "1370000" + std::to_string(1000 + i); }
std::string Member(int i) { return "G" + std::to_string(100 + i); }

// An engine with every kind of identity state: the bundled examples, then generated
// records with merges, weak bridges refused, a store phone typed in for everyone (refused
// until quarantined), weighted matches, an identifier type no config names, rejected
// values, a trimmed feed, manual force and never rules (one on an identifier no record
// carried, one removed), a removed identifier seen again, a removed source and a split.
std::unique_ptr<cdp::Engine> RichEngine() {
  auto e = OpenEngine();
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(std::string(CDP_SOURCE_DIR) + "/examples/data"))
    if (f.path().extension() == ".ndjson") files.push_back(f.path().string());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 5);
  for (const std::string& f : files) Ingest(*e, ReadAll(f));
  // Consumed: the host trims the first events (and the texts of rejected values with them).
  REQUIRE(e->TrimFeed(e->feed().first() + 40).ok());

  std::vector<std::string> lines;
  for (int i = 0; i < 40; ++i) {
    const std::string m = "\"mobile\":\"" + Mobile(i) + "\"", g = "\"member_no\":\"" + Member(i) + "\"";
    const int64_t t = kT0 + i * kDay;
    lines.push_back(Rec("pos", t, m + "," + g));
    // The store's own phone on every till record: one unique member_no per person refuses
    // it, until it has been refused with more than quarantine_after persons.
    lines.push_back(Rec("pos", t + 1, g + ",\"mobile\":\"13911112222\""));
    // A family tablet shared by three members: a weak bridge, refused.
    lines.push_back(Rec("app", t + 2, g + ",\"device_id\":\"FAMILY-" + std::to_string(i / 3) + "\""));
    // Another shop's phone, refused with 14 persons so far: not yet quarantined.
    if (i < 15) lines.push_back(Rec("pos", t + 5, g + ",\"mobile\":\"13933334444\""));
    if (i % 4 == 0) lines.push_back(Rec("crm", t + 3, g + ",\"loyalty_card\":\"LC-" + std::to_string(i) + "\""));
    if (i % 5 == 0) {
      // A device and address of a member, then a new mobile on both: a weighted match.
      lines.push_back(Rec("app", t + 4, g + ",\"device_id\":\"W-" + std::to_string(i) + "\",\"address\":\"road " +
                                            std::to_string(i) + "\""));
      lines.push_back(Rec("tmall", t + kDay / 2, "\"mobile\":\"1360000" + std::to_string(1000 + i) +
                                                     "\",\"device_id\":\"W-" + std::to_string(i) +
                                                     "\",\"address\":\"road " + std::to_string(i) + "\""));
    }
  }
  lines.push_back(Rec("pos", kT0, "\"mobile\":\"13800138000\""));  // blocklisted: rejected
  Ingest(*e, Join(std::vector<std::string>(lines.begin(), lines.begin() + 60)));
  Ingest(*e, Join(std::vector<std::string>(lines.begin() + 60, lines.end())));

  REQUIRE(e->AddRule("force_link", "member_no", Member(1), "member_no", Member(2), "same household").ok());
  auto never = e->AddRule("never_link", "mobile", Mobile(7), "mobile", Mobile(8), "twins");
  REQUIRE(never.ok());
  REQUIRE(e->AddRule("force_link", "email", "new.person@example.com", "member_no", Member(9), "desk").ok());
  auto lifted = e->AddRule("force_link", "member_no", Member(11), "member_no", Member(12), "");
  REQUIRE(lifted.ok());
  REQUIRE(e->RemoveRule(*lifted).ok());
  REQUIRE(e->RemoveIdentifier("mobile", Mobile(3)).ok());
  REQUIRE(e->RemoveSource("wecom").ok());
  REQUIRE(e->Split(Resolve(*e, "member_no", Member(20)), "[\"member_no:" + Member(20) + "\"]").ok());
  Ingest(*e, Rec("pos", kT0 + 90 * kDay, "\"mobile\":\"" + Mobile(3) + "\",\"member_no\":\"" + Member(33) + "\""));
  return e;
}

// A graph and feed loaded from bytes over cfg, as the engine constructs them.
struct Loaded {
  cdp::Feed feed;
  std::unique_ptr<IdentityGraph> graph;
  absl::Status status;
  Loaded(const cdp::EngineConfig& cfg, std::string_view bytes) : graph(std::make_unique<IdentityGraph>(cfg, feed)) {
    cdp::snap::Reader r(bytes);
    status = graph->Load(r);
    if (status.ok()) status = feed.Load(r);
    if (status.ok() && !r.done()) status = absl::DataLossError("bytes left over");
  }
};

std::string Save(const IdentityGraph& g, const cdp::Feed& f) {
  cdp::snap::Writer w;
  g.Save(w);
  f.Save(w);
  return std::move(w.bytes());
}

void CompareFeeds(const cdp::Feed& a, const cdp::Feed& b) {
  REQUIRE(a.first() == b.first());
  REQUIRE(a.next() == b.next());
  CHECK(a.bytes() == b.bytes());
  std::vector<cdp::FeedEvent> ea, eb;
  a.Read(0, UINT32_MAX, [&](const cdp::FeedEvent& e) { ea.push_back(e); });
  b.Read(0, UINT32_MAX, [&](const cdp::FeedEvent& e) { eb.push_back(e); });
  REQUIRE(ea.size() == eb.size());
  for (size_t i = 0; i < ea.size(); ++i) {
    const cdp::FeedEvent &x = ea[i], &y = eb[i];
    INFO("event ", x.seq);
    CHECK(x.seq == y.seq);
    CHECK(x.kind == y.kind);
    CHECK(x.reason == y.reason);
    CHECK(x.source == y.source);
    CHECK(x.link == y.link);
    CHECK(x.node == y.node);
    CHECK(x.text == y.text);
    CHECK(x.count == y.count);
    CHECK(x.ts == y.ts);
    CHECK(x.a == y.a);
    CHECK(x.b == y.b);
    CHECK(x.record == y.record);
    CHECK(x.rule == y.rule);
    if (x.text != 0xFFFFFFFFu) CHECK(a.text(x.text) == b.text(y.text));
  }
}

bool SameLink(const cdp::Link& x, const cdp::Link& y) {
  return x.a == y.a && x.b == y.b && x.next_a == y.next_a && x.next_b == y.next_b && x.record == y.record &&
         x.ts == y.ts && x.count == y.count && x.source == y.source && x.rule == y.rule && x.state == y.state &&
         x.reason == y.reason && x.pad == y.pad && x.reason_type == y.reason_type;
}

// Every observable answer of two graphs over the same config, and the OneIDs their feeds
// name (absorbed ones included, for the redirects).
void CompareGraphs(const IdentityGraph& a, const IdentityGraph& b, const cdp::Feed& feed) {
  const auto ca = a.counts(), cb = b.counts();
  CHECK(ca.persons == cb.persons);
  CHECK(ca.identifiers == cb.identifiers);
  CHECK(ca.links == cb.links);
  CHECK(ca.conflicts == cb.conflicts);
  CHECK(ca.quarantined == cb.quarantined);
  CHECK(ca.redirects == cb.redirects);
  REQUIRE(a.node_count() == b.node_count());
  std::vector<uint64_t> oneids;
  for (NodeId n = 0; n < a.node_count(); ++n) {
    INFO("node ", n, " ", a.Value(n));
    const cdp::Node &x = a.node(n), &y = b.node(n);
    REQUIRE(a.Value(n) == b.Value(n));
    CHECK(x.type == y.type);
    CHECK(x.flags == y.flags);
    CHECK(x.source0 == y.source0);
    CHECK(x.first_seen == y.first_seen);
    CHECK(x.first_link == y.first_link);
    CHECK(a.Find(x.type, a.Value(n)) == b.Find(y.type, b.Value(n)));
    CHECK(a.Live(n) == b.Live(n));
    CHECK(a.Quarantined(n) == b.Quarantined(n));
    const NodeId root = a.Root(n);
    CHECK(root == b.Root(n));
    CHECK(a.OneIdOf(n) == b.OneIdOf(n));
    oneids.push_back(a.OneIdOf(n));
    if (root == n && a.Live(n)) {
      const cdp::Person &p = a.PersonAt(n), &q = b.PersonAt(n);
      CHECK(p.oneid == q.oneid);
      CHECK(p.first_seen == q.first_seen);
      CHECK(p.size == q.size);
      CHECK(p.strong == q.strong);
      CHECK(p.anchor == q.anchor);
      CHECK(p.rule_endpoints == q.rule_endpoints);
      CHECK(a.Members(n) == b.Members(n));
    }
  }
  for (uint32_t i = 0; i < ca.links; ++i) {
    INFO("link ", i);
    CHECK(SameLink(a.link(i), b.link(i)));
  }
  feed.Read(0, UINT32_MAX, [&](const cdp::FeedEvent& e) {
    if (e.kind <= cdp::FeedEvent::Kind::kRuleAdded) {
      oneids.push_back(e.a);
      oneids.push_back(e.b);
    }
  });
  for (uint64_t id : oneids) {
    INFO("OneID ", id);
    CHECK(a.Canonical(id) == b.Canonical(id));
    CHECK(a.PersonAnchor(id) == b.PersonAnchor(id));
  }
  REQUIRE(a.rules().size() == b.rules().size());
  for (size_t i = 0; i < a.rules().size(); ++i) {
    const cdp::ManualRule &x = a.rules()[i], &y = b.rules()[i];
    CHECK(x.id == y.id);
    CHECK(x.never == y.never);
    CHECK(x.active == y.active);
    CHECK(x.a == y.a);
    CHECK(x.b == y.b);
    CHECK(x.link == y.link);
    CHECK(x.note == y.note);
  }
  // Explanations: each node with a spread of others (linked, refused, ruled apart,
  // quarantined), so the refused list and the rules are read as well as the evidence.
  const auto n = static_cast<NodeId>(a.node_count());
  for (NodeId i = 0; i < n; ++i)
    for (NodeId j : {NodeId((i * 7 + 3) % n), NodeId((i + 1) % n), a.Root(i)}) {
      if (!a.Live(i) && !a.Quarantined(i)) continue;
      if (!a.Live(j) && !a.Quarantined(j)) continue;
      INFO("explain ", i, " ", j);
      const auto x = a.Explain(i, j), y = b.Explain(i, j);
      CHECK(x.linked == y.linked);
      CHECK(x.path == y.path);
      CHECK(x.hops == y.hops);
      CHECK(x.refused_link == y.refused_link);
      CHECK(x.quarantined == y.quarantined);
      REQUIRE((x.rule == nullptr) == (y.rule == nullptr));
      if (x.rule) CHECK(x.rule->id == y.rule->id);
    }
  // The arena is rebuilt chunk for chunk, and the arrays hold what they held.
  const auto ma = a.Memory(), mb = b.Memory();
  for (size_t i = 0; i < ma.size(); ++i)
    if (ma[i].first == "strings" || ma[i].first == "nodes" || ma[i].first == "links" || ma[i].first == "persons")
      CHECK(ma[i] == mb[i]);
}

// What a second engine-like driver does to both graphs: further records (new persons,
// merges, refusals, quarantined and revived identifiers), then unmerges and rules.
struct Continue {
  cdp::EngineConfig cfg;  // a copy: parsing must not register types under the engine
  cdp::NameTable sources;
  std::unique_ptr<cdp::RecordParser> parser;
  size_t types;
  explicit Continue(const cdp::EngineConfig& c) : cfg(c), types(c.types.size()) {
    sources.Intern("manual");
    parser = std::make_unique<cdp::RecordParser>(cfg, sources);
  }

  void Records(IdentityGraph& a, IdentityGraph& b, const std::string& ndjson, uint64_t base) {
    cdp::Batch batch;
    parser->ParseNdjson(ndjson, batch);
    REQUIRE(batch.errors.empty());
    REQUIRE(cfg.types.size() == types);  // the graphs' config has no type the batch lacks
    for (const cdp::Record& r : batch.records) {
      INFO("record ", r.line);
      cdp::LinkStats sa, sb;
      std::vector<NodeId> fa(r.ids_count, cdp::kNoNode), fb(r.ids_count, cdp::kNoNode);
      a.AddRecord(batch, r, base + r.line, sa, fa.data());
      b.AddRecord(batch, r, base + r.line, sb, fb.data());
      CHECK(fa == fb);
      CHECK(sa.persons_created == sb.persons_created);
      CHECK(sa.merges == sb.merges);
      CHECK(sa.conflicts == sb.conflicts);
      CHECK(sa.quarantined == sb.quarantined);
      CHECK(sa.ids_quarantined_skipped == sb.ids_quarantined_skipped);
      CHECK(a.RecordAnchor(fa.data(), r.ids_count) == b.RecordAnchor(fb.data(), r.ids_count));
    }
  }

  uint32_t Type(std::string_view name) const {
    for (size_t i = 0; i < cfg.types.size(); ++i)
      if (cfg.types[i].name == name) return static_cast<uint32_t>(i);
    FAIL("no identifier type ", name);
    return 0;
  }
  NodeId Find(const IdentityGraph& g, std::string_view type, std::string_view value) const {
    return g.Find(Type(type), value);
  }
};

// unknown_type: records carry loyalty_card, a type the config lacks (registered at run time).
std::string MoreRecords(int from, int to, int64_t t0, bool unknown_type = true) {
  std::vector<std::string> lines;
  for (int i = from; i < to; ++i) {
    const std::string g = "\"member_no\":\"" + Member(i) + "\"";
    const int64_t t = t0 + (i - from) * kDay;
    lines.push_back(Rec("pos", t, "\"mobile\":\"" + Mobile(i) + "\"," + g));
    lines.push_back(Rec("pos", t + 1, g + ",\"mobile\":\"13911112222\""));  // quarantined: skipped
    lines.push_back(Rec("app", t + 2, g + ",\"device_id\":\"FAMILY-" + std::to_string(i / 3) + "\""));
    if (unknown_type)
      lines.push_back(Rec("crm", t + 3, g + ",\"loyalty_card\":\"LC-" + std::to_string(i % 50) + "\""));
    // The other shop's phone, refused with more persons: quarantined now, if the graph
    // remembered the persons it was refused with before.
    if (i - from < 15)
      lines.push_back(Rec("pos", t + 5, "\"member_no\":\"" + Member(15 + i - from) + "\",\"mobile\":\"13933334444\""));
    // Two members giving one another's number: a merge of existing persons, or a refusal.
    lines.push_back(Rec("crm", t + 4, g + ",\"mobile\":\"" + Mobile(i % 45) + "\",\"email\":\"p" +
                                          std::to_string(i) + "@example.com\""));
  }
  // A store phone of the new era, refused with more than quarantine_after persons.
  for (int i = 0; i < 30; ++i)
    lines.push_back(Rec("pos", t0 + 100 * kDay + i, "\"member_no\":\"" + Member(i) + "\",\"mobile\":\"13922223333\""));
  lines.push_back(Rec("pos", t0 + 101 * kDay, "\"mobile\":\"" + Mobile(3) + "\""));
  return Join(lines);
}

}  // namespace

TEST_CASE("snapshot: an identity graph and feed load back equal, and go on equal") {
  auto e = RichEngine();
  const IdentityGraph& g = e->graph();
  REQUIRE(g.counts().quarantined >= 1);
  REQUIRE(g.counts().redirects >= 1);
  REQUIRE(g.counts().conflicts >= 1);
  REQUIRE(g.rules().size() == 5);  // four added (one removed since) and the split's
  REQUIRE(e->feed().first() > 1);
  bool weighted = false, removed = false;
  for (uint32_t i = 0; i < g.counts().links; ++i) weighted |= g.link(i).rule == cdp::LinkRule::kWeighted;
  for (NodeId n = 0; n < g.node_count(); ++n) removed |= !g.Live(n) && !g.Quarantined(n);
  REQUIRE(weighted);
  REQUIRE(removed);

  const std::string bytes = Save(g, e->feed());
  Loaded l(e->config(), bytes);
  REQUIRE_MESSAGE(l.status.ok(), l.status.ToString());
  CompareFeeds(e->feed(), l.feed);
  CompareGraphs(g, *l.graph, e->feed());
  // Saving the loaded graph gives the same bytes, but for the hash tables' order and
  // the links' padding: the same length.
  CHECK(Save(*l.graph, l.feed).size() == bytes.size());

  // Go on with both: the engine's graph (which writes to the engine's feed) and the loaded one.
  IdentityGraph& a = e->graph();
  IdentityGraph& b = *l.graph;
  Continue c(e->config());
  const uint64_t nodes_before = a.node_count(), quarantined_before = a.counts().quarantined;
  c.Records(a, b, MoreRecords(30, 70, kT0 + 200 * kDay), 100000);
  CHECK(a.node_count() > nodes_before);  // new node ids were handed out, the same on both
  CHECK(a.counts().quarantined > quarantined_before);

  {
    const NodeId na = c.Find(a, "member_no", Member(40)), nb = c.Find(b, "member_no", Member(40));
    REQUIRE(na != cdp::kNoNode);
    REQUIRE(na == nb);
    CHECK(a.RemoveIdentifier(na) == b.RemoveIdentifier(nb));
  }
  {
    bool fa = false, fb = false;
    const int app = c.sources.Find("app");
    REQUIRE(app >= 0);
    CHECK(a.RemoveSource(static_cast<uint32_t>(app), fa) == b.RemoveSource(static_cast<uint32_t>(app), fb));
    CHECK(fa);
    CHECK(fa == fb);
  }
  {
    // Split the largest person in two halves.
    NodeId big = cdp::kNoNode;
    for (NodeId n = 0; n < a.node_count(); ++n)
      if (a.Live(n) && a.Root(n) == n && (big == cdp::kNoNode || a.PersonAt(n).size > a.PersonAt(big).size)) big = n;
    REQUIRE(big != cdp::kNoNode);
    auto members = a.Members(big);
    REQUIRE(members.size() >= 2);
    members.resize(members.size() / 2);
    uint64_t ra = 0, rb = 0;
    CHECK(a.Split(members, ra) == b.Split(members, rb));
    CHECK(ra == rb);
  }
  {
    // Rules over an identifier no record carried: the same new node and rule ids.
    const uint32_t mobile = c.Type("mobile");
    const NodeId xa = a.Intern(mobile, "13755550000", cdp::kNeverSeen, 0);
    const NodeId xb = b.Intern(mobile, "13755550000", cdp::kNeverSeen, 0);
    CHECK(xa == xb);
    const NodeId ya = c.Find(a, "member_no", Member(55)), yb = c.Find(b, "member_no", Member(55));
    REQUIRE(ya == yb);
    uint64_t ida = 0, idb = 0;
    std::vector<uint64_t> oa, ob;
    CHECK(a.AddForceLink(xa, ya, "desk", 0, ida, oa) == b.AddForceLink(xb, yb, "desk", 0, idb, ob));
    CHECK(ida == idb);
    CHECK(oa == ob);
    const NodeId za = c.Find(a, "member_no", Member(56));
    CHECK(a.AddNeverLink(za, ya, "", ida, oa) == b.AddNeverLink(za, yb, "", idb, ob));
    CHECK(ida == idb);
    CHECK(oa == ob);
    CHECK(a.RemoveRule(1, oa) == b.RemoveRule(1, ob));
    CHECK(oa == ob);
  }
  // The removed and split identifiers come back in records.
  c.Records(a, b, MoreRecords(38, 48, kT0 + 400 * kDay), 200000);
  CompareFeeds(e->feed(), l.feed);
  CompareGraphs(a, b, e->feed());
}

TEST_CASE("snapshot: an empty identity graph and feed round-trip and go on equal") {
  auto e = OpenEngine();
  Loaded l(e->config(), Save(e->graph(), e->feed()));
  REQUIRE_MESSAGE(l.status.ok(), l.status.ToString());
  CHECK(l.graph->node_count() == 0);
  CHECK(l.feed.next() == 1);
  Continue c(e->config());
  c.Records(e->graph(), *l.graph, MoreRecords(0, 30, kT0, /*unknown_type=*/false), 1);
  CompareFeeds(e->feed(), l.feed);
  CompareGraphs(e->graph(), *l.graph, e->feed());
}

TEST_CASE("snapshot: cut or damaged identity bytes fail with DataLoss and never crash") {
  auto e = RichEngine();
  const std::string bytes = Save(e->graph(), e->feed());
  const cdp::EngineConfig& cfg = e->config();

  SUBCASE("every cut") {
    // Every prefix near the start and end and a spread in between (each is a whole load).
    std::vector<size_t> cuts;
    for (size_t n = 0; n < bytes.size(); n += n < 128 || bytes.size() - n < 128 ? 1 : bytes.size() / 256)
      cuts.push_back(n);
    for (size_t n : cuts) {
      Loaded l(cfg, std::string_view(bytes).substr(0, n));
      INFO("cut at ", n, " of ", bytes.size());
      REQUIRE(l.status.code() == absl::StatusCode::kDataLoss);
    }
  }

  SUBCASE("counts flipped") {
    // Layout: part "identity" (8 + 8 bytes), the values (8 + len), the node count.
    uint64_t values = 0;
    std::memcpy(&values, bytes.data() + 16, 8);
    const size_t node_count_at = 24 + values;
    uint64_t nodes = 0;
    std::memcpy(&nodes, bytes.data() + node_count_at, 8);
    REQUIRE(nodes == e->graph().node_count());
    const size_t link_count_at = node_count_at + 8 + nodes * 32;
    uint64_t links = 0;
    std::memcpy(&links, bytes.data() + link_count_at, 8);
    REQUIRE(links == e->graph().counts().links);
    // The feed ends with its events array.
    uint64_t events = 0;
    e->feed().Read(0, UINT32_MAX, [&](const cdp::FeedEvent&) { ++events; });
    const size_t event_count_at = bytes.size() - events * sizeof(cdp::FeedEvent) - 8;
    for (size_t at : {size_t{16}, node_count_at, link_count_at, event_count_at})
      for (uint64_t v : {uint64_t{1} << 62, ~uint64_t{0}, uint64_t{0x7FFFFFFF}}) {
        std::string bad = bytes;
        std::memcpy(bad.data() + at, &v, 8);
        Loaded l(cfg, bad);
        INFO("count at ", at, " set to ", v);
        CHECK(l.status.code() == absl::StatusCode::kDataLoss);
      }
    // One count fewer or more: everything after it is read out of place.
    for (size_t at : {node_count_at, link_count_at, event_count_at})
      for (int64_t d : {-1, 1}) {
        std::string bad = bytes;
        uint64_t v;
        std::memcpy(&v, bad.data() + at, 8);
        v += static_cast<uint64_t>(d);
        std::memcpy(bad.data() + at, &v, 8);
        Loaded l(cfg, bad);
        INFO("count at ", at, " moved by ", d);
        CHECK(l.status.code() == absl::StatusCode::kDataLoss);
      }
  }

  SUBCASE("a repeated identifier or link") {
    // The indexes are rebuilt on load, so two nodes with one value, or two links with one
    // (pair, source, rule), would make lookups answer one of them at random: refused.
    const IdentityGraph& g = e->graph();
    const size_t values_at = 24;
    uint64_t values = 0;
    std::memcpy(&values, bytes.data() + 16, 8);
    std::vector<size_t> offset(g.node_count());
    for (size_t n = 0, at = values_at; n < g.node_count(); at += g.node(NodeId(n)).len, ++n) offset[n] = at;
    NodeId x = cdp::kNoNode, y = cdp::kNoNode;
    for (NodeId n = 1; n < g.node_count() && y == cdp::kNoNode; ++n)
      for (NodeId m = 0; m < n && y == cdp::kNoNode; ++m)
        if (g.node(m).type == g.node(n).type && g.node(m).len == g.node(n).len) x = m, y = n;
    REQUIRE(y != cdp::kNoNode);
    std::string bad = bytes;
    bad.replace(offset[y], g.node(y).len, g.Value(x));
    Loaded same_value(cfg, bad);
    CHECK(same_value.status.code() == absl::StatusCode::kDataLoss);
    CHECK(same_value.status.message().find("repeats identifier") != std::string_view::npos);

    const size_t link_count_at = values_at + values + 8 + g.node_count() * 32;
    const size_t first_link = link_count_at + 8;
    bad = bytes;
    bad.replace(first_link + sizeof(cdp::Link), sizeof(cdp::Link), bytes.substr(first_link, sizeof(cdp::Link)));
    Loaded same_link(cfg, bad);
    CHECK(same_link.status.code() == absl::StatusCode::kDataLoss);
    CHECK(same_link.status.message().find("repeats the evidence") != std::string_view::npos);
  }

  SUBCASE("bytes damaged") {
    // A damaged byte may still read as a valid state (a timestamp, a count of records),
    // but never as an index out of range: the load either fails or holds only indexes
    // that are in range.
    // About 500 places, spread over every part (each is a whole load).
    size_t failed = 0, tried = 0;
    for (size_t at = 0; at < bytes.size(); at += bytes.size() / 500 | 1) {
      std::string bad = bytes;
      bad[at] = static_cast<char>(bad[at] ^ 0xA5);
      Loaded l(cfg, bad);
      ++tried;
      if (l.status.ok()) continue;
      CHECK(l.status.code() == absl::StatusCode::kDataLoss);
      ++failed;
    }
    CHECK(failed > 0);
    CHECK(failed < tried);
  }

  SUBCASE("only into an empty graph and feed") {
    cdp::snap::Reader r(bytes);
    CHECK(e->graph().Load(r).code() == absl::StatusCode::kFailedPrecondition);
    cdp::Feed f;
    f.Append(cdp::FeedEvent::Kind::kRuleRemoved);
    cdp::snap::Reader r2(bytes);
    CHECK(f.Load(r2).code() == absl::StatusCode::kFailedPrecondition);
  }
}
