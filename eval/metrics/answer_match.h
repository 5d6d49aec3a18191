// Accuracy, exact match and token F1 with SQuAD's answer normalisation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "eval/metrics/segment_statistics.h"

namespace chorus::eval {

// SQuAD's normalize_answer: Python-lowercase, drop ASCII punctuation, drop the
// words a/an/the (words as Python's regex \w sees them), collapse whitespace.
std::string normalize_answer(std::string_view text);

// 1 when the normalised strings are equal.
double exact_match(std::string_view prediction, std::string_view gold);

// Bag-of-tokens F1 between normalised strings; when either side has no
// tokens, 1 if both are empty else 0 (the SQuAD 2.0 script's rule).
double token_f1(std::string_view prediction, std::string_view gold);

// The best value over several gold answers (SQuAD's metric_max_over_ground_truths).
double max_over_golds(double (*metric)(std::string_view, std::string_view), std::string_view prediction,
                      const std::vector<std::string>& golds);

// Fraction of predictions equal (byte for byte) to their label.
double accuracy(const std::vector<std::string>& predictions, const std::vector<std::string>& labels);

// Rows (value, 1) per segment for `metric` against references[r][s], best
// over references; mean_value turns the column sums into the corpus mean.
SegmentStatistics answer_statistics(double (*metric)(std::string_view, std::string_view),
                                    const std::vector<std::string>& predictions,
                                    const std::vector<std::vector<std::string>>& references);
double mean_value(const std::vector<double>& totals);

}  // namespace chorus::eval
