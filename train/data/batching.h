// Length bucketing of a tokenized data set into batches under a token budget, and padding id rows
// into a model::TokenBatch.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "collab/agent.h"

namespace chorus::train {

// A data set tokenized once: source and target ids of each example (with the tokenizer's </s>).
struct TokenizedPairs {
  std::vector<std::vector<int64_t>> sources;
  std::vector<std::vector<int64_t>> targets;
  size_t size() const { return sources.size(); }
  // fairseq's convention for batching by tokens: an example costs max(source, target) tokens.
  std::vector<int64_t> lengths() const;
};

enum class OverLength { truncate, drop };

struct LengthLimitStats {
  int64_t truncated = 0;  // examples cut to max_length (either side)
  int64_t dropped = 0;    // examples removed
};

// Applies max_length (tokens, </s> included) to both sides: truncation keeps the first
// max_length - 1 tokens and ends the row with `eos_id` again; drop removes the example.
LengthLimitStats limit_lengths(TokenizedPairs& data, int64_t max_length, OverLength mode, int64_t eos_id);

struct BucketingOptions {
  int64_t batch_size = 0;     // at most this many examples a batch; 0: no limit (max_tokens decides)
  int64_t max_tokens = 0;     // at most this many padded tokens a batch (rows x longest example); 0: no limit
  int64_t pool_batches = 100; // examples are sorted by length within pools of about this many batches
};

// The batches (example indices) of one epoch: the examples in an order drawn from (seed, epoch),
// cut into pools of about pool_batches batches, each pool sorted by length and cut greedily into
// batches within the limits, then all batches shuffled (again from (seed, epoch)). Every example
// appears in exactly one batch. An example longer than max_tokens on its own is a chorus::Error;
// at least one of batch_size and max_tokens must be set.
std::vector<std::vector<int64_t>> make_length_buckets(const std::vector<int64_t>& lengths,
                                                      const BucketingOptions& options, uint64_t seed, int64_t epoch);

// The endless stream of batches over epochs 0, 1, 2, ...: batch number `index` (0-based, counted over
// all epochs) as a pure function of (lengths, options, seed, index), so a resumed run sees the batches
// of the uninterrupted one. Keeps the batch counts of the epochs walked and the batches of one epoch.
class EpochBatches {
 public:
  EpochBatches(std::vector<int64_t> lengths, BucketingOptions options, uint64_t seed);
  struct Batch {
    int64_t epoch = 0;
    std::vector<int64_t> examples;
  };
  Batch batch(int64_t index);

 private:
  std::vector<int64_t> lengths_;
  BucketingOptions options_;
  uint64_t seed_;
  std::mutex mutex_;
  std::vector<int64_t> epoch_starts_;  // first global index of epochs 0..n (n+1 entries once epoch n is known)
  int64_t cached_epoch_ = -1;
  std::vector<std::vector<int64_t>> cached_;
};

// Right-pads `rows` with `fill` into an int64 [rows, longest] tensor (width at least 1); `mask`, when
// given, receives 1 at tokens and 0 at padding.
torch::Tensor pad_id_rows(const std::vector<const std::vector<int64_t>*>& rows, int64_t fill,
                          torch::Tensor* mask = nullptr);

// The TokenBatch of `examples`: inputs padded with `pad_id`, labels padded with -100 (what
// model::tokenize_batch makes from text, without tokenizing again).
model::TokenBatch make_token_batch(const TokenizedPairs& data, const std::vector<int64_t>& examples, int64_t pad_id);

}  // namespace chorus::train
