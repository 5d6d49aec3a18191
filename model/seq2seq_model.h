// Seq2SeqModel: the encoder-decoder interface every agent model implements (T5, flan-t5, BART).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace chorus::model {

enum class ModelFamily { t5, bart };
std::string to_string(ModelFamily family);

// The architecture read from a Hugging Face config.json. Field names follow
// the reference where they exist; BART's encoder/decoder sizes may differ.
struct Seq2SeqConfig {
  ModelFamily family = ModelFamily::t5;
  std::string model_type;  // "t5", "mt5", "bart"
  int64_t vocab_size = 0;
  int64_t d_model = 0;
  int64_t encoder_layers = 0;
  int64_t decoder_layers = 0;
  int64_t encoder_heads = 0;
  int64_t decoder_heads = 0;
  int64_t head_dim = 0;  // T5's d_kv (free); BART's d_model / heads
  int64_t encoder_ffn_dim = 0;
  int64_t decoder_ffn_dim = 0;
  std::string activation;     // relu, gelu, gelu_new, silu, gelu_fast, tanh
  bool gated_ffn = false;     // T5 v1.1: act(wi_0 x) * (wi_1 x)
  bool tie_word_embeddings = true;
  double layer_norm_epsilon = 1e-6;
  // T5 only.
  int64_t relative_attention_num_buckets = 32;
  int64_t relative_attention_max_distance = 128;
  // BART only.
  int64_t max_position_embeddings = 0;
  bool scale_embedding = false;
  // Special tokens.
  int64_t pad_token_id = 0;
  int64_t eos_token_id = 1;
  int64_t bos_token_id = -1;  // -1: none
  int64_t decoder_start_token_id = 0;
  nlohmann::json raw;  // the whole config.json, for fields generation reads
};

// Parses config.json; `where` (the file) is named in every error.
Seq2SeqConfig parse_seq2seq_config(const nlohmann::json& config, const std::string& where);

// The encoder's result, which every decoding step reads.
struct EncoderOutput {
  torch::Tensor last_hidden_state;  // [B, S, d_model]
  torch::Tensor attention_mask;     // [B, S] int64, 1 = token, 0 = padding
  // On request: the embedding output, then each layer's output, the last one
  // after the stack's final norm (num_layers + 1 entries, as the reference).
  std::vector<torch::Tensor> hidden_states;
};

// Key padding of an attention: right padding becomes per-row key lengths
// (cheapest for the op); any other 0/1 pattern becomes an additive bias.
struct KeyPadding {
  torch::Tensor key_lengths;  // int64 [B] or undefined
  torch::Tensor bias;         // float [B, 1, 1, S] or undefined
};

// Key/value cache for incremental decoding. Self-attention keys/values grow by
// the tokens of each step (stored in buffers with spare capacity, handed to
// attention as views); cross-attention keys/values are computed once from the
// encoder output.
struct DecoderLayerCache {
  torch::Tensor self_keys;    // [B, H, capacity, D]
  torch::Tensor self_values;  // [B, H, capacity, Dv]
  torch::Tensor cross_keys;   // [B, H, S, D]
  torch::Tensor cross_values;
};

// Weights in MKL's packed layout for products with a fixed number of rows (model/packed_linear.h),
// keyed by the weight's data pointer. A decoding step multiplies every weight by one row per
// sequence, so the weights are packed once per generation instead of by MKL inside every product.
struct PackedWeights {
  struct Entry {
    torch::Tensor weight;  // the original ([N, K]): a view sharing its data pointer is not it
    torch::Tensor packed;
    int64_t version = 0;  // the weight's version counter when packed (in-place updates bump it)
  };
  int64_t rows = 0;
  std::unordered_map<const void*, Entry> packed;
};

class DecoderCache {
 public:
  std::vector<DecoderLayerCache> layers;
  KeyPadding encoder_padding;  // of the cross-attention keys
  // Set by a model's decode_step when packing pays (model/packed_linear.h); shared by copies.
  std::shared_ptr<const PackedWeights> packed_weights;
  // T5's decoder self-attention bias by query-key distance, [H, distances] float32, made by its
  // fused decoding step as far as the cache has grown (independent of the batch rows).
  torch::Tensor self_bias_by_distance;

