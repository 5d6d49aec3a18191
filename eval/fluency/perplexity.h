// Perplexity of texts under a reference seq2seq model (teacher forcing), with a bootstrap interval.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/metrics/significance.h"
#include "model/seq2seq_model.h"
#include "model/tokenizers/tokenizer.h"

namespace chorus::eval {

// The convention, chosen so that the figures equal Hugging Face's
// `model(input_ids=..., labels=...).loss` times the number of label tokens:
//  - each text is the decoder's target, tokenised as training targets are (tokenizer.encode with
//    special tokens: T5 appends </s>; BART wraps as <s> ... </s>); every one of those tokens is
//    predicted and counted, </s> included, so an empty text still scores its end of sequence;
//  - the decoder reads the target shifted right behind the model's decoder_start_token_id;
//  - the encoder reads the conditioning source tokenised the same way, the empty string by default
//    (the decoder then acts as a language model behind an encoder pass over "</s>");
//  - log-probabilities come from a float32 log-softmax over the logits; sums are in double.
// Segments are never truncated: one longer than the limit is an error naming it.
struct PerplexityOptions {
  int64_t batch_size = 32;  // segments per forward pass (sorted by length to limit padding)
  // Largest target (and source) length in tokens, special tokens included; 0: the model's own limit
  // (BART: max_position_embeddings; T5 has none, its positions are relative).
  int64_t max_tokens = 0;
  // Names the segments in errors: "<origin>:<1-based index>" (e.g. the file they came from);
  // empty: "segment <1-based index>".
  std::string origin;
  BootstrapParams bootstrap;  // the interval resamples segments and recomputes exp(sum nll / sum tokens)
};

struct PerplexityResult {
  std::vector<double> nll;      // per segment: the summed negative log-likelihood in nats
  std::vector<int64_t> tokens;  // per segment: the predicted tokens
  double total_nll = 0;
  int64_t total_tokens = 0;
  double perplexity = 0;        // exp(total_nll / total_tokens)
  ConfidenceInterval interval;  // bootstrap over segments; interval.score == perplexity
};

// Token-level scoring: the (source, target) id sequences as given (no special tokens added), one
// source per target. Errors (chorus::Error): no targets, an empty target or source, sources and
// targets of different counts, a sequence over the length limit, an id outside the vocabulary.
PerplexityResult sequence_perplexity(const model::Seq2SeqModel& model,
                                     const std::vector<std::vector<int64_t>>& targets,
                                     const std::vector<std::vector<int64_t>>& sources, int64_t pad_id,
                                     const PerplexityOptions& options = {});

// Text-level scoring with the model's tokenizer (see the convention above). `sources` empty: the
// empty source for every text; otherwise one per text.
PerplexityResult text_perplexity(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                                 const std::vector<std::string>& texts,
                                 const std::vector<std::string>& sources = {},
                                 const PerplexityOptions& options = {});

// exp(nll / tokens) with the interval of resampled segments; shared by both entry points.
PerplexityResult summarize_perplexity(std::vector<double> nll, std::vector<int64_t> tokens,
                                      const BootstrapParams& bootstrap);

}  // namespace chorus::eval
