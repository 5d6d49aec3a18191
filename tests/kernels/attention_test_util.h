// Test helpers for the attention op: case descriptions, random inputs, the plain LibTorch formula
// and the tolerance model (twice the error of the naive same-dtype formula, as FlashAttention
// does).
#pragma once

#include <torch/types.h>

#include <string>

#include "kernels/torch/attention_op.h"

namespace chorus::testing {

enum class BiasKind { kNone, kFull, kPerHead, kPerBatch };  // [B,H,..], [1,H,..], [B,1,..]

struct AttentionCase {
  int64_t batch = 1, heads = 1, nq = 1, nk = 1, d = 16, dv = 16;
  bool causal = false;
  bool key_lengths = false;
  bool groups = false;
  BiasKind bias = BiasKind::kNone;
  bool non_contiguous = false;
  torch::ScalarType dtype = torch::kFloat32;

  std::string name() const;  // a GoogleTest-safe name
};

struct AttentionInputs {
  torch::Tensor q, k, v, dout;  // dtype of the case, strided as the case says
  AttentionOptions options;
  torch::Tensor visible;  // bool [B, 1, Nq, Nk]: every boolean mask part combined
};

AttentionInputs make_inputs(const AttentionCase& c, uint64_t seed);

// softmax(q k^T * scale + bias, masked by `visible`) v in the dtype of the inputs, with fully
// masked rows giving 0 (differentiable by LibTorch's autograd).
torch::Tensor plain_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& visible,
                              const torch::Tensor& bias, double scale);

struct AttentionResult {
  torch::Tensor out, dq, dk, dv, dbias;  // dbias undefined without a bias
};

// The plain formula run in `dtype` from the case's inputs (converted), with autograd.
AttentionResult plain_result(const AttentionInputs& in, torch::ScalarType dtype);
// The op (fast or reference kernel) with autograd.
AttentionResult op_result(const AttentionInputs& in, AttentionCpuKernel kernel);

// Largest |a - b| over all elements (as double).
double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b);

// Checks `got` against `gold` with the tolerance 2 * |naive - gold| + floor * max(max|gold|, 1),
// where `naive` is the plain formula in the inputs' dtype. The floor covers what the naive formula
// need not pay: e.g. a flash backward's rowsum(dO * O) (with O rounded) against the exact
// sum(P * dP), which leaves ~1e-6 where a one-key row's exact gradient is 0. Reports the first
// mismatches on failure.
void expect_close_to_gold(const std::string& what, const torch::Tensor& got,
                          const torch::Tensor& naive, const torch::Tensor& gold, double floor);

}  // namespace chorus::testing
