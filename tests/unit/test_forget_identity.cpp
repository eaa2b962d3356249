// Erasure in the identity graph and the change feed: IdentityGraph::Forget removes a
// person whole (identifiers, evidence, rules, conflicts, OneIDs) so that lookups, the
// other persons, a snapshot and later records behave as in a graph that never saw it;
// Feed::Erase empties events in place.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <map>
#include <set>

#include "helpers.hpp"
#include "record_parser.hpp"
#include "snapshot.hpp"

using namespace cdptest;
using cdp::IdentityGraph;
using cdp::NodeId;

namespace {

constexpr int64_t kT0 = 1700000000000;

// The person forgotten (A), and three who stay: B and C, each of whom A met (a conflict, a
// shared device, a never_link), and D, who never met A.
const std::string kMA = "13911110001", kGA = "GA-0001", kUA = "oU-A-0001";
const std::string kMB = "13911110002", kGB = "GB-0002";
const std::string kMC = "13911110003", kGC = "GC-0003";
const std::string kMD = "13911110004", kUD = "oU-D-0004";
const std::vector<std::string> kNotes = {"desk-note-alice", "twins-note-alice", "ext-note-alice"};

std::string Id(std::string_view type, std::string_view value) {
  return "\"" + std::string(type) + "\":\"" + std::string(value) + "\"";
}

// The scenario, with A (with_a) or as if A had never existed: the same records but A's,
// in the same order, so sources and OneIDs are numbered alike. created collects the OneID
// each of A's identifiers got when it first came as a person of its own.
std::unique_ptr<cdp::Engine> Build(bool with_a, std::map<std::string, uint64_t>* created = nullptr) {
  auto e = OpenEngine();
  auto in = [&](bool about_a, const std::string& line) {
    if (about_a && !with_a) return;
    Ingest(*e, line + "\n");
  };
  auto note = [&](const char* type, const std::string& value) {
    if (created) (*created)[value] = Resolve(*e, type, value);
  };
  in(false, Rec("pos", kT0, Id("mobile", kMB) + "," + Id("member_no", kGB)));
  in(false, Rec("crm", kT0 + 1, Id("mobile", kMC) + "," + Id("member_no", kGC)));
  in(false, Rec("app", kT0 + 2, Id("mobile", kMD)));
  in(false, Rec("app", kT0 + 3, Id("unionid", kUD)));
  in(false, Rec("crm", kT0 + 4, Id("mobile", kMD) + "," + Id("unionid", kUD)));  // D absorbs D'
  if (with_a) {
    in(true, Rec("pos", kT0 + 10, Id("mobile", kMA) + "," + Id("member_no", kGA)));
    note("mobile", kMA);
    in(true, Rec("app", kT0 + 11, Id("unionid", kUA)));
    note("unionid", kUA);
    in(true, Rec("crm", kT0 + 12, Id("mobile", kMA) + "," + Id("unionid", kUA)));  // A absorbs it
    in(true, Rec("app", kT0 + 13, Id("jd_pin", "alice_jd")));
    note("jd_pin", "alice_jd");
    in(true, Rec("app", kT0 + 14, Id("email", "x.alice@example.com")));
    note("email", "x.alice@example.com");
    // A chain of redirects: X into Y, then Y into A.
    in(true, Rec("crm", kT0 + 15, Id("jd_pin", "alice_jd") + "," + Id("email", "x.alice@example.com")));
    in(true, Rec("crm", kT0 + 16, Id("mobile", kMA) + "," + Id("jd_pin", "alice_jd")));
    in(true, Rec("pos", kT0 + 17, Id("mobile", kMA) + "," + Id("member_no", kGB)));  // unique_type conflict
    in(true, Rec("app", kT0 + 18, Id("member_no", kGA) + "," + Id("device_id", "D2-SHARED")));
  }
  // B's record with the device: a weak bridge refused while A holds it (else B's).
  in(false, Rec("app", kT0 + 19, Id("member_no", kGB) + "," + Id("device_id", "D2-SHARED")));
  if (with_a) {
    in(true, Rec("crm", kT0 + 20, Id("member_no", kGA) + "," + Id("tb_nick", "alice_old_nick")));
    in(true, Rec("crm", kT0 + 21, Id("member_no", kGA) + "," + Id("external_userid", "wmA-ext-0001")));
    REQUIRE(e->AddRule("force_link", "member_no", kGA, "email", "desk.alice@example.com", kNotes[0]).ok());
    if (created) {  // the rule made the email a person, then merged it into A
      const auto merged = FeedOf(*e, "merged");
      REQUIRE(!merged.empty());
      Json m(merged.back());
      (*created)["desk.alice@example.com"] = U(m["absorbed"]);
    }
    REQUIRE(e->AddRule("never_link", "mobile", kMA, "mobile", kMC, kNotes[1]).ok());
    REQUIRE(e->AddRule("never_link", "external_userid", "wmA-ext-0001", "member_no", kGC, kNotes[2]).ok());
    // Removed identifiers: two only A's records carried, one B's carried too.
    REQUIRE(e->RemoveIdentifier("tb_nick", "alice_old_nick").ok());
    REQUIRE(e->RemoveIdentifier("external_userid", "wmA-ext-0001").ok());
  }
  REQUIRE(e->RemoveIdentifier("device_id", "D2-SHARED").ok());
  return e;
}

std::string Name(const IdentityGraph& g, const cdp::EngineConfig& cfg, NodeId n) {
  return cfg.types[g.node(n).type].name + ":" + std::string(g.Value(n));
}

// The persons as a host sees them, by value (node and link ids differ between graphs with
// different histories): each live person (but skip) with its OneID, anchor, first seen,
// sizes and never_link ends, its identifiers and the length of each one's explanation
// from the anchor.
std::string Persons(const IdentityGraph& g, const cdp::EngineConfig& cfg, bool rule_ends, uint64_t skip = 0) {
  std::vector<std::string> persons;
  for (NodeId n = 0; n < g.node_count(); ++n) {
    if (!g.Live(n) || g.Root(n) != n) continue;
    const cdp::Person& p = g.PersonAt(n);
    if (p.oneid == skip) continue;
    std::string s = std::to_string(p.oneid) + " anchor " + Name(g, cfg, p.anchor) + " first " +
                    std::to_string(p.first_seen) + " size " + std::to_string(p.size) + " strong " +
                    std::to_string(p.strong);
    if (rule_ends) s += " rule_ends " + std::to_string(p.rule_endpoints);
    std::vector<std::string> members;
    for (NodeId m : g.Members(n)) {
      const auto ex = g.Explain(p.anchor, m);
      members.push_back(Name(g, cfg, m) + (ex.linked ? " via " + std::to_string(ex.path.size()) : " apart"));
    }
    std::sort(members.begin(), members.end());
    for (const std::string& m : members) s += "\n  " + m;
    persons.push_back(s);
  }
  std::sort(persons.begin(), persons.end());
  std::string out;
  for (const std::string& p : persons) out += p + "\n";
  return out;
}

// The whole graph by value: the persons, the rules, the counts that do not count ids
// handed out.
std::string Render(const IdentityGraph& g, const cdp::EngineConfig& cfg) {
  std::vector<std::string> rules;
  for (const cdp::ManualRule& r : g.rules())
    rules.push_back(std::string(r.never ? "never " : "force ") + (r.active ? "active " : "lifted ") +
                    Name(g, cfg, r.a) + " " + Name(g, cfg, r.b) + " " + r.note);
  std::sort(rules.begin(), rules.end());
  const auto c = g.counts();
  std::string out = "persons " + std::to_string(c.persons) + " identifiers " + std::to_string(c.identifiers) +
                    " conflicts " + std::to_string(c.conflicts) + " quarantined " + std::to_string(c.quarantined) +
                    " redirects " + std::to_string(c.redirects) + "\n";
  out += Persons(g, cfg, /*rule_ends=*/true);
  for (const std::string& r : rules) out += r + "\n";
  return out;
}

bool Contains(const std::string& bytes, std::string_view s) { return bytes.find(s) != std::string::npos; }

std::string SaveGraph(const IdentityGraph& g) {
  cdp::snap::Writer w;
  g.Save(w);
  return std::move(w.bytes());
}

// A graph loaded from its own Save, as the engine constructs it (with an empty feed).
struct Loaded {
  cdp::Feed feed;
  std::unique_ptr<IdentityGraph> graph;
  absl::Status status;
  Loaded(const cdp::EngineConfig& cfg, std::string_view bytes) : graph(std::make_unique<IdentityGraph>(cfg, feed)) {
    cdp::snap::Reader r(bytes);
    status = graph->Load(r);
    if (status.ok() && !r.done()) status = absl::DataLossError("bytes left over");
  }
};

// Links records into graphs directly, as the engine does, bypassing the other layers
// (which have not forgotten the person: this test is about the graph alone).
struct Driver {
  cdp::EngineConfig cfg;  // a copy: parsing must not register types under the engine
  cdp::NameTable sources;
  std::unique_ptr<cdp::RecordParser> parser;
  uint64_t next_record = 1000000;
  explicit Driver(const cdp::EngineConfig& c) : cfg(c) {
    for (const char* s : {"manual", "pos", "crm", "app"}) sources.Intern(s);  // the engines' numbering
    parser = std::make_unique<cdp::RecordParser>(cfg, sources);
  }
  // Each record into each graph; the nodes each record found, per graph.
  std::vector<std::vector<NodeId>> Records(const std::vector<IdentityGraph*>& graphs, const std::string& line) {
    cdp::Batch batch;
    parser->ParseNdjson(line + "\n", batch);
    REQUIRE(batch.errors.empty());
    REQUIRE(batch.records.size() == 1);
    const cdp::Record& r = batch.records[0];
    std::vector<std::vector<NodeId>> found;
    for (IdentityGraph* g : graphs) {
      cdp::LinkStats st;
      found.emplace_back(r.ids_count, cdp::kNoNode);
      g->AddRecord(batch, r, next_record, st, found.back().data());
    }
    ++next_record;
    return found;
  }
};

struct ExplainResult {
  bool linked;
  std::vector<uint32_t> path;
  std::vector<NodeId> hops;
  uint32_t refused;
  uint64_t rule;
  NodeId quarantined;
  bool operator==(const ExplainResult&) const = default;
};

// Every explanation between live identifiers of the persons that stay, by node id (the
// same graph before and after, so ids and link ids must not move).
std::vector<ExplainResult> Explanations(const IdentityGraph& g, const std::vector<NodeId>& nodes) {
  std::vector<ExplainResult> out;
  for (NodeId a : nodes)
    for (NodeId b : nodes) {
      const auto ex = g.Explain(a, b);
      out.push_back({ex.linked, ex.path, ex.hops, ex.refused_link, ex.rule ? ex.rule->id : 0, ex.quarantined});
    }
  return out;
}

}  // namespace

