// Shared pieces of the CUDA attention versions: the kernel-side argument struct, element loads
// and stores, the mask test, error checks and each version's launcher.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "common/error.h"
#include "kernels/attention.h"
#include "kernels/cuda/attention_cuda.h"

// Throws chorus::Error naming the failed call and the runtime's message.
#define CHORUS_CUDA_CHECK(call)                                                            \
  do {                                                                                     \
    const cudaError_t chorus_cuda_status_ = (call);                                        \
    if (chorus_cuda_status_ != cudaSuccess) {                                              \
      throw ::chorus::Error(::chorus::detail::concat("CUDA error in ", #call, ": ",        \
                                                     cudaGetErrorString(chorus_cuda_status_), \
                                                     " (", __FILE__, ":", __LINE__, ")")); \
    }                                                                                      \
  } while (false)

namespace chorus::kernels::cuda {

// Everything a kernel reads, trivially copyable (AttentionParams holds a std::function).
struct KernelArgs {
  int batch, heads, nq, nk, d, dv;
  float scale;
  const void* q;
  const void* k;
  const void* v;
  int64_t q_strides[4], k_strides[4], v_strides[4];
  // Mask.
  bool causal;
  const int64_t* key_lengths;
  const int64_t* query_groups;
  int64_t query_groups_batch_stride;
  const int64_t* key_groups;
  int64_t key_groups_batch_stride;
  const uint8_t* group_visibility;
  int64_t num_groups;
  const float* bias;
  int64_t bias_strides[4];
};

// Strides of a [B, H, rows, cols] view, passed to kernels by value.
struct Strides4 {
  int64_t s[4];
};
Strides4 strides_of(const int64_t* strides);

// Checks the sizes fit the kernels' 32-bit indices and copies the params. Throws chorus::Error.
KernelArgs make_kernel_args(const AttentionParams& params);

// --- Elements: fp32, bf16 or fp16 storage, fp32 arithmetic.

template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half x) {
  return __half2float(x);
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

__device__ __forceinline__ int64_t offset4(const int64_t* s, int64_t b, int64_t h, int64_t row,
                                           int64_t col) {
  return b * s[0] + h * s[1] + row * s[2] + col * s[3];
}

template <typename T>
__device__ __forceinline__ float load4(const void* base, const int64_t* s, int64_t b, int64_t h,
                                       int64_t row, int64_t col) {
  return to_float<T>(static_cast<const T*>(base)[offset4(s, b, h, row, col)]);
}

template <typename T>
__device__ __forceinline__ void store4(void* base, const int64_t* s, int64_t b, int64_t h,
                                       int64_t row, int64_t col, float value) {
  static_cast<T*>(base)[offset4(s, b, h, row, col)] = from_float<T>(value);
}

// --- The mask, as on the CPU (kernels/cpu/element_io.h mask_allows).

__device__ __forceinline__ bool mask_allows(const KernelArgs& a, int b, int qi, int kj) {
  if (a.causal && kj > qi + (a.nk - a.nq)) return false;
  if (a.key_lengths != nullptr && kj >= a.key_lengths[b]) return false;
  if (a.group_visibility != nullptr) {
    const int64_t g = a.query_groups[b * a.query_groups_batch_stride + qi];
    const int64_t h = a.key_groups[b * a.key_groups_batch_stride + kj];
    if (a.group_visibility[g * a.num_groups + h] == 0) return false;
  }
  return true;
}

// The scaled, biased score of a visible pair, given the raw dot product.
__device__ __forceinline__ float biased_score(const KernelArgs& a, float dot, int b, int h, int qi,
                                              int kj) {
  float s = dot * a.scale;
  if (a.bias != nullptr) s += a.bias[offset4(a.bias_strides, b, h, qi, kj)];
  return s;
}

// Number of keys any query of batch b may see at most: min(Nk, key_lengths[b]), clamped at 0.
__device__ __forceinline__ int visible_key_end(const KernelArgs& a, int b) {
  int end = a.nk;
  if (a.key_lengths != nullptr) {
    const int64_t len = a.key_lengths[b];
    end = len < 0 ? 0 : (len < end ? static_cast<int>(len) : end);
  }
  return end;
}

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// The element type's name for messages (the core's element_type_name lives in the CPU library,
// which links after this one).
inline const char* dtype_name(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kBFloat16:
      return "bfloat16";
    case ElementType::kFloat16:
      return "float16";
  }
  return "unknown";
}

