// The engine's snapshots: the layers' Save/Load strung together in one fixed order, and
// the files around them (src/snapshot.hpp has the format; docs/guarantees.md the promise).
#include <string>
#include <vector>

#include "bitmap_io.hpp"
#include "cdp/engine.hpp"
#include "engine_internal.hpp"
#include "fs.hpp"
#include "json_util.hpp"
#include "snapshot.hpp"
#include "util.hpp"

namespace cdp {

namespace {

// Snapshots kept: the newest, and one before it to fall back to if the newest cannot be
// read. The log is kept from the older one on, so either reaches the present.
constexpr size_t kKeepSnapshots = 2;

}  // namespace

absl::StatusOr<std::string> Engine::Snapshot() {
  if (!impl_->wal) return absl::UnimplementedError("snapshot: an in-memory engine has no directory to write to");
  if (!impl_->failed.ok()) return impl_->failed;
  Wal& wal = *impl_->wal;
  const std::string& dir = impl_->dir->path();
  // A snapshot at P starts a new segment at P, so older segments can later go whole.
  if (auto st = wal.Rotate(); !st.ok()) {
    impl_->failed = absl::UnavailableError(Cat("write-ahead log: ", st.message(), "; writes are refused until the "
                                               "directory is reopened"));
    return impl_->failed;
  }
  const uint64_t seq = wal.next_seq();
  // After an erasure, older snapshots and log hold what was forgotten: this snapshot is
  // then the only one kept, and says so, so that an open after a crash part-way through
  // the removals finishes them (RemoveOlder).
  const bool erasure = impl_->erasure_pending;
  auto bytes = snap::Write(dir, seq, [&](snap::Writer& w) { SaveState(w, erasure); });
  if (!bytes.ok()) return bytes.status();
  ++impl_->snapshots_taken;

  std::vector<std::string> removed;
  auto listed = snap::List(dir);
  if (!listed.ok()) return listed.status();
  const std::string file = (*listed)[0].name;
  absl::Status dropped;
  if (erasure) {
    dropped = RemoveOlder(seq, removed);
    if (dropped.ok()) impl_->erasure_pending = false;
  } else {
    for (size_t i = kKeepSnapshots; i < listed->size(); ++i) {
      if (auto st = snap::Remove(dir, (*listed)[i].name); !st.ok()) return st;
      removed.push_back((*listed)[i].name);
    }
    // Until there is a snapshot to fall back to, the log stays whole.
    const uint64_t oldest = listed->size() >= kKeepSnapshots ? (*listed)[kKeepSnapshots - 1].seq : 0;
    dropped = wal.DropBelow(oldest, removed);
  }
  // After the drop: the log's size shrinks with the segments removed.
  impl_->log_at_snapshot = wal.bytes();
  if (!dropped.ok()) return dropped;

  std::string out;
  json::Writer w(out);
  w.BeginObject();
  w.Key("seq").Uint(seq);
  w.Key("file").String(file);
  w.Key("bytes").Uint(*bytes);
  w.Key("removed").BeginArray();
  for (const std::string& f : removed) w.String(f);
  w.EndArray();
  w.EndObject();
  return out;
}

absl::Status Engine::RemoveOlder(uint64_t seq, std::vector<std::string>& removed) {
  const std::string& dir = impl_->dir->path();
  auto listed = snap::List(dir);
  if (!listed.ok()) return listed.status();
  for (const snap::SnapshotFile& f : *listed) {
    if (f.seq >= seq) continue;
    if (auto st = snap::Remove(dir, f.name); !st.ok()) return st;
    removed.push_back(f.name);
  }
  if (auto st = RemoveTempFiles(dir, removed); !st.ok()) return st;
  return impl_->wal->DropBelow(seq, removed);
}

void Engine::SaveState(snap::Writer& w, bool erasure) const {
  w.Part("engine");
  w.Bool(erasure);
  w.U64(impl_->records);
  w.U64(impl_->accepted);
  w.U64(impl_->rejected);
  w.I64(advanced_);
  w.I64(newest_record_);
  // Identifier types records introduced, in the order they got their ids.
  w.U64(cfg_.types.size());
  for (const IdPolicy& t : cfg_.types) {
    w.Str(t.name);
    w.Bool(t.configured);
  }
  impl_->sources.Save(w);
  impl_->tombstones.Save(w);
  w.U64(impl_->forgotten);
  graph_->Save(w);
  feed_.Save(w);
  profiles_->Save(w);
  tags_->Save(w);
  w.Part("audiences");
  w.U64(audiences_->by_name.size());
  for (const auto& [name, a] : audiences_->by_name) {
    w.Str(name);
    w.Str(a.request);
    SaveBitmap(w, a.last);
    w.U64(a.count);
    w.I64(a.counted_at);
    w.U64(a.counts);
    if (w.format() >= 4) w.U64(a.departed);
  }
  life_->Save(w);
  w.Part("end");
}

absl::Status Engine::LoadState(snap::Reader& r) {
  r.Part("engine");
  impl_->snapshot_erasure = r.Bool();
  impl_->records = r.U64();
  impl_->accepted = r.U64();
  impl_->rejected = r.U64();
  advanced_ = r.I64();
  newest_record_ = r.I64();
  // The config made the first types; records added the rest under the unknown-type policy.
  const uint64_t types = r.Count(9);
  for (uint64_t i = 0; i < types && r.ok(); ++i) {
    std::string_view name = r.Str();
    const bool configured = r.Bool();
    if (i < cfg_.types.size()) {
      if (cfg_.types[i].name != name || cfg_.types[i].configured != configured)
        r.Fail(Cat("identifier type ", i, " is \"", name, "\" in the snapshot but \"", cfg_.types[i].name,
                   "\" in the config"));
    } else if (configured || !cfg_.accept_unknown_types || cfg_.types.size() >= 65535) {
      r.Fail(Cat("identifier type \"", name, "\" is not one the config would register"));
    } else {
      cfg_.AddUnknownType(name);
    }
  }
  if (r.ok() && types < cfg_.types.size()) r.Fail("the config has identifier types the snapshot lacks");
  if (!r.ok()) return r.status();
  // The parser indexes the types it was made with.
  impl_->parser = std::make_unique<RecordParser>(cfg_, impl_->sources, impl_->key);
  impl_->sources.Load(r);
  impl_->tombstones.Load(r);
  impl_->forgotten = r.U64();
  if (!r.ok()) return r.status();
  if (auto st = graph_->Load(r); !st.ok()) return st;
  if (auto st = feed_.Load(r); !st.ok()) return st;
  if (auto st = profiles_->Load(r); !st.ok()) return st;
  if (auto st = tags_->Load(r); !st.ok()) return st;
  r.Part("audiences");
  for (uint64_t i = 0, n = r.Count(40); i < n && r.ok(); ++i) {
    std::string name(r.Str());
    SavedAudiences::Saved a;
    a.request = std::string(r.Str());
    if (!LoadBitmap(r, a.last)) r.Fail(Cat("audience \"", name, "\": bad member bitmap"));
    a.count = r.U64();
    a.counted_at = r.I64();
    a.counts = r.U64();
    if (r.format() >= 4) a.departed = r.U64();  // format 3 had none: an undercount of left, once
    audiences_->by_name.emplace(std::move(name), std::move(a));
  }
  if (!r.ok()) return r.status();
  if (auto st = life_->Load(r); !st.ok()) return st;
  r.Part("end");
  if (r.ok() && !r.done()) r.Fail(Cat(r.Left(), " bytes after the end"));
  return r.status();
}

}  // namespace cdp
