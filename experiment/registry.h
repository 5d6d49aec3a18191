// The system registry: each kind of system ("agent", "vote", "fusion", ...) is a reader of its
// config block, registered by name. A reader checks its block and the names it refers to before any
// work and returns a recipe; the runner builds (and, for trainable kinds, trains) systems from
// recipes in dependency order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collab/system.h"
#include "common/config.h"
#include "tasks/task.h"

namespace chorus::experiment {

// What a reader may look at: the names of the agents and systems declared, and the tasks.
struct ReadContext {
  uint64_t seed = 0;
  std::vector<std::string> agents;
  std::vector<std::string> systems;
  const std::map<std::string, tasks::Task>* tasks = nullptr;
  // The metrics each task is evaluated with (evaluation.metrics), the first being its primary one.
  const std::map<std::string, std::vector<std::string>>* metrics = nullptr;

  // Errors naming `key` in `view` and listing the valid names when `name` is not an agent / a
  // system / a task.
  void check_agent(const ConfigView& view, const std::string& key, const std::string& name) const;
  void check_system(const ConfigView& view, const std::string& key, const std::string& name) const;
  const tasks::Task& task(const ConfigView& view, const std::string& key,
                          const std::string& name) const;
};

// What a recipe's build step gets: the members, the systems built so far (every system the recipe
// refers to is among them), the tasks, and a folder of its own in the run folder for checkpoints.
struct BuildContext {
  std::map<std::string, collab::MemberPtr> members;
  std::map<std::string, collab::SystemPtr> systems;
  const std::map<std::string, tasks::Task>* tasks = nullptr;
  const std::map<std::string, std::vector<std::string>>* metrics = nullptr;
  std::filesystem::path folder;  // runs/<run>/systems/<name>, created
  bool resume = false;
  bool quiet = false;
  uint64_t seed = 0;
  int64_t batch_size = 32;  // examples per answer() call when a build step evaluates systems
  // What the build step did (training steps, losses, time, what it chose): report.json's
  // systems[].training. Left empty by kinds that do not train.
  nlohmann::json training = nlohmann::json::object();

  const collab::MemberPtr& member(const std::string& name) const;
  const collab::SystemPtr& system(const std::string& name) const;
};

struct SystemRecipe {
  std::string kind;
  std::vector<std::string> agents;   // the agents it calls directly
  std::vector<std::string> systems;  // the systems it calls (built before it; cycles are errors)
  bool trainable = false;
  std::function<collab::SystemPtr(BuildContext&)> build;
};

using SystemReader = std::function<SystemRecipe(const ConfigView& view, const std::string& name,
                                                const ReadContext& context)>;

// Registers a kind; twice is a chorus::Error.
void register_system_kind(const std::string& kind, SystemReader reader);
// The registered kinds, sorted (the built-in ones are registered on first use).
std::vector<std::string> system_kinds();
// The reader of `kind`; an unknown kind is a chorus::Error listing the kinds.
const SystemReader& system_reader(const std::string& kind);

// Answers every example of `examples` with `system` in batches of `batch_size`.
std::vector<collab::SystemAnswer> answer_all(collab::System& system, const std::string& task,
                                             const std::vector<tasks::Example>& examples,
                                             int64_t batch_size,
                                             collab::Transcript* transcript = nullptr);

}  // namespace chorus::experiment
