// Per-segment sufficient statistics: the rows a corpus metric sums before scoring.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

namespace chorus::eval {

// A row-major matrix with one row per segment. Corpus scores are a function of
// the column sums, which is what makes bootstrap resampling cheap and exact.
struct SegmentStatistics {
  std::size_t width = 0;
  std::vector<double> values;

  std::size_t segments() const { return width == 0 ? 0 : values.size() / width; }
  const double* row(std::size_t segment) const { return values.data() + segment * width; }
  void append(const std::vector<double>& row);
  std::vector<double> totals() const;
};

// Maps column sums to a corpus score (the metric's own formula).
using ScoreFromTotals = std::function<double(const std::vector<double>& totals)>;

}  // namespace chorus::eval
