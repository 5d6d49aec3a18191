// Baseline: the unfused formula on cuBLAS, for an honest comparison with the fused kernels.
//
//   S = Q K^T          cublasGemmStridedBatchedEx, fp32 out (inputs fp32/bf16/fp16, fp32 compute)
//   P = softmax(S * scale + bias, masked), lse      one warp per row, P stored in the input type
//   O = P V            cublasGemmStridedBatchedEx, output in the input type
//
// S and P live in a workspace of [heads_per_chunk, Nq, Nk] each; batches and chunks of heads run
// one after another so that long sequences fit (chunks are sized to at most 1 GiB). Forward only:
// the backward of a forward that ran here is the dispatcher's choice (attention_cuda.cu). Needs a
// unit last stride on Q, K, V and the output (the dispatcher falls back otherwise).
#include <cublas_v2.h>

#include <unordered_map>

#include "kernels/cuda/attention_cuda_common.cuh"

namespace chorus::kernels::cuda::cublas {
namespace {

constexpr size_t kChunkBudgetBytes = size_t{1} << 30;
constexpr int kSoftmaxWarps = 8;  // rows per block of the softmax kernel

size_t element_bytes(ElementType dtype) { return dtype == ElementType::kFloat32 ? 4 : 2; }

cudaDataType_t cuda_type(ElementType dtype) {
  switch (dtype) {
    case ElementType::kBFloat16:
      return CUDA_R_16BF;
    case ElementType::kFloat16:
      return CUDA_R_16F;
    case ElementType::kFloat32:
      break;
  }
  return CUDA_R_32F;
}

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    throw Error(detail::concat("cuBLAS error in ", what, ": ", cublasGetStatusString(status)));
  }
}

// One handle per device and host thread, created on first use and kept for the process (a
// handle destroyed at thread exit could outlive the CUDA context).
cublasHandle_t handle_for_current_device() {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  int device = 0;
  CHORUS_CUDA_CHECK(cudaGetDevice(&device));
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cublasHandle_t handle = nullptr;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  handles.emplace(device, handle);
  return handle;
}

struct Chunking {
  size_t s_bytes, p_bytes;  // per chunk, aligned
  int heads_per_chunk;
};

Chunking chunking(const KernelArgs& a, ElementType dtype) {
  const size_t per_head = static_cast<size_t>(a.nq) * a.nk;
  const size_t per_head_bytes = per_head * (4 + element_bytes(dtype));
  size_t heads = per_head_bytes == 0 ? a.heads : kChunkBudgetBytes / per_head_bytes;
  if (heads < 1) heads = 1;
  if (heads > static_cast<size_t>(a.heads)) heads = a.heads;
  Chunking c;
  c.heads_per_chunk = static_cast<int>(heads);
  c.s_bytes = align_bytes(heads * per_head * 4);
  c.p_bytes = align_bytes(heads * per_head * element_bytes(dtype));
  return c;
}

// One warp per row of S: scale, bias and mask, then the log-sum-exp and P = exp(S - lse).
template <typename T>
__global__ void softmax_kernel(KernelArgs a, int b, int h0, int heads, const float* s_all,
                               T* p_all, float* lse) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kSoftmaxWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(heads) * a.nq) return;
  const int h = h0 + static_cast<int>(row / a.nq);
  const int i = static_cast<int>(row % a.nq);
  const float* s = s_all + row * a.nk;
  T* p = p_all + row * a.nk;
  auto score = [&](int j) {
    if (!mask_allows(a, b, i, j)) return kMinusInf;
    return biased_score(a, s[j], b, h, i, j);
  };
  float m = kMinusInf;
  for (int j = lane; j < a.nk; j += 32) m = fmaxf(m, score(j));
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  float sum = 0.f;
  if (m != kMinusInf) {
    for (int j = lane; j < a.nk; j += 32) sum += expf(score(j) - m);
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const float row_lse = sum > 0.f ? m + logf(sum) : kMinusInf;
  for (int j = lane; j < a.nk; j += 32) {
    p[j] = from_float<T>(row_lse == kMinusInf ? 0.f : expf(score(j) - row_lse));
  }
  if (lane == 0) lse[(static_cast<int64_t>(b) * a.heads + h) * a.nq + i] = row_lse;
}

}  // namespace

