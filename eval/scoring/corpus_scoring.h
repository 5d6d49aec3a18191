// Scores a hypothesis file against reference files with named metrics (`chorus score`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "eval/metrics/significance.h"

namespace chorus::eval {

struct CorpusScoringOptions {
  std::vector<std::string> metrics = {"bleu", "chrf", "rouge1", "rouge2", "rougeL"};
  bool lowercase = false;   // BLEU and chrF
  bool rouge_stem = false;  // ROUGE Porter stemming
  bool confidence = false;  // bootstrap intervals for every metric
  BootstrapParams bootstrap;
};

struct MetricResult {
  std::string key;        // the metric name as requested, e.g. "chrf++"
  std::string name;       // as reported, e.g. "chrF2++"
  double score = 0;       // 0..100 for every metric
  std::string signature;  // sacrebleu-style key:value list
  std::string details;    // e.g. BLEU's precisions and brevity penalty
  std::optional<ConfidenceInterval> interval;  // on the 0..100 scale
};

// bleu, chrf, chrf++, rouge1, rouge2, rougeL, rougeLsum, em, f1.
const std::vector<std::string>& valid_metric_names();

// Throws chorus::Error for an unknown name, listing the valid ones.
void check_metric_names(const std::vector<std::string>& names);

// references[r][s] is the r-th reference of segment s; all streams and the
// hypotheses must have the same number of segments.
std::vector<MetricResult> score_corpus(const std::vector<std::string>& hypotheses,
                                       const std::vector<std::vector<std::string>>& references,
                                       const CorpusScoringOptions& options);

// "BLEU|nrefs:1|...|version:2.5.1 = 35.21 (μ = 35.18 ± 1.23) 66.7/41.2/..."
std::string format_result(const MetricResult& result, int width = 2);

}  // namespace chorus::eval
