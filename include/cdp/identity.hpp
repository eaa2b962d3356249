// cdp/identity.hpp — the identity graph: identifiers into persons (OneID).
//
// Every distinct identifier (type, normalised value) is a node of a constrained union-find
// (union by size, path halving). A person is a component; its root keeps a summary
// (OneID, first seen, size, strong count, per-type counts for limited types). A record
// links its identifiers; each link is kept as evidence (source, record, time, rule) and
// deduplicated per (pair, source, rule), so every person can be explained and rebuilt.
//
// Rules are checked at union time, never after: a union that would give a person two
// values of a unique type, more than max_per_person of a type, or that would let a weak
// identifier (device, address) join two persons that each hold strong identifiers is
// refused and kept as a conflict. An identifier refused with more than quarantine_after
// distinct persons is quarantined: it stops linking and is detached from its person.
//
// Union-find cannot delete, so unmerge (remove an identifier, remove a source, split a
// person, manual rules) rebuilds only the affected components by replaying their
// remaining evidence in time order through the same checks.
//
// OneIDs are derived from a person's anchor identifier (a keyed hash), so rebuilding from
// the same inputs yields the same OneIDs. On a merge the survivor (earliest first seen,
// then anchor priority) keeps its OneID and the absorbed one redirects to it forever; a
// split gives the side holding the anchor the old OneID, and a side that regains an
// absorbed person's anchor gets that person's OneID back.
//
// Forget (erasure on request) is the one true deletion: the person's identifiers leave
// the index and their values are overwritten, its evidence and rules go, and its OneIDs
// are retired for good. The node and link ids stay taken (feed events and snapshots
// address them by position), holding nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "cdp/chunked_vector.hpp"
#include "cdp/feed.hpp"
#include "cdp/policy.hpp"
#include "cdp/record.hpp"

namespace cdp {

namespace snap { class Writer; class Reader; }

using NodeId = uint32_t;
inline constexpr NodeId kNoNode = 0xFFFFFFFFu;
// first_seen of an identifier no record has carried yet (created by a manual rule).
inline constexpr int64_t kNeverSeen = INT64_MAX;

enum class LinkRule : uint8_t { kRecord, kWeighted, kForce };
enum class LinkState : uint8_t { kActive, kRefused, kRemoved };
std::string_view LinkRuleName(LinkRule r);

struct Node {
  const char* str;        // normalised value, in the graph's arena (null once forgotten)
  uint16_t len;
  uint16_t type;
  uint8_t flags;
  uint8_t pad;
  uint16_t source0;       // the first source that carried it
  NodeId parent;
  NodeId next;            // circular list of the component's members
  uint32_t first_link;    // head of the adjacency list (kNoLink: none)
  uint32_t summary;       // at roots: index of the person summary (kNoSummary: none)
  int64_t first_seen;
};

// One piece of evidence: two identifiers seen together (or linked by a rule).
struct Link {
  NodeId a, b;
  uint32_t next_a, next_b;  // adjacency lists of a and of b
  uint64_t record;          // the earliest record that carried it
  int64_t ts;               // that record's time
  uint32_t count;           // how many records carried it
  uint16_t source;
  LinkRule rule;
  LinkState state;
  Refusal reason;           // when refused
  uint8_t pad;              // 1 once listed among the refused links
  uint16_t reason_type;     // the type whose limit refused it
};

struct Person {
  uint64_t oneid;
  int64_t first_seen;
  uint32_t size;     // identifiers
  uint32_t strong;   // strong identifiers
  NodeId anchor;
  uint32_t rule_endpoints;  // never_link endpoints inside: enables the rule check
};

struct ManualRule {
  uint64_t id;
  bool never;          // never_link; else force_link
  bool active;
  NodeId a, b;
  uint32_t link;       // force_link: its evidence link
  std::string note;
};

// Counters of one linking run, for reports.
struct LinkStats {
  uint64_t persons_created = 0;
  uint64_t merges = 0;
  uint64_t conflicts = 0;
  uint64_t quarantined = 0;
  uint64_t ids_quarantined_skipped = 0;
};

class IdentityGraph {
 public:
  static constexpr uint32_t kNoLink = 0xFFFFFFFFu;
  static constexpr uint32_t kNoSummary = 0xFFFFFFFFu;

