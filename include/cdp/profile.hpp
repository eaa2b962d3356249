// cdp/profile.hpp — each person's profile: attributes with lineage, events, day counters.
//
// A profile is the fold of the records placed on a person. Every fact (an attribute value,
// an event) is filed under its record's *identifier set*: the source and the identifier
// nodes the record carried. Where a record belongs is decided the same way everywhere: the
// person of its best live identifier (IdentityGraph::RecordAnchor), which is also what
// cdp_records_resolve answers. So when identity changes (a merge, a split, a removal, a
// quarantine, a rule), Reconcile re-asks that question for each identifier set of the
// persons involved and moves the facts whose answer changed. A merge moves everything; a
// split hands each fact to the side that owns its record's identifiers. Nothing is
// approximated: the profile after any sequence of merges and splits equals the profile
// built from the surviving inputs alone (tests/unit/test_profile.cpp checks it).
//
// Attributes: the observations of one attribute from one identifier set are combined at
// once (they can never be separated), so a profile keeps at most one observation per
// (attribute, identifier set); the person's value is the combination of those under the
// attribute's survivorship rule, with the source and time of the value that won. Every
// rule is a commutative, associative combine with a total tie-break, so the order records
// arrive in never matters.
//
// Events: 24 bytes each, sorted by (type, time) in one flat array per person; properties in
// a side array; strings interned once per store. Local-day counters (count, amount per
// type per day) cover the last ProfileConfig::horizon_days before the newest event, so
// windowed statistics read a few counters instead of rescanning events; older windows fall
// back to the events, which are all kept.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "cdp/chunked_vector.hpp"
#include "cdp/identity.hpp"
#include "cdp/policy.hpp"
#include "cdp/record.hpp"
#include "cdp/subject.hpp"
#include "cdp/value.hpp"

namespace cdp {

class NameTable;
namespace snap { class Writer; class Reader; }

// Interned strings: an id per distinct string, and views that stay valid forever.
//
// Erasure wipes strings: their bytes are overwritten and they leave the index, but the id
// stays, dead, reading as "", so every other id keeps its meaning; interning the same text
// again gives it a new id.
class StringPool {
 public:
  uint32_t Intern(std::string_view s);
  std::string_view Get(uint32_t id) const { return views_[id]; }
  uint32_t size() const { return static_cast<uint32_t>(views_.size()); }
  uint64_t bytes() const;
  // Wipes these strings (ascending ids; dead and empty ones are skipped). No view of them
  // may be in use.
  void Wipe(const std::vector<uint32_t>& ids);
  // (Only "" needs the search: a dead string reads as "".)
  bool Dead(uint32_t id) const {
    return views_[id].empty() && std::binary_search(dead_.begin(), dead_.end(), id);
  }
  // Snapshots (src/snapshot.hpp): the dead ids, then the strings in id order (dead ones
  // empty). Load into an empty pool.
  void Save(snap::Writer& w) const;
  void Load(snap::Reader& r);

 private:
  // Copies s into the pool under the next id; false if it was there already.
  bool Append(std::string_view s);
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t chunk_used_ = 0, chunk_size_ = 0;
  std::vector<std::string_view> views_;
  absl::flat_hash_map<std::string_view, uint32_t> index_;
  std::vector<uint32_t> dead_;  // ascending
};

// An attribute or property value as stored: 16 bytes, strings and lists by pool id.
struct Stored {
  ValueKind kind = ValueKind::kNull;
  int64_t bits = 0;  // int, fen, ms, day, bool, double's bits, string id, list id
  bool operator==(const Stored&) const = default;
};

// Interned lists of strings (list attributes), materialised as Values for expressions.
// Erasure wipes lists as StringPool wipes strings: a dead id reads as the empty list.
class ListPool {
 public:
  uint32_t Intern(const std::vector<uint32_t>& string_ids, const StringPool& strings);
  const std::vector<uint32_t>& Ids(uint32_t id) const { return lists_[id].ids; }
  uint32_t size() const { return static_cast<uint32_t>(lists_.size()); }
  Value Get(uint32_t id) const {
    const auto& l = lists_[id];
    return Value::List(l.values.get(), static_cast<uint32_t>(l.ids.size()));
  }
  uint64_t bytes() const;
  // Wipes these lists (ascending ids; dead ones are skipped).
  void Wipe(const std::vector<uint32_t>& ids);
  bool Dead(uint32_t id) const {
    return lists_[id].ids.empty() && std::binary_search(dead_.begin(), dead_.end(), id);
  }
  // Snapshots: the dead ids, then the lists in id order (dead ones empty). Load into an
  // empty pool, after its strings.
  void Save(snap::Writer& w) const;
  void Load(snap::Reader& r, const StringPool& strings);

