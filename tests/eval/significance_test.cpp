// Bootstrap intervals and paired tests on synthetic per-segment statistics.
#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "eval/metrics/answer_match.h"
#include "eval/metrics/significance.h"

namespace chorus::eval {
namespace {

// Rows (value, 1): the corpus score is the mean value.
SegmentStatistics mean_rows(const std::vector<double>& values) {
  SegmentStatistics stats;
  for (double v : values) stats.append({v, 1.0});
  return stats;
}

std::vector<double> noisy(double mean, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(mean, 1.0);
  std::vector<double> values(n);
  for (auto& v : values) v = noise(rng);
  return values;
}

TEST(Bootstrap, SummaryUsesSacrebleuPercentileIndices) {
  std::vector<double> scores(1000);
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = static_cast<double>(999 - i);
  const auto ci = summarize_resamples(scores, 1.0);
  EXPECT_EQ(ci.low, 25.0);    // sorted[1000 / 40]
  EXPECT_EQ(ci.high, 974.0);  // sorted[1000 - 25 - 1]
  EXPECT_EQ(ci.half_width, 474.5);
  EXPECT_EQ(ci.mean, 499.5);
}

TEST(Bootstrap, IntervalCoversTheScoreAndShrinksWithData) {
  const auto small = mean_rows(noisy(5.0, 100, 1));
  const auto large = mean_rows(noisy(5.0, 10000, 1));
  const auto ci_small = bootstrap_confidence_interval(small, mean_value);
  const auto ci_large = bootstrap_confidence_interval(large, mean_value);
  EXPECT_LE(ci_small.low, ci_small.score);
  EXPECT_GE(ci_small.high, ci_small.score);
  // Standard error 1/sqrt(n): the 95% half-width is about 1.96 / sqrt(n).
  EXPECT_NEAR(ci_small.half_width, 1.96 / 10, 0.05);
  EXPECT_NEAR(ci_large.half_width, 1.96 / 100, 0.005);
  EXPECT_EQ(ci_small.resamples, 1000);
  EXPECT_EQ(ci_small.seed, 12345u);
}

TEST(Bootstrap, SeededAndReproducible) {
  const auto stats = mean_rows(noisy(0.0, 200, 3));
  const auto a = bootstrap_confidence_interval(stats, mean_value, {500, 7});
  const auto b = bootstrap_confidence_interval(stats, mean_value, {500, 7});
  const auto c = bootstrap_confidence_interval(stats, mean_value, {500, 8});
  EXPECT_EQ(a.half_width, b.half_width);
  EXPECT_EQ(a.mean, b.mean);
  EXPECT_NE(a.mean, c.mean);
}

TEST(PairedTests, DetectARealDifferenceAndNotNoise) {
  const auto baseline = mean_rows(noisy(0.0, 400, 11));
  auto shifted_values = noisy(0.0, 400, 11);
  for (auto& v : shifted_values) v += 0.5;
  const auto better = mean_rows(shifted_values);
  const auto unrelated = mean_rows(noisy(0.0, 400, 12));

  EXPECT_LT(paired_bootstrap_test(baseline, better, mean_value).p_value, 0.01);
  EXPECT_LT(approximate_randomization_test(baseline, better, mean_value, {2000, 1}).p_value, 0.01);
  // Two draws from the same distribution: no significant difference expected
  // for these seeds (the means differ by about 0.07 with standard error 0.07).
  EXPECT_GT(paired_bootstrap_test(baseline, unrelated, mean_value).p_value, 0.05);
  EXPECT_GT(approximate_randomization_test(baseline, unrelated, mean_value, {2000, 1}).p_value, 0.05);
}

TEST(PairedTests, RejectMismatchedSystems) {
  EXPECT_THROW(paired_bootstrap_test(mean_rows({1, 2}), mean_rows({1}), mean_value), Error);
  EXPECT_THROW(approximate_randomization_test(mean_rows({1, 2}), mean_rows({1}), mean_value), Error);
  EXPECT_THROW(bootstrap_confidence_interval(SegmentStatistics{}, mean_value), Error);
}

}  // namespace
}  // namespace chorus::eval