size_t forward_workspace_bytes(const KernelArgs& a, ElementType dtype) {
  const Chunking c = chunking(a, dtype);
  return c.s_bytes + c.p_bytes;
}

void forward(const KernelArgs& a, ElementType dtype, const AttentionForwardOutputs& out,
             cudaStream_t stream, void* workspace, size_t workspace_bytes) {
  const Chunking c = chunking(a, dtype);
  CHORUS_CHECK(workspace_bytes >= c.s_bytes + c.p_bytes, "attention_cuda (cublas): workspace of ",
               workspace_bytes, " bytes, needs ", c.s_bytes + c.p_bytes);
  CHORUS_CHECK(a.nk > 0 && a.d > 0 && a.dv > 0, "attention_cuda (cublas): needs Nk, D, Dv > 0");
  float* s = static_cast<float*>(workspace);
  void* p = static_cast<char*>(workspace) + c.s_bytes;
  cublasHandle_t handle = handle_for_current_device();
  check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
  const cudaDataType_t type = cuda_type(dtype);
  const size_t esize = element_bytes(dtype);
  const float one = 1.f, zero = 0.f;
  const auto* q = static_cast<const char*>(a.q);
  const auto* k = static_cast<const char*>(a.k);
  const auto* v = static_cast<const char*>(a.v);
  auto* o = static_cast<char*>(out.out.data);
  const int64_t* os = out.out.strides;
  const long long per_head = static_cast<long long>(a.nq) * a.nk;
  for (int b = 0; b < a.batch; ++b) {
    for (int h0 = 0; h0 < a.heads; h0 += c.heads_per_chunk) {
      const int heads = std::min(c.heads_per_chunk, a.heads - h0);
      // Column-major view: S^T (Nk x Nq) = K (Nk x D, K's rows read transposed) * Q^T (D x Nq).
      check_cublas(
          cublasGemmStridedBatchedEx(
              handle, CUBLAS_OP_T, CUBLAS_OP_N, a.nk, a.nq, a.d, &one,
              k + (b * a.k_strides[0] + h0 * a.k_strides[1]) * esize, type,
              static_cast<int>(a.k_strides[2]), a.k_strides[1],
              q + (b * a.q_strides[0] + h0 * a.q_strides[1]) * esize, type,
              static_cast<int>(a.q_strides[2]), a.q_strides[1], &zero, s, CUDA_R_32F, a.nk,
              per_head, heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx (Q K^T)");
      const int64_t rows = static_cast<int64_t>(heads) * a.nq;
      const int blocks = ceil_div(rows, kSoftmaxWarps);
      CHORUS_DISPATCH_ELEMENT(dtype, T,
                              softmax_kernel<T><<<blocks, kSoftmaxWarps * 32, 0, stream>>>(
                                  a, b, h0, heads, s, static_cast<T*>(p), out.logsumexp));
      check_launch("cublas softmax_kernel");
      // O^T (Dv x Nq) = V^T (Dv x Nk, V's rows) * P^T (Nk x Nq, P's rows).
      check_cublas(
          cublasGemmStridedBatchedEx(
              handle, CUBLAS_OP_N, CUBLAS_OP_N, a.dv, a.nq, a.nk, &one,
              v + (b * a.v_strides[0] + h0 * a.v_strides[1]) * esize, type,
              static_cast<int>(a.v_strides[2]), a.v_strides[1], p, type, a.nk, per_head, &zero,
              o + (b * os[0] + h0 * os[1]) * esize, type, static_cast<int>(os[2]), os[1], heads,
              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx (P V)");
    }
  }
}

}  // namespace chorus::kernels::cuda::cublas
