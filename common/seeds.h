// Seeds for independent random streams derived from one experiment seed.
#pragma once

#include <cstdint>

namespace chorus {

// The seed of stream (step, micro) under `seed`: splitmix64 over the three values, well mixed and
// stable across platforms.
inline uint64_t stream_seed(uint64_t seed, int64_t step, int64_t micro) {
  auto mix = [](uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
  };
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(micro));
}

}  // namespace chorus
