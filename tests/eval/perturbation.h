// Systematic perturbations that turn references into test hypotheses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace chorus::eval::testing {

// The kinds of damage a hypothesis gets, cycled over the lines.
enum class Perturbation {
  kIdentity,
  kDropWords,
  kSwapWords,
  kCasing,
  kPunctuation,
  kUnicode,
  kTruncate,
  kRepeat,
  kEmpty,
  kCombined,
};
inline constexpr int kPerturbationKinds = 10;

// Applies one perturbation; deterministic for a given seed.
std::string perturb(const std::string& line, Perturbation kind, std::uint64_t seed);

// Line i gets perturbation kind (i + offset) % kPerturbationKinds.
std::vector<std::string> perturb_all(const std::vector<std::string>& lines, int offset, std::uint64_t seed);

// Splits text into short lines ('\n' after sentence ends and every few words)
// so that ROUGE-Lsum sees several sentences.
std::string split_into_lines(const std::string& text);

}  // namespace chorus::eval::testing
