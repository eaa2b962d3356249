// keyed_hash.hpp — HMAC-SHA-256 (OpenSSL's libcrypto), for values that must be matched
// without being kept: the tombstones of forgotten identifiers, and the identifiers of
// types stored hashed (IdPolicy::hashed) under the host's key.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "cdp/policy.hpp"

typedef struct evp_mac_ctx_st EVP_MAC_CTX;

namespace cdp {

using Digest = std::array<uint8_t, 32>;

// HMAC-SHA-256 of the parts, concatenated with a 0 byte after each (so ("ab","c") and
// ("a","bc") differ), under key.
Digest KeyedHash(std::string_view key, std::initializer_list<std::string_view> parts);

// The same function under one key for many messages: the key's pads are hashed once, so
// a message costs its own two passes only (the one-shot form redoes the key each time:
// about half the work for a short value). Not thread-safe: one per writer.
class KeyedHasher {
 public:
  explicit KeyedHasher(std::string_view key);
  ~KeyedHasher();
  KeyedHasher(const KeyedHasher&) = delete;
  KeyedHasher& operator=(const KeyedHasher&) = delete;
  Digest operator()(std::initializer_list<std::string_view> parts);

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
};

// A hashed type's stored value (HashedValue in cdp/policy.hpp) for a normalised value:
// the hash covers the type's name, so equal values of two types do not correlate.
std::string HashIdentifier(std::string_view key, const IdPolicy& p, std::string_view value);
std::string HashIdentifier(KeyedHasher& h, const IdPolicy& p, std::string_view value);

}  // namespace cdp
