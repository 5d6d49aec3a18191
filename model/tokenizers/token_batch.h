// TokenBatch: texts tokenized into one right-padded batch of ids (and labels) for a seq2seq model.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "model/tokenizers/tokenizer.h"

namespace chorus::model {

// A padded batch of token ids (right padding with the tokenizer's pad id).
struct TokenBatch {
  torch::Tensor input_ids;       // [B, S] int64
  torch::Tensor attention_mask;  // [B, S] int64, 1 = token
  torch::Tensor
      labels;  // [B, T] int64 targets ending with </s>, -100 at padding; undefined without targets
};
// Tokenizes `inputs` (and `targets` when given, one per input) with the tokenizer's special tokens.
TokenBatch tokenize_batch(const Tokenizer& tokenizer, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& targets = {});

}  // namespace chorus::model
