#include "cdp/identity.hpp"

#include <algorithm>
#include <cstring>
#include <deque>

#include "snapshot.hpp"
#include "util.hpp"

namespace cdp {

std::string_view LinkRuleName(LinkRule r) {
  switch (r) {
    case LinkRule::kRecord: return "record";
    case LinkRule::kWeighted: return "weighted";
    case LinkRule::kForce: return "force_link";
  }
  return "unknown";
}

std::string_view RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kNone: return "none";
    case Refusal::kUniqueType: return "unique_type";
    case Refusal::kTypeLimit: return "type_limit";
    case Refusal::kWeakBridge: return "weak_bridge";
    case Refusal::kNeverLink: return "never_link";
    case Refusal::kPersonLimit: return "person_limit";
  }
  return "unknown";
}

std::string_view FeedKindName(FeedEvent::Kind k) {
  using K = FeedEvent::Kind;
  switch (k) {
    case K::kPersonCreated: return "person_created";
    case K::kMerged: return "merged";
    case K::kSplit: return "split";
    case K::kConflict: return "conflict";
    case K::kIdRejected: return "identifier_rejected";
    case K::kIdQuarantined: return "identifier_quarantined";
    case K::kIdRemoved: return "identifier_removed";
    case K::kRuleAdded: return "rule_added";
    case K::kRuleRemoved: return "rule_removed";
    case K::kTagDefined: return "tag_defined";
    case K::kTagChanged: return "tag_changed";
    case K::kTagDropped: return "tag_dropped";
    case K::kAudienceCounted: return "audience_counted";
    case K::kStateChanged: return "state_changed";
    case K::kPoints: return "points";
    case K::kTierChanged: return "tier_changed";
    case K::kJourney: return "journey";
    case K::kIntent: return "intent";
    case K::kPersonForgotten: return "person_forgotten";
    case K::kErased: return "erased";
  }
  return "unknown";
}

namespace {

constexpr uint8_t kDead = 1;         // removed: not in the index, not in any person
constexpr uint8_t kQuarantine = 2;   // stops linking, belongs to no person
constexpr uint8_t kWeak = 4;
constexpr uint8_t kMultiSource = 8;  // carried by more than one source
constexpr uint8_t kRuleEnd = 16;     // endpoint of a never_link rule
constexpr uint8_t kForgotten = 32;   // erased on request: with kDead, and nothing else
constexpr uint64_t kOneIdMask = (1ull << 63) - 1;

// Identifier strings live in 1 MiB chunks that never move, so nodes hold plain pointers.
class Arena {
 public:
  const char* Add(std::string_view s) {
    if (s.size() > kChunk - used_ || chunks_.empty()) {
      size_t n = std::max(kChunk, s.size());
      chunks_.push_back(std::make_unique<char[]>(n));
      used_ = n == kChunk ? 0 : n - s.size();  // an oversized chunk is full at once
      bytes_ += n;
      if (n != kChunk) {
        std::memcpy(chunks_.back().get(), s.data(), s.size());
        return chunks_.back().get();
      }
    }
    char* p = chunks_.back().get() + used_;
    std::memcpy(p, s.data(), s.size());
    used_ += s.size();
    return p;
  }
  uint64_t bytes() const { return bytes_; }

 private:
  static constexpr size_t kChunk = 1 << 20;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_ = 0;
  uint64_t bytes_ = 0;
};

struct IdKey {
  uint32_t type;
  std::string_view value;
};

inline uint64_t HashId(uint32_t type, std::string_view v) {
  return XXH3_64bits_withSeed(v.data(), v.size(), type);
}


}  // namespace

