// N-gram keys, counts and overlaps shared by BLEU, chrF and ROUGE.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chorus::eval {

// An n-gram packed into 128 bits: up to 4 token ids of 32 bits, or up to 6
// code points of 21 bits. Keys of different orders are kept in separate lists.
using NgramKey = unsigned __int128;

struct NgramCount {
  NgramKey key;
  std::uint32_t count;
};

// Sorts `keys` and collapses them into (key, count) runs, sorted by key.
std::vector<NgramCount> count_ngrams(std::vector<NgramKey>& keys);

// Sum over shared keys of min(count in a, count in b): the clipped matches.
std::uint64_t clipped_overlap(const std::vector<NgramCount>& a, const std::vector<NgramCount>& b);

// For several references: each key with its largest count over the lists.
std::vector<NgramCount> max_counts(const std::vector<std::vector<NgramCount>>& lists);

// Keys of all n-grams of order `n` over ids packed `bits` bits apart.
void ngram_keys(const std::vector<std::uint32_t>& ids, int n, int bits, std::vector<NgramKey>& out);

// Maps tokens of one scoring unit (a segment and its references) to small ids.
template <typename View>
class TokenInterner {
 public:
  std::uint32_t id(View token) {
    auto [it, inserted] = ids_.try_emplace(token, static_cast<std::uint32_t>(ids_.size()));
    return it->second;
  }
  void clear() { ids_.clear(); }

 private:
  std::unordered_map<View, std::uint32_t> ids_;
};

}  // namespace chorus::eval
