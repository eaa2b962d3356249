// Privacy: forgetting persons on request (PIPL deletion), the tombstones that keep a
// forgotten identifier from coming back, and the access export of everything held about a
// person (docs/guarantees.md, "Erasure").
//
// A forget runs through every layer from the top down (lifecycle, saved audiences,
// profiles and the tags derived from them, identity, feed), each of which removes the
// person and overwrites the strings only the person used, then keeps a keyed hash of each
// identifier. It is logged by OneID only; what it cannot reach from memory is the older
// log and snapshots, which still hold the raw inputs: the snapshot that follows (at once,
// unless the request defers it) is written without the person and removes every file
// older than itself.
//
// Hashed identifiers: a type whose policy says "hashed" is stored as a keyed hash of its
// value under the host's key, with the value's mask for display (HashedValue in
// cdp/policy.hpp), so matching works and no raw value of it is held in memory or on disk.
// The log then holds parsed batches (EncodeBatch) instead of the NDJSON given, and every
// other logged write names such identifiers in stored form.
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "cdp/engine.hpp"
#include "engine_internal.hpp"
#include "fs.hpp"
#include "json_util.hpp"
#include "keyed_hash.hpp"
#include "snapshot.hpp"
#include "simdjson.h"
#include "util.hpp"
#include "xxhash.h"

