// Agents trained from scratch on text pairs (e.g. a Multi30k English->German translator) or on running
// text as a language model (the lm data format): a SentencePiece vocabulary and a small T5, published
// as an agent folder that experiments load and freeze.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/config.h"
#include "eval/fluency/perplexity.h"
#include "model/t5/t5_init.h"
#include "train/data/batching.h"
#include "train/data/text_pairs.h"
#include "train/trainer.h"

namespace chorus::train {

struct SentencePieceOptions {
  std::string model_type = "unigram";  // unigram | bpe
  int64_t vocab_size = 8000;           // pieces, the special ones included (T5's 100 sentinels come on top)
  double character_coverage = 1.0;
  int64_t max_sentences = 2000000;     // sentences the trainer samples from the input
  uint64_t seed = 0;
};

// Trains a joint SentencePiece model on `sentences` and writes it to `model_file` (spiece.model),
// with T5's special ids: <pad> 0, </s> 1, <unk> 2 and no <s>. The vocabulary size is a soft limit:
// a corpus too small for it gives fewer pieces instead of failing.
void train_sentencepiece(const std::vector<std::string>& sentences, const SentencePieceOptions& options,
                         const std::filesystem::path& model_file);

struct TextAgentSpec {
  std::string name = "agent";
  TextPairSource train_data;
  TextPairSource valid_data;
  TextPairOptions load;         // max_examples applies to the training split only
  int64_t max_length = 128;     // tokens per side, </s> included
  OverLength over_length = OverLength::truncate;
  SentencePieceOptions tokenizer;
  model::T5Shape shape;         // vocab_size comes from the trained tokenizer
  TrainerOptions trainer;       // best_metric: "bleu" (higher is better); lm: "ppl" (lower is better)
  BucketingOptions batching;
  // The first N validation pairs: decoded greedily for BLEU, or (lm) scored for perplexity.
  int64_t eval_examples = 500;
  int64_t eval_batch_size = 64;
  int64_t eval_max_new_tokens = 0;  // 0: max_length
  uint64_t seed = 0;

  // Whether the agent is a language model (data.format lm): evaluated by validation perplexity
  // (eval/fluency/perplexity.h, teacher forcing, </s> counted) instead of BLEU.
  bool language_model() const { return train_data.format == TextPairFormat::lm; }

  // A stable digest of the spec and the data files (names, sizes, contents; not their folders or
  // time stamps): the agent cache's key, and a training run in the work folder is resumed only
  // under the same fingerprint.
  std::string fingerprint() const;
};

// Reads a `chorus pretrain` config for a text agent from its root: seed, name, data{format, train,
// valid, max_examples, max_length, over_length, skip_empty, strip, and for lm chunk_words, prompt},
// tokenizer{type, vocab_size, character_coverage, max_sentences}, agent{model{...}, train{...,
// batch_size | max_tokens, pool_batches}, eval_examples, eval_batch_size, eval_max_new_tokens}.
// See docs/DATA.md.
TextAgentSpec read_text_agent(const ConfigView& root);

struct TextPretrainResult {
  std::filesystem::path folder;  // model.h5 + spiece.model + pretrain.json
  double seconds = 0;            // wall time of this call (data, tokenizer, training, evaluation)
  double bleu = 0;               // corpus BLEU of the best checkpoint on the evaluation subset (0 for lm)
  double perplexity = 0;         // lm: validation perplexity of the best checkpoint (0 otherwise)
  int64_t eval_tokens = 0;       // lm: the tokens that perplexity averages over
  int64_t steps = 0;
  int64_t train_examples = 0;    // after skipping and the length limit
  LengthLimitStats length_limit;
  std::vector<double> losses;    // per step run by this call
};

// Loads the data, trains the tokenizer and the model in `work_folder` (resumable: tokenizer and
// run are reused there when the fingerprint matches and `resume`), evaluates the best checkpoint and
// publishes model.h5, spiece.model and pretrain.json into `folder` atomically (a rename).
TextPretrainResult pretrain_text_agent(const TextAgentSpec& spec, const std::filesystem::path& folder,
                                       const std::filesystem::path& work_folder, bool resume);

// Perplexity of `pairs`' targets given their sources (teacher forcing; see eval/fluency/perplexity.h).
eval::PerplexityResult validation_perplexity(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                                             const std::vector<TextPair>& pairs, int64_t batch_size);

// Corpus BLEU (sacrebleu defaults) of greedy translations of `pairs`' sources against their targets.
double greedy_bleu(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                   const std::vector<TextPair>& pairs, int64_t batch_size, int64_t max_new_tokens);

}  // namespace chorus::train
