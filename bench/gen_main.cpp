// bench/gen_main.cpp — cdp_gen: writes the benchmark's data set to disk, for the cdp tool
// or any other consumer.
//
//   cdp_gen [--persons N] [--seed S] [--out FILE.ndjson] [--truth FILE.tsv]
//
// FILE.ndjson holds the records, one per line. FILE.tsv holds "line<TAB>person" for every
// record (line numbers 1-based, as in `cdp ingest --assign`), the true person of each line.
// A summary with the recall ceiling goes to stderr.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gen.hpp"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: cdp_gen [--persons N (default 1000000)] [--seed S (42)]\n"
               "               [--out FILE (oneid.ndjson)] [--truth FILE (oneid.truth.tsv)]\n");
  return 1;
}

bool Write(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  cdpbench::GenOptions opt;
  std::string out = "oneid.ndjson", truth_path = "oneid.truth.tsv";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    char* end = nullptr;
    if (a == "--persons") {
      const unsigned long long v = std::strtoull(argv[++i], &end, 10);
      if (*end || v == 0 || v > 100'000'000) return Usage();
      opt.persons = uint32_t(v);
    } else if (a == "--seed") {
      opt.seed = std::strtoull(argv[++i], &end, 10);
      if (*end) return Usage();
    } else if (a == "--out") {
      out = argv[++i];
    } else if (a == "--truth") {
      truth_path = argv[++i];
    } else {
      return Usage();
    }
  }
  const cdpbench::Dataset d = cdpbench::Generate(opt);
  std::string truth;
  truth.reserve(d.records() * 16);
  for (size_t i = 0; i < d.records(); ++i)
    truth += std::to_string(i + 1) + '\t' + std::to_string(d.person[i]) + '\n';
  if (!Write(out, d.ndjson) || !Write(truth_path, truth)) {
    std::perror("cdp_gen: write");
    return 1;
  }
  const cdpbench::Truth& t = d.truth;
  std::fprintf(stderr,
               "cdp_gen: %" PRIu64 " persons, %zu records -> %s, truth -> %s\n"
               "same-person pairs %" PRIu64 ", recall ceiling %.4f (strong ids only %.4f)\n",
               t.persons, d.records(), out.c_str(), truth_path.c_str(), t.true_pairs,
               double(t.ceiling_pairs) / double(t.true_pairs),
               double(t.strong_ceiling_pairs) / double(t.true_pairs));
  return 0;
}
