// The reference's logits processors and sampling warpers, applied in its order.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "model/generation/generation_options.h"

namespace chorus::model {

// Everything the processors need, resolved once per generate() call.
struct LogitsProcessing {
  int64_t max_length = 0;  // resolved decoder length limit (start token included)
  int64_t min_length = 0;
  int64_t min_new_tokens = 0;
  int64_t prompt_length = 1;  // decoder prompt (the start token)
  double repetition_penalty = 1.0;
  int64_t no_repeat_ngram_size = 0;
  int64_t forced_bos_token_id = -1;
  int64_t forced_eos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  // Sampling warpers (only when sampling).
  bool sample = false;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  int64_t min_tokens_to_keep = 1;  // 1 for sampling; 1 + the number of EOS ids for beam sampling
};

// Processes `scores` [rows, vocab] (float32 logits or log-probabilities) given
// the decoder tokens so far `sequences` [rows, cur_len], like the reference's
// list: repetition penalty, no-repeat-ngram, min length, min new tokens, forced BOS, forced EOS,
// then (sampling) temperature, top-k, top-p. Returns a new tensor.
torch::Tensor process_logits(const torch::Tensor& scores, const torch::Tensor& sequences,
                             const LogitsProcessing& processing);
// The same, writing into `scores` (float32, one row per sequence): the decoding loops own their
// scores, and a copy of every row of the vocabulary per step showed in profiles. Untouched when
// no processor applies at this step.
void process_logits_in_place(torch::Tensor& scores, const torch::Tensor& sequences,
                             const LogitsProcessing& processing);

// Each step in isolation (exposed for tests).
torch::Tensor penalize_repetitions(const torch::Tensor& scores, const torch::Tensor& sequences, double penalty);
torch::Tensor ban_repeated_ngrams(const torch::Tensor& scores, const torch::Tensor& sequences, int64_t ngram_size);
torch::Tensor keep_top_k(const torch::Tensor& scores, int64_t top_k, int64_t min_tokens_to_keep);
torch::Tensor keep_top_p(const torch::Tensor& scores, double top_p, int64_t min_tokens_to_keep);

}  // namespace chorus::model
