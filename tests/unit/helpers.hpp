// Test helpers: an engine with the default config and JSON reading via simdjson.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cdp/engine.hpp"
#include "simdjson.h"

namespace cdptest {

inline std::unique_ptr<cdp::Engine> OpenEngine(std::string_view config = "") {
  auto e = cdp::Engine::Open(config);
  REQUIRE_MESSAGE(e.ok(), std::string(e.status().message()));
  return std::move(*e);
}

// A parsed JSON document that stays alive with its parser.
struct Json {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Json(const std::string& text) {
    auto err = parser.parse(text).get(root);
    REQUIRE_MESSAGE(!err, text);
  }
  simdjson::dom::element operator[](const char* k) { return root[k].value(); }
};

inline uint64_t U(simdjson::dom::element e) { return e.get_uint64().value(); }
// An array by value: simdjson_result<T>::value() on a temporary returns a reference into
// it, which a range-for would outlive.
inline simdjson::dom::array Arr(simdjson::dom::element e) {
  simdjson::dom::array a;
  REQUIRE(!e.get_array().get(a));
  return a;
}

inline std::string Ingest(cdp::Engine& e, const std::string& ndjson, bool assign = true) {
  auto r = e.IngestNdjson(ndjson, assign);
  REQUIRE_MESSAGE(r.ok(), std::string(r.status().message()));
  return *r;
}

inline uint64_t Resolve(cdp::Engine& e, std::string_view type, std::string_view value) {
  auto r = e.Resolve(type, value);
  return r.ok() ? *r : 0;
}

inline std::string Rec(std::string_view source, int64_t ts, std::string_view ids, std::string_view extra = "") {
  std::string s = "{\"source\":\"" + std::string(source) + "\",\"ts\":" + std::to_string(ts) + ",\"ids\":{" +
                  std::string(ids) + "}";
  if (!extra.empty()) s += "," + std::string(extra);
  return s + "}";
}

inline std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

inline std::vector<uint64_t> Assign(const std::string& report) {
  Json j(report);
  std::vector<uint64_t> out;
  for (auto v : Arr(j["assign"])) out.push_back(v.get_uint64().value());
  return out;
}

// Feed events of one kind, as raw JSON strings.
inline std::vector<std::string> FeedOf(cdp::Engine& e, std::string_view kind) {
  std::string text = e.FeedJson(0, 100000);
  Json j(text);
  std::vector<std::string> out;
  for (auto ev : Arr(j["events"])) {
    std::string_view k = ev["kind"].get_string().value();
    if (k == kind) out.push_back(std::string(simdjson::minify(ev)));
  }
  return out;
}

}  // namespace cdptest