TEST_CASE("forget (identity): the person goes whole, the others stay as if it had never existed") {
  std::map<std::string, uint64_t> created;
  auto e = Build(true, &created);
  auto ref = Build(false);
  IdentityGraph& g = e->graph();
  const cdp::EngineConfig& cfg = e->config();
  auto find = [&](const IdentityGraph& graph, const char* type, std::string_view v) {
    return graph.Find(static_cast<uint32_t>(cfg.FindType(type)), v);
  };

  const NodeId ga = find(g, "member_no", kGA);
  REQUIRE(ga != cdp::kNoNode);
  const uint64_t a = g.OneIdOf(ga);
  REQUIRE(a != 0);
  // Four OneIDs redirect to A (one through a chain), D's one redirect is D's.
  const std::set<uint64_t> a_oneids = {a, created[kUA], created["alice_jd"], created["x.alice@example.com"],
                                       created["desk.alice@example.com"]};
  REQUIRE(a_oneids.size() == 5);
  CHECK(created[kMA] == a);
  for (uint64_t id : a_oneids) REQUIRE(g.Canonical(id) == a);
  const uint64_t d = Resolve(*e, "mobile", kMD);
  REQUIRE(g.counts().redirects == 5);
  REQUIRE(g.counts().conflicts == 1);  // A and B (the device's refusal went with the device)
  REQUIRE(g.rules().size() == 3);

  // What A holds: its members (the desk's email came by force_link) and two removed
  // identifiers only its records carried; D2 was removed too, but B's record carried it.
  const std::vector<NodeId> members = g.Members(ga);
  REQUIRE(members.size() == 6);
  const std::vector<NodeId> former = g.FormerIdentifiers(ga);
  REQUIRE(former.size() == 2);
  std::set<std::string> former_names;
  for (NodeId n : former) former_names.insert(Name(g, cfg, n));
  CHECK(former_names == std::set<std::string>{"external_userid:wmA-ext-0001", "tb_nick:alice_old_nick"});
  std::vector<std::string> a_values = kNotes;
  std::vector<std::pair<const char*, size_t>> a_bytes;  // where the values lie in memory
  for (const auto* list : {&members, &former})
    for (NodeId n : *list) {
      a_values.emplace_back(g.Value(n));
      a_bytes.emplace_back(g.Value(n).data(), g.Value(n).size());
    }
  // Values of the persons that stay, and of D2 (removed, but B's as much as A's).
  std::vector<std::string> kept_values = {kMB, kGB, kMC, kGC, kMD, kUD, "d2-shared"};
  std::vector<NodeId> others;  // their live identifiers
  for (NodeId n = 0; n < g.node_count(); ++n)
    if (g.Live(n) && g.OneIdOf(n) != a) others.push_back(n);
  REQUIRE(others.size() == 6);

  const std::string saved_before = SaveGraph(g);
  for (const std::string& v : a_values) REQUIRE_MESSAGE(Contains(saved_before, v), v);
  for (const std::string& v : kept_values) REQUIRE_MESSAGE(Contains(saved_before, v), v);
  const std::string others_before = Persons(g, cfg, /*rule_ends=*/false, a);
  const auto explained_before = Explanations(g, others);
  const auto counts_before = g.counts();
  const NodeId nc = find(g, "mobile", kMC);
  CHECK(g.PersonAt(g.Root(nc)).rule_endpoints == 2);  // the never_links from A's mobile and ext
  const uint64_t feed_next = e->feed().next();

  IdentityGraph::Forgotten f = g.Forget(members[3]);  // any member names the person

  SUBCASE("what it reports") {
    CHECK(f.oneid == a);
    CHECK(std::set<uint64_t>(f.oneids.begin(), f.oneids.end()) == a_oneids);
    CHECK(std::is_sorted(f.oneids.begin(), f.oneids.end()));
    CHECK(f.identifiers == 6);
    std::vector<NodeId> all = members;
    all.insert(all.end(), former.begin(), former.end());
    std::sort(all.begin(), all.end());
    CHECK(f.nodes == all);
    CHECK(f.rules == std::vector<uint64_t>{1, 2, 3});
    CHECK(std::is_sorted(f.links.begin(), f.links.end()));
    // Exactly the links that touched them are wiped; every other link is whole.
    for (uint32_t i = 0; i < g.counts().links; ++i) {
      const cdp::Link& l = g.link(i);
      const bool listed = std::binary_search(f.links.begin(), f.links.end(), i);
      INFO("link ", i);
      CHECK(listed == (l.a == cdp::kNoNode));
      if (listed) CHECK((l.b == cdp::kNoNode && l.record == 0 && l.ts == 0 && l.source == 0 && l.count == 0));
      else CHECK((!std::binary_search(all.begin(), all.end(), l.a) && !std::binary_search(all.begin(), all.end(), l.b)));
    }
    CHECK(e->feed().next() == feed_next);  // no feed event: the caller announces it
  }

  SUBCASE("lookups no longer find the person, and its memory is overwritten") {
    for (NodeId n : f.nodes) {
      CHECK_FALSE(g.Live(n));
      CHECK_FALSE(g.Quarantined(n));
      CHECK(g.OneIdOf(n) == 0);
      CHECK(g.Value(n).empty());
      CHECK(g.node(n).first_link == IdentityGraph::kNoLink);
    }
    CHECK(find(g, "member_no", kGA) == cdp::kNoNode);
    CHECK(find(g, "mobile", kMA) == cdp::kNoNode);
    CHECK(find(g, "tb_nick", "alice_old_nick") == cdp::kNoNode);
    CHECK(find(g, "email", "desk.alice@example.com") == cdp::kNoNode);
    CHECK(Resolve(*e, "mobile", kMA) == 0);
    CHECK(Resolve(*e, "unionid", kUA) == 0);
    for (uint64_t id : a_oneids) {
      CHECK(g.Canonical(id) == 0);
      CHECK(g.PersonAnchor(id) == cdp::kNoNode);
    }
    for (auto [p, len] : a_bytes) CHECK(std::all_of(p, p + len, [](char c) { return c == 0; }));
    CHECK(g.rules().empty());
  }

  SUBCASE("the others are untouched, but for the never_link ends A took along") {
    CHECK(Persons(g, cfg, /*rule_ends=*/false) == others_before);
    CHECK(Explanations(g, others) == explained_before);
    CHECK(g.PersonAt(g.Root(nc)).rule_endpoints == 0);
    CHECK(g.Canonical(d) == d);
    CHECK(Resolve(*e, "unionid", kUD) == d);
    const auto c = g.counts();
    CHECK(c.persons == counts_before.persons - 1);
    CHECK(c.identifiers == counts_before.identifiers - 6);
    CHECK(c.redirects == 1);  // D's
    CHECK(c.conflicts == 0);
    CHECK(c.links == counts_before.links);  // link ids stay taken
    CHECK(c.forgotten == 1);
    CHECK(counts_before.forgotten == 0);
  }

  SUBCASE("the graph is the one that never saw A") {
    CHECK(Render(g, cfg) == Render(ref->graph(), ref->config()));
  }

  SUBCASE("forgetting what is not a live person changes nothing") {
    const std::string before = SaveGraph(g);
    IdentityGraph::Forgotten none = g.Forget(f.nodes.front());
    CHECK(none.oneid == 0);
    CHECK(none.oneids.empty());
    CHECK(none.nodes.empty());
    CHECK(none.links.empty());
    CHECK(none.rules.empty());
    CHECK(g.counts().forgotten == 1);
    CHECK(SaveGraph(g) == before);
  }

  SUBCASE("a snapshot holds none of A's values, loads back equal, and goes on equal") {
    const std::string saved = SaveGraph(g);
    for (const std::string& v : a_values) CHECK_MESSAGE(!Contains(saved, v), v);
    for (const std::string& v : kept_values) CHECK_MESSAGE(Contains(saved, v), v);

    Loaded l(cfg, saved);
    REQUIRE_MESSAGE(l.status.ok(), l.status.ToString());
    IdentityGraph& h = *l.graph;
    CHECK(Render(h, cfg) == Render(g, cfg));
    const auto cg = g.counts(), ch = h.counts();
    CHECK(ch.links == cg.links);
    CHECK(ch.forgotten == 1);
    REQUIRE(h.node_count() == g.node_count());
    for (NodeId n = 0; n < g.node_count(); ++n) {
      INFO("node ", n);
      CHECK(h.node(n).flags == g.node(n).flags);
      CHECK(h.Value(n) == g.Value(n));
      CHECK(h.Root(n) == g.Root(n));
      CHECK(h.node(n).first_link == g.node(n).first_link);
    }
    CHECK(find(h, "member_no", kGA) == cdp::kNoNode);
    for (uint64_t id : a_oneids) CHECK(h.Canonical(id) == 0);
    CHECK(SaveGraph(h).size() == saved.size());

    // Both go on alike, and alike with the graph that never saw A: a merge, a refusal, D2
    // seen again (its node revives), a new person.
    Driver drv(cfg);
    IdentityGraph& r = ref->graph();
    const std::vector<std::string> later = {
        Rec("crm", kT0 + 100, Id("mobile", kMC) + "," + Id("email", "c@example.com")),
        Rec("pos", kT0 + 101, Id("member_no", kGB) + "," + Id("mobile", kMC)),
        Rec("app", kT0 + 102, Id("device_id", "D2-SHARED") + "," + Id("member_no", kGC)),
        Rec("pos", kT0 + 103, Id("mobile", "13911110099") + "," + Id("member_no", "GE-0005")),
    };
    for (const std::string& line : later) {
      INFO(line);
      auto found = drv.Records({&g, &h, &r}, line);
      CHECK(found[0] == found[1]);
    }
    CHECK(Render(h, cfg) == Render(g, cfg));
    CHECK(Render(g, cfg) == Render(r, ref->config()));
    CHECK(find(g, "device_id", "d2-shared") != cdp::kNoNode);

    // A's values again: a new node and a new person, whose OneID is none of A's (the
    // graph that never saw A derives A's own from the same anchor).
    const NodeId nodes_before = static_cast<NodeId>(g.node_count());
    auto found = drv.Records({&g, &h, &r}, Rec("pos", kT0 + 200, Id("mobile", kMA) + "," + Id("member_no", kGA)));
    CHECK(found[0] == found[1]);
    for (NodeId n : found[0]) CHECK(n >= nodes_before);
    const uint64_t again = g.OneIdOf(found[0][0]);
    CHECK(again != 0);
    CHECK(again == g.OneIdOf(found[0][1]));
    CHECK(again == h.OneIdOf(found[1][0]));
    CHECK(a_oneids.count(again) == 0);
    CHECK(r.OneIdOf(found[2][0]) == a);
    CHECK(Render(h, cfg) == Render(g, cfg));
    CHECK(g.counts().persons == counts_before.persons + 1);  // B, C, D, E and A's successor
  }
}

