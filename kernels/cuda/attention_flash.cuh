// v3 building blocks: the tensor-core MMA (mma.sync.aligned.m16n8k16, bf16/fp16 in, fp32
// accumulate) written as inline PTX, its register fragments loaded from shared memory, the
// tile loader and the traits of the forward and backward kernels.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with g = lane / 4 and
// t = lane % 4; each 32-bit register holds two 16-bit elements, the lower index in the low half:
//   A (16 x 16, row-major): a0 = A[g][2t, 2t+1], a1 = A[g+8][2t, 2t+1], a2 = A[g][2t+8, 2t+9],
//                           a3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n):      b0 = B[2t, 2t+1][g], b1 = B[2t+8, 2t+9][g]
//   C (16 x 8, fp32):       c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// Two C tiles side by side (n = 0..7 and 8..15) are exactly one A fragment of a 16 x 16 block,
// which is how P = softmax(S) feeds P V without leaving registers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/attention_cuda_common.cuh"

namespace chorus::kernels::cuda::flash {

// --- Traits: every tiling decision of v3, in one place.

template <int D>
struct ForwardTraits {
  static_assert(D == 64 || D == 128, "the tensor-core kernels are built for D in {64, 128}");
  static constexpr int kHeadDim = D;
  // 4 warps x 16 query rows: one m16 MMA row block per warp, so a row's softmax statistics live
  // in the 4 lanes that share g and reduce with two shuffles. 128 threads and 64 x 64 tiles keep
  // the registers near 128 per thread for D = 128 (Q fragments 32, O accumulator 64, S 32), which
  // lets 3-4 blocks share an SM; larger tiles would spill or cut occupancy to one block.
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = kWarps * 16;
  static constexpr int kBlockN = 64;
  // Rows padded by 8 elements (16 bytes): the 32-bit fragment loads of rows g = 0..7 then fall in
  // distinct banks (row stride (D + 8) / 2 words = 4 banks apart), and 16-byte vector stores stay
  // aligned.
  static constexpr int kLd = D + 8;
  // Q, K and V tiles: 27 KB for D = 64, 52 KB for D = 128 (above the 48 KB default, so the
  // launch opts in; A100 allows 163 KB and H100 227 KB per block).
  static constexpr int kSharedBytes = (kBlockM + 2 * kBlockN) * kLd * 2;
};

template <int D>
struct BackwardTraits {
  static_assert(D == 64 || D == 128, "the tensor-core kernels are built for D in {64, 128}");
  static constexpr int kHeadDim = D;
  // A block owns 64 keys, 16 per warp (one m16 row block of dK and dV each); it walks query tiles
  // of kBlockM rows. dK and dV accumulators take D / 2 registers each per thread (64 + 64 for
  // D = 128), so the query tile shrinks to 32 rows for D = 128 to keep S^T and dP^T at 16
  // registers each and the total under 255 without spilling.
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockN = kWarps * 16;
  static constexpr int kBlockM = D <= 64 ? 64 : 32;
  static constexpr int kLd = D + 8;             // as in the forward
  static constexpr int kLdS = kBlockN + 8;      // dS tile [query][key], padded likewise
  // K, V, Q, dO tiles + dS (16-bit) + lse and D_i (fp32): 46 KB for D = 64, 56 KB for D = 128.
  static constexpr int kSharedBytes =
      (2 * kBlockN * kLd + 2 * kBlockM * kLd + kBlockM * kLdS) * 2 + 2 * kBlockM * 4;
  static_assert((kBlockM / 16) * (D / 8) % kWarps == 0, "dQ tiles split evenly over the warps");
};

// --- The MMA.

template <typename T>
struct Mma;

template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
};

template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
};

// --- Fragments from shared memory (16-bit elements, leading dimension ld in elements, even).

__device__ __forceinline__ uint32_t word_at(const uint16_t* base, int index) {
  return *reinterpret_cast<const uint32_t*>(base + index);
}

