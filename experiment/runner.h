// Running an experiment: read and check it, build its agents, build and train its systems in
// dependency order, evaluate every system on every task, and write report.json.
#pragma once

#include <filesystem>

#include "common/config.h"
#include "train/run_folder.h"

namespace chorus::experiment {

struct RunOptions {
  std::filesystem::path folder;  // the run folder
  train::RunMode mode = train::RunMode::fresh;
  bool quiet = false;  // no progress output
  // A re-evaluation (chorus eval RUN_DIR evaluation.a=b): the saved config may differ in its
  // evaluation block; trained systems are reused, outputs of changed tasks recomputed.
  bool evaluation_changed = false;
};

// Reads and checks the whole config (every error before any work), then runs it into
// options.folder. A resumed run skips the agents already cached, the systems already trained and
// the evaluations already written. Returns report.json's path.
std::filesystem::path run_experiment(const Config& config, const RunOptions& options);

}  // namespace chorus::experiment