struct IdentityGraph::Impl {
  // The identifier index: a set of node ids hashed and compared through the nodes, so
  // each identifier costs one 4-byte slot instead of a key copy.
  struct NodeHash {
    using is_transparent = void;
    const ChunkedVector<Node>* nodes;
    size_t operator()(NodeId n) const {
      const Node& x = (*nodes)[n];
      return HashId(x.type, {x.str, x.len});
    }
    size_t operator()(const IdKey& k) const { return HashId(k.type, k.value); }
  };
  struct NodeEq {
    using is_transparent = void;
    const ChunkedVector<Node>* nodes;
    std::string_view V(NodeId n) const { return {(*nodes)[n].str, (*nodes)[n].len}; }
    bool operator()(NodeId a, NodeId b) const { return a == b; }
    bool operator()(NodeId a, const IdKey& k) const { return (*nodes)[a].type == k.type && V(a) == k.value; }
    bool operator()(const IdKey& k, NodeId a) const { return (*this)(a, k); }
  };
  // Links are deduplicated per (pair, source, rule): repeated orders add to a count.
  struct LinkKey {
    NodeId lo, hi;
    uint16_t source;
    LinkRule rule;
  };
  struct LinkHash {
    using is_transparent = void;
    const ChunkedVector<Link>* links;
    static size_t H(NodeId lo, NodeId hi, uint16_t s, LinkRule r) {
      // Two words through a multiply-xorshift mixer: cheaper than a byte hash, and the
      // table's control bytes take the top bits, the slot the bottom ones.
      uint64_t h = ((uint64_t(lo) << 32) | hi) * 0x9E3779B97F4A7C15ull;
      h ^= ((uint64_t(s) << 8) | uint64_t(r)) + (h >> 29);
      h *= 0xBF58476D1CE4E5B9ull;
      return h ^ (h >> 32);
    }
    size_t operator()(uint32_t i) const {
      const Link& l = (*links)[i];
      return H(std::min(l.a, l.b), std::max(l.a, l.b), l.source, l.rule);
    }
    size_t operator()(const LinkKey& k) const { return H(k.lo, k.hi, k.source, k.rule); }
  };
  struct LinkEq {
    using is_transparent = void;
    const ChunkedVector<Link>* links;
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t i, const LinkKey& k) const {
      const Link& l = (*links)[i];
      return std::min(l.a, l.b) == k.lo && std::max(l.a, l.b) == k.hi && l.source == k.source && l.rule == k.rule;
    }
    bool operator()(const LinkKey& k, uint32_t i) const { return (*this)(i, k); }
  };

  IdentityGraph& g;
  const EngineConfig& cfg;
  Feed& feed;
  Arena arena;
  absl::flat_hash_set<NodeId, NodeHash, NodeEq> index;
  absl::flat_hash_set<uint32_t, LinkHash, LinkEq> link_index;
  ChunkedVector<uint16_t> counts;         // persons × limited types
  std::vector<uint32_t> free_persons;
  std::vector<uint16_t> slot_type;        // limited slot → type
  std::vector<uint32_t> slot_limit;
  absl::flat_hash_map<uint64_t, NodeId> oneids;     // live OneID → anchor
  absl::flat_hash_map<uint64_t, uint64_t> redirects;  // absorbed → survivor
  // OneIDs of forgotten persons (and of those they had absorbed): never live, never a
  // redirect, never handed out again.
  absl::flat_hash_set<uint64_t> retired;
  uint64_t forgotten = 0;  // persons
  absl::flat_hash_map<NodeId, std::vector<uint64_t>> refusal_peers;
  std::vector<uint32_t> refused_links;
  uint64_t next_rule = 1;
  uint64_t quarantined = 0;
  uint64_t live_nodes = 0;
  // The context of the write in progress, for feed events and evidence. Empty between
  // writes (each write clears it before returning), so snapshots do not carry it.
  LinkStats* stats = nullptr;
  uint64_t cur_record = 0;
  int64_t cur_ts = 0;

  Impl(IdentityGraph& graph, const EngineConfig& c, Feed& f)
      : g(graph), cfg(c), feed(f),
        index(0, NodeHash{&graph.nodes_}, NodeEq{&graph.nodes_}),
        link_index(0, LinkHash{&graph.links_}, LinkEq{&graph.links_}) {
    for (const IdPolicy& p : cfg.types)
      if (p.limit_slot >= 0) {
        slot_type.push_back(static_cast<uint16_t>(&p - cfg.types.data()));
        slot_limit.push_back(p.max_per_person);
      }
  }

  size_t Slots() const { return slot_type.size(); }
  const IdPolicy& Policy(NodeId n) const { return cfg.types[g.nodes_[n].type]; }
  // A person's counters: Slots() consecutive entries. Chunks hold a multiple of any slot
  // count that divides 2^16, so a person's counters never straddle two chunks.
  uint16_t* Counts(uint32_t person) { return &counts[size_t(person) * SlotStride()]; }
  size_t SlotStride() const {
    size_t s = 1;
    while (s < Slots()) s <<= 1;
    return s;
  }

  // --- union-find -----------------------------------------------------------------------

  NodeId Root(NodeId n) {
    auto& nodes = g.nodes_;
    while (nodes[n].parent != n) {
      nodes[n].parent = nodes[nodes[n].parent].parent;  // path halving
      n = nodes[n].parent;
    }
    return n;
  }

  uint32_t NewPerson(NodeId n) {
    uint32_t p;
    if (!free_persons.empty()) {
      p = free_persons.back();
      free_persons.pop_back();
    } else {
      p = static_cast<uint32_t>(g.persons_.size());
      g.persons_.emplace_back();
      for (size_t k = 0; k < SlotStride(); ++k) counts.push_back(0);
    }
    const Node& x = g.nodes_[n];
    g.persons_[p] = Person{0, x.first_seen, 1, (x.flags & kWeak) ? 0u : 1u, n, (x.flags & kRuleEnd) ? 1u : 0u};
    uint16_t* c = Counts(p);
    std::fill(c, c + Slots(), 0);
    int slot = cfg.types[x.type].limit_slot;
    if (slot >= 0) c[slot] = 1;
    return p;
  }

  void FreePerson(uint32_t p) { free_persons.push_back(p); }

  NodeId NewNode(uint32_t type, std::string_view v, int64_t ts, uint32_t source) {
    auto id = static_cast<NodeId>(g.nodes_.size());
    Node x{};
    x.str = arena.Add(v);
    x.len = static_cast<uint16_t>(v.size());
    x.type = static_cast<uint16_t>(type);
    x.flags = cfg.types[type].trust == Trust::kWeak ? kWeak : 0;
    x.source0 = static_cast<uint16_t>(source);
    x.parent = id;
    x.next = id;
    x.first_link = kNoLink;
    x.first_seen = ts;
    g.nodes_.push_back(x);
    g.nodes_[id].summary = NewPerson(id);
    index.insert(id);
    ++live_nodes;
    return id;
  }

  // A removed identifier seen again comes back as a new singleton person, keeping its
  // node, so manual rules on it still hold (a rule is about the identifier's value). A
  // quarantined one comes back quarantined, a member of no person: removing it took its
  // evidence away, not the conflicts that marked it as shared.
  NodeId Revive(NodeId n, int64_t ts, uint32_t source) {
    Node& x = g.nodes_[n];
    x.flags &= static_cast<uint8_t>(~(kDead | kMultiSource));
    x.first_seen = ts;
    x.source0 = static_cast<uint16_t>(source);
    x.parent = n;
    x.next = n;
    x.summary = (x.flags & kQuarantine) ? kNoSummary : NewPerson(n);
    ++live_nodes;
    return n;
  }

  // A candidate for anchor: strong before weak, higher priority, earlier, then by value.
  bool BetterAnchor(NodeId a, NodeId b) const {
    const Node& x = g.nodes_[a];
    const Node& y = g.nodes_[b];
    bool wx = x.flags & kWeak, wy = y.flags & kWeak;
    if (wx != wy) return !wx;
    int px = cfg.types[x.type].priority, py = cfg.types[y.type].priority;
    if (px != py) return px > py;
    if (x.first_seen != y.first_seen) return x.first_seen < y.first_seen;
    if (x.type != y.type) return cfg.name_rank[x.type] < cfg.name_rank[y.type];
    return std::string_view(x.str, x.len) < std::string_view(y.str, y.len);
  }

  // Which person's OneID survives a merge: an existing person over a fresh one, then the
  // earliest first seen, then the anchor's priority, then the smaller OneID.
  bool Survives(const Person& a, const Person& b) const {
    if ((a.oneid == 0) != (b.oneid == 0)) return a.oneid != 0;
    if (a.first_seen != b.first_seen) return a.first_seen < b.first_seen;
    int pa = cfg.types[g.nodes_[a.anchor].type].priority, pb = cfg.types[g.nodes_[b.anchor].type].priority;
    if (pa != pb) return pa > pb;
    return a.oneid < b.oneid;
  }

  bool NeverLinked(NodeId rx, NodeId ry) const { return g.NeverRuleBetween(rx, ry) != nullptr; }

  Refusal Check(NodeId rx, NodeId ry, NodeId x, NodeId y, LinkRule rule, uint16_t& type) {
    const Person& A = g.persons_[g.nodes_[rx].summary];
    const Person& B = g.persons_[g.nodes_[ry].summary];
    if (A.rule_endpoints && B.rule_endpoints && NeverLinked(rx, ry)) return Refusal::kNeverLink;
    // The size cap holds even for force links: a person that would outgrow it keeps what
    // it has and the excess is refused and reported; it is never frozen.
    if (A.size + B.size > cfg.limits.max_ids_per_person) return Refusal::kPersonLimit;
    if (rule == LinkRule::kForce) return Refusal::kNone;
    const uint16_t* ca = Counts(g.nodes_[rx].summary);
    const uint16_t* cb = Counts(g.nodes_[ry].summary);
    for (size_t s = 0; s < Slots(); ++s) {
      if (uint32_t(ca[s]) + cb[s] > slot_limit[s]) {
        type = slot_type[s];
        return slot_limit[s] == 1 ? Refusal::kUniqueType : Refusal::kTypeLimit;
      }
    }
    bool weak_edge = (g.nodes_[x].flags & kWeak) || (g.nodes_[y].flags & kWeak);
    if (rule == LinkRule::kRecord && weak_edge && A.strong && B.strong) return Refusal::kWeakBridge;
    return Refusal::kNone;
  }

  // Joins two roots; the larger tree becomes the parent, the survivor's OneID is kept.
  void Union(NodeId rx, NodeId ry, uint32_t link) {
    auto& nodes = g.nodes_;
    uint32_t px = nodes[rx].summary, py = nodes[ry].summary;
    Person A = g.persons_[px], B = g.persons_[py];
    bool a_survives = Survives(A, B);
    const Person& win = a_survives ? A : B;
    const Person& lose = a_survives ? B : A;
    NodeId parent = rx, child = ry;
    if (A.size < B.size) std::swap(parent, child);
    uint32_t keep = nodes[parent].summary, drop = nodes[child].summary;
    uint16_t* ck = Counts(keep);
    const uint16_t* cd = Counts(drop);
    for (size_t s = 0; s < Slots(); ++s) ck[s] = static_cast<uint16_t>(ck[s] + cd[s]);
    Person& m = g.persons_[keep];
    m.oneid = win.oneid;
    m.anchor = win.anchor;
    m.first_seen = std::min(A.first_seen, B.first_seen);
    m.size = A.size + B.size;
    m.strong = A.strong + B.strong;
    m.rule_endpoints = A.rule_endpoints + B.rule_endpoints;
    FreePerson(drop);
    nodes[child].parent = parent;
    nodes[child].summary = kNoSummary;
    std::swap(nodes[parent].next, nodes[child].next);  // splice the member rings
    if (win.oneid != 0 && lose.oneid != 0) {
      redirects[lose.oneid] = win.oneid;
      oneids.erase(lose.oneid);
      FeedEvent& e = feed.Append(FeedEvent::Kind::kMerged);
      e.a = win.oneid;
      e.b = lose.oneid;
      e.link = link;
      e.record = cur_record;
      e.ts = cur_ts;
      if (link != kNoLink) e.source = g.links_[link].source;
      if (stats) stats->merges++;
    }
  }

  // --- evidence -------------------------------------------------------------------------

  uint32_t AddLink(NodeId x, NodeId y, uint16_t source, LinkRule rule, bool& fresh) {
    LinkKey k{std::min(x, y), std::max(x, y), source, rule};
    if (auto it = link_index.find(k); it != link_index.end()) {
      Link& l = g.links_[*it];
      l.count++;
      if (cur_ts < l.ts || (cur_ts == l.ts && cur_record < l.record)) {
        l.ts = cur_ts;
        l.record = cur_record;
      }
      fresh = false;
      return *it;
    }
    auto i = static_cast<uint32_t>(g.links_.size());
    Link l{};
    l.a = x;
    l.b = y;
    l.next_a = g.nodes_[x].first_link;
    l.next_b = g.nodes_[y].first_link;
    l.record = cur_record;
    l.ts = cur_ts;
    l.count = 1;
    l.source = source;
    l.rule = rule;
    l.state = LinkState::kActive;
    g.links_.push_back(l);
    g.nodes_[x].first_link = i;
    g.nodes_[y].first_link = i;
    link_index.insert(i);
    fresh = true;
    return i;
  }

  static uint32_t NextLink(const Link& l, NodeId n) { return l.a == n ? l.next_a : l.next_b; }

  // Tries to join x's and y's persons on the strength of link i.
  void Apply(uint32_t i, bool report) {
    Link& l = g.links_[i];
    NodeId rx = Root(l.a), ry = Root(l.b);
    if (rx == ry) {
      l.state = LinkState::kActive;
      return;
    }
    uint16_t type = 0;
    Refusal why = Check(rx, ry, l.a, l.b, l.rule, type);
    if (why == Refusal::kNone) {
      l.state = LinkState::kActive;
      Union(rx, ry, i);
      return;
    }
    bool was_refused = l.state == LinkState::kRefused;
    l.state = LinkState::kRefused;
    l.reason = why;
    l.reason_type = type;
    if (!l.pad) {  // listed once for explanations and counts
      l.pad = 1;
      refused_links.push_back(i);
    }
    if (!report) return;
    uint64_t oa = g.persons_[g.nodes_[rx].summary].oneid, ob = g.persons_[g.nodes_[ry].summary].oneid;
    if (!was_refused) {
      FeedEvent& e = feed.Append(FeedEvent::Kind::kConflict);
      e.a = oa;
      e.b = ob;
      e.link = i;
      e.reason = static_cast<uint8_t>(why);
      e.record = cur_record;
      e.ts = cur_ts;
      e.source = l.source;
      if (stats) stats->conflicts++;
    }
    if (why != Refusal::kNeverLink) {
      // Count, for each side, the distinct persons it could not join.
      NoteRefusal(l.a, ob ? ob : (1ull << 63) | ry);
      NoteRefusal(l.b, oa ? oa : (1ull << 63) | rx);
    }
  }

  void NoteRefusal(NodeId n, uint64_t peer) {
    if (g.nodes_[n].flags & (kQuarantine | kDead)) return;
    auto& peers = refusal_peers[n];
    if (std::find(peers.begin(), peers.end(), peer) != peers.end()) return;
    peers.push_back(peer);
    if (peers.size() > cfg.quarantine_after) Quarantine(n);
  }

  void Quarantine(NodeId n) {
    uint64_t before = g.OneIdOf(n);
    g.nodes_[n].flags |= kQuarantine;
    refusal_peers.erase(n);
    ++quarantined;
    FeedEvent& e = feed.Append(FeedEvent::Kind::kIdQuarantined);
    e.node = n;
    e.a = before;
    e.record = cur_record;
    e.ts = cur_ts;
    if (stats) stats->quarantined++;
    std::vector<NodeId> seeds{n};
    Rebuild(seeds);
  }

  // --- OneIDs ---------------------------------------------------------------------------

  bool Taken(uint64_t id) const { return oneids.contains(id) || redirects.contains(id) || retired.contains(id); }

  uint64_t Canonical(uint64_t id) const {
    for (int hops = 0; hops < 1 << 20; ++hops) {
      if (oneids.contains(id)) return id;
      auto it = redirects.find(id);
      if (it == redirects.end()) return 0;
      id = it->second;
    }
    return 0;
  }

  uint64_t DeriveOneId(NodeId anchor) const {
    const Node& x = g.nodes_[anchor];
    const std::string& t = cfg.types[x.type].name;
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset_withSeed(&st, cfg.oneid_seed);
    XXH3_64bits_update(&st, t.data(), t.size());
    XXH3_64bits_update(&st, "\x1f", 1);
    XXH3_64bits_update(&st, x.str, x.len);
    return XXH3_64bits_digest(&st) & kOneIdMask;
  }

  // The OneID a new person anchored at n gets. Collisions (rare at 63 bits) step on
  // deterministically. reclaim: OneIDs this person may take back from a redirect.
  uint64_t Assign(uint32_t person, const absl::flat_hash_set<uint64_t>* reclaim = nullptr) {
    Person& p = g.persons_[person];
    uint64_t id = DeriveOneId(p.anchor);
    while (true) {
      if (id == 0) id = 1;
      if (reclaim && redirects.contains(id) && reclaim->contains(Canonical(id))) {
        redirects.erase(id);
        break;
      }
      if (!Taken(id)) break;
      id = XXH3_64bits(&id, sizeof id) & kOneIdMask;
    }
    p.oneid = id;
    oneids[id] = p.anchor;
    return id;
  }

  NodeId BestAnchorOf(NodeId root) {
    NodeId best = root, n = root;
    do {
      if (!(g.nodes_[n].flags & (kDead | kQuarantine)) && BetterAnchor(n, best)) best = n;
      n = g.nodes_[n].next;
    } while (n != root);
    return best;
  }

  void Created(NodeId root) {
    uint32_t s = g.nodes_[root].summary;
    g.persons_[s].anchor = BestAnchorOf(root);
    uint64_t id = Assign(s);
    FeedEvent& e = feed.Append(FeedEvent::Kind::kPersonCreated);
    e.a = id;
    e.node = g.persons_[s].anchor;
    e.record = cur_record;
    e.ts = cur_ts;
    if (stats) stats->persons_created++;
  }

  // --- rebuild --------------------------------------------------------------------------

  // Rebuilds the components of seeds from their remaining evidence: resets every member to
  // a singleton and replays the links in time order through the same checks. Returns the
  // OneIDs of the resulting persons.
  std::vector<uint64_t> Rebuild(const std::vector<NodeId>& seeds) {
    auto& nodes = g.nodes_;
    std::vector<NodeId> members;
    absl::flat_hash_set<NodeId> in;
    struct Old { uint64_t oneid; NodeId anchor; };
    std::vector<Old> olds;
    absl::flat_hash_map<NodeId, uint64_t> old_of;  // member → its OneID before
    for (NodeId s : seeds) {
      NodeId r = Root(s);
      if (in.contains(r)) continue;
      uint32_t sum = nodes[r].summary;
      uint64_t oid = sum == kNoSummary ? 0 : g.persons_[sum].oneid;
      if (sum != kNoSummary && oid) olds.push_back({oid, g.persons_[sum].anchor});
      NodeId n = r;
      do {
        in.insert(n);
        members.push_back(n);
        old_of[n] = oid;
        n = nodes[n].next;
      } while (n != r);
    }
    std::sort(members.begin(), members.end());
    // The evidence among the members, each link once.
    std::vector<uint32_t> links;
    for (NodeId n : members) {
      for (uint32_t i = nodes[n].first_link; i != kNoLink; i = NextLink(g.links_[i], n)) {
        const Link& l = g.links_[i];
        if (l.a != n || l.state == LinkState::kRemoved || !in.contains(l.b)) continue;
        links.push_back(i);
      }
    }
    // Reset to singletons (removed and quarantined identifiers join no person).
    for (NodeId n : members) {
      Node& x = nodes[n];
      if (x.parent == n && x.summary != kNoSummary) {
        uint64_t oid = g.persons_[x.summary].oneid;
        if (oid) oneids.erase(oid);
        FreePerson(x.summary);
      }
      x.parent = n;
      x.next = n;
      x.summary = (x.flags & (kDead | kQuarantine)) ? kNoSummary : NewPerson(n);
    }
    std::sort(links.begin(), links.end(), [&](uint32_t a, uint32_t b) {
      const Link& x = g.links_[a];
      const Link& y = g.links_[b];
      if (x.ts != y.ts) return x.ts < y.ts;
      if (x.record != y.record) return x.record < y.record;
      return a < b;
    });
    LinkStats* saved = stats;
    stats = nullptr;
    for (uint32_t i : links) {
      const Link& l = g.links_[i];
      if ((nodes[l.a].flags | nodes[l.b].flags) & (kDead | kQuarantine)) continue;
      Apply(i, /*report=*/false);
    }
    stats = saved;
    // Hand out OneIDs: each old person's OneID to the part holding its anchor.
    absl::flat_hash_set<uint64_t> reclaim;
    for (const Old& o : olds) reclaim.insert(o.oneid);
    std::vector<NodeId> roots;
    for (NodeId n : members)
      if (nodes[n].parent == n && nodes[n].summary != kNoSummary) roots.push_back(n);
    for (const Old& o : olds) {
      if (nodes[o.anchor].flags & (kDead | kQuarantine)) continue;
      NodeId r = Root(o.anchor);
      Person& p = g.persons_[nodes[r].summary];
      if (p.oneid == 0) {
        p.oneid = o.oneid;
        p.anchor = o.anchor;
        oneids[o.oneid] = o.anchor;
      } else {  // two old persons ended up together (a rule was lifted): a merge
        Person tmp = p;
        Person other{o.oneid, p.first_seen, 0, 0, o.anchor, 0};
        bool keep_current = Survives(tmp, other);
        uint64_t win = keep_current ? tmp.oneid : o.oneid, lose = keep_current ? o.oneid : tmp.oneid;
        if (!keep_current) {
          oneids.erase(tmp.oneid);
          p.oneid = o.oneid;
          p.anchor = o.anchor;
          oneids[o.oneid] = o.anchor;
        }
        redirects[lose] = win;
        FeedEvent& e = feed.Append(FeedEvent::Kind::kMerged);
        e.a = win;
        e.b = lose;
        e.record = cur_record;
        e.ts = cur_ts;
      }
    }
    // An old person whose anchor is gone passes its OneID to the earliest, largest part.
    for (const Old& o : olds) {
      if (!(nodes[o.anchor].flags & (kDead | kQuarantine)) || oneids.contains(o.oneid)) continue;
      NodeId best = kNoNode;
      for (NodeId r : roots) {
        const Person& p = g.persons_[nodes[r].summary];
        if (p.oneid != 0 || old_of[r] != o.oneid) continue;
        if (best == kNoNode) { best = r; continue; }
        const Person& q = g.persons_[nodes[best].summary];
        if (p.first_seen < q.first_seen || (p.first_seen == q.first_seen && p.size > q.size)) best = r;
      }
      if (best == kNoNode) continue;
      Person& p = g.persons_[nodes[best].summary];
      p.anchor = BestAnchorOf(best);
      p.oneid = o.oneid;
      oneids[o.oneid] = p.anchor;
    }
    // The other parts are new persons (or regain the OneID they had before a merge).
    std::vector<uint64_t> result;
    for (NodeId r : roots) {
      uint32_t s = nodes[r].summary;
      if (g.persons_[s].oneid == 0) {
        // Parts made only of identifiers that had no person yet stay fresh: the record
        // being linked names them when it finishes.
        bool had_person = false;
        uint64_t from = 0;
        NodeId n = r;
        do {
          if (old_of[n]) { had_person = true; from = old_of[n]; }
          n = nodes[n].next;
        } while (n != r);
        if (!had_person) continue;
        g.persons_[s].anchor = BestAnchorOf(r);
        uint64_t id = Assign(s, &reclaim);
        FeedEvent& e = feed.Append(FeedEvent::Kind::kSplit);
        e.a = Canonical(from) ? Canonical(from) : from;
        e.b = id;
        e.record = cur_record;
        e.ts = cur_ts;
      }
      result.push_back(g.persons_[s].oneid);
    }
    std::sort(result.begin(), result.end());
    result.erase(std::unique(result.begin(), result.end()), result.end());
    return result;
  }

  // --- erasure --------------------------------------------------------------------------

  static NodeId Other(const Link& l, NodeId n) { return l.a == n ? l.b : l.a; }

  // A removed identifier that may have been one person's alone: dead, not quarantined
  // (a quarantined one was shared by many), not already forgotten.
  bool Former(NodeId n) const { return (g.nodes_[n].flags & (kDead | kQuarantine | kForgotten)) == kDead; }

  // The removed identifiers that go with a person: each cluster of removed identifiers
  // that its members' evidence reaches (through removed identifiers only) goes whole when
  // none of the cluster's evidence reaches anything but the person: then only the
  // person's records ever carried them. (A removed identifier keeps its node so that a
  // later sighting revives it with its rules; its value is the person's, and goes.) A
  // cluster that another person's records carried too stays, as that person's.
  std::vector<NodeId> FormerOf(const absl::flat_hash_set<NodeId>& members) const {
    auto& nodes = g.nodes_;
    std::vector<NodeId> out, cluster;
    absl::flat_hash_set<NodeId> seen;
    for (NodeId m : members)
      for (uint32_t i = nodes[m].first_link; i != kNoLink; i = NextLink(g.links_[i], m)) {
        const NodeId start = Other(g.links_[i], m);
        if (!Former(start) || !seen.insert(start).second) continue;
        cluster.assign(1, start);
        bool alone = true;
        for (size_t k = 0; k < cluster.size(); ++k) {
          const NodeId d = cluster[k];
          for (uint32_t j = nodes[d].first_link; j != kNoLink; j = NextLink(g.links_[j], d)) {
            const NodeId o = Other(g.links_[j], d);
            if (members.contains(o)) continue;
            if (Former(o)) {
              if (seen.insert(o).second) cluster.push_back(o);
              continue;
            }
            alone = false;  // another person's identifier, or a quarantined one
          }
        }
        if (alone) out.insert(out.end(), cluster.begin(), cluster.end());
      }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Takes link i out of n's adjacency list.
  void Unlink(uint32_t i, NodeId n) {
    uint32_t* at = &g.nodes_[n].first_link;
    while (*at != i && *at != kNoLink) {
      Link& l = g.links_[*at];
      at = l.a == n ? &l.next_a : &l.next_b;
    }
    if (*at == i) *at = NextLink(g.links_[i], n);
  }
};

