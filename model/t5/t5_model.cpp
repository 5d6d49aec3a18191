// The T5 family (v1.0, v1.1, flan-t5, mT5) on the chorus::attention op.
#include "model/t5/t5_model.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/torch/attention_op.h"
#include "model/packed_linear.h"
#include "model/seq2seq_layers.h"
#include "model/t5/t5_relative_position.h"

namespace chorus::model {
namespace {

struct T5Attention {
  torch::Tensor q, k, v, o;  // [H*D, d] x3, [d, H*D]
  // Self-attention: q, k and v are row blocks of this one [3*H*D, d] tensor, so a decoding step
  // makes one matrix-vector product (one parallel region) where it made three.
  torch::Tensor qkv;
};

// The query, key and value projections of `h` [B, N, d], each [B, N, H*D]. One product with
// the stacked weight while q, k and v still are its blocks and need no gradient; separate
// products when they are trained (autograd sees the parameters) or were replaced.
std::array<torch::Tensor, 3> project_qkv(const torch::Tensor& h, const T5Attention& a,
                                         const PackedWeights* packed = nullptr) {
  if (a.qkv.defined() && !a.q.requires_grad() && a.q.data_ptr() == a.qkv.data_ptr()) {
    auto parts = linear(h, a.qkv, packed).chunk(3, -1);
    return {parts[0], parts[1], parts[2]};
  }
  return {torch::linear(h, a.q), torch::linear(h, a.k), torch::linear(h, a.v)};
}

// Whether decoding steps of one token may take the fused path (CHORUS_FUSED_DECODE=0 keeps the
// op-by-op one, for comparisons).
bool fused_decoding_allowed() {
  const char* setting = std::getenv("CHORUS_FUSED_DECODE");
  return setting == nullptr || std::strcmp(setting, "0") != 0;
}

// A strided [B, H, rows, cols] float view for the attention kernel.
kernels::ConstTensorView const_view(const float* data, int64_t s0, int64_t s1, int64_t s2, int64_t s3) {
  kernels::ConstTensorView v;
  v.data = data;
  v.strides[0] = s0;
  v.strides[1] = s1;
  v.strides[2] = s2;
  v.strides[3] = s3;
  return v;
}

kernels::ConstTensorView const_view(const torch::Tensor& t) {
  return const_view(t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2), t.stride(3));
}

// x += y over n floats.
void add_into(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

struct T5FeedForward {
  torch::Tensor wi, wi_0, wi_1, wo;  // wi (plain) or wi_0/wi_1 (gated)
};

struct T5Block {
  T5Attention self_attention;
  torch::Tensor self_norm;
  T5Attention cross_attention;  // decoder only
  torch::Tensor cross_norm;
  T5FeedForward feed_forward;
  torch::Tensor feed_forward_norm;
};

class T5Model final : public Seq2SeqModel {
 public:
  T5Model(const Seq2SeqConfig& config, const WeightMap& weights, torch::Dtype dtype) : Seq2SeqModel(config) {
    WeightLoader loader(weights, dtype);
    const auto& c = this->config();
    const int64_t inner = c.encoder_heads * c.head_dim;
    auto take = [&](const std::string& name, at::IntArrayRef shape) { return add_weight(name, loader.take(name, shape)); };
    shared_ = take("shared.weight", {c.vocab_size, c.d_model});
    auto attention = [&](const std::string& prefix) {
      return T5Attention{take(prefix + ".q.weight", {inner, c.d_model}), take(prefix + ".k.weight", {inner, c.d_model}),
                         take(prefix + ".v.weight", {inner, c.d_model}), take(prefix + ".o.weight", {c.d_model, inner}),
                         {}};
    };
    // The parameters q, k and v registered as views into one stacked tensor, filled in place (no
    // second copy, and no freed temporaries left in the heap).
    auto self_attention = [&](const std::string& prefix) {
      T5Attention a;
      a.qkv = torch::empty({3 * inner, c.d_model}, torch::dtype(dtype));
      loader.take_into(prefix + ".q.weight", {inner, c.d_model}, a.qkv.narrow(0, 0, inner));
      loader.take_into(prefix + ".k.weight", {inner, c.d_model}, a.qkv.narrow(0, inner, inner));
      loader.take_into(prefix + ".v.weight", {inner, c.d_model}, a.qkv.narrow(0, 2 * inner, inner));
      a.q = add_weight(prefix + ".q.weight", a.qkv.narrow(0, 0, inner));
      a.k = add_weight(prefix + ".k.weight", a.qkv.narrow(0, inner, inner));
      a.v = add_weight(prefix + ".v.weight", a.qkv.narrow(0, 2 * inner, inner));
      a.o = take(prefix + ".o.weight", {c.d_model, inner});
      return a;
    };
    auto feed_forward = [&](const std::string& prefix) {
      T5FeedForward ff;
      if (c.gated_ffn) {
        ff.wi_0 = take(prefix + ".wi_0.weight", {c.encoder_ffn_dim, c.d_model});
        ff.wi_1 = take(prefix + ".wi_1.weight", {c.encoder_ffn_dim, c.d_model});
      } else {
        ff.wi = take(prefix + ".wi.weight", {c.encoder_ffn_dim, c.d_model});
      }
      ff.wo = take(prefix + ".wo.weight", {c.d_model, c.encoder_ffn_dim});
      return ff;
    };
    for (int64_t i = 0; i < c.encoder_layers; ++i) {
      const auto p = "encoder.block." + std::to_string(i) + ".layer.";
      T5Block b;
      b.self_attention = self_attention(p + "0.SelfAttention");
      b.self_norm = take(p + "0.layer_norm.weight", {c.d_model});
      b.feed_forward = feed_forward(p + "1.DenseReluDense");
      b.feed_forward_norm = take(p + "1.layer_norm.weight", {c.d_model});
      encoder_.push_back(std::move(b));
    }
    encoder_position_bias_ = take("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                  {c.relative_attention_num_buckets, c.encoder_heads});
    encoder_final_norm_ = take("encoder.final_layer_norm.weight", {c.d_model});
    for (int64_t i = 0; i < c.decoder_layers; ++i) {
      const auto p = "decoder.block." + std::to_string(i) + ".layer.";
      T5Block b;
      b.self_attention = self_attention(p + "0.SelfAttention");
      b.self_norm = take(p + "0.layer_norm.weight", {c.d_model});
      b.cross_attention = attention(p + "1.EncDecAttention");
      b.cross_norm = take(p + "1.layer_norm.weight", {c.d_model});
      b.feed_forward = feed_forward(p + "2.DenseReluDense");
      b.feed_forward_norm = take(p + "2.layer_norm.weight", {c.d_model});
      decoder_.push_back(std::move(b));
    }
    decoder_position_bias_ = take("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                                  {c.relative_attention_num_buckets, c.decoder_heads});
    decoder_final_norm_ = take("decoder.final_layer_norm.weight", {c.d_model});
    lm_head_ = c.tie_word_embeddings ? shared_ : take("lm_head.weight", {c.vocab_size, c.d_model});
    // Copies of the shared embedding some writers keep; an unused cross-attention
    // bias table that old checkpoints carry (the reference ignores it too).
    std::vector<std::string> ignorable = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                                          "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight"};
    if (c.tie_word_embeddings) ignorable.push_back("lm_head.weight");
    loader.finish(ignorable);
  }

  EncoderOutput encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       bool output_hidden_states, const StateHook& hook) const override {
    const auto& c = config();
    check_token_ids(input_ids, c.vocab_size, "input_ids");
    EncoderOutput out;
    out.attention_mask = normalise_attention_mask(attention_mask, input_ids);
    const int64_t length = input_ids.size(1);
    const auto padding = key_padding_from_mask(out.attention_mask, length, shared_.scalar_type());
    const auto bias = relative_position_bias(encoder_position_bias_, 0, length, length, /*bidirectional=*/true,
                                             c.relative_attention_max_distance);
    auto x = torch::embedding(shared_, input_ids);
    if (hook) x = hook(0, x);
    for (size_t i = 0; i < encoder_.size(); ++i) {
      if (output_hidden_states) out.hidden_states.push_back(x);
      const auto& b = encoder_[i];
      auto h = rms_norm(x, b.self_norm, c.layer_norm_epsilon);
      const auto [q_proj, k_proj, v_proj] = project_qkv(h, b.self_attention);
      auto q = split_heads(q_proj, c.encoder_heads, c.head_dim);
      auto k = split_heads(k_proj, c.encoder_heads, c.head_dim);
      auto v = split_heads(v_proj, c.encoder_heads, c.head_dim);
      auto a = attend(q, k, v, AttentionCall{1.0, false, bias, &padding});
      x = x + torch::linear(merge_heads(a), b.self_attention.o);
      x = x + feed_forward(b, rms_norm(x, b.feed_forward_norm, c.layer_norm_epsilon));
      if (hook) x = hook(static_cast<int64_t>(i) + 1, x);
    }
    x = rms_norm(x, encoder_final_norm_, c.layer_norm_epsilon);
    if (output_hidden_states) out.hidden_states.push_back(x);
    out.last_hidden_state = x;
    return out;
  }

  DecoderCache start_decoding(const EncoderOutput& encoder) const override {
    const auto& c = config();
    CHORUS_CHECK(encoder.last_hidden_state.defined() && encoder.last_hidden_state.dim() == 3 &&
                     encoder.last_hidden_state.size(2) == c.d_model,
                 "start_decoding: the encoder output must be [batch, length, ", c.d_model, "]");
    DecoderCache cache;
    const auto& memory = encoder.last_hidden_state;
    cache.encoder_padding = key_padding_from_mask(encoder.attention_mask, memory.size(1), memory.scalar_type());
    for (const auto& b : decoder_) {
      DecoderLayerCache layer;
      layer.cross_keys = split_heads(torch::linear(memory, b.cross_attention.k), c.decoder_heads, c.head_dim);
      layer.cross_values = split_heads(torch::linear(memory, b.cross_attention.v), c.decoder_heads, c.head_dim);
      cache.layers.push_back(std::move(layer));
    }
    return cache;
  }

  DecoderOutput decode_step(const torch::Tensor& decoder_input_ids, DecoderCache& cache,
                            bool output_hidden_states, const StateHook& hook) const override {
    const auto& c = config();
    check_token_ids(decoder_input_ids, c.vocab_size, "decoder_input_ids");
    CHORUS_CHECK(cache.layers.size() == decoder_.size() && decoder_input_ids.size(0) == cache.batch_size(),
                 "decode_step: decoder_input_ids has batch ", decoder_input_ids.size(0),
                 " but the cache was started for batch ", cache.batch_size());
    if (decoder_input_ids.size(1) == 1 && !hook && fused_step_applies(cache)) {
      return decode_token_fused(decoder_input_ids, cache, output_hidden_states);
    }
    DecoderOutput out;
    const int64_t past = cache.length();
    const int64_t n = decoder_input_ids.size(1);
    const auto bias = relative_position_bias(decoder_position_bias_, past, n, past + n, /*bidirectional=*/false,
                                             c.relative_attention_max_distance);
    auto x = torch::embedding(shared_, decoder_input_ids);
    if (hook) x = hook(0, x);
    // Steps of one token per row pack the weights once per generation (model/packed_linear.h).
    if (n == 1 && !cache.packed_weights && packing_pays(decoder_input_ids.size(0), shared_.scalar_type())) {
      cache.packed_weights = packed_cache_.get(step_weights(), decoder_input_ids.size(0));
    }
    const PackedWeights* packed = n == 1 ? cache.packed_weights.get() : nullptr;
    for (size_t i = 0; i < decoder_.size(); ++i) {
      if (output_hidden_states) out.hidden_states.push_back(x);
      const auto& b = decoder_[i];
      auto h = rms_norm(x, b.self_norm, c.layer_norm_epsilon);
      const auto [q_proj, k_proj, v_proj] = project_qkv(h, b.self_attention, packed);
      auto q = split_heads(q_proj, c.decoder_heads, c.head_dim);
      auto k = split_heads(k_proj, c.decoder_heads, c.head_dim);
      auto v = split_heads(v_proj, c.decoder_heads, c.head_dim);
      auto [keys, values] = cache.append_self(i, k, v);
      auto a = attend(q, keys, values, AttentionCall{1.0, true, bias, nullptr});
      x = x + linear(merge_heads(a), b.self_attention.o, packed);

      h = rms_norm(x, b.cross_norm, c.layer_norm_epsilon);
      q = split_heads(linear(h, b.cross_attention.q, packed), c.decoder_heads, c.head_dim);
      const auto& layer = cache.layers[i];
      a = attend(q, layer.cross_keys, layer.cross_values, AttentionCall{1.0, false, {}, &cache.encoder_padding});
      x = x + linear(merge_heads(a), b.cross_attention.o, packed);
      x = x + feed_forward(b, rms_norm(x, b.feed_forward_norm, c.layer_norm_epsilon), packed);
      if (hook) x = hook(static_cast<int64_t>(i) + 1, x);
    }
    cache.advance(n);
    x = rms_norm(x, decoder_final_norm_, c.layer_norm_epsilon);
    if (output_hidden_states) out.hidden_states.push_back(x);
    // Mesh TensorFlow's rescale when the LM head is the embedding matrix.
    if (c.tie_word_embeddings) x = x * std::pow(static_cast<double>(c.d_model), -0.5);
    out.logits = linear(x, lm_head_, packed);
    return out;
  }

  torch::Tensor token_embedding() const override { return shared_; }

 private:
  // The fused step's conditions: float32 on the CPU, no gradients, every self-attention projection
  // stacked (frozen), and a cache whose tensors it can read as strided float rows.
  bool fused_step_applies(const DecoderCache& cache) const {
    if (torch::GradMode::is_enabled() || !fused_decoding_allowed()) return false;
    if (!shared_.is_cpu() || shared_.scalar_type() != torch::kFloat32) return false;
    for (const auto& b : decoder_) {
      const auto& a = b.self_attention;
      if (!a.qkv.defined() || a.q.data_ptr() != a.qkv.data_ptr()) return false;
    }
    const auto& first = cache.layers.front();
    if (first.self_keys.defined() && (first.self_keys.stride(3) != 1 || first.self_values.stride(3) != 1)) return false;
    const auto& padding = cache.encoder_padding;
    if (padding.bias.defined() && padding.bias.scalar_type() != torch::kFloat32) return false;
    if (padding.key_lengths.defined() && !padding.key_lengths.is_contiguous()) return false;
    return first.cross_keys.scalar_type() == torch::kFloat32;
  }

  // The decoder self-attention bias by query-key distance, [H, >= distances] float32, computed with
  // the reference's bucket ops for every distance at once and kept in the cache.
  const torch::Tensor& self_bias_by_distance(DecoderCache& cache, int64_t distances) const {
    auto& table = cache.self_bias_by_distance;
    if (!table.defined() || table.size(1) < distances) {
      const int64_t size = std::max<int64_t>({distances, 64, table.defined() ? 2 * table.size(1) : 0});
      // Query at position size - 1 against keys 0 .. size - 1: key j is size - 1 - j behind.
      const auto row = relative_position_bias(decoder_position_bias_, size - 1, 1, size, /*bidirectional=*/false,
                                              config().relative_attention_max_distance);  // [1, H, 1, size]
      table = row.reshape({row.size(1), size}).flip({1}).contiguous();  // [H, distance]
    }
    return table;
  }

  // One decoding step of one token per row, with the same arithmetic as the op-by-op step but
  // few LibTorch calls: the products (packed when the cache holds packed weights), plain loops for
  // the norms and residual adds, ReLU in place; the new keys and values are written straight into the
  // cache, and the attention kernel reads q, the cache and the cross-attention keys in place and
  // writes the heads already merged. A decoding step at batch 1 spends most of its time outside
  // the products otherwise (dozens of small tensor ops per layer).
  DecoderOutput decode_token_fused(const torch::Tensor& ids, DecoderCache& cache, bool output_hidden_states) const {
    const auto& c = config();
    const int64_t batch = ids.size(0), d = c.d_model, heads = c.decoder_heads, head_dim = c.head_dim;
    const int64_t inner = heads * head_dim;
    const int64_t past = cache.length(), keys = past + 1;
    if (!cache.packed_weights && packing_pays(batch, torch::kFloat32)) {
      cache.packed_weights = packed_cache_.get(step_weights(), batch);
    }
    const PackedWeights* packed = cache.packed_weights.get();
    const auto options = torch::dtype(torch::kFloat32);
    DecoderOutput out;

    auto x = torch::empty({batch, d}, options);
    float* xp = x.data_ptr<float>();
    const float* embedding = shared_.data_ptr<float>();
    const auto id = ids.accessor<int64_t, 2>();
    for (int64_t r = 0; r < batch; ++r) std::memcpy(xp + r * d, embedding + id[r][0] * d, sizeof(float) * d);
    auto h = torch::empty({batch, d}, options);
    float* hp = h.data_ptr<float>();
    auto attended = torch::empty({batch, inner}, options);  // heads merged
    float* attended_p = attended.data_ptr<float>();
    std::vector<float> logsumexp(static_cast<size_t>(batch * heads));

    // This step's self-attention bias [H, keys]: key j is past - j behind the query.
    const auto& table = self_bias_by_distance(cache, keys);
    std::vector<float> step_bias(static_cast<size_t>(heads * keys));
    {
      const float* t = table.data_ptr<float>();
      const int64_t ld = table.size(1);
      for (int64_t hh = 0; hh < heads; ++hh) {
        for (int64_t j = 0; j < keys; ++j) step_bias[hh * keys + j] = t[hh * ld + past - j];
      }
    }

    auto attend_into = [&](kernels::AttentionParams& p) {
      p.dtype = kernels::ElementType::kFloat32;
      p.batch = batch;
      p.heads = heads;
      p.nq = 1;
      p.d = head_dim;
      p.dv = head_dim;
      p.scale = 1.0f;  // T5 folds the scaling into its weights
      kernels::AttentionForwardOutputs outputs;
      outputs.out.data = attended_p;
      outputs.out.strides[0] = inner;
      outputs.out.strides[1] = head_dim;
      outputs.out.strides[2] = inner;
      outputs.out.strides[3] = 1;
      outputs.logsumexp = logsumexp.data();
      attention_forward_into(p, outputs);
    };
    const float eps = static_cast<float>(c.layer_norm_epsilon);
    auto add_product = [&](const torch::Tensor& input, const torch::Tensor& weight) {
      const auto product = linear(input, weight, packed);
      add_into(xp, product.data_ptr<float>(), batch * d);
    };

    for (size_t i = 0; i < decoder_.size(); ++i) {
      if (output_hidden_states) out.hidden_states.push_back(x.clone().view({batch, 1, d}));
      const auto& b = decoder_[i];
      // Self-attention: q, k and v in one product; k and v go into the cache at position `past`.
      rms_norm_rows(xp, b.self_norm.data_ptr<float>(), hp, batch, d, eps);
      const auto qkv = linear(h, b.self_attention.qkv, packed);  // [B, 3 * inner]
      const float* qkv_p = qkv.data_ptr<float>();
      cache.reserve_self(i, 1, {batch, heads, 0, head_dim}, {batch, heads, 0, head_dim}, options);
      auto& layer = cache.layers[i];
      float* key_buffer = layer.self_keys.data_ptr<float>();
      float* value_buffer = layer.self_values.data_ptr<float>();
      for (int64_t r = 0; r < batch; ++r) {
        for (int64_t hh = 0; hh < heads; ++hh) {
          std::memcpy(key_buffer + r * layer.self_keys.stride(0) + hh * layer.self_keys.stride(1) +
                          past * layer.self_keys.stride(2),
                      qkv_p + r * 3 * inner + inner + hh * head_dim, sizeof(float) * head_dim);
          std::memcpy(value_buffer + r * layer.self_values.stride(0) + hh * layer.self_values.stride(1) +
                          past * layer.self_values.stride(2),
                      qkv_p + r * 3 * inner + 2 * inner + hh * head_dim, sizeof(float) * head_dim);
        }
      }
      {
        kernels::AttentionParams p;
        p.nk = keys;
        p.q = const_view(qkv_p, 3 * inner, head_dim, 3 * inner, 1);
        p.k = const_view(layer.self_keys);
        p.v = const_view(layer.self_values);
        p.mask.causal = true;
        p.mask.bias = step_bias.data();
        p.mask.bias_strides[0] = 0;
        p.mask.bias_strides[1] = keys;
        p.mask.bias_strides[2] = keys;
        p.mask.bias_strides[3] = 1;
        attend_into(p);
      }
      add_product(attended, b.self_attention.o);

      // Cross-attention over the encoder's keys and values, as padded.
      rms_norm_rows(xp, b.cross_norm.data_ptr<float>(), hp, batch, d, eps);
      const auto q = linear(h, b.cross_attention.q, packed);  // [B, inner]
      {
        kernels::AttentionParams p;
        p.nk = layer.cross_keys.size(2);
        p.q = const_view(q.data_ptr<float>(), inner, head_dim, inner, 1);
        p.k = const_view(layer.cross_keys);
        p.v = const_view(layer.cross_values);
        const auto& padding = cache.encoder_padding;
        if (padding.key_lengths.defined()) p.mask.key_lengths = padding.key_lengths.data_ptr<int64_t>();
        if (padding.bias.defined()) {  // [B, 1, 1, S]
          p.mask.bias = padding.bias.data_ptr<float>();
          p.mask.bias_strides[0] = padding.bias.stride(0);
          p.mask.bias_strides[3] = padding.bias.stride(3);
        }
        attend_into(p);
      }
      add_product(attended, b.cross_attention.o);

      // Feed-forward.
      rms_norm_rows(xp, b.feed_forward_norm.data_ptr<float>(), hp, batch, d, eps);
      const auto& ff = b.feed_forward;
      torch::Tensor inner_states;
      if (c.gated_ffn) {
        inner_states = activate(linear(h, ff.wi_0, packed), c.activation) * linear(h, ff.wi_1, packed);
      } else {
        inner_states = linear(h, ff.wi, packed);
        // The product is this step's own tensor: ReLU in place, no second buffer.
        inner_states = c.activation == "relu" ? inner_states.relu_() : activate(inner_states, c.activation);
      }
      add_product(inner_states, ff.wo);
    }
    cache.advance(1);
    rms_norm_rows(xp, decoder_final_norm_.data_ptr<float>(), hp, batch, d, eps);
    if (output_hidden_states) out.hidden_states.push_back(h.clone().view({batch, 1, d}));
    // Mesh TensorFlow's rescale when the LM head is the embedding matrix (in float32, as x * s).
    if (c.tie_word_embeddings) {
      const auto scale = static_cast<float>(std::pow(static_cast<double>(d), -0.5));
      for (int64_t k = 0; k < batch * d; ++k) hp[k] *= scale;
    }
    out.logits = linear(h, lm_head_, packed).view({batch, 1, c.vocab_size});
    return out;
  }

  torch::Tensor feed_forward(const T5Block& b, const torch::Tensor& h, const PackedWeights* packed = nullptr) const {
    const auto& ff = b.feed_forward;
    const auto& activation = config().activation;
    if (config().gated_ffn) {
      return linear(activate(linear(h, ff.wi_0, packed), activation) * linear(h, ff.wi_1, packed), ff.wo, packed);
    }
    return linear(activate(linear(h, ff.wi, packed), activation), ff.wo, packed);
  }

  // Every weight a decoding step multiplies by one row per sequence (the frozen self-attention's
  // stacked q/k/v, never its views).
  std::vector<torch::Tensor> step_weights() const {
    std::vector<torch::Tensor> w;
    for (const auto& b : decoder_) {
      const auto& a = b.self_attention;
      if (a.qkv.defined() && !a.q.requires_grad() && a.q.data_ptr() == a.qkv.data_ptr()) w.push_back(a.qkv);
      for (const auto& t : {a.o, b.cross_attention.q, b.cross_attention.o, b.feed_forward.wi, b.feed_forward.wi_0,
                            b.feed_forward.wi_1, b.feed_forward.wo}) {
        if (t.defined()) w.push_back(t);
      }
    }
    w.push_back(lm_head_);
    return w;
  }

  torch::Tensor shared_, lm_head_;
  std::vector<T5Block> encoder_, decoder_;
  mutable PackedWeightsCache packed_cache_;  // the last generation's packed step weights
  torch::Tensor encoder_position_bias_, decoder_position_bias_;
  torch::Tensor encoder_final_norm_, decoder_final_norm_;
};

}  // namespace

std::shared_ptr<Seq2SeqModel> make_t5_model(const Seq2SeqConfig& config, const WeightMap& weights,
                                            torch::Dtype dtype) {
  CHORUS_CHECK(config.family == ModelFamily::t5, "make_t5_model: the config is of family ", to_string(config.family));
  return std::make_shared<T5Model>(config, weights, dtype);
}

}  // namespace chorus::model
