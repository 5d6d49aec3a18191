#include "eval/metrics/rouge.h"

#include <algorithm>

#include "common/error.h"
#include "eval/metrics/ngram_counts.h"
#include "eval/metrics/porter_stemmer.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

using Ids = std::vector<std::uint32_t>;

inline bool is_token_char(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

RougeScore make_score(double precision, double recall) { return {precision, recall, fmeasure(precision, recall)}; }

// Longest-common-subsequence table, (|ref| + 1) x (|can| + 1), row-major.
std::vector<std::uint32_t> lcs_table(const Ids& ref, const Ids& can) {
  const std::size_t cols = can.size() + 1;
  std::vector<std::uint32_t> t((ref.size() + 1) * cols, 0);
  for (std::size_t i = 1; i <= ref.size(); ++i) {
    for (std::size_t j = 1; j <= can.size(); ++j) {
      t[i * cols + j] = ref[i - 1] == can[j - 1] ? t[(i - 1) * cols + j - 1] + 1
                                                 : std::max(t[(i - 1) * cols + j], t[i * cols + j - 1]);
    }
  }
  return t;
}

std::size_t lcs_length(const Ids& a, const Ids& b) {
  std::vector<std::uint32_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

// Indices into `ref` of the one LCS that rouge-score's _backtrack_norec reads out.
std::vector<std::size_t> lcs_indices(const Ids& ref, const Ids& can) {
  const auto t = lcs_table(ref, can);
  const std::size_t cols = can.size() + 1;
  std::vector<std::size_t> indices;
  std::size_t i = ref.size(), j = can.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      indices.push_back(i - 1);
      --i, --j;
    } else if (t[i * cols + j - 1] > t[(i - 1) * cols + j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(indices.begin(), indices.end());
  return indices;
}

// Ids are packed into 128-bit keys: 32 bits each up to 4-grams, fewer above.
RougeScore score_ngrams(const Ids& target, const Ids& prediction, int n, std::size_t vocabulary,
                        std::vector<NgramKey>& scratch) {
  const int bits = std::min(32, 128 / n);
  CHORUS_CHECK(bits >= 32 || vocabulary < (std::size_t{1} << bits), "ROUGE-", n, ": ", vocabulary,
               " distinct tokens in one segment pair, at most ", (std::size_t{1} << bits) - 1, " supported");
  ngram_keys(target, n, bits, scratch);
  const double target_count = static_cast<double>(scratch.size());
  const auto target_ngrams = count_ngrams(scratch);
  ngram_keys(prediction, n, bits, scratch);
  const double prediction_count = static_cast<double>(scratch.size());
  const auto prediction_ngrams = count_ngrams(scratch);
  const double overlap = static_cast<double>(clipped_overlap(target_ngrams, prediction_ngrams));
  return make_score(overlap / std::max(prediction_count, 1.0), overlap / std::max(target_count, 1.0));
}

RougeScore score_lcs(const Ids& target, const Ids& prediction) {
  if (target.empty() || prediction.empty()) return {};
  const double lcs = static_cast<double>(lcs_length(target, prediction));
  return make_score(lcs / prediction.size(), lcs / target.size());
}

// Summary-level LCS (ROUGE paper, section 3.2) with rouge-score's union-LCS
// hit counting, each token usable as often as it occurs on both sides.
RougeScore score_summary_lcs(const std::vector<Ids>& ref_sents, const std::vector<Ids>& can_sents,
                             std::size_t vocabulary) {
  if (ref_sents.empty() || can_sents.empty()) return {};
  std::size_t m = 0, n = 0;
  std::vector<long> ref_counts(vocabulary, 0), can_counts(vocabulary, 0);
  for (const auto& s : ref_sents) {
    m += s.size();
    for (auto t : s) ++ref_counts[t];
  }
  for (const auto& s : can_sents) {
    n += s.size();
    for (auto t : s) ++can_counts[t];
  }
  if (m == 0 || n == 0) return {};
  std::size_t hits = 0;
  std::vector<std::size_t> union_indices;
  for (const auto& r : ref_sents) {
    union_indices.clear();
    for (const auto& c : can_sents) {
      const auto indices = lcs_indices(r, c);
      union_indices.insert(union_indices.end(), indices.begin(), indices.end());
    }
    std::sort(union_indices.begin(), union_indices.end());
    union_indices.erase(std::unique(union_indices.begin(), union_indices.end()), union_indices.end());
    for (std::size_t index : union_indices) {
      const auto t = r[index];
      if (can_counts[t] > 0 && ref_counts[t] > 0) {
        ++hits;
        --can_counts[t];
        --ref_counts[t];
      }
    }
  }
  return make_score(static_cast<double>(hits) / n, static_cast<double>(hits) / m);
}

// Tokens of one (target, prediction) pair as ids shared by both sides.
class PairEncoder {
 public:
  explicit PairEncoder(bool use_stemmer) : use_stemmer_(use_stemmer) {}

  Ids encode(std::string_view text) {
    Ids ids;
    for (const auto& token : rouge_tokenize(text, use_stemmer_)) {
      auto [it, inserted] = ids_.try_emplace(token, static_cast<std::uint32_t>(ids_.size()));
      ids.push_back(it->second);
    }
    return ids;
  }

  // Lines (split on '\n', empty ones dropped) tokenised one by one.
  std::vector<Ids> encode_lines(std::string_view text) {
    std::vector<Ids> lines;
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      if (end > start) lines.push_back(encode(text.substr(start, end - start)));
      start = end + 1;
    }
    return lines;
  }

  std::size_t vocabulary() const { return ids_.size(); }

 private:
  bool use_stemmer_;
  std::unordered_map<std::string, std::uint32_t> ids_;
};

}  // namespace

RougeType RougeType::parse(const std::string& name) {
  RougeType type;
  type.name = name;
  if (name == "rougeL") {
    type.kind = Kind::kLcs;
  } else if (name == "rougeLsum") {
    type.kind = Kind::kSummaryLcs;
  } else if (name.size() == 6 && name.compare(0, 5, "rouge") == 0 && name[5] >= '1' && name[5] <= '9') {
    type.kind = Kind::kNgram;
    type.n = name[5] - '0';
  } else {
    throw Error("unknown ROUGE type '" + name + "' (expected rouge1..rouge9, rougeL or rougeLsum)");
  }
  return type;
}

std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer) {
  std::vector<std::string> tokens;
  std::string current;
  const auto flush = [&]() {
    if (current.empty()) return;
    tokens.push_back(use_stemmer && current.size() > 3 ? porter_stem(current) : current);
    current.clear();
  };
  const bool ascii = std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    for (char c : text) {
      const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
      if (is_token_char(static_cast<unsigned char>(lower))) {
        current.push_back(lower);
      } else {
        flush();
      }
    }
  } else {
    // Lowercasing can turn a non-ASCII letter into ASCII (KELVIN SIGN -> 'k').
    for (char32_t c : python_lower(decode_utf8(text, "ROUGE text"))) {
      if (is_token_char(c)) {
        current.push_back(static_cast<char>(c));
      } else {
        flush();
      }
    }
  }
  flush();
  // rouge-score keeps only tokens matching ^[a-z0-9]+$ after stemming.
  tokens.erase(std::remove_if(tokens.begin(), tokens.end(), [](const std::string& t) { return t.empty(); }),
               tokens.end());
  return tokens;
}

