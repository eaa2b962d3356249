// cdp/engine.hpp — the engine facade: one object that owns the config, the parser, the
// identity graph and the change feed, and speaks JSON to the C API.
//
// Data path: NDJSON bytes → RecordParser (normalise, validate; bad lines reported with
// line and field) → sort the batch by (time, content key) so any permutation of a batch
// links the same → IdentityGraph::AddRecord per record → change feed. Queries read the
// graph. Time is never read from a clock: it comes from the records.
//
// Durability: an engine opened on a directory logs every write that changed its state
// (src/wal.hpp) before returning success, and opening the directory again replays the log
// through the same write methods, so the state comes back exactly (docs/guarantees.md).
// A write whose logging fails is applied in memory but not durable: the engine then
// refuses every later write with the original cause (Unavailable) until it is reopened.
//
// Thread rule: the const methods only read (the graph's read paths never write, not even
// path compression), so any number of threads may call them at once while no non-const
// method runs; the C API enforces this with a reader-writer lock per engine.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cdp/expr.hpp"
#include "cdp/feed.hpp"
#include "cdp/identity.hpp"
#include "cdp/lifecycle.hpp"
#include "cdp/policy.hpp"
#include "cdp/profile.hpp"
#include "cdp/record.hpp"
#include "cdp/tags.hpp"

namespace cdp {

namespace json { class Writer; }
namespace snap { class Writer; class Reader; }
enum class LogKind : uint16_t;  // src/engine_internal.hpp

class Engine {
 public:
  // An in-memory engine. config_json empty: the built-in default config.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(std::string_view config_json);
  // A persistent engine in dir (created if missing; its parent must exist), or in memory
  // when dir is empty. A new directory stores config_json; an existing one replays its
  // log under its stored config, and config_json must then be empty or the same bytes.
  // Errors: InvalidArgument (bad or different config), Unavailable (OS errors, the
  // directory is open elsewhere), DataLoss (a corrupt log), Unimplemented (a log format
  // this version does not read).
  static absl::StatusOr<std::unique_ptr<Engine>> Open(std::string_view config_json, std::string_view dir);
  // The same with the host's key for identifier types stored hashed ("hashed": true in a
  // type's policy, docs/config.md): at least 16 bytes, kept in memory only. A config that
  // hashes a type needs a key, and a key without such a type is refused. A directory
  // keeps a check value of its key (key_check) and refuses any other key
  // (InvalidArgument): values hashed under two keys would never match.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(std::string_view config_json, std::string_view dir,
                                                      std::string_view key);
  ~Engine();

  // Ingests NDJSON; returns the report JSON (see cdp_ingest_ndjson in cdp.h).
  absl::StatusOr<std::string> IngestNdjson(std::string_view data, bool assign);
  // Ingests one record; malformed records are an InvalidArgument error naming the field.
  absl::StatusOr<std::string> IngestRecord(std::string_view json);

  absl::StatusOr<uint64_t> Resolve(std::string_view type, std::string_view value) const;
  // The OneID each NDJSON line belongs to now, without ingesting: {"lines":N,"oneids":[]}.
  absl::StatusOr<std::string> ResolveNdjson(std::string_view data);
  absl::StatusOr<std::string> PersonIdentifiers(uint64_t oneid, bool mask) const;
  // The whole person: OneID, identifiers, attributes with lineage, event summary per type.
  absl::StatusOr<std::string> PersonJson(uint64_t oneid, bool mask) const;
  std::string PersonsPage(uint64_t cursor, uint32_t limit, bool mask) const;
  absl::StatusOr<std::string> Explain(std::string_view type_a, std::string_view value_a,
                                      std::string_view type_b, std::string_view value_b) const;

