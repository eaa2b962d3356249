// bench/bench_profile.cpp — the profile and expression benchmark (issue 3).
//
// Builds N member profiles (default 1,000,000) with two years of behaviour each: visits,
// searches, orders with amounts and properties, follows; a few attributes from several
// sources. Everything goes through the real path (NDJSON → parser → identity → profile
// store), in batches. Then:
//  - bytes per stored event, properties excluded (target ≤ 32): the event rows and the
//    day counters they feed; beside it the whole store per event, which adds each
//    person's attributes, identifier sets and headers, with and without properties;
//  - evaluations per second, one thread, of a realistic 5-clause condition with two
//    window functions over every profile (target ≥ 5,000,000/s), with the share of
//    persons it selects so the figure is not an early-exit artefact.
//
// Usage: bench_profile [--persons N] [--seed S] [--quick] [--expr CONDITION]
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "profile_data.hpp"
#include "cdp/engine.hpp"
#include "cdp/expr.hpp"
#include "cdp/profile.hpp"

namespace {

using namespace cdpbench;
using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }


}  // namespace

int main(int argc, char** argv) {
  uint64_t persons = 1'000'000, seed = 42;
  // Evaluation: two windows first, so every person pays for them.
  const char* condition =
      "count(order, 365d) >= 2 && sum(order.amount, 90d) > 100 && attrs.city != \"北京\" && "
      "ids.mobile > 0 && attrs.gender == \"f\"";
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) persons = 20'000;
    else if (!std::strcmp(argv[i], "--persons") && i + 1 < argc) persons = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (!std::strcmp(argv[i], "--expr") && i + 1 < argc) condition = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_profile [--persons N] [--seed S] [--quick] [--expr CONDITION]\n");
      return 1;
    }
  }
  auto opened = cdp::Engine::Open(kProfileConfig);
  if (!opened.ok()) {
    std::fprintf(stderr, "bench_profile: %s\n", std::string(opened.status().message()).c_str());
    return 1;
  }
  cdp::Engine& e = **opened;
  const uint64_t rss_before = cdpbench::ProcStatusBytes("VmRSS");

  // Ingest in batches of 20,000 persons.
  Rng rng{seed};
  uint64_t events = 0, lines = 0;
  double ingest_s = 0;
  std::string batch;
  for (uint64_t first = 0; first < persons; first += 20'000) {
    batch.clear();
    uint64_t last = std::min(persons, first + 20'000);
    for (uint64_t i = first; i < last; ++i) Person(rng, i, batch, events);
    for (char c : batch) lines += c == '\n';
    auto t0 = Clock::now();
    auto r = e.IngestNdjson(batch, false);
    ingest_s += Seconds(Clock::now() - t0);
    if (!r.ok()) {
      std::fprintf(stderr, "bench_profile: ingest: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
  }
  std::string().swap(batch);
  const cdp::ProfileStore& store = e.profiles();
  auto counts = store.counts();

  uint64_t total = 0, props = 0, events_bytes = 0, cells_bytes = 0;
  for (auto& [name, bytes] : store.Memory()) {
    total += bytes;
    if (name == "event_props") props = bytes;
    if (name == "events") events_bytes = bytes;
    if (name == "day_counters") cells_bytes = bytes;
  }
  const double per_event = static_cast<double>(total - props) / static_cast<double>(counts.events);

  auto compiled = e.CompileExpr(condition, false);
  if (!compiled.ok()) {
    std::fprintf(stderr, "bench_profile: compile: %s\n", std::string(compiled.status().message()).c_str());
    return 1;
  }
  cdp::Evaluator ev(e.expr_limits());
  std::vector<const cdp::Profile*> all;
  all.reserve(counts.profiles);
  for (uint32_t s = 0; s < store.slots(); ++s)
    if (const cdp::Profile* p = store.AtSlot(s)) all.push_back(p);
  uint64_t selected = 0, evaluations = 0;
  double eval_s = 0;
  // At least 3M evaluations after a warm-up round, so small runs measure something.
  const size_t rounds = 1 + std::max<size_t>(2, 3'000'000 / std::max<size_t>(all.size(), 1));
  for (size_t round = 0; round < rounds; ++round) {  // the first round warms the evaluator
    uint64_t sel = 0;
    auto t0 = Clock::now();
    // The way a scan over many persons runs: the profile headers 32 ahead, their arrays 16
    // ahead, so cache misses overlap instead of queueing.
    for (size_t k = 0; k < all.size(); ++k) {
      if (k + 32 < all.size()) cdp::ProfileStore::PrefetchHeader(all[k + 32]);
      if (k + 16 < all.size()) cdp::ProfileStore::Prefetch(all[k + 16]);
      const cdp::Profile* p = all[k];
      cdp::ProfileView view(store, p, p->oneid);
      auto r = ev.Eval(*compiled, view, kNow + 10 * 3600 * 1000);
      sel += r.ok() && r->value.kind == cdp::ValueKind::kBool && r->value.b;
    }
    if (round > 0) {
      eval_s += Seconds(Clock::now() - t0);
      evaluations += all.size();
      selected = sel;
    }
  }
  const double eval_rate = static_cast<double>(evaluations) / eval_s;
  // The same over the first 2,000 persons, which stay in cache: the evaluator's own cost,
  // without the memory traffic of visiting a million profiles.
  double hot_rate = 0;
  {
    const size_t n = std::min<size_t>(all.size(), 2000);
    uint64_t count = 0;
    auto t0 = Clock::now();
    while (count < 3'000'000 && n > 0) {
      for (size_t k = 0; k < n; ++k) {
        cdp::ProfileView view(store, all[k], all[k]->oneid);
        auto r = ev.Eval(*compiled, view, kNow + 10 * 3600 * 1000);
        count += r.ok();
      }
    }
    hot_rate = static_cast<double>(count) / Seconds(Clock::now() - t0);
  }
  const uint64_t rss_after = cdpbench::ProcStatusBytes("VmRSS");

  std::printf("bench_profile: %" PRIu64 " persons, %" PRIu64 " records, %" PRIu64 " events (seed %" PRIu64 ")\n\n",
              persons, lines, counts.events, seed);
  std::printf("%-46s %-18s %-12s %s\n", "figure", "value", "target", "result");
  auto row = [](const char* f, const std::string& v, const char* t, const char* verdict) {
    std::printf("%-46s %-18s %-12s %s\n", f, v.c_str(), t, verdict);
  };
  char v[64];
  std::snprintf(v, sizeof v, "%.2fM rec/s", static_cast<double>(lines) / ingest_s / 1e6);
  row("ingest throughput (parse+link+profile)", v, "", "");
  const double event_store = static_cast<double>(events_bytes + cells_bytes) / static_cast<double>(counts.events);
  std::snprintf(v, sizeof v, "%.1f B", event_store);
  row("event store bytes per event (rows + counters)", v, "<= 32 B", event_store <= 32 ? "PASS" : "MISS");
  std::snprintf(v, sizeof v, "%.1f B", static_cast<double>(events_bytes) / static_cast<double>(counts.events));
  row("  of which the event rows", v, "", "");
  std::snprintf(v, sizeof v, "%.1f B", static_cast<double>(cells_bytes) / static_cast<double>(counts.events));
  row("  of which the day counters", v, "", "");
  std::snprintf(v, sizeof v, "%.1f B", per_event);
  row("whole store per event, no properties", v, "", "");
  std::snprintf(v, sizeof v, "%.1f B", static_cast<double>(total) / static_cast<double>(counts.events));
  row("whole store per event, with properties", v, "", "");
  row("profile store total", Mb(static_cast<double>(total)), "", "");
  row("process RSS growth", Mb(static_cast<double>(rss_after - rss_before)), "", "");
  std::snprintf(v, sizeof v, "%.2fM eval/s", eval_rate / 1e6);
  row("5-clause condition, 2 windows, one thread", v, ">= 5M/s", eval_rate >= 5e6 ? "PASS" : "MISS");
  std::snprintf(v, sizeof v, "%.2fM eval/s", hot_rate / 1e6);
  row("  the same, 2,000 persons in cache", v, "", "");
  std::snprintf(v, sizeof v, "%.1f%%", 100.0 * static_cast<double>(selected) / static_cast<double>(all.size()));
  row("  persons selected", v, "", "");
  std::printf("\ncondition: %s\n", condition);
  return 0;
}
