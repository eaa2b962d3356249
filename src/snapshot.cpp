#include "snapshot.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "fs.hpp"
#include "util.hpp"

namespace cdp::snap {

namespace {

constexpr char kMagic[8] = {'C', 'D', 'P', 'S', 'N', 'A', 'P', '\n'};
constexpr size_t kHeader = 32;
constexpr size_t kTrailer = 16;

template <typename T>
void Put(char* p, T v) { std::memcpy(p, &v, sizeof v); }  // the engine runs little-endian only
template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string FileName(uint64_t seq) { return SeqFileName("snap-", seq, ".cdp"); }

// Streams the body to a file, hashing it on the way.
class FileWriter final : public Writer {
 public:
  FileWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) { XXH3_64bits_reset(&hash_); }
  absl::Status Finish() {
    Flush();
    if (!st_.ok()) return st_;
    char t[kTrailer];
    Put<uint64_t>(t, flushed_);
    Put<uint64_t>(t + 8, XXH3_64bits_digest(&hash_));
    iovec iov{t, sizeof t};
    return WriteAll(fd_, &iov, 1, path_);
  }

 private:
  void Flush() override {
    if (buf_.empty()) return;
    if (st_.ok()) {
      XXH3_64bits_update(&hash_, buf_.data(), buf_.size());
      iovec iov{buf_.data(), buf_.size()};
      st_ = WriteAll(fd_, &iov, 1, path_);
    }
    flushed_ += buf_.size();
    buf_.clear();
  }
  int fd_;
  std::string path_;
  XXH3_state_t hash_;
  absl::Status st_;
};

}  // namespace

absl::Status Reader::status() const {
  if (ok_) return absl::OkStatus();
  return absl::DataLossError(Cat("snapshot", part_.empty() ? "" : " part ", part_, ", offset ", fail_at_, ": ", why_));
}

absl::StatusOr<std::vector<SnapshotFile>> List(const std::string& dir) {
  auto seqs = ListSeqFiles(dir, "snap-", ".cdp");
  if (!seqs.ok()) return seqs.status();
  std::vector<SnapshotFile> out;
  for (auto it = seqs->rbegin(); it != seqs->rend(); ++it) out.push_back({*it, FileName(*it)});
  return out;
}

absl::StatusOr<uint64_t> Write(const std::string& dir, uint64_t seq, const std::function<void(Writer&)>& body) {
  const std::string name = FileName(seq), tmp = Join(dir, Cat(name, ".tmp")), path = Join(dir, name);
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) return OsError("cannot create", tmp, errno);
  char h[kHeader];
  std::memcpy(h, kMagic, 8);
  Put<uint32_t>(h + 8, kFormat);
  Put<uint32_t>(h + 12, 0);
  Put<uint64_t>(h + 16, seq);
  Put<uint64_t>(h + 24, XXH3_64bits(h, 24));
  iovec iov{h, sizeof h};
  absl::Status st = WriteAll(fd.get(), &iov, 1, tmp);
  uint64_t size = 0;
  if (st.ok()) {
    FileWriter w(fd.get(), tmp);
    body(w);
    st = w.Finish();
    size = kHeader + w.size() + kTrailer;
  }
  if (st.ok() && ::fsync(fd.get()) != 0) st = OsError("cannot fsync", tmp, errno);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = OsError("cannot rename to", path, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (auto s = SyncDir(dir); !s.ok()) return s;
  return size;
}

absl::StatusOr<Loaded> Read(const std::string& dir, const SnapshotFile& f) {
  const std::string path = Join(dir, f.name);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return errno == ENOENT ? absl::NotFoundError(path) : OsError("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return OsError("cannot stat", path, errno);
  auto mapping = std::make_shared<Mapping>();
  if (auto s = mapping->Map(fd.get(), static_cast<uint64_t>(st.st_size), path); !s.ok()) return s;
  Loaded out;
  out.bytes = std::string_view(mapping->data(), static_cast<size_t>(st.st_size));
  out.mapping = std::move(mapping);
  const std::string_view b = out.bytes;
  if (b.size() < kHeader + kTrailer) return absl::DataLossError(Cat("snapshot ", path, " is cut short (", b.size(), " bytes)"));
  if (std::memcmp(b.data(), kMagic, 8) != 0 || Get<uint64_t>(b.data() + 24) != XXH3_64bits(b.data(), 24))
    return absl::DataLossError(Cat(path, " is not a cdpcore snapshot, or its header is corrupt"));
  out.format = Get<uint32_t>(b.data() + 8);
  if (out.format < kOldestReadable || out.format > kFormat)
    return absl::UnimplementedError(Cat("snapshot ", path, " has format version ", out.format, "; this library reads ",
                                        kOldestReadable, " to ", kFormat));
  out.seq = Get<uint64_t>(b.data() + 16);
  if (out.seq != f.seq) return absl::DataLossError(Cat("snapshot ", path, ": its header says it is at entry ", out.seq));
  const uint64_t body = b.size() - kHeader - kTrailer;
  const char* t = b.data() + b.size() - kTrailer;
  if (Get<uint64_t>(t) != body)
    return absl::DataLossError(Cat("snapshot ", path, " is cut short or has bytes after its end"));
  out.body = std::string_view(b.data() + kHeader, body);
  if (XXH3_64bits(out.body.data(), out.body.size()) != Get<uint64_t>(t + 8))
    return absl::DataLossError(Cat("snapshot ", path, ": checksum mismatch"));
  return out;
}

absl::Status Remove(const std::string& dir, const std::string& name) {
  std::string path = Join(dir, name);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return OsError("cannot remove", path, errno);
  return absl::OkStatus();
}

}  // namespace cdp::snap
