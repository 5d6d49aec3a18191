// The BART family on the chorus::attention op.
#include "model/bart/bart_model.h"

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/seq2seq_layers.h"

namespace chorus::model {
namespace {

// The reference's positions start at 2 (a fairseq convention kept in the weights).
constexpr int64_t kPositionOffset = 2;

struct Linear {
  torch::Tensor weight, bias;
  torch::Tensor operator()(const torch::Tensor& x) const { return torch::linear(x, weight, bias); }
};

struct LayerNorm {
  torch::Tensor weight, bias;
};

struct BartAttention {
  Linear q, k, v, out;
};

struct BartLayer {
  BartAttention self_attention;
  LayerNorm self_norm;
  BartAttention cross_attention;  // decoder only
  LayerNorm cross_norm;
  Linear fc1, fc2;
  LayerNorm final_norm;
};

struct BartStack {
  torch::Tensor positions;  // [max_positions + 2, d]
  LayerNorm embedding_norm;
  std::vector<BartLayer> layers;
  int64_t heads = 0, head_dim = 0;
};

class BartModel final : public Seq2SeqModel {
 public:
  BartModel(const Seq2SeqConfig& config, const WeightMap& weights, torch::Dtype dtype) : Seq2SeqModel(config) {
    WeightLoader loader(weights, dtype);
    const auto& c = this->config();
    const int64_t d = c.d_model;
    auto take = [&](const std::string& name, at::IntArrayRef shape) { return add_weight(name, loader.take(name, shape)); };
    auto linear = [&](const std::string& p, int64_t out, int64_t in) {
      return Linear{take(p + ".weight", {out, in}), take(p + ".bias", {out})};
    };
    auto norm = [&](const std::string& p) { return LayerNorm{take(p + ".weight", {d}), take(p + ".bias", {d})}; };
    auto attention = [&](const std::string& p) {
      return BartAttention{linear(p + ".q_proj", d, d), linear(p + ".k_proj", d, d), linear(p + ".v_proj", d, d),
                           linear(p + ".out_proj", d, d)};
    };
    shared_ = take("model.shared.weight", {c.vocab_size, d});
    auto stack = [&](const std::string& name, int64_t layers, int64_t heads, int64_t ffn, bool decoder) {
      BartStack s;
      const auto p = "model." + name;
      s.positions = take(p + ".embed_positions.weight", {c.max_position_embeddings + kPositionOffset, d});
      s.embedding_norm = norm(p + ".layernorm_embedding");
      s.heads = heads;
      s.head_dim = d / heads;
      for (int64_t i = 0; i < layers; ++i) {
        const auto lp = p + ".layers." + std::to_string(i);
        BartLayer l;
        l.self_attention = attention(lp + ".self_attn");
        l.self_norm = norm(lp + ".self_attn_layer_norm");
        if (decoder) {
          l.cross_attention = attention(lp + ".encoder_attn");
          l.cross_norm = norm(lp + ".encoder_attn_layer_norm");
        }
        l.fc1 = linear(lp + ".fc1", ffn, d);
        l.fc2 = linear(lp + ".fc2", d, ffn);
        l.final_norm = norm(lp + ".final_layer_norm");
        s.layers.push_back(std::move(l));
      }
      return s;
    };
    encoder_ = stack("encoder", c.encoder_layers, c.encoder_heads, c.encoder_ffn_dim, false);
    decoder_ = stack("decoder", c.decoder_layers, c.decoder_heads, c.decoder_ffn_dim, true);
    lm_head_ = c.tie_word_embeddings ? shared_ : take("lm_head.weight", {c.vocab_size, d});
    // The reference treats a missing final_logits_bias as zeros.
    final_logits_bias_ = add_weight("final_logits_bias",
                                    loader.take_or("final_logits_bias", {1, c.vocab_size},
                                                   torch::zeros({1, c.vocab_size}, torch::dtype(dtype))));
    embed_scale_ = c.scale_embedding ? std::sqrt(static_cast<double>(d)) : 1.0;
    std::vector<std::string> ignorable = {"model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"};
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
    auto x = embed(encoder_, input_ids, 0);
    if (hook) x = hook(0, x);
    for (size_t i = 0; i < encoder_.layers.size(); ++i) {
      const auto& l = encoder_.layers[i];
      if (output_hidden_states) out.hidden_states.push_back(x);
      auto a = self_attention(l.self_attention, encoder_, x, x, AttentionCall{0.0, false, {}, &padding});
      x = layer_norm(x + a, l.self_norm);
      x = layer_norm(x + feed_forward(l, x), l.final_norm);
      if (hook) x = hook(static_cast<int64_t>(i) + 1, x);
    }
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
    for (const auto& l : decoder_.layers) {
      DecoderLayerCache layer;
      layer.cross_keys = split_heads(l.cross_attention.k(memory), decoder_.heads, decoder_.head_dim);
      layer.cross_values = split_heads(l.cross_attention.v(memory), decoder_.heads, decoder_.head_dim);
      cache.layers.push_back(std::move(layer));
    }
    return cache;
  }

