// Running experiments from configs, shared by `chorus train` and `chorus eval`.
#pragma once

#include <filesystem>
#include <string>

#include "common/config.h"
#include "train/kv_experiment.h"

namespace chorus::cli {

// runs/<config name>-<UTC timestamp>: a new folder per run unless --out says otherwise.
std::filesystem::path timestamped_run_folder(const std::string& config);

// Runs a config into run.folder through the experiment engine (experiment/runner.h) when it
// declares systems; configs that still name a built-in program (experiment: kv_arithmetic,
// kv_router, multisource_mt) run that program. Returns report.json's path.
std::filesystem::path run_experiment(const Config& config, const train::ExperimentRun& run);

// Writes report.html into a run folder that has just been written by a training run, and prints
// where it is. The run's results are in report.json already, so a page that cannot be built is a
// warning (with the command that retries), not a failed run.
void write_html_after_training(const std::filesystem::path& run_folder);

}  // namespace chorus::cli
