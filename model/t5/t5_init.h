// Fresh T5-style models for agents Chorus trains itself: a config.json from a few sizes, and weights
// initialised as the reference initialises an untrained T5.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "model/io/weight_map.h"
#include "model/seq2seq_model.h"

namespace chorus::model {

// The sizes of a T5 trained from scratch (fields named as in T5's config.json).
struct T5Shape {
  int64_t vocab_size = 0;
  int64_t d_model = 128;
  int64_t num_layers = 2;          // encoder
  int64_t num_decoder_layers = 2;
  int64_t num_heads = 4;
  int64_t d_kv = 32;               // per-head width; need not be d_model / num_heads
  int64_t d_ff = 512;
  std::string feed_forward_proj = "relu";  // or gated-gelu, gated-silu, ...
  bool tie_word_embeddings = true;
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
};

// A config.json object a Hugging Face T5 (and load_seq2seq_model) reads.
nlohmann::json make_t5_config(const T5Shape& shape);

// Every weight make_t5_model expects, drawn from a generator seeded with
// `seed`, with the scales of the reference's T5 initialisation: embeddings
// N(0, 1); q N(0, (d_model d_kv)^-1/2); k, v N(0, d_model^-1/2); o N(0, (H d_kv)^-1/2);
// wi N(0, d_model^-1/2); wo N(0, d_ff^-1/2); relative position tables N(0, d_model^-1/2);
// norms 1; an untied head N(0, 1). Float32, CPU.
WeightMap init_t5_weights(const Seq2SeqConfig& config, uint64_t seed);

// A trainable (not frozen) T5 built from `config_json` with init_t5_weights.
std::shared_ptr<Seq2SeqModel> make_untrained_t5(const nlohmann::json& config_json, uint64_t seed);

// The model's weights under their reference names (what save_model_checkpoint
// stores), detached CPU copies.
WeightMap model_weights(const Seq2SeqModel& model);

}  // namespace chorus::model
