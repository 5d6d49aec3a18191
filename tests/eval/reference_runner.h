// Runs the Python reference scorers (sacrebleu, rouge-score) for parity tests.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace chorus::eval::testing {

// $CHORUS_PYTHON when set and non-empty.
std::optional<std::string> reference_python();

// Writes `input` to a temporary JSON file, runs tests/eval/reference_scores.py
// on it and returns the parsed output; throws with the command's output on failure.
nlohmann::json run_reference_scores(const std::string& python, const nlohmann::json& input);

// Data set readers for the parity tests.
std::vector<std::string> read_gzip_lines(const std::string& path);
std::vector<nlohmann::json> read_json_lines(const std::string& path);

}  // namespace chorus::eval::testing
