// 4-lane fp32 vector in portable C++ for the generic attention kernels (the compiler maps it to
// SSE).
#pragma once

#include <cmath>

namespace chorus::kernels::cpu {

struct VecGeneric {
  static constexpr int kWidth = 4;
  static constexpr int kRows = 4;
  static constexpr int kCols = 2;
  float v[4];

  static VecGeneric zero() { return {{0.f, 0.f, 0.f, 0.f}}; }
  static VecGeneric set1(float x) { return {{x, x, x, x}}; }
  static VecGeneric load(const float* p) { return {{p[0], p[1], p[2], p[3]}}; }
  void store(float* p) const {
    for (int i = 0; i < 4; ++i) p[i] = v[i];
  }
  template <typename F>
  static VecGeneric map2(VecGeneric a, VecGeneric b, F f) {
    VecGeneric r;
    for (int i = 0; i < 4; ++i) r.v[i] = f(a.v[i], b.v[i]);
    return r;
  }
  friend VecGeneric operator+(VecGeneric a, VecGeneric b) {
    return map2(a, b, [](float x, float y) { return x + y; });
  }
  friend VecGeneric operator-(VecGeneric a, VecGeneric b) {
    return map2(a, b, [](float x, float y) { return x - y; });
  }
  friend VecGeneric operator*(VecGeneric a, VecGeneric b) {
    return map2(a, b, [](float x, float y) { return x * y; });
  }
  static VecGeneric fmadd(VecGeneric a, VecGeneric b, VecGeneric c) { return a * b + c; }
  static VecGeneric max(VecGeneric a, VecGeneric b) {
    return map2(a, b, [](float x, float y) { return x > y ? x : y; });
  }
  static float reduce_max(VecGeneric a) {
    const float m0 = a.v[0] > a.v[1] ? a.v[0] : a.v[1];
    const float m1 = a.v[2] > a.v[3] ? a.v[2] : a.v[3];
    return m0 > m1 ? m0 : m1;
  }
  static float reduce_add(VecGeneric a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
  static VecGeneric scale_pow2(VecGeneric x, VecGeneric n) {
    return map2(x, n, [](float a, float e) { return std::ldexp(a, static_cast<int>(e)); });
  }
  static VecGeneric round(VecGeneric x) {
    VecGeneric r;
    for (int i = 0; i < 4; ++i) r.v[i] = std::nearbyint(x.v[i]);
    return r;
  }
  static VecGeneric zero_below(VecGeneric x, VecGeneric key, float threshold) {
    VecGeneric r;
    for (int i = 0; i < 4; ++i) r.v[i] = key.v[i] >= threshold ? x.v[i] : 0.f;
    return r;
  }
};

}  // namespace chorus::kernels::cpu
