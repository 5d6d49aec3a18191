// The key-value arithmetic experiment (the quickstart): pretrain two agents, freeze them, train
// cross-agent fusion heads, evaluate every system, write report.json.
#pragma once

#include <filesystem>
#include <vector>

#include "common/config.h"
#include "train/run_folder.h"

namespace chorus::train {

struct ExperimentRun {
  std::filesystem::path folder;  // the run folder
  RunMode mode = RunMode::fresh;
  bool quiet = false;            // no progress output
  // A re-evaluation with `evaluation.*` overrides (chorus eval RUN_DIR evaluation.a=b): the run's
  // config.yaml is replaced by the new resolved config. Only the evaluation block may differ, which
  // no training phase reads, so the reused phases still match it.
  bool evaluation_changed = false;
};

// Reads and checks the whole config (every error before any work), then runs the experiment into
// run.folder. Returns the path of report.json.
std::filesystem::path run_kv_arithmetic_experiment(const Config& config, const ExperimentRun& run);

}  // namespace chorus::train
