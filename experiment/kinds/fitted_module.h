// Small trained modules of the engine's kinds (a selector, a router policy) kept in the run folder
// as HDF5 checkpoints with checksums, with what their fit reported, so a resumed run reuses them.
#pragma once

#include <torch/nn/module.h>

#include <filesystem>

#include <nlohmann/json.hpp>

namespace chorus::experiment {

// Writes `module`'s parameters and `report` (JSON kept in the checkpoint) to `path` atomically.
void save_fitted(const std::filesystem::path& path, const torch::nn::Module& module, int64_t steps,
                 uint64_t seed, const nlohmann::json& report);
// Loads a checkpoint save_fitted wrote into `module` (same architecture, or a chorus::Error naming
// the file and the tensors that differ); returns its report with "resumed": true.
nlohmann::json load_fitted(const std::filesystem::path& path, torch::nn::Module& module);

}  // namespace chorus::experiment
