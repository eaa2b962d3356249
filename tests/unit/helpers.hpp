// Test helpers: an engine with the default config and JSON reading via simdjson.
#pragma once

#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cdp/engine.hpp"
#include "simdjson.h"

namespace cdptest {

// Times, in epoch milliseconds: tests pass time in, never read the clock.
inline constexpr int64_t kMin = 60'000;
inline constexpr int64_t kHour = 3'600'000;
inline constexpr int64_t kDay = 86'400'000;
inline constexpr int64_t kMar1 = 1709222400000;  // 2024-03-01T00:00:00+08:00

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

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cdp-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(std::string_view name) const { return path + "/" + std::string(name); }
};

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The names of dir's files that contain needle: what an erasure must leave empty.
inline std::vector<std::string> Holding(const std::string& dir, std::string_view needle) {
  std::vector<std::string> out;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (ReadAll(f.path().string()).find(needle) != std::string::npos) out.push_back(f.path().filename().string());
  return out;
}

// Every slot's tags, as text: two tag engines that agree print the same.
inline std::string Persons(const cdp::TagEngine& t) {
  std::string out;
  for (uint32_t s = 0; s < t.store().slots(); ++s) {
    out += std::to_string(s) + " ";
    t.AppendPersonTags(out, s);
    out += "\n";
  }
  return out;
}

inline void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A file of the bundled data (examples/data), which must exist.
inline std::string DataFile(std::string_view name) {
  const std::string path = std::string(CDP_SOURCE_DIR) + "/examples/data/" + std::string(name);
  REQUIRE_MESSAGE(std::filesystem::exists(path), path);
  return ReadAll(path);
}

// A persistent engine in dir (created if missing).
inline std::unique_ptr<cdp::Engine> OpenAt(const std::string& dir, std::string_view config = "") {
  auto e = cdp::Engine::Open(config, dir);
  REQUIRE_MESSAGE(e.ok(), std::string(e.status().message()));
  return std::move(*e);
}

// The names in dir that start with prefix, sorted.
inline std::vector<std::string> Files(const std::string& dir, std::string_view prefix) {
  std::vector<std::string> out;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    std::string name = f.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A config with the bundled tags and lifecycle (machines, loyalty, journeys).
inline std::string BundledConfig() {
  std::string tags = DataFile("tags.json");
  std::string machines = DataFile("machines.json"), loyalty = DataFile("loyalty.json"), journeys = DataFile("journeys.json");
  // Each lifecycle file is one object with its own sections; the config's "lifecycle"
  // takes one object with all of them.
  auto body = [](const std::string& obj) {
    size_t a = obj.find('{'), b = obj.rfind('}');
    return obj.substr(a + 1, b - a - 1);
  };
  return "{\"tags\":" + tags + ",\"lifecycle\":{" + body(machines) + "," + body(loyalty) + "," + body(journeys) + "}}";
}

// Every record of the bundled channels, one per line, in time order. A line's "ts" is
// epoch milliseconds or ISO-8601 with an offset; the data has malformed lines on purpose,
// so "ts" is read from the text, and a line without a readable one keeps the time of the
// line before it. Ties keep file order.
inline std::vector<std::string> BundledLines() {
  std::vector<std::pair<int64_t, std::string>> lines;
  for (const char* f : {"app", "crm", "events", "pos", "tmall", "wechat", "wecom"}) {
    std::string text = DataFile(std::string(f) + ".ndjson");
    int64_t last = 0;
    for (size_t at = 0; at < text.size();) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      if (nl > at) {
        std::string line = text.substr(at, nl - at);
        size_t p = line.find("\"ts\":");
        if (p != std::string::npos) {
          p += 5;
          if (line[p] == '"') {
            auto parsed = cdp::ParseTimestamp(std::string_view(line).substr(p + 1, line.find('"', p + 1) - p - 1));
            if (parsed.ok()) last = *parsed;
          } else {
            last = std::strtoll(line.c_str() + p, nullptr, 10);
          }
        }
        lines.emplace_back(last, std::move(line));
      }
      at = nl + 1;
    }
  }
  std::stable_sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& [ts, line] : lines) out.push_back(std::move(line));
  return out;
}

// Everything a host can read: every person (all pages, then each in full, with tags and
// lifecycle), the feed, rules, tags, audiences, the lifecycle catalogue and outbox, and the
// counts (not memory, not durability).
inline std::string Fingerprint(const cdp::Engine& e) {
  std::string out;
  std::vector<uint64_t> oneids;
  for (uint64_t cursor = 0;;) {
    std::string page = e.PersonsPage(cursor, 50, false);
    out += page;
    Json j(page);
    for (auto p : Arr(j["persons"])) oneids.push_back(p["oneid"].get_uint64().value());
    cursor = U(j["next"]);
    if (cursor == 0) break;
  }
  for (uint64_t id : oneids) {
    out += *e.PersonJson(id, false);
    out += *e.PersonTags(id);
    out += *e.PersonLifecycle(id);
  }
  out += e.FeedJson(0, 1000000);
  out += e.RulesJson();
  out += e.TagsJson();
  out += e.AudiencesJson();
  out += e.LifecycleJson();
  out += e.OutboxJson(0, 1000000);
  out += std::to_string(e.Now());
  Json stats(e.StatsJson());
  for (const char* k : {"persons", "identifiers", "links", "conflicts", "quarantined", "redirects", "records",
                        "sources", "rules", "profiles", "feed"})
    out += simdjson::minify(stats[k]);
  simdjson::dom::object life;
  REQUIRE(!stats["lifecycle"].get_object().get(life));
  for (auto [k, v] : life)
    if (k != "bytes") out += std::string(k) + simdjson::minify(v);
  return out;
}

}  // namespace cdptest
