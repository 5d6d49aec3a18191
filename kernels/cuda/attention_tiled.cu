// v2, tiled: shared-memory tiles, fp32 compute, online softmax (flash style without tensor
// cores); any element type, any strides, D and Dv while the tiles fit in shared memory.
//
// Forward: a block owns 32 query rows of one (batch, head); it walks key tiles of 32, computing
// the 32 x 32 score tile from shared memory, updating the running max/sum per row and rescaling
// the fp32 output accumulator (in shared memory, so D is a run-time value). Key tiles that the
// causal mask or the key lengths hide from every row of the block are never loaded.
//
// Backward: a block owns 32 keys; it walks the query tiles that can see them, recomputes
// P = exp(S - lse) and dS = P (dP - D_i), accumulates dK and dV in shared memory and adds its
// share of dQ to an fp32 buffer with atomics (store_dq scales and converts it afterwards).
#include "kernels/cuda/attention_cuda_common.cuh"

namespace chorus::kernels::cuda::tiled {
namespace {

// Every tiling decision of v2.
struct Traits {
  // 32 x 32 tiles: one warp computes one row of 32 scores (lane = key), so the K tile is read
  // with a padded row (D + 1 floats) and no bank conflicts; 32 rows keep the forward's shared
  // memory at 70 KB for D = Dv = 128 (under A100's 163 KB and H100's 227 KB per block, two
  // blocks per SM on A100), and the backward's at 108 KB.
  static constexpr int kBlockQ = 32;
  static constexpr int kBlockK = 32;
  // 4 warps: each query row (forward) or key row (backward) gets 4 threads, which split its
  // output columns x = sub, sub + 4, ... and reduce the row's max and sum with two shuffles.
  static constexpr int kThreads = 128;
  static constexpr int kThreadsPerRow = kThreads / kBlockQ;
  // Output accumulators padded by 4 floats: rows r..r+7 of one warp start in distinct banks.
  static constexpr int kAccPad = 4;
  static constexpr int kScoreLd = kBlockK + 1;
  static_assert(kThreads % kBlockQ == 0 && kBlockQ == kBlockK, "one row per thread group");
  static_assert(kThreadsPerRow == 4, "the row reductions below shuffle over 4 lanes");
};

struct ForwardLayout {
  int q, k, v, s, o;  // offsets in floats
  int total;
  __host__ __device__ ForwardLayout(int d, int dv) {
    q = 0;
    k = q + Traits::kBlockQ * d;
    v = k + Traits::kBlockK * (d + 1);
    s = v + Traits::kBlockK * dv;
    o = s + Traits::kBlockQ * Traits::kScoreLd;
    total = o + Traits::kBlockQ * (dv + Traits::kAccPad);
  }
};

struct BackwardLayout {
  int k, v, q, dout, p, ds, dk, dv, lse, delta;
  int total;
  __host__ __device__ BackwardLayout(int d, int dvc) {
    k = 0;
    v = k + Traits::kBlockK * (d + 1);
    q = v + Traits::kBlockK * (dvc + 1);
    dout = q + Traits::kBlockQ * d;
    p = dout + Traits::kBlockQ * dvc;
    ds = p + Traits::kBlockQ * Traits::kScoreLd;
    dk = ds + Traits::kBlockQ * Traits::kScoreLd;
    dv = dk + Traits::kBlockK * (d + Traits::kAccPad);
    lse = dv + Traits::kBlockK * (dvc + Traits::kAccPad);
    delta = lse + Traits::kBlockQ;
    total = delta + Traits::kBlockQ;
  }
};

// Loads rows [row0, row0 + rows) of a strided [B, H, N, E] view into shared memory with leading
// dimension ld, as fp32; rows past n are zero.
template <typename T>
__device__ void load_tile(float* dst, int ld, const void* src, const int64_t* s, int b, int h,
                          int row0, int rows, int n, int e) {
  for (int idx = threadIdx.x; idx < rows * e; idx += blockDim.x) {
    const int r = idx / e, c = idx % e;
    dst[r * ld + c] = row0 + r < n ? load4<T>(src, s, b, h, row0 + r, c) : 0.f;
  }
}

// Keys [0, end) can be visible to some row of query block [q0, q0 + kBlockQ).
__device__ int key_end_for_block(const KernelArgs& a, int b, int q0) {
  int end = visible_key_end(a, b);
  if (a.causal) {
    const int last_row = min(q0 + Traits::kBlockQ, a.nq) - 1;
    end = min(end, max(0, last_row + (a.nk - a.nq) + 1));
  }
  return end;
}

template <typename T>
__global__ void __launch_bounds__(Traits::kThreads)
    forward_kernel(KernelArgs a, void* out, Strides4 out_s, float* lse) {
  extern __shared__ float smem[];
  const ForwardLayout L(a.d, a.dv);
  float* sQ = smem + L.q;
  float* sK = smem + L.k;
  float* sV = smem + L.v;
  float* sS = smem + L.s;
  float* sO = smem + L.o;
  const int bh = blockIdx.x;
  const int b = bh / a.heads, h = bh % a.heads;
  const int q0 = blockIdx.y * Traits::kBlockQ;
  const int tid = threadIdx.x;
  const int row = tid / Traits::kThreadsPerRow, sub = tid % Traits::kThreadsPerRow;
  const int oLd = a.dv + Traits::kAccPad;

  load_tile<T>(sQ, a.d, a.q, a.q_strides, b, h, q0, Traits::kBlockQ, a.nq, a.d);
  for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) sO[row * oLd + x] = 0.f;
  float m = kMinusInf, l = 0.f;  // the row's running max and sum (same in its 4 threads)

