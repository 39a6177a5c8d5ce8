// The GPUs an end-to-end test may give keel's ranks, counted without linking CUDA into the tests: one `GPU n:`
// line of `nvidia-smi -L` per device (MIG instances are indented lines under it), at most as many as
// CUDA_VISIBLE_DEVICES lists when it is set. No nvidia-smi (no driver): 0.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace keel::test {

inline int visible_gpus() {
  static const int count = [] {
    FILE* p = ::popen("nvidia-smi -L 2>/dev/null", "r");
    if (p == nullptr) return 0;
    int n = 0;
    char line[512];
    while (std::fgets(line, sizeof(line), p) != nullptr)
      if (std::string(line).rfind("GPU ", 0) == 0) n++;
    if (::pclose(p) != 0) return 0;
    if (const char* vis = std::getenv("CUDA_VISIBLE_DEVICES"); vis != nullptr) {
      std::stringstream in(vis);
      int listed = 0;
      for (std::string id; std::getline(in, id, ',');) listed += !id.empty();
      if (listed < n) n = listed;
    }
    return n;
  }();
  return count;
}

}  // namespace keel::test
