#include "wal.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "fs.hpp"
#include "util.hpp"

namespace cdp {

namespace {

constexpr char kFileMagic[8] = {'C', 'D', 'P', 'W', 'A', 'L', '\r', '\n'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kFileHeader = 32;
// Bytes CD 9E 1A 7E: not ASCII, and 1A never appears raw in JSON, so a payload of JSON
// text rarely contains it; the scan for entries after a bad one (Open) relies on that
// for speed only, the checksum decides.
constexpr uint32_t kEntryMagic = 0x7E1A9ECDu;
constexpr size_t kEntryHeader = 32;
constexpr size_t kMaxFields = 16;

void PutU16(char* p, uint16_t v) { for (int i = 0; i < 2; ++i) p[i] = static_cast<char>(v >> (8 * i)); }
void PutU32(char* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i)); }
void PutU64(char* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i)); }
template <typename T>
T Get(const char* p) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string SegmentName(uint64_t first_seq) { return SeqFileName("wal-", first_seq, ".log"); }

// The first sequence numbers of the segments in dir, ascending.
absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir) { return ListSeqFiles(dir, "wal-", ".log"); }

void FileHeader(char* h, uint64_t first_seq) {
  std::memcpy(h, kFileMagic, 8);
  PutU32(h + 8, kFormatVersion);
  PutU32(h + 12, 0);
  PutU64(h + 16, first_seq);
  PutU64(h + 24, XXH3_64bits(h, 24));
}

// Creates an empty segment starting at first_seq, atomically: the file either does not
// exist or holds its whole header.
absl::Status CreateSegment(const std::string& dir, uint64_t first_seq) {
  char h[kFileHeader];
  FileHeader(h, first_seq);
  return WriteFileAtomic(dir, SegmentName(first_seq), std::string_view(h, sizeof h));
}

// Checks the entry at p (avail bytes to the end of the file). Returns "" and sets e and
// size when it is whole and its checksum matches, else why not.
std::string CheckEntry(const char* p, uint64_t avail, WalEntry& e, uint64_t& size) {
  if (avail < kEntryHeader) return Cat("entry header cut short (", avail, " of ", kEntryHeader, " bytes)");
  if (Get<uint32_t>(p) != kEntryMagic) return "bad entry magic";
  if (Get<uint16_t>(p + 6) != 0) return "bad entry header (reserved bits set)";
  uint64_t len = Get<uint64_t>(p + 16);
  if (len > avail - kEntryHeader)
    return Cat("payload cut short (", avail - kEntryHeader, " of ", len, " bytes)");
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, p, 24);
  XXH3_64bits_update(&state, p + kEntryHeader, len);
  if (XXH3_64bits_digest(&state) != Get<uint64_t>(p + 24)) return "checksum mismatch";
  e.kind = Get<uint16_t>(p + 4);
  e.seq = Get<uint64_t>(p + 8);
  e.payload = std::string_view(p + kEntryHeader, len);
  size = kEntryHeader + len;
  return {};
}

// The offset of the first valid entry at or after from with sequence number >= min_seq,
// or 0 if there is none: what tells a torn tail (nothing valid follows) from corruption.
uint64_t FindValidEntry(const char* p, uint64_t size, uint64_t from, uint64_t min_seq) {
  char magic[4];
  PutU32(magic, kEntryMagic);
  std::string_view all(p, size);
  for (size_t at = all.find(std::string_view(magic, 4), from); at != std::string_view::npos;
       at = all.find(std::string_view(magic, 4), at + 1)) {
    WalEntry e;
    uint64_t n;
    if (CheckEntry(p + at, size - at, e, n).empty() && e.seq >= min_seq) return at;
  }
  return 0;
}

}  // namespace

// --- the directory ------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<DataDir>> DataDir::Open(std::string_view path_in, std::string_view config) {
  std::string path(path_in);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path.empty()) return absl::InvalidArgumentError("directory: empty path");
  if (::mkdir(path.c_str(), 0777) == 0) {
    // The new directory's entry lives in its parent: make it durable there too.
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    if (auto st = SyncDir(parent); !st.ok()) return st;
  } else if (errno != EEXIST) {
    return OsError("cannot create directory", path, errno);
  }
  struct stat sb;
  if (::stat(path.c_str(), &sb) != 0) return OsError("cannot open directory", path, errno);
  if (!S_ISDIR(sb.st_mode)) return absl::UnavailableError(Cat(path, " is not a directory"));

  std::unique_ptr<DataDir> d(new DataDir());
  d->path_ = path;
  std::string lock = Join(path, "LOCK");
  d->lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (d->lock_fd_ < 0) return OsError("cannot open", lock, errno);
  // flock() locks belong to the open file description, so this also refuses a second
  // open of the directory from the same process.
  while (::flock(d->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      return absl::UnavailableError(Cat("directory ", path, " is in use: another open engine holds its LOCK "
                                        "(one engine per directory; close the other first)"));
    return OsError("cannot lock", lock, errno);
  }

  std::string cfg_path = Join(path, "config.json");
  auto stored = ReadFile(cfg_path);
  if (stored.ok()) {
    if (!config.empty() && config != *stored)
      return absl::InvalidArgumentError(Cat("config: the directory ", path, " was created with another config; "
                                            "pass an empty config to use the stored one"));
    d->config_ = std::move(*stored);
    return d;
  }
  if (!absl::IsNotFound(stored.status())) return stored.status();
  // A log without its config cannot be replayed faithfully: refuse rather than guess.
  auto segments = ListSegments(path);
  if (!segments.ok()) return segments.status();
  if (!segments->empty())
    return absl::DataLossError(Cat("directory ", path, " holds a write-ahead log but no config.json"));
  if (auto st = WriteFileAtomic(path, "config.json", config); !st.ok()) return st;
  d->config_ = std::string(config);
  return d;
}