inline int ceil_div(int64_t a, int64_t b) { return static_cast<int>((a + b - 1) / b); }

inline void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw Error(detail::concat("CUDA launch of ", what, " failed: ", cudaGetErrorString(status)));
  }
}

// Bytes rounded up to 256 so consecutive workspace pieces stay aligned.
inline size_t align_bytes(size_t bytes) { return (bytes + 255) / 256 * 256; }

// --- Each version's launchers (one .cu file each).

namespace naive {
void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream);
void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              float* delta, cudaStream_t stream);
}  // namespace naive

namespace tiled {
size_t forward_shared_bytes(int d, int dv);
size_t backward_shared_bytes(int d, int dv);
void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream);
// dq_accum: fp32 [B, H, Nq, D] contiguous scratch; delta: fp32 [B, H, Nq] from row_delta.
void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, float* dq_accum, cudaStream_t stream);
}  // namespace tiled

namespace flash {
bool supports(ElementType dtype, int64_t d, int64_t dv);
void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream);
void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, float* dq_accum, cudaStream_t stream);
}  // namespace flash

namespace cublas {
size_t forward_workspace_bytes(const KernelArgs& a, ElementType dtype);
void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream, void* workspace, size_t workspace_bytes);
// Whether dO, dQ, dK and dV have rows cuBLAS can read and write (unit last stride).
bool backward_layout_ok(const AttentionBackwardArgs& args, int64_t d, int64_t dv);
size_t backward_workspace_bytes(const KernelArgs& a, ElementType dtype);
// delta: D_i from row_delta; writes dq, dk, dv (and dbias) directly.
void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, cudaStream_t stream, void* workspace, size_t workspace_bytes);
}  // namespace cublas

// Shared helpers (attention_cuda.cu).
// delta[bh * Nq + i] = sum_c dO[b,h,i,c] * O[b,h,i,c] in fp32 (the flash backward's D_i).
void row_delta(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
               float* delta, cudaStream_t stream);
// dq[b,h,i,c] = scale * dq_accum[(bh * Nq + i) * D + c], in the element type and dq's strides.
void store_dq(const KernelArgs& a, ElementType dtype, const float* dq_accum, const TensorView& dq,
              cudaStream_t stream);
// probabilities[bh, i, j] = exp(s_ij - lse_i) where visible, else 0 (0 for a -inf lse).
void probabilities_from_lse(const KernelArgs& a, ElementType dtype, const float* lse,
                            float* probabilities, cudaStream_t stream);

}  // namespace chorus::kernels::cuda

// Runs the statement with T bound to the storage type of `dtype` (float, __nv_bfloat16, __half).
#define CHORUS_DISPATCH_ELEMENT(dtype, T, ...)                                                \
  switch (dtype) {                                                                            \
    case ::chorus::kernels::ElementType::kFloat32: {                                          \
      using T = float;                                                                        \
      __VA_ARGS__;                                                                            \
      break;                                                                                  \
    }                                                                                         \
    case ::chorus::kernels::ElementType::kBFloat16: {                                         \
      using T = __nv_bfloat16;                                                                \
      __VA_ARGS__;                                                                            \
      break;                                                                                  \
    }                                                                                         \
    case ::chorus::kernels::ElementType::kFloat16: {                                          \
      using T = __half;                                                                       \
      __VA_ARGS__;                                                                            \
      break;                                                                                  \
    }                                                                                         \
  }
