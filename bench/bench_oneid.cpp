// bench/bench_oneid.cpp — the OneID benchmark (issue 2).
//
// Generates a year of noisy omnichannel touchpoints with ground truth (gen.hpp), ingests
// them end to end through the C API (cdp_ingest_ndjson with CDP_INGEST_ASSIGN, batches of
// NDJSON lines, one thread), and prints one table: throughput, memory, bytes per
// identifier, and the pairwise precision, recall and F1 of the record -> OneID assignment
// against the truth, beside the recall ceiling the data allows and beside what naive
// connected components would score. Every figure stands beside its target.
//
// Usage: bench_oneid [--persons N] [--seed S] [--batch LINES] [--quick]
// Exit status: 0 when the run completed (whatever the verdicts), 1 on a usage or API error.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "bench_util.hpp"
#include "cdp.h"
#include "gen.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

[[noreturn]] void Fail(const char* what, int32_t status) {
  std::fprintf(stderr, "bench_oneid: %s: %s: %s\n", what, cdp_status_str(status),
               cdp_error_last());
  std::exit(1);
}

// A cdp_buf that frees itself.
struct Buf {
  cdp_buf b = CDP_BUF_INIT;
  ~Buf() { cdp_buf_free(&b); }
};


uint64_t Pairs(uint64_t n) { return n * (n - 1) / 2; }

// Pairwise agreement of a record clustering with the true persons, from contingency
// counts: a cell (cluster, person) of n records holds n(n-1)/2 agreeing pairs. No pair is
// ever enumerated.
struct Score {
  uint64_t predicted_pairs = 0, true_pairs = 0, agreeing_pairs = 0;
  uint64_t clusters = 0, largest = 0;
  double precision() const { return predicted_pairs ? double(agreeing_pairs) / predicted_pairs : 1.0; }
  double recall() const { return true_pairs ? double(agreeing_pairs) / true_pairs : 1.0; }
  double f1() const {
    const double p = precision(), r = recall();
    return p + r > 0 ? 2 * p * r / (p + r) : 0;
  }
};

Score Evaluate(const std::vector<uint64_t>& cluster, const std::vector<uint32_t>& person,
               uint64_t true_pairs) {
  std::vector<std::pair<uint64_t, uint32_t>> cells(cluster.size());
  for (size_t i = 0; i < cells.size(); ++i) cells[i] = {cluster[i], person[i]};
  std::sort(cells.begin(), cells.end());
  Score s;
  s.true_pairs = true_pairs;
  for (size_t i = 0; i < cells.size();) {
    size_t end = i;
    while (end < cells.size() && cells[end].first == cells[i].first) ++end;
    s.predicted_pairs += Pairs(end - i);
    s.largest = std::max<uint64_t>(s.largest, end - i);
    ++s.clusters;
    for (size_t j = i; j < end;) {
      size_t cell_end = j;
      while (cell_end < end && cells[cell_end].second == cells[j].second) ++cell_end;
      s.agreeing_pairs += Pairs(cell_end - j);
      j = cell_end;
    }
    i = end;
  }
  return s;
}

// Pairs put under one OneID that are not one person, counting only lines without any of
// the given noise bits. The difference from the total says how many false pairs involve a
// line with that noise.
uint64_t FalsePairsWithout(const std::vector<uint64_t>& cluster, const cdpbench::Dataset& d,
                           uint8_t noise) {
  std::vector<uint64_t> c;
  std::vector<uint32_t> p;
  for (size_t i = 0; i < cluster.size(); ++i)
    if (!(d.noise[i] & noise)) c.push_back(cluster[i]), p.push_back(d.person[i]);
  const Score s = Evaluate(c, p, 0);
  return s.predicted_pairs - s.agreeing_pairs;
}

