#include "fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util.hpp"

namespace cdp {

absl::Status OsError(std::string_view what, std::string_view path, int err) {
  return absl::UnavailableError(Cat(what, " ", path, ": ", std::strerror(err)));
}

std::string Join(std::string_view dir, std::string_view name) { return Cat(dir, "/", name); }

absl::Status SyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return OsError("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return OsError("cannot fsync directory", dir, errno);
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, iovec* iov, int n, std::string_view path) {
  while (n > 0) {
    ssize_t w = ::writev(fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return OsError("cannot write", path, errno);
    }
    size_t left = static_cast<size_t>(w);
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --n;
    }
    if (n > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& dir, std::string_view name, std::string_view contents) {
  std::string tmp = Join(dir, Cat(name, ".tmp")), path = Join(dir, name);
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return OsError("cannot create", tmp, errno);
    iovec iov{const_cast<char*>(contents.data()), contents.size()};
    if (auto st = WriteAll(fd.get(), &iov, 1, tmp); !st.ok()) return st;
    if (::fsync(fd.get()) != 0) return OsError("cannot fsync", tmp, errno);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return OsError("cannot rename to", path, errno);
  return SyncDir(dir);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return OsError("cannot open", path, errno);
  }
  std::string out;
  char buf[1 << 14];
  for (;;) {
    ssize_t r = ::read(fd.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return OsError("cannot read", path, errno);
    if (r == 0) return out;
    out.append(buf, static_cast<size_t>(r));
  }
}

std::string SeqFileName(std::string_view prefix, uint64_t seq, std::string_view suffix) {
  static const char kHex[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (int i = 15; i >= 0; --i, seq >>= 4) hex[i] = kHex[seq & 15];
  return Cat(prefix, hex, suffix);
}

bool ParseSeqFileName(std::string_view name, std::string_view prefix, std::string_view suffix, uint64_t& seq) {
  if (name.size() != prefix.size() + 16 + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(prefix.size() + 16) != suffix)
    return false;
  seq = 0;
  for (char c : name.substr(prefix.size(), 16)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    seq = seq << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

absl::StatusOr<std::vector<uint64_t>> ListSeqFiles(const std::string& dir, std::string_view prefix,
                                                   std::string_view suffix) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return OsError("cannot list directory", dir, errno);
  std::vector<uint64_t> out;
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    uint64_t seq;
    if (ParseSeqFileName(ent->d_name, prefix, suffix, seq)) out.push_back(seq);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return OsError("cannot list directory", dir, err);
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status RemoveTempFiles(const std::string& dir, std::vector<std::string>& removed) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return OsError("cannot list directory", dir, errno);
  std::vector<std::string> found;
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string_view name(ent->d_name);
    if (name.size() > 4 && name.ends_with(".tmp")) found.emplace_back(name);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return OsError("cannot list directory", dir, err);
  std::sort(found.begin(), found.end());
  for (std::string& name : found) {
    const std::string path = Join(dir, name);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return OsError("cannot remove", path, errno);
    removed.push_back(std::move(name));
  }
  return found.empty() ? absl::OkStatus() : SyncDir(dir);
}

}  // namespace cdp
