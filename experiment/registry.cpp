// The system registry and the name checks readers share.
#include "experiment/registry.h"

#include <algorithm>
#include <mutex>

#include "common/error.h"
#include "experiment/kinds/kinds.h"

namespace chorus::experiment {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none declared" : out;
}

struct Registry {
  std::mutex mutex;
  std::map<std::string, SystemReader> readers;
  bool builtins = false;
};

Registry& registry() {
  static Registry r;
  return r;
}

void ensure_builtins() {
  {
    std::lock_guard<std::mutex> lock(registry().mutex);
    if (registry().builtins) return;
    registry().builtins = true;
  }
  register_mechanism_kinds();
  register_fusion_kind();
  register_graph_select_kind();
  register_router_kind();
}

}  // namespace

void ReadContext::check_agent(const ConfigView& view, const std::string& key,
                              const std::string& name) const {
  if (std::find(agents.begin(), agents.end(), name) != agents.end()) return;
  throw Error(view.origin(key) + ": " + view.key_path(key) + ": no agent called '" + name +
              "' (agents: " + joined(agents) + ")");
}

void ReadContext::check_system(const ConfigView& view, const std::string& key,
                               const std::string& name) const {
  if (std::find(systems.begin(), systems.end(), name) != systems.end()) return;
  throw Error(view.origin(key) + ": " + view.key_path(key) + ": no system called '" + name +
              "' (systems: " + joined(systems) + ")");
}

const tasks::Task& ReadContext::task(const ConfigView& view, const std::string& key,
                                     const std::string& name) const {
  const auto it = tasks->find(name);
  if (it != tasks->end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, t] : *tasks) names.push_back(n);
  throw Error(view.origin(key) + ": " + view.key_path(key) + ": no task called '" + name +
              "' (tasks: " + joined(names) + ")");
}

const collab::MemberPtr& BuildContext::member(const std::string& name) const {
  const auto it = members.find(name);
  CHORUS_CHECK(it != members.end(), "no agent called '", name, "' has been built");
  return it->second;
}

const collab::SystemPtr& BuildContext::system(const std::string& name) const {
  const auto it = systems.find(name);
  CHORUS_CHECK(it != systems.end(), "no system called '", name, "' has been built");
  return it->second;
}

void register_system_kind(const std::string& kind, SystemReader reader) {
  std::lock_guard<std::mutex> lock(registry().mutex);
  CHORUS_CHECK(registry().readers.emplace(kind, std::move(reader)).second, "system kind '", kind,
               "' registered twice");
}

std::vector<std::string> system_kinds() {
  ensure_builtins();
  std::lock_guard<std::mutex> lock(registry().mutex);
  std::vector<std::string> kinds;
  for (const auto& [kind, reader] : registry().readers) kinds.push_back(kind);
  return kinds;
}

const SystemReader& system_reader(const std::string& kind) {
  ensure_builtins();
  std::lock_guard<std::mutex> lock(registry().mutex);
  const auto it = registry().readers.find(kind);
  if (it != registry().readers.end()) return it->second;
  std::vector<std::string> kinds;
  for (const auto& [k, reader] : registry().readers) kinds.push_back(k);
  throw Error("unknown system kind '" + kind + "' (kinds: " + joined(kinds) + ")");
}

std::vector<collab::SystemAnswer> answer_all(collab::System& system, const std::string& task,
                                             const std::vector<tasks::Example>& examples,
                                             int64_t batch_size, collab::Transcript* transcript) {
  std::vector<collab::SystemAnswer> out;
  out.reserve(examples.size());
  const auto step = static_cast<size_t>(std::max<int64_t>(1, batch_size));
  for (size_t begin = 0; begin < examples.size(); begin += step) {
    collab::Batch batch;
    batch.task = task;
    for (size_t i = begin; i < std::min(examples.size(), begin + step); ++i)
      batch.examples.push_back(&examples[i]);
    collab::Transcript local;
    auto answers = system.answer(batch, transcript ? &local : nullptr);
    CHORUS_CHECK(answers.size() == batch.examples.size(), "system '", system.name(), "' gave ",
                 answers.size(), " answers for ", batch.examples.size(), " examples");
    if (transcript != nullptr) {
      for (auto message : local.messages()) {
        // Example indices become positions in `examples`.
        const auto e = message.metadata.value("example", int64_t{-1});
        if (e >= 0) message.metadata["example"] = static_cast<int64_t>(begin) + e;
        transcript->append(std::move(message));
      }
    }
    for (auto& a : answers) out.push_back(std::move(a));
  }
  return out;
}

}  // namespace chorus::experiment
