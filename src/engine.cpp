#include "cdp/engine.hpp"

#include <algorithm>
#include <exception>
#include <numeric>

#include "absl/status/status.h"
#include "cdp/expr.hpp"
#include "engine_internal.hpp"
#include "json_util.hpp"
#include "keyed_hash.hpp"
#include "record_parser.hpp"
#include "simdjson.h"
#include "util.hpp"
#include "snapshot.hpp"
#include "wal.hpp"

namespace cdp {

namespace {

const char* LogKindName(uint16_t k) {
  switch (static_cast<LogKind>(k)) {
    case LogKind::kIngest: return "ingest";
    case LogKind::kRecord: return "record";
    case LogKind::kRemoveIdentifier: return "identifier remove";
    case LogKind::kRemoveSource: return "source remove";
    case LogKind::kSplit: return "split";
    case LogKind::kAddRule: return "rule add";
    case LogKind::kRemoveRule: return "rule remove";
    case LogKind::kTrimFeed: return "feed trim";
    case LogKind::kDefineTags: return "tags define";
    case LogKind::kDropTag: return "tag drop";
    case LogKind::kAdvance: return "advance";
    case LogKind::kSaveAudience: return "audience save";
    case LogKind::kDropAudience: return "audience drop";
    case LogKind::kRecountAudience: return "audience recount";
    case LogKind::kDefineLifecycle: return "lifecycle define";
    case LogKind::kDropLifecycle: return "lifecycle drop";
    case LogKind::kLifecycleApply: return "lifecycle apply";
    case LogKind::kAckIntents: return "intents ack";
    case LogKind::kForget: return "forget";
    case LogKind::kIngestHashed: return "ingest (hashed)";
  }
  return "unknown";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(std::string_view config_json) {
  return OpenMemory(config_json, /*definitions=*/true);
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::OpenMemory(std::string_view config_json, bool definitions,
                                                           std::string_view key) {
  auto cfg = ParseConfig(config_json);
  if (!cfg.ok()) return cfg.status();
  if (auto st = CheckKey(*cfg, key); !st.ok()) return st;
  std::unique_ptr<Engine> e(new Engine());
  e->cfg_ = std::move(*cfg);
  e->impl_ = std::make_unique<Impl>();
  e->impl_->key.assign(key);
  e->impl_->parser = std::make_unique<RecordParser>(e->cfg_, e->impl_->sources, key);
  e->graph_ = std::make_unique<IdentityGraph>(e->cfg_, e->feed_);
  e->impl_->sources.Intern("manual");  // source 0: manual rules
  e->profiles_ = std::make_unique<ProfileStore>(e->cfg_, *e->graph_, e->impl_->sources);
  const Limits& l = e->cfg_.limits;
  e->expr_limits_ = ExprLimits{l.max_expr_bytes, l.max_expr_nodes, l.max_expr_depth, l.max_expr_steps,
                               l.max_expr_list};
  if (auto st = e->OpenLayers(definitions); !st.ok()) return st;
  return e;
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(std::string_view config_json, std::string_view dir) {
  return Open(config_json, dir, {});
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(std::string_view config_json, std::string_view dir,
                                                     std::string_view key) {
  if (dir.empty()) return OpenMemory(config_json, /*definitions=*/true, key);
  auto data_dir = DataDir::Open(dir, config_json);
  if (!data_dir.ok()) return data_dir.status();
  const std::string& path = (*data_dir)->path();
  bool new_key = false;
  if (auto st = CheckDirKey(path, key, new_key); !st.ok()) return st;
  // The newest snapshot that reads back whole; an unreadable one is reported and the one
  // before it, with a longer replay, takes its place (nothing acknowledged is lost while
  // the log reaches back to it: Snapshot() keeps the log from the older of two snapshots).
  std::unique_ptr<Engine> e;
  uint64_t from_seq = 0;
  std::vector<std::pair<std::string, std::string>> skipped;
  auto snapshots = snap::List(path);
  if (!snapshots.ok()) return snapshots.status();
  for (const snap::SnapshotFile& f : *snapshots) {
    auto loaded = snap::Read(path, f);
    absl::Status st = loaded.status();
    if (st.ok()) {
      auto fresh = OpenMemory((*data_dir)->config(), /*definitions=*/false, key);
      if (!fresh.ok()) return fresh.status();
      snap::Reader r(loaded->body, loaded->format);
      st = (*fresh)->LoadState(r);
      if (st.ok()) {
        e = std::move(*fresh);
        from_seq = f.seq;
        e->impl_->snapshot_loaded = f.name;
        break;
      }
    }
    if (absl::IsUnavailable(st)) return st;  // an OS error, not a bad file
    skipped.emplace_back(f.name, std::string(st.message()));
  }
  if (!e) {
    auto opened = OpenMemory((*data_dir)->config(), /*definitions=*/true, key);
    if (!opened.ok()) return opened.status();
    e = std::move(*opened);
  }
  // Replay runs before the log is attached, so the write methods it calls cannot log
  // again.
  WalRecovery recovery;
  auto wal = Wal::Open(path, e->cfg_.sync, from_seq,
                       [&](const WalEntry& x) { return e->Replay(x.kind, x.seq, x.payload); }, recovery);
  if (!wal.ok()) {
    if (skipped.empty()) return wal.status();
    return absl::Status(wal.status().code(), Cat(wal.status().message(), " (after skipping snapshot ", skipped[0].first,
                                                 ": ", skipped[0].second, ")"));
  }
  // The key's check value is stored once the directory has proven to open under it.
  if (new_key)
    if (auto st = WriteDirKey(path, key); !st.ok()) return st;
  e->impl_->dir = std::move(*data_dir);
  e->impl_->wal = std::move(*wal);
  e->impl_->recovery = std::move(recovery);
  e->impl_->snapshots_skipped = std::move(skipped);
  e->impl_->log_at_snapshot = e->impl_->wal->bytes();
  // An erasure a crash interrupted is finished now, before anything else can read the
  // directory: the files older than an erasure's snapshot are removed, and an erasure
  // the log holds after the last snapshot gets its snapshot. Failing to is reported in
  // the stats and retried by the next snapshot; the state itself is whole either way.
  std::vector<std::string> removed;
  if (e->impl_->snapshot_erasure)
    if (auto st = e->RemoveOlder(from_seq, removed); !st.ok()) e->impl_->snapshot_failed = st;
  if (e->impl_->erasure_pending) e->impl_->snapshot_failed = e->Snapshot().status();
  return e;
}


// --- durability -----------------------------------------------------------------------

absl::Status Engine::Writable() {
  if (!impl_->failed.ok()) return impl_->failed;
  if (impl_->snapshot_due) {
    // A failed snapshot loses nothing (the log still holds every write): it is reported
    // in the stats and tried again after the next threshold's worth of log.
    impl_->snapshot_due = false;
    auto taken = Snapshot();
    impl_->snapshot_failed = taken.status();
    if (!taken.ok()) impl_->log_at_snapshot = impl_->wal->bytes();
  }
  return impl_->failed;
}

absl::Status Engine::Log(uint16_t kind, std::initializer_list<std::string_view> fields) {
  if (!impl_->wal) return absl::OkStatus();
  absl::Status st = impl_->wal->Append(kind, fields);
  if (st.ok()) {
    const uint64_t bytes = impl_->wal->bytes();
    if (cfg_.snapshot_log_bytes && bytes > impl_->log_at_snapshot &&
        bytes - impl_->log_at_snapshot >= cfg_.snapshot_log_bytes)
      impl_->snapshot_due = true;
    return st;
  }
  // The write is applied in memory but not durable; like SQLite after an I/O error, the
  // engine stops writing rather than log later writes on top of a state the log lacks.
  impl_->failed = absl::UnavailableError(
      Cat("write-ahead log: ", st.message(), "; the last write is in memory but not durable, and this engine "
          "refuses further writes: close it and reopen the directory"));
  return impl_->failed;
}

absl::Status Engine::LogBatch(LogKind kind, std::string_view text, std::string_view hashed) {
  return impl_->key.empty() ? Log(K(kind), {text}) : Log(K(LogKind::kIngestHashed), {hashed});
}

absl::Status Engine::Replay(uint16_t kind, uint64_t seq, std::string_view payload) {
  std::vector<std::string_view> f;
  const size_t want = [&]() -> size_t {
    switch (static_cast<LogKind>(kind)) {
      case LogKind::kIngest: case LogKind::kRecord: case LogKind::kRemoveSource: case LogKind::kRemoveRule:
      case LogKind::kTrimFeed: case LogKind::kDefineTags: case LogKind::kDropTag: case LogKind::kAdvance:
      case LogKind::kDropAudience: case LogKind::kRecountAudience: case LogKind::kDefineLifecycle:
      case LogKind::kAckIntents: case LogKind::kForget: case LogKind::kIngestHashed: return 1;
      case LogKind::kRemoveIdentifier: case LogKind::kSplit: case LogKind::kSaveAudience:
      case LogKind::kDropLifecycle: case LogKind::kLifecycleApply: return 2;
      case LogKind::kAddRule: return 6;
    }
    return 0;
  }();
  if (want == 0)
    return absl::UnimplementedError(Cat("write-ahead log entry ", seq, " has kind ", kind,
                                        ", which this library version does not know"));
  uint64_t n = 0;
  const bool has_u64 = static_cast<LogKind>(kind) == LogKind::kSplit ||
                       static_cast<LogKind>(kind) == LogKind::kRemoveRule ||
                       static_cast<LogKind>(kind) == LogKind::kTrimFeed ||
                       static_cast<LogKind>(kind) == LogKind::kAdvance;
  const bool has_u64_last = static_cast<LogKind>(kind) == LogKind::kLifecycleApply;
  if (!SplitWalFields(payload, f) || f.size() != want || (has_u64 && !WalU64::Parse(f[0], n)) ||
      (has_u64_last && !WalU64::Parse(f[1], n)))
    return absl::DataLossError(Cat("write-ahead log entry ", seq, " (", LogKindName(kind), ") is malformed"));
  // Each write ends as it ended when it was logged; only ingesting a malformed record and
  // a refused rule were logged with an error (they change the state all the same).
  absl::Status st;
  bool may_fail = false;
  switch (static_cast<LogKind>(kind)) {
    case LogKind::kIngest: st = IngestBatch(f[0]).status(); break;
    case LogKind::kIngestHashed: {
      Ingested in;
      if (st = DecodeBatch(f[0], in); st.ok()) ApplyBatch(std::move(in));
      break;
    }
    case LogKind::kRecord: st = IngestRecord(f[0]).status(); may_fail = true; break;
    case LogKind::kRemoveIdentifier: st = RemoveIdentifier(f[0], f[1]).status(); break;
    case LogKind::kRemoveSource: st = RemoveSource(f[0]).status(); break;
    case LogKind::kSplit: st = Split(n, f[1]).status(); break;
    case LogKind::kAddRule: st = AddRule(f[0], f[1], f[2], f[3], f[4], f[5]).status(); may_fail = true; break;
    case LogKind::kRemoveRule: st = RemoveRule(n).status(); break;
    case LogKind::kTrimFeed: st = TrimFeed(n); break;
    case LogKind::kDefineTags: st = DefineTags(f[0]).status(); break;
    case LogKind::kDropTag: st = DropTag(f[0]); break;
    case LogKind::kAdvance: st = Advance(static_cast<int64_t>(n)).status(); break;
    case LogKind::kSaveAudience: st = SaveAudience(f[0], f[1], /*strict=*/false).status(); break;
    case LogKind::kDropAudience: st = DropAudience(f[0]); break;
    case LogKind::kRecountAudience: st = RecountAudience(f[0]).status(); break;
    case LogKind::kDefineLifecycle: st = DefineLifecycle(f[0]).status(); break;
    case LogKind::kDropLifecycle: st = DropLifecycle(f[0], f[1]); break;
    case LogKind::kLifecycleApply: st = LifecycleApply(f[0], static_cast<int64_t>(n)).status(); break;
    case LogKind::kAckIntents: st = AckIntents(f[0]).status(); break;
    case LogKind::kForget: st = Forget(f[0]).status(); break;
  }
  if (absl::IsDataLoss(st)) return st;  // a logged batch that does not decode
  if (st.ok() || (may_fail && (absl::IsInvalidArgument(st) || absl::IsFailedPrecondition(st))))
    return absl::OkStatus();
  return absl::InternalError(Cat("replaying write-ahead log entry ", seq, " (", LogKindName(kind), "): ",
                                 st.message(), "; the log does not reproduce the state it recorded (a bug: "
                                 "please report it)"));
}

// --- display --------------------------------------------------------------------------

std::string Engine::Display(NodeId n, bool mask) const {
  const Node& x = graph_->node(n);
  const IdPolicy& p = cfg_.types[x.type];
  return Cat(p.name, ":", ShowValue(p, graph_->Value(n), mask));
}

void WriteRule(json::Writer& w, const Engine& e, const ManualRule& r) {
  w.BeginObject();
  w.Key("id").Uint(r.id);
  w.Key("kind").String(r.never ? "never_link" : "force_link");
  w.Key("a").String(e.Display(r.a, false));
  w.Key("b").String(e.Display(r.b, false));
  w.Key("note").String(r.note);
  w.EndObject();
}

void WriteLink(json::Writer& w, const Engine& e, const Link& l, const NameTable& sources) {
  w.BeginObject();
  w.Key("from").String(e.Display(l.a, false));
  w.Key("to").String(e.Display(l.b, false));
  w.Key("rule").String(LinkRuleName(l.rule));
  w.Key("source").String(l.source < sources.size() ? sources.Name(l.source) : "");
  w.Key("record").Uint(l.record);
  w.Key("ts").Int(l.ts);
  w.Key("count").Uint(l.count);
  w.EndObject();
}

// --- ingestion ------------------------------------------------------------------------

namespace {

// Physical lines of an NDJSON batch: what line numbers and per-line results count.
uint32_t CountLines(std::string_view data) {
  return static_cast<uint32_t>(std::count(data.begin(), data.end(), '\n') +
                               (!data.empty() && data.back() != '\n'));
}

}  // namespace

absl::Status Engine::CheckBatchSize(std::string_view data) const {
  if (data.size() <= cfg_.limits.max_batch_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(Cat("batch of ", data.size(), " bytes is over limits.max_batch_bytes (",
                                          cfg_.limits.max_batch_bytes, "); split it"));
}

absl::StatusOr<Engine::Ingested> Engine::IngestBatch(std::string_view data, std::string* logged) {
  if (auto st = CheckBatchSize(data); !st.ok()) return st;
  Ingested in;
  impl_->parser->ParseNdjson(data, in.batch);
  in.total_lines = CountLines(data);
  if (logged && !impl_->key.empty()) *logged = EncodeBatch(in);
  return ApplyBatch(std::move(in));
}

Engine::Ingested Engine::ApplyBatch(Ingested in) {
  Batch& b = in.batch;
  DropForgotten(b);
  const uint64_t base = in.base = impl_->records;
  impl_->records += in.total_lines;
  in.feed_from = feed_.next();

  // Order independence: identifiers inside a record by (type, value), records by (time,
  // content key), exact content as the last tie-break. The line number never decides.
  auto& recs = b.records;
  const std::vector<uint32_t>& rank = cfg_.name_rank;
  for (Record& r : recs) {
    auto* first = b.ids.data() + r.ids_begin;
    std::sort(first, first + r.ids_count, [&](const RecordId& x, const RecordId& y) {
      if (x.type != y.type) return rank[x.type] < rank[y.type];
      return b.Value(x) < b.Value(y);
    });
    // The content key: source and identifiers, each hashed once (seeded by the type's
    // name rank) and combined in their sorted order.
    const std::string& src = impl_->sources.Name(r.source);
    uint64_t key = XXH3_64bits(src.data(), src.size());
    for (uint32_t k = 0; k < r.ids_count; ++k) {
      const RecordId& id = first[k];
      key = (key ^ XXH3_64bits_withSeed(b.arena.data() + id.value_off, id.value_len, rank[id.type])) *
            0x9E3779B97F4A7C15ull;
    }
    r.key = key;
  }
  std::vector<uint32_t> order(recs.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t i, uint32_t j) {
    const Record& x = recs[i];
    const Record& y = recs[j];
    if (x.ts != y.ts) return x.ts < y.ts;
    if (x.key != y.key) return x.key < y.key;
    // Same time and hash: compare content (identical records may go in any order).
    if (x.source != y.source) return impl_->sources.Name(x.source) < impl_->sources.Name(y.source);
    if (x.ids_count != y.ids_count) return x.ids_count < y.ids_count;
    for (uint32_t k = 0; k < x.ids_count; ++k) {
      std::string_view a = b.Value(b.ids[x.ids_begin + k]), c = b.Value(b.ids[y.ids_begin + k]);
      if (a != c) return a < c;
    }
    return false;
  });

  // Link in order, prefetching the index slots of the record kAhead places on, so its
  // lookups overlap this record's work. (Looking the nodes up ahead as well measured no
  // better: the lookup itself waits on the node and its string.)
  LinkStats& st = in.stats;
  std::vector<NodeId>& nodes = in.nodes;
  nodes.assign(b.ids.size(), kNoNode);
  constexpr size_t kAhead = 16;
  for (size_t i = 0; i < order.size(); ++i) {
    if (i + kAhead < order.size()) graph_->Prefetch(b, recs[order[i + kAhead]]);
    const Record& r = recs[order[i]];
    graph_->AddRecord(b, r, base + r.line, st, nodes.data() + r.ids_begin);
  }
  // Profiles: first move the facts of persons that merged or split, then file each record
  // on the person it belongs to now (the same answer cdp_records_resolve gives).
  SyncProfiles(in.feed_from);
  // The lifecycle takes each record as soon as it is filed, so guards read the profile as
  // it stood at that record (no later record of the batch), whatever the batch size.
  const bool life = !life_->empty();
  for (uint32_t i : order) {
    uint64_t oneid = profiles_->AddRecord(b, recs[i], nodes.data() + recs[i].ids_begin);
    if (life && oneid != 0) FeedLifecycle(b, recs[i], oneid);
  }
  profiles_->Flush();
  for (const Record& r : recs)
    if (newest_record_ == kNoTime || r.ts > newest_record_) newest_record_ = r.ts;
  UpdateTags();
  if (life) SyncStates();
  impl_->accepted += recs.size();
  impl_->rejected += b.rejected;

  // Rejected identifier values go to the feed once per (type, value, reason) per batch.
  {
    std::sort(b.rejected_values.begin(), b.rejected_values.end(), [](const auto& x, const auto& y) {
      return std::tie(x.type, x.reason, x.value, x.line) < std::tie(y.type, y.reason, y.value, y.line);
    });
    for (size_t i = 0; i < b.rejected_values.size();) {
      size_t j = i;
      while (j < b.rejected_values.size() && b.rejected_values[j].type == b.rejected_values[i].type &&
             b.rejected_values[j].reason == b.rejected_values[i].reason &&
             b.rejected_values[j].value == b.rejected_values[i].value)
        ++j;
      const auto& rv = b.rejected_values[i];
      FeedEvent& e = feed_.Append(FeedEvent::Kind::kIdRejected);
      e.text = feed_.AddText(Cat(cfg_.types[rv.type].name, ":", rv.value));
      e.reason = static_cast<uint8_t>(rv.reason);
      e.count = static_cast<uint32_t>(j - i);
      e.record = base + rv.line;  // the first record that carried it, and its time
      e.ts = rv.ts;
      i = j;
    }
  }

  return in;
}

void Engine::SyncProfiles(uint64_t feed_from, const std::vector<uint64_t>& extra) {
  std::vector<uint64_t> ids = extra;
  feed_.Read(feed_from, UINT32_MAX, [&](const FeedEvent& e) {
    using K = FeedEvent::Kind;
    switch (e.kind) {
      case K::kMerged: case K::kSplit: case K::kIdQuarantined: case K::kIdRemoved:
      case K::kRuleAdded: case K::kRuleRemoved:
        ids.push_back(e.a);
        ids.push_back(e.b);
        break;
      default:
        break;
    }
  });
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  profiles_->Reconcile(ids);
  UpdateTags();
  // The lifecycle keeps state per OneID: merged persons' states join the survivor's.
  if (!life_->empty()) {
    std::vector<std::pair<uint64_t, uint64_t>> merged;  // read first: merging appends to the feed
    feed_.Read(feed_from, UINT32_MAX, [&](const FeedEvent& e) {
      if (e.kind == FeedEvent::Kind::kMerged) merged.emplace_back(e.a, e.b);
    });
    for (auto [survivor, absorbed] : merged) life_->OnMerge(survivor, absorbed, Now());
    SyncStates();
  }
}

// The report's counts of identifiers: accepted, rejected, and rejected by reason.
void Engine::WriteIdCounts(json::Writer& w, const Ingested& in) {
  const Batch& b = in.batch;
  uint64_t rejected = in.stats.ids_quarantined_skipped;
  for (uint64_t c : b.ids_rejected) rejected += c;
  w.Key("ids").BeginObject();
  w.Key("accepted").Uint(b.ids_accepted);
  w.Key("rejected").Uint(rejected);
  w.Key("by_reason").BeginObject();
  for (size_t i = 0; i < static_cast<size_t>(Rejection::kCount_); ++i) {
    uint64_t c = b.ids_rejected[i];
    if (static_cast<Rejection>(i) == Rejection::kQuarantined) c += in.stats.ids_quarantined_skipped;
    if (c) w.Key(RejectionName(static_cast<Rejection>(i))).Uint(c);
  }
  w.EndObject();
  w.EndObject();
}

// The report's counts of what linking did, and the feed range it wrote.
void Engine::WriteLinkCounts(json::Writer& w, const Ingested& in) {
  w.Key("persons_created").Uint(in.stats.persons_created);
  w.Key("merges").Uint(in.stats.merges);
  w.Key("conflicts").Uint(in.stats.conflicts);
  w.Key("quarantined").Uint(in.stats.quarantined);
  w.Key("feed").BeginObject().Key("from").Uint(in.feed_from).Key("to").Uint(feed_.next()).EndObject();
}

absl::StatusOr<std::string> Engine::IngestNdjson(std::string_view data, bool assign) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  std::string hashed;  // the log's form of the batch when identifiers are hashed
  auto ingested = IngestBatch(data, &hashed);
  if (!ingested.ok()) return ingested.status();  // refused whole: nothing changed
  if (auto st = LogBatch(LogKind::kIngest, data, hashed); !st.ok()) return st;
  const Ingested& in = *ingested;
  const Batch& b = in.batch;
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("lines").Uint(b.lines);
  w.Key("accepted").Uint(b.records.size());
  w.Key("rejected").Uint(b.rejected);
  w.Key("record_base").Uint(in.base);
  w.Key("errors").BeginArray();
  for (const RecordError& e : b.errors) {
    w.BeginObject();
    w.Key("line").Uint(e.line);
    w.Key("column").Uint(e.column);
    w.Key("field").String(e.field);
    w.Key("message").String(e.message);
    w.EndObject();
  }
  w.EndArray();
  w.Key("errors_truncated").Bool(b.errors.size() < b.rejected);
  WriteIdCounts(w, in);
  w.Key("unknown_types").BeginObject();
  for (const auto& [name, count] : b.unknown_types) w.Key(name).Uint(count);
  w.EndObject();
  WriteLinkCounts(w, in);
  if (assign) {
    w.Key("assign");
    WriteOneIdsPerLine(w, b, in.total_lines, in.nodes.data());
  }
  w.EndObject();
  return out;
}

// One OneID per physical line: where each record belongs now (0: blank, rejected, or no
// live identifier). The same rule serves CDP_INGEST_ASSIGN and re-resolution later.
void Engine::WriteOneIdsPerLine(json::Writer& w, const Batch& b, uint32_t total_lines,
                                const NodeId* nodes) {
  std::vector<uint64_t> per_line(total_lines + 1, 0);
  for (const Record& r : b.records) {
    NodeId n = nodes ? graph_->RecordAnchor(nodes + r.ids_begin, r.ids_count) : graph_->RecordAnchor(b, r);
    if (n != kNoNode) per_line[r.line] = graph_->OneIdOf(n);
  }
  w.BeginArray();
  for (uint32_t line = 1; line <= total_lines; ++line) w.Uint(per_line[line]);
  w.EndArray();
}

absl::StatusOr<std::string> Engine::ResolveNdjson(std::string_view data) {
  if (auto st = CheckBatchSize(data); !st.ok()) return st;
  Batch b;
  impl_->parser->ParseNdjson(data, b, /*read_only=*/true);
  const uint32_t total_lines = CountLines(data);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("lines").Uint(b.lines);
  w.Key("rejected").Uint(b.rejected);
  w.Key("oneids");
  WriteOneIdsPerLine(w, b, total_lines, nullptr);
  w.EndObject();
  return out;
}

absl::StatusOr<std::string> Engine::IngestRecord(std::string_view json) {
  // One record goes through the batch path, so both behave identically. A pretty-printed
  // record is one record: line breaks between tokens become spaces (inside a string a raw
  // line break stays, and is the error it is).
  std::string line(json);
  bool in_string = false, escaped = false;
  for (char& c : line) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  if (line.find_first_not_of(" \t") == std::string::npos)
    return absl::InvalidArgumentError("record: empty");
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  std::string hashed;
  auto ingested = IngestBatch(line, &hashed);
  if (!ingested.ok()) return ingested.status();
  // Logged even when the record is malformed: it still took a record id and counts as
  // rejected, and replay must do the same.
  if (auto st = LogBatch(LogKind::kRecord, json, hashed); !st.ok()) return st;
  const Ingested& in = *ingested;
  if (in.batch.rejected) {
    const RecordError& e = in.batch.errors.front();
    return absl::InvalidArgumentError(Cat("record, column ", e.column,
                                          e.field.empty() ? "" : ", field " + e.field, ": ", e.message));
  }
  const Record& r = in.batch.records.front();
  NodeId anchor = graph_->RecordAnchor(in.nodes.data() + r.ids_begin, r.ids_count);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("oneid").Uint(anchor == kNoNode ? 0 : graph_->OneIdOf(anchor));
  w.Key("record").Uint(in.base + r.line);
  WriteIdCounts(w, in);
  WriteLinkCounts(w, in);
  w.EndObject();
  return out;
}

// --- queries ----------------------------------------------------------------------------

absl::StatusOr<Engine::Parsed> Engine::Normalized(std::string_view type, std::string_view value) const {
  int t = cfg_.FindType(type);
  if (t < 0) return absl::NotFoundError(Cat("unknown identifier type \"", type, "\""));
  Parsed p{static_cast<uint32_t>(t), {}};
  std::string_view v = value;
  const IdPolicy& pol = cfg_.types[t];
  if (pol.hashed && IsHashedValue(v)) {  // as unmasked outputs show it
    p.value.assign(v);
    return p;
  }
  std::string scope;
  if (!pol.scope.empty()) {  // scoped values are written scope/value
    size_t slash = v.find('/');
    if (slash == std::string_view::npos)
      return absl::InvalidArgumentError(Cat(type, " is scoped by \"", pol.scope, "\": write the value as SCOPE/VALUE"));
    scope = Cat(v.substr(0, slash), "/");
    v.remove_prefix(slash + 1);
  }
  Rejection why = NormalizeId(pol, cfg_.global_blocklist, v, p.value);
  if (why != Rejection::kCount_)
    return absl::InvalidArgumentError(Cat(type, " value is not usable (", RejectionName(why), ")"));
  p.value = scope + p.value;
  if (pol.hashed) p.value = HashIdentifier(impl_->key, pol, p.value);
  return p;
}

// An identifier's node, its value normalised first; NotFound when the type is unknown,
// the value does not normalise, or no record (or rule) has named it.
absl::StatusOr<NodeId> Engine::FindIdentifier(std::string_view type, std::string_view value) const {
  auto p = Normalized(type, value);
  if (!p.ok()) return absl::NotFoundError(p.status().message());
  NodeId n = graph_->Find(p->type, p->value);
  if (n == kNoNode)
    return absl::NotFoundError(Cat("unknown identifier ", type, ":", ShowValue(cfg_.types[p->type], p->value, false)));
  return n;
}

absl::StatusOr<uint64_t> Engine::Resolve(std::string_view type, std::string_view value) const {
  const IdentityGraph& g = *graph_;
  auto n = FindIdentifier(type, value);
  if (!n.ok()) return n.status();
  if (g.Quarantined(*n))
    return absl::NotFoundError(Cat(Display(*n, /*mask=*/false), " is quarantined and belongs to no person"));
  return g.OneIdOf(*n);
}

namespace {

void WritePersonBody(json::Writer& w, const Engine& e, NodeId anchor, bool mask) {
  const IdentityGraph& g = e.graph();
  NodeId root = g.Root(anchor);
  const Person& p = g.PersonAt(root);
  w.Key("oneid").Uint(p.oneid);
  w.Key("size").Uint(p.size);
  if (p.first_seen == kNeverSeen) w.Key("first_seen").Null();
  else w.Key("first_seen").Int(p.first_seen);
  w.Key("anchor").String(e.Display(p.anchor, mask));
  w.Key("identifiers").BeginArray();
  for (NodeId n : g.Members(root)) {
    const Node& x = g.node(n);
    const IdPolicy& pol = e.config().types[x.type];
    w.BeginObject();
    w.Key("type").String(pol.name);
    w.Key("value").String(ShowValue(pol, g.Value(n), mask));
    w.Key("trust").String(pol.trust == Trust::kWeak ? "weak" : "strong");
    if (x.first_seen == kNeverSeen) w.Key("first_seen").Null();
    else w.Key("first_seen").Int(x.first_seen);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

absl::StatusOr<std::string> Engine::PersonIdentifiers(uint64_t oneid, bool mask) const {
  return PersonDocument(oneid, mask, /*profile=*/false);
}

absl::StatusOr<std::string> Engine::PersonJson(uint64_t oneid, bool mask) const {
  return PersonDocument(oneid, mask, /*profile=*/true);
}

absl::StatusOr<std::string> Engine::PersonDocument(uint64_t oneid, bool mask, bool profile) const {
  NodeId anchor = graph_->PersonAnchor(oneid);
  if (anchor == kNoNode) return absl::NotFoundError(Cat("no person with OneID ", oneid));
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("requested").Uint(oneid);
  WritePersonBody(w, *this, anchor, mask);
  if (!profile) {
    w.EndObject();
    return out;
  }
  const ProfileStore& ps = *profiles_;
  const Profile* p = ps.Find(oneid);
  auto time_or_null = [&](int64_t t) -> json::Writer& { return t == kNoTime ? w.Null() : w.Int(t); };
  w.Key("last_seen");
  time_or_null(p ? p->last_seen : kNoTime);
  // Sorted by name, so the document does not depend on the order names were first seen.
  // Consent statements are attributes too (subject.hpp), shown apart by channel.
  std::vector<const AttrValue*> attrs;
  if (p)
    for (const AttrValue& a : p->attrs) attrs.push_back(&a);
  std::sort(attrs.begin(), attrs.end(), [&](const AttrValue* x, const AttrValue* y) {
    return ps.AttrName(x->attr) < ps.AttrName(y->attr);
  });
  auto is_consent = [&](const AttrValue* a) { return ps.AttrName(a->attr).starts_with(kConsentPrefix); };
  auto lineage = [&](const AttrValue* a) {
    w.Key("source").String(impl_->sources.Name(a->source));
    w.Key("ts").Int(a->ts);
  };
  w.Key("attributes").BeginObject();
  for (const AttrValue* a : attrs) {
    if (is_consent(a)) continue;
    w.Key(ps.AttrName(a->attr)).BeginObject();
    std::string v;
    AppendValueJson(v, ps.Load(a->value));
    w.Key("value").Raw(v);
    lineage(a);
    w.Key("rule").String(SurvivorshipName(ps.RuleOf(a->attr)));
    w.EndObject();
  }
  w.EndObject();
  w.Key("consent").BeginObject();
  for (const AttrValue* a : attrs) {
    if (!is_consent(a)) continue;
    w.Key(std::string_view(ps.AttrName(a->attr)).substr(kConsentPrefix.size())).BeginObject();
    w.Key("granted").Bool(ConsentGiven(ps.Load(a->value), false));
    lineage(a);
    w.EndObject();
  }
  w.EndObject();
  w.Key("events").BeginObject();
  if (p) {
    for (const auto& t : ps.Summarize(*p)) {
      w.Key(ps.EventTypeName(t.type)).BeginObject();
      w.Key("count").Uint(t.count);
      std::string amount;
      AppendValueJson(amount, Value::Money(t.amount));
      w.Key("amount").Raw(amount);
      w.Key("first").Int(t.first);
      w.Key("last").Int(t.last);
      w.EndObject();
    }
  }
  w.EndObject();
  std::string tag_values = "{}";
  if (int64_t slot = ps.SlotOf(oneid); slot >= 0) {
    tag_values.clear();
    tags_->AppendPersonTags(tag_values, static_cast<uint32_t>(slot));
  }
  w.Key("tags").Raw(tag_values);
  // The lifecycle: "history", "states", "loyalty", "journeys".
  out += ',';
  life_->AppendPerson(out, oneid);
  w.EndObject();
  return out;
}

absl::StatusOr<Expr> Engine::CompileExpr(std::string_view text, bool ast) {
  if (text.size() > expr_limits_.max_text_bytes)
    return absl::ResourceExhaustedError(Cat("expression of ", text.size(), " bytes is over limits.max_expr_bytes (",
                                            expr_limits_.max_text_bytes, ")"));
  return ast ? Expr::FromAst(text, *profiles_, expr_limits_) : Expr::Compile(text, *profiles_, expr_limits_);
}

absl::StatusOr<std::string> Engine::EvalExpr(const Expr& e, uint64_t oneid, int64_t now_ms, Evaluator& ev) const {
  if (!InTimeRange(now_ms)) return absl::InvalidArgumentError("eval: now is a time before 1970 or after 9999");
  uint64_t id = graph_->Canonical(oneid);
  if (id == 0) return absl::NotFoundError(Cat("no person with OneID ", oneid));
  int64_t slot = profiles_->SlotOf(id);
  ProfileView plain(*profiles_, nullptr, id);  // a person with identifiers only
  std::optional<TaggedView> tagged;
  if (slot >= 0) tagged.emplace(*tags_, static_cast<uint32_t>(slot));
  auto r = ev.Eval(e, tagged ? static_cast<const Subject&>(*tagged) : plain, now_ms);
  if (!r.ok()) return r.status();
  std::string out = "{\"value\":";
  AppendValueJson(out, r->value);
  out += Cat(",\"kind\":\"", ValueKindName(r->value.kind), "\",\"valid_until\":");
  out += r->valid_until == kForever ? std::string("null") : std::to_string(r->valid_until);
  out += "}";
  return out;
}

std::string Engine::PersonsPage(uint64_t cursor, uint32_t limit, bool mask) const {
  const IdentityGraph& g = *graph_;
  limit = std::clamp<uint32_t>(limit, 1, 10000);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("persons").BeginArray();
  uint64_t n = cursor, end = g.node_count();
  uint32_t listed = 0;
  for (; n < end && listed < limit; ++n) {
    const Node& x = g.node(static_cast<NodeId>(n));
    if (x.parent != n || x.summary == IdentityGraph::kNoSummary || !g.Live(static_cast<NodeId>(n))) continue;
    if (g.PersonAt(static_cast<NodeId>(n)).oneid == 0) continue;
    w.BeginObject();
    WritePersonBody(w, *this, static_cast<NodeId>(n), mask);
    w.EndObject();
    ++listed;
  }
  w.EndArray();
  w.Key("next").Uint(n < end ? n : 0);
  w.EndObject();
  return out;
}

absl::StatusOr<std::string> Engine::Explain(std::string_view ta, std::string_view va,
                                            std::string_view tb, std::string_view vb) const {
  const IdentityGraph& g = *graph_;
  NodeId ends[2];
  std::string_view types[2] = {ta, tb}, values[2] = {va, vb};
  for (int k = 0; k < 2; ++k) {
    auto n = FindIdentifier(types[k], values[k]);
    if (!n.ok()) return n.status();
    ends[k] = *n;
  }
  auto ex = g.Explain(ends[0], ends[1]);
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("linked").Bool(ex.linked);
  if (ex.linked) {
    w.Key("oneid").Uint(g.OneIdOf(ends[0]));
    w.Key("path").BeginArray();
    for (size_t i = 0; i < ex.path.size(); ++i) {
      const Link& l = g.link(ex.path[i]);
      // Orient each step along the path.
      Link step = l;
      if (l.a != ex.hops[i]) std::swap(step.a, step.b);
      WriteLink(w, *this, step, impl_->sources);
    }
    w.EndArray();
  } else {
    w.Key("oneids").BeginArray().Uint(g.OneIdOf(ends[0])).Uint(g.OneIdOf(ends[1])).EndArray();
    w.Key("kept_apart_by");
    if (ex.quarantined != kNoNode) {
      w.BeginObject().Key("reason").String("quarantined");
      w.Key("identifier").String(Display(ex.quarantined, false)).EndObject();
    } else if (ex.rule) {
      w.BeginObject().Key("reason").String("never_link").Key("rule").Uint(ex.rule->id);
      w.Key("a").String(Display(ex.rule->a, false)).Key("b").String(Display(ex.rule->b, false));
      w.Key("note").String(ex.rule->note).EndObject();
    } else if (ex.refused_link != IdentityGraph::kNoLink) {
      const Link& l = g.link(ex.refused_link);
      w.BeginObject().Key("reason").String(RefusalName(l.reason));
      if (l.reason == Refusal::kUniqueType || l.reason == Refusal::kTypeLimit) {
        const IdPolicy& p = cfg_.types[l.reason_type];
        w.Key("type").String(p.name).Key("max_per_person").Uint(p.max_per_person);
      }
      w.Key("evidence");
      WriteLink(w, *this, l, impl_->sources);
      w.EndObject();
    } else {
      w.Null();
    }
  }
  w.EndObject();
  return out;
}

// --- unmerge and rules ----------------------------------------------------------------------

namespace {

std::string OneIdsReport(const std::vector<uint64_t>& ids, uint64_t from, uint64_t to) {
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("oneids").BeginArray();
  for (uint64_t id : ids) w.Uint(id);
  w.EndArray();
  w.Key("feed").BeginObject().Key("from").Uint(from).Key("to").Uint(to).EndObject();
  w.EndObject();
  return out;
}

}  // namespace

absl::StatusOr<std::string> Engine::RemoveIdentifier(std::string_view type, std::string_view value) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  auto n = FindIdentifier(type, value);
  if (!n.ok()) return n.status();
  // A hashed type's value is logged in its stored form, the only one the engine keeps.
  const std::string stored = cfg_.types[graph_->node(*n).type].hashed ? std::string(graph_->Value(*n)) : "";
  uint64_t from = feed_.next();
  auto ids = graph_->RemoveIdentifier(*n);
  SyncProfiles(from, ids);
  if (auto st = Log(K(LogKind::kRemoveIdentifier), {type, stored.empty() ? value : stored}); !st.ok()) return st;
  return OneIdsReport(ids, from, feed_.next());
}

absl::StatusOr<std::string> Engine::RemoveSource(std::string_view source) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  int s = impl_->sources.Find(source);
  if (s < 0) return absl::NotFoundError(Cat("no evidence from source \"", source, "\""));
  uint64_t from = feed_.next();
  bool found = false;
  auto ids = graph_->RemoveSource(static_cast<uint32_t>(s), found);
  // A source may have filed facts without carrying any link (one identifier per record).
  found |= profiles_->DropSource(static_cast<uint32_t>(s));
  if (!found) return absl::NotFoundError(Cat("no evidence from source \"", source, "\""));
  SyncProfiles(from, ids);
  if (auto st = Log(K(LogKind::kRemoveSource), {source}); !st.ok()) return st;
  return OneIdsReport(ids, from, feed_.next());
}

absl::StatusOr<std::string> Engine::Split(uint64_t oneid, std::string_view idents_json) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  NodeId anchor = graph_->PersonAnchor(oneid);
  if (anchor == kNoNode) return absl::NotFoundError(Cat("no person with OneID ", oneid));
  json::Problem pr = json::Locate(idents_json);
  if (pr.found) return absl::InvalidArgumentError(Cat("identifiers: byte ", pr.offset, ": ", pr.message));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  simdjson::dom::array arr;
  if (parser.parse(idents_json.data(), idents_json.size()).get(doc) || doc.get(arr))
    return absl::InvalidArgumentError("identifiers: expected a JSON array of \"type:value\" strings");
  NodeId root = graph_->Root(anchor);
  std::vector<NodeId> side;
  size_t i = 0;
  for (auto el : arr) {
    std::string_view s;
    if (el.get(s)) return absl::InvalidArgumentError(Cat("identifiers[", i, "]: expected a \"type:value\" string"));
    size_t colon = s.find(':');
    if (colon == std::string_view::npos)
      return absl::InvalidArgumentError(Cat("identifiers[", i, "]: expected \"type:value\""));
    auto p = Normalized(s.substr(0, colon), s.substr(colon + 1));
    if (!p.ok()) return absl::InvalidArgumentError(Cat("identifiers[", i, "]: ", p.status().message()));
    NodeId n = graph_->Find(p->type, p->value);
    if (n == kNoNode || !graph_->Live(n) || graph_->Root(n) != root)
      return absl::InvalidArgumentError(Cat("identifiers[", i, "]: ", s, " is not an identifier of person ", oneid));
    if (std::find(side.begin(), side.end(), n) == side.end()) side.push_back(n);
    ++i;
  }
  if (side.empty() || side.size() >= graph_->PersonAt(root).size)
    return absl::InvalidArgumentError("identifiers: list some, but not all, of the person's identifiers");
  // With hashed types the log lists the identifiers in stored form, never as given.
  std::string logged;
  if (!impl_->key.empty()) {
    json::Writer w(logged);
    w.BeginArray();
    for (NodeId n : side) w.String(Cat(cfg_.types[graph_->node(n).type].name, ":", graph_->Value(n)));
    w.EndArray();
  }
  uint64_t from = feed_.next(), rule = 0;
  auto ids = graph_->Split(side, rule);
  SyncProfiles(from, ids);
  if (auto st = Log(K(LogKind::kSplit), {WalU64(oneid).view(), logged.empty() ? idents_json : logged}); !st.ok())
    return st;
  return OneIdsReport(ids, from, feed_.next());
}

absl::StatusOr<uint64_t> Engine::AddRule(std::string_view kind, std::string_view ta, std::string_view va,
                                         std::string_view tb, std::string_view vb, std::string_view note) {
  bool never;
  if (kind == "never_link") never = true;
  else if (kind == "force_link") never = false;
  else return absl::InvalidArgumentError(Cat("rule kind \"", kind, "\": expected force_link or never_link"));
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  std::string_view types[2] = {ta, tb}, values[2] = {va, vb};
  absl::StatusOr<Parsed> parsed[2];
  for (int k = 0; k < 2; ++k) {
    parsed[k] = Normalized(types[k], values[k]);
    if (!parsed[k].ok()) return absl::InvalidArgumentError(parsed[k].status().message());
    if (impl_->tombstones.Contains(cfg_.types[parsed[k]->type].name, parsed[k]->value))
      return absl::FailedPreconditionError(Cat(types[k], ": the identifier belongs to a person forgotten on request"));
  }
  // From here on the call changes the state even when it is refused (the identifiers
  // are interned), so it is logged whatever its outcome; replay refuses it the same way.
  auto outcome = [&]() -> absl::StatusOr<uint64_t> {
    NodeId ends[2];
    for (int k = 0; k < 2; ++k) {
      // Not seen in any record yet: first seen "never" until a record carries it.
      ends[k] = graph_->Intern(parsed[k]->type, parsed[k]->value, kNeverSeen, 0);
      if (graph_->Quarantined(ends[k]))
        return absl::InvalidArgumentError(Cat(Display(ends[k], /*mask=*/false), " is quarantined"));
    }
    if (ends[0] == ends[1]) return absl::InvalidArgumentError("a rule needs two different identifiers");
    uint64_t id = 0;
    std::vector<uint64_t> oneids;
    const uint64_t from = feed_.next();
    auto r = never ? graph_->AddNeverLink(ends[0], ends[1], std::string(note), id, oneids)
                   : graph_->AddForceLink(ends[0], ends[1], std::string(note), 0, id, oneids);
    if (r == IdentityGraph::RuleResult::kConflict)
      return absl::FailedPreconditionError(never ? "a force_link rule joins these identifiers; remove it first"
                                                 : "a never_link rule keeps these identifiers apart; remove it first");
    SyncProfiles(from, oneids);
    return id;
  }();
  // A hashed type's value is logged in stored form, the only one the engine keeps.
  auto logged = [&](int k) -> std::string_view {
    return cfg_.types[parsed[k]->type].hashed ? std::string_view(parsed[k]->value) : values[k];
  };
  if (auto st = Log(K(LogKind::kAddRule), {kind, ta, logged(0), tb, logged(1), note}); !st.ok()) return st;
  return outcome;
}

absl::StatusOr<std::string> Engine::RemoveRule(uint64_t id) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  uint64_t from = feed_.next();
  std::vector<uint64_t> ids;
  if (!graph_->RemoveRule(id, ids)) return absl::NotFoundError(Cat("no active rule ", id));
  SyncProfiles(from, ids);
  if (auto st = Log(K(LogKind::kRemoveRule), {WalU64(id).view()}); !st.ok()) return st;
  return OneIdsReport(ids, from, feed_.next());
}

std::string Engine::RulesJson() const {
  const IdentityGraph& g = *graph_;
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("rules").BeginArray();
  for (const ManualRule& r : g.rules()) {
    if (!r.active) continue;
    WriteRule(w, *this, r);
  }
  w.EndArray().EndObject();
  return out;
}

// --- feed and stats ---------------------------------------------------------------------

absl::Status Engine::TrimFeed(uint64_t cursor) {
  if (auto st = Writable(); !st.ok()) return st;
  // A trim that drops nothing is not worth an entry (and, under "batch", an fsync).
  if (cursor <= feed_.first()) return absl::OkStatus();
  WriteScope scope(*this);
  feed_.Trim(cursor);
  return Log(K(LogKind::kTrimFeed), {WalU64(cursor).view()});
}

std::string Engine::FeedJson(uint64_t cursor, uint32_t limit) const {
  const IdentityGraph& g = *graph_;
  limit = std::clamp<uint32_t>(limit, 1, 100000);
  std::string out;
  json::Writer w(out);
  w.BeginObject().Key("events").BeginArray();
  uint64_t next = feed_.Read(cursor, limit, [&](const FeedEvent& e) {
    using K = FeedEvent::Kind;
    w.BeginObject();
    w.Key("seq").Uint(e.seq);
    w.Key("kind").String(FeedKindName(e.kind));
    switch (e.kind) {
      case K::kPersonCreated:
        w.Key("oneid").Uint(e.a);
        w.Key("anchor").String(Display(e.node, false));
        break;
      case K::kMerged:
        w.Key("survivor").Uint(e.a);
        w.Key("absorbed").Uint(e.b);
        if (e.link != IdentityGraph::kNoLink) {
          w.Key("evidence");
          WriteLink(w, *this, g.link(e.link), impl_->sources);
        }
        break;
      case K::kSplit:
        w.Key("from").Uint(e.a);
        w.Key("oneid").Uint(e.b);
        break;
      case K::kConflict: {
        const Link& l = g.link(e.link);
        w.Key("oneids").BeginArray().Uint(e.a).Uint(e.b).EndArray();
        w.Key("reason").String(RefusalName(static_cast<Refusal>(e.reason)));
        if (l.reason == Refusal::kUniqueType || l.reason == Refusal::kTypeLimit)
          w.Key("type").String(cfg_.types[l.reason_type].name);
        w.Key("evidence");
        WriteLink(w, *this, l, impl_->sources);
        break;
      }
      case K::kIdRejected:
        w.Key("identifier").String(feed_.text(e.text));
        w.Key("reason").String(RejectionName(static_cast<Rejection>(e.reason)));
        w.Key("count").Uint(e.count);
        break;
      case K::kIdQuarantined:
      case K::kIdRemoved:
        w.Key("identifier").String(Display(e.node, false));
        w.Key("from").Uint(e.a);
        break;
      case K::kRuleAdded:
      case K::kRuleRemoved:
        w.Key("rule").Uint(e.rule);
        break;
      case K::kTagDefined:
      case K::kTagDropped:
        w.Key("tag").String(feed_.text(e.text));
        w.Key("version").Uint(e.count);
        if (e.kind == K::kTagDefined) w.Key("persons").Uint(e.a).Key("changed").Uint(e.b);
        break;
      case K::kTagChanged:
      case K::kAudienceCounted:
      case K::kStateChanged:
      case K::kPoints:
      case K::kTierChanged:
      case K::kJourney:
      case K::kIntent: {
        // The text is a JSON object written when the event happened: its members go here.
        const std::string& t = feed_.text(e.text);
        if (e.kind == K::kTagChanged) w.Key("oneid").Uint(e.a).Key("version").Uint(e.count);
        else if (e.kind != K::kAudienceCounted) w.Key("oneid").Uint(e.a);
        if (t.size() > 2) w.Raw(std::string_view(t).substr(1, t.size() - 2));
        break;
      }
      case K::kPersonForgotten:
        w.Key("oneid").Uint(e.a).Key("identifiers").Uint(e.count);
        break;
      case K::kErased:
        break;  // an event about a forgotten person: only its place in the feed remains
    }
    if (e.record) w.Key("record").Uint(e.record);
    if (e.ts) w.Key("ts").Int(e.ts);
    w.EndObject();
  });
  w.EndArray();
  w.Key("next").Uint(next);
  w.EndObject();
  return out;
}

std::string Engine::StatsJson() const {
  const IdentityGraph& g = *graph_;
  auto c = g.counts();
  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("persons").Uint(c.persons);
  w.Key("identifiers").Uint(c.identifiers);
  w.Key("links").Uint(c.links);
  w.Key("conflicts").Uint(c.conflicts);
  w.Key("quarantined").Uint(c.quarantined);
  w.Key("redirects").Uint(c.redirects);
  w.Key("records").BeginObject().Key("accepted").Uint(impl_->accepted).Key("rejected").Uint(impl_->rejected).EndObject();
  w.Key("sources").Uint(impl_->sources.size());
  w.Key("types").Uint(cfg_.types.size());
  w.Key("rules").Uint(g.rules().size());
  auto pc = profiles_->counts();
  w.Key("profiles").BeginObject().Key("persons").Uint(pc.profiles).Key("events").Uint(pc.events)
      .Key("attributes").Uint(pc.attributes).Key("day_counters").Uint(pc.cells).EndObject();
  w.Key("feed").BeginObject().Key("first").Uint(feed_.first()).Key("next").Uint(feed_.next()).EndObject();
  w.Key("lifecycle").Raw(life_->StatsJson());
  w.Key("memory").BeginObject();
  uint64_t total = feed_.bytes();
  auto parts = g.Memory();
  for (auto& part : profiles_->Memory()) parts.push_back(part);
  parts.emplace_back("tags", tags_->bytes());
  parts.emplace_back("lifecycle", life_->bytes());
  for (auto& [name, bytes] : parts) total += bytes;
  w.Key("total").Uint(total);
  for (auto& [name, bytes] : parts) w.Key(name).Uint(bytes);
  w.Key("feed").Uint(feed_.bytes());
  w.EndObject();
  w.Key("durability");
  if (const Wal* wal = impl_->wal.get()) {
    const WalRecovery& r = impl_->recovery;
    w.BeginObject();
    w.Key("dir").String(impl_->dir->path());
    w.Key("sync").String(wal->sync() == SyncPolicy::kBatch ? "batch" : "none");
    w.Key("log_bytes").Uint(wal->bytes());
    w.Key("seq").Uint(wal->next_seq());
    w.Key("entries").Uint(wal->next_seq() - wal->first_seq());
    w.Key("replayed").Uint(r.replayed);
    w.Key("torn_bytes").Uint(r.torn_bytes);
    if (r.torn_bytes) {
      w.Key("torn").BeginObject().Key("file").String(r.torn_file).Key("offset").Uint(r.torn_offset);
      w.Key("reason").String(r.torn_reason).EndObject();
    }
    w.Key("snapshots").BeginObject();
    w.Key("loaded");
    if (impl_->snapshot_loaded.empty()) w.Null();
    else w.String(impl_->snapshot_loaded);
    w.Key("skipped").BeginArray();
    for (const auto& [file, why] : impl_->snapshots_skipped)
      w.BeginObject().Key("file").String(file).Key("reason").String(why).EndObject();
    w.EndArray();
    w.Key("taken").Uint(impl_->snapshots_taken);
    w.Key("log_since").Uint(wal->bytes() - std::min(wal->bytes(), impl_->log_at_snapshot));
    w.Key("last_error");
    if (impl_->snapshot_failed.ok()) w.Null();
    else w.String(std::string(impl_->snapshot_failed.message()));
    w.EndObject();
    w.Key("failed");
    if (impl_->failed.ok()) w.Null();
    else w.String(std::string(impl_->failed.message()));
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("privacy").BeginObject();
  w.Key("forgotten").Uint(impl_->forgotten);
  w.Key("tombstones").Uint(impl_->tombstones.size());
  w.Key("erasure_pending").Bool(impl_->wal && impl_->erasure_pending);
  w.Key("hashed_types").BeginArray();  // identifier types stored as keyed hashes
  for (const IdPolicy& p : cfg_.types)
    if (p.hashed) w.String(p.name);
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return out;
}

}  // namespace cdp
