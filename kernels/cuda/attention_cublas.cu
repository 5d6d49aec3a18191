// Baseline: the unfused formula on cuBLAS, for an honest comparison with the fused kernels.
//
// Forward:
//   S = Q K^T          cublasGemmStridedBatchedEx, fp32 out (inputs fp32/bf16/fp16, fp32 compute)
//   P = softmax(S * scale + bias, masked), lse      one warp per row, P stored in the input type
//   O = P V            cublasGemmStridedBatchedEx, output in the input type
// Backward (D_i = rowsum(dO * O) precomputed by the entry point):
//   S = Q K^T, dP = dO V^T                            two GEMMs, fp32 out
//   P = exp(S * scale + bias - lse), dS = P (dP - D_i) one warp per row, both stored in the input
//                                                      type (and dS in fp32 into dbias)
//   dV = P^T dO, dQ = scale dS K, dK = scale dS^T Q   three GEMMs into the outputs
//
// The [heads_per_chunk, Nq, Nk] buffers live in a workspace; batches and chunks of heads run one
// after another so that long sequences fit (chunks are sized to at most 1 GiB). Needs a unit last
// stride on every tensor and Nq, Nk, D, Dv > 0 (the dispatcher falls back otherwise).
#include <cublas_v2.h>

#include <limits>
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

// Row-major, batched over `batch` matrices: C (M x N) = alpha op(A) (M x K) op(B) (K x N), with
// op(X) = X^T when trans_x. cuBLAS is column-major, where a row-major matrix reads as its
// transpose, so this computes C^T = op(B)^T op(A)^T.
void gemm_row_major(cublasHandle_t handle, bool trans_a, bool trans_b, int m, int n, int k,
                    float alpha, const void* a, cudaDataType_t a_type, int64_t lda,
                    long long stride_a, const void* b, cudaDataType_t b_type, int64_t ldb,
                    long long stride_b, void* c, cudaDataType_t c_type, int64_t ldc,
                    long long stride_c, int batch, const char* what) {
  const float beta = 0.f;
  check_cublas(cublasGemmStridedBatchedEx(handle, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                          b_type, static_cast<int>(ldb), stride_b, a, a_type,
                                          static_cast<int>(lda), stride_a, &beta, c, c_type,
                                          static_cast<int>(ldc), stride_c, batch,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               what);
}

struct Chunking {
  size_t s_bytes, p_bytes;  // per chunk, aligned
  int heads_per_chunk;
};

// Backward buffers per chunk: S then P (fp32, in place), dP (fp32), P and dS in the input type.
struct BackwardChunking {
  size_t f32_bytes, elem_bytes;  // each buffer, aligned
  int heads_per_chunk;
};

BackwardChunking backward_chunking(const KernelArgs& a, ElementType dtype) {
  const size_t per_head = static_cast<size_t>(a.nq) * a.nk;
  const size_t per_head_bytes = per_head * (2 * 4 + 2 * element_bytes(dtype));
  size_t heads = per_head_bytes == 0 ? a.heads : kChunkBudgetBytes / per_head_bytes;
  if (heads < 1) heads = 1;
  if (heads > static_cast<size_t>(a.heads)) heads = a.heads;
  BackwardChunking c;
  c.heads_per_chunk = static_cast<int>(heads);
  c.f32_bytes = align_bytes(heads * per_head * 4);
  c.elem_bytes = align_bytes(heads * per_head * element_bytes(dtype));
  return c;
}

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

// One warp per row: P = exp(S * scale + bias - lse) where visible, dS = P (dP - D_i); both in the
// input type for the GEMMs, dS also in fp32 into dbias.
template <typename T>
__global__ void backward_elementwise_kernel(KernelArgs a, int b, int h0, int heads,
                                            const float* s_all, const float* dp_all,
                                            const float* lse, const float* delta, T* p_out,
                                            T* ds_out, float* dbias) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kSoftmaxWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(heads) * a.nq) return;
  const int h = h0 + static_cast<int>(row / a.nq);
  const int i = static_cast<int>(row % a.nq);
  const int64_t global_row = (static_cast<int64_t>(b) * a.heads + h) * a.nq + i;
  const float row_lse = lse[global_row], row_delta = delta[global_row];
  for (int j = lane; j < a.nk; j += 32) {
    float p = 0.f, ds = 0.f;
    if (row_lse != kMinusInf && mask_allows(a, b, i, j)) {
      const float score = biased_score(a, s_all[row * a.nk + j], b, h, i, j);
      if (score != kMinusInf) {
        p = expf(score - row_lse);
        ds = p * (dp_all[row * a.nk + j] - row_delta);
      }
    }
    p_out[row * a.nk + j] = from_float<T>(p);
    ds_out[row * a.nk + j] = from_float<T>(ds);
    if (dbias != nullptr) dbias[global_row * a.nk + j] = ds;
  }
}

}  // namespace

bool backward_layout_ok(const AttentionBackwardArgs& args, int64_t d, int64_t dv) {
  auto rows_ok = [](const int64_t* s, int64_t cols) {
    return s[3] == 1 && s[2] >= cols && s[2] <= std::numeric_limits<int>::max();
  };
  return rows_ok(args.dout.strides, dv) && rows_ok(args.dq.strides, d) &&
         rows_ok(args.dk.strides, d) && rows_ok(args.dv.strides, dv);
}

