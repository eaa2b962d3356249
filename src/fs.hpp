// fs.hpp — the few POSIX file operations the data directory needs (internal): errors as
// Unavailable with the path and errno text, descriptors and mappings closed on scope exit,
// writes that resume after short writes, and all-or-nothing file creation.
#pragma once

#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cdp {

absl::Status OsError(std::string_view what, std::string_view path, int err);

// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { if (fd_ >= 0) ::close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { int f = fd_; fd_ = -1; return f; }
 private:
  int fd_;
};

// A read-only mapping of a whole file: replay reads entries in place, and the scan for
// valid entries after a bad one may look at the rest of a large segment.
class Mapping {
 public:
  Mapping() = default;
  ~Mapping() { Reset(); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  absl::Status Map(int fd, uint64_t size, std::string_view path) {
    if (size == 0) return absl::OkStatus();
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) return OsError("cannot map", path, errno);
    ::madvise(p, size, MADV_SEQUENTIAL);
    data_ = static_cast<const char*>(p);
    size_ = size;
    return absl::OkStatus();
  }
  void Reset() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  const char* data() const { return data_; }
 private:
  const char* data_ = nullptr;
  uint64_t size_ = 0;
};

std::string Join(std::string_view dir, std::string_view name);
// fsyncs a directory, so the renames and unlinks in it survive a crash.
absl::Status SyncDir(const std::string& dir);
// Writes the buffers completely, resuming after short writes and signals.
absl::Status WriteAll(int fd, iovec* iov, int n, std::string_view path);
// Creates dir/name holding contents, all or nothing: a temp file, fsynced, renamed over
// the name, and the directory fsynced so the rename itself survives a crash.
absl::Status WriteFileAtomic(const std::string& dir, std::string_view name, std::string_view contents);
// The whole file, or NotFound if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Files named by a log position: PREFIX, 16 lowercase hex digits, SUFFIX (wal-...log,
// snap-...cdp), so names sort as their numbers do.
std::string SeqFileName(std::string_view prefix, uint64_t seq, std::string_view suffix);
bool ParseSeqFileName(std::string_view name, std::string_view prefix, std::string_view suffix, uint64_t& seq);
// The numbers of dir's files named so, ascending.
absl::StatusOr<std::vector<uint64_t>> ListSeqFiles(const std::string& dir, std::string_view prefix,
                                                   std::string_view suffix);
// Removes the temp files an interrupted atomic write left (NAME.tmp), appending their
// names to removed. They may hold data a later erasure has forgotten.
absl::Status RemoveTempFiles(const std::string& dir, std::vector<std::string>& removed);

}  // namespace cdp
