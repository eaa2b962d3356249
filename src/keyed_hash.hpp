// keyed_hash.hpp — HMAC-SHA-256 (OpenSSL's libcrypto), for values that must be matched
// later without being kept: the tombstones of forgotten identifiers.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace cdp {

using Digest = std::array<uint8_t, 32>;

// HMAC-SHA-256 of the parts, concatenated with a 0 byte after each (so ("ab","c") and
// ("a","bc") differ), under key.
Digest KeyedHash(std::string_view key, std::initializer_list<std::string_view> parts);

}  // namespace cdp
