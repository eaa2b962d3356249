// Internal to the engine's implementation files (engine.cpp, engine_tags.cpp): the state
// behind Engine's private pointers, and the scope that guards writes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "cdp/engine.hpp"
#include "record_parser.hpp"
#include "wal.hpp"

namespace cdp {

struct Engine::Impl {
  NameTable sources;
  std::unique_ptr<RecordParser> parser;
  uint64_t records = 0;          // record ids handed out (one per input line)
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  // Persistent engines only. dir is declared first so that it is destroyed last: the
  // directory stays locked until the log is closed.
  std::unique_ptr<DataDir> dir;
  std::unique_ptr<Wal> wal;
  WalRecovery recovery;
  // Snapshots: the one loaded at open (empty: none), those skipped as unreadable, the
  // log size when the last one was taken (or at open), and the automatic snapshot that
  // the next write takes.
  std::string snapshot_loaded;
  std::vector<std::pair<std::string, std::string>> snapshots_skipped;  // file, why
  uint64_t log_at_snapshot = 0;
  uint64_t snapshots_taken = 0;
  bool snapshot_due = false;
  absl::Status snapshot_failed;  // the last automatic snapshot's failure (writes go on)
  absl::Status failed;  // why writes are refused (the in-memory state is ahead of the log)
};

// Marks a persistent engine failed when an exception (out of memory) leaves a write
// half-applied: the in-memory state may then differ from any fold of the log, so nothing
// more may be logged on top of it.
struct Engine::WriteScope {
  explicit WriteScope(Engine& e) : engine(e), exceptions(std::uncaught_exceptions()) {}
  ~WriteScope() {
    if (std::uncaught_exceptions() > exceptions && engine.impl_->wal && engine.impl_->failed.ok())
      engine.impl_->failed = absl::UnavailableError(
          "a write was interrupted (out of memory?) after it began to change the engine; writes are refused "
          "until the directory is reopened");
  }
  Engine& engine;
  int exceptions;
};

// Saved audiences ("audience packages"): a name for an audience request, re-counted on
// demand, remembering the members of the last count to report who entered and left.
struct Engine::SavedAudiences {
  struct Saved {
    std::string request;
    Bitmap last;          // the members at the last count
    uint64_t count = 0;
    int64_t counted_at = kNoTime;
    uint64_t counts = 0;  // how many times it was counted
  };
  std::map<std::string, Saved, std::less<>> by_name;
};

}  // namespace cdp
