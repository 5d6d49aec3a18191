#include "eval/metrics/diversity.h"

#include <unordered_set>

#include "common/error.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

// N-grams as the words joined by a space (words hold no whitespace).
std::vector<std::u32string> ngrams_of(const std::string& output, int n) {
  const std::u32string text = decode_utf8(output, "output");
  const auto words = python_split(text);
  std::vector<std::u32string> grams;
  for (std::size_t i = 0; i + n <= words.size(); ++i) {
    std::u32string gram;
    for (int k = 0; k < n; ++k) {
      if (k > 0) gram.push_back(U' ');
      gram.append(words[i + k]);
    }
    grams.push_back(std::move(gram));
  }
  return grams;
}

}  // namespace

double distinct_n(const std::vector<std::string>& outputs, int n) {
  CHORUS_CHECK(n >= 1, "distinct-n: n must be positive, got ", n);
  std::unordered_set<std::u32string> distinct;
  std::size_t total = 0;
  for (const auto& output : outputs) {
    for (auto& gram : ngrams_of(output, n)) {
      distinct.insert(std::move(gram));
      ++total;
    }
  }
  return total == 0 ? 0.0 : static_cast<double>(distinct.size()) / total;
}

double repetition_rate(const std::vector<std::string>& outputs, int n) {
  CHORUS_CHECK(n >= 1, "repetition rate: n must be positive, got ", n);
  CHORUS_CHECK(!outputs.empty(), "repetition rate: no outputs (expected at least one)");
  double sum = 0.0;
  for (const auto& output : outputs) {
    const auto grams = ngrams_of(output, n);
    if (grams.empty()) continue;
    const std::unordered_set<std::u32string> distinct(grams.begin(), grams.end());
    sum += 1.0 - static_cast<double>(distinct.size()) / grams.size();
  }
  return sum / outputs.size();
}

}  // namespace chorus::eval