  absl::StatusOr<std::string> RemoveIdentifier(std::string_view type, std::string_view value);
  absl::StatusOr<std::string> RemoveSource(std::string_view source);
  absl::StatusOr<std::string> Split(uint64_t oneid, std::string_view idents_json);
  absl::StatusOr<uint64_t> AddRule(std::string_view kind, std::string_view type_a,
                                   std::string_view value_a, std::string_view type_b,
                                   std::string_view value_b, std::string_view note);
  absl::StatusOr<std::string> RemoveRule(uint64_t id);
  std::string RulesJson() const;

  // Expressions. Compiling registers the names it uses (a write); evaluating reads.
  absl::StatusOr<Expr> CompileExpr(std::string_view text, bool ast);
  // {"value":...,"kind":"bool","valid_until":ms|null} for a person at now_ms.
  absl::StatusOr<std::string> EvalExpr(const Expr& e, uint64_t oneid, int64_t now_ms, Evaluator& ev) const;
  const ExprLimits& expr_limits() const { return expr_limits_; }

  // Tags (docs/tags.md). Definitions are a JSON object or array; see TagEngine::Define.
  absl::StatusOr<std::string> DefineTags(std::string_view json);
  absl::Status DropTag(std::string_view name);
  std::string TagsJson() const;
  // {"oneid":N,"tags":{"name":{"value":V,"version":N}}}
  absl::StatusOr<std::string> PersonTags(uint64_t oneid) const;
  // Moves the engine's clock to now_ms and re-evaluates the tags whose values may have
  // changed with time: {"now","persons","changed","next"}. The clock never goes back
  // (FailedPrecondition). Until the first call, the clock is the newest record's time.
  absl::StatusOr<std::string> Advance(int64_t now_ms);
  int64_t Now() const;

  // Audiences (docs/audiences.md): op is "count", "members", "distribution" or "export";
  // the request names the expression ("expr", "ast", or a saved "audience") and the op's
  // options. Compiling the expression registers names, so this is a writer.
  absl::StatusOr<std::string> Audience(std::string_view op, std::string_view request_json);
  // Saved audiences ("audience packages"): a name for a request, re-counted on demand;
  // each count goes to the feed with how many entered and left since the last one.
  absl::StatusOr<std::string> SaveAudience(std::string_view name, std::string_view request_json);
  absl::Status DropAudience(std::string_view name);
  std::string AudiencesJson() const;
  absl::StatusOr<std::string> RecountAudience(std::string_view name);
  // Operating metrics (docs/metrics.md): {"metric": "funnel" | "fast" | "clv" | "rfm", ...}.
  absl::StatusOr<std::string> Metrics(std::string_view request_json);

  // Lifecycle (docs/lifecycle.md, loyalty.md, journeys.md): a definition document with
  // "machines", "loyalty", "journeys" and "delivery"; see Lifecycle::Define.
  absl::StatusOr<std::string> DefineLifecycle(std::string_view json);
  // kind: "machine", "journey" or "loyalty".
  absl::Status DropLifecycle(std::string_view kind, std::string_view name);
  std::string LifecycleJson() const;
  // A manual operation ({"op": "set_state" | "earn" | "spend" | ..., "oneid" or "type" and
  // "value", "ts" optional}) at the engine's clock; see Lifecycle::Apply.
  absl::StatusOr<std::string> LifecycleApply(std::string_view json);
  // {"oneid","states","history","loyalty","journeys"}: the person's lifecycle.
  absl::StatusOr<std::string> PersonLifecycle(uint64_t oneid) const;
  // The outbox of action intents from a cursor; acknowledging is a write (logged).
  std::string OutboxJson(uint64_t cursor, uint32_t limit) const;
  absl::StatusOr<std::string> AckIntents(std::string_view json);
  Lifecycle& lifecycle() { return *life_; }
  const Lifecycle& lifecycle() const { return *life_; }

  TagEngine& tags() { return *tags_; }
  const TagEngine& tags() const { return *tags_; }

