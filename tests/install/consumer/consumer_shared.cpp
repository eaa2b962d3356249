// A C++20 consumer of the installed shared library: one record in, its OneID out.
#include <cdp.h>

#include <cstdio>
#include <memory>
#include <string_view>

int main() {
  constexpr std::string_view record =
      R"({"source":"pos","ts":1700000000000,"ids":{"mobile":"+86 139-1720-5836"}})";
  cdp_engine* raw = nullptr;
  int32_t rc = cdp_engine_open(&raw, nullptr, 0, nullptr);
  std::unique_ptr<cdp_engine, decltype(&cdp_engine_close)> engine(raw, cdp_engine_close);
  uint64_t oneid = 0;
  if (rc == CDP_OK) rc = cdp_ingest_record(nullptr, engine.get(), record.data(), record.size());
  if (rc == CDP_OK) rc = cdp_resolve(&oneid, engine.get(), "mobile", 6, "13917205836", 11);
  if (rc != CDP_OK || oneid == 0) {
    std::fprintf(stderr, "%s: %s\n", cdp_status_str(rc), cdp_error_last());
    return 1;
  }
  std::printf("cdpcore %s (C++, cdp::cdpcore): OneID %llu\n", cdp_version_string(),
              static_cast<unsigned long long>(oneid));
  return 0;
}
