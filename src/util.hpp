// util.hpp — small internal helpers shared by the sources.
#pragma once

#include <string.h>  // explicit_bzero

#include <concepts>
#include <string>
#include <string_view>

// xxHash inline: no link-time dependency, and the compiler sees through small hashes.
#define XXH_INLINE_ALL
#include "xxhash.h"

namespace cdp {

// Erasure: overwrites a string's bytes, its whole capacity (a string that was longer once
// keeps those bytes past its size), in a way the compiler may not drop as a dead store,
// then releases it: erased text must not linger in freed memory (a core dump) any more
// than in a snapshot.
inline void WipeString(std::string& s) {
  s.resize(s.capacity());
  ::explicit_bzero(s.data(), s.size());
  std::string().swap(s);
}


// Concatenates strings and integers. (Debian's abseil has its own string_view, which
// absl::StrCat wants; this takes std::string_view.)
namespace detail {
inline void CatOne(std::string& out, const char* s) { out += s; }
template <typename S>  // any string-like: std::string, std::string_view, absl::string_view
  requires requires(const S& s) { s.data(); s.size(); }
void CatOne(std::string& out, const S& s) { out.append(s.data(), s.size()); }
inline void CatOne(std::string& out, char c) { out += c; }
template <std::integral T>
  requires(!std::same_as<T, char> && !std::same_as<T, bool>)
void CatOne(std::string& out, T v) { out += std::to_string(v); }
}  // namespace detail

template <typename... A>
std::string Cat(const A&... a) {
  std::string out;
  (detail::CatOne(out, a), ...);
  return out;
}

}  // namespace cdp
