// Fitted modules in HDF5 checkpoints.
#include "experiment/kinds/fitted_module.h"

#include "train/checkpoint.h"

namespace chorus::experiment {
namespace {

train::NamedParameters parameters_of(const torch::nn::Module& module) {
  train::NamedParameters out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace

void save_fitted(const std::filesystem::path& path, const torch::nn::Module& module, int64_t steps,
                 uint64_t seed, const nlohmann::json& report) {
  train::CheckpointState state;
  state.step = steps;
  state.finished = true;
  state.seed = seed;
  state.extra = report.dump();
  train::save_checkpoint(path, parameters_of(module), nullptr, state);
}

nlohmann::json load_fitted(const std::filesystem::path& path, torch::nn::Module& module) {
  const auto saved = train::read_checkpoint(path);
  train::restore_parameters(saved, parameters_of(module));
  auto report = nlohmann::json::parse(saved.state.extra);
  report["resumed"] = true;
  return report;
}

}  // namespace chorus::experiment
