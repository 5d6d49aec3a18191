// An experiment read from its config: agents, tasks, systems (as recipes, in dependency order) and
// evaluation. Reading checks everything that can be checked without loading a model: every name
// a system refers to, cycles between systems, data files row by row, metrics against the tasks'
// references, and every key (unknown keys are errors with the closest valid key).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "eval/metrics/task_completion.h"
#include "experiment/registry.h"
#include "tasks/task.h"
#include "train/kv_agents.h"
#include "train/text_agents.h"

namespace chorus::experiment {

struct AgentSpec {
  std::string name;
  std::string role;
  std::filesystem::path model;  // a Hugging Face folder or a Chorus .h5 checkpoint (frozen)
  // Or an agent Chorus trains, cached under its fingerprint: a `chorus pretrain` config, from a
  // file or inline. With a `data` block it is a text agent; otherwise a key-value arithmetic agent
  // ({seed, world, agent}, as `chorus pretrain` reads it).
  std::shared_ptr<train::TextAgentSpec> pretrain;
  std::shared_ptr<train::KvAgentSpec> pretrain_arithmetic;
  tasks::KeyValueArithmeticOptions arithmetic_world;
  std::string prompt_template = "{input}";
  std::map<std::string, std::string> prompts;  // task -> template over the example's fields
  std::shared_ptr<ConfigView> generation;      // overrides of the model's generation defaults
  std::string device = "cpu";
};

struct SystemSpec {
  std::string name;
  SystemRecipe recipe;
  bool baseline = false;  // an agent alone added by the engine (evaluation.agents_alone)
};

struct EvaluationSpec {
  std::string split = "test";
  std::string selection_split = "valid";  // where the best single agent is chosen
  int64_t limit = 0;                      // the first N examples of the split; 0: all
  std::vector<std::string> tasks;         // the tasks evaluated, in config order
  std::map<std::string, std::vector<std::string>> metrics;     // task -> metrics, primary first
  std::map<std::string, eval::TaskCompletionSpec> completion;  // task -> success predicate
  std::string fluency_lm;  // an agent: perplexity of every output under it
  int resamples = 1000;
  uint64_t bootstrap_seed = 12345;
  int64_t batch_size = 32;
  int64_t transcript_examples = 20;
  int64_t attention_examples = 4;
};

struct ExperimentSpec {
  std::string name;
  uint64_t seed = 0;
  int threads = 0;
  std::filesystem::path cache;  // cached pretrained agents
  std::vector<AgentSpec> agents;
  std::map<std::string, tasks::Task> tasks;
  std::vector<std::string> task_order;
  std::vector<SystemSpec> systems;  // dependencies first
  EvaluationSpec evaluation;
};

// Whether `config` is an experiment of this engine (it declares `systems` or has no `experiment`
// key naming a built-in program).
bool is_engine_config(const Config& config);

// Reads and checks the whole experiment; Config::check_all_keys_used runs at the end.
ExperimentSpec read_experiment(const Config& config);

}  // namespace chorus::experiment