// --- public surface -----------------------------------------------------------------------

IdentityGraph::IdentityGraph(const EngineConfig& cfg, Feed& feed)
    : impl_(std::make_unique<Impl>(*this, cfg, feed)) {}
IdentityGraph::~IdentityGraph() = default;

NodeId IdentityGraph::Find(uint32_t type, std::string_view v) const {
  auto it = impl_->index.find(IdKey{type, v});
  return it == impl_->index.end() || (nodes_[*it].flags & kDead) ? kNoNode : *it;
}

NodeId IdentityGraph::Root(NodeId n) const {
  while (nodes_[n].parent != n) n = nodes_[n].parent;  // union by size: O(log n) deep
  return n;
}
bool IdentityGraph::BetterAnchor(NodeId a, NodeId b) const { return impl_->BetterAnchor(a, b); }

NodeId IdentityGraph::RecordAnchor(const Batch& b, const Record& r) const {
  NodeId nodes[64];
  std::vector<NodeId> heap;
  NodeId* ns = nodes;
  if (r.ids_count > 64) {
    heap.resize(r.ids_count);
    ns = heap.data();
  }
  for (uint32_t k = 0; k < r.ids_count; ++k) {
    const RecordId& id = b.ids[r.ids_begin + k];
    ns[k] = Find(id.type, b.Value(id));
  }
  return RecordAnchor(ns, r.ids_count);
}
bool IdentityGraph::Live(NodeId n) const { return n < nodes_.size() && !(nodes_[n].flags & (kDead | kQuarantine)); }
bool IdentityGraph::Quarantined(NodeId n) const { return n < nodes_.size() && (nodes_[n].flags & kQuarantine); }
uint64_t IdentityGraph::OneIdOf(NodeId n) const {
  if (nodes_[n].flags & (kDead | kQuarantine)) return 0;
  uint32_t s = nodes_[Root(n)].summary;
  return s == kNoSummary ? 0 : persons_[s].oneid;
}
uint64_t IdentityGraph::Canonical(uint64_t oneid) const { return impl_->Canonical(oneid); }