RougeScorer::RougeScorer(const std::vector<std::string>& types, RougeParams params) : params_(params) {
  CHORUS_CHECK(!types.empty(), "ROUGE: no types given (expected e.g. rouge1, rouge2, rougeL, rougeLsum)");
  for (const auto& name : types) types_.push_back(RougeType::parse(name));
}

std::vector<RougeScore> RougeScorer::score(std::string_view target, std::string_view prediction) const {
  PairEncoder encoder(params_.use_stemmer);
  const Ids target_ids = encoder.encode(target);
  const Ids prediction_ids = encoder.encode(prediction);
  std::vector<Ids> target_lines, prediction_lines;
  const bool needs_lines = std::any_of(types_.begin(), types_.end(),
                                       [](const RougeType& t) { return t.kind == RougeType::Kind::kSummaryLcs; });
  if (needs_lines) {
    target_lines = encoder.encode_lines(target);
    prediction_lines = encoder.encode_lines(prediction);
  }
  std::vector<NgramKey> scratch;
  std::vector<RougeScore> scores;
  for (const auto& type : types_) {
    switch (type.kind) {
      case RougeType::Kind::kNgram:
        scores.push_back(score_ngrams(target_ids, prediction_ids, type.n, encoder.vocabulary(), scratch));
        break;
      case RougeType::Kind::kLcs:
        scores.push_back(score_lcs(target_ids, prediction_ids));
        break;
      case RougeType::Kind::kSummaryLcs:
        scores.push_back(score_summary_lcs(target_lines, prediction_lines, encoder.vocabulary()));
        break;
    }
  }
  return scores;
}