namespace cdp {

// --- tombstones -----------------------------------------------------------------------

Tombstones::Tombstones() : key_(32, '\0') {
  // getrandom blocks only until the kernel's pool is first seeded, and fails only on a
  // signal; a key is 32 bytes, well under the 256 returned whole.
  size_t got = 0;
  while (got < key_.size()) {
    ssize_t n = ::getrandom(key_.data() + got, key_.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::bad_alloc();  // no entropy source: nothing sensible to do
    got += static_cast<size_t>(n);
  }
}

Tombstones::Key Tombstones::KeyOf(std::string_view type, std::string_view value) const {
  Digest d = KeyedHash(key_, {"cdpcore tombstone", type, value});
  Key k;
  std::memcpy(&k.first, d.data(), 8);
  std::memcpy(&k.second, d.data() + 8, 8);
  return k;
}

uint32_t Tombstones::Bit(std::string_view type, std::string_view value) {
  const uint64_t h = XXH3_64bits_withSeed(value.data(), value.size(), XXH3_64bits(type.data(), type.size()));
  return static_cast<uint32_t>(h >> 48);
}

void Tombstones::Add(std::string_view type, std::string_view value) {
  set_.insert(KeyOf(type, value));
  const uint32_t b = Bit(type, value);
  filter_[b >> 6] |= uint64_t{1} << (b & 63);
}

bool Tombstones::Contains(std::string_view type, std::string_view value) const {
  if (set_.empty()) return false;
  const uint32_t b = Bit(type, value);
  if (!(filter_[b >> 6] >> (b & 63) & 1)) return false;
  return set_.contains(KeyOf(type, value));
}

// A lifted tombstone leaves its filter bit set (other tombstones may share it): a stale
// bit costs an HMAC, never a wrong answer.
bool Tombstones::Erase(std::string_view type, std::string_view value) {
  return !set_.empty() && set_.erase(KeyOf(type, value)) > 0;
}

void Tombstones::Save(snap::Writer& w) const {
  w.Part("tombstones");
  w.Str(key_);
  // In hash order, which abseil salts per process: sorted, so equal states save equal bytes.
  std::vector<Key> keys(set_.begin(), set_.end());
  std::sort(keys.begin(), keys.end());
  w.U64(keys.size());
  for (const Key& k : keys) {
    w.U64(k.first);
    w.U64(k.second);
  }
  w.Vec(filter_);
}

void Tombstones::Load(snap::Reader& r) {
  r.Part("tombstones");
  std::string key(r.Str());
  if (r.ok() && key.size() != 32) r.Fail("the tombstone key has the wrong size");
  set_.clear();
  const uint64_t n = r.Count(16);
  set_.reserve(n);
  for (uint64_t i = 0; i < n && r.ok(); ++i) {
    Key k;
    k.first = r.U64();
    k.second = r.U64();
    set_.insert(k);
  }
  r.Vec(filter_);
  if (r.ok() && filter_.size() != 1024) r.Fail("the tombstone filter has the wrong size");
  if (r.ok()) key_ = std::move(key);
}

// Records that carry a forgotten identifier are refused whole: their other identifiers
// and their facts describe the same forgotten person, and filing them anywhere would
// bring part of it back. The line error names the type, never the value.
void Engine::DropForgotten(Batch& b) {
  Tombstones& t = impl_->tombstones;
  if (t.empty()) return;
  auto type_of = [&](const RecordId& id) -> std::string_view { return cfg_.types[id.type].name; };
  // Under "consent", a record with the consent event lifts the tombstones of what it
  // carries, wherever it is in the batch: the outcome does not depend on the batch's order.
  if (cfg_.tombstones == EngineConfig::Tombstones::kConsent)
    for (const Record& r : b.records)
      if (b.EventType(r) == cfg_.consent_event)
        for (uint32_t k = r.ids_begin; k < r.ids_begin + r.ids_count; ++k)
          t.Erase(type_of(b.ids[k]), b.Value(b.ids[k]));
  size_t kept = 0;
  bool refused = false;
  for (size_t i = 0; i < b.records.size(); ++i) {
    const Record& r = b.records[i];
    std::string_view forgotten_type;
    uint32_t forgotten = 0;
    for (uint32_t k = r.ids_begin; k < r.ids_begin + r.ids_count; ++k)
      if (t.Contains(type_of(b.ids[k]), b.Value(b.ids[k]))) {
        if (forgotten++ == 0) forgotten_type = type_of(b.ids[k]);
      }
    if (forgotten == 0) {
      b.records[kept++] = r;
      continue;
    }
    refused = true;
    b.ids_rejected[static_cast<size_t>(Rejection::kForgotten)] += forgotten;
    b.ids_accepted -= std::min<uint64_t>(b.ids_accepted, forgotten);
    b.rejected++;
    if (b.errors.size() < cfg_.limits.max_errors_listed)
      b.errors.push_back({r.line, 1, "ids",
                          Cat("carries an identifier (", forgotten_type, ") of a person forgotten on request")});
  }
  b.records.resize(kept);
  if (!refused) return;
  std::stable_sort(b.errors.begin(), b.errors.end(),
                   [](const RecordError& x, const RecordError& y) { return x.line < y.line; });
  // The batch goes to the log as given, forgotten values and all (replay must refuse
  // the same lines): the next snapshot removes it, as after a forget.
  impl_->erasure_pending = true;
}

// --- forget ---------------------------------------------------------------------------

namespace {

// A forget request: {"oneids":[N,...]} and/or {"identifiers":[{"type","value"},...]},
// "compact" (default true).
struct ForgetRequest {
  std::vector<uint64_t> oneids;
  std::vector<std::pair<std::string, std::string>> identifiers;
  bool compact = true;
};

absl::StatusOr<ForgetRequest> ParseForget(std::string_view json) {
  if (auto st = json::CheckSyntax(json, "forget request"); !st.ok()) return st;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size()).get(doc) || doc.get(obj))
    return absl::InvalidArgumentError("forget request: expected a JSON object");
  ForgetRequest req;
  for (auto [key, val] : obj) {
    if (key == "oneids") {
      simdjson::dom::array arr;
      if (val.get(arr)) return absl::InvalidArgumentError("forget request: oneids: expected an array of OneIDs");
      size_t i = 0;
      for (auto el : arr) {
        uint64_t id;
        if (el.get(id) || id == 0)
          return absl::InvalidArgumentError(Cat("forget request: oneids[", i, "]: expected a OneID"));
        req.oneids.push_back(id);
        ++i;
      }
    } else if (key == "identifiers") {
      simdjson::dom::array arr;
      if (val.get(arr))
        return absl::InvalidArgumentError("forget request: identifiers: expected an array of {\"type\",\"value\"}");
      size_t i = 0;
      for (auto el : arr) {
        std::string_view type, value;
        if (el["type"].get(type) || el["value"].get(value))
          return absl::InvalidArgumentError(
              Cat("forget request: identifiers[", i, "]: expected {\"type\":...,\"value\":...}"));
        req.identifiers.emplace_back(type, value);
        ++i;
      }
    } else if (key == "compact") {
      if (val.get(req.compact)) return absl::InvalidArgumentError("forget request: compact: expected true or false");
    } else {
      return absl::InvalidArgumentError(Cat("forget request: unknown key \"", key, "\""));
    }
  }
  if (req.oneids.empty() && req.identifiers.empty())
    return absl::InvalidArgumentError("forget request: name the persons in \"oneids\" or \"identifiers\"");
  return req;
}

}  // namespace

