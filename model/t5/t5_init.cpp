// Fresh T5-style models: config and the reference's initialisation scales.
#include "model/t5/t5_init.h"

#include <torch/torch.h>

#include <cmath>
#include <string>

#include "common/error.h"
#include "model/t5/t5_model.h"

namespace chorus::model {

nlohmann::json make_t5_config(const T5Shape& s) {
  CHORUS_CHECK(s.vocab_size > 0 && s.d_model > 0 && s.num_layers > 0 && s.num_decoder_layers > 0 && s.num_heads > 0 &&
                   s.d_kv > 0 && s.d_ff > 0,
               "T5 sizes must be positive: vocab_size ", s.vocab_size, ", d_model ", s.d_model, ", num_layers ",
               s.num_layers, ", num_decoder_layers ", s.num_decoder_layers, ", num_heads ", s.num_heads, ", d_kv ",
               s.d_kv, ", d_ff ", s.d_ff);
  return nlohmann::json{{"model_type", "t5"},
                        {"architectures", {"T5ForConditionalGeneration"}},
                        {"vocab_size", s.vocab_size},
                        {"d_model", s.d_model},
                        {"d_kv", s.d_kv},
                        {"d_ff", s.d_ff},
                        {"num_layers", s.num_layers},
                        {"num_decoder_layers", s.num_decoder_layers},
                        {"num_heads", s.num_heads},
                        {"feed_forward_proj", s.feed_forward_proj},
                        {"tie_word_embeddings", s.tie_word_embeddings},
                        {"relative_attention_num_buckets", s.relative_attention_num_buckets},
                        {"relative_attention_max_distance", s.relative_attention_max_distance},
                        {"layer_norm_epsilon", 1e-6},
                        {"dropout_rate", 0.0},
                        {"initializer_factor", 1.0},
                        {"pad_token_id", s.pad_token_id},
                        {"eos_token_id", s.eos_token_id},
                        {"decoder_start_token_id", s.pad_token_id},
                        {"is_encoder_decoder", true}};
}

WeightMap init_t5_weights(const Seq2SeqConfig& c, uint64_t seed) {
  CHORUS_CHECK(c.family == ModelFamily::t5, "init_t5_weights: the config is of family ", to_string(c.family));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  WeightMap weights("a freshly initialised T5");
  auto normal = [&](std::string name, at::IntArrayRef shape, double std) {
    weights.insert(std::move(name), at::normal(0.0, std, shape, generator, torch::dtype(torch::kFloat32)));
  };
  auto ones = [&](std::string name) { weights.insert(std::move(name), torch::ones({c.d_model})); };
  const int64_t inner = c.encoder_heads * c.head_dim;
  const double d = static_cast<double>(c.d_model);
  normal("shared.weight", {c.vocab_size, c.d_model}, 1.0);
  auto attention = [&](const std::string& prefix) {
    normal(prefix + ".q.weight", {inner, c.d_model}, 1.0 / std::sqrt(d * static_cast<double>(c.head_dim)));
    normal(prefix + ".k.weight", {inner, c.d_model}, 1.0 / std::sqrt(d));
    normal(prefix + ".v.weight", {inner, c.d_model}, 1.0 / std::sqrt(d));
    normal(prefix + ".o.weight", {c.d_model, inner}, 1.0 / std::sqrt(static_cast<double>(inner)));
  };
  auto feed_forward = [&](const std::string& prefix) {
    const auto fan_in = 1.0 / std::sqrt(d);
    if (c.gated_ffn) {
      normal(prefix + ".wi_0.weight", {c.encoder_ffn_dim, c.d_model}, fan_in);
      normal(prefix + ".wi_1.weight", {c.encoder_ffn_dim, c.d_model}, fan_in);
    } else {
      normal(prefix + ".wi.weight", {c.encoder_ffn_dim, c.d_model}, fan_in);
    }
    normal(prefix + ".wo.weight", {c.d_model, c.encoder_ffn_dim}, 1.0 / std::sqrt(static_cast<double>(c.encoder_ffn_dim)));
  };
  for (int64_t i = 0; i < c.encoder_layers; ++i) {
    const auto p = "encoder.block." + std::to_string(i) + ".layer.";
    attention(p + "0.SelfAttention");
    if (i == 0) normal(p + "0.SelfAttention.relative_attention_bias.weight", {c.relative_attention_num_buckets, c.encoder_heads}, 1.0 / std::sqrt(d));
    ones(p + "0.layer_norm.weight");
    feed_forward(p + "1.DenseReluDense");
    ones(p + "1.layer_norm.weight");
  }
  ones("encoder.final_layer_norm.weight");
  for (int64_t i = 0; i < c.decoder_layers; ++i) {
    const auto p = "decoder.block." + std::to_string(i) + ".layer.";
    attention(p + "0.SelfAttention");
    if (i == 0) normal(p + "0.SelfAttention.relative_attention_bias.weight", {c.relative_attention_num_buckets, c.decoder_heads}, 1.0 / std::sqrt(d));
    ones(p + "0.layer_norm.weight");
    attention(p + "1.EncDecAttention");
    ones(p + "1.layer_norm.weight");
    feed_forward(p + "2.DenseReluDense");
    ones(p + "2.layer_norm.weight");
  }
  ones("decoder.final_layer_norm.weight");
  if (!c.tie_word_embeddings) normal("lm_head.weight", {c.vocab_size, c.d_model}, 1.0);
  return weights;
}

std::shared_ptr<Seq2SeqModel> make_untrained_t5(const nlohmann::json& config_json, uint64_t seed) {
  const auto config = parse_seq2seq_config(config_json, "the T5 config of a model trained from scratch");
  return make_t5_model(config, init_t5_weights(config, seed), torch::kFloat32);
}

WeightMap model_weights(const Seq2SeqModel& model) {
  WeightMap weights("the weights of a " + to_string(model.family()) + " model");
  for (const auto& item : model.named_parameters()) {
    weights.insert(item.key(), item.value().detach().to(torch::kCPU).contiguous().clone());
  }
  return weights;
}

}  // namespace chorus::model
