#include "eval/metrics/ngram_counts.h"

#include <algorithm>

namespace chorus::eval {

std::vector<NgramCount> count_ngrams(std::vector<NgramKey>& keys) {
  std::sort(keys.begin(), keys.end());
  std::vector<NgramCount> counts;
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i + 1;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    counts.push_back({keys[i], static_cast<std::uint32_t>(j - i)});
    i = j;
  }
  return counts;
}

std::uint64_t clipped_overlap(const std::vector<NgramCount>& a, const std::vector<NgramCount>& b) {
  std::uint64_t overlap = 0;
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i].key < b[j].key) {
      ++i;
    } else if (b[j].key < a[i].key) {
      ++j;
    } else {
      overlap += std::min(a[i].count, b[j].count);
      ++i, ++j;
    }
  }
  return overlap;
}

std::vector<NgramCount> max_counts(const std::vector<std::vector<NgramCount>>& lists) {
  if (lists.size() == 1) return lists.front();
  std::vector<NgramCount> all;
  for (const auto& list : lists) all.insert(all.end(), list.begin(), list.end());
  std::sort(all.begin(), all.end(), [](const NgramCount& x, const NgramCount& y) { return x.key < y.key; });
  std::vector<NgramCount> merged;
  for (const auto& entry : all) {
    if (!merged.empty() && merged.back().key == entry.key) {
      merged.back().count = std::max(merged.back().count, entry.count);
    } else {
      merged.push_back(entry);
    }
  }
  return merged;
}

void ngram_keys(const std::vector<std::uint32_t>& ids, int n, int bits, std::vector<NgramKey>& out) {
  out.clear();
  if (ids.size() < static_cast<std::size_t>(n)) return;
  out.reserve(ids.size() - n + 1);
  // A rolling key: shift in the next id and mask off the one that left.
  const int width = n * bits;
  const NgramKey mask = width >= 128 ? ~NgramKey{0} : (NgramKey{1} << width) - 1;
  NgramKey key = 0;
  for (int k = 0; k < n - 1; ++k) key = (key << bits) | ids[k];
  for (std::size_t i = static_cast<std::size_t>(n) - 1; i < ids.size(); ++i) {
    key = ((key << bits) | ids[i]) & mask;
    out.push_back(key);
  }
}

}  // namespace chorus::eval