absl::StatusOr<std::string> Engine::Forget(std::string_view request_json) {
  auto req = ParseForget(request_json);
  if (!req.ok()) return req.status();
  if (auto st = Writable(); !st.ok()) return st;

  // Resolve every name first: a request naming no one changes nothing.
  std::vector<uint64_t> targets;
  std::string not_found;
  json::Writer nf(not_found);
  nf.BeginArray();
  for (uint64_t id : req->oneids) {
    const uint64_t live = graph_->Canonical(id);
    if (live == 0) nf.Uint(id);
    else targets.push_back(live);
  }
  for (const auto& [type, value] : req->identifiers) {
    auto node = FindIdentifier(type, value);
    if (!node.ok() || !graph_->Live(*node)) {
      // The request's own text, masked: a report of what was not found is no place for
      // a value the caller wants gone.
      const int t = cfg_.FindType(type);
      nf.String(Cat(type, ":", MaskValue(t < 0 ? Normalizer::kNone : cfg_.types[t].normalizer, value)));
      continue;
    }
    targets.push_back(graph_->OneIdOf(*node));
  }
  nf.EndArray();
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  if (targets.empty()) return absl::NotFoundError("forget: no live person matches the request");

  WriteScope scope(*this);
  const uint64_t feed_from = feed_.next();
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("forgotten").BeginArray();
  absl::flat_hash_set<uint64_t> gone_oneids;
  absl::flat_hash_set<uint32_t> gone_nodes, gone_links;
  absl::flat_hash_set<std::string> gone_texts;  // "type:value", as rejected-identifier events hold them
  // Tombstones first, while the values are still there: the person's identifiers, and
  // the removed ones only its records carried, which the graph forgets with it.
  std::vector<NodeId> anchors;
  for (uint64_t oneid : targets) {
    const NodeId anchor = graph_->PersonAnchor(oneid);
    anchors.push_back(anchor);
    std::vector<NodeId> nodes = graph_->Members(anchor);
    for (NodeId n : graph_->FormerIdentifiers(anchor)) nodes.push_back(n);
    for (NodeId n : nodes) {
      const std::string& type = cfg_.types[graph_->node(n).type].name;
      impl_->tombstones.Add(type, graph_->Value(n));
      gone_texts.insert(Cat(type, ":", graph_->Value(n)));
    }
  }
  // Tags, then profiles, each in one pass over its layer, while the OneIDs still resolve
  // (tags find slots through the store): with the slots, the values only they held.
  tags_->Forget(targets);
  profiles_->Forget(targets);
  std::vector<std::pair<uint64_t, uint32_t>> events;  // (OneID, identifiers) for person_forgotten
  for (size_t i = 0; i < targets.size(); ++i) {
    const uint64_t oneid = targets[i];
    IdentityGraph::Forgotten f = graph_->Forget(anchors[i]);
    // Intents decided before a merge carry the absorbed OneIDs.
    std::vector<uint64_t> absorbed;
    for (uint64_t id : f.oneids)
      if (id != oneid) absorbed.push_back(id);
    life_->Forget(oneid, absorbed);
    gone_oneids.insert(f.oneids.begin(), f.oneids.end());
    gone_nodes.insert(f.nodes.begin(), f.nodes.end());
    gone_links.insert(f.links.begin(), f.links.end());
    w.BeginObject();
    w.Key("oneid").Uint(oneid);
    w.Key("identifiers").Uint(f.identifiers);
    w.Key("absorbed").BeginArray();
    for (uint64_t id : absorbed) w.Uint(id);
    w.EndArray();
    w.EndObject();
    events.emplace_back(oneid, f.identifiers);
  }
  w.EndArray();
  w.Key("not_found").Raw(not_found);
  // The tags and states the persons' profiles held go with their slots.
  UpdateTags();
  if (!life_->empty()) SyncStates();
  impl_->forgotten += targets.size();

  // Earlier feed events about the persons are erased in place (their sequence numbers
  // stay, so hosts' cursors stay valid); the erasure itself is announced.
  feed_.Erase([&](const FeedEvent& e) {
    using K = FeedEvent::Kind;
    if (e.seq >= feed_from) return false;
    if (e.node != 0xFFFFFFFFu && gone_nodes.contains(e.node)) return true;
    if (e.link != 0xFFFFFFFFu && gone_links.contains(e.link)) return true;
    switch (e.kind) {
      case K::kIdRejected:
        return e.text != 0xFFFFFFFFu && gone_texts.contains(feed_.text(e.text));
      case K::kTagDefined: case K::kTagDropped: case K::kAudienceCounted:
        return false;  // a and b are counts
      default:
        return gone_oneids.contains(e.a) || gone_oneids.contains(e.b);
    }
  });
  for (auto [oneid, ids] : events) {
    FeedEvent& e = feed_.Append(FeedEvent::Kind::kPersonForgotten);
    e.a = oneid;
    e.count = ids;
    e.ts = Now() == kNoTime ? 0 : Now();
  }
  w.Key("feed").BeginObject().Key("from").Uint(feed_from).Key("to").Uint(feed_.next()).EndObject();

  // Logged by OneID: the log must not receive the values it is about to lose.
  std::string logged;
  json::Writer lw(logged);
  lw.BeginObject().Key("oneids").BeginArray();
  for (uint64_t id : targets) lw.Uint(id);
  lw.EndArray().Key("compact").Bool(false).EndObject();
  impl_->erasure_pending = true;
  if (auto st = Log(K(LogKind::kForget), {logged}); !st.ok()) return st;
  w.Key("snapshot");
  if (impl_->wal && req->compact) {
    // The forget is durable in the log; a failed compaction loses nothing and leaves the
    // erasure pending, for the next snapshot or the next open to finish.
    auto snapshot = Snapshot();
    if (snapshot.ok()) w.Raw(*snapshot);
    else w.BeginObject().Key("error").String(std::string(snapshot.status().message())).EndObject();
  } else {
    w.Null();
  }
  w.Key("erasure_pending").Bool(impl_->wal && impl_->erasure_pending);
  w.EndObject();
  return out;
}

