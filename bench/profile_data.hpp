// bench/profile_data.hpp — the member profiles the profile and tag benchmarks share:
// two years of behaviour per person (visits, searches, orders with amounts and channels,
// follows) and a few attributes from several systems, as NDJSON records. Deterministic.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cdpbench {

// splitmix64: deterministic on every machine.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

inline constexpr int64_t kDay = 86'400'000;
inline constexpr int64_t kNow = 1735660800000;  // 2025-01-01T00:00:00+08:00

// One person's records: a few with attributes, the rest events over two years.
inline void Person(Rng& r, uint64_t i, std::string& out, uint64_t& events) {
  static const char* cities[] = {"上海", "北京", "杭州", "广州", "深圳", "成都"};
  static const char* channels[] = {"mini_program", "tmall", "jd", "app", "pos"};
  static const char* sources[] = {"crm", "tmall", "app", "pos"};
  char mobile[16];
  std::snprintf(mobile, sizeof mobile, "139%08" PRIu64, i);
  char buf[512];
  const int64_t start = kNow - 730 * kDay;
  // Attributes from two or three systems.
  int n_attr = 2 + static_cast<int>(r.Below(2));
  for (int k = 0; k < n_attr; ++k) {
    std::snprintf(buf, sizeof buf,
                  "{\"source\":\"%s\",\"ts\":%" PRId64 ",\"ids\":{\"mobile\":\"%s\"},\"attrs\":{\"city\":\"%s\","
                  "\"gender\":\"%s\",\"birthday\":\"19%02d-%02d-%02d\",\"level\":%d}}\n",
                  sources[k % 4], start + static_cast<int64_t>(r.Below(730)) * kDay, mobile,
                  cities[r.Below(6)], r.Below(2) ? "f" : "m", 70 + static_cast<int>(r.Below(30)),
                  1 + static_cast<int>(r.Below(12)), 1 + static_cast<int>(r.Below(28)),
                  static_cast<int>(r.Below(4)));
    out += buf;
  }
  // 5 to 40 events; bursts on a few active days, as browsing comes.
  int n = 5 + static_cast<int>(r.Below(36));
  int64_t day = static_cast<int64_t>(r.Below(730));
  for (int k = 0; k < n; ++k) {
    if (r.Below(3) == 0) day = static_cast<int64_t>(r.Below(730));
    int64_t ts = start + day * kDay + static_cast<int64_t>(r.Below(kDay));
    uint64_t kind = r.Below(100);
    const char* ch = channels[r.Below(5)];
    if (kind < 25) {
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"%s\",\"ts\":%" PRId64 ",\"ids\":{\"mobile\":\"%s\"},\"event\":{\"type\":\"order\","
                    "\"amount\":\"%d.%02d\",\"channel\":\"%s\",\"sku\":\"S%d\"}}\n",
                    ch, ts, mobile, 9 + static_cast<int>(r.Below(900)), static_cast<int>(r.Below(100)), ch,
                    static_cast<int>(r.Below(500)));
    } else if (kind < 80) {
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"%s\",\"ts\":%" PRId64 ",\"ids\":{\"mobile\":\"%s\"},\"event\":{\"type\":\"visit\","
                    "\"channel\":\"%s\"}}\n",
                    ch, ts, mobile, ch);
    } else if (kind < 95) {
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"app\",\"ts\":%" PRId64 ",\"ids\":{\"mobile\":\"%s\"},\"event\":{\"type\":\"search\"}}\n",
                    ts, mobile);
    } else {
      std::snprintf(buf, sizeof buf,
                    "{\"source\":\"wechat\",\"ts\":%" PRId64 ",\"ids\":{\"mobile\":\"%s\"},\"event\":{\"type\":\"follow\"}}\n",
                    ts, mobile);
    }
    out += buf;
    ++events;
  }
}

inline std::string Mb(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MB", bytes / 1e6);
  return b;
}

// The engine config the profile benchmarks ingest under.
inline constexpr const char* kProfileConfig = R"({"attributes":{"birthday":{"type":"date"},
    "level":{"type":"int","survivorship":"max"},
    "city":{"survivorship":"source_priority","sources":["crm","app","tmall","pos"]}}})";

}  // namespace cdpbench
