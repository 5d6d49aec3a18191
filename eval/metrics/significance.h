// Bootstrap confidence intervals and paired significance tests (sacrebleu's conventions).
#pragma once

#include <cstdint>

#include "eval/metrics/segment_statistics.h"

namespace chorus::eval {

struct BootstrapParams {
  int resamples = 1000;        // sacrebleu's default for bootstrap and paired bootstrap
  std::uint64_t seed = 12345;  // sacrebleu's default SACREBLEU_SEED
};

// The 95% interval as sacrebleu reports it: after sorting the resampled
// scores, low = sorted[n/40], high = sorted[n - n/40 - 1]; `half_width` is
// half their distance ("mean ± half_width").
struct ConfidenceInterval {
  double score = 0;  // on the full set
  double mean = 0;   // of the resampled scores
  double half_width = 0;
  double low = 0;
  double high = 0;
  int resamples = 0;
  std::uint64_t seed = 0;
};

// Resamples segments with replacement and rescores from summed statistics.
ConfidenceInterval bootstrap_confidence_interval(const SegmentStatistics& stats, const ScoreFromTotals& score,
                                                 const BootstrapParams& params = {});

struct PairedTestResult {
  double baseline_score = 0;
  double system_score = 0;
  double p_value = 1;
  ConfidenceInterval system_interval;  // from the same resamples (paired bootstrap only)
};

// Paired bootstrap (Koehn 2004, as sacrebleu's `--paired-bs`): the same index
// resamples for both systems; p = (#{|d_i| - mean|d| > |d_real|} + 1) / (n + 1).
PairedTestResult paired_bootstrap_test(const SegmentStatistics& baseline, const SegmentStatistics& system,
                                       const ScoreFromTotals& score, const BootstrapParams& params = {});

struct RandomizationParams {
  int trials = 10000;  // sacrebleu's default for `--paired-ar`
  std::uint64_t seed = 12345;
};

// Paired approximate randomisation: each segment's statistics are swapped
// between the systems with probability 1/2;
// p = (#{|score_a - score_b| > |d_real|} + 1) / (trials + 1).
PairedTestResult approximate_randomization_test(const SegmentStatistics& baseline, const SegmentStatistics& system,
                                                const ScoreFromTotals& score, const RandomizationParams& params = {});

// Summarises resampled scores the way sacrebleu's estimate_ci does.
ConfidenceInterval summarize_resamples(std::vector<double> scores, double full_score);

}  // namespace chorus::eval
