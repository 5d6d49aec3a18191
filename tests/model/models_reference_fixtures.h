// The reference models and outputs made by reference/make_reference.py, built once per build folder.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/io/weight_map.h"

namespace chorus::testing {

// The models make_reference.py builds (keep in step with its MODELS).
const std::vector<std::string>& reference_model_names();
// The models saved with bf16 / fp16 storage (keep in step with its LOW_PRECISION).
const std::vector<std::string>& low_precision_model_names();

// The fixture folder, generating it on first use with $CHORUS_PYTHON (one
// subprocess per build folder and script version, guarded by a file lock so
// parallel test processes wait for one another). nullopt, with `why` set,
// when $CHORUS_PYTHON is unset; a failing script is a test failure.
std::optional<std::filesystem::path> reference_fixtures(std::string& why);

// Skips the current test when the fixtures cannot exist, else returns them.
#define CHORUS_REQUIRE_REFERENCE_FIXTURES(folder_var)                                   \
  std::filesystem::path folder_var;                                                     \
  {                                                                                     \
    std::string why_;                                                                   \
    auto found_ = ::chorus::testing::reference_fixtures(why_);                          \
    if (!found_) GTEST_SKIP() << why_;                                                  \
    folder_var = *found_;                                                               \
  }

// One model's reference tensors (reference.safetensors) and cases (cases.json).
struct ReferenceModel {
  std::filesystem::path folder;
  model::WeightMap tensors;
  nlohmann::json cases;
  const torch::Tensor& at(const std::string& name) const { return tensors.at(name); }
};
ReferenceModel load_reference_model(const std::filesystem::path& fixtures, const std::string& name);

// max |a - b| and a readable message when it exceeds atol + rtol * |b|.
::testing::AssertionResult all_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol,
                                     double rtol = 0.0);

}  // namespace chorus::testing
