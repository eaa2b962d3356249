// The profile store: facts filed by identifier set, reconciled when identity changes.
#include "cdp/profile.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>
#include <tuple>
#include <type_traits>

#include "absl/container/flat_hash_set.h"
#include "record_parser.hpp"
#include "snapshot.hpp"
#include "util.hpp"

namespace cdp {

namespace {

constexpr uint64_t kTsMask = (uint64_t{1} << 48) - 1;
// The record parser's range is the rule (a ts outside it makes the line malformed); the
// check against kTsMask in File only guards batches made some other way.
static_assert(kFirstTime >= 0 && static_cast<uint64_t>(kLastTime) <= kTsMask);
constexpr uint32_t kHasAmount = 0x80000000u;
constexpr uint32_t kMaxEventTypes = 0xFFFF;
// Counters are pruned to the horizon lazily, once they reach this far past it.
constexpr int32_t kPruneSlack = 31;

// Grows a per-person array by an eighth (not double): profiles are many and small, so
// doubling would leave a third of every array unused on average.
template <typename V>
void Reserve1(V& v) {
  if (v.size() == v.capacity()) v.reserve(v.size() + v.size() / 8 + 4);
}
template <typename V, typename T>
void InsertGrow(V& v, typename V::iterator it, const T& x) {
  auto at = it - v.begin();
  Reserve1(v);
  v.insert(v.begin() + at, x);
}

// Counter cells sort by (type, day): one 64-bit key, the day's sign bit flipped so
// negative days order first.
uint64_t CellKey(uint32_t type, int32_t day) {
  return (uint64_t{type} << 32) | (static_cast<uint32_t>(day) ^ 0x80000000u);
}

bool IsNumber(ValueKind k) {
  return k == ValueKind::kInt || k == ValueKind::kDouble || k == ValueKind::kMoney;
}

double AsDouble(const Stored& s) {
  if (s.kind == ValueKind::kDouble) {
    double d;
    std::memcpy(&d, &s.bits, sizeof d);
    return d;
  }
  if (s.kind == ValueKind::kMoney) return static_cast<double>(s.bits) / 100.0;
  return static_cast<double>(s.bits);
}

Stored FromDouble(double d) {
  Stored s{ValueKind::kDouble, 0};
  std::memcpy(&s.bits, &d, sizeof d);
  return s;
}

// Overwrites a per-person array, its spare capacity included (an erase or an insert leaves
// old elements there), and frees it. explicit_bzero: a plain memset before a free is a
// dead store the compiler may drop.
template <typename T>
void WipeVector(std::vector<T>& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  v.resize(v.capacity());
  if (!v.empty()) explicit_bzero(v.data(), v.size() * sizeof(T));
  std::vector<T>().swap(v);
}

// The first lines of a per-person array, a few persons ahead of a scan over all of them
// (an event's properties span several lines, and the hardware prefetcher does not start
// on runs that short).
template <typename T>
void PrefetchArray(const std::vector<T>& v) {
  const char* p = reinterpret_cast<const char*>(v.data());
  const size_t n = std::min<size_t>(v.size() * sizeof(T), 512);
  for (size_t off = 0; off < n; off += 64) __builtin_prefetch(p + off);
}

// Adds sorted, unique ids to a sorted, unique list.
void MergeSorted(std::vector<uint32_t>& into, const std::vector<uint32_t>& ids) {
  const size_t n = into.size();
  into.insert(into.end(), ids.begin(), ids.end());
  std::inplace_merge(into.begin(), into.begin() + static_cast<std::ptrdiff_t>(n), into.end());
  into.erase(std::unique(into.begin(), into.end()), into.end());
}

}  // namespace

// --- pools ------------------------------------------------------------------------------

uint32_t StringPool::Intern(std::string_view s) {
  if (auto it = index_.find(s); it != index_.end()) return it->second;
  Append(s);
  return static_cast<uint32_t>(views_.size() - 1);
}

bool StringPool::Append(std::string_view s) {
  if (chunks_.empty() || chunk_used_ + s.size() > chunk_size_) {
    chunk_size_ = std::max<size_t>(64 * 1024, s.size());
    chunks_.push_back(std::make_unique<char[]>(chunk_size_));
    chunk_used_ = 0;
  }
  char* dst = chunks_.back().get() + chunk_used_;
  if (!s.empty()) std::memcpy(dst, s.data(), s.size());
  chunk_used_ += s.size();
  std::string_view kept(dst, s.size());
  auto id = static_cast<uint32_t>(views_.size());
  if (!index_.emplace(kept, id).second) {
    chunk_used_ -= s.size();
    return false;
  }
  views_.push_back(kept);
  return true;
}

uint64_t StringPool::bytes() const {
  return chunks_.size() * 64 * 1024 + views_.capacity() * sizeof(std::string_view) +
         index_.capacity() * (sizeof(std::string_view) + sizeof(uint32_t) + 1) + dead_.capacity() * sizeof(uint32_t);
}

void StringPool::Wipe(const std::vector<uint32_t>& ids) {
  std::vector<uint32_t> wiped;
  for (uint32_t id : ids) {
    std::string_view v = views_[id];
    if (v.empty()) continue;  // dead already, or "" (nothing to hide)
    // Out of the index first: it hashes the bytes about to go.
    index_.erase(v);
    explicit_bzero(const_cast<char*>(v.data()), v.size());  // the chunk is ours
    views_[id] = std::string_view();
    wiped.push_back(id);
  }
  MergeSorted(dead_, wiped);
}

uint32_t ListPool::Intern(const std::vector<uint32_t>& ids, const StringPool& strings) {
  std::string key(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(uint32_t));
  if (auto it = index_.find(key); it != index_.end()) return it->second;
  List l;
  l.ids = ids;
  l.values = std::make_unique<Value[]>(std::max<size_t>(ids.size(), 1));
  for (size_t i = 0; i < ids.size(); ++i) l.values[i] = Value::String(strings.Get(ids[i]));
  auto id = static_cast<uint32_t>(lists_.size());
  lists_.push_back(std::move(l));
  index_.emplace(std::move(key), id);
  return id;
}

uint64_t ListPool::bytes() const {
  uint64_t n = lists_.capacity() * sizeof(List) + dead_.capacity() * sizeof(uint32_t);
  for (const List& l : lists_) n += l.ids.capacity() * (sizeof(uint32_t) + sizeof(Value)) + 32;
  return n;
}

void ListPool::Wipe(const std::vector<uint32_t>& ids) {
  std::vector<uint32_t> wiped;
  for (uint32_t id : ids) {
    if (Dead(id)) continue;
    List& l = lists_[id];
    index_.erase(std::string(reinterpret_cast<const char*>(l.ids.data()), l.ids.size() * sizeof(uint32_t)));
    WipeVector(l.ids);
    l.values.reset();  // views into the strings: nothing of their own
    wiped.push_back(id);
  }
  MergeSorted(dead_, wiped);
}

// --- the store --------------------------------------------------------------------------

struct ProfileStore::Impl {
  ProfileStore& s;
  const NameTable& sources;
  NameTable attr_names, event_types, prop_keys, tags, machines;
  std::vector<const AttrPolicy*> policy;  // by attribute id; nullptr: inferred, latest
  std::vector<std::vector<int32_t>> source_rank;  // by attribute id, then source id (lazy)
  ListPool lists;
  std::deque<Profile> profiles;
  std::vector<uint32_t> free_slots;
  absl::flat_hash_map<uint64_t, uint32_t> by_oneid;
  absl::flat_hash_set<uint32_t> touched;  // profiles whose derived fields need a refresh
  // What changed for the layers derived from profiles (tags), until TakeChanges.
  absl::flat_hash_map<uint32_t, ProfileChange> changes;
  std::vector<uint32_t> freed;
  int32_t newest_day = INT32_MIN;
  uint64_t events_dropped = 0;
  std::string consent_name;  // scratch: kConsentPrefix + a channel

  Impl(ProfileStore& store, const NameTable& src) : s(store), sources(src) {}

  // Snapshots: why a loaded profile refers past its own arrays or the store's tables
  // (nullptr when it does not).
  const char* Invalid(const Profile& p) const;

  int32_t HorizonFrom() const {
    return newest_day == INT32_MIN ? INT32_MIN
                                   : newest_day - static_cast<int32_t>(s.cfg_.profile.horizon_days);
  }

