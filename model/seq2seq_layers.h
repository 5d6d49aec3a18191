// Building blocks shared by the seq2seq models: weight loading, heads, norms, activations, masked attention.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "model/io/weight_map.h"
#include "model/seq2seq_model.h"

namespace chorus::model {

// Takes the tensors a model expects out of a WeightMap, converting them to the
// compute dtype. Missing names are collected instead of thrown one by one, so
// finish() can report every missing and unexpected tensor in one error.
class WeightLoader {
 public:
  WeightLoader(const WeightMap& weights, torch::Dtype dtype) : weights_(weights), dtype_(dtype) {}

  // The tensor `name` with shape `shape` (a wrong shape throws at once);
  // a zero-filled placeholder when absent (reported by finish()).
  torch::Tensor take(const std::string& name, at::IntArrayRef shape);
  // take() when present, else `fallback` (for tensors the reference may omit).
  torch::Tensor take_or(const std::string& name, at::IntArrayRef shape, const torch::Tensor& fallback);
  // take() written into `destination` (a block of a larger tensor) without a temporary copy.
  void take_into(const std::string& name, at::IntArrayRef shape, torch::Tensor destination);
  bool has(const std::string& name) const { return weights_.contains(name); }
  // Throws listing missing/unexpected tensors; `ignorable` may be present unread.
  void finish(const std::vector<std::string>& ignorable) const;

 private:
  const WeightMap& weights_;
  torch::Dtype dtype_;
  std::vector<std::string> expected_;
};

// [B, N, H*D] -> [B, H, N, D] (a view) and back (contiguous).
torch::Tensor split_heads(const torch::Tensor& x, int64_t heads, int64_t head_dim);
torch::Tensor merge_heads(const torch::Tensor& x);

// The activation of the reference's ACT2FN table by name (relu, gelu,
// gelu_new, gelu_fast, silu/swish, tanh); an unknown name is a chorus::Error.
torch::Tensor activate(const torch::Tensor& x, const std::string& name);
// Checks the activation name once, at load time.
void check_activation(const std::string& name, const std::string& where);

// T5's layer norm: scale only, no mean subtraction (RMS norm).
// One fused loop (rms_norm_rows) for contiguous float32 CPU input with nothing for autograd to
// record; otherwise the reference's ops.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double epsilon);

// out[r] = weight * (x[r] * rsqrt(mean(x[r]^2) + epsilon)) for `rows` contiguous rows of d floats
// (the mean square accumulated in double, the rest in float32 in the reference's order).
void rms_norm_rows(const float* x, const float* weight, float* out, int64_t rows, int64_t d, double epsilon);

// The attention_mask [B, S] of the keys as the op wants it (see KeyPadding).
// Masked keys get the lowest finite float as bias, like the reference.
KeyPadding key_padding_from_mask(const torch::Tensor& attention_mask, int64_t sequence_length,
                                 torch::Dtype dtype);

struct AttentionCall {
  double scale = 0.0;         // 0: the op's default 1/sqrt(D)
  bool causal = false;
  torch::Tensor bias;         // [1|B, H|1, Nq, Nk] or undefined
  const KeyPadding* padding = nullptr;
};
// chorus::attention with the padding folded into key_lengths or the bias.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionCall& call);

// Normalises an attention mask to int64 [B, S] (all ones when undefined),
// checking its shape against input_ids.
torch::Tensor normalise_attention_mask(const torch::Tensor& attention_mask, const torch::Tensor& input_ids);

// Checks token ids: int64 [B, N] with N >= 1 and every id in [0, vocab).
void check_token_ids(const torch::Tensor& ids, int64_t vocab_size, const char* what);

}  // namespace chorus::model
