// chrF and chrF++ (Popović 2015, 2017) with sacrebleu 2.x's defaults and signature.
#pragma once

#include <string>
#include <vector>

#include "eval/metrics/segment_statistics.h"
#include "eval/metrics/significance.h"

namespace chorus::eval {

struct ChrfParams {
  int char_order = 6;          // 1..6
  int word_order = 0;          // 0..4; 2 gives chrF++
  int beta = 2;
  bool lowercase = false;
  bool whitespace = false;     // keep whitespace inside character n-grams
  bool eps_smoothing = false;  // false: sacrebleu 2.x's effective-order average
};

struct ChrfScore {
  double score = 0;  // 0..100
  std::string name;  // "chrF2" or "chrF2++"
};

class ChrfScorer {
 public:
  explicit ChrfScorer(ChrfParams params = {});

  const ChrfParams& params() const { return params_; }
  std::string name() const;

  // references[r][s] is the r-th reference of segment s. One row per segment:
  // (hyp count, ref count, matches) per character order then per word order,
  // from the reference with the best segment-level chrF.
  SegmentStatistics segment_statistics(const std::vector<std::string>& hypotheses,
                                       const std::vector<std::vector<std::string>>& references) const;

  double f_score(const double* statistics) const;
  ChrfScore score_from_totals(const std::vector<double>& totals) const;
  ScoreFromTotals score_function() const;

  ChrfScore corpus_score(const std::vector<std::string>& hypotheses,
                         const std::vector<std::vector<std::string>>& references) const;
  ChrfScore sentence_score(const std::string& hypothesis, const std::vector<std::string>& references) const;

  // e.g. "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.5.1".
  std::string signature(int num_refs, const ConfidenceInterval* bootstrap = nullptr) const;

 private:
  ChrfParams params_;
};

}  // namespace chorus::eval