  DecoderOutput decode_step(const torch::Tensor& decoder_input_ids, DecoderCache& cache,
                            bool output_hidden_states, const StateHook& hook) const override {
    const auto& c = config();
    check_token_ids(decoder_input_ids, c.vocab_size, "decoder_input_ids");
    CHORUS_CHECK(cache.layers.size() == decoder_.layers.size() && decoder_input_ids.size(0) == cache.batch_size(),
                 "decode_step: decoder_input_ids has batch ", decoder_input_ids.size(0),
                 " but the cache was started for batch ", cache.batch_size());
    DecoderOutput out;
    const int64_t n = decoder_input_ids.size(1);
    auto x = embed(decoder_, decoder_input_ids, cache.length());
    if (hook) x = hook(0, x);
    for (size_t i = 0; i < decoder_.layers.size(); ++i) {
      if (output_hidden_states) out.hidden_states.push_back(x);
      const auto& l = decoder_.layers[i];
      auto q = split_heads(l.self_attention.q(x), decoder_.heads, decoder_.head_dim);
      auto k = split_heads(l.self_attention.k(x), decoder_.heads, decoder_.head_dim);
      auto v = split_heads(l.self_attention.v(x), decoder_.heads, decoder_.head_dim);
      auto [keys, values] = cache.append_self(i, k, v);
      auto a = attend(q, keys, values, AttentionCall{0.0, true, {}, nullptr});
      x = layer_norm(x + l.self_attention.out(merge_heads(a)), l.self_norm);

      q = split_heads(l.cross_attention.q(x), decoder_.heads, decoder_.head_dim);
      const auto& layer = cache.layers[i];
      a = attend(q, layer.cross_keys, layer.cross_values, AttentionCall{0.0, false, {}, &cache.encoder_padding});
      x = layer_norm(x + l.cross_attention.out(merge_heads(a)), l.cross_norm);
      x = layer_norm(x + feed_forward(l, x), l.final_norm);
      if (hook) x = hook(static_cast<int64_t>(i) + 1, x);
    }
    cache.advance(n);
    if (output_hidden_states) out.hidden_states.push_back(x);
    out.logits = torch::linear(x, lm_head_) + final_logits_bias_;
    return out;
  }

  torch::Tensor token_embedding() const override { return shared_; }

 private:
  torch::Tensor embed(const BartStack& s, const torch::Tensor& ids, int64_t first_position) const {
    const int64_t n = ids.size(1);
    const int64_t max_positions = config().max_position_embeddings;
    CHORUS_CHECK(first_position + n <= max_positions, "BART reads positions up to ", first_position + n,
                 " but max_position_embeddings is ", max_positions);
    auto tokens = torch::embedding(shared_, ids) * embed_scale_;
    auto positions = s.positions.narrow(0, first_position + kPositionOffset, n);
    return layer_norm(tokens + positions, s.embedding_norm);
  }

  torch::Tensor layer_norm(const torch::Tensor& x, const LayerNorm& n) const {
    return torch::layer_norm(x, {config().d_model}, n.weight, n.bias, config().layer_norm_epsilon);
  }

  torch::Tensor self_attention(const BartAttention& attn, const BartStack& s, const torch::Tensor& x,
                               const torch::Tensor& memory, const AttentionCall& call) const {
    auto q = split_heads(attn.q(x), s.heads, s.head_dim);
    auto k = split_heads(attn.k(memory), s.heads, s.head_dim);
    auto v = split_heads(attn.v(memory), s.heads, s.head_dim);
    return attn.out(merge_heads(attend(q, k, v, call)));
  }

  torch::Tensor feed_forward(const BartLayer& l, const torch::Tensor& x) const {
    return l.fc2(activate(l.fc1(x), config().activation));
  }

  torch::Tensor shared_, lm_head_, final_logits_bias_;
  BartStack encoder_, decoder_;
  double embed_scale_ = 1.0;
};

}  // namespace

std::shared_ptr<Seq2SeqModel> make_bart_model(const Seq2SeqConfig& config, const WeightMap& weights,
                                              torch::Dtype dtype) {
  CHORUS_CHECK(config.family == ModelFamily::bart, "make_bart_model: the config is of family ",
               to_string(config.family));
  return std::make_shared<BartModel>(config, weights, dtype);
}

}  // namespace chorus::model
