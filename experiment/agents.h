// Building an experiment's agents: Hugging Face folders and Chorus checkpoints loaded and frozen,
// agents Chorus trains fetched from the cache or trained into it.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "collab/system.h"
#include "experiment/spec.h"

namespace chorus::experiment {

struct BuiltAgents {
  std::map<std::string, collab::MemberPtr> members;
  nlohmann::json report =
      nlohmann::json::array();  // per agent: source, family, sizes, cached/trained
};

// Loads (or pretrains into the cache, working in run_folder/pretrain/<name>) every agent of `spec`.
// A device other than the CPU is checked: an unknown one or a CUDA device on a machine without one
// is an error naming agents.<name>.device.
BuiltAgents build_agents(const ExperimentSpec& spec, const std::filesystem::path& run_folder,
                         bool resume, bool quiet);

}  // namespace chorus::experiment