  // Durability: writes the whole state to a snapshot in the engine's directory, so the
  // next open loads it and replays only the log written after it; then removes what is no
  // longer needed (snapshots but the newest two, log segments older than the older one).
  // Returns {"seq","file","bytes","removed":[files]}. Unimplemented for in-memory
  // engines. Engines also snapshot on their own when the log since the last snapshot
  // passes durability.snapshot_log_bytes (at the start of the next write).
  absl::StatusOr<std::string> Snapshot();

  // Erasure (PIPL deletion; docs/guarantees.md): forgets the persons a request names
  // ({"oneids":[...]} and/or {"identifiers":[{"type","value"}]}, "compact": true) in
  // every layer, keeps keyed hashes of their identifiers so later records carrying them
  // are refused, and (compact, persistent engines) snapshots and removes every older
  // file. Returns {"forgotten":[{"oneid","identifiers","absorbed"}],"not_found":[...],
  // "feed":{"from","to"},"snapshot":{...}|null,"erasure_pending":bool}. NotFound when
  // the request names no live person.
  absl::StatusOr<std::string> Forget(std::string_view request_json);
  // Access request: everything held about a person as one JSON document.
  absl::StatusOr<std::string> ExportPerson(uint64_t oneid) const;

  std::string FeedJson(uint64_t cursor, uint32_t limit) const;
  // Drops feed events below cursor (logged only when it drops something).
  absl::Status TrimFeed(uint64_t cursor);
  std::string StatsJson() const;

  const EngineConfig& config() const { return cfg_; }
  IdentityGraph& graph() { return *graph_; }
  const IdentityGraph& graph() const { return *graph_; }
  const Feed& feed() const { return feed_; }
  ProfileStore& profiles() { return *profiles_; }
  const ProfileStore& profiles() const { return *profiles_; }

  // "type:value" of a node, masked by its type's policy when mask is set.
  std::string Display(NodeId n, bool mask) const;