NodeId IdentityGraph::PersonAnchor(uint64_t oneid) const {
  uint64_t id = impl_->Canonical(oneid);
  if (!id) return kNoNode;
  return impl_->oneids.at(id);
}

std::vector<NodeId> IdentityGraph::Members(NodeId n) const {
  std::vector<NodeId> out;
  NodeId r = Root(n), m = r;
  do {
    if (Live(m)) out.push_back(m);
    m = nodes_[m].next;
  } while (m != r);
  std::sort(out.begin(), out.end());
  return out;
}

NodeId IdentityGraph::Intern(uint32_t type, std::string_view v, int64_t ts, uint32_t source) {
  auto it = impl_->index.find(IdKey{type, v});
  if (it != impl_->index.end() && !(nodes_[*it].flags & kDead)) return *it;
  impl_->cur_ts = ts == kNeverSeen ? 0 : ts;
  impl_->cur_record = 0;  // created by a rule, not by a record
  NodeId n = it != impl_->index.end() ? impl_->Revive(*it, ts, source) : impl_->NewNode(type, v, ts, source);
  if (!(nodes_[n].flags & kQuarantine)) impl_->Created(n);
  // The time was for this person_created only: a force link made next carries time 0.
  impl_->cur_ts = 0;
  return n;
}

void IdentityGraph::Prefetch(const Batch& b, const Record& r) const {
  for (uint32_t k = 0; k < r.ids_count; ++k) {
    const RecordId& id = b.ids[r.ids_begin + k];
    impl_->index.prefetch(IdKey{id.type, b.Value(id)});
  }
}

const ManualRule* IdentityGraph::NeverRuleBetween(NodeId rx, NodeId ry) const {
  for (const ManualRule& r : rules_) {
    if (!r.active || !r.never) continue;
    NodeId ra = Root(r.a), rb = Root(r.b);
    if ((ra == rx && rb == ry) || (ra == ry && rb == rx)) return &r;
  }
  return nullptr;
}

NodeId IdentityGraph::RecordAnchor(const NodeId* nodes, uint32_t count) const {
  NodeId best = kNoNode;
  for (uint32_t k = 0; k < count; ++k) {
    NodeId n = nodes[k];
    if (n == kNoNode || !Live(n)) continue;
    if (best == kNoNode || impl_->BetterAnchor(n, best)) best = n;
  }
  return best;
}

