// The chorus::attention LibTorch op: softmax(Q K^T * scale + mask) V with autograd.
#pragma once

#include <torch/types.h>

#include <optional>

#include "kernels/attention.h"

namespace chorus {

struct AttentionOptions {
  // Default 1/sqrt(D); T5 passes 1.0.
  std::optional<double> scale;
  // Bottom-right aligned when Nq != Nk: query i sees keys j <= i + (Nk - Nq).
  bool causal = false;
  torch::Tensor key_lengths;       // optional int64 [B]: keys j >= key_lengths[b] are masked
  torch::Tensor query_groups;      // optional int64 [B, Nq] or [Nq]: group (agent) id per query
  torch::Tensor key_groups;        // optional int64 [B, Nk] or [Nk]: group id per key
  torch::Tensor group_visibility;  // bool [G, G]: query group g may see key group h iff [g][h]
  // Optional float additive bias with shape [B|1, H|1, Nq, Nk]; differentiable (gradient reduced
  // over broadcast dims).
  torch::Tensor bias;
  // Also return the [B,H,Nq,Nk] probabilities (visualisation only, no gradient).
  bool return_probabilities = false;
};

struct AttentionOutput {
  torch::Tensor output;         // [B, H, Nq, Dv], dtype of q
  torch::Tensor logsumexp;      // [B, H, Nq], float32 (-inf for fully masked rows)
  torch::Tensor probabilities;  // undefined unless requested
};

// Differentiable w.r.t. q, k, v and bias. Fully masked rows give zeros (output and gradients),
// never NaN. q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv], any strides, float32 or bfloat16 (and
// float16 on CUDA). CUDA tensors run the CUDA kernels (kernels/cuda/attention_cuda.h) on the
// current stream; mask tensors may stay on the CPU. Bad shapes, dtypes or masks throw chorus::Error
// naming the argument, its shape and the expected one.
AttentionOutput attention_forward(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, const AttentionOptions& options = {});
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const AttentionOptions& options = {});

// Which kernels run: the fast path (default) or the reference (for tests and comparisons): on the
// CPU the naive double-precision reference, on CUDA the naive version of the ladder. Both go
// through the same checks and autograd. Probabilities, when requested, are recomputed on CUDA from
// the log-sum-exp by an elementwise kernel.
enum class AttentionCpuKernel { kFast, kReference };
AttentionOutput attention_forward_with(AttentionCpuKernel kernel, const torch::Tensor& q,
                                       const torch::Tensor& k, const torch::Tensor& v,
                                       const AttentionOptions& options = {});

// The op's fast path for callers that own float32 CPU memory laid out as the kernel reads it
// (the fused T5 decoding step): the same CPU kernel as attention_forward, on raw views, without
// tensors or autograd. The op supplies what only it knows: LibTorch's intra-op threads. params.dtype
// must be float32 and every pointer valid for the shapes and strides given; a bad shape throws
// chorus::Error naming it.
void attention_forward_into(kernels::AttentionParams params, const kernels::AttentionForwardOutputs& outputs);

}  // namespace chorus
