// Fuzz target: NDJSON records. Whatever the bytes, ingestion returns a report that is
// valid JSON, accounts for every line, and leaves the engine answering queries.
#include <cstdint>
#include <string>

#include "cdp/engine.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto engine = std::move(*cdp::Engine::Open(R"({"quarantine_after":3,"limits":{"max_ids_per_person":16}})"));
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto report = engine->IngestNdjson(input, true);
  FUZZ_CHECK(report.ok());
  cdpfuzz::Json j(*report);
  uint64_t lines = j.U("lines"), accepted = j.U("accepted"), rejected = j.U("rejected");
  FUZZ_CHECK(accepted + rejected == lines);
  auto again = engine->ResolveNdjson(input);
  FUZZ_CHECK(again.ok());
  cdpfuzz::Json r(*again);
  FUZZ_CHECK(r.U("lines") == lines);
  auto one = engine->IngestRecord(input);  // one record (usually malformed): never crashes
  (void)one;
  cdpfuzz::Json stats(engine->StatsJson());
  FUZZ_CHECK(stats.U("persons") <= stats.U("identifiers"));
  cdpfuzz::Json feed(engine->FeedJson(0, 64));
  (void)engine->TrimFeed(engine->feed().next());  // in memory: cannot fail
  return 0;
}