void IdentityGraph::AddRecord(const Batch& b, const Record& r, uint64_t record_seq, LinkStats& st,
                              NodeId* found) {
  Impl& m = *impl_;
  m.stats = &st;
  m.cur_record = record_seq;
  m.cur_ts = r.ts;
  // Feed events name the record that caused them only while it is being linked: every
  // other operation (unmerge, rules) leaves record and time at 0.
  struct ClearContext {
    Impl& m;
    ~ClearContext() { m.cur_record = 0; m.cur_ts = 0; m.stats = nullptr; }
  } clear_context{m};
  const uint64_t feed_mark = m.feed.next();
  // Resolve or create the record's identifiers. Small records: no allocation beyond the
  // fixed buffers below for up to 16 identifiers.
  constexpr size_t kInline = 16;
  NodeId inline_nodes[kInline];
  bool inline_old[kInline];
  std::vector<NodeId> heap_nodes;
  std::vector<uint8_t> heap_old;
  bool inline_weighted[kInline] = {};
  std::vector<uint8_t> heap_weighted;
  NodeId* ns = inline_nodes;
  bool* existed = inline_old;
  bool* weighted = inline_weighted;
  if (r.ids_count > kInline) {
    heap_nodes.resize(r.ids_count);
    heap_old.resize(r.ids_count);
    heap_weighted.resize(r.ids_count);
    ns = heap_nodes.data();
    existed = reinterpret_cast<bool*>(heap_old.data());
    weighted = reinterpret_cast<bool*>(heap_weighted.data());
  }
  size_t n = 0;
  for (uint32_t k = 0; k < r.ids_count; ++k) {
    const RecordId& id = b.ids[r.ids_begin + k];
    std::string_view v = b.Value(id);
    auto it = m.index.find(IdKey{id.type, v});
    NodeId hit = it == m.index.end() ? kNoNode : *it;
    if (hit != kNoNode && (nodes_[hit].flags & kDead)) {  // removed earlier: seen anew
      found[k] = m.Revive(hit, r.ts, r.source);
      if (nodes_[hit].flags & kQuarantine) {  // and still quarantined: it joins no one
        st.ids_quarantined_skipped++;
        continue;
      }
      existed[n] = false;
      ns[n++] = hit;
      continue;
    }
    if (hit != kNoNode) {
      found[k] = hit;
      Node& x = nodes_[hit];
      if (x.flags & kQuarantine) {
        st.ids_quarantined_skipped++;
        continue;
      }
      if (x.source0 != r.source) x.flags |= kMultiSource;
      if (r.ts < x.first_seen) {
        x.first_seen = r.ts;
        Person& p = persons_[nodes_[m.Root(hit)].summary];
        p.first_seen = std::min(p.first_seen, r.ts);
      }
      existed[n] = true;
      ns[n++] = hit;
    } else {
      existed[n] = false;
      ns[n++] = found[k] = m.NewNode(id.type, v, r.ts, r.source);
    }
  }
  if (n == 0) return;
  // The anchor: the best strong identifier, else the best weak one.
  size_t ai = 0;
  bool any_strong = false, strong_existed = false;
  for (size_t k = 0; k < n; ++k) {
    bool strong = !(nodes_[ns[k]].flags & kWeak);
    any_strong |= strong;
    strong_existed |= strong && existed[k];
    if (m.BetterAnchor(ns[k], ns[ai])) ai = k;
  }
  NodeId anchor = ns[ai];
  auto source = static_cast<uint16_t>(r.source);
  auto link = [&](NodeId x, NodeId y, LinkRule rule) {
    if ((nodes_[x].flags | nodes_[y].flags) & (kQuarantine | kDead)) return;
    bool fresh;
    uint32_t i = m.AddLink(x, y, source, rule, fresh);
    m.Apply(i, /*report=*/true);
  };
  // Weighted matching (Hema's rule): a record whose strong identifiers are all new joins
  // the person its weak identifiers point to, if their weights reach the threshold.
  if (any_strong && !strong_existed) {
    NodeId best = kNoNode;
    double best_score = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!existed[k] || !(nodes_[ns[k]].flags & kWeak)) continue;
      NodeId rw = m.Root(ns[k]);
      if (persons_[nodes_[rw].summary].strong == 0) continue;
      double score = 0;
      for (size_t j = 0; j < n; ++j)
        if (existed[j] && (nodes_[ns[j]].flags & kWeak) && m.Root(ns[j]) == rw)
          score += m.Policy(ns[j]).weight;
      if (score > best_score || (score == best_score && best != kNoNode &&
                                 m.Survives(persons_[nodes_[rw].summary], persons_[nodes_[best].summary]))) {
        best = rw;
        best_score = score;
      }
    }
    if (best != kNoNode && best_score + 1e-9 >= m.cfg.match_threshold) {
      for (size_t k = 0; k < n; ++k)
        if (existed[k] && (nodes_[ns[k]].flags & kWeak) && m.Root(ns[k]) == best) {
          link(anchor, ns[k], LinkRule::kWeighted);
          weighted[k] = true;  // its evidence is the weighted link, not a second one
        }
    }
  }
  // Star links from the anchor: strong identifiers first, then weak ones.
  for (int pass = 0; pass < 2; ++pass)
    for (size_t k = 0; k < n; ++k) {
      bool weak = nodes_[ns[k]].flags & kWeak;
      if (k != ai && weak == (pass == 1) && !weighted[k]) link(anchor, ns[k], LinkRule::kRecord);
    }
  // Persons made only of new identifiers get their OneID now that linking is done.
  bool created = false;
  for (size_t k = 0; k < n; ++k) {
    if (nodes_[ns[k]].flags & (kQuarantine | kDead)) continue;
    NodeId root = m.Root(ns[k]);
    if (persons_[nodes_[root].summary].oneid == 0) {
      m.Created(root);
      created = true;
    }
  }
  // A conflict raised against a person this record was creating named it 0: name it now.
  if (created && st.conflicts)
    for (uint64_t seq = feed_mark; seq < m.feed.next(); ++seq) {
      FeedEvent* e = m.feed.At(seq);
      if (!e || e->kind != FeedEvent::Kind::kConflict) continue;
      if (e->a == 0) e->a = OneIdOf(links_[e->link].a);
      if (e->b == 0) e->b = OneIdOf(links_[e->link].b);
    }
}

IdentityGraph::Explanation IdentityGraph::Explain(NodeId a, NodeId b) const {
  const Impl& m = *impl_;
  Explanation ex;
  if (Quarantined(a) || Quarantined(b)) {
    ex.quarantined = Quarantined(a) ? a : b;
    return ex;
  }
  NodeId ra = Root(a), rb = Root(b);
  if (ra == rb) {
    ex.linked = true;
    // Breadth-first search over active evidence: the shortest explanation.
    absl::flat_hash_map<NodeId, uint32_t> via;  // node → link it was reached by
    std::deque<NodeId> q{a};
    via[a] = kNoLink;
    while (!q.empty() && !via.contains(b)) {
      NodeId n = q.front();
      q.pop_front();
      for (uint32_t i = nodes_[n].first_link; i != kNoLink; i = Impl::NextLink(links_[i], n)) {
        const Link& l = links_[i];
        if (l.state != LinkState::kActive) continue;
        NodeId o = l.a == n ? l.b : l.a;
        if (via.contains(o) || !Live(o)) continue;
        via[o] = i;
        q.push_back(o);
      }
    }
    for (NodeId n = b; n != a && via.contains(n);) {
      uint32_t i = via[n];
      ex.path.push_back(i);
      ex.hops.push_back(n);
      n = links_[i].a == n ? links_[i].b : links_[i].a;
    }
    ex.hops.push_back(a);
    std::reverse(ex.path.begin(), ex.path.end());
    std::reverse(ex.hops.begin(), ex.hops.end());
    return ex;
  }
  if ((ex.rule = NeverRuleBetween(ra, rb))) return ex;
  for (uint32_t i : m.refused_links) {
    const Link& l = links_[i];
    if (l.state != LinkState::kRefused) continue;
    NodeId x = Root(l.a), y = Root(l.b);
    if ((x == ra && y == rb) || (x == rb && y == ra)) {
      ex.refused_link = i;
      break;
    }
  }
  return ex;
}

std::vector<uint64_t> IdentityGraph::RemoveIdentifier(NodeId n) {
  Impl& m = *impl_;
  uint64_t before = OneIdOf(n);
  Node& x = nodes_[n];
  x.flags |= kDead;  // stays in the index: a later sighting revives it, rules and all
  --m.live_nodes;
  for (uint32_t i = x.first_link; i != kNoLink; i = Impl::NextLink(links_[i], n)) links_[i].state = LinkState::kRemoved;
  FeedEvent& e = m.feed.Append(FeedEvent::Kind::kIdRemoved);
  e.node = n;
  e.a = before;
  return m.Rebuild({n});
}

std::vector<uint64_t> IdentityGraph::RemoveSource(uint32_t source, bool& found) {
  Impl& m = *impl_;
  found = false;
  std::vector<NodeId> seeds;
  for (size_t i = 0; i < links_.size(); ++i) {
    Link& l = links_[i];
    if (l.source != source || l.state == LinkState::kRemoved) continue;
    found = true;
    l.state = LinkState::kRemoved;
    seeds.push_back(l.a);
    seeds.push_back(l.b);
  }
  // Identifiers only this source ever carried, left without evidence, go as well.
  for (NodeId n = 0; n < nodes_.size(); ++n) {
    Node& x = nodes_[n];
    if ((x.flags & (kDead | kMultiSource)) || x.source0 != source) continue;
    found = true;
    bool evidenced = false;
    for (uint32_t i = x.first_link; i != kNoLink && !evidenced; i = Impl::NextLink(links_[i], n))
      evidenced = links_[i].state != LinkState::kRemoved;
    if (evidenced) continue;
    seeds.push_back(n);
    uint64_t before = OneIdOf(n);
    x.flags |= kDead;
    --m.live_nodes;
    FeedEvent& e = m.feed.Append(FeedEvent::Kind::kIdRemoved);
    e.node = n;
    e.a = before;
  }
  if (seeds.empty()) return {};
  return m.Rebuild(seeds);
}

std::vector<uint64_t> IdentityGraph::Split(const std::vector<NodeId>& side, uint64_t& rule_id) {
  Impl& m = *impl_;
  absl::flat_hash_set<NodeId> in(side.begin(), side.end());
  NodeId root = m.Root(side.front());
  std::vector<NodeId> all = Members(root), rest;
  for (NodeId n : all)
    if (!in.contains(n)) rest.push_back(n);
  for (NodeId n : side)
    for (uint32_t i = nodes_[n].first_link; i != kNoLink; i = Impl::NextLink(links_[i], n)) {
      Link& l = links_[i];
      NodeId o = l.a == n ? l.b : l.a;
      if (!in.contains(o)) l.state = LinkState::kRemoved;
    }
  // Keep the sides apart for good: a never_link between their best identifiers.
  NodeId a = side.front(), b = rest.front();
  for (NodeId n : side) if (m.BetterAnchor(n, a)) a = n;
  for (NodeId n : rest) if (m.BetterAnchor(n, b)) b = n;
  // The never_link finds both sides in one person and rebuilds it without the cut links.
  std::vector<uint64_t> oneids;
  AddNeverLink(b, a, "split", rule_id, oneids);
  return oneids;
}

