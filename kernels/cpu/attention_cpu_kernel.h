// The tiled attention kernels, written once over a vector type and compiled per ISA.
//
// Include from exactly one translation unit per ISA, after that ISA's vector header, inside a
// namespace of its own (every function here is internal to that translation unit, so builds for
// different ISAs never share a symbol). No standard-library containers: the dispatcher owns every
// buffer, so no template of the standard library is instantiated with wider instructions.
//
// Anatomy: GEMM micro-kernels on top, the masking and online softmax in the middle, the forward
// block and the backward head at the bottom.
#pragma once

#include <cstring>

#include "kernels/attention.h"
#include "kernels/cpu/attention_cpu_isa.h"
#include "kernels/cpu/element_io.h"

namespace {

using chorus::kernels::AttentionBackwardArgs;
using chorus::kernels::AttentionForwardOutputs;
using chorus::kernels::AttentionParams;
using chorus::kernels::ElementType;
using namespace chorus::kernels::cpu;  // NOLINT: element_io and the tiling constants

constexpr float kMinusInf = -__builtin_huge_valf();

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ---------------------------------------------------------------------------------------------
// GEMM: C[M x N] (+)= A[M x K] B[K x N]; B and C row-major, N a multiple of the vector width; A
// any strides (element (m, k) at A[m * a_rs + k * a_ks]), so a transposed operand needs no copy.
// A register block of R rows x NC vectors of C stays in registers across the whole K loop; each
// step loads NC vectors of B and broadcasts R scalars of A (the outer-product form of BLAS
// micro-kernels).

template <class V, int R, int NC>
void micro_kernel(int64_t K, const float* A, int64_t lda, int64_t a_ks, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate) {
  constexpr int W = V::kWidth;
  V acc[R][NC];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int n = 0; n < NC; ++n) acc[r][n] = accumulate ? V::load(C + r * ldc + n * W) : V::zero();
  }
  for (int64_t k = 0; k < K; ++k) {
    V b[NC];
#pragma GCC unroll 8
    for (int n = 0; n < NC; ++n) b[n] = V::load(B + k * ldb + n * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V a = V::set1(A[r * lda + k * a_ks]);
#pragma GCC unroll 8
      for (int n = 0; n < NC; ++n) acc[r][n] = V::fmadd(a, b[n], acc[r][n]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int n = 0; n < NC; ++n) acc[r][n].store(C + r * ldc + n * W);
  }
}

template <class V, int R>
void micro_kernel_cols(int nc, int64_t K, const float* A, int64_t lda, int64_t a_ks, const float* B,
                       int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  switch (nc) {
    case 1:
      return micro_kernel<V, R, 1>(K, A, lda, a_ks, B, ldb, C, ldc, accumulate);
    case 2:
      return micro_kernel<V, R, 2>(K, A, lda, a_ks, B, ldb, C, ldc, accumulate);
    default:
      break;
  }
  if constexpr (V::kCols >= 4) {
    if (nc == 3) return micro_kernel<V, R, 3>(K, A, lda, a_ks, B, ldb, C, ldc, accumulate);
    return micro_kernel<V, R, 4>(K, A, lda, a_ks, B, ldb, C, ldc, accumulate);
  }
}