size_t backward_workspace_bytes(const KernelArgs& a, ElementType dtype) {
  const BackwardChunking c = backward_chunking(a, dtype);
  return 2 * c.f32_bytes + 2 * c.elem_bytes;
}

void backward(const KernelArgs& a, ElementType dtype, const AttentionBackwardArgs& args,
              const float* delta, cudaStream_t stream, void* workspace, size_t workspace_bytes) {
  const BackwardChunking c = backward_chunking(a, dtype);
  CHORUS_CHECK(workspace_bytes >= 2 * c.f32_bytes + 2 * c.elem_bytes,
               "attention_cuda (cublas): backward workspace of ", workspace_bytes,
               " bytes, needs ", 2 * c.f32_bytes + 2 * c.elem_bytes);
  CHORUS_CHECK(a.nq > 0 && a.nk > 0 && a.d > 0 && a.dv > 0,
               "attention_cuda (cublas): needs Nq, Nk, D, Dv > 0");
  auto* base = static_cast<char*>(workspace);
  float* s = reinterpret_cast<float*>(base);
  float* dp = reinterpret_cast<float*>(base + c.f32_bytes);
  void* p = base + 2 * c.f32_bytes;
  void* ds = base + 2 * c.f32_bytes + c.elem_bytes;
  cublasHandle_t handle = handle_for_current_device();
  check_cublas(cublasSetStream(handle, stream), "cublasSetStream");
  const cudaDataType_t type = cuda_type(dtype);
  const size_t esize = element_bytes(dtype);
  const long long per_head = static_cast<long long>(a.nq) * a.nk;
  auto at = [&](const void* ptr, const int64_t* strides, int b, int h0) {
    return static_cast<const char*>(ptr) + (b * strides[0] + h0 * strides[1]) * esize;
  };
  auto at_mut = [&](void* ptr, const int64_t* strides, int b, int h0) {
    return static_cast<char*>(ptr) + (b * strides[0] + h0 * strides[1]) * esize;
  };
  const int64_t* qs = a.q_strides;
  const int64_t* ks = a.k_strides;
  const int64_t* vs = a.v_strides;
  const int64_t* dos = args.dout.strides;
  for (int b = 0; b < a.batch; ++b) {
    for (int h0 = 0; h0 < a.heads; h0 += c.heads_per_chunk) {
      const int heads = std::min(c.heads_per_chunk, a.heads - h0);
      // S (Nq x Nk) = Q K^T; dP (Nq x Nk) = dO V^T.
      gemm_row_major(handle, false, true, a.nq, a.nk, a.d, 1.f, at(a.q, qs, b, h0), type, qs[2],
                     qs[1], at(a.k, ks, b, h0), type, ks[2], ks[1], s, CUDA_R_32F, a.nk, per_head,
                     heads, "cublasGemmStridedBatchedEx (Q K^T)");
      gemm_row_major(handle, false, true, a.nq, a.nk, a.dv, 1.f, at(args.dout.data, dos, b, h0),
                     type, dos[2], dos[1], at(a.v, vs, b, h0), type, vs[2], vs[1], dp, CUDA_R_32F,
                     a.nk, per_head, heads, "cublasGemmStridedBatchedEx (dO V^T)");
      const int blocks = ceil_div(static_cast<int64_t>(heads) * a.nq, kSoftmaxWarps);
      CHORUS_DISPATCH_ELEMENT(dtype, T,
                              backward_elementwise_kernel<T><<<blocks, kSoftmaxWarps * 32, 0, stream>>>(
                                  a, b, h0, heads, s, dp, args.logsumexp, delta,
                                  static_cast<T*>(p), static_cast<T*>(ds), args.dbias));
      check_launch("cublas backward_elementwise_kernel");
      // dV (Nk x Dv) = P^T dO; dQ (Nq x D) = scale dS K; dK (Nk x D) = scale dS^T Q.
      gemm_row_major(handle, true, false, a.nk, a.dv, a.nq, 1.f, p, type, a.nk, per_head,
                     at(args.dout.data, dos, b, h0), type, dos[2], dos[1],
                     at_mut(args.dv.data, args.dv.strides, b, h0), type, args.dv.strides[2],
                     args.dv.strides[1], heads, "cublasGemmStridedBatchedEx (P^T dO)");
      gemm_row_major(handle, false, false, a.nq, a.d, a.nk, a.scale, ds, type, a.nk, per_head,
                     at(a.k, ks, b, h0), type, ks[2], ks[1],
                     at_mut(args.dq.data, args.dq.strides, b, h0), type, args.dq.strides[2],
                     args.dq.strides[1], heads, "cublasGemmStridedBatchedEx (dS K)");
      gemm_row_major(handle, true, false, a.nk, a.d, a.nq, a.scale, ds, type, a.nk, per_head,
                     at(a.q, qs, b, h0), type, qs[2], qs[1],
                     at_mut(args.dk.data, args.dk.strides, b, h0), type, args.dk.strides[2],
                     args.dk.strides[1], heads, "cublasGemmStridedBatchedEx (dS^T Q)");
    }
  }
}

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