  const int key_end = key_end_for_block(a, b, q0);
  for (int k0 = 0; k0 < key_end; k0 += Traits::kBlockK) {
    __syncthreads();  // the previous tile's K, V and P are no longer read
    load_tile<T>(sK, a.d + 1, a.k, a.k_strides, b, h, k0, Traits::kBlockK, a.nk, a.d);
    load_tile<T>(sV, a.dv, a.v, a.v_strides, b, h, k0, Traits::kBlockK, a.nk, a.dv);
    __syncthreads();
    // Scores: warp w computes rows w, w + 4, ...; lane = key.
    for (int e = tid; e < Traits::kBlockQ * Traits::kBlockK; e += Traits::kThreads) {
      const int r = e / Traits::kBlockK, c = e % Traits::kBlockK;
      const int i = q0 + r, j = k0 + c;
      float s = kMinusInf;
      if (i < a.nq && j < a.nk && mask_allows(a, b, i, j)) {
        float dot = 0.f;
        for (int x = 0; x < a.d; ++x) dot += sQ[r * a.d + x] * sK[c * (a.d + 1) + x];
        s = biased_score(a, dot, b, h, i, j);
      }
      sS[r * Traits::kScoreLd + c] = s;
    }
    __syncthreads();
    // Online softmax: the 4 threads of a row take 8 scores each.
    float* srow = sS + row * Traits::kScoreLd;
    float tile_max = kMinusInf;
    for (int c = sub; c < Traits::kBlockK; c += Traits::kThreadsPerRow) tile_max = fmaxf(tile_max, srow[c]);
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m, tile_max);
    float alpha = 1.f, tile_sum = 0.f;
    if (m_new != kMinusInf) {
      alpha = m == kMinusInf ? 0.f : expf(m - m_new);
      for (int c = sub; c < Traits::kBlockK; c += Traits::kThreadsPerRow) {
        const float p = srow[c] == kMinusInf ? 0.f : expf(srow[c] - m_new);
        srow[c] = p;
        tile_sum += p;
      }
    } else {
      for (int c = sub; c < Traits::kBlockK; c += Traits::kThreadsPerRow) srow[c] = 0.f;
    }
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
    tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 2);
    l = l * alpha + tile_sum;
    m = m_new;
    __syncwarp();  // the row's probabilities, written by its 4 lanes, are read by all 4
    for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) {
      float acc = sO[row * oLd + x] * alpha;
      for (int c = 0; c < Traits::kBlockK; ++c) acc += srow[c] * sV[c * a.dv + x];
      sO[row * oLd + x] = acc;
    }
  }
  const int i = q0 + row;
  if (i < a.nq) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
    for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) {
      store4<T>(out, out_s.s, b, h, i, x, sO[row * oLd + x] * inv);
    }
    if (sub == 0) lse[static_cast<int64_t>(bh) * a.nq + i] = l > 0.f ? m + logf(l) : kMinusInf;
  }
}