  int64_t length() const { return length_; }  // decoder tokens already seen
  int64_t batch_size() const;
  // Appends [B, H, n, D] keys/values of `layer` at position length() and
  // returns views of all keys/values so far ([B, H, length() + n, D]).
  std::pair<torch::Tensor, torch::Tensor> append_self(size_t layer, const torch::Tensor& keys,
                                                      const torch::Tensor& values);
  // Makes `layer`'s self-attention buffers hold length() + n positions (keys [B, H, *, D] and
  // values [B, H, *, Dv] as key_shape and value_shape give B, H, D and Dv), keeping what they hold;
  // append_self calls it, and so do decoding steps that write the new rows themselves.
  void reserve_self(size_t layer, int64_t n, at::IntArrayRef key_shape, at::IntArrayRef value_shape,
                    const torch::TensorOptions& options);
  // Marks the n tokens appended to every layer as seen.
  void advance(int64_t n) { length_ += n; }
  // Beam search: row i of the cache becomes row rows[i] of the old cache.
  // Cross-attention rows are left alone when `same_source` says every row
  // keeps reading the same encoder output (beams of one input).
  void reorder(const torch::Tensor& rows, bool same_source);
  // Repeats each row `times` times (row-major, like repeat_interleave), e.g.
  // to turn one cache per input into one per beam.
  void repeat_interleave(int64_t times);

 private:
  int64_t length_ = 0;
};

struct DecoderOutput {
  torch::Tensor logits;  // [B, n, vocab]
  // On request: embedding output, each layer's output (the last after the
  // final norm for T5), num_layers + 1 entries of [B, n, d_model].
  std::vector<torch::Tensor> hidden_states;
};

struct Seq2SeqOutput {
  torch::Tensor logits;  // [B, T, vocab]
  EncoderOutput encoder;
  std::vector<torch::Tensor> decoder_hidden_states;
};

// Called on a stack's states as they flow: after the embedding (layer 0) and
// after each block l = 1..L (before the stack's final norm), with the states
// [B, n, d_model]; returns the states the stack continues with. Collaboration
// heads use it to add messages from other agents; the result is differentiable
// through the frozen model, so a head's parameters train through it.
using StateHook = std::function<torch::Tensor(int64_t layer, const torch::Tensor& states)>;

// A pretrained encoder-decoder. Parameters carry the reference's state-dict
// names (named_parameters() gives "encoder.block.0.layer.0.SelfAttention.q.weight").
// The computing methods are const: a frozen model can be shared read-only by
// several agents through a shared_ptr<const Seq2SeqModel>, each with its own
// DecoderCache. Dropout is not applied (models are used as frozen agents).
class Seq2SeqModel : public torch::nn::Module {
 public:
  explicit Seq2SeqModel(Seq2SeqConfig config);
  ~Seq2SeqModel() override = default;

  const Seq2SeqConfig& config() const { return config_; }
  ModelFamily family() const { return config_.family; }
  int64_t vocab_size() const { return config_.vocab_size; }

  // input_ids [B, S] int64; attention_mask [B, S] (0/1, any integer or bool
  // dtype) or undefined for no padding.
  // `hook` (optional) sees and may change the encoder's states (see StateHook).
  virtual EncoderOutput encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                               bool output_hidden_states = false, const StateHook& hook = {}) const = 0;
  // An empty cache whose cross-attention keys/values come from `encoder`.
  virtual DecoderCache start_decoding(const EncoderOutput& encoder) const = 0;
  // Runs the decoder on the next n tokens [B, n] (n = 1 when generating, or a
  // whole prefix), reading and extending `cache`. `hook` (optional) sees and
  // may change the decoder's states; their positions start at cache.length().
  virtual DecoderOutput decode_step(const torch::Tensor& decoder_input_ids, DecoderCache& cache,
                                    bool output_hidden_states = false, const StateHook& hook = {}) const = 0;
  // The token embedding matrix [vocab, d_model] (shared by encoder and decoder).
  virtual torch::Tensor token_embedding() const = 0;

  // Teacher-forced pass: encode, then decode all of decoder_input_ids at once.
  Seq2SeqOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& decoder_input_ids, bool output_hidden_states = false) const;

  // No gradients, eval mode, for good.
  void freeze();
  bool frozen() const { return frozen_; }

 protected:
  // Registers `tensor` under its dotted reference name (creating the nested
  // child modules) and returns it.
  torch::Tensor add_weight(const std::string& dotted_name, torch::Tensor tensor);

 private:
  Seq2SeqConfig config_;
  bool frozen_ = false;
};

struct LoadOptions {
  torch::Dtype dtype = torch::kFloat32;  // compute dtype the weights are converted to
  bool freeze = true;
};

// Reads config.json + weights from a Hugging Face folder (model.safetensors or
// a sharded index) or a Chorus HDF5 checkpoint, and builds the model of the
// config's model_type. Missing or unexpected tensors are one error listing them.
std::shared_ptr<Seq2SeqModel> load_seq2seq_model(const std::filesystem::path& folder_or_h5,
                                                 const LoadOptions& options = {});

}  // namespace chorus::model
