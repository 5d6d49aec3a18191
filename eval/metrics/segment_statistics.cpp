#include "eval/metrics/segment_statistics.h"

#include "common/error.h"

namespace chorus::eval {

void SegmentStatistics::append(const std::vector<double>& row) {
  if (width == 0 && values.empty()) width = row.size();
  CHORUS_CHECK(row.size() == width, "segment statistics row has ", row.size(), " values, expected ", width);
  values.insert(values.end(), row.begin(), row.end());
}

std::vector<double> SegmentStatistics::totals() const {
  std::vector<double> sums(width, 0.0);
  for (std::size_t s = 0; s < segments(); ++s) {
    const double* r = row(s);
    for (std::size_t c = 0; c < width; ++c) sums[c] += r[c];
  }
  return sums;
}

}  // namespace chorus::eval
