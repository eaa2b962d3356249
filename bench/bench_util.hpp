// bench_util.hpp — what the benchmarks share: reading the process's memory figures.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace cdpbench {

// A line of /proc/self/status in bytes ("VmHWM:  123 kB"), 0 if unavailable.
inline uint64_t ProcStatusBytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':')
      return std::strtoull(line.c_str() + n + 1, nullptr, 10) * 1024;
  return 0;
}

// Wall time, and the process's CPU time: a benchmark that runs on one thread has one
// core's work as its CPU time whatever else the machine is doing.
struct Span {
  double wall = 0, cpu = 0;
};
inline double CpuNow() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}
template <typename F>
Span Measure(F&& f) {
  const auto w0 = std::chrono::steady_clock::now();
  const double c0 = CpuNow();
  f();
  return Span{std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count(), CpuNow() - c0};
}

}  // namespace cdpbench
