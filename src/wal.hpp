// wal.hpp — the write-ahead log of a persistent engine, and the directory that holds it.
//
// An engine's state is the deterministic fold of its write calls, so durability is a log
// of those calls: each write that changed the state is appended (and, under the "batch"
// sync policy, fsynced) before its caller hears success, and opening a directory replays
// the log through the same write methods. This layer knows nothing of what an entry
// means: the engine gives each entry a kind and a list of byte fields.
//
// Directory (format 1):
//   LOCK                 flock()ed while an engine has the directory open
//   config.json          the engine config the directory was created with, byte for byte
//   wal-<seq>.log        log segments; <seq> (16 hex digits) is the sequence number of the
//                        segment's first entry
//
// A segment is a 32-byte file header, then entries back to back:
//   file header   "CDPWAL\r\n", u32 format version, u32 zero, u64 first sequence number,
//                 u64 xxh3-64 of the preceding 24 bytes
//   entry header  u32 magic, u16 kind, u16 zero, u64 sequence number, u64 payload length,
//                 u64 xxh3-64 of the preceding 24 bytes and the payload
//   payload       fields, each a u64 length and its bytes
// Integers are little-endian. Sequence numbers count entries from 0 across segments, with
// no gaps; they are what a snapshot names: "the state after entries [0, P)"
// (src/snapshot.hpp). Opening with from_seq = P replays only entries P and on, Rotate()
// starts the segment a snapshot is taken at, and DropBelow deletes segments wholly below P.
//
// Failure model. A crash can leave a torn tail: the last entry cut short, or garbage after
// it (a partial write, zeroes from an extended file). Opening detects it (short header,
// short payload, bad magic or checksum), reports it and truncates the segment to the last
// valid entry. A bad entry followed by a valid one is not a torn tail but corruption of
// acknowledged data: opening refuses (DataLoss) and names the file and offset, rather
// than drop what follows. After an append fails the log refuses further appends, since
// anything appended behind a partial entry would turn a torn tail into corruption.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cdp/policy.hpp"

namespace cdp {

// The directory of a persistent engine: created if missing (its parent must exist),
// locked against a second open while this object lives, and holding the config.
class DataDir {
 public:
  // Opens or creates the directory. config: what the caller passed; on creation it is
  // stored (atomically: temp file, fsync, rename, fsync the directory); on reopen it must
  // be empty or byte-identical to the stored one (InvalidArgument otherwise).
  // OS errors, and a directory another DataDir holds, are Unavailable.
  static absl::StatusOr<std::unique_ptr<DataDir>> Open(std::string_view path, std::string_view config);
  ~DataDir();
  DataDir(const DataDir&) = delete;
  DataDir& operator=(const DataDir&) = delete;

  const std::string& path() const { return path_; }
  // The config the directory was created with (empty: the built-in default).
  const std::string& config() const { return config_; }

 private:
  DataDir() = default;
  std::string path_;
  std::string config_;
  int lock_fd_ = -1;
};

struct WalEntry {
  uint16_t kind;
  uint64_t seq;
  std::string_view payload;  // valid during the callback only
};

// What opening found and repaired.
struct WalRecovery {
  uint64_t replayed = 0;     // entries handed to the callback
  uint64_t torn_bytes = 0;   // bytes cut from the end of the last segment (0: none)
  uint64_t torn_offset = 0;  // the offset in that segment where the cut was made
  std::string torn_file;     // the segment's file name
  std::string torn_reason;   // why the entry there was not valid
};

class Wal {
 public:
  using ApplyFn = std::function<absl::Status(const WalEntry&)>;

  // Opens the log in dir (which the caller holds through a DataDir), creating the first
  // segment, at from_seq, if there is none. Validates every entry and hands those with
  // seq >= from_seq to apply, in order; an error from apply stops the open and is
  // returned. Truncates a torn tail (recovery says what was cut). Errors: DataLoss for
  // corruption or a gap, Unimplemented for another format version, Unavailable for OS
  // errors.
  static absl::StatusOr<std::unique_ptr<Wal>> Open(const std::string& dir, SyncPolicy sync, uint64_t from_seq,
                                                   const ApplyFn& apply, WalRecovery& recovery);
  ~Wal();
  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;

  // Appends one entry made of fields and, under SyncPolicy::kBatch, fsyncs it before
  // returning. On failure the entry may be partly written and every later Append fails
  // with the same status.
  absl::Status Append(uint16_t kind, std::initializer_list<std::string_view> fields);
  // Ends the current segment (fsynced) and starts a new one at next_seq(): where a
  // snapshot taken now will let replay begin.
  absl::Status Rotate();
  // Deletes the closed segments whose entries all precede seq (a snapshot at seq or
  // later makes them unneeded); appends the deleted files' names to removed.
  absl::Status DropBelow(uint64_t seq, std::vector<std::string>& removed);

  uint64_t next_seq() const { return next_seq_; }
  uint64_t first_seq() const { return first_seq_; }  // of the oldest segment on disk
  uint64_t bytes() const { return closed_bytes_ + size_; }
  SyncPolicy sync() const { return sync_; }

 private:
  Wal() = default;
  std::string dir_;
  SyncPolicy sync_ = SyncPolicy::kBatch;
  int fd_ = -1;               // the last segment, opened for appending
  std::string path_;          // its path
  uint64_t size_ = 0;         // its size
  uint64_t closed_bytes_ = 0; // sizes of the segments before it
  uint64_t first_seq_ = 0;
  uint64_t next_seq_ = 0;
  absl::Status broken_;       // the failure that stopped appending
};

// Splits a payload into its fields (views into payload); false if it is not a
// well-formed list of length-prefixed fields.
bool SplitWalFields(std::string_view payload, std::vector<std::string_view>& fields);

// An integer as a field: 8 little-endian bytes.
class WalU64 {
 public:
  explicit WalU64(uint64_t v);
  std::string_view view() const { return {bytes_, sizeof bytes_}; }
  // Reads a field written by WalU64; false if it is not 8 bytes.
  static bool Parse(std::string_view field, uint64_t& v);

 private:
  char bytes_[8];
};

}  // namespace cdp
