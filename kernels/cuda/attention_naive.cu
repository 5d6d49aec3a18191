// v1, naive: one thread per output element, every score recomputed from global memory, fp32
// accumulation, any element type, any D and Dv, any strides.
//
// The forward's thread for (b, h, i, c) makes two passes over the keys: an online max/sum, then
// the weighted sum of column c of V. The backward needs no atomics: one thread per element of dQ
// (which also writes the row's dS into dbias) and one per element of dK | dV, each looping over
// the other sequence. Probabilities come from the log-sum-exp, with D_i = rowsum(dO * O) from
// row_delta. O(N^2 D) work per element: a correctness baseline, not a contender.
#include "kernels/cuda/attention_cuda_common.cuh"

namespace chorus::kernels::cuda::naive {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ float score(const KernelArgs& a, int b, int h, int i, int j) {
  float dot = 0.f;
  for (int c = 0; c < a.d; ++c) {
    dot += load4<T>(a.q, a.q_strides, b, h, i, c) * load4<T>(a.k, a.k_strides, b, h, j, c);
  }
  return biased_score(a, dot, b, h, i, j);
}

// Decomposes a flat index over [B, H, rows, cols].
struct Index {
  int b, h, row, col;
  int64_t bh_row;  // (b * H + h) * rows + row
};
__device__ Index split(const KernelArgs& a, int64_t idx, int rows, int cols) {
  Index x;
  x.col = static_cast<int>(idx % cols);
  x.bh_row = idx / cols;
  x.row = static_cast<int>(x.bh_row % rows);
  const int64_t bh = x.bh_row / rows;
  x.b = static_cast<int>(bh / a.heads);
  x.h = static_cast<int>(bh % a.heads);
  return x;
}

template <typename T>
__global__ void forward_kernel(KernelArgs a, void* out, Strides4 out_s, float* lse) {
  const int cols = a.dv > 0 ? a.dv : 1;  // one thread per row still writes the log-sum-exp
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Index x = split(a, idx, a.nq, cols);
    float m = kMinusInf, l = 0.f;
    for (int j = 0; j < a.nk; ++j) {
      if (!mask_allows(a, x.b, x.row, j)) continue;
      const float s = score<T>(a, x.b, x.h, x.row, j);
      if (s == kMinusInf) continue;  // a -inf bias masks like the mask does
      if (s > m) {
        l = l * expf(m - s) + 1.f;
        m = s;
      } else {
        l += expf(s - m);
      }
    }
    if (x.col < a.dv) {
      float acc = 0.f;
      if (l > 0.f) {
        for (int j = 0; j < a.nk; ++j) {
          if (!mask_allows(a, x.b, x.row, j)) continue;
          const float s = score<T>(a, x.b, x.h, x.row, j);
          if (s == kMinusInf) continue;
          acc += expf(s - m) * load4<T>(a.v, a.v_strides, x.b, x.h, j, x.col);
        }
        acc /= l;
      }
      store4<T>(out, out_s.s, x.b, x.h, x.row, x.col, acc);
    }
    if (x.col == 0) lse[x.bh_row] = l > 0.f ? m + logf(l) : kMinusInf;
  }
}

// P_ij and dS_ij = P_ij (dP_ij - D_i) of one visible pair; 0 when hidden or the row is empty.
template <typename T>
__device__ void probability_and_ds(const KernelArgs& a, const void* dout, const Strides4& dout_s,
                                   int b, int h, int i, int j, float lse_i, float delta_i,
                                   float* p, float* ds) {
  *p = 0.f;
  *ds = 0.f;
  if (lse_i == kMinusInf || !mask_allows(a, b, i, j)) return;
  const float s = score<T>(a, b, h, i, j);
  if (s == kMinusInf) return;
  *p = expf(s - lse_i);
  float dp = 0.f;
  for (int c = 0; c < a.dv; ++c) {
    dp += load4<T>(dout, dout_s.s, b, h, i, c) * load4<T>(a.v, a.v_strides, b, h, j, c);
  }
  *ds = *p * (dp - delta_i);
}