template <class V>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, int64_t a_ks,
          const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  constexpr int W = V::kWidth;
  constexpr int kPanel = V::kCols * W;
  if (K == 0) {
    if (!accumulate) {
      for (int64_t m = 0; m < M; ++m) std::memset(C + m * ldc, 0, sizeof(float) * N);
    }
    return;
  }
  for (int64_t n0 = 0; n0 < N; n0 += kPanel) {
    const int nc = static_cast<int>(min64(kPanel, N - n0) / W);
    for (int64_t m0 = 0; m0 < M; m0 += V::kRows) {
      const int64_t rows = min64(V::kRows, M - m0);
      const float* a = A + m0 * lda;
      const float* b = B + n0;
      float* c = C + m0 * ldc + n0;
      switch (rows) {
        case 1:
          micro_kernel_cols<V, 1>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
          break;
        case 2:
          micro_kernel_cols<V, 2>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
          break;
        case 3:
          micro_kernel_cols<V, 3>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
          break;
        case 4:
          micro_kernel_cols<V, 4>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
          break;
        default:
          if constexpr (V::kRows >= 6) {
            if (rows == 5) {
              micro_kernel_cols<V, 5>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
            } else {
              micro_kernel_cols<V, 6>(nc, K, a, lda, a_ks, b, ldb, c, ldc, accumulate);
            }
          }
          break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Vector helpers.

// e^x with a Cody-Waite reduction and a degree-6 polynomial (relative error ~2 ulp); exactly 0
// for x below -87 (so masked scores, -inf, give probability 0 and never NaN).
template <class V>
inline V vexp(V x) {
  const V clamped = V::max(x, V::set1(-87.0f));
  const V n = V::round(clamped * V::set1(1.44269504088896341f));
  V r = V::fmadd(n, V::set1(-0.693359375f), clamped);
  r = V::fmadd(n, V::set1(2.12194440e-4f), r);
  V p = V::set1(1.0f / 720);
  p = V::fmadd(p, r, V::set1(1.0f / 120));
  p = V::fmadd(p, r, V::set1(1.0f / 24));
  p = V::fmadd(p, r, V::set1(1.0f / 6));
  p = V::fmadd(p, r, V::set1(0.5f));
  p = V::fmadd(p, r, V::set1(1.0f));
  p = V::fmadd(p, r, V::set1(1.0f));
  return V::zero_below(V::scale_pow2(p, n), x, -87.0f);
}

template <class V>
inline float row_max(const float* x, int64_t n) {
  V m = V::set1(kMinusInf);
  for (int64_t j = 0; j < n; j += V::kWidth) m = V::max(m, V::load(x + j));
  return V::reduce_max(m);
}

// x = exp(x - shift) in place; returns the sum.
template <class V>
inline float exp_shift_sum(float* x, int64_t n, float shift) {
  const V s = V::set1(shift);
  V sum = V::zero();
  for (int64_t j = 0; j < n; j += V::kWidth) {
    const V e = vexp<V>(V::load(x + j) - s);
    e.store(x + j);
    sum = sum + e;
  }
  return V::reduce_add(sum);
}

template <class V>
inline void scale_row(float* x, int64_t n, float factor) {
  const V f = V::set1(factor);
  for (int64_t j = 0; j < n; j += V::kWidth) (V::load(x + j) * f).store(x + j);
}

// Reads n elements of a strided row into fp32 dst, times `mul`.
inline void load_row(const void* base, ElementType type, int64_t offset, int64_t stride, int64_t n,
                     float* dst, float mul) {
  if (type == ElementType::kFloat32) {
    const float* src = static_cast<const float*>(base) + offset;
    if (stride == 1) {
      for (int64_t c = 0; c < n; ++c) dst[c] = src[c] * mul;
    } else {
      for (int64_t c = 0; c < n; ++c) dst[c] = src[c * stride] * mul;
    }
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(base) + offset;
    for (int64_t c = 0; c < n; ++c) dst[c] = bf16_to_float(src[c * stride]) * mul;
  }
}

inline void store_row(void* base, ElementType type, int64_t offset, int64_t stride, int64_t n,
                      const float* src, float mul) {
  if (type == ElementType::kFloat32) {
    float* dst = static_cast<float*>(base) + offset;
    if (stride == 1) {
      for (int64_t c = 0; c < n; ++c) dst[c] = src[c] * mul;
    } else {
      for (int64_t c = 0; c < n; ++c) dst[c * stride] = src[c] * mul;
    }
  } else {
    uint16_t* dst = static_cast<uint16_t*>(base) + offset;
    for (int64_t c = 0; c < n; ++c) dst[c * stride] = float_to_bf16(src[c] * mul);
  }
}

inline void zero_floats(float* x, int64_t n) { std::memset(x, 0, sizeof(float) * n); }

// ---------------------------------------------------------------------------------------------
// Masking of one score tile.

// One past the last key query qi may see under the causal and length masks.
inline int64_t visible_end(const AttentionParams& p, int64_t b, int64_t qi) {
  int64_t end = p.nk;
  if (p.mask.key_lengths != nullptr) end = min64(end, max64(p.mask.key_lengths[b], 0));
  if (p.mask.causal) end = min64(end, max64(qi + (p.nk - p.nq) + 1, 0));
  return end;
}

// Applies bias and every mask to the score tile s [rows x cols_pad] (ld kBlockK) covering keys
// [k0, k0 + cols_pad) of queries [q0, q0 + rows) in head bh.
inline void mask_tile(const AttentionParams& p, int64_t bh, int64_t q0, int64_t rows, int64_t k0,
                      int64_t cols_pad, float* s) {
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const auto& m = p.mask;
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t qi = q0 + i;
    float* row = s + i * kBlockK;
    const int64_t end = min64(max64(visible_end(p, b, qi) - k0, 0), cols_pad);
    for (int64_t j = end; j < cols_pad; ++j) row[j] = kMinusInf;
    if (m.bias != nullptr) {
      const float* bias = m.bias + b * m.bias_strides[0] + h * m.bias_strides[1] +
                          qi * m.bias_strides[2] + k0 * m.bias_strides[3];
      const int64_t stride = m.bias_strides[3];
      if (stride == 1) {
        for (int64_t j = 0; j < end; ++j) row[j] += bias[j];
      } else {
        for (int64_t j = 0; j < end; ++j) row[j] += bias[j * stride];
      }
    }
    if (m.group_visibility != nullptr) {
      const uint8_t* visible =
          m.group_visibility + m.query_groups[b * m.query_groups_batch_stride + qi] * m.num_groups;
      const int64_t* key_groups = m.key_groups + b * m.key_groups_batch_stride + k0;
      for (int64_t j = 0; j < end; ++j) {
        if (visible[key_groups[j]] == 0) row[j] = kMinusInf;
      }
    }
  }
}

// Whether the tile needs mask_tile at all (bias, groups, padding, or a row that ends inside it).
inline bool tile_needs_mask(const AttentionParams& p, int64_t bh, int64_t q0, int64_t k0,
                            int64_t cols, int64_t cols_pad) {
  if (cols != cols_pad || p.mask.bias != nullptr || p.mask.group_visibility != nullptr) return true;
  // visible_end grows with qi, so the first row is the tightest.
  return visible_end(p, bh / p.heads, q0) < k0 + cols;
}

// ---------------------------------------------------------------------------------------------
// Forward.

// Forward, in the transposed form: S^T = K (Q scale)^T puts a block's queries in the vector lanes,
// so the online-softmax statistics (running max, sum, rescale factor) are plain vector ops over
// keys, K is read in place (it is the broadcast operand; any strides), and fp32 V with unit column
// stride and Dv a multiple of 16 is read in place too. Only Q^T is packed, once per query block.

// Packs head bh's K [nk x D] and V [nk x dv_pad] as fp32 (bf16 inputs, or V that cannot be read
// in place); a null destination is skipped.
template <class V>
void pack_kv(const AttentionParams& p, int64_t bh, float* k, float* v) {
  const PackedDims dims = packed_dims(p);
  const int64_t b = bh / p.heads, h = bh % p.heads;
  for (int64_t j = 0; j < p.nk; ++j) {
    if (k != nullptr) {
      load_row(p.k.data, p.dtype, view_offset(p.k.strides, b, h, j, 0), p.k.strides[3], p.d,
               k + j * p.d, 1.0f);
    }
    if (v == nullptr) continue;
    float* row = v + j * dims.dv_pad;
    load_row(p.v.data, p.dtype, view_offset(p.v.strides, b, h, j, 0), p.v.strides[3], p.dv, row,
             1.0f);
    for (int64_t c = p.dv; c < dims.dv_pad; ++c) row[c] = 0;
  }
}

// Applies bias and every mask to the transposed score tile st [cols x kBlockQ] covering keys
// [k0, k0 + cols) and queries [q0, q0 + rows) of head bh.
inline void mask_tile_t(const AttentionParams& p, int64_t bh, int64_t q0, int64_t rows, int64_t k0,
                        int64_t cols, float* st) {
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const auto& m = p.mask;
  const int64_t length = m.key_lengths != nullptr ? m.key_lengths[b] : p.nk;
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t kj = k0 + j;
    float* row = st + j * kBlockQ;
    if (kj >= length) {
      for (int64_t i = 0; i < rows; ++i) row[i] = kMinusInf;
      continue;
    }
    // Causal: query qi sees kj iff qi >= kj - (nk - nq).
    int64_t first = 0;
    if (m.causal) first = min64(max64(kj - (p.nk - p.nq) - q0, 0), rows);
    for (int64_t i = 0; i < first; ++i) row[i] = kMinusInf;
    if (m.bias != nullptr) {
      const float* bias = m.bias + b * m.bias_strides[0] + h * m.bias_strides[1] +
                          q0 * m.bias_strides[2] + kj * m.bias_strides[3];
      for (int64_t i = first; i < rows; ++i) row[i] += bias[i * m.bias_strides[2]];
    }
    if (m.group_visibility != nullptr) {
      const int64_t key_group = m.key_groups[b * m.key_groups_batch_stride + kj];
      const int64_t* query_groups = m.query_groups + b * m.query_groups_batch_stride + q0;
      for (int64_t i = first; i < rows; ++i) {
        if (m.group_visibility[query_groups[i] * m.num_groups + key_group] == 0) row[i] = kMinusInf;
      }
    }
  }
}

// Whether any score of the tile needs masking (visible_end grows with the query index, so the
// block's first query is the tightest).
inline bool tile_needs_mask_t(const AttentionParams& p, int64_t bh, int64_t q0, int64_t k0,
                              int64_t cols) {
  if (p.mask.bias != nullptr || p.mask.group_visibility != nullptr) return true;
  return visible_end(p, bh / p.heads, q0) < k0 + cols;
}

template <class V>
void forward_block(const AttentionParams& p, const AttentionForwardOutputs& out, int64_t bh,
                   int64_t q0, const KeyValueSource& kv, float* scratch) {
  constexpr int W = V::kWidth;
  const PackedDims dims = packed_dims(p);
  const int64_t dvp = dims.dv_pad;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t rows = min64(kBlockQ, p.nq - q0);
  const int64_t rows_pad = round_up(rows, kPad);
  float* qt = scratch;                 // [D x kBlockQ], scaled, zero past `rows`
  float* st = qt + p.d * kBlockQ;      // [kBlockK x kBlockQ]
  float* o = st + kBlockK * kBlockQ;   // [kBlockQ x dvp]
  float* run_max = o + kBlockQ * dvp;  // [kBlockQ]
  float* run_sum = run_max + kBlockQ;  // [kBlockQ]
  float* rescale = run_sum + kBlockQ;  // [kBlockQ]

  for (int64_t c = 0; c < p.d; ++c) {
    for (int64_t i = rows; i < rows_pad; ++i) qt[c * kBlockQ + i] = 0;
  }
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t offset = view_offset(p.q.strides, b, h, q0 + i, 0);
    for (int64_t c = 0; c < p.d; ++c) {
      qt[c * kBlockQ + i] = load_element(p.q.data, p.dtype, offset + c * p.q.strides[3]) * p.scale;
    }
  }
  for (int64_t i = 0; i < rows_pad; ++i) {
    run_max[i] = kMinusInf;
    run_sum[i] = 0;
  }
  zero_floats(o, rows * dvp);

  // Keys past the last query's visible end are hidden from the whole block.
  const int64_t k_end = visible_end(p, b, q0 + rows - 1);
  // A finite stand-in for a running max of -inf, so that -inf - max stays -inf (exp gives 0)
  // instead of NaN.
  const V lowest = V::set1(-3.0e38f);
  for (int64_t k0 = 0; k0 < k_end; k0 += kBlockK) {
    const int64_t cols = min64(kBlockK, k_end - k0);
    gemm<V>(cols, rows_pad, p.d, kv.k + k0 * kv.k_row, kv.k_row, kv.k_col, qt, kBlockQ, st, kBlockQ,
            false);
    if (tile_needs_mask_t(p, bh, q0, k0, cols)) mask_tile_t(p, bh, q0, rows, k0, cols, st);
    // Online softmax with the queries in the lanes.
    for (int64_t i = 0; i < rows_pad; i += W) {
      V block_max = V::set1(kMinusInf);
      for (int64_t j = 0; j < cols; ++j)
        block_max = V::max(block_max, V::load(st + j * kBlockQ + i));
      const V old_max = V::load(run_max + i);
      const V new_max = V::max(old_max, block_max);
      const V shift = V::max(new_max, lowest);
      const V alpha = vexp<V>(old_max - shift);
      V sum = V::zero();
      for (int64_t j = 0; j < cols; ++j) {
        const V e = vexp<V>(V::load(st + j * kBlockQ + i) - shift);
        e.store(st + j * kBlockQ + i);
        sum = sum + e;
      }
      V::fmadd(V::load(run_sum + i), alpha, sum).store(run_sum + i);
      new_max.store(run_max + i);
      alpha.store(rescale + i);
    }
    for (int64_t i = 0; i < rows; ++i) {
      if (rescale[i] != 1.0f) scale_row<V>(o + i * dvp, dvp, rescale[i]);
    }
    // O += P V, with P read as the transpose of the tile.
    gemm<V>(rows, dvp, cols, st, 1, kBlockQ, kv.v + k0 * kv.v_row, kv.v_row, o, dvp, true);
  }

  float* lse = out.logsumexp + bh * p.nq + q0;
  for (int64_t i = 0; i < rows; ++i) {
    const bool empty = run_sum[i] == 0.0f;
    lse[i] = empty ? kMinusInf : run_max[i] + __builtin_logf(run_sum[i]);
    store_row(out.out.data, p.dtype, view_offset(out.out.strides, b, h, q0 + i, 0),
              out.out.strides[3], p.dv, o + i * dvp, empty ? 0.0f : 1.0f / run_sum[i]);
  }

  if (out.probabilities == nullptr) return;
  // Visualisation only: recompute each tile and normalise it with the final log-sum-exp.
  for (int64_t i = 0; i < rows; ++i) {
    zero_floats(out.probabilities + (bh * p.nq + q0 + i) * p.nk, p.nk);
  }
  for (int64_t i = 0; i < rows_pad; ++i)
    rescale[i] = i < rows && lse[i] != kMinusInf ? lse[i] : kMinusInf;
  for (int64_t k0 = 0; k0 < k_end; k0 += kBlockK) {
    const int64_t cols = min64(kBlockK, k_end - k0);
    gemm<V>(cols, rows_pad, p.d, kv.k + k0 * kv.k_row, kv.k_row, kv.k_col, qt, kBlockQ, st, kBlockQ,
            false);
    if (tile_needs_mask_t(p, bh, q0, k0, cols)) mask_tile_t(p, bh, q0, rows, k0, cols, st);
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t i = 0; i < rows_pad; i += W) {
        const V shift = V::max(V::load(rescale + i), lowest);
        vexp<V>(V::load(st + j * kBlockQ + i) - shift).store(st + j * kBlockQ + i);
      }
      for (int64_t i = 0; i < rows; ++i) {
        if (lse[i] == kMinusInf) continue;
        out.probabilities[(bh * p.nq + q0 + i) * p.nk + k0 + j] = st[j * kBlockQ + i];
      }
    }
  }
}

