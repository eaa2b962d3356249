#include "keyed_hash.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <new>
#include <string>

namespace cdp {

namespace {

constexpr std::string_view kIdentifierDomain = "cdpcore identifier";

}  // namespace

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

KeyedHasher::KeyedHasher(std::string_view key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) throw std::bad_alloc();
  ctx_ = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  if (ctx_ == nullptr) throw std::bad_alloc();
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx_);
    throw std::bad_alloc();
  }
}

KeyedHasher::~KeyedHasher() { EVP_MAC_CTX_free(ctx_); }

Digest KeyedHasher::operator()(std::initializer_list<std::string_view> parts) {
  // Initialising with no key restarts from the key's hashed pads, which the context keeps.
  static const unsigned char kZero = 0;
  bool ok = EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1;
  for (std::string_view p : parts)
    ok = ok && EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(p.data()), p.size()) == 1 &&
         EVP_MAC_update(ctx_, &kZero, 1) == 1;
  Digest out{};
  size_t len = 0;
  if (!ok || EVP_MAC_final(ctx_, out.data(), &len, out.size()) != 1 || len != out.size()) throw std::bad_alloc();
  return out;
}

std::string HashIdentifier(std::string_view key, const IdPolicy& p, std::string_view value) {
  return HashedValue(KeyedHash(key, {kIdentifierDomain, p.name, value}).data(), MaskValue(p.normalizer, value));
}

std::string HashIdentifier(KeyedHasher& h, const IdPolicy& p, std::string_view value) {
  return HashedValue(h({kIdentifierDomain, p.name, value}).data(), MaskValue(p.normalizer, value));
}

}  // namespace cdp