  uint32_t AttrId(std::string_view name) {
    uint32_t id = attr_names.Intern(name);
    if (id >= policy.size()) {
      policy.resize(id + 1, nullptr);
      policy[id] = s.cfg_.FindAttr(name);
    }
    return id;
  }

  Survivorship Rule(uint32_t attr) const {
    return attr < policy.size() && policy[attr] ? policy[attr]->rule : Survivorship::kLatest;
  }

  int32_t SourceRank(uint32_t attr, uint16_t source) {
    const AttrPolicy* p = attr < policy.size() ? policy[attr] : nullptr;
    if (!p) return 0;
    if (source_rank.size() <= attr) source_rank.resize(attr + 1);
    auto& ranks = source_rank[attr];
    while (ranks.size() <= source) {
      const std::string& name = sources.Name(static_cast<uint32_t>(ranks.size()));
      auto it = std::find(p->sources.begin(), p->sources.end(), name);
      ranks.push_back(static_cast<int32_t>(it - p->sources.begin()));
    }
    return ranks[source];
  }

  // --- values ---

  Stored Intern(const Batch& b, const FieldIn& f) {
    Stored v{f.kind, f.bits};
    if (f.kind == ValueKind::kString) {
      v.bits = s.strings_.Intern(b.Str(f));
    } else if (f.kind == ValueKind::kList) {
      std::vector<uint32_t> ids;
      ids.reserve(f.str_len);
      for (uint32_t i = 0; i < f.str_len; ++i) {
        auto [off, len] = b.list_items[f.str_off + i];
        ids.push_back(s.strings_.Intern(b.Kept(off, len)));
      }
      v.bits = lists.Intern(ids, s.strings_);
    }
    return v;
  }

  // A total order on stored values that does not depend on intern order.
  int Compare(const Stored& a, const Stored& b) const {
    if (IsNumber(a.kind) && IsNumber(b.kind)) {
      if (a.kind == b.kind && a.kind != ValueKind::kDouble) return a.bits < b.bits ? -1 : a.bits > b.bits;
      double x = AsDouble(a), y = AsDouble(b);
      if (x != y) return x < y ? -1 : 1;
      return a.kind < b.kind ? -1 : a.kind > b.kind;
    }
    if (a.kind != b.kind) return a.kind < b.kind ? -1 : 1;
    switch (a.kind) {
      case ValueKind::kNull: return 0;
      case ValueKind::kString: {
        int c = s.strings_.Get(static_cast<uint32_t>(a.bits)).compare(s.strings_.Get(static_cast<uint32_t>(b.bits)));
        return c < 0 ? -1 : c > 0;
      }
      case ValueKind::kList: {
        const auto& x = lists.Ids(static_cast<uint32_t>(a.bits));
        const auto& y = lists.Ids(static_cast<uint32_t>(b.bits));
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
          int c = s.strings_.Get(x[i]).compare(s.strings_.Get(y[i]));
          if (c) return c < 0 ? -1 : 1;
        }
        return x.size() < y.size() ? -1 : x.size() > y.size();
      }
      default:
        return a.bits < b.bits ? -1 : a.bits > b.bits;
    }
  }

  bool Empty(const Stored& v) const {
    if (v.kind == ValueKind::kNull) return true;
    if (v.kind == ValueKind::kString) return s.strings_.Get(static_cast<uint32_t>(v.bits)).empty();
    if (v.kind == ValueKind::kList) return lists.Ids(static_cast<uint32_t>(v.bits)).empty();
    return false;
  }

  // A candidate value with its lineage.
  struct Cand {
    Stored v;
    int64_t ts;
    uint16_t source;
  };

  // Later (ts), then the source name, then the value: the tie-break every rule ends with.
  bool Later(const Cand& a, const Cand& b) const {
    if (a.ts != b.ts) return a.ts > b.ts;
    if (a.source != b.source) return sources.Name(a.source) > sources.Name(b.source);
    return Compare(a.v, b.v) > 0;
  }

  // Combines two candidates of one attribute under its rule. Commutative and associative,
  // so a person's value does not depend on the order its records arrived in.
  Cand Combine(uint32_t attr, const Cand& a, const Cand& b) {
    const Cand& later = Later(a, b) ? a : b;
    const Cand& earlier = &later == &a ? b : a;
    switch (Rule(attr)) {
      case Survivorship::kLatest:
        return later;
      case Survivorship::kFirst:
        if (a.ts != b.ts) return a.ts < b.ts ? a : b;
        return later;
      case Survivorship::kSourcePriority: {
        int32_t ra = SourceRank(attr, a.source), rb = SourceRank(attr, b.source);
        if (ra != rb) return ra < rb ? a : b;
        return later;
      }
      case Survivorship::kNonEmpty: {
        bool ea = Empty(a.v), eb = Empty(b.v);
        if (ea != eb) return ea ? b : a;
        return later;
      }
      case Survivorship::kMax:
      case Survivorship::kMin: {
        if (a.v.kind == ValueKind::kNull || b.v.kind == ValueKind::kNull)
          return a.v.kind == ValueKind::kNull ? (b.v.kind == ValueKind::kNull ? later : b) : a;
        int c = Compare(a.v, b.v);
        if (c == 0) return later;
        bool a_wins = Rule(attr) == Survivorship::kMax ? c > 0 : c < 0;
        return a_wins ? a : b;
      }
      case Survivorship::kSum: {
        bool na = IsNumber(a.v.kind), nb = IsNumber(b.v.kind);
        if (!na || !nb) return na ? a : nb ? b : later;
        Cand out = later;
        if (a.v.kind == b.v.kind && a.v.kind != ValueKind::kDouble) {
          int64_t sum;
          if (!__builtin_add_overflow(a.v.bits, b.v.bits, &sum)) {
            out.v = Stored{a.v.kind, sum};
            return out;
          }
        }
        out.v = FromDouble(AsDouble(a.v) + AsDouble(b.v));
        return out;
      }
      case Survivorship::kUnion: {
        auto ids_of = [&](const Stored& v, std::vector<uint32_t>& out) {
          if (v.kind == ValueKind::kList) {
            const auto& l = lists.Ids(static_cast<uint32_t>(v.bits));
            out.insert(out.end(), l.begin(), l.end());
          } else if (v.kind == ValueKind::kString) {
            out.push_back(static_cast<uint32_t>(v.bits));
          }
        };
        std::vector<uint32_t> ids;
        ids_of(a.v, ids);
        ids_of(b.v, ids);
        std::sort(ids.begin(), ids.end(), [&](uint32_t x, uint32_t y) {
          return s.strings_.Get(x) < s.strings_.Get(y);
        });
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        Cand out = later;
        out.v = Stored{ValueKind::kList, lists.Intern(ids, s.strings_)};
        (void)earlier;
        return out;
      }
    }
    return later;
  }

  // A single observation's own value under its rule (a union of one list is its set).
  Cand Normalize(uint32_t attr, Cand c) {
    if (Rule(attr) == Survivorship::kUnion && c.v.kind != ValueKind::kNull) return Combine(attr, c, Cand{Stored{}, c.ts, c.source});
    return c;
  }

  // --- per profile ---