// One thread per dQ element; the thread of column 0 also writes dS into dbias.
template <typename T>
__global__ void dq_kernel(KernelArgs a, const void* dout, Strides4 dout_s, const float* lse,
                          const float* delta, void* dq, Strides4 dq_s, float* dbias) {
  const int cols = a.d > 0 ? a.d : 1;
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Index x = split(a, idx, a.nq, cols);
    const float lse_i = lse[x.bh_row], delta_i = delta[x.bh_row];
    float acc = 0.f;
    for (int j = 0; j < a.nk; ++j) {
      float p, ds;
      probability_and_ds<T>(a, dout, dout_s, x.b, x.h, x.row, j, lse_i, delta_i, &p, &ds);
      if (x.col == 0 && dbias != nullptr) dbias[x.bh_row * a.nk + j] = ds;
      if (x.col < a.d && ds != 0.f) acc += ds * load4<T>(a.k, a.k_strides, x.b, x.h, j, x.col);
    }
    if (x.col < a.d) store4<T>(dq, dq_s.s, x.b, x.h, x.row, x.col, a.scale * acc);
  }
}

// One thread per element of the row [dV_j | dK_j]: columns [0, Dv) are dV, [Dv, Dv + D) dK.
template <typename T>
__global__ void dkv_kernel(KernelArgs a, const void* dout, Strides4 dout_s, const float* lse,
                           const float* delta, void* dk, Strides4 dk_s, void* dv, Strides4 dv_s) {
  const int cols = a.dv + a.d;
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nk * cols;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const Index x = split(a, idx, a.nk, cols);
    const int j = x.row;
    const int64_t bh = x.bh_row / a.nk;
    float acc = 0.f;
    for (int i = 0; i < a.nq; ++i) {
      const int64_t row = bh * a.nq + i;
      float p, ds;
      probability_and_ds<T>(a, dout, dout_s, x.b, x.h, i, j, lse[row], delta[row], &p, &ds);
      if (x.col < a.dv) {
        if (p != 0.f) acc += p * load4<T>(dout, dout_s.s, x.b, x.h, i, x.col);
      } else if (ds != 0.f) {
        acc += ds * load4<T>(a.q, a.q_strides, x.b, x.h, i, x.col - a.dv);
      }
    }
    if (x.col < a.dv) {
      store4<T>(dv, dv_s.s, x.b, x.h, j, x.col, acc);
    } else {
      store4<T>(dk, dk_s.s, x.b, x.h, j, x.col - a.dv, a.scale * acc);
    }
  }
}

int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * (a.dv > 0 ? a.dv : 1);
  if (n == 0) return;
  CHORUS_DISPATCH_ELEMENT(dtype, T,
                          forward_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(
                              a, out.out.data, strides_of(out.out.strides), out.logsumexp));
  check_launch("naive forward_kernel");
}

void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              float* delta, cudaStream_t stream) {
  const int64_t nq = static_cast<int64_t>(a.batch) * a.heads * a.nq * (a.d > 0 ? a.d : 1);
  const int64_t nkv = static_cast<int64_t>(a.batch) * a.heads * a.nk * (a.d + a.dv);
  const Strides4 dout_s = strides_of(args.dout.strides);
  if (nq > 0) {
    CHORUS_DISPATCH_ELEMENT(dtype, T,
                            dq_kernel<T><<<blocks_for(nq), kThreads, 0, stream>>>(
                                a, args.dout.data, dout_s, args.logsumexp, delta, args.dq.data,
                                strides_of(args.dq.strides), args.dbias));
    check_launch("naive dq_kernel");
  }
  if (nkv > 0) {
    CHORUS_DISPATCH_ELEMENT(dtype, T,
                            dkv_kernel<T><<<blocks_for(nkv), kThreads, 0, stream>>>(
                                a, args.dout.data, dout_s, args.logsumexp, delta, args.dk.data,
                                strides_of(args.dk.strides), args.dv.data,
                                strides_of(args.dv.strides)));
    check_launch("naive dkv_kernel");
  }
}

}  // namespace chorus::kernels::cuda::naive
