// The router experiment on the key-value arithmetic world: a learned policy picks, per request,
// which arm answers it (one agent, the pipeline kv -> math, a vote, ...), trained with
// reinforcement learning on reward = exact match - lambda * cost for each lambda of a sweep; writes
// the accuracy-cost curve against every fixed arm and an oracle into report.json.
#pragma once

#include <filesystem>

#include "common/config.h"
#include "train/kv_experiment.h"

namespace chorus::train {

// Reads and checks the whole config (every error before any work), pretrains or loads the agents
// (the same cache as the quickstart), then runs the sweep into run.folder. Returns report.json's
// path.
std::filesystem::path run_kv_router_experiment(const Config& config, const ExperimentRun& run);

}  // namespace chorus::train
