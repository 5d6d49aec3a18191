// What generate() does: search strategy, lengths, logits processing and what it returns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "model/seq2seq_model.h"

namespace chorus::model {

// Beam search's stopping rule, as the reference's early_stopping: false (a
// heuristic: stop when the best running beam, at its current length, cannot
// beat the worst finished one), true (stop once num_beams hypotheses are
// finished), "never" (the canonical rule, using the best possible length).
enum class EarlyStopping { heuristic, when_full, never };

// Defaults are the reference's (transformers' GenerationConfig).
struct GenerationOptions {
  // Decoder length limit, start token included; max_new_tokens (when >= 0) wins.
  int64_t max_length = 20;
  int64_t max_new_tokens = -1;
  int64_t min_length = 0;      // EOS is banned while the decoder sequence is shorter
  int64_t min_new_tokens = 0;  // EOS is banned until this many tokens are generated

  int64_t num_beams = 1;
  double length_penalty = 1.0;  // beam scores are sum(log p) / length^length_penalty
  EarlyStopping early_stopping = EarlyStopping::heuristic;
  int64_t num_return_sequences = 1;  // per input; at most num_beams with beam search

  // Sampling; with num_beams > 1, beam sampling (the reference's beam search
  // drawing its 2 * num_beams candidates by multinomial sampling).
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;   // 0: off
  double top_p = 1.0;   // 1: off
  uint64_t seed = 0;    // seeds the torch::Generator of sampling

  // Tokens already in the decoder sequence get score < 0 ? score * p : score / p
  // (CTRL's penalty, the reference's RepetitionPenaltyLogitsProcessor); 1: off.
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;  // no n-gram of this size occurs twice in the decoder sequence; 0: off
  std::optional<int64_t> forced_bos_token_id;
  std::optional<int64_t> forced_eos_token_id;

  // Special tokens; unset means the model config's.
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> pad_token_id;
  std::optional<int64_t> decoder_start_token_id;

  bool output_hidden_states = false;  // decoder hidden states of every step
};

// The model's own generation defaults, as the reference reads them: the
// generation fields of `model_path`/generation_config.json when it exists,
// else those of config.json (`model_path` may also be a Chorus HDF5
// checkpoint, whose config is used). Fields absent from both keep the
// reference defaults above. A checkpoint converted from a folder carries that
// folder's generation_config.json, which is then read as in the folder.
GenerationOptions load_generation_defaults(const std::filesystem::path& model_path, const Seq2SeqConfig& config);

// Fills the generation fields present in `json` (a generation_config.json or
// config.json object) into `options`; `where` names the file in errors.
void apply_generation_fields(const nlohmann::json& json, const std::string& where, GenerationOptions& options);

// Throws chorus::Error naming the first option out of range.
void check_generation_options(const GenerationOptions& options, const Seq2SeqConfig& config);

}  // namespace chorus::model
