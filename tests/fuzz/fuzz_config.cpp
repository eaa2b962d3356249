// Fuzz target: engine config documents. A bad config is refused with a message naming
// where; a good one opens an engine that ingests.
#include <cstdint>
#include <string>

#include "cdp/engine.hpp"
#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view config(reinterpret_cast<const char*>(data), size);
  auto engine = cdp::Engine::Open(config);
  if (!engine.ok()) {
    FUZZ_CHECK(engine.status().message().size() > 0);
    return 0;
  }
  auto report = (*engine)->IngestNdjson(
      "{\"source\":\"pos\",\"ts\":1,\"ids\":{\"mobile\":\"+86 139 1720 5836\",\"member_no\":\"M1\"}}\n", true);
  FUZZ_CHECK(report.ok());
  cdpfuzz::Json j(*report);
  FUZZ_CHECK(j.U("accepted") + j.U("rejected") == 1);
  return 0;
}