std::vector<RougeScore> RougeScorer::score_multi(const std::vector<std::string>& targets,
                                                 std::string_view prediction) const {
  CHORUS_CHECK(!targets.empty(), "ROUGE: no targets for the prediction (expected at least one)");
  std::vector<RougeScore> best = score(targets.front(), prediction);
  for (std::size_t t = 1; t < targets.size(); ++t) {
    const auto candidate = score(targets[t], prediction);
    for (std::size_t k = 0; k < best.size(); ++k) {
      if (candidate[k].fmeasure > best[k].fmeasure) best[k] = candidate[k];
    }
  }
  return best;
}

std::vector<SegmentStatistics> RougeScorer::segment_statistics(
    const std::vector<std::string>& hypotheses, const std::vector<std::vector<std::string>>& references) const {
  CHORUS_CHECK(!references.empty(), "ROUGE: no reference streams (expected at least one)");
  for (std::size_t r = 0; r < references.size(); ++r) {
    CHORUS_CHECK(references[r].size() == hypotheses.size(), "ROUGE: reference stream ", r, " has ",
                 references[r].size(), " segments but there are ", hypotheses.size(), " hypotheses");
  }
  std::vector<SegmentStatistics> stats(types_.size());
  for (auto& s : stats) {
    s.width = 4;
    s.values.reserve(4 * hypotheses.size());
  }
  std::vector<std::string> targets(references.size());
  for (std::size_t s = 0; s < hypotheses.size(); ++s) {
    for (std::size_t r = 0; r < references.size(); ++r) targets[r] = references[r][s];
    const auto scores = score_multi(targets, hypotheses[s]);
    for (std::size_t k = 0; k < scores.size(); ++k) {
      stats[k].values.insert(stats[k].values.end(), {scores[k].precision, scores[k].recall, scores[k].fmeasure, 1.0});
    }
  }
  return stats;
}

double RougeScorer::mean_f(const std::vector<double>& totals) {
  CHORUS_CHECK(totals.size() == 4, "ROUGE statistics have ", totals.size(), " values, expected 4");
  return totals[3] > 0 ? totals[2] / totals[3] : 0.0;
}

std::string RougeScorer::signature(int num_refs, const ConfidenceInterval* bootstrap) const {
  std::string out = "nrefs:" + std::to_string(num_refs);
  if (bootstrap != nullptr) {
    out += "|bs:" + std::to_string(bootstrap->resamples) + "|seed:" + std::to_string(bootstrap->seed);
  }
  out += std::string("|tok:rouge-score|stem:") + (params_.use_stemmer ? "yes" : "no");
  return out + "|multi:max|agg:mean|version:" + kRougeScoreVersion;
}

}  // namespace chorus::eval