// Naive connected components: every record joined to every other record that shares any
// identifier value, junk placeholders and shared devices included. A plain union-find.
std::vector<uint64_t> NaiveClusters(const cdpbench::Dataset& d) {
  std::vector<uint32_t> parent(d.records());
  std::iota(parent.begin(), parent.end(), 0u);
  auto find = [&](uint32_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::vector<std::pair<uint64_t, uint32_t>> by_key;
  by_key.reserve(d.keys.size());
  for (uint32_t line = 0; line < d.records(); ++line)
    for (uint32_t k = d.key_start[line]; k < d.key_start[line + 1]; ++k)
      by_key.emplace_back(d.keys[k], line);
  std::sort(by_key.begin(), by_key.end());
  for (size_t i = 1; i < by_key.size(); ++i)
    if (by_key[i].first == by_key[i - 1].first)
      parent[find(by_key[i].second)] = find(by_key[i - 1].second);
  std::vector<uint64_t> cluster(d.records());
  for (uint32_t i = 0; i < d.records(); ++i) cluster[i] = find(i);
  return cluster;
}

// ---- the table -----------------------------------------------------------------------------

std::string Group(uint64_t v) {  // 1234567 -> "1,234,567"
  const std::string digits = std::to_string(v);
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}
std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string Mb(uint64_t bytes) { return Fixed(double(bytes) / (1 << 20), 1) + " MB"; }

struct Row {
  std::string figure, value, target, verdict;
};

void PrintTable(const std::vector<Row>& rows) {
  size_t w[3] = {6, 5, 6};
  for (const Row& r : rows) {
    w[0] = std::max(w[0], r.figure.size());
    w[1] = std::max(w[1], r.value.size());
    w[2] = std::max(w[2], r.target.size());
  }
  std::printf("%-*s  %*s  %-*s  %s\n", int(w[0]), "figure", int(w[1]), "value", int(w[2]),
              "target", "result");
  std::printf("%s\n", std::string(w[0] + w[1] + w[2] + 12, '-').c_str());
  for (const Row& r : rows)
    std::printf("%-*s  %*s  %-*s  %s\n", int(w[0]), r.figure.c_str(), int(w[1]),
                r.value.c_str(), int(w[2]), r.target.c_str(), r.verdict.c_str());
}

const char* Verdict(bool pass) { return pass ? "PASS" : "MISS"; }

struct Options {
  cdpbench::GenOptions gen;
  uint32_t batch = 65'536;
  bool hashed = false;  // the strong personal identifiers stored as keyed hashes
};

// --hashed: what a PIPL-minded CRM would hash (docs/guarantees.md, "Hashed identifiers").
constexpr std::string_view kHashedConfig =
    R"({"id_types":{"mobile":{"hashed":true},"email":{"hashed":true},"unionid":{"hashed":true}}})";
constexpr std::string_view kBenchKey = "bench key: not a secret, 32 byte";

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](uint64_t lo, uint64_t hi, uint64_t& out) {
      if (i + 1 >= argc) return false;
      char* end = nullptr;
      out = std::strtoull(argv[++i], &end, 10);
      return *end == '\0' && out >= lo && out <= hi;
    };
    uint64_t v = 0;
    if (a == "--quick") {
      o.gen.persons = 20'000;
    } else if (a == "--persons" && value(1, 100'000'000, v)) {
      o.gen.persons = uint32_t(v);
    } else if (a == "--seed" && value(0, UINT64_MAX, v)) {
      o.gen.seed = v;
    } else if (a == "--batch" && value(1, 10'000'000, v)) {
      o.batch = uint32_t(v);
    } else if (a == "--hashed") {
      o.hashed = true;
    } else {
      std::fprintf(stderr,
                   "usage: bench_oneid [--persons N (default 1000000)] [--seed S (42)]\n"
                   "                   [--batch LINES (65536)] [--quick (20000 persons)]\n"
                   "                   [--hashed (mobile, email, unionid stored as keyed hashes)]\n");
      return false;
    }
  }
  return true;
}