std::vector<NodeId> IdentityGraph::FormerIdentifiers(NodeId n) const {
  if (!Live(n)) return {};
  absl::flat_hash_set<NodeId> members;
  const NodeId r = Root(n);
  NodeId m = r;
  do {
    members.insert(m);
    m = nodes_[m].next;
  } while (m != r);
  return impl_->FormerOf(members);
}

IdentityGraph::Forgotten IdentityGraph::Forget(NodeId n) {
  Impl& m = *impl_;
  Forgotten f;
  if (!Live(n)) return f;
  const NodeId root = m.Root(n);
  const uint32_t summary = nodes_[root].summary;
  f.oneid = persons_[summary].oneid;

  // What goes: the members (a live person's ring holds only live identifiers) and the
  // removed identifiers that were theirs alone.
  absl::flat_hash_set<NodeId> gone;
  NodeId x = root;
  do {
    gone.insert(x);
    f.nodes.push_back(x);
    x = nodes_[x].next;
  } while (x != root);
  f.identifiers = static_cast<uint32_t>(f.nodes.size());
  for (NodeId d : m.FormerOf(gone)) {
    gone.insert(d);
    f.nodes.push_back(d);
  }
  std::sort(f.nodes.begin(), f.nodes.end());

  // The OneIDs: the person's and every one that redirects to it, through any chain. A
  // pass over the redirects per link of the longest chain, each against a set the size of
  // the person's: cheaper than following every redirect to its end in the big tables.
  absl::flat_hash_set<uint64_t> ids;
  if (f.oneid) ids.insert(f.oneid);
  for (size_t before = 0; before != ids.size();) {
    before = ids.size();
    for (const auto& [from, to] : m.redirects)
      if (ids.contains(to)) ids.insert(from);
  }
  f.oneids.assign(ids.begin(), ids.end());
  std::sort(f.oneids.begin(), f.oneids.end());

  // Refusal counts: the forgotten identifiers' own go, and other identifiers stop
  // counting the person among those they were refused with (by any of its OneIDs, or by
  // the node that named it while it had none), as if it had never been there.
  // Each entry's peers are a heap block of their own: at hundreds of thousands of
  // entries every one misses the cache, so the walk fetches the peers kAhead entries on.
  // (Erasing an entry leaves other iterators valid.)
  absl::flat_hash_set<uint64_t> peers_gone(f.oneids.begin(), f.oneids.end());
  for (NodeId d : f.nodes) peers_gone.insert((1ull << 63) | d);
  constexpr size_t kAhead = 16;
  auto ahead = m.refusal_peers.begin();
  for (size_t k = 0; k < kAhead && ahead != m.refusal_peers.end(); ++k, ++ahead) __builtin_prefetch(ahead->second.data());
  for (auto it = m.refusal_peers.begin(); it != m.refusal_peers.end();) {
    if (ahead != m.refusal_peers.end()) __builtin_prefetch((ahead++)->second.data());
    auto& peers = it->second;
    if (!gone.contains(it->first))
      peers.erase(std::remove_if(peers.begin(), peers.end(), [&](uint64_t p) { return peers_gone.contains(p); }),
                  peers.end());
    if (gone.contains(it->first) || peers.empty()) m.refusal_peers.erase(it++);
    else ++it;
  }

  // Manual rules with an end among them. A never_link end on another person loses its
  // flag (and the person its count) once no active never_link names it.
  std::vector<NodeId> ends;
  for (ManualRule& r : rules_) {
    if (!gone.contains(r.a) && !gone.contains(r.b)) continue;
    f.rules.push_back(r.id);
    if (r.active && r.never)
      for (NodeId e : {r.a, r.b})
        if (!gone.contains(e)) ends.push_back(e);
    WipeString(r.note);
  }
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(),
                              [&](const ManualRule& r) { return gone.contains(r.a) || gone.contains(r.b); }),
               rules_.end());
  std::sort(f.rules.begin(), f.rules.end());
  for (NodeId e : ends) {
    bool still = false;
    for (const ManualRule& r : rules_) still |= r.active && r.never && (r.a == e || r.b == e);
    if (!still && (nodes_[e].flags & kRuleEnd)) {
      nodes_[e].flags &= static_cast<uint8_t>(~kRuleEnd);
      if (Live(e)) persons_[nodes_[m.Root(e)].summary].rule_endpoints--;
    }
  }

  // Evidence: every link touching them leaves the other end's list, the dedupe index
  // (hashed through the link: before it is overwritten) and the conflicts. All lists are
  // cut before any link is overwritten, since a walk may pass through another one that goes.
  absl::flat_hash_set<uint32_t> links;
  for (NodeId d : f.nodes)
    for (uint32_t i = nodes_[d].first_link; i != kNoLink; i = Impl::NextLink(links_[i], d)) links.insert(i);
  f.links.assign(links.begin(), links.end());
  std::sort(f.links.begin(), f.links.end());
  for (uint32_t i : f.links) {
    const Link& l = links_[i];
    m.link_index.erase(i);
    if (!gone.contains(l.a)) m.Unlink(i, l.a);
    if (l.b != l.a && !gone.contains(l.b)) m.Unlink(i, l.b);
  }
  m.refused_links.erase(std::remove_if(m.refused_links.begin(), m.refused_links.end(),
                                       [&](uint32_t i) { return links.contains(i); }),
                        m.refused_links.end());
  for (uint32_t i : f.links) {
    Link& l = links_[i];
    std::memset(static_cast<void*>(&l), 0, sizeof l);  // padding too: Save copies links whole
    l.a = l.b = kNoNode;
    l.next_a = l.next_b = kNoLink;
    l.state = LinkState::kRemoved;
  }

  // The person and its OneIDs.
  m.oneids.erase(f.oneid);
  for (uint64_t id : f.oneids) {
    m.redirects.erase(id);
    m.retired.insert(id);
  }
  m.FreePerson(summary);
  // A free slot keeps its last person (OneID, anchor, time) until reused, and the person
  // forgotten may have absorbed others: every free slot is cleared.
  for (uint32_t p : m.free_persons) {
    persons_[p] = Person{};
    uint16_t* c = m.Counts(p);
    std::fill(c, c + m.Slots(), 0);
  }

  // The identifiers: out of the index (hashed through the value: first), the value
  // overwritten where it lies in the arena, the node emptied.
  for (NodeId d : f.nodes) {
    Node& v = nodes_[d];
    m.index.erase(d);
    if (!(v.flags & kDead)) --m.live_nodes;
    if (v.len) std::memset(const_cast<char*>(v.str), 0, v.len);
    v = Node{};
    v.str = nullptr;
    v.flags = kDead | kForgotten;
    v.parent = v.next = d;
    v.first_link = kNoLink;
    v.summary = kNoSummary;
  }
  ++m.forgotten;
  return f;
}

IdentityGraph::RuleResult IdentityGraph::AddForceLink(NodeId a, NodeId b, std::string note,
                                                      uint32_t source, uint64_t& id,
                                                      std::vector<uint64_t>& oneids) {
  Impl& m = *impl_;
  NodeId ra = m.Root(a), rb = m.Root(b);
  if (ra != rb && persons_[nodes_[ra].summary].rule_endpoints &&
      persons_[nodes_[rb].summary].rule_endpoints && m.NeverLinked(ra, rb))
    return RuleResult::kConflict;
  for (const ManualRule& r : rules_)
    if (r.active && r.never && ((r.a == a && r.b == b) || (r.a == b && r.b == a))) return RuleResult::kConflict;
  // A manual link carries time 0 and record 0 (no record is being linked): a rebuild
  // replays it before any record's evidence, so the operator's decision stands whatever
  // order the records came in.
  bool fresh;
  uint32_t li = m.AddLink(a, b, static_cast<uint16_t>(source), LinkRule::kForce, fresh);
  links_[li].state = LinkState::kActive;
  m.Apply(li, true);
  id = m.next_rule++;
  rules_.push_back({id, false, true, a, b, li, std::move(note)});
  FeedEvent& e = m.feed.Append(FeedEvent::Kind::kRuleAdded);
  e.rule = id;
  e.a = OneIdOf(a);
  oneids = {OneIdOf(a)};
  return RuleResult::kOk;
}

IdentityGraph::RuleResult IdentityGraph::AddNeverLink(NodeId a, NodeId b, std::string note,
                                                      uint64_t& id, std::vector<uint64_t>& oneids) {
  Impl& m = *impl_;
  for (const ManualRule& r : rules_)
    if (r.active && !r.never && ((r.a == a && r.b == b) || (r.a == b && r.b == a))) return RuleResult::kConflict;
  id = m.next_rule++;
  rules_.push_back({id, true, true, a, b, kNoLink, std::move(note)});
  for (NodeId n : {a, b}) {
    if (nodes_[n].flags & kRuleEnd) continue;
    nodes_[n].flags |= kRuleEnd;
    if (Live(n)) persons_[nodes_[m.Root(n)].summary].rule_endpoints++;
  }
  FeedEvent& e = m.feed.Append(FeedEvent::Kind::kRuleAdded);
  e.rule = id;
  e.a = OneIdOf(a);
  e.b = OneIdOf(b);
  if (m.Root(a) == m.Root(b)) oneids = m.Rebuild({a});
  else oneids = {OneIdOf(a), OneIdOf(b)};
  return RuleResult::kOk;
}

