// Reading an experiment: agents, tasks, evaluation, then every system through its kind's reader.
#include "experiment/spec.h"

#include <torch/cuda.h>

#include <algorithm>
#include <functional>
#include <set>

#include "collab/responder.h"
#include "collab/systems.h"
#include "common/error.h"
#include "experiment/generation_config.h"
#include "experiment/scoring.h"
#include "train/kv_agents.h"
#include "train/task_completion_config.h"
#include "train/text_agents.h"

namespace chorus::experiment {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The agent a `pretrain:` key describes: a path to a `chorus pretrain` config, or the same config
// inline; a text agent when it has a data block, a key-value arithmetic agent otherwise (seed
// defaults to the experiment's).
void read_pretrain(const ConfigView& agent, AgentSpec& a, uint64_t experiment_seed) {
  std::shared_ptr<Config> file;
  ConfigView root = agent;
  if (agent.kind_of("pretrain") == ConfigValueKind::map) {
    root = agent.child("pretrain");
  } else {
    file = std::make_shared<Config>(Config::load(agent.get_path("pretrain", true)));
    root = file->root();
  }
  if (root.has("data")) {
    a.pretrain = std::make_shared<train::TextAgentSpec>(train::read_text_agent(root));
    a.pretrain->name = a.name;
  } else {
    root.get_choice("experiment", {"kv_arithmetic"}, std::string("kv_arithmetic"));
    root.get<std::string>("name",
                          a.name);  // a file's own name for the agent; the experiment's wins
    const auto seed =
        static_cast<uint64_t>(root.get_int("seed", static_cast<int64_t>(experiment_seed), 0));
    a.arithmetic_world = tasks::read_key_value_world(root.child_or_empty("world"), seed);
    a.pretrain_arithmetic = std::make_shared<train::KvAgentSpec>(
        train::read_kv_agent(root.child("agent"), a.name, seed));
    if (a.role.empty()) a.role = a.pretrain_arithmetic->role;
  }
  if (file) file->check_all_keys_used();
}

// cpu, or a CUDA device that exists: checked before any work.
void check_device(const ConfigView& v, const std::string& d) {
  if (d == "cpu") return;
  const bool cuda = d == "cuda" || d.rfind("cuda:", 0) == 0;
  CHORUS_CHECK(cuda, v.origin("device"), ": ", v.key_path("device"), ": unknown device '", d,
               "' (expected cpu, cuda or cuda:N)");
  CHORUS_CHECK(torch::cuda::is_available(), v.origin("device"), ": ", v.key_path("device"), ": '",
               d, "' asked for, but this machine has no CUDA device (use device: cpu)");
  throw Error(v.origin("device") + ": " + v.key_path("device") + ": '" + d +
              "': agents run on the CPU in this version; placing them on CUDA devices is not "
              "implemented yet");
}

AgentSpec read_agent(const ConfigView& v, const std::string& name, uint64_t seed,
                     const std::map<std::string, tasks::Task>& tasks) {
  AgentSpec a;
  a.name = name;
  a.role = v.get<std::string>("role", std::string());
  const bool has_model = v.has("model"), has_pretrain = v.has("pretrain");
  CHORUS_CHECK(
      has_model != has_pretrain, v.origin(""), ": ", v.path(),
      ": an agent needs exactly one of 'model' (a Hugging Face folder or a .h5 checkpoint) and "
      "'pretrain' (a chorus pretrain config, trained and cached)");
  if (has_model) {
    a.model = v.get_path("model", true);
  } else {
    read_pretrain(v, a, seed);
  }
  a.prompt_template = v.get<std::string>("prompt", std::string("{input}"));
  const auto prompts = v.child_or_empty("prompts");
  for (const auto& task : prompts.keys()) {
    const auto it = tasks.find(task);
    if (it == tasks.end()) {
      std::vector<std::string> names;
      for (const auto& [n, t] : tasks) names.push_back(n);
      throw Error(prompts.origin(task) + ": " + prompts.key_path(task) + ": no task called '" +
                  task + "' (tasks: " + joined(names) + ")");
    }
    const auto text = prompts.get<std::string>(task);
    for (const auto& slot : collab::template_slots(text)) {
      CHORUS_CHECK(std::find(it->second.fields.begin(), it->second.fields.end(), slot) !=
                       it->second.fields.end(),
                   prompts.origin(task), ": ", prompts.key_path(task), ": the template reads {",
                   slot, "} but task '", task, "' has the fields ", joined(it->second.fields));
    }
    a.prompts[task] = text;
  }
  if (v.has("generation")) {
    // Checked now (types, ranges, unknown keys); applied over the model's own defaults once it is
    // loaded.
    a.generation = std::make_shared<ConfigView>(v.child("generation"));
    (void)read_generation(*a.generation, model::GenerationOptions{});
  }
  a.device = v.get<std::string>("device", std::string("cpu"));
  check_device(v, a.device);
  return a;
}

EvaluationSpec read_evaluation(const Config& config, const ConfigView& v,
                               const std::map<std::string, tasks::Task>& tasks,
                               const std::vector<std::string>& task_order,
                               const std::vector<std::string>& agents) {
  EvaluationSpec e;
  e.split = v.get<std::string>("split", e.split);
  e.selection_split = v.get<std::string>("selection_split", e.selection_split);
  e.limit = v.get_int("limit", 0, 0);
  if (v.has("tasks")) {
    e.tasks = v.get<std::vector<std::string>>("tasks");
    for (const auto& t : e.tasks) {
      CHORUS_CHECK(tasks.count(t), v.origin("tasks"), ": ", v.key_path("tasks"),
                   ": no task called '", t, "' (tasks: ", joined(task_order), ")");
    }
  } else {
    e.tasks = task_order;
  }
  for (const auto& t : e.tasks) {
    CHORUS_CHECK(tasks.at(t).has_split(e.split), v.origin("split"), ": ", v.key_path("split"),
                 ": task '", t, "' has no split '", e.split,
                 "' (set evaluation.split, or evaluation.tasks to the tasks to evaluate)");
  }
  const auto metrics = v.child_or_empty("metrics");
  for (const auto& t : metrics.keys()) {
    CHORUS_CHECK(tasks.count(t), metrics.origin(t), ": ", metrics.key_path(t), ": no task called '",
                 t, "' (tasks: ", joined(task_order), ")");
  }
  for (const auto& t : e.tasks) {
    std::vector<std::string> names = {"em", "f1"};
    if (metrics.has(t)) names = metrics.get<std::vector<std::string>>(t);
    CHORUS_CHECK(!names.empty(), metrics.origin(t), ": ", metrics.key_path(t),
                 ": expected at least one metric");
    for (const auto& m : names) {
      const auto& valid = metric_names();
      if (std::find(valid.begin(), valid.end(), m) == valid.end()) {
        throw Error(metrics.origin(t) + ": " + metrics.key_path(t) + ": unknown metric '" + m +
                    "' (metrics: " + joined(valid) +
                    "; task completion and perplexity come from evaluation.task_completion and "
                    "evaluation.fluency)");
      }
      CHORUS_CHECK(!needs_references(m) || tasks.at(t).has_references, metrics.origin(t), ": ",
                   metrics.key_path(t), ": metric '", m,
                   "' compares outputs with references, but task '", t, "' has none (set tasks.", t,
                   ".references)");
    }
    e.metrics[t] = names;
  }
  e.completion = train::read_task_completion(config, v, e.tasks);
  const auto fluency = v.child_or_empty("fluency");
  e.fluency_lm = fluency.get<std::string>("lm", std::string());
  if (!e.fluency_lm.empty()) {
    CHORUS_CHECK(std::find(agents.begin(), agents.end(), e.fluency_lm) != agents.end(),
                 fluency.origin("lm"), ": ", fluency.key_path("lm"), ": no agent called '",
                 e.fluency_lm, "' (agents: ", joined(agents), ")");
  }
  e.resamples = static_cast<int>(v.get_int("bootstrap_resamples", 1000, 0, 1000000));
  e.bootstrap_seed = static_cast<uint64_t>(v.get_int("bootstrap_seed", 12345, 0));
  e.batch_size = v.get_int("batch_size", 32, 1);
  e.transcript_examples = v.get_int("transcript_examples", 20, 0);
  e.attention_examples = v.get_int("attention_examples", 4, 0);
  return e;
}

// Systems in an order where every system comes after the systems it calls; a cycle is an error
// naming the systems on it.
std::vector<SystemSpec> dependency_order(std::vector<SystemSpec> systems, const ConfigView& view) {
  std::map<std::string, const SystemSpec*> by_name;
  for (const auto& s : systems) by_name[s.name] = &s;
  std::vector<SystemSpec> out;
  std::map<std::string, int> state;  // 0 new, 1 on the path, 2 done
  std::vector<std::string> path;
  std::function<void(const SystemSpec&)> visit = [&](const SystemSpec& s) {
    if (state[s.name] == 2) return;
    if (state[s.name] == 1) {
      const auto start = std::find(path.begin(), path.end(), s.name);
      std::string chain;
      for (auto it = start; it != path.end(); ++it) chain += *it + " -> ";
      throw Error(view.origin(s.name) + ": systems: a cycle between systems: " + chain + s.name);
    }
    state[s.name] = 1;
    path.push_back(s.name);
    for (const auto& d : s.recipe.systems) visit(*by_name.at(d));
    path.pop_back();
    state[s.name] = 2;
    out.push_back(s);
  };
  for (const auto& s : systems) visit(s);
  return out;
}

}  // namespace

