// Engine methods of the lifecycle layer: definitions, manual operations, the outbox, and
// the glue that feeds it events and merges (cdp/lifecycle.hpp).
#include "engine_internal.hpp"
#include "json_util.hpp"
#include "util.hpp"
#include "wal.hpp"

namespace cdp {

namespace {
// The log kinds this file writes (engine.cpp's LogKind, pinned there).
}  // namespace

void Engine::FeedLifecycle(const Batch& b, const Record& r, uint64_t oneid) {
  LifeEvent e;
  e.batch = &b;
  e.record = &r;
  e.oneid = oneid;
  e.type = r.event_type_len ? profiles_->EventType(b.EventType(r)) : kAnyEventType;
  e.ts = r.ts;
  e.amount = r.amount_fen;
  e.has_amount = r.has_amount;
  life_->OnEvent(e);
}

void Engine::SyncStates() {
  std::vector<uint64_t> changed;
  life_->TakeStateChanges(changed);  // cleared even when no tag reads state.*
  if (!changed.empty()) tags_->StatesChanged(changed, Now());
}

absl::StatusOr<std::string> Engine::DefineLifecycle(std::string_view json) {
  if (auto st = Writable(); !st.ok()) return st;
  if (json.size() > cfg_.limits.max_record_bytes * 16ull)
    return absl::ResourceExhaustedError(
        Cat("lifecycle definitions of ", json.size(), " bytes are over 16 x limits.max_record_bytes"));
  WriteScope scope(*this);
  auto r = life_->Define(json, Now());
  if (!r.ok()) return r.status();  // refused whole: nothing changed
  SyncStates();
  if (auto st = Log(K(LogKind::kDefineLifecycle), {json}); !st.ok()) return st;
  return r;
}

absl::Status Engine::DropLifecycle(std::string_view kind, std::string_view name) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  if (auto st = life_->Drop(kind, name); !st.ok()) return st;
  SyncStates();
  return Log(K(LogKind::kDropLifecycle), {kind, name});
}

std::string Engine::LifecycleJson() const { return life_->CatalogJson(); }

absl::StatusOr<std::string> Engine::LifecycleApply(std::string_view json) {
  if (auto st = Writable(); !st.ok()) return st;
  return LifecycleApply(json, Now());
}

absl::StatusOr<std::string> Engine::LifecycleApply(std::string_view json, int64_t now) {
  if (json.size() > cfg_.limits.max_record_bytes)
    return absl::ResourceExhaustedError(Cat("a lifecycle operation of ", json.size(), " bytes is over limits.max_record_bytes"));
  WriteScope scope(*this);
  auto resolve = [&](uint64_t oneid, std::string_view type, std::string_view value) -> absl::StatusOr<uint64_t> {
    if (oneid != 0) {
      uint64_t id = graph_->Canonical(oneid);
      if (id == 0) return absl::NotFoundError(Cat("no person with OneID ", oneid));
      return id;
    }
    return Resolve(type, value);
  };
  auto r = life_->Apply(json, now, resolve);
  if (!r.ok()) return r.status();  // refused: nothing changed
  SyncStates();
  if (auto st = Log(K(LogKind::kLifecycleApply), {json, WalU64(static_cast<uint64_t>(now)).view()}); !st.ok()) return st;
  return r;
}

absl::StatusOr<std::string> Engine::PersonLifecycle(uint64_t oneid) const {
  uint64_t id = graph_->Canonical(oneid);
  if (id == 0) return absl::NotFoundError(Cat("no person with OneID ", oneid));
  std::string out = Cat("{\"oneid\":", id, ",");
  life_->AppendPerson(out, id);
  out += "}";
  return out;
}

std::string Engine::OutboxJson(uint64_t cursor, uint32_t limit) const { return life_->OutboxJson(cursor, limit); }

absl::StatusOr<std::string> Engine::AckIntents(std::string_view json) {
  if (auto st = Writable(); !st.ok()) return st;
  WriteScope scope(*this);
  auto r = life_->Ack(json);
  if (!r.ok()) return r.status();
  if (auto st = Log(K(LogKind::kAckIntents), {json}); !st.ok()) return st;
  return r;
}

}  // namespace cdp
