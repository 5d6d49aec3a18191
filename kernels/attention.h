// The attention core: plain parameter structs and the CPU forward/backward entry points (no
// LibTorch).
//
// Attention(Q, K, V) = softmax(Q K^T * scale + mask) V, with Q [B,H,Nq,D], K [B,H,Nk,D] and
// V [B,H,Nk,Dv] given as raw pointers and int64 element strides. A fully masked query row gives
// a zero output, a log-sum-exp of -inf and zero gradients, never NaN.
#pragma once

#include <cstdint>
#include <functional>

namespace chorus::kernels {

// Element type of Q, K, V, the output and its gradients. Accumulation is always fp32 or wider.
// The CPU kernels take fp32 and bf16; the CUDA kernels (kernels/cuda/attention_cuda.h) also fp16.
enum class ElementType { kFloat32, kBFloat16, kFloat16 };

const char* element_type_name(ElementType type);

// A read-only strided [batch, heads, rows, cols] view; strides count elements.
struct ConstTensorView {
  const void* data = nullptr;
  int64_t strides[4] = {0, 0, 0, 0};
};

// A writable strided [batch, heads, rows, cols] view; strides count elements.
struct TensorView {
  void* data = nullptr;
  int64_t strides[4] = {0, 0, 0, 0};
};

// Which keys each query sees. Every part is optional; they compose: a key is visible to a query
// only if every present part allows it.
struct AttentionMask {
  // Query i sees keys j <= i + (Nk - Nq): aligned to the bottom-right corner when Nq != Nk.
  bool causal = false;
  // [B]: in batch b, keys j >= key_lengths[b] are hidden (values below 0 hide every key).
  const int64_t* key_lengths = nullptr;
  // Group (agent) ids, unit stride along the sequence; a batch stride of 0 shares one row.
  const int64_t* query_groups = nullptr;  // [B|1, Nq], ids in [0, num_groups)
  int64_t query_groups_batch_stride = 0;
  const int64_t* key_groups = nullptr;  // [B|1, Nk], ids in [0, num_groups)
  int64_t key_groups_batch_stride = 0;
  // [G, G] row-major: a query of group g sees a key of group h iff group_visibility[g * G + h] !=
  // 0.
  const uint8_t* group_visibility = nullptr;
  int64_t num_groups = 0;
  // Additive fp32 bias [B,H,Nq,Nk] (broadcast through zero strides), added after the scaling.
  const float* bias = nullptr;
  int64_t bias_strides[4] = {0, 0, 0, 0};

  bool has_groups() const { return group_visibility != nullptr; }
};

// Runs body(begin, end) over disjoint ranges covering [0, n), possibly in parallel. An empty
// function runs everything on the calling thread. The LibTorch binding passes at::parallel_for.
using ParallelFor =
    std::function<void(int64_t n, const std::function<void(int64_t begin, int64_t end)>& body)>;

// Everything forward and backward share.
struct AttentionParams {
  ElementType dtype = ElementType::kFloat32;
  int64_t batch = 0, heads = 0, nq = 0, nk = 0, d = 0, dv = 0;
  ConstTensorView q, k, v;
  float scale = 1.0f;
  AttentionMask mask;
  ParallelFor parallel_for;
};

struct AttentionForwardOutputs {
  TensorView out;                  // [B,H,Nq,Dv], params.dtype
  float* logsumexp = nullptr;      // contiguous [B,H,Nq], natural log; -inf for fully masked rows
  float* probabilities = nullptr;  // optional contiguous [B,H,Nq,Nk] (visualisation)
};

struct AttentionBackwardArgs {
  ConstTensorView out;               // forward output, params.dtype
  ConstTensorView dout;              // gradient of the output, params.dtype
  const float* logsumexp = nullptr;  // from the forward
  TensorView dq, dk, dv;             // params.dtype, overwritten
  // Optional contiguous [B,H,Nq,Nk] gradient of the bias (dL/dS). It must be zero on entry:
  // blocks the mask hides entirely are skipped.
  float* dbias = nullptr;
};

// The naive reference: one query row at a time with double accumulation. Slow, simple, exact.
void attention_forward_reference(const AttentionParams& params, const AttentionForwardOutputs& out);
void attention_backward_reference(const AttentionParams& params, const AttentionBackwardArgs& args);

// The fast CPU kernels: tiled online softmax (flash style), vectorised for the active ISA
// (chorus::kernels::active_cpu_isa()), parallel over batch x heads x query blocks.
void attention_forward_cpu(const AttentionParams& params, const AttentionForwardOutputs& out);
// Recomputes the probabilities from the log-sum-exp; no Nq x Nk buffer. Parallel over batch x
// heads.
void attention_backward_cpu(const AttentionParams& params, const AttentionBackwardArgs& args);

}  // namespace chorus::kernels