  Profile& GetOrCreate(uint64_t oneid, uint32_t* slot_out = nullptr, bool* created = nullptr) {
    auto [it, fresh] = by_oneid.try_emplace(oneid, 0);
    if (created) *created = fresh;
    if (fresh) {
      uint32_t slot;
      if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
        profiles[slot] = Profile();
      } else {
        slot = static_cast<uint32_t>(profiles.size());
        profiles.emplace_back();
      }
      it->second = slot;
      Profile& p = profiles[slot];
      p.oneid = oneid;
      p.cells_from = HorizonFrom();
    }
    if (slot_out) *slot_out = it->second;
    return profiles[it->second];
  }

  void Free(uint32_t slot) {
    by_oneid.erase(profiles[slot].oneid);
    profiles[slot] = Profile();
    free_slots.push_back(slot);
    touched.erase(slot);
    changes.erase(slot);
    freed.push_back(slot);
  }

  // Erasure: overwrites a profile's arrays before Free lets them go.
  static void Wipe(Profile& p) {
    WipeVector(p.cells);
    WipeVector(p.attrs);
    WipeVector(p.id_counts);
    WipeVector(p.events);
    WipeVector(p.props);
    WipeVector(p.idsets);
    WipeVector(p.idset_nodes);
    WipeVector(p.obs);
  }

  // Wipes every string and list that no live profile refers to. Marking all of them (not
  // just a forgotten person's current values) is what also reaches the values the person
  // had before: an overwritten attribute leaves its string in the pool, referred to by no
  // one, and the union of lists interns every intermediate list. The marks are one bit per
  // string and per list; the pass reads each profile's values once, prefetched ahead, since
  // the misses dominate (200K persons with 16 event properties each: about 50 ms).
  void Sweep() {
    StringPool& strings = s.strings_;
    std::vector<uint64_t> live_strings((strings.size() + 63) / 64), live_lists((lists.size() + 63) / 64);
    auto mark = [](std::vector<uint64_t>& bits, uint64_t i) { bits[i >> 6] |= uint64_t{1} << (i & 63); };
    auto marked = [](const std::vector<uint64_t>& bits, uint64_t i) { return (bits[i >> 6] >> (i & 63)) & 1; };
    auto see = [&](const Stored& v) {
      if (v.kind == ValueKind::kString) mark(live_strings, static_cast<uint64_t>(v.bits));
      else if (v.kind == ValueKind::kList) mark(live_lists, static_cast<uint64_t>(v.bits));
    };
    const size_t slots = profiles.size();
    for (size_t slot = 0; slot < slots; ++slot) {
      if (slot + 16 < slots) PrefetchHeader(&profiles[slot + 16]);
      if (slot + 8 < slots) {
        const Profile& q = profiles[slot + 8];
        PrefetchArray(q.attrs);
        PrefetchArray(q.obs);
        PrefetchArray(q.props);
      }
      const Profile& p = profiles[slot];
      if (p.oneid == 0) continue;
      for (const AttrValue& a : p.attrs) see(a.value);
      for (const AttrObs& o : p.obs) see(o.value);
      for (const PropRow& pr : p.props) see(pr.value);
    }
    std::vector<uint32_t> gone;
    for (uint32_t l = 0; l < lists.size(); ++l) {
      if (l + 8 < lists.size()) __builtin_prefetch(lists.Ids(l + 8).data());
      if (marked(live_lists, l)) {
        for (uint32_t id : lists.Ids(l)) mark(live_strings, id);
      } else {
        gone.push_back(l);
      }
    }
    lists.Wipe(gone);
    gone.clear();
    for (uint32_t id = 0; id < strings.size(); ++id)
      if (!marked(live_strings, id)) gone.push_back(id);
    strings.Wipe(gone);
  }

  // The profile's facts moved or its identifiers changed: everything derived is stale.
  void Touch(uint32_t slot) {
    touched.insert(slot);
    ProfileChange& c = changes[slot];
    c.slot = slot;
    c.all = true;
  }

  static uint64_t HashIdSet(uint16_t source, const NodeId* nodes, uint32_t n) {
    uint64_t h = XXH3_64bits_withSeed(nodes, n * sizeof(NodeId), source);
    return h;
  }

  // The index of an identifier set in p, added if new; its time range widened by ts.
  uint32_t FindOrAddIdSet(Profile& p, uint16_t source, const NodeId* nodes, uint32_t n, uint64_t h,
                          int64_t first, int64_t last, uint32_t records) {
    for (uint32_t i = 0; i < p.idsets.size(); ++i) {
      IdSet& x = p.idsets[i];
      if (x.hash != h || x.source != source || x.nodes_len != n) continue;
      if (!std::equal(nodes, nodes + n, p.idset_nodes.begin() + x.nodes_off)) continue;
      x.first_ts = std::min(x.first_ts, first);
      x.last_ts = std::max(x.last_ts, last);
      x.records += records;
      return i;
    }
    IdSet x{h, static_cast<uint32_t>(p.idset_nodes.size()), static_cast<uint16_t>(n), source, first, last, records, 0};
    p.idset_nodes.insert(p.idset_nodes.end(), nodes, nodes + n);
    p.idsets.push_back(x);
    return static_cast<uint32_t>(p.idsets.size() - 1);
  }

  // Adds an observation to p (combined with the one from the same identifier set).
  void Observe(Profile& p, const AttrObs& o) {
    auto it = std::lower_bound(p.obs.begin(), p.obs.end(), o, [](const AttrObs& x, const AttrObs& y) {
      return x.attr != y.attr ? x.attr < y.attr : x.idset < y.idset;
    });
    uint16_t src = p.idsets[o.idset].source;
    if (it != p.obs.end() && it->attr == o.attr && it->idset == o.idset) {
      Cand c = Combine(o.attr, Cand{it->value, it->ts, src}, Cand{o.value, o.ts, src});
      it->value = c.v;
      it->ts = c.ts;
    } else {
      Cand c = Normalize(o.attr, Cand{o.value, o.ts, src});
      InsertGrow(p.obs, it, AttrObs{o.attr, o.idset, c.ts, c.v});
    }
  }

  // The person's value of attr from its observations.
  void Resolve(Profile& p, uint32_t attr) {
    auto lo = std::lower_bound(p.obs.begin(), p.obs.end(), attr, [](const AttrObs& x, uint32_t a) { return x.attr < a; });
    auto at = std::lower_bound(p.attrs.begin(), p.attrs.end(), attr, [](const AttrValue& x, uint32_t a) { return x.attr < a; });
    if (lo == p.obs.end() || lo->attr != attr) {
      if (at != p.attrs.end() && at->attr == attr) p.attrs.erase(at);
      return;
    }
    Cand best{lo->value, lo->ts, p.idsets[lo->idset].source};
    for (auto it = lo + 1; it != p.obs.end() && it->attr == attr; ++it)
      best = Combine(attr, best, Cand{it->value, it->ts, p.idsets[it->idset].source});
    AttrValue v{attr, best.source, best.ts, best.v};
    if (at != p.attrs.end() && at->attr == attr) *at = v;
    else InsertGrow(p.attrs, at, v);
  }

  void ResolveAll(Profile& p) {
    p.attrs.clear();
    for (size_t i = 0; i < p.obs.size();) {
      uint32_t a = p.obs[i].attr;
      Resolve(p, a);
      while (i < p.obs.size() && p.obs[i].attr == a) ++i;
    }
  }

  // Adds one event to the (type, day) counters at position `at` (the end of that key's
  // cells, or where they would go), continuing in a new cell when a cell is full.
  static void AddCell(std::vector<DayCell>& cells, size_t at, uint32_t type, int32_t day, int64_t amount) {
    if (at > 0) {
      DayCell& c = cells[at - 1];
      int64_t sum = int64_t{c.amount} + amount;
      if (c.type == type && c.day == day && c.count < 0xFFFF && sum >= INT32_MIN + 1 && sum <= INT32_MAX) {
        c.count++;
        c.amount = static_cast<int32_t>(sum);
        return;
      }
    }
    // A new cell; an amount beyond int32 is spread over count-0 continuation cells.
    uint16_t count = 1;
    do {
      int64_t part = std::clamp<int64_t>(amount, INT32_MIN + 1, INT32_MAX);
      amount -= part;
      DayCell c{static_cast<int32_t>(part), day, static_cast<uint16_t>(type), count};
      InsertGrow(cells, cells.begin() + static_cast<std::ptrdiff_t>(at++), c);
      count = 0;
    } while (amount != 0);
  }

  void AddToCell(Profile& p, uint32_t type, int32_t day, int64_t amount) {
    auto it = std::upper_bound(p.cells.begin(), p.cells.end(), CellKey(type, day),
                               [](uint64_t x, const DayCell& c) { return x < CellKey(c.type, c.day); });
    AddCell(p.cells, static_cast<size_t>(it - p.cells.begin()), type, day, amount);
  }

  void RebuildCells(Profile& p) {
    p.cells.clear();
    p.cells_from = std::max(p.cells_from, HorizonFrom());
    const TimeZone& z = s.cfg_.zone;
    for (const EventRow& e : p.events) {
      int32_t day = z.DayOf(e.ts());
      if (day < p.cells_from) continue;
      AddCell(p.cells, p.cells.size(), e.type(), day, ProfileStore::Amount(p, e));
    }
  }

  void RefreshSeen(Profile& p) {
    p.first_seen = kNoTime;
    p.last_seen = kNoTime;
    for (const IdSet& x : p.idsets) {
      if (p.first_seen == kNoTime || x.first_ts < p.first_seen) p.first_seen = x.first_ts;
      if (p.last_seen == kNoTime || x.last_ts > p.last_seen) p.last_seen = x.last_ts;
    }
  }

  void RefreshIdCounts(Profile& p) {
    p.id_counts.clear();
    NodeId anchor = s.graph_.PersonAnchor(p.oneid);
    if (anchor == kNoNode) return;
    for (NodeId n : s.graph_.Members(anchor)) {
      uint32_t t = s.graph_.node(n).type;
      auto it = std::lower_bound(p.id_counts.begin(), p.id_counts.end(), t,
                                 [](const IdTypeCount& x, uint32_t y) { return x.type < y; });
      if (it != p.id_counts.end() && it->type == t) it->count++;
      else p.id_counts.insert(it, IdTypeCount{t, 1});
    }
  }

  // Appends p's events of the identifier sets in `which` (with their properties) to
  // events/props, their identifier sets renumbered by remap.
  static void CopyEvents(const Profile& p, const std::vector<uint8_t>& which, const std::vector<uint32_t>& remap,
                         std::vector<EventRow>& events, std::vector<PropRow>& props) {
    for (const EventRow& e : p.events) {
      uint32_t i = e.idset_index();
      if (!which[i]) continue;
      EventRow c = e;
      c.idset = remap[i] | (e.idset & kHasAmount);
      uint32_t off = e.props >> 5, n = e.props & 31;
      c.props = (static_cast<uint32_t>(props.size()) << 5) | n;
      props.insert(props.end(), p.props.begin() + off, p.props.begin() + off + n);
      events.push_back(c);
    }
  }

  // Copies the facts of the identifier sets in `move` (by index; remap gets their index in
  // t) from p to t. p is left as it was.
  void CopyFacts(const Profile& p, Profile& t, const std::vector<uint8_t>& move) {
    std::vector<uint32_t> remap(p.idsets.size(), UINT32_MAX);
    for (uint32_t i = 0; i < p.idsets.size(); ++i) {
      if (!move[i]) continue;
      const IdSet& x = p.idsets[i];
      remap[i] = FindOrAddIdSet(t, x.source, p.idset_nodes.data() + x.nodes_off, x.nodes_len, x.hash,
                                x.first_ts, x.last_ts, x.records);
    }
    size_t before = t.events.size();
    CopyEvents(p, move, remap, t.events, t.props);
    if (t.events.size() != before)
      std::inplace_merge(t.events.begin(), t.events.begin() + static_cast<std::ptrdiff_t>(before), t.events.end(),
                         [](const EventRow& a, const EventRow& b) { return a.key < b.key; });
    for (const AttrObs& o : p.obs) {
      if (!move[o.idset]) continue;
      AttrObs c = o;
      c.idset = remap[o.idset];
      Observe(t, c);
    }
  }

  // Keeps only the identifier sets in `keep`, compacting p.
  void Retain(Profile& p, const std::vector<uint8_t>& keep) {
    std::vector<uint32_t> remap(p.idsets.size(), UINT32_MAX);
    std::vector<IdSet> sets;
    std::vector<NodeId> nodes;
    for (uint32_t i = 0; i < p.idsets.size(); ++i) {
      if (!keep[i]) continue;
      IdSet x = p.idsets[i];
      remap[i] = static_cast<uint32_t>(sets.size());
      uint32_t off = static_cast<uint32_t>(nodes.size());
      nodes.insert(nodes.end(), p.idset_nodes.begin() + x.nodes_off, p.idset_nodes.begin() + x.nodes_off + x.nodes_len);
      x.nodes_off = off;
      sets.push_back(x);
    }
    std::vector<EventRow> events;
    std::vector<PropRow> props;
    CopyEvents(p, keep, remap, events, props);
    std::vector<AttrObs> obs;
    for (const AttrObs& o : p.obs) {
      if (!keep[o.idset]) continue;
      AttrObs c = o;
      c.idset = remap[o.idset];
      obs.push_back(c);
    }
    p.idsets = std::move(sets);
    p.idset_nodes = std::move(nodes);
    p.events = std::move(events);
    p.props = std::move(props);
    p.obs = std::move(obs);
  }

  // Recomputes what is derived from the facts.
  void Derive(Profile& p) {
    ResolveAll(p);
    RebuildCells(p);
    RefreshSeen(p);
  }

  uint64_t OwnerOf(const Profile& p, const IdSet& x) const {
    NodeId a = s.graph_.RecordAnchor(p.idset_nodes.data() + x.nodes_off, x.nodes_len);
    return a == kNoNode ? 0 : s.graph_.OneIdOf(a);
  }

  void ReconcileSlot(uint32_t slot) {
    Profile& p = profiles[slot];
    const uint64_t self = p.oneid;
    std::vector<uint64_t> owner(p.idsets.size());
    bool all_home = true;
    for (size_t i = 0; i < p.idsets.size(); ++i) {
      owner[i] = OwnerOf(p, p.idsets[i]);
      all_home &= owner[i] == self;
    }
    if (all_home) {
      Touch(slot);
      return;
    }
    std::vector<uint64_t> targets;
    for (uint64_t o : owner)
      if (o != self && o != 0) targets.push_back(o);
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    std::vector<uint8_t> mask(p.idsets.size());
    for (uint64_t t : targets) {
      for (size_t i = 0; i < owner.size(); ++i) mask[i] = owner[i] == t;
      uint32_t tslot;
      Profile& tp = GetOrCreate(t, &tslot);  // deque: p stays valid
      CopyFacts(profiles[slot], tp, mask);
      Derive(tp);
      Touch(tslot);
    }
    for (size_t i = 0; i < owner.size(); ++i) mask[i] = owner[i] == self;
    Profile& q = profiles[slot];
    Retain(q, mask);
    if (q.idsets.empty()) {
      Free(slot);
      return;
    }
    Derive(q);
    Touch(slot);
  }
};

