// Building blocks shared by the seq2seq models.
#include "model/seq2seq_layers.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "kernels/torch/attention_op.h"

namespace chorus::model {

torch::Tensor WeightLoader::take(const std::string& name, at::IntArrayRef shape) {
  expected_.push_back(name);
  if (!weights_.contains(name)) return torch::zeros(shape, torch::dtype(dtype_));
  return weights_.at(name, shape).to(dtype_).contiguous().clone();
}

void WeightLoader::take_into(const std::string& name, at::IntArrayRef shape, torch::Tensor destination) {
  expected_.push_back(name);
  if (!weights_.contains(name)) {
    destination.zero_();
    return;
  }
  destination.copy_(weights_.at(name, shape));
}

torch::Tensor WeightLoader::take_or(const std::string& name, at::IntArrayRef shape, const torch::Tensor& fallback) {
  if (!weights_.contains(name)) return fallback;
  return take(name, shape);
}

void WeightLoader::finish(const std::vector<std::string>& ignorable) const {
  check_expected_weights(weights_, expected_, ignorable);
}

torch::Tensor split_heads(const torch::Tensor& x, int64_t heads, int64_t head_dim) {
  return x.view({x.size(0), x.size(1), heads, head_dim}).transpose(1, 2);
}

torch::Tensor merge_heads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

void check_activation(const std::string& name, const std::string& where) {
  static const char* const known[] = {"relu", "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh",
                                      "silu", "swish", "tanh"};
  for (const char* k : known) {
    if (name == k) return;
  }
  throw Error(where + ": unsupported activation '" + name +
              "' (expected relu, gelu, gelu_new, gelu_fast, gelu_pytorch_tanh, silu, swish or tanh)");
}

torch::Tensor activate(const torch::Tensor& x, const std::string& name) {
  if (name == "relu") return torch::relu(x);
  if (name == "gelu") return torch::gelu(x);
  // gelu_new / gelu_fast / gelu_pytorch_tanh are all the tanh approximation
  // (the reference writes it out by hand; the formula is the same).
  if (name == "gelu_new" || name == "gelu_fast" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "tanh") return torch::tanh(x);
  throw Error("unsupported activation '" + name + "'");
}

void rms_norm_rows(const float* x, const float* weight, float* out, int64_t rows, int64_t d, double epsilon) {
  const auto eps = static_cast<float>(epsilon);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * d;
    double squares = 0;
    for (int64_t c = 0; c < d; ++c) squares += static_cast<double>(row[c]) * row[c];
    const float rstd = 1.0f / std::sqrt(static_cast<float>(squares / static_cast<double>(d)) + eps);
    float* dst = out + r * d;
    for (int64_t c = 0; c < d; ++c) dst[c] = weight[c] * (row[c] * rstd);
  }
}

namespace {

// Whether rms_norm can take the fused loop: float32 on the CPU, contiguous, no autograd graph to
// record.
bool fused_rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  const bool recording = torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad());
  return !recording && x.is_cpu() && weight.is_cpu() && x.scalar_type() == torch::kFloat32 &&
         weight.scalar_type() == torch::kFloat32 && x.dim() >= 1 && x.is_contiguous() && weight.dim() == 1 &&
         weight.is_contiguous() && weight.size(0) == x.size(-1) && x.numel() > 0;
}

torch::Tensor fused_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double epsilon) {
  auto out = torch::empty_like(x);
  const int64_t d = x.size(-1);
  const int64_t rows = x.numel() / d;
  // Rows are spread over LibTorch's threads only when there are enough of them to pay for a
  // parallel region (encoder calls; a decoding step's few rows stay on the calling thread).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / d);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    rms_norm_rows(x.data_ptr<float>() + begin * d, weight.data_ptr<float>(), out.data_ptr<float>() + begin * d,
                  end - begin, d, epsilon);
  });
  return out;
}

}  // namespace

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double epsilon) {
  if (fused_rms_norm_applies(x, weight)) return fused_rms_norm(x, weight, epsilon);
  auto variance = x.to(torch::kFloat32).pow(2).mean(-1, /*keepdim=*/true);
  auto normed = x * torch::rsqrt(variance + epsilon);
  return weight * normed.to(weight.scalar_type());
}

KeyPadding key_padding_from_mask(const torch::Tensor& attention_mask, int64_t sequence_length, torch::Dtype dtype) {
  KeyPadding padding;
  if (!attention_mask.defined()) return padding;
  auto mask = attention_mask.to(torch::kBool);
  auto lengths = mask.sum(1).to(torch::kInt64);
  auto prefix = torch::arange(sequence_length, torch::kInt64).unsqueeze(0) < lengths.unsqueeze(1);
  if (torch::equal(prefix, mask)) {
    if (lengths.min().item<int64_t>() < sequence_length) padding.key_lengths = lengths;
    return padding;
  }
  const double lowest = dtype == torch::kBFloat16 ? -3.38953139e38 : std::numeric_limits<float>::lowest();
  padding.bias = torch::zeros({mask.size(0), 1, 1, sequence_length}, torch::dtype(dtype))
                     .masked_fill(~mask.view({mask.size(0), 1, 1, sequence_length}), lowest);
  return padding;
}

torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const AttentionCall& call) {
  AttentionOptions options;
  if (call.scale != 0.0) options.scale = call.scale;
  options.causal = call.causal;
  options.bias = call.bias;
  if (call.padding != nullptr) {
    options.key_lengths = call.padding->key_lengths;
    if (const auto& padding = call.padding->bias; padding.defined()) {
      // The op broadcasts the bias over batch and heads only: spell out the query rows.
      options.bias = options.bias.defined() ? options.bias + padding
                                            : padding.expand({padding.size(0), 1, q.size(2), padding.size(3)});
    }
  }
  return attention(q, k, v, options);
}

torch::Tensor normalise_attention_mask(const torch::Tensor& attention_mask, const torch::Tensor& input_ids) {
  if (!attention_mask.defined()) return torch::ones_like(input_ids, torch::kInt64);
  CHORUS_CHECK(attention_mask.sizes() == input_ids.sizes(), "attention_mask has shape ", attention_mask.sizes(),
               " but input_ids has shape ", input_ids.sizes(), "; expected the same shape");
  return attention_mask.to(torch::kInt64);
}

void check_token_ids(const torch::Tensor& ids, int64_t vocab_size, const char* what) {
  CHORUS_CHECK(ids.defined() && ids.dim() == 2 && ids.size(0) >= 1 && ids.size(1) >= 1, what,
               " must be a [batch, length] tensor with batch, length >= 1; got ",
               ids.defined() ? ids.sizes() : at::IntArrayRef{});
  CHORUS_CHECK(ids.scalar_type() == torch::kInt64, what, " must be int64; got ", ids.scalar_type());
  int64_t low = 0, high = 0;
  if (ids.is_cpu() && ids.numel() <= 4096) {  // a decoding step's ids: read them, no reductions
    const auto a = ids.accessor<int64_t, 2>();
    low = high = a[0][0];
    for (int64_t r = 0; r < ids.size(0); ++r) {
      for (int64_t c = 0; c < ids.size(1); ++c) {
        low = std::min(low, a[r][c]);
        high = std::max(high, a[r][c]);
      }
    }
  } else {
    low = ids.min().item<int64_t>();
    high = ids.max().item<int64_t>();
  }
  CHORUS_CHECK(low >= 0 && high < vocab_size, what, " holds ids in [", low, ", ", high,
               "] but the vocabulary has ", vocab_size, " entries");
}

}  // namespace chorus::model
