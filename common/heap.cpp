// Heap settings for tensor work (see heap.h).
#include "common/heap.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace chorus {

std::string configure_heap_for_tensor_work() {
#if defined(__GLIBC__)
  const char* system = std::getenv("CHORUS_SYSTEM_MALLOC");
  if (system != nullptr && std::strcmp(system, "1") == 0) return "glibc malloc defaults (CHORUS_SYSTEM_MALLOC=1)";
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) ||
      std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr) {
    return "glibc malloc as the environment sets it";
  }
  constexpr int kMmapThreshold = 256 << 20;  // bytes
  constexpr int kTrimThreshold = 1 << 30;
  if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1) {
    return "glibc malloc: mmap threshold 256 MiB, trim threshold 1 GiB";
  }
  return "glibc malloc defaults (mallopt refused the thresholds)";
#else
  return "the C library's malloc defaults";
#endif
}

}  // namespace chorus
