// Scalar reads and writes of fp32 / bf16 elements for the attention kernels.
#pragma once

// Every function here is static: the per-ISA kernel builds include this header, and internal
// linkage keeps a copy built with wider instructions from replacing the baseline one.

#include <cstdint>
#include <cstring>

#include "kernels/attention.h"

namespace chorus::kernels::cpu {

static inline float bf16_to_float(uint16_t bits) {
  const uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, sizeof(value));
  return value;
}

// Round to nearest even, as LibTorch does; NaN stays NaN.
static inline uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

static inline float load_element(const void* base, ElementType type, int64_t offset) {
  if (type == ElementType::kFloat32) return static_cast<const float*>(base)[offset];
  return bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
}

static inline void store_element(void* base, ElementType type, int64_t offset, float value) {
  if (type == ElementType::kFloat32) {
    static_cast<float*>(base)[offset] = value;
  } else {
    static_cast<uint16_t*>(base)[offset] = float_to_bf16(value);
  }
}

// Offset of element [b, h, row, col] of a strided view.
static inline int64_t view_offset(const int64_t* strides, int64_t b, int64_t h, int64_t row,
                                  int64_t col) {
  return b * strides[0] + h * strides[1] + row * strides[2] + col * strides[3];
}

// Whether query `qi` sees key `kj` under the mask's boolean parts (causal, lengths, groups).
static inline bool mask_allows(const AttentionParams& p, int64_t b, int64_t qi, int64_t kj) {
  const AttentionMask& m = p.mask;
  if (m.causal && kj > qi + (p.nk - p.nq)) return false;
  if (m.key_lengths != nullptr && kj >= m.key_lengths[b]) return false;
  if (m.group_visibility != nullptr) {
    const int64_t g = m.query_groups[b * m.query_groups_batch_stride + qi];
    const int64_t h = m.key_groups[b * m.key_groups_batch_stride + kj];
    if (m.group_visibility[g * m.num_groups + h] == 0) return false;
  }
  return true;
}

}  // namespace chorus::kernels::cpu
