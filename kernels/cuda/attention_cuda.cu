// The CUDA attention entry points: argument checks, the version dispatcher, workspace layout and
// the small kernels every version shares (D_i = rowsum(dO * O), dQ's final store, probabilities).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/cuda/attention_cuda.h"
#include "kernels/cuda/attention_cuda_common.cuh"

namespace chorus::kernels::cuda {

const char* attention_version_name(AttentionVersion version) {
  switch (version) {
    case AttentionVersion::kNaive:
      return "naive";
    case AttentionVersion::kTiled:
      return "tiled";
    case AttentionVersion::kFlash:
      return "flash";
    case AttentionVersion::kCublas:
      return "cublas";
  }
  return "unknown";
}

bool parse_attention_version(const char* text, AttentionVersion* version) {
  if (text == nullptr) return false;
  for (AttentionVersion v : {AttentionVersion::kNaive, AttentionVersion::kTiled,
                             AttentionVersion::kFlash, AttentionVersion::kCublas}) {
    if (std::strcmp(text, attention_version_name(v)) == 0) {
      *version = v;
      return true;
    }
  }
  return false;
}

CudaDeviceTraits current_device_traits() {
  int device = 0;
  CHORUS_CUDA_CHECK(cudaGetDevice(&device));
  CudaDeviceTraits traits;
  CHORUS_CUDA_CHECK(cudaDeviceGetAttribute(&traits.major, cudaDevAttrComputeCapabilityMajor, device));
  CHORUS_CUDA_CHECK(cudaDeviceGetAttribute(&traits.minor, cudaDevAttrComputeCapabilityMinor, device));
  int shared = 0;
  CHORUS_CUDA_CHECK(
      cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  traits.max_shared_bytes_per_block = static_cast<size_t>(shared);
  return traits;
}

namespace {

bool tiled_fits(const CudaDeviceTraits& device, int64_t d, int64_t dv, bool backward) {
  if (d > 1024 || dv > 1024) return false;  // keeps the byte counts below far from overflow
  const size_t bytes = backward ? tiled::backward_shared_bytes(static_cast<int>(d), static_cast<int>(dv))
                                : tiled::forward_shared_bytes(static_cast<int>(d), static_cast<int>(dv));
  return bytes <= device.max_shared_bytes_per_block;
}

bool flash_fits(const CudaDeviceTraits& device, ElementType dtype, int64_t d, int64_t dv) {
  return device.major >= 8 && flash::supports(dtype, d, dv);
}

// cuBLAS reads rows through a leading dimension: a unit last stride and a row stride that fits an
// int and covers the row; empty problems go to the fused kernels.
bool cublas_rows_ok(const int64_t* strides, int64_t cols) {
  return strides[3] == 1 && strides[2] >= cols && strides[2] <= std::numeric_limits<int>::max();
}

bool cublas_layout_ok(const AttentionParams& p) {
  return p.nk > 0 && p.d > 0 && p.dv > 0 && cublas_rows_ok(p.q.strides, p.d) &&
         cublas_rows_ok(p.k.strides, p.d) && cublas_rows_ok(p.v.strides, p.dv);
}

}  // namespace

AttentionVersion choose_version(const CudaDeviceTraits& device, ElementType dtype, int64_t d,
                                int64_t dv, bool needs_backward) {
  if (flash_fits(device, dtype, d, dv)) return AttentionVersion::kFlash;
  if (tiled_fits(device, d, dv, false) && (!needs_backward || tiled_fits(device, d, dv, true))) {
    return AttentionVersion::kTiled;
  }
  return AttentionVersion::kNaive;
}

AttentionVersion requested_version(const CudaDeviceTraits& device, ElementType dtype, int64_t d,
                                   int64_t dv, bool needs_backward) {
  const char* env = std::getenv("CHORUS_ATTENTION_CUDA_VERSION");
  if (env == nullptr || *env == '\0') return choose_version(device, dtype, d, dv, needs_backward);
  AttentionVersion version;
  if (!parse_attention_version(env, &version)) {
    throw Error(detail::concat("CHORUS_ATTENTION_CUDA_VERSION must be naive, tiled, flash or "
                               "cublas, got '",
                               env, "'"));
  }
  return version;
}

AttentionVersion effective_forward_version(const CudaDeviceTraits& device,
                                           const AttentionParams& p, AttentionVersion requested) {
  switch (requested) {
    case AttentionVersion::kCublas:
      if (cublas_layout_ok(p)) return AttentionVersion::kCublas;
      return effective_forward_version(device, p, choose_version(device, p.dtype, p.d, p.dv, false));
    case AttentionVersion::kFlash:
      if (flash_fits(device, p.dtype, p.d, p.dv)) return AttentionVersion::kFlash;
      [[fallthrough]];
    case AttentionVersion::kTiled:
      if (tiled_fits(device, p.d, p.dv, false)) return AttentionVersion::kTiled;
      [[fallthrough]];
    case AttentionVersion::kNaive:
      break;
  }
  return AttentionVersion::kNaive;
}

AttentionVersion effective_backward_version(const CudaDeviceTraits& device,
                                            const AttentionParams& p, AttentionVersion requested) {
  switch (requested) {
    case AttentionVersion::kCublas:
      if (cublas_layout_ok(p) && p.nq > 0) return AttentionVersion::kCublas;
      return effective_backward_version(device, p, choose_version(device, p.dtype, p.d, p.dv, true));
    case AttentionVersion::kFlash:
      if (flash_fits(device, p.dtype, p.d, p.dv)) return AttentionVersion::kFlash;
      [[fallthrough]];
    case AttentionVersion::kTiled:
      if (tiled_fits(device, p.d, p.dv, true)) return AttentionVersion::kTiled;
      [[fallthrough]];
    case AttentionVersion::kNaive:
      break;
  }
  return AttentionVersion::kNaive;
}

KernelArgs make_kernel_args(const AttentionParams& p) {
  const int64_t limit = std::numeric_limits<int>::max();
  CHORUS_CHECK(p.batch >= 0 && p.heads >= 0 && p.nq >= 0 && p.nk >= 0 && p.d >= 0 && p.dv >= 0,
               "attention_cuda: negative size in [B, H, Nq, Nk, D, Dv] = [", p.batch, ", ",
               p.heads, ", ", p.nq, ", ", p.nk, ", ", p.d, ", ", p.dv, "]");
  CHORUS_CHECK(p.batch <= limit && p.heads <= limit && p.batch * p.heads <= limit &&
                   p.nq <= limit / 2 && p.nk <= limit / 2 && p.d <= 65536 && p.dv <= 65536,
               "attention_cuda: sizes [B, H, Nq, Nk, D, Dv] = [", p.batch, ", ", p.heads, ", ",
               p.nq, ", ", p.nk, ", ", p.d, ", ", p.dv, "] exceed the kernels' 32-bit indices");
  CHORUS_CHECK(!p.mask.has_groups() ||
                   (p.mask.query_groups != nullptr && p.mask.key_groups != nullptr &&
                    p.mask.num_groups > 0),
               "attention_cuda: a group mask needs query_groups, key_groups and num_groups > 0");
  KernelArgs a{};
  a.batch = static_cast<int>(p.batch);
  a.heads = static_cast<int>(p.heads);
  a.nq = static_cast<int>(p.nq);
  a.nk = static_cast<int>(p.nk);
  a.d = static_cast<int>(p.d);
  a.dv = static_cast<int>(p.dv);
  a.scale = p.scale;
  a.q = p.q.data;
  a.k = p.k.data;
  a.v = p.v.data;
  for (int i = 0; i < 4; ++i) {
    a.q_strides[i] = p.q.strides[i];
    a.k_strides[i] = p.k.strides[i];
    a.v_strides[i] = p.v.strides[i];
    a.bias_strides[i] = p.mask.bias_strides[i];
  }
  a.causal = p.mask.causal;
  a.key_lengths = p.mask.key_lengths;
  a.query_groups = p.mask.query_groups;
  a.query_groups_batch_stride = p.mask.query_groups_batch_stride;
  a.key_groups = p.mask.key_groups;
  a.key_groups_batch_stride = p.mask.key_groups_batch_stride;
  a.group_visibility = p.mask.group_visibility;
  a.num_groups = p.mask.num_groups;
  a.bias = p.mask.bias;
  return a;
}

// --- Shared kernels.

namespace {

// One warp per query row.
template <typename T>
__global__ void row_delta_kernel(KernelArgs a, const void* out, Strides4 out_s, const void* dout,
                                 Strides4 dout_s, float* delta) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t rows = static_cast<int64_t>(a.batch) * a.heads * a.nq;
  if (row >= rows) return;
  const int64_t bh = row / a.nq;
  const int i = static_cast<int>(row % a.nq);
  const int b = static_cast<int>(bh / a.heads), h = static_cast<int>(bh % a.heads);
  float sum = 0.f;
  for (int c = lane; c < a.dv; c += 32) {
    sum += load4<T>(dout, dout_s.s, b, h, i, c) * load4<T>(out, out_s.s, b, h, i, c);
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) delta[row] = sum;
}

template <typename T>
__global__ void store_dq_kernel(KernelArgs a, const float* dq_accum, void* dq, Strides4 dq_s) {
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * a.d;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(idx % a.d);
    const int64_t row = idx / a.d;
    const int i = static_cast<int>(row % a.nq);
    const int64_t bh = row / a.nq;
    store4<T>(dq, dq_s.s, bh / a.heads, bh % a.heads, i, c, a.scale * dq_accum[idx]);
  }
}

// One thread per (row, key): the score again, exponentiated against the row's log-sum-exp.
template <typename T>
__global__ void probabilities_kernel(KernelArgs a, const float* lse, float* probabilities) {
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * a.nk;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(idx % a.nk);
    const int64_t row = idx / a.nk;
    const int i = static_cast<int>(row % a.nq);
    const int64_t bh = row / a.nq;
    const int b = static_cast<int>(bh / a.heads), h = static_cast<int>(bh % a.heads);
    const float l = lse[row];
    float p = 0.f;
    if (l != kMinusInf && mask_allows(a, b, i, j)) {
      float dot = 0.f;
      for (int c = 0; c < a.d; ++c) {
        dot += load4<T>(a.q, a.q_strides, b, h, i, c) * load4<T>(a.k, a.k_strides, b, h, j, c);
      }
      p = expf(biased_score(a, dot, b, h, i, j) - l);
    }
    probabilities[idx] = p;
  }
}