  // cfg and feed outlive the graph; cfg.types may grow (unknown types).
  IdentityGraph(const EngineConfig& cfg, Feed& feed);
  ~IdentityGraph();

  // Links one parsed record. found has one entry per identifier of r (r.ids_count): on
  // return, each identifier's node (kNoNode if none); RecordAnchor(found, count) then
  // says where the record belongs, now or after later records.
  void AddRecord(const Batch& batch, const Record& r, uint64_t record_seq, LinkStats& st,
                 NodeId* found);

  // Lookahead for batches, to overlap cache misses: pulls in the index slots of a
  // record's identifiers. Changes nothing.
  void Prefetch(const Batch& batch, const Record& r) const;
  // The record's best live identifier among nodes (as AddRecord left them).
  NodeId RecordAnchor(const NodeId* nodes, uint32_t count) const;

  // The node a record belongs by now: its best live identifier (strong first, then
  // priority, first seen, type and value), or kNoNode.
  NodeId RecordAnchor(const Batch& batch, const Record& r) const;
  // Anchor order: true when a is the better anchor than b.
  bool BetterAnchor(NodeId a, NodeId b) const;

  // Lookups. Find returns kNoNode when unknown (or removed).
  NodeId Find(uint32_t type, std::string_view normalized) const;
  // Read paths are const and never write (no path compression), so concurrent readers
  // may share the graph while no writer runs.
  NodeId Root(NodeId n) const;
  bool Live(NodeId n) const;          // exists, not removed, not quarantined
  bool Quarantined(NodeId n) const;
  uint64_t OneIdOf(NodeId n) const;   // 0 when the node has no person
  // Follows redirects: the live person's anchor for a OneID, or kNoNode.
  NodeId PersonAnchor(uint64_t oneid) const;
  uint64_t Canonical(uint64_t oneid) const;  // the live OneID a OneID redirects to, or 0
  const Person& PersonAt(NodeId root) const { return persons_[nodes_[root].summary]; }
  std::vector<NodeId> Members(NodeId n) const;  // members of n's component, in node order

  // Explain: the evidence path that joins a and b (link indexes), or the link/rule that
  // kept them apart.
  struct Explanation {
    bool linked = false;
    std::vector<uint32_t> path;   // links from a to b
    std::vector<NodeId> hops;     // nodes from a to b
    uint32_t refused_link = kNoLink;
    const ManualRule* rule = nullptr;
    NodeId quarantined = kNoNode;
  };
  Explanation Explain(NodeId a, NodeId b) const;

  // Unmerge operations: each rebuilds the affected components and reports the OneIDs
  // that result.
  std::vector<uint64_t> RemoveIdentifier(NodeId n);
  // Returns nullopt-equivalent (empty, found=false) when the source carried no links.
  std::vector<uint64_t> RemoveSource(uint32_t source, bool& found);
  // Splits side off its person. side must be a non-empty proper subset of one person.
  std::vector<uint64_t> Split(const std::vector<NodeId>& side, uint64_t& rule_id);

