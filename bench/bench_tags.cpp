// bench/bench_tags.cpp — the tag and audience benchmark (issue 4).
//
// Builds N member profiles (default 1,000,000; bench/profile_data.hpp) through the real
// ingest path, defines 30 tags of every kind, then measures:
//  - full tag evaluation: tag values computed per second when all 30 are defined at once;
//  - memory per person per tag: the columns and bitmaps the tags hold, over persons x tags;
//  - the count of a 6-clause audience over tags (target under 20 ms), with its plan;
//  - a 20-value distribution of the whole population (target under 50 ms);
//  - Advance over one day: persons re-evaluated because a window moved, and the time;
//  - incremental upkeep: records per second ingested with the 30 tags defined.
// Each timed query runs 7 times; the median is reported.
//
// Usage: bench_tags [--persons N] [--seed S] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "cdp/engine.hpp"
#include "profile_data.hpp"

namespace {

using namespace cdpbench;
using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

constexpr const char* kTags = R"J([
  {"name":"orders_365","kind":"statistic","fn":"count","event":"order","window":"365d"},
  {"name":"orders_all","kind":"statistic","fn":"count","event":"order"},
  {"name":"spend_365","kind":"statistic","fn":"sum","event":"order","prop":"amount","window":"365d"},
  {"name":"spend_all","kind":"statistic","fn":"sum","event":"order","prop":"amount"},
  {"name":"aov","kind":"statistic","fn":"avg","event":"order","prop":"amount"},
  {"name":"max_order","kind":"statistic","fn":"max","event":"order","prop":"amount"},
  {"name":"last_order","kind":"statistic","fn":"last","event":"order"},
  {"name":"first_order","kind":"statistic","fn":"first","event":"order"},
  {"name":"days_since_order","kind":"statistic","fn":"days_since","event":"order"},
  {"name":"visits_30","kind":"statistic","fn":"count","event":"visit","window":"30d"},
  {"name":"visit_days_90","kind":"statistic","fn":"active_days","event":"visit","window":"90d"},
  {"name":"skus","kind":"statistic","fn":"distinct","event":"order","prop":"sku"},
  {"name":"search_30","kind":"statistic","fn":"count","event":"search","window":"30d"},
  {"name":"value","kind":"rule","rules":[{"when":"tags.spend_365 >= yuan(3000)","value":"high"},
     {"when":"tags.spend_365 >= yuan(800)","value":"mid"},{"when":"tags.spend_365 > 0","value":"low"}],"default":"none"},
  {"name":"buyer","kind":"rule","when":"count(order) > 0"},
  {"name":"recent_buyer","kind":"rule","when":"count(order, 30d) > 0"},
  {"name":"churn_risk","kind":"rule","when":"tags.days_since_order > 180"},
  {"name":"stage","kind":"rule","rules":[{"when":"tags.days_since_order <= 30","value":"active"},
     {"when":"tags.days_since_order <= 180","value":"dormant"},{"when":"tags.buyer","value":"churned"}],"default":"prospect"},
  {"name":"city","kind":"import"},
  {"name":"gender","kind":"import"},
  {"name":"level","kind":"import"},
  {"name":"age_band","kind":"bucket","expr":"year(attrs.birthday)","buckets":[{"min":1995,"value":"95后"},
     {"min":1990,"max":1995,"value":"90后"},{"min":1985,"max":1990,"value":"85后"},{"min":1970,"max":1985,"value":"70/75后"}],
     "default":"其他"},
  {"name":"spend_band","kind":"bucket","expr":"tags.spend_all","buckets":[
     {"max":500,"value":"b00"},{"min":500,"max":1000,"value":"b01"},{"min":1000,"max":1500,"value":"b02"},
     {"min":1500,"max":2000,"value":"b03"},{"min":2000,"max":2500,"value":"b04"},{"min":2500,"max":3000,"value":"b05"},
     {"min":3000,"max":3500,"value":"b06"},{"min":3500,"max":4000,"value":"b07"},{"min":4000,"max":4500,"value":"b08"},
     {"min":4500,"max":5000,"value":"b09"},{"min":5000,"max":5500,"value":"b10"},{"min":5500,"max":6000,"value":"b11"},
     {"min":6000,"max":6500,"value":"b12"},{"min":6500,"max":7000,"value":"b13"},{"min":7000,"max":7500,"value":"b14"},
     {"min":7500,"max":8000,"value":"b15"},{"min":8000,"max":9000,"value":"b16"},{"min":9000,"max":10000,"value":"b17"},
     {"min":10000,"max":12000,"value":"b18"},{"min":12000,"value":"b19"}]},
  {"name":"rfm","kind":"rfm","thresholds":{"r":[30,90,180,365],"f":[2,4,6,9],"m":[500,1500,3000,6000]},
     "groups":[{"value":"重要价值","r":[4,5],"f":[4,5],"m":[4,5]},{"value":"重要保持","r":[1,3],"f":[4,5],"m":[4,5]},
               {"value":"重要发展","r":[4,5],"f":[1,3],"m":[4,5]},{"value":"一般价值","r":[4,5],"f":[4,5],"m":[1,3]}],
     "default":"一般"},
  {"name":"rfm_q","kind":"rfm","quantiles":5},
  {"name":"channel","kind":"preference","event":"order","prop":"channel"},
  {"name":"visit_channels","kind":"preference","event":"visit","prop":"channel","top":3,"half_life_days":90},
  {"name":"activity","kind":"score","rules":[{"event":"follow","points":20,"cap":20,"per":"day"},
     {"event":"search","points":15,"cap":45,"per":"day"},{"event":"visit","points":1}]},
  {"name":"activity_90","kind":"score","window":"90d","rules":[{"event":"search","points":15},{"event":"visit","points":2},
     {"event":"order","points":50}]},
  {"name":"vip","kind":"rule","when":"tags.value == \"high\" && tags.orders_365 >= 3"}
])J";

