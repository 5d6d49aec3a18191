#include "eval/metrics/answer_match.h"

#include <algorithm>
#include <unordered_map>

#include "common/error.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

bool is_ascii_punctuation(char32_t c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

bool is_article(std::u32string_view word) { return word == U"a" || word == U"an" || word == U"the"; }

std::vector<std::string> normalized_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  const std::string normalized = normalize_answer(text);
  std::size_t start = 0;
  while (start < normalized.size()) {
    std::size_t end = normalized.find(' ', start);
    if (end == std::string::npos) end = normalized.size();
    if (end > start) tokens.push_back(normalized.substr(start, end - start));
    start = end + 1;
  }
  return tokens;
}

}  // namespace

std::string normalize_answer(std::string_view text) {
  std::u32string lowered = python_lower(decode_utf8(text, "answer"));
  std::u32string no_punctuation;
  for (char32_t c : lowered) {
    if (!is_ascii_punctuation(c)) no_punctuation.push_back(c);
  }
  // \b(a|an|the)\b matches exactly the word-character runs equal to an article.
  std::u32string no_articles;
  for (std::size_t i = 0; i < no_punctuation.size();) {
    if (!is_python_word_char(no_punctuation[i])) {
      no_articles.push_back(no_punctuation[i++]);
      continue;
    }
    std::size_t end = i;
    while (end < no_punctuation.size() && is_python_word_char(no_punctuation[end])) ++end;
    const std::u32string_view word(no_punctuation.data() + i, end - i);
    if (is_article(word)) {
      no_articles.push_back(U' ');
    } else {
      no_articles.append(word);
    }
    i = end;
  }
  std::u32string joined;
  for (auto word : python_split(no_articles)) {
    if (!joined.empty()) joined.push_back(U' ');
    joined.append(word);
  }
  return encode_utf8(joined);
}

double exact_match(std::string_view prediction, std::string_view gold) {
  return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

double token_f1(std::string_view prediction, std::string_view gold) {
  const auto pred = normalized_tokens(prediction);
  const auto ref = normalized_tokens(gold);
  if (pred.empty() || ref.empty()) return pred == ref ? 1.0 : 0.0;
  std::unordered_map<std::string, long> ref_counts;
  for (const auto& t : ref) ++ref_counts[t];
  long same = 0;
  for (const auto& t : pred) {
    auto it = ref_counts.find(t);
    if (it != ref_counts.end() && it->second > 0) {
      ++same;
      --it->second;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / pred.size();
  const double recall = static_cast<double>(same) / ref.size();
  return 2 * precision * recall / (precision + recall);
}

double max_over_golds(double (*metric)(std::string_view, std::string_view), std::string_view prediction,
                      const std::vector<std::string>& golds) {
  CHORUS_CHECK(!golds.empty(), "no gold answers for the prediction (expected at least one)");
  double best = 0.0;
  for (const auto& gold : golds) best = std::max(best, metric(prediction, gold));
  return best;
}

double accuracy(const std::vector<std::string>& predictions, const std::vector<std::string>& labels) {
  CHORUS_CHECK(predictions.size() == labels.size(), "accuracy: ", predictions.size(), " predictions but ",
               labels.size(), " labels (expected as many)");
  CHORUS_CHECK(!predictions.empty(), "accuracy: no predictions (expected at least one)");
  std::size_t correct = 0;
  for (std::size_t i = 0; i < predictions.size(); ++i) correct += predictions[i] == labels[i] ? 1 : 0;
  return static_cast<double>(correct) / predictions.size();
}

SegmentStatistics answer_statistics(double (*metric)(std::string_view, std::string_view),
                                    const std::vector<std::string>& predictions,
                                    const std::vector<std::vector<std::string>>& references) {
  CHORUS_CHECK(!references.empty(), "answer metrics: no reference streams (expected at least one)");
  SegmentStatistics stats;
  stats.width = 2;
  std::vector<std::string> golds(references.size());
  for (std::size_t s = 0; s < predictions.size(); ++s) {
    for (std::size_t r = 0; r < references.size(); ++r) {
      CHORUS_CHECK(references[r].size() == predictions.size(), "answer metrics: reference stream ", r, " has ",
                   references[r].size(), " segments but there are ", predictions.size(), " predictions");
      golds[r] = references[r][s];
    }
    stats.values.push_back(max_over_golds(metric, predictions[s], golds));
    stats.values.push_back(1.0);
  }
  return stats;
}

double mean_value(const std::vector<double>& totals) {
  CHORUS_CHECK(totals.size() == 2, "answer statistics have ", totals.size(), " values, expected 2");
  return totals[1] > 0 ? totals[0] / totals[1] : 0.0;
}

}  // namespace chorus::eval
