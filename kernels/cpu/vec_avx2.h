// 8-lane fp32 vector for the AVX2 + FMA attention kernels (include only in a TU built with -mavx2
// -mfma).
#pragma once

#include <immintrin.h>

namespace chorus::kernels::cpu {

struct VecAvx2 {
  static constexpr int kWidth = 8;
  // 16 ymm registers: 6 x 2 accumulators + 2 loads + 1 broadcast.
  static constexpr int kRows = 6;
  static constexpr int kCols = 2;
  __m256 v;

  static VecAvx2 zero() { return {_mm256_setzero_ps()}; }
  static VecAvx2 set1(float x) { return {_mm256_set1_ps(x)}; }
  static VecAvx2 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  friend VecAvx2 operator+(VecAvx2 a, VecAvx2 b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend VecAvx2 operator-(VecAvx2 a, VecAvx2 b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend VecAvx2 operator*(VecAvx2 a, VecAvx2 b) { return {_mm256_mul_ps(a.v, b.v)}; }
  static VecAvx2 fmadd(VecAvx2 a, VecAvx2 b, VecAvx2 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static VecAvx2 max(VecAvx2 a, VecAvx2 b) { return {_mm256_max_ps(a.v, b.v)}; }
  static float reduce_max(VecAvx2 a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static float reduce_add(VecAvx2 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  // x * 2^n for integral n in [-126, 127] (the exp below clamps to that range).
  static VecAvx2 scale_pow2(VecAvx2 x, VecAvx2 n) {
    const __m256i bits =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23);
    return {_mm256_mul_ps(x.v, _mm256_castsi256_ps(bits))};
  }
  static VecAvx2 round(VecAvx2 x) {
    return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static VecAvx2 zero_below(VecAvx2 x, VecAvx2 key, float threshold) {
    const __m256 keep = _mm256_cmp_ps(key.v, _mm256_set1_ps(threshold), _CMP_GE_OQ);
    return {_mm256_and_ps(x.v, keep)};
  }
};

}  // namespace chorus::kernels::cpu