DataDir::~DataDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

// --- the log ------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(const std::string& dir, SyncPolicy sync, uint64_t from_seq,
                                               const ApplyFn& apply, WalRecovery& recovery) {
  recovery = WalRecovery{};
  std::unique_ptr<Wal> w(new Wal());
  w->dir_ = dir;
  w->sync_ = sync;
  auto listed = ListSegments(dir);
  if (!listed.ok()) return listed.status();
  std::vector<uint64_t> segments = std::move(*listed);
  if (segments.empty()) {
    if (auto st = CreateSegment(dir, from_seq); !st.ok()) return st;
    segments.push_back(from_seq);
  }
  if (segments.front() > from_seq)
    return absl::DataLossError(Cat("write-ahead log in ", dir, ": entries ", from_seq, " to ", segments.front() - 1,
                                   " are missing (the oldest segment is ", SegmentName(segments.front()), ")"));
  w->first_seq_ = segments.front();
  uint64_t expected = segments.front();
  for (size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    const std::string name = SegmentName(segments[i]), path = Join(dir, name);
    if (segments[i] != expected)
      return absl::DataLossError(Cat("write-ahead log ", path, " starts at entry ", segments[i],
                                     " but the segment before it ends at entry ", expected));
    Fd fd(::open(path.c_str(), last ? O_RDWR | O_APPEND | O_CLOEXEC : O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return OsError("cannot open", path, errno);
    struct stat sb;
    if (::fstat(fd.get(), &sb) != 0) return OsError("cannot stat", path, errno);
    const uint64_t size = static_cast<uint64_t>(sb.st_size);
    Mapping map;
    if (auto st = map.Map(fd.get(), size, path); !st.ok()) return st;
    const char* p = map.data();

    // Segments are created whole (CreateSegment), so a bad file header is never a torn write.
    if (size < kFileHeader)
      return absl::DataLossError(Cat("write-ahead log ", path, ": file header cut short (", size, " bytes)"));
    if (std::memcmp(p, kFileMagic, 8) != 0 || Get<uint64_t>(p + 24) != XXH3_64bits(p, 24))
      return absl::DataLossError(Cat(path, " is not a cdpcore write-ahead log, or its header is corrupt"));
    if (uint32_t v = Get<uint32_t>(p + 8); v != kFormatVersion)
      return absl::UnimplementedError(Cat("write-ahead log ", path, " has format version ", v, "; this library reads ",
                                          kFormatVersion));
    if (Get<uint64_t>(p + 16) != segments[i])
      return absl::DataLossError(Cat("write-ahead log ", path, ": its header says it starts at entry ",
                                     Get<uint64_t>(p + 16)));

    uint64_t off = kFileHeader;
    while (off < size) {
      WalEntry e;
      uint64_t n = 0;
      std::string why = CheckEntry(p + off, size - off, e, n);
      if (why.empty() && e.seq != expected) why = Cat("sequence number ", e.seq, ", expected ", expected);
      if (!why.empty()) {
        if (!last)
          return absl::DataLossError(Cat("write-ahead log ", path, ": corrupt entry at offset ", off, " (", why,
                                         "), and later segments follow"));
        if (uint64_t later = FindValidEntry(p, size, off + 1, expected))
          return absl::DataLossError(Cat("write-ahead log ", path, ": corrupt entry at offset ", off, " (", why,
                                         ") followed by a valid entry at offset ", later,
                                         "; refusing to open rather than drop acknowledged writes"));
        recovery.torn_bytes = size - off;
        recovery.torn_offset = off;
        recovery.torn_file = name;
        recovery.torn_reason = std::move(why);
        break;
      }
      if (e.seq >= from_seq) {
        if (auto st = apply(e); !st.ok()) return st;
        ++recovery.replayed;
      }
      ++expected;
      off += n;
    }
    map.Reset();
    if (!last) {
      w->closed_bytes_ += size;
      continue;
    }
    if (recovery.torn_bytes) {
      if (::ftruncate(fd.get(), static_cast<off_t>(off)) != 0) return OsError("cannot truncate", path, errno);
      if (::fsync(fd.get()) != 0) return OsError("cannot fsync", path, errno);
    }
    w->size_ = off;
    w->fd_ = fd.release();
    w->path_ = path;
  }
  if (expected < from_seq)
    return absl::DataLossError(Cat("write-ahead log in ", dir, " ends at entry ", expected,
                                   ", before the state it should continue (entry ", from_seq, ")"));
  w->next_seq_ = expected;
  return w;
}

Wal::~Wal() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status Wal::Append(uint16_t kind, std::initializer_list<std::string_view> fields) {
  if (!broken_.ok()) return broken_;
  if (fields.size() > kMaxFields) return absl::InternalError("write-ahead log: too many fields in one entry");
  char header[kEntryHeader];
  char lens[kMaxFields][8];
  iovec iov[1 + 2 * kMaxFields];
  int n = 0;
  uint64_t payload = 0;
  for (std::string_view f : fields) payload += 8 + f.size();
  PutU32(header, kEntryMagic);
  PutU16(header + 4, kind);
  PutU16(header + 6, 0);
  PutU64(header + 8, next_seq_);
  PutU64(header + 16, payload);
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, header, 24);
  iov[n++] = {header, kEntryHeader};
  size_t k = 0;
  for (std::string_view f : fields) {
    PutU64(lens[k], f.size());
    XXH3_64bits_update(&state, lens[k], 8);
    XXH3_64bits_update(&state, f.data(), f.size());
    iov[n++] = {lens[k], 8};
    iov[n++] = {const_cast<char*>(f.data()), f.size()};
    ++k;
  }
  PutU64(header + 24, XXH3_64bits_digest(&state));

  absl::Status st = WriteAll(fd_, iov, n, path_);
  // fdatasync suffices: it also flushes the file size the appended data needs.
  if (st.ok() && sync_ == SyncPolicy::kBatch && ::fdatasync(fd_) != 0) st = OsError("cannot fsync", path_, errno);
  if (!st.ok()) {
    broken_ = st;
    return st;
  }
  size_ += kEntryHeader + payload;
  ++next_seq_;
  return absl::OkStatus();
}

absl::Status Wal::Rotate() {
  if (!broken_.ok()) return broken_;
  absl::Status st;
  if (::fsync(fd_) != 0) st = OsError("cannot fsync", path_, errno);
  if (st.ok()) st = CreateSegment(dir_, next_seq_);
  int fd = -1;
  std::string path = Join(dir_, SegmentName(next_seq_));
  if (st.ok()) {
    fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) st = OsError("cannot open", path, errno);
  }
  if (!st.ok()) {
    broken_ = st;
    return st;
  }
  ::close(fd_);
  fd_ = fd;
  path_ = std::move(path);
  closed_bytes_ += size_;
  size_ = kFileHeader;
  return absl::OkStatus();
}

