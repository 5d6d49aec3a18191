// ROUGE-N, ROUGE-L and ROUGE-Lsum as rouge-score 0.1.2 computes them.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "eval/metrics/segment_statistics.h"
#include "eval/metrics/significance.h"

namespace chorus::eval {

struct RougeParams {
  bool use_stemmer = false;  // Porter stemming of tokens longer than 3 characters
};

struct RougeScore {
  double precision = 0;
  double recall = 0;
  double fmeasure = 0;
};

// "rouge1".."rouge9", "rougeL" or "rougeLsum".
struct RougeType {
  enum class Kind { kNgram, kLcs, kSummaryLcs };
  std::string name;
  Kind kind = Kind::kNgram;
  int n = 1;

  // Throws chorus::Error naming the valid types for anything else.
  static RougeType parse(const std::string& name);
};

// rouge-score's DefaultTokenizer: Python-lowercase, every run of characters
// other than [a-z0-9] becomes a separator (so non-ASCII letters vanish),
// then optional stemming.
std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer);

class RougeScorer {
 public:
  RougeScorer(const std::vector<std::string>& types, RougeParams params = {});

  const std::vector<RougeType>& types() const { return types_; }
  const RougeParams& params() const { return params_; }

  // One score per type, in the order given to the constructor.
  std::vector<RougeScore> score(std::string_view target, std::string_view prediction) const;

  // Several targets: per type, the target with the largest F (the first on
  // ties), as rouge-score's score_multi.
  std::vector<RougeScore> score_multi(const std::vector<std::string>& targets, std::string_view prediction) const;

  // references[r][s] is the r-th reference of segment s. One statistics
  // matrix per type, rows (precision, recall, F, 1): the corpus score is the
  // mean F over segments.
  std::vector<SegmentStatistics> segment_statistics(const std::vector<std::string>& hypotheses,
                                                    const std::vector<std::vector<std::string>>& references) const;

  // Mean F (0..1) from the summed (precision, recall, F, 1) columns.
  static double mean_f(const std::vector<double>& totals);
  static ScoreFromTotals score_function() { return &RougeScorer::mean_f; }

  // e.g. "nrefs:1|tok:rouge-score|stem:no|multi:max|agg:mean|version:0.1.2".
  std::string signature(int num_refs, const ConfidenceInterval* bootstrap = nullptr) const;

 private:
  std::vector<RougeType> types_;
  RougeParams params_;
};

// The rouge-score release whose behaviour Chorus follows.
inline constexpr const char* kRougeScoreVersion = "0.1.2";

}  // namespace chorus::eval