// Forward for calls with few queries (a decoding step has one per sequence), one query row at a
// time: the scores of its visible keys (one dot product each), their softmax, and the weighted
// sum of value rows. The block kernel above would fill a vector lane per query and leave the
// other 15 empty. Reads K and V through the same KeyValueSource.
template <class V>
void forward_rows(const AttentionParams& p, const AttentionForwardOutputs& out, int64_t bh,
                  const KeyValueSource& kv, float* scratch) {
  constexpr int W = V::kWidth;
  const PackedDims dims = packed_dims(p);
  const int64_t dp = dims.d_pad, dvp = dims.dv_pad;
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const auto& m = p.mask;
  float* q = scratch;          // [dp], scaled, zero past D
  float* s = q + dp;           // [nk_pad]: scores, then exp(score - max)
  float* o = s + dims.nk_pad;  // [dvp]
  for (int64_t i = 0; i < p.nq; ++i) {
    load_row(p.q.data, p.dtype, view_offset(p.q.strides, b, h, i, 0), p.q.strides[3], p.d, q,
             p.scale);
    for (int64_t c = p.d; c < dp; ++c) q[c] = 0;
    const int64_t end = visible_end(p, b, i);
    if (kv.k_col == 1 && p.d % W == 0) {
      for (int64_t j = 0; j < end; ++j) {
        const float* k = kv.k + j * kv.k_row;
        V acc = V::zero();
        for (int64_t c = 0; c < p.d; c += W) acc = V::fmadd(V::load(q + c), V::load(k + c), acc);
        s[j] = V::reduce_add(acc);
      }
    } else {
      for (int64_t j = 0; j < end; ++j) {
        const float* k = kv.k + j * kv.k_row;
        float acc = 0;
        for (int64_t c = 0; c < p.d; ++c) acc += q[c] * k[c * kv.k_col];
        s[j] = acc;
      }
    }
    if (m.bias != nullptr) {
      const float* bias = m.bias + b * m.bias_strides[0] + h * m.bias_strides[1] +
                          i * m.bias_strides[2];
      for (int64_t j = 0; j < end; ++j) s[j] += bias[j * m.bias_strides[3]];
    }
    if (m.group_visibility != nullptr) {
      for (int64_t j = 0; j < end; ++j) {
        if (!mask_allows(p, b, i, j)) s[j] = kMinusInf;
      }
    }
    const int64_t end_pad = round_up(end, W);
    for (int64_t j = end; j < end_pad; ++j) s[j] = kMinusInf;
    const float max = end > 0 ? row_max<V>(s, end_pad) : kMinusInf;
    float* probabilities =
        out.probabilities != nullptr ? out.probabilities + (bh * p.nq + i) * p.nk : nullptr;
    const int64_t out_offset = view_offset(out.out.strides, b, h, i, 0);
    if (max == kMinusInf) {  // every key hidden: zero output, lse -inf
      zero_floats(o, dvp);
      out.logsumexp[bh * p.nq + i] = kMinusInf;
      store_row(out.out.data, p.dtype, out_offset, out.out.strides[3], p.dv, o, 0.0f);
      if (probabilities != nullptr) zero_floats(probabilities, p.nk);
      continue;
    }
    const float sum = exp_shift_sum<V>(s, end_pad, max);
    zero_floats(o, dvp);
    for (int64_t j = 0; j < end; ++j) {
      if (s[j] == 0.0f) continue;
      const V weight = V::set1(s[j]);
      const float* v = kv.v + j * kv.v_row;
      for (int64_t c = 0; c < dvp; c += W) V::fmadd(weight, V::load(v + c), V::load(o + c)).store(o + c);
    }
    out.logsumexp[bh * p.nq + i] = max + __builtin_logf(sum);
    store_row(out.out.data, p.dtype, out_offset, out.out.strides[3], p.dv, o, 1.0f / sum);
    if (probabilities != nullptr) {
      for (int64_t j = 0; j < end; ++j) probabilities[j] = s[j] / sum;
      for (int64_t j = end; j < p.nk; ++j) probabilities[j] = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward, one head at a time: S and P are recomputed tile by tile from the log-sum-exp.
//   dV += P^T dO;  dP = dO V^T;  dS = P (dP - rowsum(dO * O));  dQ += scale dS K;  dK += dS^T
//   (scale Q)

template <class V>
void backward_head(const AttentionParams& p, const AttentionBackwardArgs& args, int64_t bh,
                   float* scratch) {
  const PackedDims dims = packed_dims(p);
  const int64_t b = bh / p.heads, h = bh % p.heads;
  const int64_t nkp = dims.nk_pad, dp = dims.d_pad, dvp = dims.dv_pad;
  float* kt = scratch;                // [D x nkp]
  float* kr = kt + p.d * nkp;         // [nkp x dp]
  float* vt = kr + nkp * dp;          // [Dv x nkp]
  float* qs = vt + p.dv * nkp;        // [nq x dp], scaled
  float* dor = qs + p.nq * dp;        // [nq x dvp]
  float* di = dor + p.nq * dvp;       // [nq]
  float* lse = di + p.nq;             // [nq]
  float* dq = lse + p.nq;             // [nq x dp]
  float* dk = dq + p.nq * dp;         // [kBlockK x dp]
  float* dv = dk + kBlockK * dp;      // [kBlockK x dvp]
  float* s = dv + kBlockK * dvp;      // [kBlockQ x kBlockK]
  float* ds = s + kBlockQ * kBlockK;  // [kBlockQ x kBlockK]

  // Pack K both ways and V^T; the padding must be zero.
  zero_floats(kt, p.d * nkp);
  zero_floats(kr, nkp * dp);
  zero_floats(vt, p.dv * nkp);
  for (int64_t j = 0; j < p.nk; ++j) {
    float* row = kr + j * dp;
    load_row(p.k.data, p.dtype, b * p.k.strides[0] + h * p.k.strides[1] + j * p.k.strides[2],
             p.k.strides[3], p.d, row, 1.0f);
    for (int64_t c = 0; c < p.d; ++c) kt[c * nkp + j] = row[c];
    for (int64_t c = 0; c < p.dv; ++c) {
      vt[c * nkp + j] = load_element(p.v.data, p.dtype, view_offset(p.v.strides, b, h, j, c));
    }
  }
  zero_floats(qs, p.nq * dp);
  zero_floats(dor, p.nq * dvp);
  zero_floats(dq, p.nq * dp);
  for (int64_t i = 0; i < p.nq; ++i) {
    load_row(p.q.data, p.dtype, view_offset(p.q.strides, b, h, i, 0), p.q.strides[3], p.d,
             qs + i * dp, p.scale);
    load_row(args.dout.data, p.dtype, view_offset(args.dout.strides, b, h, i, 0),
             args.dout.strides[3], p.dv, dor + i * dvp, 1.0f);
    double dot = 0;
    for (int64_t c = 0; c < p.dv; ++c) {
      dot += static_cast<double>(dor[i * dvp + c]) *
             load_element(args.out.data, p.dtype, view_offset(args.out.strides, b, h, i, c));
    }
    di[i] = static_cast<float>(dot);
    lse[i] = args.logsumexp[bh * p.nq + i];
  }

  // Keys no query sees (past every length) keep zero gradients.
  const int64_t k_stop =
      p.mask.key_lengths != nullptr ? min64(p.nk, max64(p.mask.key_lengths[b], 0)) : p.nk;
  int64_t k_done = 0;
  for (int64_t k0 = 0; k0 < k_stop; k0 += kBlockK) {
    const int64_t cols = min64(kBlockK, p.nk - k0);
    const int64_t cols_pad = round_up(cols, kPad);
    zero_floats(dk, cols_pad * dp);
    zero_floats(dv, cols_pad * dvp);
    // Under the causal mask, queries before k0 - (nk - nq) see nothing of this block.
    int64_t q_begin = 0;
    if (p.mask.causal) q_begin = max64(k0 - (p.nk - p.nq), 0) / kBlockQ * kBlockQ;
    for (int64_t q0 = q_begin; q0 < p.nq; q0 += kBlockQ) {
      const int64_t rows = min64(kBlockQ, p.nq - q0);
      gemm<V>(rows, cols_pad, p.d, qs + q0 * dp, dp, 1, kt + k0, nkp, s, kBlockK, false);
      if (tile_needs_mask(p, bh, q0, k0, cols, cols_pad))
        mask_tile(p, bh, q0, rows, k0, cols_pad, s);
      gemm<V>(rows, cols_pad, p.dv, dor + q0 * dvp, dvp, 1, vt + k0, nkp, ds, kBlockK, false);
      for (int64_t i = 0; i < rows; ++i) {
        float* prow = s + i * kBlockK;
        float* drow = ds + i * kBlockK;
        if (lse[q0 + i] == kMinusInf) {
          zero_floats(prow, cols_pad);
          zero_floats(drow, cols_pad);
          continue;
        }
        exp_shift_sum<V>(prow, cols_pad, lse[q0 + i]);
        const V d_i = V::set1(di[q0 + i]);
        for (int64_t j = 0; j < cols_pad; j += V::kWidth) {
          (V::load(prow + j) * (V::load(drow + j) - d_i)).store(drow + j);
        }
      }
      if (args.dbias != nullptr) {
        for (int64_t i = 0; i < rows; ++i) {
          std::memcpy(args.dbias + (bh * p.nq + q0 + i) * p.nk + k0, ds + i * kBlockK,
                      sizeof(float) * cols);
        }
      }
      // P^T and dS^T are read in place through A's strides.
      gemm<V>(cols_pad, dvp, rows, s, 1, kBlockK, dor + q0 * dvp, dvp, dv, dvp, true);
      gemm<V>(cols_pad, dp, rows, ds, 1, kBlockK, qs + q0 * dp, dp, dk, dp, true);
      gemm<V>(rows, dp, cols_pad, ds, kBlockK, 1, kr + k0 * dp, dp, dq + q0 * dp, dp, true);
    }
    for (int64_t j = 0; j < cols; ++j) {
      store_row(args.dk.data, p.dtype, view_offset(args.dk.strides, b, h, k0 + j, 0),
                args.dk.strides[3], p.d, dk + j * dp, 1.0f);
      store_row(args.dv.data, p.dtype, view_offset(args.dv.strides, b, h, k0 + j, 0),
                args.dv.strides[3], p.dv, dv + j * dvp, 1.0f);
    }
    k_done = k0 + cols;
  }
  zero_floats(dk, dp);
  zero_floats(dv, dvp);
  for (int64_t j = k_done; j < p.nk; ++j) {
    store_row(args.dk.data, p.dtype, view_offset(args.dk.strides, b, h, j, 0), args.dk.strides[3],
              p.d, dk, 1.0f);
    store_row(args.dv.data, p.dtype, view_offset(args.dv.strides, b, h, j, 0), args.dv.strides[3],
              p.dv, dv, 1.0f);
  }
  for (int64_t i = 0; i < p.nq; ++i) {
    store_row(args.dq.data, p.dtype, view_offset(args.dq.strides, b, h, i, 0), args.dq.strides[3],
              p.d, dq + i * dp, p.scale);
  }
}

}  // namespace
