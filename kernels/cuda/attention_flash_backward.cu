// v3 backward: flash attention's backward on tensor cores (bf16/fp16 in, fp32 accumulate),
// D = Dv in {64, 128}.
//
// A block owns 64 keys of one (batch, head), 16 per warp, and walks the query tiles that can see
// them (from the causal diagonal on; none when the key lengths hide the block). Per tile each
// warp computes S^T = K Q^T and dP^T = V dO^T with mma.m16n8k16, recomputes P^T = exp(S^T - lse)
// and dS^T = P^T (dP^T - D_i) in registers, and accumulates dV += P^T dO and dK += dS^T Q without
// leaving registers (the C-to-A fragment reuse of the forward). dS goes through shared memory as
// [query][key] so that the block computes its dQ share dS K on tensor cores and adds it to an fp32
// buffer with atomics; store_dq applies the scale and the element type afterwards.
#include "kernels/cuda/attention_flash.cuh"

namespace chorus::kernels::cuda::flash {
namespace {

template <typename T, int D>
__global__ void __launch_bounds__(BackwardTraits<D>::kThreads)
    backward_kernel(KernelArgs a, const void* dout, Strides4 dout_s, const float* lse_g,
                    const float* delta_g, float* dq_accum, void* dk, Strides4 dk_s, void* dv,
                    Strides4 dv_s, float* dbias) {
  using Tr = BackwardTraits<D>;
  constexpr int kLd = Tr::kLd;
  constexpr int kLdS = Tr::kLdS;
  constexpr int kTilesM = Tr::kBlockM / 8;  // S^T tiles of 16 keys x 8 queries per warp
  constexpr int kTilesD = D / 8;            // dK, dV tiles of 16 keys x 8 columns per warp
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  uint16_t* sK = reinterpret_cast<uint16_t*>(smem_bytes);
  uint16_t* sV = sK + Tr::kBlockN * kLd;
  uint16_t* sQ = sV + Tr::kBlockN * kLd;
  uint16_t* sdO = sQ + Tr::kBlockM * kLd;
  uint16_t* sdS = sdO + Tr::kBlockM * kLd;
  float* sLse = reinterpret_cast<float*>(sdS + Tr::kBlockM * kLdS);
  float* sDelta = sLse + Tr::kBlockM;

  const int bh = blockIdx.x;
  const int b = bh / a.heads, h = bh % a.heads;
  const int n0 = blockIdx.y * Tr::kBlockN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, t = lane & 3;
  const int kw = warp * 16;         // this warp's first key, relative to n0
  const int key0 = n0 + kw + g;     // this thread's two keys: key0 and key0 + 8
  const int64_t row_base = static_cast<int64_t>(bh) * a.nq;

  load_tile<D>(sK, kLd, a.k, a.k_strides, b, h, n0, Tr::kBlockN, a.nk);
  load_tile<D>(sV, kLd, a.v, a.v_strides, b, h, n0, Tr::kBlockN, a.nk);

  float dk_acc[kTilesD][4], dv_acc[kTilesD][4];
#pragma unroll
  for (int n = 0; n < kTilesD; ++n) {
    dk_acc[n][0] = dk_acc[n][1] = dk_acc[n][2] = dk_acc[n][3] = 0.f;
    dv_acc[n][0] = dv_acc[n][1] = dv_acc[n][2] = dv_acc[n][3] = 0.f;
  }

  const int shift = a.nk - a.nq;
  const int q_end = n0 < visible_key_end(a, b) ? a.nq : 0;
  const int q_begin = a.causal ? max(0, n0 - shift) / Tr::kBlockM * Tr::kBlockM : 0;
  for (int m0 = q_begin; m0 < q_end; m0 += Tr::kBlockM) {
    __syncthreads();  // the previous tile's Q, dO and dS are no longer read (and K, V are loaded)
    load_tile<D>(sQ, kLd, a.q, a.q_strides, b, h, m0, Tr::kBlockM, a.nq);
    load_tile<D>(sdO, kLd, dout, dout_s.s, b, h, m0, Tr::kBlockM, a.nq);
    for (int r = threadIdx.x; r < Tr::kBlockM; r += Tr::kThreads) {
      const bool valid = m0 + r < a.nq;
      sLse[r] = valid ? lse_g[row_base + m0 + r] : kMinusInf;
      sDelta[r] = valid ? delta_g[row_base + m0 + r] : 0.f;
    }
    __syncthreads();

    // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x kBlockM queries.
    float st[kTilesM][4], dpt[kTilesM][4];
#pragma unroll
    for (int n = 0; n < kTilesM; ++n) {
      st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.f;
      dpt[n][0] = dpt[n][1] = dpt[n][2] = dpt[n][3] = 0.f;
    }
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t kf[4], vf[4];
      load_a(kf, sK + kw * kLd + kk * 16, kLd, lane);
      load_a(vf, sV + kw * kLd + kk * 16, kLd, lane);
#pragma unroll
      for (int n = 0; n < kTilesM; ++n) {
        uint32_t bf[2];
        load_b_transposed(bf, sQ + n * 8 * kLd + kk * 16, kLd, lane);
        Mma<T>::run(st[n], kf, bf);
        load_b_transposed(bf, sdO + n * 8 * kLd + kk * 16, kLd, lane);
        Mma<T>::run(dpt[n], vf, bf);
      }
    }

    // P^T and dS^T in place (st <- P, dpt <- dS); dS also into dbias and, as 16 bits, into sdS.
    // A tile whose every pair is visible (no bias, no groups, inside the key lengths and below
    // the causal diagonal) skips the per-element mask test; its rows see a key, so lse is finite.
    const bool whole = a.bias == nullptr && a.group_visibility == nullptr &&
                       n0 + Tr::kBlockN <= visible_key_end(a, b) && m0 + Tr::kBlockM <= a.nq &&
                       (!a.causal || n0 + Tr::kBlockN - 1 <= m0 + shift);
#pragma unroll
    for (int n = 0; n < kTilesM; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = key0 + (e >= 2 ? 8 : 0);
        const int r = n * 8 + 2 * t + (e & 1);  // query row within the tile
        const int i = m0 + r;
        float p = 0.f, ds = 0.f;
        const float lse_i = sLse[r];
        if (whole) {
          p = __expf(st[n][e] * a.scale - lse_i);
          ds = p * (dpt[n][e] - sDelta[r]);
        } else if (i < a.nq && j < a.nk && lse_i != kMinusInf && mask_allows(a, b, i, j)) {
          const float s = biased_score(a, st[n][e], b, h, i, j);
          if (s != kMinusInf) {
            p = __expf(s - lse_i);
            ds = p * (dpt[n][e] - sDelta[r]);
          }
        }
        st[n][e] = p;
        dpt[n][e] = ds;
        if (dbias != nullptr && i < a.nq && j < a.nk) dbias[(row_base + i) * a.nk + j] = ds;
        sdS[r * kLdS + kw + g + (e >= 2 ? 8 : 0)] =
            static_cast<uint16_t>(Mma<T>::pack(ds, 0.f) & 0xffffu);
      }
    }