absl::Status Wal::DropBelow(uint64_t seq, std::vector<std::string>& removed) {
  auto listed = ListSegments(dir_);
  if (!listed.ok()) return listed.status();
  const std::vector<uint64_t>& segs = *listed;
  // A segment ends where the next begins; the last one (being appended to) always stays.
  for (size_t i = 0; i + 1 < segs.size() && segs[i + 1] <= seq; ++i) {
    const std::string name = SegmentName(segs[i]), path = Join(dir_, name);
    struct stat sb;
    uint64_t size = ::stat(path.c_str(), &sb) == 0 ? static_cast<uint64_t>(sb.st_size) : 0;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return OsError("cannot remove", path, errno);
    closed_bytes_ -= std::min(closed_bytes_, size);
    first_seq_ = segs[i + 1];
    removed.push_back(name);
  }
  return removed.empty() ? absl::OkStatus() : SyncDir(dir_);
}

// --- payload fields -----------------------------------------------------------------------

bool SplitWalFields(std::string_view payload, std::vector<std::string_view>& fields) {
  fields.clear();
  while (!payload.empty()) {
    if (payload.size() < 8) return false;
    uint64_t len = Get<uint64_t>(payload.data());
    payload.remove_prefix(8);
    if (len > payload.size()) return false;
    fields.push_back(payload.substr(0, len));
    payload.remove_prefix(len);
  }
  return true;
}

WalU64::WalU64(uint64_t v) { PutU64(bytes_, v); }

bool WalU64::Parse(std::string_view field, uint64_t& v) {
  if (field.size() != 8) return false;
  v = Get<uint64_t>(field.data());
  return true;
}

}  // namespace cdp