template <typename T>
__global__ void __launch_bounds__(Traits::kThreads)
    backward_kernel(KernelArgs a, const void* dout, Strides4 dout_s, const float* lse_g,
                    const float* delta_g, float* dq_accum, void* dk, Strides4 dk_s, void* dv,
                    Strides4 dv_s, float* dbias) {
  extern __shared__ float smem[];
  const BackwardLayout L(a.d, a.dv);
  float* sK = smem + L.k;
  float* sV = smem + L.v;
  float* sQ = smem + L.q;
  float* sdO = smem + L.dout;
  float* sP = smem + L.p;
  float* sdS = smem + L.ds;
  float* sdK = smem + L.dk;
  float* sdV = smem + L.dv;
  float* sLse = smem + L.lse;
  float* sDelta = smem + L.delta;
  const int bh = blockIdx.x;
  const int b = bh / a.heads, h = bh % a.heads;
  const int k0 = blockIdx.y * Traits::kBlockK;
  const int tid = threadIdx.x;
  const int row = tid / Traits::kThreadsPerRow, sub = tid % Traits::kThreadsPerRow;
  const int kLd = a.d + Traits::kAccPad, vLd = a.dv + Traits::kAccPad;

  load_tile<T>(sK, a.d + 1, a.k, a.k_strides, b, h, k0, Traits::kBlockK, a.nk, a.d);
  load_tile<T>(sV, a.dv + 1, a.v, a.v_strides, b, h, k0, Traits::kBlockK, a.nk, a.dv);
  for (int x = sub; x < a.d; x += Traits::kThreadsPerRow) sdK[row * kLd + x] = 0.f;
  for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) sdV[row * vLd + x] = 0.f;

  // Query rows that may see a key of this block: none when the key lengths hide all of them;
  // with the causal mask, rows i >= k0 - (Nk - Nq).
  int q_begin = 0;
  const int q_end = k0 < visible_key_end(a, b) ? a.nq : 0;
  if (a.causal) q_begin = max(0, k0 - (a.nk - a.nq)) / Traits::kBlockQ * Traits::kBlockQ;
  const int64_t row_base = static_cast<int64_t>(bh) * a.nq;
  for (int q0 = q_begin; q0 < q_end; q0 += Traits::kBlockQ) {
    __syncthreads();  // the previous tile's Q, dO, P and dS are no longer read
    load_tile<T>(sQ, a.d, a.q, a.q_strides, b, h, q0, Traits::kBlockQ, a.nq, a.d);
    load_tile<T>(sdO, a.dv, dout, dout_s.s, b, h, q0, Traits::kBlockQ, a.nq, a.dv);
    if (tid < Traits::kBlockQ) {
      const bool valid = q0 + tid < a.nq;
      sLse[tid] = valid ? lse_g[row_base + q0 + tid] : kMinusInf;
      sDelta[tid] = valid ? delta_g[row_base + q0 + tid] : 0.f;
    }
    __syncthreads();
    // P and dS: warp w computes query rows w, w + 4, ...; lane = key.
    for (int e = tid; e < Traits::kBlockQ * Traits::kBlockK; e += Traits::kThreads) {
      const int r = e / Traits::kBlockK, c = e % Traits::kBlockK;
      const int i = q0 + r, j = k0 + c;
      float p = 0.f, ds = 0.f;
      if (i < a.nq && j < a.nk && sLse[r] != kMinusInf && mask_allows(a, b, i, j)) {
        float dot = 0.f;
        for (int x = 0; x < a.d; ++x) dot += sQ[r * a.d + x] * sK[c * (a.d + 1) + x];
        const float s = biased_score(a, dot, b, h, i, j);
        if (s != kMinusInf) {
          p = expf(s - sLse[r]);
          float dp = 0.f;
          for (int x = 0; x < a.dv; ++x) dp += sdO[r * a.dv + x] * sV[c * (a.dv + 1) + x];
          ds = p * (dp - sDelta[r]);
        }
      }
      sP[r * Traits::kScoreLd + c] = p;
      sdS[r * Traits::kScoreLd + c] = ds;
      if (dbias != nullptr && i < a.nq && j < a.nk) dbias[(row_base + i) * a.nk + j] = ds;
    }
    __syncthreads();
    // dV_c += sum_r P_rc dO_r and dK_c += sum_r dS_rc Q_r: thread group `row` owns key `row`.
    for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) {
      float acc = 0.f;
      for (int r = 0; r < Traits::kBlockQ; ++r) acc += sP[r * Traits::kScoreLd + row] * sdO[r * a.dv + x];
      sdV[row * vLd + x] += acc;
    }
    for (int x = sub; x < a.d; x += Traits::kThreadsPerRow) {
      float acc = 0.f;
      for (int r = 0; r < Traits::kBlockQ; ++r) acc += sdS[r * Traits::kScoreLd + row] * sQ[r * a.d + x];
      sdK[row * kLd + x] += acc;
    }
    // dQ_r += sum_c dS_rc K_c: thread group `row` owns query row `row` of this tile.
    const int i = q0 + row;
    if (i < a.nq) {
      for (int x = sub; x < a.d; x += Traits::kThreadsPerRow) {
        float acc = 0.f;
        for (int c = 0; c < Traits::kBlockK; ++c) acc += sdS[row * Traits::kScoreLd + c] * sK[c * (a.d + 1) + x];
        if (acc != 0.f) atomicAdd(&dq_accum[(row_base + i) * a.d + x], acc);
      }
    }
  }
  const int j = k0 + row;
  if (j < a.nk) {
    for (int x = sub; x < a.dv; x += Traits::kThreadsPerRow) store4<T>(dv, dv_s.s, b, h, j, x, sdV[row * vLd + x]);
    for (int x = sub; x < a.d; x += Traits::kThreadsPerRow) {
      store4<T>(dk, dk_s.s, b, h, j, x, a.scale * sdK[row * kLd + x]);
    }
  }
}

