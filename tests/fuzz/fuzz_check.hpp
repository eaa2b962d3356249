// Shared by the fuzz targets: a check that aborts (a finding for libFuzzer and for the
// replay driver alike) and a small reader for the engine's JSON results.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "simdjson.h"

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                               \
    }                                                                             \
  } while (0)

namespace cdpfuzz {

// Parses a result document; every result the engine returns must be valid JSON.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Json(const std::string& text) { FUZZ_CHECK(!parser.parse(text).get(root)); }
  uint64_t U(const char* key) {
    uint64_t v = 0;
    FUZZ_CHECK(!root[key].get(v));
    return v;
  }
};

}  // namespace cdpfuzz