ProfileStore::ProfileStore(const EngineConfig& cfg, const IdentityGraph& graph, const NameTable& sources)
    : impl_(std::make_unique<Impl>(*this, sources)), cfg_(cfg), graph_(graph) {}
ProfileStore::~ProfileStore() = default;

uint64_t ProfileStore::AddRecord(const Batch& b, const Record& r, const NodeId* found) {
  Impl& m = *impl_;
  NodeId nodes[256];
  uint32_t n = 0;
  for (uint32_t k = 0; k < r.ids_count && n < std::size(nodes); ++k)
    if (found[k] != kNoNode) nodes[n++] = found[k];
  std::sort(nodes, nodes + n);
  n = static_cast<uint32_t>(std::unique(nodes, nodes + n) - nodes);
  NodeId anchor = graph_.RecordAnchor(nodes, n);
  if (anchor == kNoNode) return 0;
  uint64_t oneid = graph_.OneIdOf(anchor);
  if (oneid == 0) return 0;
  uint32_t slot;
  bool fresh;
  Profile& p = m.GetOrCreate(oneid, &slot, &fresh);
  m.touched.insert(slot);
  ProfileChange& change = m.changes[slot];
  change.slot = slot;
  // Nothing was derived from a new profile yet: a tag that reads none of this record's
  // facts still has a value for it (count(order) == 0, a consent default).
  change.all |= fresh;
  auto source = static_cast<uint16_t>(r.source);
  uint32_t set = m.FindOrAddIdSet(p, source, nodes, n, Impl::HashIdSet(source, nodes, n), r.ts, r.ts, 1);
  if (p.first_seen == kNoTime || r.ts < p.first_seen) p.first_seen = r.ts;
  if (p.last_seen == kNoTime || r.ts > p.last_seen) p.last_seen = r.ts;

  auto observe = [&](uint32_t attr, Stored value) {
    m.Observe(p, AttrObs{attr, set, r.ts, value});
    m.Resolve(p, attr);
    if (!change.all) change.attrs.push_back(attr);
  };
  for (uint32_t i = 0; i < r.attrs_count; ++i) {
    const FieldIn& f = b.fields[r.attrs_begin + i];
    observe(m.AttrId(b.Name(f)), m.Intern(b, f));
  }
  for (uint32_t i = 0; i < r.consent_count; ++i) {
    const FieldIn& f = b.fields[r.consent_begin + i];
    if (f.kind != ValueKind::kBool) continue;  // named, not stated
    m.consent_name.assign(kConsentPrefix).append(b.Name(f));
    const uint32_t said = strings_.Intern(f.bits ? kConsentGranted : kConsentWithdrawn);
    observe(m.AttrId(m.consent_name), Stored{ValueKind::kString, said});
  }

  if (r.event_type_len == 0) return oneid;
  std::string_view tname = b.Kept(r.event_type_off, r.event_type_len);
  if (r.ts < 0 || static_cast<uint64_t>(r.ts) > kTsMask ||
      (m.event_types.Find(tname) < 0 && m.event_types.size() >= kMaxEventTypes)) {
    m.events_dropped++;
    return oneid;
  }
  uint32_t type = m.event_types.Intern(tname);
  if (!change.all) change.events.push_back(type);
  EventRow e;
  e.key = (uint64_t{type} << 48) | static_cast<uint64_t>(r.ts);
  const int64_t amount = r.has_amount ? r.amount_fen : 0;
  const bool big = amount <= INT32_MIN || amount > INT32_MAX;
  e.amount = big ? kBigAmount : static_cast<int32_t>(amount);
  e.idset = set | (r.has_amount ? kHasAmount : 0);
  e.props = (static_cast<uint32_t>(p.props.size()) << 5) | (r.props_count + big);
  for (uint32_t i = 0; i < r.props_count; ++i) {
    const FieldIn& f = b.fields[r.props_begin + i];
    Reserve1(p.props);
    p.props.push_back(PropRow{m.prop_keys.Intern(b.Name(f)), m.Intern(b, f)});
  }
  if (big) {
    Reserve1(p.props);
    p.props.push_back(PropRow{kAmountKey, Stored{ValueKind::kMoney, amount}});
  }
  auto at = std::upper_bound(p.events.begin(), p.events.end(), e.key,
                             [](uint64_t k, const EventRow& x) { return k < x.key; });
  InsertGrow(p.events, at, e);
  int32_t day = cfg_.zone.DayOf(r.ts);
  if (day > m.newest_day) m.newest_day = day;
  if (day >= p.cells_from) m.AddToCell(p, type, day, amount);
  return oneid;
}

