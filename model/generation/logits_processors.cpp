// Logits processors, each written to match the reference's tensor operations.
#include "model/generation/logits_processors.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <map>

namespace chorus::model {
namespace {

constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

void ban_eos_(torch::Tensor& scores, const std::vector<int64_t>& eos_token_ids) {
  for (auto id : eos_token_ids) scores.select(1, id).fill_(kMinusInfinity);
}

void force_token_(torch::Tensor& scores, int64_t token) {
  scores.fill_(kMinusInfinity);
  scores.select(1, token).fill_(0.0);
}

// The reference's gather / where / scatter: a token present several times is penalised once.
void penalize_repetitions_(torch::Tensor& scores, const torch::Tensor& sequences, double penalty) {
  auto seen = torch::gather(scores, 1, sequences);
  seen = torch::where(seen < 0, seen * penalty, seen / penalty);
  scores.scatter_(1, sequences, seen);
}

void ban_repeated_ngrams_(torch::Tensor& scores, const torch::Tensor& sequences, int64_t n) {
  const int64_t cur_len = sequences.size(1);
  if (cur_len + 1 < n) return;
  auto tokens = sequences.contiguous();
  const auto* ids = tokens.data_ptr<int64_t>();
  for (int64_t row = 0; row < tokens.size(0); ++row) {
    const int64_t* seq = ids + row * cur_len;
    // The tokens that followed each earlier occurrence of the last n-1 tokens.
    const int64_t* tail = seq + cur_len - (n - 1);
    for (int64_t start = 0; start + n <= cur_len; ++start) {
      if (std::equal(seq + start, seq + start + n - 1, tail)) {
        scores[row][seq[start + n - 1]] = kMinusInfinity;
      }
    }
  }
}

void keep_top_k_(torch::Tensor& scores, int64_t top_k, int64_t min_tokens_to_keep) {
  const int64_t k = std::min(std::max(top_k, min_tokens_to_keep), scores.size(-1));
  auto kth = std::get<0>(torch::topk(scores, k)).narrow(-1, k - 1, 1);
  scores.masked_fill_(scores < kth, kMinusInfinity);
}

void keep_top_p_(torch::Tensor& scores, double top_p, int64_t min_tokens_to_keep) {
  auto [sorted_logits, sorted_indices] = torch::sort(scores, /*dim=*/-1, /*descending=*/false);
  auto cumulative = sorted_logits.softmax(-1).cumsum(-1);
  auto remove = cumulative <= (1.0 - top_p);
  remove.narrow(-1, remove.size(-1) - min_tokens_to_keep, min_tokens_to_keep).fill_(false);
  auto to_remove = remove.scatter(1, sorted_indices, remove);
  scores.masked_fill_(to_remove, kMinusInfinity);
}

}  // namespace

torch::Tensor penalize_repetitions(const torch::Tensor& scores, const torch::Tensor& sequences, double penalty) {
  auto out = scores.clone();
  penalize_repetitions_(out, sequences, penalty);
  return out;
}

torch::Tensor ban_repeated_ngrams(const torch::Tensor& scores, const torch::Tensor& sequences, int64_t n) {
  auto out = scores.clone();
  ban_repeated_ngrams_(out, sequences, n);
  return out;
}

torch::Tensor keep_top_k(const torch::Tensor& scores, int64_t top_k, int64_t min_tokens_to_keep) {
  auto out = scores.clone();
  keep_top_k_(out, top_k, min_tokens_to_keep);
  return out;
}

torch::Tensor keep_top_p(const torch::Tensor& scores, double top_p, int64_t min_tokens_to_keep) {
  auto out = scores.clone();
  keep_top_p_(out, top_p, min_tokens_to_keep);
  return out;
}

void process_logits_in_place(torch::Tensor& out, const torch::Tensor& sequences, const LogitsProcessing& p) {
  const int64_t cur_len = sequences.size(1);
  if (p.repetition_penalty != 1.0) penalize_repetitions_(out, sequences, p.repetition_penalty);
  if (p.no_repeat_ngram_size > 0) ban_repeated_ngrams_(out, sequences, p.no_repeat_ngram_size);
  if (p.min_length > 0 && !p.eos_token_ids.empty() && cur_len < p.min_length) ban_eos_(out, p.eos_token_ids);
  if (p.min_new_tokens > 0 && !p.eos_token_ids.empty() && cur_len - p.prompt_length < p.min_new_tokens) {
    ban_eos_(out, p.eos_token_ids);
  }
  if (p.forced_bos_token_id >= 0 && cur_len == 1) force_token_(out, p.forced_bos_token_id);
  if (p.forced_eos_token_id >= 0 && cur_len == p.max_length - 1) force_token_(out, p.forced_eos_token_id);
  if (p.sample) {
    if (p.temperature != 1.0) out.div_(p.temperature);
    if (p.top_k != 0) keep_top_k_(out, p.top_k, p.min_tokens_to_keep);
    if (p.top_p < 1.0) keep_top_p_(out, p.top_p, p.min_tokens_to_keep);
  }
}

torch::Tensor process_logits(const torch::Tensor& scores, const torch::Tensor& sequences,
                             const LogitsProcessing& p) {
  auto out = scores.clone();
  process_logits_in_place(out, sequences, p);
  return out;
}

}  // namespace chorus::model
