// Padded batches of token ids for seq2seq models.
#include "model/tokenizers/token_batch.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"

namespace chorus::model {

TokenBatch tokenize_batch(const model::Tokenizer& tokenizer, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& targets) {
  CHORUS_CHECK(!inputs.empty(), "tokenize_batch: an empty batch");
  CHORUS_CHECK(targets.empty() || targets.size() == inputs.size(),
               "tokenize_batch: ", inputs.size(), " inputs but ", targets.size(), " targets");
  auto pad = [](const std::vector<std::vector<int64_t>>& rows, int64_t fill, torch::Tensor* mask) {
    size_t width = 1;
    for (const auto& r : rows) width = std::max(width, r.size());
    auto ids = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, fill,
                           torch::kInt64);
    auto m = torch::zeros_like(ids);
    auto a = ids.accessor<int64_t, 2>();
    auto am = m.accessor<int64_t, 2>();
    for (size_t i = 0; i < rows.size(); ++i) {
      for (size_t j = 0; j < rows[i].size(); ++j) {
        a[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = rows[i][j];
        am[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = 1;
      }
    }
    if (mask != nullptr) *mask = m;
    return ids;
  };
  std::vector<std::vector<int64_t>> in, out;
  in.reserve(inputs.size());
  for (const auto& text : inputs) in.push_back(tokenizer.encode(text));
  for (const auto& text : targets) out.push_back(tokenizer.encode(text));
  TokenBatch batch;
  batch.input_ids = pad(in, tokenizer.pad_id(), &batch.attention_mask);
  if (!out.empty()) batch.labels = pad(out, -100, nullptr);
  return batch;
}

}  // namespace chorus::model