int Run(const Options& opt) {
  // 1. Data, in memory. Not part of the ingest time.
  const auto gen_start = Clock::now();
  const cdpbench::Dataset data = cdpbench::Generate(opt.gen);
  const double gen_seconds = Seconds(Clock::now() - gen_start);
  const cdpbench::Truth& truth = data.truth;
  const size_t n = data.records();
  const uint64_t hwm_before = cdpbench::ProcStatusBytes("VmHWM");

  std::printf("OneID benchmark: %s persons, %s records (%s of NDJSON), seed %" PRIu64
              ", batches of %s lines, one thread, cdpcore %s%s\n",
              Group(opt.gen.persons).c_str(), Group(n).c_str(), Mb(data.ndjson.size()).c_str(),
              opt.gen.seed, Group(opt.batch).c_str(), cdp_version_string(),
              opt.hashed ? "; mobile, email and unionid stored hashed (HMAC-SHA-256)" : "");
  std::printf(
      "noise, in records: %s mobiles formatted (+86, 0086, spaces, dashes); %s blocklisted "
      "placeholders;\n  %s store numbers (%s stores); %s household devices (%s shared); "
      "%s kiosk devices (%s kiosks);\n  %s with a device_id only; %s with no clean "
      "identifier at all\n\n",
      Group(truth.formatted_mobiles).c_str(), Group(truth.blocklisted).c_str(),
      Group(truth.store_numbers).c_str(), Group(truth.stores).c_str(),
      Group(truth.family_devices).c_str(), Group(truth.shared_family_devices).c_str(),
      Group(truth.kiosk_devices).c_str(), Group(truth.kiosks).c_str(),
      Group(truth.device_only).c_str(), Group(truth.isolated_records).c_str());
  std::fflush(stdout);

  // 2. Ingest, end to end through the C API. Only the calls are timed; reading the
  // reports is the host's business.
  cdp_engine* engine = nullptr;
  if (int32_t rc = opt.hashed ? cdp_engine_open_keyed(&engine, kHashedConfig.data(), kHashedConfig.size(), nullptr,
                                                      kBenchKey.data(), kBenchKey.size())
                               : cdp_engine_open(&engine, nullptr, 0, nullptr))
    Fail("cdp_engine_open", rc);
  std::vector<uint64_t> assign(n, 0);
  uint64_t accepted = 0, rejected = 0, merges = 0, conflicts = 0;
  std::map<std::string, uint64_t> rejected_ids;
  std::vector<std::string> sample_errors;
  Clock::duration ingest_time{};
  simdjson::dom::parser parser;
  Buf report;
  for (size_t from = 0; from < n; from += opt.batch) {
    const size_t to = std::min(n, from + opt.batch);
    const char* bytes = data.ndjson.data() + data.line_start[from];
    const uint64_t len = data.line_start[to] - data.line_start[from];
    const auto t0 = Clock::now();
    const int32_t rc = cdp_ingest_ndjson(&report.b, engine, bytes, len, CDP_INGEST_ASSIGN);
    ingest_time += Clock::now() - t0;
    if (rc != CDP_OK) Fail("cdp_ingest_ndjson", rc);

    simdjson::dom::element doc = parser.parse(report.b.ptr, report.b.size);
    accepted += uint64_t(doc["accepted"]);
    rejected += uint64_t(doc["rejected"]);
    merges += uint64_t(doc["merges"]);
    conflicts += uint64_t(doc["conflicts"]);
    simdjson::dom::element reasons = doc["ids"]["by_reason"];
    for (auto field : simdjson::dom::object(reasons))
      rejected_ids[std::string(field.key)] += uint64_t(field.value);
    for (simdjson::dom::element e : simdjson::dom::array(doc["errors"]))
      if (sample_errors.size() < 3)
        sample_errors.push_back(simdjson::to_string(e) + " (line " +
                                std::to_string(uint64_t(e["line"]) + from) + " of the data)");
    const simdjson::dom::array ids = doc["assign"];
    if (ids.size() != to - from) {
      std::fprintf(stderr, "bench_oneid: the report assigned %zu OneIDs to %zu lines\n",
                   ids.size(), to - from);
      return 1;
    }
    size_t line = from;
    for (simdjson::dom::element id : ids) assign[line++] = uint64_t(id);
  }
  const double ingest_seconds = Seconds(ingest_time);
  const uint64_t hwm_after = cdpbench::ProcStatusBytes("VmHWM");

  Buf stats_buf;
  if (int32_t rc = cdp_engine_stats(&stats_buf.b, engine)) Fail("cdp_engine_stats", rc);
  const std::string stats_json(stats_buf.b.ptr, stats_buf.b.size);
  simdjson::dom::element stats = parser.parse(stats_json);
  const uint64_t identifiers = uint64_t(stats["identifiers"]);
  const uint64_t engine_persons = uint64_t(stats["persons"]);
  const uint64_t memory_total = uint64_t(stats["memory"]["total"]);
  const uint64_t quarantined = uint64_t(stats["quarantined"]);

  // 3. The record -> OneID assignment, as a CRM that stored each line's OneID and follows
  // merges would hold it: a OneID absorbed after its batch redirects to the survivor.
  std::vector<uint64_t> distinct(assign);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  if (!distinct.empty() && distinct.front() == 0) distinct.erase(distinct.begin());
  std::vector<uint64_t> survivor(distinct.size());
  uint64_t redirected = 0;
  Buf person;
  for (size_t i = 0; i < distinct.size(); ++i) {
    if (int32_t rc = cdp_person_identifiers(&person.b, engine, distinct[i], 0))
      Fail("cdp_person_identifiers", rc);
    survivor[i] = uint64_t(parser.parse(person.b.ptr, person.b.size)["oneid"]);
    redirected += survivor[i] != distinct[i];
  }
  std::vector<uint64_t> cluster(n);
  uint64_t unassigned = 0;
  for (size_t i = 0; i < n; ++i) {
    if (assign[i] == 0) {  // linked nothing: a cluster of its own (OneIDs are < 2^63)
      cluster[i] = 1ull << 63 | i;
      ++unassigned;
    } else {
      cluster[i] = survivor[size_t(std::lower_bound(distinct.begin(), distinct.end(), assign[i]) -
                                   distinct.begin())];
    }
  }
  // 4. The assignment a CRM holds once it refreshes its stored OneIDs
  // (cdp_records_resolve): each line's person in the final graph, after every merge,
  // split and quarantine that later batches caused.
  std::vector<uint64_t> current(n);
  uint64_t current_unassigned = 0;
  const auto r0 = Clock::now();
  for (size_t from = 0; from < n; from += opt.batch) {
    const size_t to = std::min(n, from + opt.batch);
    const char* bytes = data.ndjson.data() + data.line_start[from];
    const uint64_t len = data.line_start[to] - data.line_start[from];
    if (int32_t rc = cdp_records_resolve(&report.b, engine, bytes, len)) Fail("cdp_records_resolve", rc);
    simdjson::dom::element doc = parser.parse(report.b.ptr, report.b.size);
    size_t line = from;
    for (simdjson::dom::element id : simdjson::dom::array(doc["oneids"])) {
      const uint64_t v = uint64_t(id);
      current[line] = v ? v : (1ull << 63 | line);
      current_unassigned += v == 0;
      ++line;
    }
  }
  const double resolve_seconds = Seconds(Clock::now() - r0);
  if (int32_t rc = cdp_engine_close(engine)) Fail("cdp_engine_close", rc);

  const Score stored_score = Evaluate(cluster, data.person, truth.true_pairs);
  const Score engine_score = Evaluate(current, data.person, truth.true_pairs);
  const Score naive = Evaluate(NaiveClusters(data), data.person, truth.true_pairs);
  const double ceiling = double(truth.ceiling_pairs) / double(truth.true_pairs);
  const double strong_ceiling = double(truth.strong_ceiling_pairs) / double(truth.true_pairs);
  const double recall_floor = 0.97 * ceiling;

  // 4. The table.
  const double throughput = double(n) / ingest_seconds;
  const double bytes_per_id = identifiers ? double(memory_total) / double(identifiers) : 0;
  std::vector<Row> rows = {
      {"data generation (excluded below)", Fixed(gen_seconds, 2) + " s", "", ""},
      {"ingest time in cdp_ingest_ndjson", Fixed(ingest_seconds, 2) + " s", "", ""},
      {"ingest throughput, records/s", Group(uint64_t(throughput)), ">= 1,000,000",
       Verdict(throughput >= 1e6)},
      {"lines accepted / rejected", Group(accepted) + " / " + Group(rejected), "", ""},
      {"peak RSS (VmHWM) before ingest", Mb(hwm_before), "", ""},
      {"peak RSS (VmHWM) after ingest", Mb(hwm_after), "", ""},
      {"engine memory.total", Mb(memory_total), "", ""},
      {"distinct identifiers", Group(identifiers), "", ""},
      {"bytes per identifier", Fixed(bytes_per_id, 1), "<= 200",
       Verdict(identifiers && bytes_per_id <= 200)},
      {"persons: engine / true", Group(engine_persons) + " / " + Group(truth.persons), "", ""},
      {"pairwise precision", Fixed(engine_score.precision(), 4), ">= 0.995",
       Verdict(engine_score.precision() >= 0.995)},
      {"pairwise recall", Fixed(engine_score.recall(), 4),
       ">= 0.97 x ceiling = " + Fixed(recall_floor, 4),
       Verdict(engine_score.recall() >= recall_floor)},
      {"recall ceiling (clean-id paths)", Fixed(ceiling, 4), "", ""},
      {"recall ceiling, strong ids only", Fixed(strong_ceiling, 4), "", ""},
      {"pairwise F1", Fixed(engine_score.f1(), 4), "", ""},
      {"as assigned at ingest: precision", Fixed(stored_score.precision(), 4), "(before refresh)", ""},
      {"as assigned at ingest: recall", Fixed(stored_score.recall(), 4), "", ""},
      {"refresh (cdp_records_resolve) time", Fixed(resolve_seconds, 2) + " s", "", ""},
      {"largest OneID / largest person", Group(engine_score.largest) + " / " +
                                             Group(truth.largest_person) + " records", "", ""},
      {"naive CC precision", Fixed(naive.precision(), 4), "< 0.01 (contrast)",
       Verdict(naive.precision() < 0.01)},
      {"naive CC recall", Fixed(naive.recall(), 4), "", ""},
      {"naive CC largest cluster", Group(naive.largest) + " records", "", ""},
  };
  PrintTable(rows);

  std::printf("\nengine: %s merges, %s refused unions (conflicts), %s quarantined identifiers, "
              "%s lines linked nothing (%s after refresh),\n  %s assigned OneIDs absorbed by a later batch\n",
              Group(merges).c_str(), Group(conflicts).c_str(), Group(quarantined).c_str(),
              Group(unassigned).c_str(), Group(current_unassigned).c_str(), Group(redirected).c_str());
  const uint64_t false_pairs = engine_score.predicted_pairs - engine_score.agreeing_pairs;
  std::printf("false pairs (one OneID, two persons): %s", Group(false_pairs).c_str());
  if (false_pairs) {
    std::printf("; involving a line with");
    const std::pair<uint8_t, const char*> kinds[] = {
        {cdpbench::kNoiseStoreNumber, "a store number"},
        {cdpbench::kNoiseBlocklisted, "a blocklisted placeholder"},
        {cdpbench::kNoiseFamilyDevice, "a household device"},
        {cdpbench::kNoiseKioskDevice, "a kiosk device"}};
    for (const auto& [bit, name] : kinds) {
      const uint64_t with = false_pairs - FalsePairsWithout(current, data, bit);
      std::printf("%s %s %s (%s%%)", bit == kinds[0].first ? "" : ",", name,
                  Group(with).c_str(), Fixed(100.0 * double(with) / double(false_pairs), 1).c_str());
    }
  }
  std::printf("\nrejected identifiers:");
  for (const auto& [reason, count] : rejected_ids) std::printf(" %s %s", reason.c_str(), Group(count).c_str());
  std::printf("\nengine stats: %s\n", stats_json.c_str());
  for (const std::string& e : sample_errors) std::printf("rejected line: %s\n", e.c_str());
  std::printf(
      "\nHow to read it. Pairs are unordered pairs of records. Precision = same-OneID pairs "
      "that are one true\nperson / same-OneID pairs; recall = same-person pairs that share a "
      "OneID / same-person pairs. A line's\nOneID is where its identifiers belong in the final "
      "graph (cdp_records_resolve, what a CRM holds\nonce it refreshes); 'as assigned at ingest' "
      "is the OneID its batch assigned, followed to its\nsurvivor if a later merge absorbed it. "
      "A line that linked nothing is alone. "
      "Throughput counts only the time inside cdp_ingest_ndjson; bytes per identifier\nis "
      "memory.total / identifiers from cdp_engine_stats. Naive CC unions records on any "
      "shared value.\n\nThe ceiling: %s\n",
      cdpbench::kCeilingDefinition);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseArgs(argc, argv, opt)) return 1;
  try {
    return Run(opt);
  } catch (const simdjson::simdjson_error& e) {  // a result document not as cdp.h says
    std::fprintf(stderr, "bench_oneid: unexpected result JSON: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_oneid: %s\n", e.what());
  }
  return 1;
}
