#include "eval/metrics/significance.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"

namespace chorus::eval {
namespace {

// Uniform index in [0, n) from a 64-bit engine without modulo bias (Lemire),
// so resamples are the same on every platform for a given seed.
std::size_t uniform_index(std::mt19937_64& rng, std::size_t n) {
  unsigned __int128 product = static_cast<unsigned __int128>(rng()) * n;
  auto low = static_cast<std::uint64_t>(product);
  if (low < n) {
    const std::uint64_t threshold = (0 - static_cast<std::uint64_t>(n)) % n;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(rng()) * n;
      low = static_cast<std::uint64_t>(product);
    }
  }
  return static_cast<std::size_t>(product >> 64);
}

void check_non_empty(const SegmentStatistics& stats, const char* what) {
  CHORUS_CHECK(stats.segments() > 0, what, ": no segments to resample (expected at least one)");
}

std::vector<std::vector<std::size_t>> draw_resamples(std::size_t segments, int resamples, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::size_t>> draws(static_cast<std::size_t>(resamples));
  for (auto& draw : draws) {
    draw.resize(segments);
    for (auto& index : draw) index = uniform_index(rng, segments);
  }
  return draws;
}

double score_of_draw(const SegmentStatistics& stats, const std::vector<std::size_t>& draw,
                     const ScoreFromTotals& score, std::vector<double>& totals) {
  std::fill(totals.begin(), totals.end(), 0.0);
  for (std::size_t index : draw) {
    const double* r = stats.row(index);
    for (std::size_t c = 0; c < stats.width; ++c) totals[c] += r[c];
  }
  return score(totals);
}

}  // namespace

ConfidenceInterval summarize_resamples(std::vector<double> scores, double full_score) {
  CHORUS_CHECK(!scores.empty(), "confidence interval: no resampled scores");
  std::sort(scores.begin(), scores.end());
  const std::size_t n = scores.size();
  const std::size_t lower = n / 40;
  const std::size_t upper = n - lower - 1;
  ConfidenceInterval ci;
  ci.score = full_score;
  ci.mean = std::accumulate(scores.begin(), scores.end(), 0.0) / static_cast<double>(n);
  ci.low = scores[lower];
  ci.high = scores[upper];
  ci.half_width = 0.5 * (ci.high - ci.low);
  ci.resamples = static_cast<int>(n);
  return ci;
}

ConfidenceInterval bootstrap_confidence_interval(const SegmentStatistics& stats, const ScoreFromTotals& score,
                                                 const BootstrapParams& params) {
  check_non_empty(stats, "bootstrap");
  CHORUS_CHECK(params.resamples > 0, "bootstrap: resamples must be positive, got ", params.resamples);
  std::vector<double> totals(stats.width);
  std::vector<double> scores;
  scores.reserve(static_cast<std::size_t>(params.resamples));
  for (const auto& draw : draw_resamples(stats.segments(), params.resamples, params.seed)) {
    scores.push_back(score_of_draw(stats, draw, score, totals));
  }
  ConfidenceInterval ci = summarize_resamples(std::move(scores), score(stats.totals()));
  ci.seed = params.seed;
  return ci;
}

PairedTestResult paired_bootstrap_test(const SegmentStatistics& baseline, const SegmentStatistics& system,
                                       const ScoreFromTotals& score, const BootstrapParams& params) {
  check_non_empty(baseline, "paired bootstrap");
  CHORUS_CHECK(baseline.segments() == system.segments() && baseline.width == system.width,
               "paired bootstrap: the systems have ", baseline.segments(), " and ", system.segments(),
               " segments (expected the same segments for both)");
  CHORUS_CHECK(params.resamples > 0, "paired bootstrap: resamples must be positive, got ", params.resamples);
  PairedTestResult result;
  result.baseline_score = score(baseline.totals());
  result.system_score = score(system.totals());
  const double real_difference = std::abs(result.baseline_score - result.system_score);

  std::vector<double> totals(baseline.width);
  std::vector<double> system_scores;
  std::vector<double> differences;
  for (const auto& draw : draw_resamples(baseline.segments(), params.resamples, params.seed)) {
    const double b = score_of_draw(baseline, draw, score, totals);
    const double s = score_of_draw(system, draw, score, totals);
    system_scores.push_back(s);
    differences.push_back(std::abs(s - b));
  }
  // Centre the differences: the null hypothesis says their mean is zero.
  const double mean = std::accumulate(differences.begin(), differences.end(), 0.0) / differences.size();
  std::size_t exceed = 0;
  for (double d : differences) exceed += (d - mean > real_difference) ? 1 : 0;
  result.p_value = static_cast<double>(exceed + 1) / static_cast<double>(differences.size() + 1);
  result.system_interval = summarize_resamples(std::move(system_scores), result.system_score);
  result.system_interval.seed = params.seed;
  return result;
}

PairedTestResult approximate_randomization_test(const SegmentStatistics& baseline, const SegmentStatistics& system,
                                                const ScoreFromTotals& score, const RandomizationParams& params) {
  check_non_empty(baseline, "approximate randomisation");
  CHORUS_CHECK(baseline.segments() == system.segments() && baseline.width == system.width,
               "approximate randomisation: the systems have ", baseline.segments(), " and ", system.segments(),
               " segments (expected the same segments for both)");
  CHORUS_CHECK(params.trials > 0, "approximate randomisation: trials must be positive, got ", params.trials);
  PairedTestResult result;
  result.baseline_score = score(baseline.totals());
  result.system_score = score(system.totals());
  const double real_difference = std::abs(result.baseline_score - result.system_score);

  std::mt19937_64 rng(params.seed);
  const std::size_t width = baseline.width;
  std::vector<double> totals_a(width), totals_b(width);
  std::size_t exceed = 0;
  for (int t = 0; t < params.trials; ++t) {
    std::fill(totals_a.begin(), totals_a.end(), 0.0);
    std::fill(totals_b.begin(), totals_b.end(), 0.0);
    std::uint64_t bits = 0;
    for (std::size_t s = 0; s < baseline.segments(); ++s) {
      if (s % 64 == 0) bits = rng();
      const bool swap = (bits >> (s % 64)) & 1U;
      const double* a = (swap ? system : baseline).row(s);
      const double* b = (swap ? baseline : system).row(s);
      for (std::size_t c = 0; c < width; ++c) {
        totals_a[c] += a[c];
        totals_b[c] += b[c];
      }
    }
    exceed += (std::abs(score(totals_a) - score(totals_b)) > real_difference) ? 1 : 0;
  }
  result.p_value = static_cast<double>(exceed + 1) / static_cast<double>(params.trials + 1);
  return result;
}

}  // namespace chorus::eval
