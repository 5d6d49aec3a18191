// Internal interface between the CPU attention dispatcher and its per-ISA kernel builds.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"

namespace chorus::kernels::cpu {

// Tiling shared by every ISA build. Query blocks of 64 rows keep the score tile (64 x 128 fp32,
// 32 KiB) and the output accumulator in L1/L2 while 128-key blocks amortise the row-wise
// softmax bookkeeping; every padded extent is a multiple of 16 lanes (the widest vector).
constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 128;
constexpr int64_t kPad = 16;

// Helpers here are static so that the per-ISA builds, which include this header, keep their own
// copies (see element_io.h).
static inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// Padded extents of one attention call.
struct PackedDims {
  int64_t nk_pad, d_pad, dv_pad;
};
static inline PackedDims packed_dims(const AttentionParams& p) {
  return {round_up(p.nk, kPad), round_up(p.d, kPad), round_up(p.dv, kPad)};
}

// Packed fp32 K [nk x D] and V [nk x dv_pad] of one head, for the forward.
static inline int64_t forward_k_floats(const AttentionParams& p) { return p.nk * p.d; }
static inline int64_t forward_v_floats(const AttentionParams& p, const PackedDims& s) {
  return p.nk * s.dv_pad;
}
static inline int64_t forward_scratch_floats(const AttentionParams& p, const PackedDims& s) {
  return kBlockQ * p.d + kBlockK * kBlockQ + kBlockQ * s.dv_pad + 3 * kBlockQ;
}
// Calls with at most this many queries take forward_rows instead of query blocks.
constexpr int64_t kFewQueries = 2;
static inline int64_t forward_rows_scratch_floats(const PackedDims& s) {
  return s.d_pad + s.nk_pad + s.dv_pad;
}
static inline int64_t backward_scratch_floats(const AttentionParams& p, const PackedDims& s) {
  return p.d * s.nk_pad + s.nk_pad * s.d_pad + p.dv * s.nk_pad  // K^T, K, V^T
         + p.nq * s.d_pad + p.nq * s.dv_pad + 2 * p.nq          // Q, dO, D_i, lse
         + p.nq * s.d_pad                                       // dQ accumulator
         + kBlockK * s.d_pad + kBlockK * s.dv_pad               // dK, dV accumulators
         + 2 * kBlockQ * kBlockK;                               // S/P and dP/dS
}

// Where the forward reads one head's keys and values as fp32: K element (j, c) at
// k[j * k_row + c * k_col]; V row j at v + j * v_row, dv_pad readable floats (zero past Dv).
struct KeyValueSource {
  const float* k;
  int64_t k_row, k_col;
  const float* v;
  int64_t v_row;
};

// The kernels one ISA build provides.
struct IsaKernels {
  // Packs head bh's K [nk x D] and V [nk x dv_pad] as fp32, for inputs not readable in place;
  // a null destination is skipped.
  void (*pack_kv)(const AttentionParams& p, int64_t bh, float* k, float* v);
  // One block of kBlockQ queries of head bh starting at query q0.
  void (*forward_block)(const AttentionParams& p, const AttentionForwardOutputs& out, int64_t bh,
                        int64_t q0, const KeyValueSource& kv, float* scratch);
  // Every query of head bh, one row at a time (calls with at most kFewQueries queries).
  void (*forward_rows)(const AttentionParams& p, const AttentionForwardOutputs& out, int64_t bh,
                       const KeyValueSource& kv, float* scratch);
  // Every gradient of head bh.
  void (*backward_head)(const AttentionParams& p, const AttentionBackwardArgs& args, int64_t bh,
                        float* scratch);
};

const IsaKernels& avx512_kernels();
const IsaKernels& avx2_kernels();
const IsaKernels& generic_kernels();

}  // namespace chorus::kernels::cpu
