#include "keyed_hash.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <new>
#include <string>

namespace cdp {

Digest KeyedHash(std::string_view key, std::initializer_list<std::string_view> parts) {
  std::string msg;
  for (std::string_view p : parts) {
    msg.append(p.data(), p.size());
    msg.push_back('\0');
  }
  Digest out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), out.data(), &len) == nullptr ||
      len != out.size())
    throw std::bad_alloc();  // libcrypto fails only when it cannot allocate
  return out;
}

}  // namespace cdp