constexpr const char* kAudience =
    R"({"expr":"tags.value == \"high\" && tags.orders_365 >= 2 && tags.channel in [\"tmall\", \"jd\"] && tags.city == \"上海\" && !tags.churn_risk && tags.activity >= 20"})";
constexpr const char* kDistribution = R"({"expr":"true","tags":["spend_band"],"top":20})";

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double TimeMedian(F&& f) {
  std::vector<double> t;
  for (int i = 0; i < 7; ++i) {
    auto t0 = Clock::now();
    f();
    t.push_back(Seconds(Clock::now() - t0));
  }
  return Median(t);
}

// n orders on existing persons (spread over them), from time from on.
void OrdersBatch(std::string& batch, uint64_t n, uint64_t persons, int64_t from) {
  batch.clear();
  for (uint64_t i = 0; i < n; ++i) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"source\":\"tmall\",\"ts\":%lld,\"ids\":{\"mobile\":\"139%08llu\"},\"event\":{\"type\":\"order\","
                  "\"amount\":\"99.00\",\"channel\":\"tmall\"}}\n",
                  static_cast<long long>(from + 1000 + static_cast<int64_t>(i)),
                  static_cast<unsigned long long>((i * 7919) % persons));
    batch += buf;
  }
}

[[noreturn]] void Die(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "bench_tags: %s: %s\n", what, std::string(st.message()).c_str());
  std::exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t persons = 1'000'000, seed = 42;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) persons = 20'000;
    else if (!std::strcmp(argv[i], "--persons") && i + 1 < argc) persons = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: bench_tags [--persons N] [--seed S] [--quick]\n");
      return 1;
    }
  }
  auto opened = cdp::Engine::Open(kProfileConfig);
  if (!opened.ok()) Die("open", opened.status());
  cdp::Engine& e = **opened;

  Rng rng{seed};
  uint64_t events = 0;
  std::string batch;
  for (uint64_t first = 0; first < persons; first += 20'000) {
    batch.clear();
    for (uint64_t i = first; i < std::min(persons, first + 20'000); ++i) Person(rng, i, batch, events);
    if (auto r = e.IngestNdjson(batch, false); !r.ok()) Die("ingest", r.status());
  }
  const int64_t now = kNow + 10 * 3600 * 1000;
  if (auto r = e.Advance(now); !r.ok()) Die("advance", r.status());
  // The same kind of incremental batch as below, before any tag exists: the baseline.
  const uint64_t more = std::min<uint64_t>(persons, 100'000);
  OrdersBatch(batch, more, persons, now - kDay);
  auto tb = Clock::now();
  if (auto r = e.IngestNdjson(batch, false); !r.ok()) Die("ingest", r.status());
  const double base_s = Seconds(Clock::now() - tb);
  const uint64_t rss0 = ProcStatusBytes("VmRSS");

  auto t0 = Clock::now();
  auto defined = e.DefineTags(kTags);
  const double define_s = Seconds(Clock::now() - t0);
  if (!defined.ok()) Die("define", defined.status());
  const uint64_t ntags = e.tags().order().size();
  const uint64_t evaluations = e.tags().evaluations();
  const double tag_bytes = static_cast<double>(e.tags().bytes());
  const uint64_t rss1 = ProcStatusBytes("VmRSS");

  std::string count_json, dist_json;
  const double count_s = TimeMedian([&] {
    auto r = e.Audience("count", kAudience);
    if (!r.ok()) Die("audience count", r.status());
    count_json = *r;
  });
  const double dist_s = TimeMedian([&] {
    auto r = e.Audience("distribution", kDistribution);
    if (!r.ok()) Die("distribution", r.status());
    dist_json = *r;
  });

  // One day later: only persons whose windows moved are re-evaluated.
  t0 = Clock::now();
  auto adv = e.Advance(now + kDay);
  const double advance_s = Seconds(Clock::now() - t0);
  if (!adv.ok()) Die("advance", adv.status());

  // Incremental: new orders for existing persons, with every tag defined.
  OrdersBatch(batch, more, persons, now + kDay);
  t0 = Clock::now();
  if (auto r = e.IngestNdjson(batch, false); !r.ok()) Die("ingest with tags", r.status());
  const double incr_s = Seconds(Clock::now() - t0);

  std::printf("bench_tags: %llu persons, %llu events, %llu tags (one core)\n",
              static_cast<unsigned long long>(persons), static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(ntags));
  std::printf("  full tag evaluation        %.2f M tag values/s  (%llu values in %.2f s)\n",
              static_cast<double>(evaluations) / define_s / 1e6, static_cast<unsigned long long>(evaluations), define_s);
  std::printf("  memory per person per tag  %.1f bytes (columns and bitmaps: %s; RSS grew %s)\n",
              tag_bytes / static_cast<double>(persons * ntags), Mb(tag_bytes).c_str(),
              Mb(static_cast<double>(rss1 > rss0 ? rss1 - rss0 : 0)).c_str());
  std::printf("  6-clause audience count    %.2f ms   target < 20 ms: %s\n    %s\n", count_s * 1e3,
              count_s < 0.020 ? "PASS" : "MISS", count_json.c_str());
  std::printf("  20-value distribution      %.2f ms   target < 50 ms: %s\n", dist_s * 1e3,
              dist_s < 0.050 ? "PASS" : "MISS");
  std::printf("  advance one day            %.2f s    %s\n", advance_s, adv->c_str());
  std::printf("  ingest with 30 tags        %.0f records/s (%llu orders on existing persons; %.0f/s with no tag)\n",
              static_cast<double>(more) / incr_s, static_cast<unsigned long long>(more),
              static_cast<double>(more) / base_s);
  std::printf("  peak RSS                   %s\n", Mb(static_cast<double>(ProcStatusBytes("VmHWM"))).c_str());
  return 0;
}
