// Length bucketing and padding of tokenized examples.
#include "train/data/batching.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "common/error.h"

namespace chorus::train {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A small generator of our own, so that the order is the same with every standard library
// (std::shuffle and the std distributions are implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++); }
  // Uniform in [0, n) by rejection (no modulo bias).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<size_t>(below(i))]);
  }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<int64_t> TokenizedPairs::lengths() const {
  std::vector<int64_t> out(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    out[i] = static_cast<int64_t>(std::max(sources[i].size(), targets[i].size()));
  }
  return out;
}

LengthLimitStats limit_lengths(TokenizedPairs& data, int64_t max_length, OverLength mode, int64_t eos_id) {
  CHORUS_CHECK(max_length >= 2, "max_length must be at least 2 tokens (one token and </s>), got ", max_length);
  CHORUS_CHECK(data.sources.size() == data.targets.size(), "limit_lengths: ", data.sources.size(), " sources but ",
               data.targets.size(), " targets");
  LengthLimitStats stats;
  const auto limit = static_cast<size_t>(max_length);
  TokenizedPairs kept;
  for (size_t i = 0; i < data.sources.size(); ++i) {
    auto& s = data.sources[i];
    auto& t = data.targets[i];
    if (s.size() <= limit && t.size() <= limit) {
      kept.sources.push_back(std::move(s));
      kept.targets.push_back(std::move(t));
      continue;
    }
    if (mode == OverLength::drop) {
      ++stats.dropped;
      continue;
    }
    ++stats.truncated;
    for (auto* row : {&s, &t}) {
      if (row->size() > limit) {
        row->resize(limit);
        row->back() = eos_id;
      }
    }
    kept.sources.push_back(std::move(s));
    kept.targets.push_back(std::move(t));
  }
  data = std::move(kept);
  return stats;
}

std::vector<std::vector<int64_t>> make_length_buckets(const std::vector<int64_t>& lengths,
                                                      const BucketingOptions& options, uint64_t seed, int64_t epoch) {
  CHORUS_CHECK(options.batch_size > 0 || options.max_tokens > 0,
               "length bucketing needs batch_size or max_tokens (both are 0)");
  CHORUS_CHECK(options.batch_size >= 0 && options.max_tokens >= 0 && options.pool_batches >= 1,
               "length bucketing: batch_size and max_tokens must be >= 0 and pool_batches >= 1");
  std::vector<std::vector<int64_t>> batches;
  if (lengths.empty()) return batches;
  Rng rng(splitmix64(seed ^ 0x6A09E667F3BCC908ULL) + static_cast<uint64_t>(epoch) * 0x9E3779B97F4A7C15ULL);
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  rng.shuffle(order);

  // Examples a batch holds, roughly: what decides the size of a pool.
  int64_t per_batch = options.batch_size;
  if (options.max_tokens > 0) {
    const double mean =
        std::max(1.0, static_cast<double>(std::accumulate(lengths.begin(), lengths.end(), int64_t{0})) /
                          static_cast<double>(lengths.size()));
    const auto by_tokens = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(options.max_tokens) / mean));
    per_batch = per_batch > 0 ? std::min(per_batch, by_tokens) : by_tokens;
  }
  const auto pool = static_cast<size_t>(std::max<int64_t>(1, per_batch * options.pool_batches));

  for (size_t begin = 0; begin < order.size(); begin += pool) {
    const size_t end = std::min(order.size(), begin + pool);
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(begin), order.begin() + static_cast<std::ptrdiff_t>(end),
                     [&](int64_t a, int64_t b) { return lengths[static_cast<size_t>(a)] < lengths[static_cast<size_t>(b)]; });
    std::vector<int64_t> batch;
    int64_t longest = 0;
    for (size_t k = begin; k < end; ++k) {
      const int64_t index = order[k];
      const int64_t length = lengths[static_cast<size_t>(index)];
      CHORUS_CHECK(options.max_tokens == 0 || length <= options.max_tokens, "example ", index, " has ", length,
                   " tokens, more than max_tokens = ", options.max_tokens,
                   " (raise max_tokens or lower the data's max_length)");
      const int64_t widest = std::max(longest, length);
      const auto rows = static_cast<int64_t>(batch.size()) + 1;
      const bool full = (options.batch_size > 0 && rows > options.batch_size) ||
                        (options.max_tokens > 0 && rows * widest > options.max_tokens);
      if (full && !batch.empty()) {
        batches.push_back(std::move(batch));
        batch.clear();
        longest = 0;
      }
      batch.push_back(index);
      longest = std::max(longest, length);
    }
    if (!batch.empty()) batches.push_back(std::move(batch));
  }
  rng.shuffle(batches);
  return batches;
}

EpochBatches::EpochBatches(std::vector<int64_t> lengths, BucketingOptions options, uint64_t seed)
    : lengths_(std::move(lengths)), options_(options), seed_(seed), epoch_starts_{0} {
  CHORUS_CHECK(!lengths_.empty(), "no training examples to batch");
}

EpochBatches::Batch EpochBatches::batch(int64_t index) {
  CHORUS_CHECK(index >= 0, "batch index ", index, " is negative");
  std::lock_guard<std::mutex> lock(mutex_);
  // Walk the epochs until one holds `index`; batch counts vary a little between epochs.
  int64_t epoch = 0;
  for (;;) {
    if (static_cast<size_t>(epoch) + 1 >= epoch_starts_.size()) {
      const auto batches = make_length_buckets(lengths_, options_, seed_, epoch);
      epoch_starts_.push_back(epoch_starts_.back() + static_cast<int64_t>(batches.size()));
      cached_epoch_ = epoch;
      cached_ = batches;
    }
    if (index < epoch_starts_[static_cast<size_t>(epoch) + 1]) break;
    ++epoch;
  }
  if (cached_epoch_ != epoch) {
    cached_ = make_length_buckets(lengths_, options_, seed_, epoch);
    cached_epoch_ = epoch;
  }
  return {epoch, cached_[static_cast<size_t>(index - epoch_starts_[static_cast<size_t>(epoch)])]};
}

torch::Tensor pad_id_rows(const std::vector<const std::vector<int64_t>*>& rows, int64_t fill, torch::Tensor* mask) {
  size_t width = 1;
  for (const auto* r : rows) width = std::max(width, r->size());
  auto ids = torch::full({static_cast<int64_t>(rows.size()), static_cast<int64_t>(width)}, fill, torch::kInt64);
  auto m = torch::zeros_like(ids);
  auto a = ids.accessor<int64_t, 2>();
  auto am = m.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i]->size(); ++j) {
      a[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = (*rows[i])[j];
      am[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = 1;
    }
  }
  if (mask != nullptr) *mask = m;
  return ids;
}

model::TokenBatch make_token_batch(const TokenizedPairs& data, const std::vector<int64_t>& examples, int64_t pad_id) {
  CHORUS_CHECK(!examples.empty(), "make_token_batch: an empty batch");
  std::vector<const std::vector<int64_t>*> sources, targets;
  for (const auto i : examples) {
    CHORUS_CHECK(i >= 0 && static_cast<size_t>(i) < data.size(), "make_token_batch: example ", i,
                 " is out of range (", data.size(), " examples)");
    sources.push_back(&data.sources[static_cast<size_t>(i)]);
    targets.push_back(&data.targets[static_cast<size_t>(i)]);
  }
  model::TokenBatch batch;
  batch.input_ids = pad_id_rows(sources, pad_id, &batch.attention_mask);
  batch.labels = pad_id_rows(targets, -100);
  return batch;
}

}  // namespace chorus::train