 private:
  struct List {
    std::vector<uint32_t> ids;
    std::unique_ptr<Value[]> values;
  };
  std::vector<List> lists_;
  absl::flat_hash_map<std::string, uint32_t> index_;  // key: the ids' bytes
  std::vector<uint32_t> dead_;  // ascending
};

// The record an event or observation came from, reduced to what decides its owner.
struct IdSet {
  uint64_t hash;       // of (source, nodes)
  uint32_t nodes_off;  // into Profile::idset_nodes
  uint16_t nodes_len;
  uint16_t source;
  int64_t first_ts, last_ts;  // of the records with this identifier set
  uint32_t records;
  uint32_t pad;
};

// One event in 20 bytes: (type, time) packed into key so one compare orders by type then
// time. The amount is int32 fen (±21 million yuan); a larger one is kBigAmount here and
// its value travels as a property with key kAmountKey.
inline constexpr int32_t kBigAmount = INT32_MIN;
inline constexpr uint32_t kAmountKey = 0xFFFFFFFFu;
#pragma pack(push, 4)
struct EventRow {
  uint64_t key;       // type << 48 | ts (0 <= ts < 2^48 ms)
  int32_t amount;     // fen, or kBigAmount
  uint32_t idset;     // top bit: the event carried an amount
  uint32_t props;     // offset << 5 | count, into Profile::props
  uint32_t type() const { return static_cast<uint32_t>(key >> 48); }
  int64_t ts() const { return static_cast<int64_t>(key & ((uint64_t{1} << 48) - 1)); }
  uint32_t idset_index() const { return idset & 0x7FFFFFFFu; }
  bool has_amount() const { return idset >> 31; }
};
#pragma pack(pop)
static_assert(sizeof(EventRow) == 20);

// Events of one type on one local day, in 12 bytes. A day whose count passes 65535 or
// whose amount passes int32 continues in another cell of the same (type, day), so totals
// stay exact without widening every cell.
struct DayCell {
  int32_t amount;
  int32_t day;
  uint16_t type;
  uint16_t count;
};
static_assert(sizeof(DayCell) == 12);

struct PropRow {
  uint32_t key;
  Stored value;
};

// The combined observation of one attribute from one identifier set.
struct AttrObs {
  uint32_t attr;
  uint32_t idset;
  int64_t ts;      // the lineage time (the winning or latest contribution)
  Stored value;
};

// The person's value of an attribute, with its lineage.
struct AttrValue {
  uint32_t attr;
  uint16_t source;
  int64_t ts;
  Stored value;
};

// A person's live identifiers of one type. (Not a std::pair, which is not trivially
// copyable: snapshots copy these arrays byte for byte.)
struct IdTypeCount {
  uint32_t type;
  uint32_t count;
};

// The members an expression reads come first, in the first cache line, so a scan over
// many persons can prefetch each profile's header and hot arrays ahead of evaluating it.
struct alignas(64) Profile {
  uint64_t oneid = 0;
  int32_t cells_from = 0;         // counters cover local days >= cells_from
  std::vector<DayCell> cells;     // sorted by (type, day)
  std::vector<AttrValue> attrs;   // sorted by attr
  std::vector<IdTypeCount> id_counts;  // sorted by type
  int64_t first_seen = kNoTime, last_seen = kNoTime;
  std::vector<EventRow> events;   // sorted by key
  std::vector<PropRow> props;
  std::vector<IdSet> idsets;
  std::vector<NodeId> idset_nodes;
  std::vector<AttrObs> obs;       // sorted by (attr, idset)
};

// A profile that changed since the layers derived from profiles (tags) last looked: all,
// when it is new, its facts moved or its identifiers changed (a merge, a split, a
// removal); else the attributes and event types its new records carried.
struct ProfileChange {
  uint32_t slot = 0;
  bool all = false;
  std::vector<uint32_t> attrs, events;  // sorted, unique (when !all)
};

class ProfileStore final : public Names {
 public:
  // cfg, graph and sources outlive the store.
  ProfileStore(const EngineConfig& cfg, const IdentityGraph& graph, const NameTable& sources);
  ~ProfileStore() override;