bool IdentityGraph::RemoveRule(uint64_t id, std::vector<uint64_t>& oneids) {
  Impl& m = *impl_;
  ManualRule* rule = nullptr;
  for (ManualRule& r : rules_)
    if (r.id == id && r.active) rule = &r;
  if (!rule) return false;
  rule->active = false;
  if (rule->never) {
    for (NodeId n : {rule->a, rule->b}) {
      bool still = false;
      for (const ManualRule& r : rules_)
        still |= r.active && r.never && (r.a == n || r.b == n);
      if (!still && (nodes_[n].flags & kRuleEnd)) {
        nodes_[n].flags &= static_cast<uint8_t>(~kRuleEnd);
        if (Live(n)) persons_[nodes_[m.Root(n)].summary].rule_endpoints--;
      }
    }
  } else {
    links_[rule->link].state = LinkState::kRemoved;
  }
  FeedEvent& e = m.feed.Append(FeedEvent::Kind::kRuleRemoved);
  e.rule = id;
  oneids = m.Rebuild({rule->a, rule->b});
  return true;
}

IdentityGraph::Counts IdentityGraph::counts() const {
  uint64_t refused = 0;
  for (uint32_t i : impl_->refused_links) refused += links_[i].state == LinkState::kRefused;
  return {impl_->oneids.size(), impl_->live_nodes, links_.size(), refused, impl_->quarantined,
          impl_->redirects.size(), impl_->forgotten};
}

std::vector<std::pair<std::string, uint64_t>> IdentityGraph::Memory() const {
  const Impl& m = *impl_;
  auto set_bytes = [](size_t cap, size_t slot) { return cap * (slot + 1); };
  return {
      {"nodes", nodes_.capacity() * sizeof(Node)},
      {"strings", m.arena.bytes()},
      {"index", set_bytes(m.index.capacity(), sizeof(NodeId))},
      {"links", links_.capacity() * sizeof(Link)},
      {"link_index", set_bytes(m.link_index.capacity(), sizeof(uint32_t))},
      {"persons", persons_.capacity() * sizeof(Person) + m.counts.capacity() * sizeof(uint16_t)},
      {"oneids", set_bytes(m.oneids.capacity(), 12) + set_bytes(m.redirects.capacity(), 16) +
                     set_bytes(m.retired.capacity(), 8)},
      {"conflicts", m.refused_links.capacity() * sizeof(uint32_t) + m.refusal_peers.size() * 64},
  };
}

// --- snapshots -----------------------------------------------------------------------------

namespace {

// A hash map as two arrays, its keys and then its values, in its iteration order.
template <typename Map>
void SaveMapColumns(snap::Writer& w, const Map& map) {
  std::vector<typename Map::key_type> keys;
  std::vector<typename Map::mapped_type> values;
  keys.reserve(map.size());
  values.reserve(map.size());
  for (const auto& [k, v] : map) {
    keys.push_back(k);
    values.push_back(v);
  }
  w.Vec(keys);
  w.Vec(values);
}

// A node as saved: Node without its pointer into the arena. The values travel apart,
// concatenated in node order; adding them to a fresh arena in that order lays them out
// exactly as the original arena did (nodes are its only client, and add in id order),
// but for the bytes of forgotten values, which are not saved and not laid out again.
struct SavedNode {
  uint16_t len, type;
  uint8_t flags, pad;
  uint16_t source0;
  NodeId parent, next;
  uint32_t first_link, summary;
  int64_t first_seen;
};
static_assert(sizeof(SavedNode) == 32, "no padding: every saved byte means something");

// What Forget leaves of a link: nothing that ties it to anyone.
bool WipedLink(const Link& l) {
  return l.a == kNoNode && l.b == kNoNode && l.next_a == IdentityGraph::kNoLink &&
         l.next_b == IdentityGraph::kNoLink && l.record == 0 && l.ts == 0 && l.count == 0 && l.source == 0 &&
         l.rule == LinkRule::kRecord && l.state == LinkState::kRemoved && l.reason == Refusal::kNone && l.pad == 0 &&
         l.reason_type == 0;
}

// A ChunkedVector in Writer::Array's layout (the count, then the elements), a chunk (which
// is contiguous) at a time. Read back with Reader::ArrayCount and Pod.
template <typename T, unsigned S>
void SaveChunked(snap::Writer& w, const ChunkedVector<T, S>& v) {
  w.U64(v.size());
  for (size_t i = 0; i < v.size(); i += v.kChunk) w.Raw(&v[i], std::min(v.kChunk, v.size() - i) * sizeof(T));
}

}  // namespace

void IdentityGraph::Save(snap::Writer& w) const {
  const Impl& m = *impl_;
  w.Part("identity");
  // The values, laid out as one Writer::Str. Consecutive nodes' values sit side by side
  // in an arena chunk, so they go out in a few large runs.
  uint64_t total = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) total += nodes_[i].len;
  w.U64(total);
  const char* run = nullptr;
  size_t run_len = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& x = nodes_[i];
    if (run != nullptr && x.str == run + run_len) {
      run_len += x.len;
      continue;
    }
    if (run_len) w.Raw(run, run_len);
    run = x.str;
    run_len = x.len;
  }
  if (run_len) w.Raw(run, run_len);

  w.U64(nodes_.size());
  std::vector<SavedNode> buf;
  for (size_t i = 0; i < nodes_.size(); i += nodes_.kChunk) {
    buf.clear();
    for (size_t j = i, end = std::min(nodes_.size(), i + nodes_.kChunk); j < end; ++j) {
      const Node& x = nodes_[j];
      buf.push_back(
          {x.len, x.type, x.flags, x.pad, x.source0, x.parent, x.next, x.first_link, x.summary, x.first_seen});
    }
    w.Raw(buf.data(), buf.size() * sizeof(SavedNode));
  }
  SaveChunked(w, links_);
  SaveChunked(w, persons_);
  SaveChunked(w, m.counts);
  w.Vec(m.free_persons);

  SaveMapColumns(w, m.oneids);     // OneID -> anchor
  SaveMapColumns(w, m.redirects);  // absorbed OneID -> survivor

  // Refusal peers, flattened: the nodes, how many peers each, then all peers in a row.
  std::vector<uint32_t> peer_nodes, peer_counts;
  std::vector<uint64_t> all_peers;
  for (const auto& [n, peers] : m.refusal_peers) {
    peer_nodes.push_back(n);
    peer_counts.push_back(static_cast<uint32_t>(peers.size()));
    all_peers.insert(all_peers.end(), peers.begin(), peers.end());
  }
  w.Vec(peer_nodes);
  w.Vec(peer_counts);
  w.Vec(all_peers);
  w.Vec(m.refused_links);

  w.U64(m.next_rule);
  w.U64(m.quarantined);
  w.U64(m.live_nodes);
  w.U64(rules_.size());
  for (const ManualRule& r : rules_) {
    w.U64(r.id);
    w.Bool(r.never);
    w.Bool(r.active);
    w.U32(r.a);
    w.U32(r.b);
    w.U32(r.link);
    w.Str(r.note);
  }
  // Sorted: equal states save equal bytes whatever the set's history.
  std::vector<uint64_t> retired(m.retired.begin(), m.retired.end());
  std::sort(retired.begin(), retired.end());
  w.Vec(retired);
  w.U64(m.forgotten);
}