void ProfileStore::Reconcile(const std::vector<uint64_t>& oneids) {
  Impl& m = *impl_;
  for (uint64_t id : oneids) {
    if (id == 0) continue;
    if (auto it = m.by_oneid.find(id); it != m.by_oneid.end()) m.ReconcileSlot(it->second);
    // The person it is now may have gained or lost identifiers without any fact moving.
    uint64_t now = graph_.Canonical(id);
    if (now)
      if (auto it = m.by_oneid.find(now); it != m.by_oneid.end()) m.Touch(it->second);
  }
  Flush();
}

void ProfileStore::Flush() {
  Impl& m = *impl_;
  const int32_t horizon = m.HorizonFrom();
  for (uint32_t slot : m.touched) {
    Profile& p = m.profiles[slot];
    m.RefreshIdCounts(p);
    if (horizon != INT32_MIN && p.cells_from < horizon - kPruneSlack) {
      p.cells.erase(std::remove_if(p.cells.begin(), p.cells.end(), [&](const DayCell& c) { return c.day < horizon; }),
                    p.cells.end());
      p.cells_from = horizon;
    }
  }
  m.touched.clear();
}

bool ProfileStore::DropSource(uint32_t source) {
  Impl& m = *impl_;
  bool dropped = false;
  for (uint32_t slot = 0; slot < m.profiles.size(); ++slot) {
    Profile& p = m.profiles[slot];
    if (p.oneid == 0) continue;
    std::vector<uint8_t> keep(p.idsets.size());
    bool any = false;
    for (size_t i = 0; i < p.idsets.size(); ++i) {
      keep[i] = p.idsets[i].source != source;
      any |= !keep[i];
    }
    if (!any) continue;
    dropped = true;
    m.Retain(p, keep);
    if (p.idsets.empty()) {
      m.Free(slot);
      continue;
    }
    m.Derive(p);
    m.Touch(slot);
  }
  Flush();
  return dropped;
}

uint32_t ProfileStore::Forget(std::span<const uint64_t> oneids) {
  Impl& m = *impl_;
  uint32_t n = 0;
  for (uint64_t id : oneids) {
    const uint64_t live = graph_.Canonical(id);
    auto it = live ? m.by_oneid.find(live) : m.by_oneid.end();
    if (it == m.by_oneid.end()) continue;
    const uint32_t slot = it->second;
    Impl::Wipe(m.profiles[slot]);
    m.Free(slot);
    ++n;
  }
  if (n) m.Sweep();
  return n;
}

void ProfileStore::TakeChanges(std::vector<ProfileChange>& changed, std::vector<uint32_t>& freed) {
  Impl& m = *impl_;
  changed.clear();
  changed.reserve(m.changes.size());
  for (auto& [slot, c] : m.changes) {
    auto dedup = [](std::vector<uint32_t>& v) {
      std::sort(v.begin(), v.end());
      v.erase(std::unique(v.begin(), v.end()), v.end());
    };
    dedup(c.attrs);
    dedup(c.events);
    changed.push_back(std::move(c));
  }
  std::sort(changed.begin(), changed.end(), [](const ProfileChange& a, const ProfileChange& b) { return a.slot < b.slot; });
  m.changes.clear();
  freed.swap(m.freed);
  m.freed.clear();
  std::sort(freed.begin(), freed.end());
  freed.erase(std::unique(freed.begin(), freed.end()), freed.end());
}

const Profile* ProfileStore::Find(uint64_t oneid) const {
  uint64_t id = graph_.Canonical(oneid);
  if (!id) return nullptr;
  auto it = impl_->by_oneid.find(id);
  return it == impl_->by_oneid.end() ? nullptr : &impl_->profiles[it->second];
}

int64_t ProfileStore::SlotOf(uint64_t oneid) const {
  uint64_t id = graph_.Canonical(oneid);
  if (!id) return -1;
  auto it = impl_->by_oneid.find(id);
  return it == impl_->by_oneid.end() ? -1 : static_cast<int64_t>(it->second);
}

uint32_t ProfileStore::slots() const { return static_cast<uint32_t>(impl_->profiles.size()); }

const Profile* ProfileStore::AtSlot(uint32_t slot) const {
  const Profile& p = impl_->profiles[slot];
  return p.oneid == 0 ? nullptr : &p;
}

Value ProfileStore::Load(const Stored& s) const {
  switch (s.kind) {
    case ValueKind::kNull: return Value();
    case ValueKind::kBool: return Value::Bool(s.bits != 0);
    case ValueKind::kInt: return Value::Int(s.bits);
    case ValueKind::kDouble: return Value::Double(AsDouble(s));
    case ValueKind::kMoney: return Value::Money(s.bits);
    case ValueKind::kString: return Value::String(strings_.Get(static_cast<uint32_t>(s.bits)));
    case ValueKind::kTimestamp: return Value::Timestamp(s.bits);
    case ValueKind::kDuration: return Value::Duration(s.bits);
    case ValueKind::kDate: return Value::Date(s.bits);
    case ValueKind::kList: return impl_->lists.Get(static_cast<uint32_t>(s.bits));
  }
  return Value();
}

const std::string& ProfileStore::AttrName(uint32_t a) const { return impl_->attr_names.Name(a); }
const std::string& ProfileStore::EventTypeName(uint32_t t) const { return impl_->event_types.Name(t); }
const std::string& ProfileStore::PropKeyName(uint32_t k) const { return impl_->prop_keys.Name(k); }
const std::string& ProfileStore::TagName(uint32_t t) const { return impl_->tags.Name(t); }
const std::string& ProfileStore::MachineName(uint32_t m) const { return impl_->machines.Name(m); }
int64_t ProfileStore::FindMachine(std::string_view name) const { return impl_->machines.Find(name); }
const std::string& ProfileStore::SourceName(uint32_t s) const { return impl_->sources.Name(s); }
const NameTable& ProfileStore::sources() const { return impl_->sources; }
Survivorship ProfileStore::RuleOf(uint32_t attr) const { return impl_->Rule(attr); }

std::vector<ProfileStore::TypeSummary> ProfileStore::Summarize(const Profile& p) const {
  std::vector<TypeSummary> out;
  for (const EventRow& e : p.events) {
    if (out.empty() || out.back().type != e.type()) out.push_back({e.type(), 0, 0, e.ts(), e.ts()});
    TypeSummary& t = out.back();
    t.count++;
    t.amount += Amount(p, e);
    t.last = e.ts();  // sorted by time within a type
  }
  std::sort(out.begin(), out.end(), [&](const TypeSummary& a, const TypeSummary& b) {
    return EventTypeName(a.type) < EventTypeName(b.type);
  });
  return out;
}

