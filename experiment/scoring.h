// Scoring a system's outputs on a task with named metrics: corpus values, bootstrap intervals,
// paired tests and per-example scores, over the metrics of eval/ (no LibTorch).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/metrics/significance.h"

namespace chorus::experiment {

// bleu, chrf, chrf++, rouge1, rouge2, rougeL, rougeLsum, em, f1, accuracy (need references);
// distinct1, distinct2, repetition (need none). Perplexity and task completion are scored by the
// runner (they need a model or a predicate).
const std::vector<std::string>& metric_names();
// Whether `metric` compares outputs with references.
bool needs_references(const std::string& metric);
// Whether `metric` has per-example statistics (intervals and paired tests); distinct-n and
// repetition are properties of the whole output set and have none.
bool decomposable(const std::string& metric);
// Whether larger is better.
bool higher_is_better(const std::string& metric);
// One line for report.json's metric_definitions.
std::string metric_definition(const std::string& metric);

// A metric's per-example statistics and the function from their sums to the score (0..1 for em,
// f1, accuracy; 0..100 for bleu, chrf, rouge as sacrebleu and rouge-score report them ×100).
struct MetricStatistics {
  eval::SegmentStatistics stats;
  eval::ScoreFromTotals score;
};
// references[s] are example s's references (any number >= 1; shorter lists are padded with their
// first reference, which leaves every metric here unchanged: each takes the best reference).
MetricStatistics metric_statistics(const std::string& metric,
                                   const std::vector<std::string>& outputs,
                                   const std::vector<std::vector<std::string>>& references);

struct MetricValue {
  double value = 0;
  std::optional<eval::ConfidenceInterval> interval;  // decomposable metrics only
  int64_t n = 0;
};
MetricValue score_metric(const std::string& metric, const std::vector<std::string>& outputs,
                         const std::vector<std::vector<std::string>>& references, int resamples,
                         uint64_t seed);

// Per-example scores (sentence-level BLEU and chrF as sacrebleu computes them, ROUGE F, EM, F1);
// decomposable metrics only.
std::vector<double> example_scores(const std::string& metric,
                                   const std::vector<std::string>& outputs,
                                   const std::vector<std::vector<std::string>>& references);

}  // namespace chorus::experiment