TEST_CASE("forget (identity): a snapshot whose forgotten entries hold anything is refused") {
  auto e = Build(true);
  IdentityGraph& g = e->graph();
  const NodeId ga = g.Find(static_cast<uint32_t>(e->config().FindType("member_no")), kGA);
  REQUIRE(ga != cdp::kNoNode);
  const IdentityGraph::Forgotten f = g.Forget(ga);
  REQUIRE(!f.links.empty());
  const std::string bytes = SaveGraph(g);
  // Layout: part "identity" (8 + 8 bytes), the values (8 + len), the nodes (8 + 32 each),
  // the links (8 + 48 each).
  uint64_t values = 0;
  std::memcpy(&values, bytes.data() + 16, 8);
  const size_t nodes_at = 24 + values + 8;
  const size_t links_at = nodes_at + g.node_count() * 32 + 8;
  {
    std::string bad = bytes;
    const int64_t t = kT0;
    std::memcpy(bad.data() + nodes_at + f.nodes[0] * 32 + 24, &t, 8);  // SavedNode::first_seen
    Loaded l(e->config(), bad);
    CHECK(l.status.code() == absl::StatusCode::kDataLoss);
    CHECK(l.status.message().find("forgotten node") != std::string_view::npos);
  }
  {
    std::string bad = bytes;
    const int64_t t = kT0;
    std::memcpy(bad.data() + links_at + f.links[0] * sizeof(cdp::Link) + offsetof(cdp::Link, ts), &t, 8);
    Loaded l(e->config(), bad);
    CHECK(l.status.code() == absl::StatusCode::kDataLoss);
    CHECK(l.status.message().find("forgotten link") != std::string_view::npos);
  }
  Loaded good(e->config(), bytes);
  CHECK(good.status.ok());
}