  // Snapshots (src/snapshot.hpp): everything Load needs to rebuild the store. Load goes
  // into a store freshly constructed over the same config, with the graph and the sources
  // table already loaded; DataLoss when the bytes are bad (the store is then empty).
  void Save(snap::Writer& w) const;
  absl::Status Load(snap::Reader& r);

  // Files the facts of a linked record (its attributes, its event, its identifier set) on
  // the person its best live identifier belongs to. nodes: each identifier's node as
  // linking left it (kNoNode entries are skipped). Returns the person's OneID (0: the
  // record has no live identifier and was not filed).
  uint64_t AddRecord(const Batch& b, const Record& r, const NodeId* nodes);
  // After identity changed: moves each fact of these persons' profiles (by OneID, absorbed
  // ones included) to where its record belongs now. Facts whose identifiers are all
  // removed or quarantined leave the store.
  void Reconcile(const std::vector<uint64_t>& oneids);
  // Refreshes what the profiles touched since the last call derive from the graph (their
  // identifier counts) and prunes their counters to the horizon. Writers call it last.
  void Flush();
  // Drops every fact a source contributed (cdp_source_remove); false if it had none.
  bool DropSource(uint32_t source);
  // Erasure (PIPL): drops these persons' profiles (redirects followed) whole: attribute
  // observations, events and their properties, day counters, identifier sets. Their slots
  // are freed as a merge frees one (TakeChanges reports them) and their arrays overwritten;
  // then every string and list no remaining profile refers to is wiped (the persons'
  // values, the values they had before, and any other leftovers), so neither memory nor
  // Save holds a value only they had. One pass over the store per call, whatever the
  // number of persons: forget several at once. Names (attributes, event types, property
  // keys) stay: they are the schema. Returns how many of the persons had a profile.
  uint32_t Forget(std::span<const uint64_t> oneids);
  bool Forget(uint64_t oneid) { return Forget(std::span<const uint64_t>(&oneid, 1)) != 0; }
  // Hands over (and forgets) what changed since the last call: changed profiles by slot,
  // ascending, and the slots freed (their persons merged away or left without facts). A
  // freed slot may be reused by a new profile, so consumers clear freed slots first.
  void TakeChanges(std::vector<ProfileChange>& changed, std::vector<uint32_t>& freed);

  // The profile of a live OneID (redirects followed), or nullptr.
  const Profile* Find(uint64_t oneid) const;
  // Its slot (the dense person index of tags and audiences), or -1.
  int64_t SlotOf(uint64_t oneid) const;
  // Every profile by slot, for scans over all persons: slots() bounds the slot numbers;
  // AtSlot is nullptr for a free slot.
  uint32_t slots() const;
  const Profile* AtSlot(uint32_t slot) const;

  // Pulls a profile's hot arrays (attributes, counters, identifier counts) into cache:
  // scans over many persons call it a few persons ahead, so the misses overlap.
  // (Measured: prefetching more lines of each array, or the header's second line, was
  // slower at 100K persons; the first lines are what the lookups start with.)
  static void Prefetch(const Profile* p) {
    __builtin_prefetch(p->attrs.data());
    __builtin_prefetch(p->cells.data());
    __builtin_prefetch(reinterpret_cast<const char*>(p->cells.data()) + 64);
    __builtin_prefetch(p->id_counts.data());
  }
  // The header's hot line (see Profile), a step before Prefetch.
  static void PrefetchHeader(const Profile* p) { __builtin_prefetch(p); }
  // An event's amount in fen (kBigAmount resolved).
  static int64_t Amount(const Profile& p, const EventRow& e) {
    if (e.amount != kBigAmount) return e.amount;
    for (uint32_t k = 0; k < (e.props & 31); ++k) {
      const PropRow& pr = p.props[(e.props >> 5) + k];
      if (pr.key == kAmountKey) return pr.value.bits;
    }
    return 0;
  }