dim3 grid_for(const KernelArgs& a, int rows, int tile) {
  const int tiles = ceil_div(rows, tile);
  CHORUS_CHECK(tiles <= 65535, "attention_cuda (tiled): ", rows, " rows need ", tiles,
               " tiles, more than a grid's 65535");
  return dim3(static_cast<unsigned>(a.batch * a.heads), static_cast<unsigned>(tiles));
}

template <typename Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  CHORUS_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace

size_t forward_shared_bytes(int d, int dv) { return sizeof(float) * ForwardLayout(d, dv).total; }
size_t backward_shared_bytes(int d, int dv) { return sizeof(float) * BackwardLayout(d, dv).total; }

void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream) {
  if (static_cast<int64_t>(a.batch) * a.heads * a.nq == 0) return;
  const dim3 grid = grid_for(a, a.nq, Traits::kBlockQ);
  const size_t bytes = forward_shared_bytes(a.d, a.dv);
  CHORUS_DISPATCH_ELEMENT(dtype, T, {
    allow_shared(forward_kernel<T>, bytes);
    forward_kernel<T><<<grid, Traits::kThreads, bytes, stream>>>(a, out.out.data,
                                                                  strides_of(out.out.strides),
                                                                  out.logsumexp);
  });
  check_launch("tiled forward_kernel");
}

void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, float* dq_accum, cudaStream_t stream) {
  if (static_cast<int64_t>(a.batch) * a.heads * a.nk == 0) return;
  const dim3 grid = grid_for(a, a.nk, Traits::kBlockK);
  const size_t bytes = backward_shared_bytes(a.d, a.dv);
  CHORUS_DISPATCH_ELEMENT(dtype, T, {
    allow_shared(backward_kernel<T>, bytes);
    backward_kernel<T><<<grid, Traits::kThreads, bytes, stream>>>(
        a, args.dout.data, strides_of(args.dout.strides), args.logsumexp, delta, dq_accum,
        args.dk.data, strides_of(args.dk.strides), args.dv.data, strides_of(args.dv.strides),
        args.dbias);
  });
  check_launch("tiled backward_kernel");
}

}  // namespace chorus::kernels::cuda::tiled