// A fragment of the 16 x 16 row-major block starting at `base`.
__device__ __forceinline__ void load_a(uint32_t a[4], const uint16_t* base, int ld, int lane) {
  const int g = lane >> 2, t = lane & 3;
  a[0] = word_at(base, g * ld + 2 * t);
  a[1] = word_at(base, (g + 8) * ld + 2 * t);
  a[2] = word_at(base, g * ld + 2 * t + 8);
  a[3] = word_at(base, (g + 8) * ld + 2 * t + 8);
}

// B fragment where B[k][n] = M[n][k] for a row-major M starting at `base` (8 rows n, 16 cols k):
// the operand K^T of Q K^T. Contiguous pairs, one 32-bit load each.
__device__ __forceinline__ void load_b_transposed(uint32_t b[2], const uint16_t* base, int ld,
                                                  int lane) {
  const int g = lane >> 2, t = lane & 3;
  b[0] = word_at(base, g * ld + 2 * t);
  b[1] = word_at(base, g * ld + 2 * t + 8);
}

// B fragment where B[k][n] = M[k][n] for a row-major M starting at `base` (16 rows k, 8 cols n):
// the operand V of P V. The pairs straddle two rows, so they are gathered 16 bits at a time.
__device__ __forceinline__ void load_b(uint32_t b[2], const uint16_t* base, int ld, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const uint32_t e0 = base[(2 * t) * ld + g], e1 = base[(2 * t + 1) * ld + g];
  const uint32_t e2 = base[(2 * t + 8) * ld + g], e3 = base[(2 * t + 9) * ld + g];
  b[0] = e0 | (e1 << 16);
  b[1] = e2 | (e3 << 16);
}

// --- Tiles from global memory.

// Rows [row0, row0 + rows) x [0, D) of a strided [B, H, N, D] view of 16-bit elements into
// shared memory (leading dimension ld); rows past n are zero. 16-byte loads when the view has a
// unit last stride and 16-byte aligned rows, element loads otherwise.
template <int D>
__device__ __forceinline__ void load_tile(uint16_t* dst, int ld, const void* src,
                                          const int64_t* s, int b, int h, int row0, int rows,
                                          int n) {
  const uint16_t* base = static_cast<const uint16_t*>(src);
  const int64_t origin = static_cast<int64_t>(b) * s[0] + static_cast<int64_t>(h) * s[1];
  const bool vector = s[3] == 1 && s[2] % 8 == 0 && origin % 8 == 0 &&
                      reinterpret_cast<uintptr_t>(base) % 16 == 0;
  if (vector) {
    constexpr int kChunks = D / 8;
    for (int idx = threadIdx.x; idx < rows * kChunks; idx += blockDim.x) {
      const int r = idx / kChunks, c = (idx % kChunks) * 8;
      uint4 value = make_uint4(0, 0, 0, 0);
      if (row0 + r < n) {
        value = *reinterpret_cast<const uint4*>(base + origin + static_cast<int64_t>(row0 + r) * s[2] + c);
      }
      *reinterpret_cast<uint4*>(dst + r * ld + c) = value;
    }
  } else {
    for (int idx = threadIdx.x; idx < rows * D; idx += blockDim.x) {
      const int r = idx / D, c = idx % D;
      dst[r * ld + c] =
          row0 + r < n ? base[origin + static_cast<int64_t>(row0 + r) * s[2] + c * s[3]] : uint16_t{0};
    }
  }
}

__device__ __forceinline__ void store_element(void* base, const int64_t* s, int b, int h, int row,
                                              int col, float value, __nv_bfloat16*) {
  static_cast<__nv_bfloat16*>(base)[offset4(s, b, h, row, col)] = __float2bfloat16_rn(value);
}
__device__ __forceinline__ void store_element(void* base, const int64_t* s, int b, int h, int row,
                                              int col, float value, __half*) {
  static_cast<__half*>(base)[offset4(s, b, h, row, col)] = __float2half_rn(value);
}

// Launchers of one instantiation each (attention_flash_forward.cu, attention_flash_backward.cu).
template <typename T, int D>
void launch_forward(const KernelArgs& a, const AttentionForwardOutputs& out, cudaStream_t stream);
template <typename T, int D>
void launch_backward(const KernelArgs& a, const AttentionBackwardArgs& args, const float* delta,
                     float* dq_accum, cudaStream_t stream);

}  // namespace chorus::kernels::cuda::flash