  // Erasure. Forget(n) removes the whole person n belongs to (n must be Live; otherwise
  // nothing changes and the result is empty, oneid 0), with no rebuild, since the whole
  // component goes, and no feed event (the caller announces it and erases the feed's
  // earlier events about the person: they name what the result lists):
  // - its identifiers, and the removed identifiers whose remaining evidence led only to
  //   it (FormerIdentifiers), leave the index (Find: kNoNode; a later record carrying one
  //   makes a new node), their values are overwritten and their nodes hold nothing;
  // - every link touching them is unlinked from the other end, dropped from the dedupe
  //   index and the conflicts, and overwritten (its record, time and source are gone);
  // - manual rules with an end among them go (their notes overwritten); never_link ends
  //   on other persons lose the rule;
  // - identifiers once refused with the person stop counting it towards quarantine;
  // - its OneID and every OneID that redirected to it are retired: Canonical gives 0,
  //   PersonAnchor kNoNode, and no later person is given one of them (a person anchored
  //   on the same value again gets the next OneID of the collision sequence).
  // Linear in the person, plus a pass over the refusal counts, the conflicts, the rules,
  // the free person slots and the redirects (one per step of the longest redirect chain
  // ending at the person); about 20-50 ms at a million persons with 285K refusal counts.
  // Deterministic.
  struct Forgotten {
    uint64_t oneid = 0;             // the person's OneID
    std::vector<uint64_t> oneids;   // it and the OneIDs that redirected to it, sorted
    std::vector<NodeId> nodes;      // identifiers forgotten (members and former), sorted
    uint32_t identifiers = 0;       // of which the person's live identifiers
    std::vector<uint32_t> links;    // evidence removed, sorted
    std::vector<uint64_t> rules;    // manual rules removed, sorted
  };
  Forgotten Forget(NodeId n);
  // The removed identifiers Forget(n) takes along, sorted: dead (not quarantined) nodes
  // joined to n's person by evidence, directly or through other removed identifiers,
  // whose evidence reaches no one else (only the person's records carried them). They are
  // treated as members: their rules go too. For a caller that must read their values
  // (tombstones) before they are overwritten.
  std::vector<NodeId> FormerIdentifiers(NodeId n) const;

  // Manual rules. Node creation for unknown identifiers goes through Intern.
  NodeId Intern(uint32_t type, std::string_view normalized, int64_t ts, uint32_t source);
  enum class RuleResult { kOk, kConflict };
  RuleResult AddForceLink(NodeId a, NodeId b, std::string note, uint32_t source, uint64_t& id,
                          std::vector<uint64_t>& oneids);
  RuleResult AddNeverLink(NodeId a, NodeId b, std::string note, uint64_t& id,
                          std::vector<uint64_t>& oneids);
  bool RemoveRule(uint64_t id, std::vector<uint64_t>& oneids);
  const std::vector<ManualRule>& rules() const { return rules_; }

  // Read access for rendering.
  const Node& node(NodeId n) const { return nodes_[n]; }
  std::string_view Value(NodeId n) const { return {nodes_[n].str, nodes_[n].len}; }
  const Link& link(uint32_t i) const { return links_[i]; }
  size_t node_count() const { return nodes_.size(); }

  // links counts link ids handed out, forgotten ones included; forgotten counts persons.
  struct Counts {
    uint64_t persons, identifiers, links, conflicts, quarantined, redirects, forgotten;
  };
  Counts counts() const;
  // Bytes held, by structure: {"nodes", n}, ...
  std::vector<std::pair<std::string, uint64_t>> Memory() const;

  // Snapshots (src/snapshot.hpp): nodes, links and persons as flat arrays, the identifier
  // values in node order, the OneID and redirect tables, refusals, quarantine and rules,
  // the retired OneIDs. The two hash indexes (identifiers, link dedupe) are rebuilt on
  // load, not saved. Forgotten nodes and links are saved empty: no byte of what they held.
  void Save(snap::Writer& w) const;
  // Into a graph freshly constructed over the same config, whose identifier types (those
  // records registered too) are already restored. Emits no feed events. DataLoss when
  // the bytes are bad, including any index out of range.
  absl::Status Load(snap::Reader& r);

 private:
  // The active never_link rule with one end in each of two components (by root), if any.
  const ManualRule* NeverRuleBetween(NodeId rx, NodeId ry) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  // Hot arrays live here so inline accessors stay cheap; Impl holds the rest.
  ChunkedVector<Node> nodes_;
  ChunkedVector<Link> links_;
  ChunkedVector<Person> persons_;
  std::vector<ManualRule> rules_;
};

}  // namespace cdp