absl::Status IdentityGraph::Load(snap::Reader& r) {
  Impl& m = *impl_;
  if (!nodes_.empty() || !links_.empty() || !rules_.empty())
    return absl::FailedPreconditionError("an identity graph is loaded only into an empty one");
  r.Part("identity");
  const size_t types = m.cfg.types.size();
  const std::string_view values = r.Str();
  const uint64_t n = r.ArrayCount<SavedNode>();
  uint64_t off = 0;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    const auto s = r.Pod<SavedNode>();
    if (s.len > values.size() - off) r.Fail(Cat("node ", i, "'s value runs past the values"));
    else if (s.type >= types) r.Fail(Cat("node ", i, " has identifier type ", s.type, " of ", types));
    else if (s.parent >= n || s.next >= n) r.Fail(Cat("node ", i, " points past the ", n, " nodes"));
    else if ((s.flags & kForgotten) &&
             (s.flags != (kDead | kForgotten) || s.len || s.type || s.pad || s.source0 || s.parent != i ||
              s.next != i || s.first_link != kNoLink || s.summary != kNoSummary || s.first_seen))
      r.Fail(Cat("forgotten node ", i, " still holds something"));
    if (!r.ok()) break;
    Node x;
    x.str = (s.flags & kForgotten) ? nullptr : m.arena.Add(values.substr(off, s.len));
    off += s.len;
    x.len = s.len;
    x.type = s.type;
    x.flags = s.flags;
    x.pad = s.pad;
    x.source0 = s.source0;
    x.parent = s.parent;
    x.next = s.next;
    x.first_link = s.first_link;
    x.summary = s.summary;
    x.first_seen = s.first_seen;
    nodes_.push_back(x);
  }
  if (r.ok() && off != values.size()) r.Fail(Cat(values.size() - off, " bytes of identifier values belong to no node"));

  const uint64_t nl = r.ArrayCount<Link>();
  auto link_ok = [nl](uint32_t i) { return i < nl || i == kNoLink; };
  for (uint64_t i = 0; i < nl && r.ok(); ++i) {
    const auto l = r.Pod<Link>();
    if (l.a == kNoNode && l.b == kNoNode) {
      if (WipedLink(l)) links_.push_back(l);
      else r.Fail(Cat("forgotten link ", i, " still holds something"));
    } else if (l.a >= n || l.b >= n || !link_ok(l.next_a) || !link_ok(l.next_b))
      r.Fail(Cat("link ", i, " points past the ", n, " nodes or ", nl, " links"));
    else if (l.rule > LinkRule::kForce || l.state > LinkState::kRemoved || l.reason > Refusal::kPersonLimit)
      r.Fail(Cat("link ", i, " has an unknown rule, state or reason"));
    else if ((l.reason == Refusal::kUniqueType || l.reason == Refusal::kTypeLimit) && l.reason_type >= types)
      r.Fail(Cat("link ", i, " was refused for identifier type ", l.reason_type, " of ", types));
    else if ((nodes_[l.a].flags | nodes_[l.b].flags) & kForgotten)
      r.Fail(Cat("link ", i, " joins a forgotten identifier"));
    else links_.push_back(l);
  }

  const uint64_t np = r.ArrayCount<Person>();
  for (uint64_t i = 0; i < np && r.ok(); ++i) {
    const auto p = r.Pod<Person>();
    if (p.anchor >= n) r.Fail(Cat("person ", i, " is anchored past the ", n, " nodes"));
    else persons_.push_back(p);
  }
  {
    // Two bytes an element: one copy into a vector beats a checked read per element.
    std::vector<uint16_t> counts;
    r.Vec(counts);
    if (r.ok() && counts.size() != np * m.SlotStride())
      r.Fail(Cat(counts.size(), " type counters for ", np, " persons of ", m.SlotStride(), " slots"));
    for (size_t i = 0; i < counts.size() && r.ok(); ++i) m.counts.push_back(counts[i]);
  }

  // The nodes' references to links and persons, now that both are known; then the two
  // indexes. At millions of entries every insert misses the cache, so each loop fetches
  // the slots of the entry kAhead places on while it inserts this one.
  constexpr size_t kAhead = 16;
  for (NodeId i = 0; i < nodes_.size() && r.ok(); ++i) {
    const Node& x = nodes_[i];
    if (!link_ok(x.first_link) || (x.summary >= np && x.summary != kNoSummary))
      r.Fail(Cat("node ", i, " points past the ", nl, " links or ", np, " persons"));
    else if (x.first_link != kNoLink && links_[x.first_link].a == kNoNode)
      r.Fail(Cat("node ", i, " lists forgotten link ", x.first_link));
  }
  if (r.ok()) m.index.reserve(nodes_.size());
  for (NodeId i = 0; i < nodes_.size() && r.ok(); ++i) {
    if (i + kAhead < nodes_.size()) m.index.prefetch(static_cast<NodeId>(i + kAhead));
    const Node& x = nodes_[i];
    if (x.flags & kForgotten) continue;  // not findable: a later record makes a new node
    bool fresh = false;
    m.index.lazy_emplace(IdKey{x.type, Value(i)}, [&](const auto& make) {
      fresh = true;
      make(i);
    });
    if (!fresh) r.Fail(Cat("node ", i, " repeats identifier ", m.cfg.types[x.type].name, ":", Value(i)));
  }
  if (r.ok()) m.link_index.reserve(links_.size());
  for (uint32_t i = 0; i < links_.size() && r.ok(); ++i) {
    if (i + kAhead < links_.size()) m.link_index.prefetch(static_cast<uint32_t>(i + kAhead));
    const Link& l = links_[i];
    if (l.a == kNoNode) continue;  // forgotten
    bool fresh = false;
    m.link_index.lazy_emplace(Impl::LinkKey{std::min(l.a, l.b), std::max(l.a, l.b), l.source, l.rule},
                              [&](const auto& make) {
                                fresh = true;
                                make(i);
                              });
    if (!fresh) r.Fail(Cat("link ", i, " repeats the evidence of an earlier one"));
  }

  r.Vec(m.free_persons);
  for (uint32_t p : m.free_persons)
    if (p >= np) r.Fail(Cat("free person ", p, " of ", np));

  std::vector<uint64_t> keys, vals;
  std::vector<uint32_t> anchors;
  r.Vec(keys);
  r.Vec(anchors);
  if (r.ok() && keys.size() != anchors.size()) r.Fail(Cat(keys.size(), " OneIDs with ", anchors.size(), " anchors"));
  m.oneids.reserve(keys.size());
  for (size_t i = 0; i < keys.size() && r.ok(); ++i) {
    if (anchors[i] >= n) r.Fail(Cat("OneID ", keys[i], " is anchored past the ", n, " nodes"));
    else if (nodes_[anchors[i]].flags & kForgotten) r.Fail(Cat("OneID ", keys[i], " is anchored on a forgotten node"));
    else if (!m.oneids.emplace(keys[i], anchors[i]).second) r.Fail(Cat("OneID ", keys[i], " appears twice"));
  }
  r.Vec(keys);
  r.Vec(vals);
  if (r.ok() && keys.size() != vals.size()) r.Fail(Cat(keys.size(), " redirects with ", vals.size(), " targets"));
  m.redirects.reserve(keys.size());
  for (size_t i = 0; i < keys.size() && r.ok(); ++i)
    if (!m.redirects.emplace(keys[i], vals[i]).second) r.Fail(Cat("OneID ", keys[i], " redirects twice"));

  std::vector<uint32_t> peer_nodes, peer_counts;
  r.Vec(peer_nodes);
  r.Vec(peer_counts);
  r.Vec(vals);
  uint64_t peers = 0;
  for (uint32_t c : peer_counts) peers += c;
  if (r.ok() && (peer_nodes.size() != peer_counts.size() || peers != vals.size()))
    r.Fail(Cat(peer_nodes.size(), " nodes with refusal peers, ", peer_counts.size(), " counts, ", vals.size(),
               " peers"));
  m.refusal_peers.reserve(peer_nodes.size());
  for (size_t i = 0, at = 0; i < peer_nodes.size() && r.ok(); at += peer_counts[i++]) {
    const auto first = vals.begin() + static_cast<ptrdiff_t>(at);
    if (peer_nodes[i] >= n || (nodes_[peer_nodes[i]].flags & kForgotten))
      r.Fail(Cat("refusal peers of node ", peer_nodes[i], " of ", n));
    else if (!m.refusal_peers.emplace(peer_nodes[i], std::vector<uint64_t>(first, first + peer_counts[i])).second)
      r.Fail(Cat("refusal peers of node ", peer_nodes[i], " appear twice"));
  }
  r.Vec(m.refused_links);
  for (uint32_t i : m.refused_links)
    if (i >= links_.size() || links_[i].a == kNoNode) r.Fail(Cat("refused link ", i, " of ", nl));

  m.next_rule = r.U64();
  m.quarantined = r.U64();
  m.live_nodes = r.U64();
  if (m.live_nodes > n) r.Fail(Cat(m.live_nodes, " live identifiers of ", n));
  for (uint64_t i = 0, k = r.Count(30); i < k && r.ok(); ++i) {
    ManualRule rule;
    rule.id = r.U64();
    rule.never = r.Bool();
    rule.active = r.Bool();
    rule.a = r.U32();
    rule.b = r.U32();
    rule.link = r.U32();
    rule.note = std::string(r.Str());
    if (rule.a >= n || rule.b >= n || (rule.never ? rule.link != kNoLink : rule.link >= nl))
      r.Fail(Cat("rule ", rule.id, " names a node or link out of range"));
    else if ((nodes_[rule.a].flags | nodes_[rule.b].flags) & kForgotten)
      r.Fail(Cat("rule ", rule.id, " names a forgotten identifier"));
    rules_.push_back(std::move(rule));
  }

  r.Vec(keys);
  m.retired.reserve(keys.size());
  for (size_t i = 0; i < keys.size() && r.ok(); ++i) {
    if (keys[i] == 0 || m.oneids.contains(keys[i]) || m.redirects.contains(keys[i]))
      r.Fail(Cat("retired OneID ", keys[i], " is also live or redirects"));
    else if (!m.retired.insert(keys[i]).second) r.Fail(Cat("OneID ", keys[i], " is retired twice"));
  }
  m.forgotten = r.U64();
  // Each forgotten person retired its own OneID at least.
  if (r.ok() && m.forgotten > m.retired.size())
    r.Fail(Cat(m.forgotten, " persons forgotten with ", m.retired.size(), " OneIDs retired"));
  return r.status();
}

}  // namespace cdp
