// v3 forward: flash attention on tensor cores (bf16/fp16 in, fp32 accumulate), D = Dv in
// {64, 128}.
//
// A block owns 64 query rows of one (batch, head), 16 per warp. Q's fragments stay in registers;
// for each 64-key tile the warp computes S = Q K^T with mma.m16n8k16, applies scale, bias and
// mask, updates the running max and sum in the log2 domain (exp2), rescales its fp32 output
// accumulator and adds P V, with P converted to 16 bits straight from the S accumulators. Key
// tiles hidden from every row of the block (causal, key lengths) are never loaded; tiles with no
// bias, no group mask and no partial visibility skip the per-element mask test.
#include "kernels/cuda/attention_flash.cuh"

namespace chorus::kernels::cuda::flash {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <typename T, int D>
__global__ void __launch_bounds__(ForwardTraits<D>::kThreads)
    forward_kernel(KernelArgs a, void* out, Strides4 out_s, float* lse) {
  using Tr = ForwardTraits<D>;
  constexpr int kLd = Tr::kLd;
  constexpr int kTilesN = Tr::kBlockN / 8;  // S tiles of 16 x 8 per warp
  constexpr int kTilesD = D / 8;            // O tiles of 16 x 8 per warp
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  uint16_t* sQ = reinterpret_cast<uint16_t*>(smem_bytes);
  uint16_t* sK = sQ + Tr::kBlockM * kLd;
  uint16_t* sV = sK + Tr::kBlockN * kLd;

  const int bh = blockIdx.x;
  const int b = bh / a.heads, h = bh % a.heads;
  const int q0 = blockIdx.y * Tr::kBlockM;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int row0 = q0 + warp * 16 + g;  // this thread's two rows: row0 and row0 + 8

  load_tile<D>(sQ, kLd, a.q, a.q_strides, b, h, q0, Tr::kBlockM, a.nq);
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) load_a(qf[kk], sQ + warp * 16 * kLd + kk * 16, kLd, lane);

  float o[kTilesD][4];
#pragma unroll
  for (int n = 0; n < kTilesD; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {kMinusInf, kMinusInf};  // running max (log2 domain), full row
  float l[2] = {0.f, 0.f};              // running sum, this thread's columns only

  // Keys [0, key_end) can be visible to some row of the block.
  const int lengths_end = visible_key_end(a, b);
  int key_end = lengths_end;
  const int shift = a.nk - a.nq;  // causal: query i sees keys j <= i + shift
  if (a.causal) key_end = min(key_end, max(0, min(q0 + Tr::kBlockM, a.nq) - 1 + shift + 1));
  const float scale_log2 = a.scale * kLog2e;

  for (int n0 = 0; n0 < key_end; n0 += Tr::kBlockN) {
    __syncthreads();  // every warp is done with the previous K and V
    load_tile<D>(sK, kLd, a.k, a.k_strides, b, h, n0, Tr::kBlockN, a.nk);
    load_tile<D>(sV, kLd, a.v, a.v_strides, b, h, n0, Tr::kBlockN, a.nk);
    __syncthreads();

    float s[kTilesN][4];
#pragma unroll
    for (int n = 0; n < kTilesN; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int n = 0; n < kTilesN; ++n) {
        uint32_t bf[2];
        load_b_transposed(bf, sK + n * 8 * kLd + kk * 16, kLd, lane);
        Mma<T>::run(s[n], qf[kk], bf);
      }
    }

    // Scale (log2 domain), bias and mask. A tile every row sees whole needs no per-element test.
    const bool whole = a.bias == nullptr && a.group_visibility == nullptr &&
                       n0 + Tr::kBlockN <= lengths_end && q0 + Tr::kBlockM <= a.nq &&
                       (!a.causal || n0 + Tr::kBlockN - 1 <= q0 + shift);
#pragma unroll
    for (int n = 0; n < kTilesN; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (whole) {
          s[n][e] *= scale_log2;
        } else {
          const int i = row0 + (e >= 2 ? 8 : 0);
          const int j = n0 + n * 8 + 2 * t + (e & 1);
          float x = kMinusInf;
          if (i < a.nq && j < a.nk && mask_allows(a, b, i, j)) {
            x = biased_score(a, s[n][e], b, h, i, j) * kLog2e;
          }
          s[n][e] = x;
        }
      }
    }