// --- access export ----------------------------------------------------------------------

// Everything the engine holds about a person, unmasked (the person asked for it): the
// person document (identifiers, surviving attributes with lineage, event summary, tags,
// lifecycle) and beneath it what those summarise: each piece of evidence, the manual
// rules that name the person's identifiers, every attribute observation and every event
// with its properties.
absl::StatusOr<std::string> Engine::ExportPerson(uint64_t oneid) const {
  auto doc = PersonDocument(oneid, /*mask=*/false, /*profile=*/true);
  if (!doc.ok()) return doc.status();
  const IdentityGraph& g = *graph_;
  const NodeId root = g.Root(g.PersonAnchor(oneid));
  const std::vector<NodeId> members = g.Members(root);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("format").String("cdpcore.person_export").Key("version").Uint(1);
  w.Key("oneid").Uint(g.PersonAt(root).oneid);
  w.Key("now");
  if (Now() == kNoTime) w.Null();
  else w.Int(Now());
  w.Key("person").Raw(*doc);

  // Evidence: each link once, from the end whose adjacency list reaches it first.
  w.Key("evidence").BeginArray();
  for (NodeId n : members)
    for (uint32_t l = g.node(n).first_link; l != IdentityGraph::kNoLink;) {
      const Link& link = g.link(l);
      const bool from_a = link.a == n;
      const NodeId other = from_a ? link.b : link.a;
      if (link.state != LinkState::kRemoved && (g.Root(other) != root || n < other)) {
        w.BeginObject();
        w.Key("link");
        WriteLink(w, *this, link, impl_->sources);
        w.Key("state").String(link.state == LinkState::kRefused ? "refused" : "active");
        if (link.state == LinkState::kRefused) w.Key("reason").String(RefusalName(link.reason));
        w.EndObject();
      }
      l = from_a ? link.next_a : link.next_b;
    }
  w.EndArray();

  w.Key("rules").BeginArray();
  for (const ManualRule& r : g.rules()) {
    if (!r.active || (g.Root(r.a) != root && g.Root(r.b) != root)) continue;
    WriteRule(w, *this, r);
  }
  w.EndArray();

  const ProfileStore& ps = *profiles_;
  const Profile* p = ps.Find(oneid);
  auto value = [&](const Stored& s) {
    std::string v;
    AppendValueJson(v, ps.Load(s));
    return v;
  };
  auto source = [&](uint32_t idset) -> const std::string& { return impl_->sources.Name(p->idsets[idset].source); };
  w.Key("observations").BeginArray();
  if (p)
    for (const AttrObs& o : p->obs) {
      w.BeginObject();
      w.Key("attribute").String(ps.AttrName(o.attr));
      w.Key("value").Raw(value(o.value));
      w.Key("source").String(source(o.idset));
      w.Key("ts").Int(o.ts);
      w.EndObject();
    }
  w.EndArray();
  w.Key("events").BeginArray();
  if (p)
    for (const EventRow& e : p->events) {
      w.BeginObject();
      w.Key("type").String(ps.EventTypeName(e.type()));
      w.Key("ts").Int(e.ts());
      if (e.has_amount()) {
        std::string amount;
        AppendValueJson(amount, Value::Money(ProfileStore::Amount(*p, e)));
        w.Key("amount").Raw(amount);
      }
      w.Key("source").String(source(e.idset_index()));
      w.Key("properties").BeginObject();
      for (uint32_t k = 0; k < (e.props & 31); ++k) {
        const PropRow& pr = p->props[(e.props >> 5) + k];
        if (pr.key != kAmountKey) w.Key(ps.PropKeyName(pr.key)).Raw(value(pr.value));
      }
      w.EndObject();
      w.EndObject();
    }
  w.EndArray();
  w.EndObject();
  return out;
}