    // dV += P^T dO and dK += dS^T Q, 16 queries per step.
#pragma unroll
    for (int kk = 0; kk < Tr::kBlockM / 16; ++kk) {
      uint32_t pf[4], df[4];
      pf[0] = Mma<T>::pack(st[2 * kk][0], st[2 * kk][1]);
      pf[1] = Mma<T>::pack(st[2 * kk][2], st[2 * kk][3]);
      pf[2] = Mma<T>::pack(st[2 * kk + 1][0], st[2 * kk + 1][1]);
      pf[3] = Mma<T>::pack(st[2 * kk + 1][2], st[2 * kk + 1][3]);
      df[0] = Mma<T>::pack(dpt[2 * kk][0], dpt[2 * kk][1]);
      df[1] = Mma<T>::pack(dpt[2 * kk][2], dpt[2 * kk][3]);
      df[2] = Mma<T>::pack(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]);
      df[3] = Mma<T>::pack(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < kTilesD; ++n) {
        uint32_t bf[2];
        load_b(bf, sdO + kk * 16 * kLd + n * 8, kLd, lane);
        Mma<T>::run(dv_acc[n], pf, bf);
        load_b(bf, sQ + kk * 16 * kLd + n * 8, kLd, lane);
        Mma<T>::run(dk_acc[n], df, bf);
      }
    }
    __syncthreads();  // all of dS is in shared memory