    // Online softmax for rows row0 (e = 0, 1) and row0 + 8 (e = 2, 3).
    float tile_max[2] = {kMinusInf, kMinusInf};
#pragma unroll
    for (int n = 0; n < kTilesN; ++n) {
      tile_max[0] = fmaxf(tile_max[0], fmaxf(s[n][0], s[n][1]));
      tile_max[1] = fmaxf(tile_max[1], fmaxf(s[n][2], s[n][3]));
    }
    float alpha[2], m_use[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float m_new = fmaxf(m[r], tile_max[r]);
      // A row with nothing visible yet keeps m = -inf; exponentiate against 0 so that
      // exp2(-inf - 0) = 0 instead of exp2(-inf + inf) = NaN.
      m_use[r] = m_new == kMinusInf ? 0.f : m_new;
      alpha[r] = exp2f(m[r] - m_use[r]);
      m[r] = m_new;
      l[r] *= alpha[r];
    }
#pragma unroll
    for (int n = 0; n < kTilesN; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[n][e] - m_use[e >> 1]);
        s[n][e] = p;
        l[e >> 1] += p;
      }
    }
#pragma unroll
    for (int n = 0; n < kTilesD; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }

    // O += P V, 16 keys per step; P's A fragment is two adjacent S tiles.
#pragma unroll
    for (int kk = 0; kk < Tr::kBlockN / 16; ++kk) {
      uint32_t pf[4];
      pf[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
      pf[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
      pf[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < kTilesD; ++n) {
        uint32_t bf[2];
        load_b(bf, sV + kk * 16 * kLd + n * 8, kLd, lane);
        Mma<T>::run(o[n], pf, bf);
      }
    }
  }

  // The full row sums, then O / l and the log-sum-exp (natural log).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + 8 * r;
    if (i >= a.nq) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
    for (int n = 0; n < kTilesD; ++n) {
      const int c = n * 8 + 2 * t;
      store_element(out, out_s.s, b, h, i, c, o[n][2 * r] * inv, static_cast<T*>(nullptr));
      store_element(out, out_s.s, b, h, i, c + 1, o[n][2 * r + 1] * inv, static_cast<T*>(nullptr));
    }
    if (t == 0) {
      lse[static_cast<int64_t>(bh) * a.nq + i] = l[r] > 0.f ? m[r] * kLn2 + logf(l[r]) : kMinusInf;
    }
  }
}

}  // namespace

template <typename T, int D>
void launch_forward(const KernelArgs& a, const AttentionForwardOutputs& out, cudaStream_t stream) {
  using Tr = ForwardTraits<D>;
  const int tiles = ceil_div(a.nq, Tr::kBlockM);
  CHORUS_CHECK(tiles <= 65535, "attention_cuda (flash): ", a.nq, " query rows need ", tiles,
               " tiles, more than a grid's 65535");
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads), static_cast<unsigned>(tiles));
  CHORUS_CUDA_CHECK(cudaFuncSetAttribute(forward_kernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Tr::kSharedBytes));
  forward_kernel<T, D><<<grid, Tr::kThreads, Tr::kSharedBytes, stream>>>(
      a, out.out.data, strides_of(out.out.strides), out.logsumexp);
  check_launch("flash forward_kernel");
}

template void launch_forward<__nv_bfloat16, 64>(const KernelArgs&, const AttentionForwardOutputs&,
                                                cudaStream_t);
template void launch_forward<__nv_bfloat16, 128>(const KernelArgs&,
                                                 const AttentionForwardOutputs&, cudaStream_t);
template void launch_forward<__half, 64>(const KernelArgs&, const AttentionForwardOutputs&,
                                         cudaStream_t);
template void launch_forward<__half, 128>(const KernelArgs&, const AttentionForwardOutputs&,
                                          cudaStream_t);

bool supports(ElementType dtype, int64_t d, int64_t dv) {
  return (dtype == ElementType::kBFloat16 || dtype == ElementType::kFloat16) && d == dv &&
         (d == 64 || d == 128);
}

void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream) {
  CHORUS_CHECK(supports(dtype, a.d, a.dv), "attention_cuda (flash): unsupported case: ",
               dtype_name(dtype), " with D = ", a.d, ", Dv = ", a.dv,
               " (needs bfloat16 or float16 with D = Dv in {64, 128})");
  if (static_cast<int64_t>(a.batch) * a.heads * a.nq == 0) return;
  const bool bf16 = dtype == ElementType::kBFloat16;
  if (a.d == 64) {
    bf16 ? launch_forward<__nv_bfloat16, 64>(a, out, stream) : launch_forward<__half, 64>(a, out, stream);
  } else {
    bf16 ? launch_forward<__nv_bfloat16, 128>(a, out, stream)
         : launch_forward<__half, 128>(a, out, stream);
  }
}

}  // namespace chorus::kernels::cuda::flash