// --- hashed identifiers -------------------------------------------------------------------

Engine::Impl::~Impl() { WipeString(key); }

absl::Status CheckKey(const EngineConfig& cfg, std::string_view key) {
  const bool hashed = cfg.AnyHashed();
  if (key.empty() && !hashed) return absl::OkStatus();
  if (key.empty()) {
    std::string_view type = "unknown_types.policy";
    for (const IdPolicy& p : cfg.types)
      if (p.hashed) { type = p.name; break; }
    return absl::InvalidArgumentError(Cat("config: identifier type ", type, " is stored hashed (\"hashed\": true): "
                                          "open the engine with the key (cdp_engine_open_keyed)"));
  }
  if (!hashed)
    return absl::InvalidArgumentError("key: given, but the config stores no identifier type hashed "
                                      "(\"hashed\": true in a type's policy)");
  if (key.size() < 16) return absl::InvalidArgumentError(Cat("key: ", key.size(), " bytes; at least 16 are needed"));
  return absl::OkStatus();
}

namespace {

constexpr std::string_view kKeyCheckFile = "key_check";

// What key_check holds: a keyed hash of a fixed text, which tells keys apart without
// revealing anything of the key.
std::string KeyCheck(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  const Digest d = KeyedHash(key, {"cdpcore key check"});
  std::string out = "cdpcore key check 1 ";
  for (size_t i = 0; i < 16; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  out += '\n';
  return out;
}

}  // namespace

absl::Status CheckDirKey(const std::string& dir, std::string_view key, bool& new_key) {
  new_key = false;
  auto stored = ReadFile(Join(dir, kKeyCheckFile));
  if (!stored.ok() && !absl::IsNotFound(stored.status())) return stored.status();
  if (key.empty()) {
    if (stored.ok())
      return absl::InvalidArgumentError(Cat("key: the directory ", dir, " stores identifiers hashed under a key; "
                                            "open it with that key (cdp_engine_open_keyed)"));
    return absl::OkStatus();
  }
  if (!stored.ok()) {
    new_key = true;
    return absl::OkStatus();
  }
  if (*stored != KeyCheck(key))
    return absl::InvalidArgumentError(Cat("key: not the key the directory ", dir, " was created with (its ",
                                          kKeyCheckFile, " differs); values hashed under two keys never match"));
  return absl::OkStatus();
}

absl::Status WriteDirKey(const std::string& dir, std::string_view key) {
  return WriteFileAtomic(dir, kKeyCheckFile, KeyCheck(key));
}

// The log form of a parsed batch: everything ApplyBatch reads, in the order below. Types
// and sources go by name (a batch may have registered them while parsing; replay
// registers them again, in the same order); the malformed lines' messages are reports,
// not state, and are left out.
// A field added to Record or FieldIn must be added here too (or replay would lose it):
// these sizes fail the build as a reminder.
static_assert(sizeof(Record) == 80 && sizeof(FieldIn) == 32, "update EncodeBatch and DecodeBatch");

std::string Engine::EncodeBatch(const Ingested& in) const {
  const Batch& b = in.batch;
  snap::Writer w;
  w.Part("batch 1");
  w.U32(in.total_lines);
  w.U32(b.lines);
  w.U32(b.rejected);
  w.U64(b.ids_accepted);
  w.U32(static_cast<uint32_t>(Rejection::kCount_));
  for (uint64_t c : b.ids_rejected) w.U64(c);
  w.U64(b.unknown_types.size());
  for (const auto& [name, count] : b.unknown_types) {
    w.Str(name);
    w.U64(count);
  }
  // Types in the order the batch first names them, sources likewise: local numbers.
  std::vector<uint32_t> types, sources;
  auto local = [](std::vector<uint32_t>& v, uint32_t x) {
    auto it = std::find(v.begin(), v.end(), x);
    if (it != v.end()) return static_cast<uint32_t>(it - v.begin());
    v.push_back(x);
    return static_cast<uint32_t>(v.size() - 1);
  };
  std::vector<uint32_t> id_types(b.ids.size()), rec_sources(b.records.size()), rv_types(b.rejected_values.size());
  for (size_t i = 0; i < b.ids.size(); ++i) id_types[i] = local(types, b.ids[i].type);
  for (size_t i = 0; i < b.rejected_values.size(); ++i) rv_types[i] = local(types, b.rejected_values[i].type);
  for (size_t i = 0; i < b.records.size(); ++i) rec_sources[i] = local(sources, b.records[i].source);
  w.U64(types.size());
  for (uint32_t t : types) w.Str(cfg_.types[t].name);
  w.U64(sources.size());
  for (uint32_t s : sources) w.Str(impl_->sources.Name(s));
  w.Str(b.arena);
  w.Str(b.kept);
  w.U64(b.ids.size());
  for (size_t i = 0; i < b.ids.size(); ++i) {
    w.U32(id_types[i]);
    w.U32(b.ids[i].value_off);
    w.U32(b.ids[i].value_len);
  }
  w.U64(b.fields.size());
  for (const FieldIn& f : b.fields) {
    w.U32(f.name_off);
    w.U32(f.name_len);
    w.U8(static_cast<uint8_t>(f.kind));
    w.U32(f.str_off);
    w.U32(f.str_len);
    w.I64(f.bits);
  }
  w.U64(b.list_items.size());
  for (const auto& [off, len] : b.list_items) {
    w.U32(off);
    w.U32(len);
  }
  w.U64(b.records.size());
  for (size_t i = 0; i < b.records.size(); ++i) {
    const Record& r = b.records[i];
    w.I64(r.ts);
    w.U32(r.line);
    w.U32(rec_sources[i]);
    w.U32(r.ids_begin);
    w.U32(r.ids_count);
    w.U32(r.attrs_begin);
    w.U32(r.attrs_count);
    w.U32(r.props_begin);
    w.U32(r.props_count);
    w.U32(r.consent_begin);
    w.U32(r.consent_count);
    w.U32(r.event_type_off);
    w.U32(r.event_type_len);
    w.I64(r.amount_fen);
    w.Bool(r.has_amount);
  }
  w.U64(b.rejected_values.size());
  for (size_t i = 0; i < b.rejected_values.size(); ++i) {
    const Batch::RejectedValue& v = b.rejected_values[i];
    w.U32(rv_types[i]);
    w.U8(static_cast<uint8_t>(v.reason));
    w.U32(v.line);
    w.I64(v.ts);
    w.Str(v.value);
  }
  return std::move(w.bytes());
}

// Decodes what EncodeBatch wrote, checking every count and offset against what it
// indexes: a logged batch passed its checksum, but a bad one must not crash the open.
absl::Status Engine::DecodeBatch(std::string_view payload, Ingested& in) {
  Batch& b = in.batch;
  snap::Reader r(payload);
  r.Part("batch 1");
  in.total_lines = r.U32();
  b.lines = r.U32();
  b.rejected = r.U32();
  b.ids_accepted = r.U64();
  if (r.U32() != static_cast<uint32_t>(Rejection::kCount_) && r.ok()) r.Fail("a different number of rejection reasons");
  for (uint64_t& c : b.ids_rejected) c = r.U64();
  for (uint64_t n = r.Count(16); n-- && r.ok();) {
    std::string name(r.Str());
    b.unknown_types.emplace_back(std::move(name), r.U64());
  }
  std::vector<uint32_t> types, sources;
  for (uint64_t n = r.Count(8); n-- && r.ok();) {
    std::string_view name = r.Str();
    const int t = r.ok() ? impl_->parser->TypeId(name) : -1;
    if (t < 0 && r.ok()) r.Fail(Cat("identifier type ", name, " is unknown and not accepted"));
    types.push_back(static_cast<uint32_t>(t));
  }
  for (uint64_t n = r.Count(8); n-- && r.ok();) sources.push_back(impl_->sources.Intern(r.Str()));
  b.arena.assign(r.Str());
  b.kept.assign(r.Str());
  auto check = [&](bool in_range, const char* what) {
    if (!in_range && r.ok()) r.Fail(Cat("a ", what, " out of range"));
    return r.ok();
  };
  auto span_ok = [](uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; };
  for (uint64_t n = r.Count(12); n-- && r.ok();) {
    RecordId id;
    const uint32_t t = r.U32();
    id.value_off = r.U32();
    id.value_len = r.U32();
    if (!check(t < types.size() && span_ok(id.value_off, id.value_len, b.arena.size()), "identifier")) break;
    id.type = types[t];
    b.ids.push_back(id);
  }
  std::vector<FieldIn> fields;
  for (uint64_t n = r.Count(25); n-- && r.ok();) {
    FieldIn f;
    f.name_off = r.U32();
    f.name_len = r.U32();
    const uint8_t kind = r.U8();
    f.kind = static_cast<ValueKind>(kind);
    f.str_off = r.U32();
    f.str_len = r.U32();
    f.bits = r.I64();
    fields.push_back(f);
  }
  for (uint64_t n = r.Count(8); n-- && r.ok();) {
    const uint32_t off = r.U32(), len = r.U32();
    if (!check(span_ok(off, len, b.kept.size()), "list item")) break;
    b.list_items.emplace_back(off, len);
  }
  for (const FieldIn& f : fields) {
    const bool list = f.kind == ValueKind::kList;
    if (!check(static_cast<uint8_t>(f.kind) <= static_cast<uint8_t>(ValueKind::kList) &&
                   span_ok(f.name_off, f.name_len, b.kept.size()) &&
                   (list ? span_ok(f.str_off, f.str_len, b.list_items.size())
                         : f.kind != ValueKind::kString || span_ok(f.str_off, f.str_len, b.kept.size())),
               "field"))
      break;
  }
  b.fields = std::move(fields);
  for (uint64_t n = r.Count(65); n-- && r.ok();) {
    Record x;
    x.ts = r.I64();
    x.line = r.U32();
    const uint32_t s = r.U32();
    x.ids_begin = r.U32();
    x.ids_count = r.U32();
    x.attrs_begin = r.U32();
    x.attrs_count = r.U32();
    x.props_begin = r.U32();
    x.props_count = r.U32();
    x.consent_begin = r.U32();
    x.consent_count = r.U32();
    x.event_type_off = r.U32();
    x.event_type_len = r.U32();
    x.amount_fen = r.I64();
    x.has_amount = r.Bool();
    if (!check(s < sources.size() && x.line >= 1 && x.line <= in.total_lines &&
                   span_ok(x.ids_begin, x.ids_count, b.ids.size()) &&
                   span_ok(x.attrs_begin, x.attrs_count, b.fields.size()) &&
                   span_ok(x.props_begin, x.props_count, b.fields.size()) &&
                   span_ok(x.consent_begin, x.consent_count, b.fields.size()) &&
                   span_ok(x.event_type_off, x.event_type_len, b.kept.size()),
               "record"))
      break;
    x.source = sources[s];
    b.records.push_back(x);
  }
  for (uint64_t n = r.Count(25); n-- && r.ok();) {
    Batch::RejectedValue v;
    const uint32_t t = r.U32();
    const uint8_t reason = r.U8();
    v.line = r.U32();
    v.ts = r.I64();
    v.value.assign(r.Str());
    if (!check(t < types.size() && reason < static_cast<uint8_t>(Rejection::kCount_), "rejected value")) break;
    v.type = types[t];
    v.reason = static_cast<Rejection>(reason);
    b.rejected_values.push_back(std::move(v));
  }
  if (r.ok() && !r.done()) r.Fail("bytes after the batch");
  return r.status();
}

}  // namespace cdp
