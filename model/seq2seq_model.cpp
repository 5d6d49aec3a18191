// Seq2SeqModel's shared parts: config parsing, the decoder cache, freezing and the loading factory.
#include "model/seq2seq_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "model/bart/bart_model.h"
#include "model/io/config_fields.h"
#include "model/io/model_checkpoint.h"
#include "model/seq2seq_layers.h"
#include "model/t5/t5_model.h"

namespace chorus::model {

std::string to_string(ModelFamily family) { return family == ModelFamily::t5 ? "t5" : "bart"; }

namespace {

void parse_t5(const nlohmann::json& j, const std::string& where, Seq2SeqConfig& c) {
  c.family = ModelFamily::t5;
  c.vocab_size = required_field<int64_t>(j, "vocab_size", where);
  c.d_model = required_field<int64_t>(j, "d_model", where);
  c.head_dim = required_field<int64_t>(j, "d_kv", where);
  c.encoder_ffn_dim = c.decoder_ffn_dim = required_field<int64_t>(j, "d_ff", where);
  c.encoder_layers = required_field<int64_t>(j, "num_layers", where);
  c.decoder_layers = optional_field<int64_t>(j, "num_decoder_layers", c.encoder_layers, where);
  c.encoder_heads = c.decoder_heads = required_field<int64_t>(j, "num_heads", where);
  c.relative_attention_num_buckets = optional_field<int64_t>(j, "relative_attention_num_buckets", 32, where);
  c.relative_attention_max_distance = optional_field<int64_t>(j, "relative_attention_max_distance", 128, where);
  c.layer_norm_epsilon = optional_field<double>(j, "layer_norm_epsilon", 1e-6, where);
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", true, where);
  c.pad_token_id = optional_field<int64_t>(j, "pad_token_id", 0, where);
  c.eos_token_id = optional_field<int64_t>(j, "eos_token_id", 1, where);
  c.bos_token_id = optional_field<int64_t>(j, "bos_token_id", -1, where);
  // T5 starts decoding from the pad token.
  c.decoder_start_token_id = optional_field<int64_t>(j, "decoder_start_token_id", c.pad_token_id, where);
  // feed_forward_proj is "ACT" or "gated-ACT"; "gated-gelu" means the tanh GELU (the reference's rule).
  const auto proj = optional_field<std::string>(j, "feed_forward_proj", "relu", where);
  const auto dash = proj.find('-');
  if (dash == std::string::npos) {
    c.activation = proj;
  } else {
    CHORUS_CHECK(proj.substr(0, dash) == "gated" && proj.find('-', dash + 1) == std::string::npos, where,
                 ": feed_forward_proj '", proj, "' is not of the form ACT or gated-ACT");
    c.gated_ffn = true;
    c.activation = proj.substr(dash + 1);
  }
  if (proj == "gated-gelu") c.activation = "gelu_new";
  // Both bucket rules need logarithmic bins: the causal one has num_buckets / 2 exact ones.
  CHORUS_CHECK(c.relative_attention_num_buckets >= 4 && c.relative_attention_max_distance >
                   c.relative_attention_num_buckets / 2,
               where, ": relative_attention_num_buckets = ", c.relative_attention_num_buckets,
               " and relative_attention_max_distance = ", c.relative_attention_max_distance,
               " leave no logarithmic buckets (expected num_buckets >= 4 and max_distance > num_buckets / 2)");
}

void parse_bart(const nlohmann::json& j, const std::string& where, Seq2SeqConfig& c) {
  c.family = ModelFamily::bart;
  c.vocab_size = required_field<int64_t>(j, "vocab_size", where);
  c.d_model = required_field<int64_t>(j, "d_model", where);
  c.encoder_layers = required_field<int64_t>(j, "encoder_layers", where);
  c.decoder_layers = required_field<int64_t>(j, "decoder_layers", where);
  c.encoder_heads = required_field<int64_t>(j, "encoder_attention_heads", where);
  c.decoder_heads = required_field<int64_t>(j, "decoder_attention_heads", where);
  c.encoder_ffn_dim = required_field<int64_t>(j, "encoder_ffn_dim", where);
  c.decoder_ffn_dim = required_field<int64_t>(j, "decoder_ffn_dim", where);
  c.max_position_embeddings = required_field<int64_t>(j, "max_position_embeddings", where);
  c.activation = optional_field<std::string>(j, "activation_function", "gelu", where);
  c.scale_embedding = optional_field<bool>(j, "scale_embedding", false, where);
  c.tie_word_embeddings = optional_field<bool>(j, "tie_word_embeddings", true, where);
  c.layer_norm_epsilon = 1e-5;  // torch.nn.LayerNorm's default, which the reference uses
  c.pad_token_id = optional_field<int64_t>(j, "pad_token_id", 1, where);
  c.bos_token_id = optional_field<int64_t>(j, "bos_token_id", 0, where);
  c.eos_token_id = optional_field<int64_t>(j, "eos_token_id", 2, where);
  c.decoder_start_token_id = optional_field<int64_t>(j, "decoder_start_token_id", 2, where);
  for (const char* key : {"encoder_attention_heads", "decoder_attention_heads"}) {
    const auto heads = j.at(key).get<int64_t>();
    CHORUS_CHECK(heads > 0 && c.d_model % heads == 0, where, ": d_model ", c.d_model, " is not divisible by ", key,
                 " = ", heads);
  }
  c.encoder_heads = j.at("encoder_attention_heads").get<int64_t>();
  c.head_dim = c.d_model / c.encoder_heads;
  CHORUS_CHECK(!optional_field<bool>(j, "normalize_before", false, where) &&
                   !optional_field<bool>(j, "add_final_layer_norm", false, where),
               where, ": pre-norm variants (normalize_before / add_final_layer_norm, mBART) are not supported");
}

}  // namespace

Seq2SeqConfig parse_seq2seq_config(const nlohmann::json& config, const std::string& where) {
  CHORUS_CHECK(config.is_object(), where, ": expected a JSON object");
  Seq2SeqConfig c;
  c.model_type = required_field<std::string>(config, "model_type", where);
  if (c.model_type == "t5" || c.model_type == "mt5") {
    parse_t5(config, where, c);
  } else if (c.model_type == "bart") {
    parse_bart(config, where, c);
  } else {
    throw Error(where + ": model_type '" + c.model_type + "' is not supported (expected t5, mt5 or bart)");
  }
  for (auto [name, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                             {"d_model", c.d_model},
                             {"head dimension", c.head_dim},
                             {"encoder layers", c.encoder_layers},
                             {"decoder layers", c.decoder_layers},
                             {"encoder heads", c.encoder_heads},
                             {"decoder heads", c.decoder_heads},
                             {"encoder feed-forward size", c.encoder_ffn_dim},
                             {"decoder feed-forward size", c.decoder_ffn_dim}}) {
    CHORUS_CHECK(value > 0, where, ": ", name, " is ", value, "; expected a positive number");
  }
  for (auto [name, id] : {std::pair<const char*, int64_t>{"pad_token_id", c.pad_token_id},
                          {"eos_token_id", c.eos_token_id},
                          {"decoder_start_token_id", c.decoder_start_token_id}}) {
    CHORUS_CHECK(id >= 0 && id < c.vocab_size, where, ": ", name, " = ", id, " is outside the vocabulary [0, ",
                 c.vocab_size, ")");
  }
  check_activation(c.activation, where);
  c.raw = config;
  return c;
}

int64_t DecoderCache::batch_size() const {
  CHORUS_CHECK(!layers.empty() && layers.front().cross_keys.defined(), "the decoder cache was not started");
  return layers.front().cross_keys.size(0);
}

void DecoderCache::reserve_self(size_t layer, int64_t n, at::IntArrayRef key_shape, at::IntArrayRef value_shape,
                                const torch::TensorOptions& options) {
  auto& cache = layers.at(layer);
  const int64_t needed = length_ + n;
  if (cache.self_keys.defined() && cache.self_keys.size(2) >= needed) return;
  // Grow geometrically so a generation of T tokens copies O(T) rows, not O(T^2).
  const int64_t capacity = std::max<int64_t>({needed, 16, cache.self_keys.defined() ? 2 * cache.self_keys.size(2) : 0});
  auto grow = [&](const torch::Tensor& old, at::IntArrayRef shape) {
    auto buffer = torch::empty({shape[0], shape[1], capacity, shape[3]}, options);
    if (length_ > 0) buffer.narrow(2, 0, length_).copy_(old.narrow(2, 0, length_));
    return buffer;
  };
  cache.self_keys = grow(cache.self_keys, key_shape);
  cache.self_values = grow(cache.self_values, value_shape);
}

std::pair<torch::Tensor, torch::Tensor> DecoderCache::append_self(size_t layer, const torch::Tensor& keys,
                                                                  const torch::Tensor& values) {
  const int64_t n = keys.size(2);
  const int64_t needed = length_ + n;
  reserve_self(layer, n, keys.sizes(), values.sizes(), keys.options());
  auto& cache = layers.at(layer);
  cache.self_keys.narrow(2, length_, n).copy_(keys);
  cache.self_values.narrow(2, length_, n).copy_(values);
  return {cache.self_keys.narrow(2, 0, needed), cache.self_values.narrow(2, 0, needed)};
}

void DecoderCache::reorder(const torch::Tensor& rows, bool same_source) {
  for (auto& cache : layers) {
    if (cache.self_keys.defined()) {
      cache.self_keys = cache.self_keys.narrow(2, 0, length_).index_select(0, rows);
      cache.self_values = cache.self_values.narrow(2, 0, length_).index_select(0, rows);
    }
    if (!same_source) {
      cache.cross_keys = cache.cross_keys.index_select(0, rows);
      cache.cross_values = cache.cross_values.index_select(0, rows);
    }
  }
  if (!same_source) {
    if (encoder_padding.key_lengths.defined()) encoder_padding.key_lengths = encoder_padding.key_lengths.index_select(0, rows);
    if (encoder_padding.bias.defined()) encoder_padding.bias = encoder_padding.bias.index_select(0, rows);
  }
}

void DecoderCache::repeat_interleave(int64_t times) {
  if (times == 1) return;
  auto rep = [times](torch::Tensor& t) {
    if (t.defined()) t = t.repeat_interleave(times, 0);
  };
  for (auto& cache : layers) {
    if (cache.self_keys.defined()) {
      cache.self_keys = cache.self_keys.narrow(2, 0, length_);
      cache.self_values = cache.self_values.narrow(2, 0, length_);
    }
    rep(cache.self_keys);
    rep(cache.self_values);
    rep(cache.cross_keys);
    rep(cache.cross_values);
  }
  rep(encoder_padding.key_lengths);
  rep(encoder_padding.bias);
}

Seq2SeqModel::Seq2SeqModel(Seq2SeqConfig config) : torch::nn::Module(to_string(config.family)), config_(std::move(config)) {}

Seq2SeqOutput Seq2SeqModel::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                    const torch::Tensor& decoder_input_ids, bool output_hidden_states) const {
  Seq2SeqOutput out;
  out.encoder = encode(input_ids, attention_mask, output_hidden_states);
  auto cache = start_decoding(out.encoder);
  CHORUS_CHECK(decoder_input_ids.defined() && decoder_input_ids.dim() == 2 &&
                   decoder_input_ids.size(0) == input_ids.size(0),
               "decoder_input_ids must be [batch, length] with the batch of input_ids (", input_ids.size(0), ")");
  auto decoded = decode_step(decoder_input_ids, cache, output_hidden_states);
  out.logits = std::move(decoded.logits);
  out.decoder_hidden_states = std::move(decoded.hidden_states);
  return out;
}