    // dQ (kBlockM x D) += dS (kBlockM x 64 keys) K (64 keys x D): 16 x 8 tiles spread over the
    // warps, each added to the fp32 buffer with atomics.
    constexpr int kTiles = (Tr::kBlockM / 16) * kTilesD;
#pragma unroll
    for (int tile = warp; tile < kTiles; tile += Tr::kWarps) {
      const int mt = tile / kTilesD, nt = tile % kTilesD;
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int kk = 0; kk < Tr::kBlockN / 16; ++kk) {
        uint32_t af[4], bf[2];
        load_a(af, sdS + mt * 16 * kLdS + kk * 16, kLdS, lane);
        load_b(bf, sK + kk * 16 * kLd + nt * 8, kLd, lane);
        Mma<T>::run(acc, af, bf);
      }
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = m0 + mt * 16 + g + (e >= 2 ? 8 : 0);
        const int c = nt * 8 + 2 * t + (e & 1);
        if (i < a.nq && acc[e] != 0.f) atomicAdd(&dq_accum[(row_base + i) * D + c], acc[e]);
      }
    }
  }

  // dK (scaled) and dV for this thread's two keys.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = key0 + 8 * r;
    if (j >= a.nk) continue;
#pragma unroll
    for (int n = 0; n < kTilesD; ++n) {
      const int c = n * 8 + 2 * t;
      store_element(dv, dv_s.s, b, h, j, c, dv_acc[n][2 * r], static_cast<T*>(nullptr));
      store_element(dv, dv_s.s, b, h, j, c + 1, dv_acc[n][2 * r + 1], static_cast<T*>(nullptr));
      store_element(dk, dk_s.s, b, h, j, c, a.scale * dk_acc[n][2 * r], static_cast<T*>(nullptr));
      store_element(dk, dk_s.s, b, h, j, c + 1, a.scale * dk_acc[n][2 * r + 1],
                    static_cast<T*>(nullptr));
    }
  }
}

}  // namespace

template <typename T, int D>
void launch_backward(const KernelArgs& a, const AttentionBackwardArgs& args, const float* delta,
                     float* dq_accum, cudaStream_t stream) {
  using Tr = BackwardTraits<D>;
  const int tiles = ceil_div(a.nk, Tr::kBlockN);
  CHORUS_CHECK(tiles <= 65535, "attention_cuda (flash): ", a.nk, " keys need ", tiles,
               " tiles, more than a grid's 65535");
  const dim3 grid(static_cast<unsigned>(a.batch * a.heads), static_cast<unsigned>(tiles));
  CHORUS_CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T, D>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         Tr::kSharedBytes));
  backward_kernel<T, D><<<grid, Tr::kThreads, Tr::kSharedBytes, stream>>>(
      a, args.dout.data, strides_of(args.dout.strides), args.logsumexp, delta, dq_accum,
      args.dk.data, strides_of(args.dk.strides), args.dv.data, strides_of(args.dv.strides),
      args.dbias);
  check_launch("flash backward_kernel");
}

template void launch_backward<__nv_bfloat16, 64>(const KernelArgs&, const AttentionBackwardArgs&,
                                                 const float*, float*, cudaStream_t);
template void launch_backward<__nv_bfloat16, 128>(const KernelArgs&, const AttentionBackwardArgs&,
                                                  const float*, float*, cudaStream_t);
template void launch_backward<__half, 64>(const KernelArgs&, const AttentionBackwardArgs&,
                                          const float*, float*, cudaStream_t);
template void launch_backward<__half, 128>(const KernelArgs&, const AttentionBackwardArgs&,
                                           const float*, float*, cudaStream_t);

void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, float* dq_accum, cudaStream_t stream) {
  CHORUS_CHECK(supports(dtype, a.d, a.dv), "attention_cuda (flash): unsupported case: ",
               dtype_name(dtype), " with D = ", a.d, ", Dv = ", a.dv,
               " (needs bfloat16 or float16 with D = Dv in {64, 128})");
  if (static_cast<int64_t>(a.batch) * a.heads * a.nk == 0) return;
  const bool bf16 = dtype == ElementType::kBFloat16;
  if (a.d == 64) {
    bf16 ? launch_backward<__nv_bfloat16, 64>(a, args, delta, dq_accum, stream)
         : launch_backward<__half, 64>(a, args, delta, dq_accum, stream);
  } else {
    bf16 ? launch_backward<__nv_bfloat16, 128>(a, args, delta, dq_accum, stream)
         : launch_backward<__half, 128>(a, args, delta, dq_accum, stream);
  }
}

}  // namespace chorus::kernels::cuda::flash
