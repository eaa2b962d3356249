// snapshot.hpp — the binary encoding of an engine's state, and the files that hold it.
//
// A snapshot is the state after log entries [0, P): opening loads the newest valid one and
// replays the log from P, so reopening costs a read of the state instead of a re-run of
// its history. Each layer writes its own part (Save) and reads it back into a freshly
// constructed object of the same config (Load); the engine strings the parts together in
// a fixed order. The encoding is deliberately plain: little-endian fixed-width integers,
// u64 lengths, arrays of trivially copyable structs copied byte for byte, and a named
// marker before each part so a reader that lost its place says where.
//
// File (format kFormat), snap-<P as 16 hex digits>.cdp:
//   header   "CDPSNAP\n", u32 format version, u32 zero, u64 P,
//            u64 xxh3-64 of the preceding 24 bytes
//   body     the parts (Writer below)
//   trailer  u64 body length, u64 xxh3-64 of the body
// A snapshot is written to a temp file, fsynced, renamed into place and the directory
// fsynced, so a crash leaves either the old set of snapshots or the new one. The whole
// file is checked before anything is decoded: a body that fails its checksum is never
// read, and the engine falls back to the previous snapshot and a longer replay.
//
// Decoding never trusts a length: every count is checked against the bytes left before
// anything is allocated for it, and a failure is sticky (later reads return zeroes), so
// a Load can read straight through and test ok() once per part.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cdp::snap {

// The format written, and the oldest one still read. A format change that only adds a
// field keeps the previous format readable: Writer and Reader carry the format of the
// bytes they handle, and a Load reads the new field only from bytes of a format that
// has it (format 4 added a saved audience's departed members).
inline constexpr uint32_t kFormat = 4;
inline constexpr uint32_t kOldestReadable = 3;

class Writer {
 public:
  // Bytes are collected in memory; File() below streams them to disk instead. format:
  // the format to write (tests write an older one to check it still reads).
  explicit Writer(uint32_t format = kFormat) : format_(format) {}
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  virtual ~Writer() = default;

  void U8(uint8_t v) { Raw(&v, 1); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I32(int32_t v) { Raw(&v, 4); }
  void I64(int64_t v) { Raw(&v, 8); }
  void F64(double v) { Raw(&v, 8); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void Str(std::string_view s) {
    U64(s.size());
    Raw(s.data(), s.size());
  }
  // A trivially copyable value, byte for byte (padding included: zero it where the
  // struct has any, or the file differs between runs).
  template <typename T>
  void Pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    Raw(&v, sizeof v);
  }
  // n values of a trivially copyable type, preceded by n.
  template <typename T>
  void Array(const T* p, size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    U64(n);
    Raw(p, n * sizeof(T));
  }
  template <typename T>
  void Vec(const std::vector<T>& v) { Array(v.data(), v.size()); }
  // The marker a reader checks with Reader::Part: where one layer's bytes begin.
  void Part(std::string_view name) { Str(name); }

  void Raw(const void* p, size_t n) {
    buf_.append(static_cast<const char*>(p), n);
    if (buf_.size() >= kFlushAt) Flush();
  }
  uint64_t size() const { return flushed_ + buf_.size(); }
  uint32_t format() const { return format_; }
  // In-memory writers: the bytes written.
  std::string& bytes() { return buf_; }

 protected:
  static constexpr size_t kFlushAt = size_t{4} << 20;
  virtual void Flush() {}  // memory writers keep everything
  std::string buf_;
  uint64_t flushed_ = 0;
  uint32_t format_;
};

class Reader {
 public:
  // format: the format the bytes were written in (kOldestReadable..kFormat).
  explicit Reader(std::string_view data, uint32_t format = kFormat)
      : p_(data.data()), end_(data.data() + data.size()), begin_(p_), format_(format) {}
  uint32_t format() const { return format_; }