uint32_t ProfileStore::CountIds(uint64_t oneid, uint32_t type) const {
  NodeId anchor = graph_.PersonAnchor(oneid);
  if (anchor == kNoNode) return 0;
  uint32_t n = 0;
  for (NodeId x : graph_.Members(anchor)) n += graph_.node(x).type == type;
  return n;
}

// --- names ------------------------------------------------------------------------------

uint32_t ProfileStore::Attr(std::string_view name) { return impl_->AttrId(name); }
uint32_t ProfileStore::EventType(std::string_view name) {
  int t = impl_->event_types.Find(name);
  if (t >= 0) return static_cast<uint32_t>(t);
  // A type past the limit can never have events: a name no event carries.
  if (impl_->event_types.size() >= kMaxEventTypes) return kMaxEventTypes;
  return impl_->event_types.Intern(name);
}
uint32_t ProfileStore::PropKey(std::string_view name) { return impl_->prop_keys.Intern(name); }
uint32_t ProfileStore::Tag(std::string_view name) { return impl_->tags.Intern(name); }
uint32_t ProfileStore::Machine(std::string_view name) { return impl_->machines.Intern(name); }
int ProfileStore::IdType(std::string_view name) const { return cfg_.FindType(name); }
bool ProfileStore::ConsentDefault(std::string_view channel) const { return cfg_.consent.For(channel); }

bool ProfileStore::Consented(const Profile* p, std::string_view channel) const {
  const bool dflt = ConsentDefault(channel);
  // The name is looked up, never interned (this is a read), in a buffer on the stack: it
  // runs for every intent. A channel no record stated has no name; nor one too long.
  char name[kConsentPrefix.size() + 64];
  if (!p || channel.size() > 64) return dflt;
  std::memcpy(name, kConsentPrefix.data(), kConsentPrefix.size());
  std::memcpy(name + kConsentPrefix.size(), channel.data(), channel.size());
  const int attr = impl_->attr_names.Find(std::string_view(name, kConsentPrefix.size() + channel.size()));
  if (attr < 0) return dflt;
  return ConsentGiven(ProfileView(*this, p, p->oneid).Attr(static_cast<uint32_t>(attr)), dflt);
}

// --- canonical text -----------------------------------------------------------------------