  // Reading values.
  Value Load(const Stored& s) const;
  std::string_view String(uint32_t id) const { return strings_.Get(id); }
  const std::string& AttrName(uint32_t attr) const;
  const std::string& EventTypeName(uint32_t type) const;
  const std::string& PropKeyName(uint32_t key) const;
  const std::string& TagName(uint32_t tag) const;
  const std::string& MachineName(uint32_t machine) const;
  // An interned machine name's id, or -1 (a read: interns nothing).
  int64_t FindMachine(std::string_view name) const;
  const std::string& SourceName(uint32_t source) const;
  // The table source ids index (owned by the engine).
  const NameTable& sources() const;
  Survivorship RuleOf(uint32_t attr) const;

  // Summary of one event type: count, amount, first and last time.
  struct TypeSummary {
    uint32_t type;
    uint64_t count;
    int64_t amount;
    int64_t first, last;
  };
  std::vector<TypeSummary> Summarize(const Profile& p) const;

  // Whether the person of profile p (nullptr: one without a profile) may be contacted on a
  // channel: their latest consent statement for it (kConsentPrefix), else the configured
  // default (privacy.consent).
  bool Consented(const Profile* p, std::string_view channel) const;

  // Live identifiers of a person by type (from the graph, for a person with no profile).
  uint32_t CountIds(uint64_t oneid, uint32_t type) const;
  const IdentityGraph& graph() const { return graph_; }

  // A canonical text of a profile that does not depend on internal ids or arrival order:
  // what the merge/split algebra tests compare.
  std::string Canonical(const Profile& p) const;

  // Names (for compiling expressions).
  uint32_t Attr(std::string_view name) override;
  uint32_t EventType(std::string_view name) override;
  uint32_t PropKey(std::string_view name) override;
  uint32_t Tag(std::string_view name) override;
  uint32_t Machine(std::string_view name) override;
  int IdType(std::string_view name) const override;
  bool ConsentDefault(std::string_view channel) const override;
  const TimeZone& Zone() const override { return cfg_.zone; }

  struct Counts {
    uint64_t profiles, events, attributes, cells, props;
  };
  Counts counts() const;
  // Bytes held, by structure.
  std::vector<std::pair<std::string, uint64_t>> Memory() const;

 private:
  friend class ProfileView;
  struct Impl;
  void LoadParts(snap::Reader& r);
  std::unique_ptr<Impl> impl_;
  const EngineConfig& cfg_;
  const IdentityGraph& graph_;
  StringPool strings_;
};

// A person as an expression sees it: the profile (nullptr for a person that has only
// identifiers, e.g. from a manual rule) and its OneID. Valid while the store is not
// written to; cheap to make on the stack.
class ProfileView final : public Subject {
 public:
  ProfileView(const ProfileStore& store, const Profile* p, uint64_t oneid)
      : store_(store), p_(p), oneid_(oneid) {}
  Value Attr(uint32_t attr) const override;
  int64_t FirstSeen() const override { return p_ ? p_->first_seen : kNoTime; }
  int64_t LastSeen() const override { return p_ ? p_->last_seen : kNoTime; }
  uint32_t IdCount(uint32_t id_type) const override;
  Totals DayTotals(uint32_t type, int32_t first_day, int32_t last_day) const override;
  void Scan(uint32_t type, int64_t from_ms, int64_t to_ms, bool reverse,
            absl::FunctionRef<bool(const EventView&)> f) const override;
  Value Prop(const EventView& e, uint32_t key) const override;

 private:
  const ProfileStore& store_;
  const Profile* p_;
  uint64_t oneid_;
};

}  // namespace cdp