// A grid-stride launch size: enough blocks to fill a large GPU, capped so n == 0 launches none.
int grid_stride_blocks(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

Strides4 strides_of(const int64_t* s) {
  Strides4 out;
  for (int i = 0; i < 4; ++i) out.s[i] = s[i];
  return out;
}

void row_delta(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
               float* delta, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(a.batch) * a.heads * a.nq;
  if (rows == 0) return;
  const int warps = 8;
  const int blocks = ceil_div(rows, warps);
  CHORUS_DISPATCH_ELEMENT(dtype, T,
                          row_delta_kernel<T><<<blocks, warps * 32, 0, stream>>>(
                              a, args.out.data, strides_of(args.out.strides), args.dout.data,
                              strides_of(args.dout.strides), delta));
  check_launch("row_delta_kernel");
}

void store_dq(const KernelArgs& a, ElementType dtype, const float* dq_accum, const TensorView& dq,
              cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * a.d;
  if (n == 0) return;
  const int blocks = grid_stride_blocks(n, 256);
  CHORUS_DISPATCH_ELEMENT(dtype, T,
                          store_dq_kernel<T><<<blocks, 256, 0, stream>>>(a, dq_accum, dq.data,
                                                                         strides_of(dq.strides)));
  check_launch("store_dq_kernel");
}

void probabilities_from_lse(const KernelArgs& a, ElementType dtype, const float* lse,
                            float* probabilities, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(a.batch) * a.heads * a.nq * a.nk;
  if (n == 0) return;
  const int blocks = grid_stride_blocks(n, 256);
  CHORUS_DISPATCH_ELEMENT(dtype, T,
                          probabilities_kernel<T><<<blocks, 256, 0, stream>>>(a, lse,
                                                                              probabilities));
  check_launch("probabilities_kernel");
}

// --- Entry points.

size_t attention_forward_cuda_workspace_bytes(const AttentionParams& p, AttentionVersion version) {
  if (version != AttentionVersion::kCublas) return 0;
  return cublas::forward_workspace_bytes(make_kernel_args(p), p.dtype);
}

namespace {

// Backward scratch: delta [B*H*Nq] fp32, then dq_accum [B*H*Nq*D] fp32 (tiled and flash).
size_t delta_bytes(const AttentionParams& p) {
  return align_bytes(static_cast<size_t>(p.batch * p.heads * p.nq) * sizeof(float));
}
size_t dq_accum_bytes(const AttentionParams& p) {
  return align_bytes(static_cast<size_t>(p.batch * p.heads * p.nq * p.d) * sizeof(float));
}

void check_dtype(ElementType dtype) {
  CHORUS_CHECK(dtype == ElementType::kFloat32 || dtype == ElementType::kBFloat16 ||
                   dtype == ElementType::kFloat16,
               "attention_cuda: unknown element type ", static_cast<int>(dtype));
}

void check_workspace(void* workspace, size_t have, size_t need, const char* what) {
  CHORUS_CHECK(need == 0 || (workspace != nullptr && have >= need), "attention_cuda: ", what,
               " needs a workspace of ", need, " bytes, got ", have, " bytes at ", workspace);
  CHORUS_CHECK(reinterpret_cast<uintptr_t>(workspace) % 256 == 0,
               "attention_cuda: the workspace must be 256-byte aligned, got ", workspace);
}

}  // namespace

size_t attention_backward_cuda_workspace_bytes(const AttentionParams& p, AttentionVersion version) {
  // Every fused version fits in the tiled/flash layout (naive uses only delta); cuBLAS's buffers
  // follow delta, and a cuBLAS request that falls back still finds dq_accum there.
  size_t rest = dq_accum_bytes(p);
  if (version == AttentionVersion::kCublas) {
    rest = std::max(rest, cublas::backward_workspace_bytes(make_kernel_args(p), p.dtype));
  }
  return delta_bytes(p) + rest;
}

void attention_forward_cuda(const AttentionParams& p, const AttentionForwardOutputs& out,
                            AttentionVersion version, cudaStream_t stream, void* workspace,
                            size_t workspace_bytes) {
  check_dtype(p.dtype);
  const KernelArgs a = make_kernel_args(p);
  if (static_cast<int64_t>(a.batch) * a.heads * a.nq == 0) return;
  CHORUS_CHECK(out.out.data != nullptr && out.logsumexp != nullptr,
               "attention_cuda: the forward needs out and logsumexp");
  const CudaDeviceTraits device = current_device_traits();
  AttentionVersion run = effective_forward_version(device, p, version);
  if (run == AttentionVersion::kCublas && !cublas_rows_ok(out.out.strides, p.dv)) {
    run = effective_forward_version(device, p, choose_version(device, p.dtype, p.d, p.dv, false));
  }
  switch (run) {
    case AttentionVersion::kNaive:
      naive::forward(a, p.dtype, out, stream);
      break;
    case AttentionVersion::kTiled:
      tiled::forward(a, p.dtype, out, stream);
      break;
    case AttentionVersion::kFlash:
      flash::forward(a, p.dtype, out, stream);
      break;
    case AttentionVersion::kCublas: {
      const size_t need = cublas::forward_workspace_bytes(a, p.dtype);
      check_workspace(workspace, workspace_bytes, need, "the cuBLAS forward");
      cublas::forward(a, p.dtype, out, stream, workspace, workspace_bytes);
      break;
    }
  }
  if (out.probabilities != nullptr) probabilities_from_lse(a, p.dtype, out.logsumexp, out.probabilities, stream);
}

void attention_backward_cuda(const AttentionParams& p, const AttentionBackwardArgs& args,
                             AttentionVersion version, cudaStream_t stream, void* workspace,
                             size_t workspace_bytes) {
  check_dtype(p.dtype);
  const KernelArgs a = make_kernel_args(p);
  if (static_cast<int64_t>(a.batch) * a.heads == 0 || (a.nq == 0 && a.nk == 0)) return;
  CHORUS_CHECK(args.logsumexp != nullptr && args.dq.data != nullptr && args.dk.data != nullptr &&
                   args.dv.data != nullptr,
               "attention_cuda: the backward needs logsumexp, dq, dk and dv");
  check_workspace(workspace, workspace_bytes, attention_backward_cuda_workspace_bytes(p, version),
                  "the backward");
  auto* delta = static_cast<float*>(workspace);
  auto* dq_accum = reinterpret_cast<float*>(static_cast<char*>(workspace) + delta_bytes(p));
  const CudaDeviceTraits device = current_device_traits();
  AttentionVersion run = effective_backward_version(device, p, version);
  if (run == AttentionVersion::kCublas && !cublas::backward_layout_ok(args, p.d, p.dv)) {
    run = effective_backward_version(device, p, choose_version(device, p.dtype, p.d, p.dv, true));
  }
  row_delta(a, p.dtype, args, delta, stream);
  switch (run) {
    case AttentionVersion::kNaive:
      naive::backward(a, p.dtype, args, delta, stream);
      break;
    case AttentionVersion::kCublas:
      cublas::backward(a, p.dtype, args, delta, stream, dq_accum, workspace_bytes - delta_bytes(p));
      break;
    case AttentionVersion::kTiled:
    case AttentionVersion::kFlash: {
      const size_t accum = static_cast<size_t>(a.batch) * a.heads * a.nq * a.d * sizeof(float);
      if (accum > 0) CHORUS_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, accum, stream));
      if (run == AttentionVersion::kTiled) {
        tiled::backward(a, p.dtype, args, delta, dq_accum, stream);
      } else {
        flash::backward(a, p.dtype, args, delta, dq_accum, stream);
      }
      store_dq(a, p.dtype, dq_accum, args.dq, stream);
      break;
    }
  }
}

}  // namespace chorus::kernels::cuda