 private:
  Engine() = default;
  // One batch parsed and linked: what the reports are made from.
  struct Ingested {
    Batch batch;
    LinkStats stats;
    std::vector<NodeId> nodes;  // each identifier's node, parallel to batch.ids
    uint64_t base = 0;          // record ids are base + line
    uint32_t total_lines = 0;
    uint64_t feed_from = 0;
  };
  // Parses a batch and applies it (ApplyBatch). logged, when not null, receives what the
  // log must hold in place of data when identifiers are stored hashed: the parsed batch,
  // whose hashed values are the only form of them the engine keeps (EncodeBatch).
  absl::StatusOr<Ingested> IngestBatch(std::string_view data, std::string* logged = nullptr);
  // Everything after parsing: refusing forgotten identifiers, ordering, linking, filing.
  Ingested ApplyBatch(Ingested in);
  // The log form of a parsed batch (LogKind::kIngestHashed), and back: types and sources
  // by name, so replay registers them as parsing did (src/engine_privacy.cpp).
  std::string EncodeBatch(const Ingested& in) const;
  absl::Status DecodeBatch(std::string_view payload, Ingested& in);
  // The person's identifiers, and with profile its attributes, events, tags and states.
  absl::StatusOr<std::string> PersonDocument(uint64_t oneid, bool mask, bool profile) const;
  // Durability (a no-op for in-memory engines). Writable: the failure that stopped
  // writes, if any. Log: appends a write that changed the state. Replay: applies one
  // logged write at open, through the same methods, before the log is attached (so it
  // cannot log again).
  struct WriteScope;
  // Every write method begins here: refuses writes after a failure, and takes the
  // snapshot the previous write made due.
  absl::Status Writable();
  absl::Status Log(uint16_t kind, std::initializer_list<std::string_view> fields);
  // An ingest's log entry: the text as given (kind), or, when identifiers are hashed, the
  // parsed batch IngestBatch encoded (the text holds their raw values).
  absl::Status LogBatch(LogKind kind, std::string_view text, std::string_view hashed);
  absl::Status Replay(uint16_t kind, uint64_t seq, std::string_view payload);
  absl::Status CheckBatchSize(std::string_view data) const;
  absl::StatusOr<NodeId> FindIdentifier(std::string_view type, std::string_view value) const;
  // Moves profile facts after identity changed: the persons named by feed events from
  // feed_from on, and extra.
  void SyncProfiles(uint64_t feed_from, const std::vector<uint64_t>& extra = {});
  // Brings the tags up to date after a change to the profiles, and tells the saved
  // audiences which of their last members have ended (see SavedAudiences::Saved).
  void UpdateTags();
  // SaveAudience; strict refuses a request with keys other than expr, ast and holdout.
  // Replay is not strict: a log written before that rule may hold other keys (which
  // recounts ignore), and it must still open.
  absl::StatusOr<std::string> SaveAudience(std::string_view name, std::string_view request_json, bool strict);
  void WriteIdCounts(json::Writer& w, const Ingested& in);
  void WriteLinkCounts(json::Writer& w, const Ingested& in);
  // nodes: each identifier's node as linking left it, or nullptr to look them up.
  void WriteOneIdsPerLine(json::Writer& w, const Batch& b, uint32_t total_lines, const NodeId* nodes);
  struct Impl;
  struct SavedAudiences;
  // An in-memory engine; without definitions, the config's tags and lifecycle are not
  // installed (a snapshot about to be loaded holds them).
  static absl::StatusOr<std::unique_ptr<Engine>> OpenMemory(std::string_view config_json, bool definitions,
                                                            std::string_view key = {});
  // The stored form of a caller's identifier: normalised under its type's policy, scoped,
  // and hashed for a hashed type, whose value may also be given in stored form (as
  // unmasked outputs show it, and as the log holds it).
  struct Parsed { uint32_t type; std::string value; };
  absl::StatusOr<Parsed> Normalized(std::string_view type, std::string_view value) const;
  // Makes the layers above the profiles (tags, audiences, lifecycle) and, with
  // definitions, installs the config's tags and lifecycle.
  absl::Status OpenLayers(bool definitions);
  // Snapshots (src/snapshot.hpp): every layer's Save/Load, in a fixed order.
  // erasure: the snapshot completes an erasure (nothing older may remain; see RemoveOlder).
  void SaveState(snap::Writer& w, bool erasure) const;
  absl::Status LoadState(snap::Reader& r);
  // Removes every snapshot and log segment older than seq, and temp files: after an
  // erasure, the files that may still hold what was forgotten.
  absl::Status RemoveOlder(uint64_t seq, std::vector<std::string>& removed);
  // Takes the identifiers of forgotten persons out of a parsed batch (and, under
  // privacy.tombstones "consent", lifts the tombstones a consent event names).
  void DropForgotten(Batch& b);
  // Feeds one record, just filed on oneid, to the lifecycle.
  void FeedLifecycle(const Batch& b, const Record& r, uint64_t oneid);
  // Re-evaluates the tags that read state.* for the persons the lifecycle moved.
  void SyncStates();
  absl::StatusOr<std::string> LifecycleApply(std::string_view json, int64_t now);
  // The audience a request names, selected at the request's "now" (default Now()).
  struct Selection;
  absl::StatusOr<std::unique_ptr<Selection>> Select(std::string_view request_json);
  EngineConfig cfg_;
  Feed feed_;
  std::unique_ptr<IdentityGraph> graph_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<ProfileStore> profiles_;
  std::unique_ptr<TagEngine> tags_;
  std::unique_ptr<SavedAudiences> audiences_;
  std::unique_ptr<Lifecycle> life_;
  ExprLimits expr_limits_;
  int64_t advanced_ = kNoTime;        // the clock Advance set last
  int64_t newest_record_ = kNoTime;   // the latest record time ingested
};

}  // namespace cdp