bool is_engine_config(const Config& config) {
  const auto root = config.root();
  return root.has("systems") || !root.has("experiment");
}

ExperimentSpec read_experiment(const Config& config) {
  const auto root = config.root();
  ExperimentSpec x;
  x.name = root.get<std::string>("name", std::filesystem::path(config.name()).stem().string());
  x.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
  x.threads = static_cast<int>(root.get_int("threads", 0, 0, 1024));
  const auto cache = root.get<std::string>("cache_dir", std::string());
  x.cache =
      cache.empty() ? train::default_agent_cache() : root.get_path("cache_dir", false) / "agents";

  const auto tasks = root.child("tasks");
  for (const auto& name : tasks.keys()) {
    x.tasks.emplace(name, tasks::read_task(tasks.child(name), name, x.seed));
    x.task_order.push_back(name);
  }
  CHORUS_CHECK(!x.task_order.empty(), config.origin("tasks"),
               ": tasks: expected at least one task");

  const auto agents = root.child("agents");
  std::vector<std::string> agent_names;
  for (const auto& name : agents.keys()) {
    x.agents.push_back(read_agent(agents.child(name), name, x.seed, x.tasks));
    agent_names.push_back(name);
  }
  CHORUS_CHECK(!agent_names.empty(), config.origin("agents"),
               ": agents: expected at least one agent");

  x.evaluation = read_evaluation(config, root.child_or_empty("evaluation"), x.tasks, x.task_order,
                                 agent_names);

  const auto systems = root.child_or_empty("systems");
  // Every agent may also be evaluated alone, as agent-<name> (evaluation.agents_alone): the
  // baselines the paired tests compare against, which other systems (a router's arms) may name.
  const bool alone = root.child_or_empty("evaluation").get<bool>("agents_alone", true);
  ReadContext context;
  context.seed = x.seed;
  context.agents = agent_names;
  context.systems = systems.keys();
  if (alone) {
    for (const auto& a : agent_names) {
      if (!systems.has("agent-" + a)) context.systems.push_back("agent-" + a);
    }
  }
  context.tasks = &x.tasks;
  context.metrics = &x.evaluation.metrics;
  std::vector<SystemSpec> specs;
  std::set<std::string> used_agents;
  std::set<std::string> referenced;
  for (const auto& name : systems.keys()) {
    const auto view = systems.child(name);
    const auto kind = view.get_choice("kind", system_kinds());
    SystemSpec s;
    s.name = name;
    s.recipe = system_reader(kind)(view, name, context);
    for (const auto& a : s.recipe.agents) used_agents.insert(a);
    for (const auto& d : s.recipe.systems) referenced.insert(d);
    specs.push_back(std::move(s));
  }
  // Baselines for every agent a system uses or names (every agent, when no system is declared).
  // The fluency model is a judge, not a baseline, unless a system uses it.
  if (alone) {
    std::vector<SystemSpec> baselines;
    for (const auto& a : agent_names) {
      const auto name = "agent-" + a;
      const bool used = used_agents.count(a) > 0 || referenced.count(name) > 0 ||
                        (specs.empty() && a != x.evaluation.fluency_lm);
      if (!used || systems.has(name)) continue;
      SystemSpec s;
      s.name = name;
      s.baseline = true;
      s.recipe.kind = "agent";
      s.recipe.agents = {a};
      s.recipe.build = [name, a](BuildContext& b) -> collab::SystemPtr {
        return std::make_shared<collab::AgentSystem>(name, b.member(a));
      };
      baselines.push_back(std::move(s));
    }
    specs.insert(specs.begin(), baselines.begin(), baselines.end());
  }
  CHORUS_CHECK(!specs.empty(), config.origin("systems"),
               ": systems: nothing to evaluate (declare systems, or "
               "leave evaluation.agents_alone true)");
  x.systems = dependency_order(std::move(specs), systems);
  config.check_all_keys_used();
  return x;
}

}  // namespace chorus::experiment
