// bench_util.hpp — what the benchmarks share: reading the process's memory figures.
#pragma once

#include <cstdint>
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

}  // namespace cdpbench
