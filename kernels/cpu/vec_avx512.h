// 16-lane fp32 vector for the AVX-512 attention kernels (include only in a TU built with
// -mavx512f).
#pragma once

#include <immintrin.h>

namespace chorus::kernels::cpu {

struct VecAvx512 {
  static constexpr int kWidth = 16;
  // Register blocking of the GEMM micro-kernel: 6 x 4 accumulators + 4 loads + 1 broadcast of 32.
  static constexpr int kRows = 6;
  static constexpr int kCols = 4;
  __m512 v;

  static VecAvx512 zero() { return {_mm512_setzero_ps()}; }
  static VecAvx512 set1(float x) { return {_mm512_set1_ps(x)}; }
  static VecAvx512 load(const float* p) { return {_mm512_loadu_ps(p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  friend VecAvx512 operator+(VecAvx512 a, VecAvx512 b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend VecAvx512 operator-(VecAvx512 a, VecAvx512 b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend VecAvx512 operator*(VecAvx512 a, VecAvx512 b) { return {_mm512_mul_ps(a.v, b.v)}; }
  static VecAvx512 fmadd(VecAvx512 a, VecAvx512 b, VecAvx512 c) {
    return {_mm512_fmadd_ps(a.v, b.v, c.v)};
  }
  static VecAvx512 max(VecAvx512 a, VecAvx512 b) { return {_mm512_max_ps(a.v, b.v)}; }
  static float reduce_max(VecAvx512 a) { return _mm512_reduce_max_ps(a.v); }
  static float reduce_add(VecAvx512 a) { return _mm512_reduce_add_ps(a.v); }
  // x * 2^n for integral-valued n.
  static VecAvx512 scale_pow2(VecAvx512 x, VecAvx512 n) { return {_mm512_scalef_ps(x.v, n.v)}; }
  static VecAvx512 round(VecAvx512 x) {
    return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  // Lanes of `x` where `key < threshold` become 0.
  static VecAvx512 zero_below(VecAvx512 x, VecAvx512 key, float threshold) {
    const __mmask16 keep = _mm512_cmp_ps_mask(key.v, _mm512_set1_ps(threshold), _CMP_GE_OQ);
    return {_mm512_maskz_mov_ps(keep, x.v)};
  }
};

}  // namespace chorus::kernels::cpu
