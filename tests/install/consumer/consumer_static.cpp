// A C++20 consumer of the installed static library through the C++ API (cdp/engine.hpp),
// which only the static library offers: the shared one exports the C API alone.
#include <cdp/engine.hpp>

#include <cstdio>

static int Fail(const absl::Status& status) {
  std::fprintf(stderr, "%s\n", status.ToString().c_str());
  return 1;
}

int main() {
  auto engine = cdp::Engine::Open("");
  if (!engine.ok()) return Fail(engine.status());
  auto report = (*engine)->IngestRecord(
      R"({"source":"pos","ts":1700000000000,"ids":{"mobile":"+86 139-1720-5836"}})");
  if (!report.ok()) return Fail(report.status());
  auto oneid = (*engine)->Resolve("mobile", "13917205836");
  if (!oneid.ok()) return Fail(oneid.status());
  if (*oneid == 0) return Fail(absl::InternalError("OneID 0"));
  std::printf("cdpcore (C++, cdp::cdpcore_static): OneID %llu\n",
              static_cast<unsigned long long>(*oneid));
  return 0;
}
