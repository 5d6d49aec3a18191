// The decoding loops behind generate(): one per search strategy.
#pragma once

#include "model/generation/generate.h"
#include "model/generation/logits_processors.h"

namespace chorus::model {

// Everything resolved from GenerationOptions and the model config.
struct SearchSetup {
  LogitsProcessing processing;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = 0;
  int64_t decoder_start_token_id = 0;
  int64_t max_length = 0;
};

// Greedy (argmax) or, with options.do_sample, multinomial sampling; the
// reference's _sample loop.
GenerationResult greedy_or_sample_search(const Seq2SeqModel& model, const EncoderOutput& encoder,
                                         const GenerationOptions& options, const SearchSetup& setup);

// The reference's vectorised beam search (transformers >= 4.50), step for step; with
// options.do_sample, its beam sampling.
GenerationResult beam_search(const Seq2SeqModel& model, const EncoderOutput& encoder,
                             const GenerationOptions& options, const SearchSetup& setup);

}  // namespace chorus::model