std::string ProfileStore::Canonical(const Profile& p) const {
  const Impl& m = *impl_;
  auto node_text = [&](NodeId n) {
    return Cat(cfg_.types[graph_.node(n).type].name, ":", graph_.Value(n));
  };
  // Live identifiers only: a removed identifier leaves the record as if it never had it.
  auto idset_text = [&](const IdSet& x) {
    std::vector<std::string> ids;
    for (uint32_t k = 0; k < x.nodes_len; ++k) {
      NodeId n = p.idset_nodes[x.nodes_off + k];
      if (graph_.Live(n)) ids.push_back(node_text(n));
    }
    std::sort(ids.begin(), ids.end());
    std::string out = Cat(m.sources.Name(x.source), "[");
    for (const auto& s : ids) out += s + " ";
    return out + "]";
  };
  auto value_text = [&](const Stored& v) -> std::string {
    switch (v.kind) {
      case ValueKind::kString: return Cat("\"", strings_.Get(static_cast<uint32_t>(v.bits)), "\"");
      case ValueKind::kList: {
        std::string out = "[";
        for (uint32_t id : m.lists.Ids(static_cast<uint32_t>(v.bits))) out += Cat(strings_.Get(id), ",");
        return out + "]";
      }
      case ValueKind::kDouble: return std::to_string(AsDouble(v));
      default: return Cat(ValueKindName(v.kind), ":", v.bits);
    }
  };
  std::vector<std::string> lines;
  lines.push_back(Cat("seen ", p.first_seen, " ", p.last_seen));
  // Identifier sets that read the same are one record group.
  std::map<std::string, std::tuple<int64_t, int64_t, uint64_t>> groups;
  for (const IdSet& x : p.idsets) {
    auto [it, fresh] = groups.try_emplace(idset_text(x), x.first_ts, x.last_ts, 0);
    auto& [first, last, records] = it->second;
    first = std::min(first, x.first_ts);
    last = std::max(last, x.last_ts);
    records += x.records;
  }
  for (const auto& [text, g] : groups)
    lines.push_back(Cat("idset ", text, " ", std::get<0>(g), " ", std::get<1>(g), " ", std::get<2>(g)));
  for (const EventRow& e : p.events) {
    std::vector<std::string> props;
    for (uint32_t k = 0; k < (e.props & 31); ++k) {
      const PropRow& pr = p.props[(e.props >> 5) + k];
      if (pr.key != kAmountKey) props.push_back(Cat(m.prop_keys.Name(pr.key), "=", value_text(pr.value)));
    }
    std::string line = Cat("event ", m.event_types.Name(e.type()), " ", e.ts(), " ", Amount(p, e),
                           e.has_amount() ? "" : "-", " ");
    for (const auto& s : props) line += s + " ";
    lines.push_back(line + idset_text(p.idsets[e.idset_index()]));
  }
  for (const AttrValue& a : p.attrs)
    lines.push_back(Cat("attr ", m.attr_names.Name(a.attr), " = ", value_text(a.value), " from ",
                        m.sources.Name(a.source), " at ", a.ts));
  // Counters, merged per (type, day).
  std::vector<std::string> cells;
  for (size_t i = 0; i < p.cells.size();) {
    const DayCell& c = p.cells[i];
    uint64_t count = 0;
    int64_t amount = 0;
    size_t j = i;
    for (; j < p.cells.size() && p.cells[j].type == c.type && p.cells[j].day == c.day; ++j) {
      count += p.cells[j].count;
      amount += p.cells[j].amount;
    }
    lines.push_back(Cat("day ", m.event_types.Name(c.type), " ", c.day, " ", count, " ", amount));
    i = j;
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

ProfileStore::Counts ProfileStore::counts() const {
  Counts c{};
  for (const Profile& p : impl_->profiles) {
    if (p.oneid == 0) continue;
    c.profiles++;
    c.events += p.events.size();
    c.attributes += p.attrs.size();
    c.cells += p.cells.size();
    c.props += p.props.size();
  }
  return c;
}

std::vector<std::pair<std::string, uint64_t>> ProfileStore::Memory() const {
  uint64_t profiles = 0, idsets = 0, events = 0, cells = 0, props = 0, attrs = 0;
  for (const Profile& p : impl_->profiles) {
    profiles += sizeof(Profile);
    idsets += p.idsets.capacity() * sizeof(IdSet) + p.idset_nodes.capacity() * sizeof(NodeId) +
              p.id_counts.capacity() * sizeof(p.id_counts[0]);
    events += p.events.capacity() * sizeof(EventRow);
    cells += p.cells.capacity() * sizeof(DayCell);
    props += p.props.capacity() * sizeof(PropRow);
    attrs += p.obs.capacity() * sizeof(AttrObs) + p.attrs.capacity() * sizeof(AttrValue);
  }
  profiles += impl_->by_oneid.capacity() * (sizeof(uint64_t) + sizeof(uint32_t) + 1);
  return {{"profiles", profiles}, {"profile_idsets", idsets}, {"events", events},
          {"day_counters", cells}, {"event_props", props}, {"attributes", attrs},
          {"strings", strings_.bytes()}, {"lists", impl_->lists.bytes()}};
}

// --- the view ---------------------------------------------------------------------------

Value ProfileView::Attr(uint32_t attr) const {
  if (!p_) return Value();
  auto it = std::lower_bound(p_->attrs.begin(), p_->attrs.end(), attr,
                             [](const AttrValue& x, uint32_t a) { return x.attr < a; });
  if (it == p_->attrs.end() || it->attr != attr) return Value();
  return store_.Load(it->value);
}

uint32_t ProfileView::IdCount(uint32_t type) const {
  if (!p_) return store_.CountIds(oneid_, type);
  auto it = std::lower_bound(p_->id_counts.begin(), p_->id_counts.end(), type,
                             [](const IdTypeCount& x, uint32_t y) { return x.type < y; });
  return it != p_->id_counts.end() && it->type == type ? it->count : 0;
}

namespace {

// The events of one type in [from, to), as an index range of p.events.
std::pair<size_t, size_t> TypeRange(const Profile& p, uint32_t type, int64_t from, int64_t to) {
  from = std::clamp<int64_t>(from, 0, static_cast<int64_t>(kTsMask) + 1);
  to = std::clamp<int64_t>(to, 0, static_cast<int64_t>(kTsMask) + 1);
  uint64_t base = uint64_t{type} << 48;
  auto cmp = [](const EventRow& e, uint64_t k) { return e.key < k; };
  auto lo = std::lower_bound(p.events.begin(), p.events.end(), base + static_cast<uint64_t>(from), cmp);
  auto hi = std::lower_bound(lo, p.events.end(), base + static_cast<uint64_t>(to), cmp);
  return {static_cast<size_t>(lo - p.events.begin()), static_cast<size_t>(hi - p.events.begin())};
}

}  // namespace

Subject::Totals ProfileView::DayTotals(uint32_t type, int32_t first_day, int32_t last_day) const {
  Totals t;
  // Event times are 0 .. 2^48 ms, so days outside a little beyond that hold nothing (and
  // "all time" arrives as the whole int32 range).
  first_day = std::max(first_day, -2);
  last_day = std::min(last_day, FloorDay(static_cast<int64_t>(kTsMask)) + 2);
  if (!p_ || first_day > last_day) return t;
  const Profile& p = *p_;
  const TimeZone& z = store_.Zone();
  thread_local std::vector<int32_t> days;  // active days, for kAnyEventType
  days.clear();
  const bool any = type == kAnyEventType;
  auto count_day = [&](int32_t day, int32_t& last) {
    if (any) days.push_back(day);
    else if (day != last) t.active_days++;
    last = day;
  };
  // Days the counters cover.
  int32_t lo = std::max(first_day, p.cells_from);
  if (lo <= last_day) {
    auto begin = p.cells.begin();
    if (!any)
      begin = std::lower_bound(p.cells.begin(), p.cells.end(), CellKey(type, lo),
                               [](const DayCell& c, uint64_t k) { return CellKey(c.type, c.day) < k; });
    int32_t last = INT32_MIN;
    for (auto it = begin; it != p.cells.end(); ++it) {
      if (!any && (it->type != type || it->day > last_day)) break;
      if (it->day < lo || it->day > last_day) continue;
      t.count += it->count;
      t.amount += it->amount;
      count_day(it->day, last);
    }
  }
  // Older days: from the events.
  // (In 64 bits: a profile made before the store saw any day has counters from INT32_MIN.)
  const int64_t hi64 = std::min<int64_t>(last_day, int64_t{p.cells_from} - 1);
  if (first_day <= hi64) {
    const auto hi = static_cast<int32_t>(hi64);
    int64_t from = z.DayStart(first_day), to = z.DayStart(hi + 1);
    auto scan_type = [&](uint32_t ty) {
      auto [a, b] = TypeRange(p, ty, from, to);
      int32_t last = INT32_MIN;
      for (size_t i = a; i < b; ++i) {
        t.count++;
        t.amount += ProfileStore::Amount(p, p.events[i]);
        count_day(z.DayOf(p.events[i].ts()), last);
      }
    };
    if (any) {
      for (size_t i = 0; i < p.events.size();) {
        uint32_t ty = p.events[i].type();
        scan_type(ty);
        while (i < p.events.size() && p.events[i].type() == ty) ++i;
      }
    } else {
      scan_type(type);
    }
  }
  if (any) {
    std::sort(days.begin(), days.end());
    t.active_days = static_cast<uint32_t>(std::unique(days.begin(), days.end()) - days.begin());
  }
  return t;
}

void ProfileView::Scan(uint32_t type, int64_t from, int64_t to, bool reverse,
                       absl::FunctionRef<bool(const EventView&)> f) const {
  if (!p_ || from >= to) return;
  const Profile& p = *p_;
  auto view = [&](size_t i) {
    const EventRow& e = p.events[i];
    return EventView{e.ts(), ProfileStore::Amount(p, e), e.type(), e.has_amount(), i};
  };
  if (type != kAnyEventType) {
    auto [a, b] = TypeRange(p, type, from, to);
    if (!reverse) {
      for (size_t i = a; i < b; ++i)
        if (!f(view(i))) return;
    } else {
      for (size_t i = b; i > a; --i)
        if (!f(view(i - 1))) return;
    }
    return;
  }
  // Every type, in time order.
  thread_local std::vector<std::pair<int64_t, size_t>> order;
  order.clear();
  for (size_t i = 0; i < p.events.size(); ++i) {
    int64_t ts = p.events[i].ts();
    if (ts >= from && ts < to) order.emplace_back(ts, i);
  }
  std::sort(order.begin(), order.end());
  if (reverse) std::reverse(order.begin(), order.end());
  for (auto [ts, i] : order)
    if (!f(view(i))) return;
}

Value ProfileView::Prop(const EventView& e, uint32_t key) const {
  if (!p_ || e.handle >= p_->events.size()) return Value();
  const EventRow& row = p_->events[e.handle];
  uint32_t off = row.props >> 5, n = row.props & 31;
  for (uint32_t k = 0; k < n; ++k) {
    const PropRow& pr = p_->props[off + k];
    if (pr.key == key) return store_.Load(pr.value);
  }
  return Value();
}

// --- snapshots --------------------------------------------------------------------------
//
// A profile's arrays are written byte for byte, so these layouts are part of the snapshot
// format: changing one needs a new snap::kFormat. (Padding goes along unread: no struct
// below is compared or hashed as bytes.)
static_assert(sizeof(DayCell) == 12 && sizeof(AttrValue) == 32 && sizeof(IdTypeCount) == 8 &&
              sizeof(EventRow) == 20 && sizeof(PropRow) == 24 && sizeof(IdSet) == 40 &&
              sizeof(NodeId) == 4 && sizeof(AttrObs) == 32);

namespace {

// A pool's dead ids as loaded: ascending, and each below the pool's size n.
bool DeadIdsValid(const std::vector<uint32_t>& dead, uint64_t n) {
  for (size_t i = 1; i < dead.size(); ++i)
    if (dead[i] <= dead[i - 1]) return false;
  return dead.empty() || dead.back() < n;
}

}  // namespace

void StringPool::Save(snap::Writer& w) const {
  w.Vec(dead_);
  w.U64(views_.size());
  for (std::string_view s : views_) w.Str(s);
}

// Appending in id order lays the strings out in the same chunks as the original pool
// (less the bytes of wiped ones).
void StringPool::Load(snap::Reader& r) {
  r.Vec(dead_);
  const uint64_t n = r.Count(8);
  if (r.ok() && !DeadIdsValid(dead_, n)) r.Fail("the string pool's dead ids are out of order or range");
  if (!r.ok()) return;
  views_.reserve(n);
  index_.reserve(n - dead_.size());
  auto dead = dead_.begin();
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    std::string_view s = r.Str();
    if (dead != dead_.end() && *dead == i) {
      ++dead;
      if (!s.empty()) r.Fail("a wiped string has bytes");
      views_.emplace_back();
    } else if (!Append(s)) {
      r.Fail("a string appears twice in the string pool");
    }
  }
}

void ListPool::Save(snap::Writer& w) const {
  w.Vec(dead_);
  w.U64(lists_.size());
  for (const List& l : lists_) w.Vec(l.ids);
}

void ListPool::Load(snap::Reader& r, const StringPool& strings) {
  r.Vec(dead_);
  const uint64_t n = r.Count(8);
  if (r.ok() && !DeadIdsValid(dead_, n)) r.Fail("the list pool's dead ids are out of order or range");
  auto dead = dead_.begin();
  std::vector<uint32_t> ids;
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    if (!r.Vec(ids)) break;
    if (dead != dead_.end() && *dead == i) {
      ++dead;
      if (!ids.empty()) r.Fail("a wiped list has items");
      lists_.emplace_back();
      continue;
    }
    if (std::any_of(ids.begin(), ids.end(), [&](uint32_t id) { return id >= strings.size() || strings.Dead(id); })) {
      r.Fail("a list names a string past the string pool, or a wiped one");
      return;
    }
    if (Intern(ids, strings) != i) r.Fail("a list appears twice in the list pool");
  }
}

