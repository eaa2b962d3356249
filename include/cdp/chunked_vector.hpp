// cdp/chunked_vector.hpp — a growable array in fixed chunks.
//
// The identity graph's node, link and person arrays reach hundreds of millions of
// entries. A std::vector doubles: it copies everything on growth, faults in the new pages
// while the old ones are still mapped, and keeps up to half its capacity unused. Fixed
// chunks grow by one chunk, never move an element (references stay valid), and waste at
// most one chunk. Indexing is a shift and a mask into a small, cache-resident table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace cdp {

template <typename T, unsigned kShift = 16>
class ChunkedVector {
 public:
  static constexpr size_t kChunk = size_t{1} << kShift;

  T& operator[](size_t i) { return chunks_[i >> kShift][i & (kChunk - 1)]; }
  const T& operator[](size_t i) const { return chunks_[i >> kShift][i & (kChunk - 1)]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return chunks_.size() * kChunk; }
  T& back() { return (*this)[size_ - 1]; }

  void push_back(const T& v) { emplace_back(v); }
  template <typename... A>
  T& emplace_back(A&&... a) {
    if (size_ == capacity()) chunks_.push_back(std::make_unique<T[]>(kChunk));
    T& slot = (*this)[size_++];
    slot = T{std::forward<A>(a)...};
    return slot;
  }
  void clear() {
    chunks_.clear();
    size_ = 0;
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  size_t size_ = 0;
};

}  // namespace cdp