  uint8_t U8() { return Fixed<uint8_t>(); }
  uint16_t U16() { return Fixed<uint16_t>(); }
  uint32_t U32() { return Fixed<uint32_t>(); }
  uint64_t U64() { return Fixed<uint64_t>(); }
  int32_t I32() { return Fixed<int32_t>(); }
  int64_t I64() { return Fixed<int64_t>(); }
  double F64() { return Fixed<double>(); }
  bool Bool() { return U8() != 0; }
  // A view into the snapshot's bytes (valid while they are).
  std::string_view Str() {
    uint64_t n = U64();
    if (!Need(n, "string")) return {};
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  template <typename T>
  T Pod() { return Fixed<T>(); }
  template <typename T>
  void Pod(T& v) { v = Fixed<T>(); }
  // A count of elements each at least min_bytes long, checked against the bytes left, so
  // a bad count fails here instead of in an allocation.
  uint64_t Count(size_t min_bytes = 1) {
    uint64_t n = U64();
    if (ok_ && min_bytes && n > Left() / min_bytes) {
      Fail(std::to_string(n) + " elements cannot fit in the " + std::to_string(Left()) + " bytes left");
      return 0;
    }
    return ok_ ? n : 0;
  }
  // Reads what Writer::Array / Vec wrote.
  template <typename T>
  bool Vec(std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    uint64_t n = Count(sizeof(T));
    if (!ok_) return false;
    v.resize(n);
    if (n) std::memcpy(v.data(), p_, n * sizeof(T));
    p_ += n * sizeof(T);
    return true;
  }
  // Array elements one at a time (for containers that are not vectors): returns the count,
  // then call Pod<T>() that many times.
  template <typename T>
  uint64_t ArrayCount() { return Count(sizeof(T)); }
  // Checks the marker Writer::Part wrote; names the part in later failures.
  bool Part(std::string_view name) {
    part_ = name;
    std::string_view got = Str();
    if (ok_ && got != name) Fail("expected part \"" + std::string(name) + "\", found \"" + std::string(got) + "\"");
    return ok_;
  }

  // Marks the snapshot unreadable (sticky). Loads call this for values out of range.
  void Fail(std::string why) {
    if (!ok_) return;
    ok_ = false;
    why_ = std::move(why);
    fail_at_ = static_cast<uint64_t>(p_ - begin_);
  }
  bool ok() const { return ok_; }
  bool done() const { return p_ == end_; }
  uint64_t Left() const { return static_cast<uint64_t>(end_ - p_); }
  // DataLoss naming the part and offset of the first failure (Ok when none).
  absl::Status status() const;

 private:
  bool Need(uint64_t n, const char* what) {
    if (!ok_) return false;
    if (n > Left()) {
      Fail(std::string("a ") + what + " of " + std::to_string(n) + " bytes runs past the end");
      return false;
    }
    return true;
  }
  template <typename T>
  T Fixed() {
    T v{};
    if (!Need(sizeof(T), "value")) return v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  const char* p_;
  const char* end_;
  const char* begin_;
  uint32_t format_;
  bool ok_ = true;
  std::string why_;
  std::string part_;
  uint64_t fail_at_ = 0;
};

// --- files ------------------------------------------------------------------------------

// A snapshot on disk: its log position and file name.
struct SnapshotFile {
  uint64_t seq = 0;
  std::string name;
};

// The directory's snapshots, newest first (names that do not parse are ignored).
absl::StatusOr<std::vector<SnapshotFile>> List(const std::string& dir);

// Writes a snapshot of the state after entries [0, seq): body writes the parts. The file
// appears atomically under its final name, or not at all. Returns the file's size.
absl::StatusOr<uint64_t> Write(const std::string& dir, uint64_t seq, const std::function<void(Writer&)>& body);

// Reads and checks a whole snapshot file; body is the checked body. DataLoss when the
// file is short, its header or checksum is wrong; Unimplemented for a format outside
// kOldestReadable..kFormat.
// The file is mapped, not read: a snapshot of a few GB then costs no copy and no fresh
// memory to hold it, only the page cache it is already in.
struct Loaded {
  uint64_t seq = 0;
  uint32_t format = kFormat;            // read the body with Reader(body, format)
  std::shared_ptr<const void> mapping;  // keeps bytes valid
  std::string_view bytes;               // the whole file
  std::string_view body;
};
absl::StatusOr<Loaded> Read(const std::string& dir, const SnapshotFile& f);

// Removes a file in dir (a snapshot or log segment that is no longer needed) and syncs
// the directory when sync is set.
absl::Status Remove(const std::string& dir, const std::string& name);

}  // namespace cdp::snap
