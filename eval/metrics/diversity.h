// Fluency proxies that need no reference: distinct-n and repetition rate.
#pragma once

#include <string>
#include <vector>

namespace chorus::eval {

// distinct-n (Li et al. 2016): distinct n-grams over all outputs divided by
// the number of n-grams, words split on Python whitespace; 0 when there are none.
double distinct_n(const std::vector<std::string>& outputs, int n);

// Repetition rate (seq-rep-n of Welleck et al. 2020): per output,
// 1 - distinct n-grams / n-grams (0 for an output with no n-gram), averaged
// over outputs.
double repetition_rate(const std::vector<std::string>& outputs, int n = 4);

}  // namespace chorus::eval