const char* ProfileStore::Impl::Invalid(const Profile& p) const {
  auto bad = [&](const Stored& v) {
    const auto id = static_cast<uint64_t>(v.bits);
    switch (v.kind) {
      case ValueKind::kString: return id >= s.strings_.size() || s.strings_.Dead(static_cast<uint32_t>(id));
      case ValueKind::kList: return id >= lists.size() || lists.Dead(static_cast<uint32_t>(id));
      default: return v.kind > ValueKind::kList;
    }
  };
  if (p.idsets.empty()) return "a profile without records";
  for (const IdSet& x : p.idsets)
    if (x.source >= sources.size() || uint64_t{x.nodes_off} + x.nodes_len > p.idset_nodes.size())
      return "an identifier set out of range";
  for (NodeId n : p.idset_nodes)
    if (n >= s.graph_.node_count()) return "an identifier past the graph's nodes";
  for (const AttrObs& o : p.obs)
    if (o.attr >= attr_names.size() || o.idset >= p.idsets.size() || bad(o.value)) return "an observation out of range";
  for (const AttrValue& a : p.attrs)
    if (a.attr >= attr_names.size() || a.source >= sources.size() || bad(a.value)) return "an attribute out of range";
  for (const EventRow& e : p.events)
    if (e.type() >= event_types.size() || e.idset_index() >= p.idsets.size() ||
        (e.props >> 5) + (e.props & 31) > p.props.size())
      return "an event out of range";
  for (const PropRow& pr : p.props)
    if ((pr.key != kAmountKey && pr.key >= prop_keys.size()) || bad(pr.value)) return "an event property out of range";
  for (const DayCell& c : p.cells)
    if (c.type >= event_types.size()) return "a day counter of an unknown event type";
  for (const IdTypeCount& c : p.id_counts)
    if (c.type >= s.cfg_.types.size()) return "an identifier count of an unknown type";
  return nullptr;
}

void ProfileStore::Save(snap::Writer& w) const {
  const Impl& m = *impl_;
  w.Part("profiles");
  strings_.Save(w);
  m.lists.Save(w);
  m.attr_names.Save(w);
  m.event_types.Save(w);
  m.prop_keys.Save(w);
  m.tags.Save(w);
  m.machines.Save(w);
  w.I32(m.newest_day);
  w.U64(m.events_dropped);
  // Every slot, free ones as a zero OneID: slots are the person indexes of tags and
  // audiences, so they must come back as they were.
  w.U64(m.profiles.size());
  const size_t slots = m.profiles.size();
  for (size_t slot = 0; slot < slots; ++slot) {
    // The profiles' arrays are scattered over the heap: touch them a few profiles ahead
    // so the misses overlap the copying.
    if (slot + 8 < slots) PrefetchHeader(&m.profiles[slot + 8]);
    if (slot + 4 < slots) {
      const Profile& q = m.profiles[slot + 4];
      __builtin_prefetch(q.events.data());
      __builtin_prefetch(q.props.data());
      __builtin_prefetch(q.obs.data());
      __builtin_prefetch(q.idsets.data());
      Prefetch(&q);
    }
    const Profile& p = m.profiles[slot];
    w.U64(p.oneid);
    if (p.oneid == 0) continue;
    w.I32(p.cells_from);
    w.I64(p.first_seen);
    w.I64(p.last_seen);
    w.Vec(p.cells);
    w.Vec(p.attrs);
    w.Vec(p.id_counts);
    w.Vec(p.events);
    w.Vec(p.props);
    w.Vec(p.idsets);
    w.Vec(p.idset_nodes);
    w.Vec(p.obs);
  }
  // In the order they will be reused.
  w.Vec(m.free_slots);
  // What Flush and TakeChanges have not yet taken. An engine saves between writes, when
  // its last write has flushed the store and handed the changes to the tags, so these
  // are empty then; a store used on its own may hold some.
  std::vector<uint32_t> touched(m.touched.begin(), m.touched.end());
  std::sort(touched.begin(), touched.end());
  w.Vec(touched);
  std::vector<const ProfileChange*> changes;
  changes.reserve(m.changes.size());
  for (const auto& [slot, c] : m.changes) changes.push_back(&c);
  std::sort(changes.begin(), changes.end(), [](const ProfileChange* a, const ProfileChange* b) { return a->slot < b->slot; });
  w.U64(changes.size());
  for (const ProfileChange* c : changes) {
    w.U32(c->slot);
    w.Bool(c->all);
    w.Vec(c->attrs);
    w.Vec(c->events);
  }
  w.Vec(m.freed);
}

// Everything is replaced, whatever the store was given since it was made; a store whose
// bytes were bad is left empty, not half made (a profile that failed its checks may
// index past its arrays).
absl::Status ProfileStore::Load(snap::Reader& r) {
  auto reset = [&] {
    impl_ = std::make_unique<Impl>(*this, impl_->sources);
    strings_ = StringPool();
  };
  reset();
  LoadParts(r);
  if (!r.ok()) reset();
  return r.status();
}

void ProfileStore::LoadParts(snap::Reader& r) {
  Impl& m = *impl_;
  if (!r.Part("profiles")) return;
  strings_.Load(r);
  m.lists.Load(r, strings_);
  m.attr_names.Load(r);
  m.event_types.Load(r);
  m.prop_keys.Load(r);
  m.tags.Load(r);
  m.machines.Load(r);
  if (r.ok() && m.event_types.size() > kMaxEventTypes) r.Fail("more event types than events can name");
  if (!r.ok()) return;
  // The policy pointers are into this store's config: found again by name, as AttrId does.
  m.policy.resize(m.attr_names.size());
  for (uint32_t a = 0; a < m.policy.size(); ++a) m.policy[a] = cfg_.FindAttr(m.attr_names.Name(a));
  m.newest_day = r.I32();
  m.events_dropped = r.U64();

  const uint64_t slots = r.Count(8);
  if (slots > UINT32_MAX) r.Fail("more profile slots than slot numbers");
  if (!r.ok()) return;
  m.profiles.resize(slots);
  m.by_oneid.reserve(slots);
  for (uint32_t slot = 0; slot < slots && r.ok(); ++slot) {
    Profile& p = m.profiles[slot];
    p.oneid = r.U64();
    if (p.oneid == 0) continue;
    p.cells_from = r.I32();
    p.first_seen = r.I64();
    p.last_seen = r.I64();
    r.Vec(p.cells);
    r.Vec(p.attrs);
    r.Vec(p.id_counts);
    r.Vec(p.events);
    r.Vec(p.props);
    r.Vec(p.idsets);
    r.Vec(p.idset_nodes);
    r.Vec(p.obs);
    if (!r.ok()) break;
    if (const char* why = m.Invalid(p)) r.Fail(Cat("the profile of OneID ", p.oneid, ": ", why));
  }
  // The OneID index, each slot's bucket fetched a few profiles ahead: a million random
  // inserts would otherwise wait on memory one at a time.
  for (uint32_t slot = 0; slot < slots && r.ok(); ++slot) {
    if (slot + 16 < slots) m.by_oneid.prefetch(m.profiles[slot + 16].oneid);
    const uint64_t id = m.profiles[slot].oneid;
    if (id && !m.by_oneid.try_emplace(id, slot).second) r.Fail(Cat("OneID ", id, " has two profiles"));
  }
  if (!r.ok()) return;

  // Each free slot listed once: GetOrCreate takes them from the back.
  r.Vec(m.free_slots);
  std::vector<uint8_t> listed(slots);
  for (uint32_t slot : m.free_slots) {
    if (slot >= slots || m.profiles[slot].oneid != 0 || listed[slot]) {
      r.Fail(Cat("free slot ", slot, " is not free or listed twice"));
      break;
    }
    listed[slot] = 1;
  }
  if (r.ok() && m.free_slots.size() + m.by_oneid.size() != slots) r.Fail("a free slot is missing from its list");
  auto live = [&](uint32_t slot) { return slot < slots && m.profiles[slot].oneid != 0; };
  std::vector<uint32_t> touched;
  r.Vec(touched);
  for (uint32_t slot : touched) {
    if (!live(slot)) r.Fail(Cat("touched slot ", slot, " has no profile"));
    m.touched.insert(slot);
  }
  for (uint64_t i = 0, n = r.Count(21); i < n && r.ok(); ++i) {
    ProfileChange c;
    c.slot = r.U32();
    c.all = r.Bool();
    r.Vec(c.attrs);
    r.Vec(c.events);
    if (r.ok() && !live(c.slot)) r.Fail(Cat("changed slot ", c.slot, " has no profile"));
    m.changes.emplace(c.slot, std::move(c));
  }
  r.Vec(m.freed);
  for (uint32_t slot : m.freed)
    if (slot >= slots) r.Fail(Cat("freed slot ", slot, " is past the slots"));
}

}  // namespace cdp