void Seq2SeqModel::freeze() {
  for (auto& p : parameters()) p.requires_grad_(false);
  eval();
  frozen_ = true;
}

torch::Tensor Seq2SeqModel::add_weight(const std::string& dotted_name, torch::Tensor tensor) {
  torch::nn::Module* module = this;
  std::string::size_type start = 0;
  for (auto dot = dotted_name.find('.'); dot != std::string::npos; dot = dotted_name.find('.', start)) {
    const auto part = dotted_name.substr(start, dot - start);
    auto children = module->named_children();
    if (auto* child = children.find(part)) {
      module = child->get();
    } else {
      module = module->register_module(part, std::make_shared<torch::nn::Module>(part)).get();
    }
    start = dot + 1;
  }
  return module->register_parameter(dotted_name.substr(start), std::move(tensor));
}

std::shared_ptr<Seq2SeqModel> load_seq2seq_model(const std::filesystem::path& folder_or_h5, const LoadOptions& options) {
  auto files = load_model_files(folder_or_h5);
  const auto where = std::filesystem::is_directory(folder_or_h5) ? (folder_or_h5 / "config.json").string()
                                                                 : folder_or_h5.string();
  auto config = parse_seq2seq_config(files.config, where);
  std::shared_ptr<Seq2SeqModel> model;
  if (config.family == ModelFamily::t5) {
    model = make_t5_model(config, files.weights, options.dtype);
  } else {
    model = make_bart_model(config, files.weights, options.dtype);
  }
  if (options.freeze) model->freeze();
  return model;
}

}  // namespace chorus::model