TEST_CASE("feed: Erase empties events in place; their places and times stay, through Save and Load") {
  cdp::Feed feed;
  using K = cdp::FeedEvent::Kind;
  auto add = [&](K kind, uint64_t a, int64_t ts, std::string text = "") -> cdp::FeedEvent& {
    cdp::FeedEvent& e = feed.Append(kind);
    e.a = a;
    e.ts = ts;
    e.record = 7;
    e.node = 3;
    e.count = 2;
    if (!text.empty()) e.text = feed.AddText(std::move(text));
    return e;
  };
  add(K::kPersonCreated, 100, 10);
  add(K::kIdRejected, 0, 11, "mobile:13900001111");
  add(K::kTagChanged, 100, 12, R"({"tag":"vip","from":null,"to":"secret-of-100"})");
  add(K::kTagChanged, 200, 13, R"({"tag":"vip","from":null,"to":"kept-of-200"})");
  add(K::kMerged, 100, 14).b = 101;
  add(K::kPersonCreated, 200, 15);
  const uint32_t text_of_secret = [&] {
    uint32_t t = 0;
    feed.Read(0, 100, [&](const cdp::FeedEvent& e) {
      if (e.seq == 3) t = e.text;
    });
    return t;
  }();

  int asked = 0;
  const uint64_t erased = feed.Erase([&](const cdp::FeedEvent& e) {
    ++asked;
    return e.a == 100 || (e.kind == K::kIdRejected && feed.text(e.text) == "mobile:13900001111");
  });
  CHECK(erased == 4);
  CHECK(asked == 6);
  CHECK(feed.text(text_of_secret).empty());

  auto check = [&](const cdp::Feed& f) {
    std::vector<cdp::FeedEvent> events;
    f.Read(0, 100, [&](const cdp::FeedEvent& e) { events.push_back(e); });
    REQUIRE(events.size() == 6);
    for (size_t i = 0; i < events.size(); ++i) {
      const cdp::FeedEvent& e = events[i];
      INFO("event ", e.seq);
      CHECK(e.seq == i + 1);
      CHECK(e.ts == int64_t(10 + i));
      const bool gone = e.seq != 4 && e.seq != 6;
      CHECK((e.kind == K::kErased) == gone);
      if (gone) {
        CHECK(e.a == 0);
        CHECK(e.b == 0);
        CHECK(e.record == 0);
        CHECK(e.count == 0);
        CHECK(e.node == 0xFFFFFFFFu);
        CHECK(e.text == 0xFFFFFFFFu);
        CHECK(e.link == 0xFFFFFFFFu);
      }
    }
    CHECK(events[3].a == 200);
    CHECK(f.text(events[3].text) == R"({"tag":"vip","from":null,"to":"kept-of-200"})");
  };
  check(feed);

  // Erased events are not offered again.
  asked = 0;
  CHECK(feed.Erase([&](const cdp::FeedEvent&) { return ++asked, false; }) == 0);
  CHECK(asked == 2);

  cdp::snap::Writer w;
  feed.Save(w);
  const std::string bytes = w.bytes();
  CHECK(!Contains(bytes, "secret-of-100"));
  CHECK(!Contains(bytes, "13900001111"));
  CHECK(Contains(bytes, "kept-of-200"));
  cdp::Feed loaded;
  cdp::snap::Reader r(bytes);
  REQUIRE(loaded.Load(r).ok());
  CHECK(r.done());
  check(loaded);
  CHECK(loaded.next() == feed.next());
  // The loaded feed goes on: new events, trims past erased ones.
  CHECK(loaded.Append(K::kPersonForgotten).seq == 7);
  loaded.Trim(4);
  CHECK(loaded.first() == 4);
  cdp::snap::Writer w2;
  loaded.Save(w2);
  cdp::Feed again;
  cdp::snap::Reader r2(w2.bytes());
  REQUIRE(again.Load(r2).ok());
  CHECK(again.first() == 4);
  CHECK(again.next() == 8);

  // An erased event that carries anything, or an unknown kind, is refused.
  const size_t events_at = bytes.size() - 6 * sizeof(cdp::FeedEvent);
  {
    std::string bad = bytes;
    const uint64_t a = 100;
    std::memcpy(bad.data() + events_at + offsetof(cdp::FeedEvent, a), &a, 8);  // event 1, erased
    cdp::Feed f;
    cdp::snap::Reader rb(bad);
    const absl::Status st = f.Load(rb);
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(st.message().find("erased feed event 1") != std::string_view::npos);
  }
  {
    std::string bad = bytes;
    bad[events_at + offsetof(cdp::FeedEvent, kind)] = static_cast<char>(static_cast<uint8_t>(K::kErased) + 1);
    cdp::Feed f;
    cdp::snap::Reader rb(bad);
    CHECK(f.Load(rb).code() == absl::StatusCode::kDataLoss);
  }
}

TEST_CASE("feed: the kinds erasure adds have pinned places and names") {
  using K = cdp::FeedEvent::Kind;
  CHECK(static_cast<int>(K::kPersonForgotten) == static_cast<int>(K::kIntent) + 1);
  CHECK(static_cast<int>(K::kErased) == static_cast<int>(K::kIntent) + 2);
  CHECK(cdp::FeedKindName(K::kPersonForgotten) == "person_forgotten");
  CHECK(cdp::FeedKindName(K::kErased) == "erased");
}
