// The key-value arithmetic experiment: agents, fusion teams, the text pipeline, evaluation, report.
#include "train/kv_experiment.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "collab/cost.h"
#include "collab/cross_agent_fusion.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/metrics/significance.h"
#include "model/generation/generate.h"
#include "train/kv_agents.h"
#include "train/parallel_jobs.h"
#include "train/kv_team.h"
#include "train/task_completion_config.h"
#include "train/seq2seq_training.h"
#include "train/trainer_config.h"

namespace chorus::train {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct EvalSet {
  std::string metric;  // kv_subs, num_math, kv_math_heldout, kv_math_train
  tasks::ArithmeticTask task;
  std::vector<tasks::ArithmeticExample> examples;
};

struct Plan {
  uint64_t seed = 0;
  int threads = 0;
  bool parallel = true;
  tasks::KeyValueArithmeticOptions world;
  std::filesystem::path cache;
  std::vector<KvAgentSpec> agents;
  std::vector<TeamSpec> teams;
  bool pipeline = true;
  std::string pipeline_first, pipeline_second;
  int64_t eval_examples = 1000;
  int64_t bootstrap_resamples = 1000;
  std::map<std::string, std::string> routes;  // metric -> agent answering it inside every team
  int64_t transcript_examples = 20;
  std::map<std::string, eval::TaskCompletionSpec> completion;  // metric -> its success predicate
};

Plan read_plan(const Config& config) {
  const auto root = config.root();
  Plan p;
  root.get_choice("experiment", {"kv_arithmetic"});
  p.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
  p.threads = static_cast<int>(root.get_int("threads", 0, 0, 1024));
  p.parallel = root.get<bool>("parallel", true);
  p.world = tasks::read_key_value_world(root.child_or_empty("world"), p.seed);
  const auto cache = root.get<std::string>("cache_dir", std::string());
  p.cache = cache.empty() ? default_agent_cache() : root.get_path("cache_dir", false);
  const auto agents = root.child("agents");
  for (const auto& name : agents.keys()) p.agents.push_back(read_kv_agent(agents.child(name), name, p.seed));
  CHORUS_CHECK(!p.agents.empty(), "agents: expected at least one agent");
  auto known = [&](const std::string& name, const std::string& where) {
    for (const auto& a : p.agents) {
      if (a.name == name) return;
    }
    std::string names;
    for (const auto& a : p.agents) names += (names.empty() ? "" : ", ") + a.name;
    throw Error(config.origin(where) + ": " + where + ": no agent called '" + name + "' (agents: " + names + ")");
  };
  const auto teams = root.child_or_empty("teams");
  for (const auto& name : teams.keys()) {
    p.teams.push_back(read_team(teams.child(name), name, p.seed));
    known(p.teams.back().anchor, "teams." + name + ".anchor");
    for (const auto& a : p.teams.back().augmenting) known(a, "teams." + name + ".augmenting");
  }
  const auto pipeline = root.child_or_empty("pipeline");
  p.pipeline = pipeline.get<bool>("enabled", root.has("pipeline"));
  if (p.pipeline) {
    p.pipeline_first = pipeline.get<std::string>("first");
    p.pipeline_second = pipeline.get<std::string>("second");
    known(p.pipeline_first, "pipeline.first");
    known(p.pipeline_second, "pipeline.second");
  }
  const auto evaluation = root.child_or_empty("evaluation");
  p.eval_examples = evaluation.get_int("examples", 1000, 1);
  p.bootstrap_resamples = evaluation.get_int("bootstrap_resamples", 1000, 10);
  p.transcript_examples = evaluation.get_int("transcript_examples", 20, 0);
  const auto routes = evaluation.child_or_empty("routes");
  for (const auto& metric : routes.keys()) {
    CHORUS_CHECK(metric == "kv_subs" || metric == "num_math" || metric == "kv_math_heldout" || metric == "kv_math_train",
                 config.origin("evaluation.routes." + metric), ": evaluation.routes.", metric,
                 ": unknown metric (expected kv_subs, num_math, kv_math_heldout or kv_math_train)");
    p.routes[metric] = routes.get<std::string>(metric);
    known(p.routes[metric], "evaluation.routes." + metric);
  }
  p.completion = read_task_completion(config, evaluation, {"kv_subs", "num_math", "kv_math_heldout", "kv_math_train"});
  config.check_all_keys_used();
  return p;
}

// Outputs of a system on a set, in batches.
template <class Answer>
std::vector<std::string> answer_all(const std::vector<tasks::ArithmeticExample>& examples, Answer&& answer, size_t batch = 250) {
  std::vector<std::string> out;
  for (size_t start = 0; start < examples.size(); start += batch) {
    const auto part = answer(inputs_of(examples, start, std::min(examples.size(), start + batch)));
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

struct SystemResult {
  std::string name;
  std::string description;
  std::map<std::string, std::vector<std::string>> outputs;  // metric -> outputs
  std::map<std::string, std::string> answered_by;           // metric -> who produced the outputs
  std::map<std::string, collab::ComputeCost> cost;          // metric -> summed over the set's examples
};

// Token counts as the agent sees them: the prompt with its special tokens, the output up to and
// including its end-of-sequence token.
int64_t tokens_of(const collab::Agent& agent, const std::string& text) {
  return static_cast<int64_t>(agent.tokenizer->encode(agent.prompt(text)).size());
}
int64_t output_tokens_of(const collab::Agent& agent, const std::string& text) {
  return static_cast<int64_t>(agent.tokenizer->encode(text).size());
}

// One agent answering `input` with `output`.
collab::ComputeCost agent_call(const collab::Agent& agent, const std::string& input, const std::string& output) {
  return collab::seq2seq_call_cost(*agent.model, tokens_of(agent, input), output_tokens_of(agent, output));
}

// A fusion team answering one input: each augmenting agent runs (its encoder, and for decoder
// states its own greedy decoding, which is what it answers alone), the anchor's encoder runs a
// second time when the queries come from another layer than the injection, the head's projections
// and attention, then the anchor answers.
collab::ComputeCost team_call(const collab::Agent& anchor, const std::vector<const collab::Agent*>& others,
                              const std::vector<std::string>& other_outputs, const TeamSpec& spec,
                              const std::string& input, const std::string& output) {
  collab::ComputeCost cost = agent_call(anchor, input, output);
  const auto& a = anchor.model->config();
  const double nq = static_cast<double>(tokens_of(anchor, input));
  const double inner = static_cast<double>(spec.fusion.heads * spec.fusion.head_dim);
  double head = 2 * nq * a.d_model * inner;  // queries
  double keys = spec.fusion.null_slot ? 1 : 0;
  for (size_t i = 0; i < others.size(); ++i) {
    const auto& o = others[i]->model->config();
    const bool decodes = spec.states == StatesSource::decoder;
    const auto produced = decodes ? output_tokens_of(*others[i], other_outputs[i]) : 0;
    cost += collab::seq2seq_call_cost(*others[i]->model, tokens_of(*others[i], input), produced);
    const double nk = decodes ? static_cast<double>(produced) : static_cast<double>(tokens_of(*others[i], input));
    keys += nk;
    head += 2 * nk * o.d_model * inner;  // keys
    head += spec.fusion.value_source == collab::ValueSource::bridge ? 2 * nk * o.vocab_size * a.d_model
                                                                    : 2 * nk * o.d_model * a.d_model;  // values
  }
  head += 2 * 2 * nq * keys * (inner + a.d_model);  // scores (H.D wide) and weighted values (d wide)
  if (spec.query_layer != spec.inject_layer) head += collab::seq2seq_call_flops(a, static_cast<int64_t>(nq), 0);
  cost.flops += head;
  return cost;
}


eval::SegmentStatistics correctness(const std::vector<std::string>& outputs, const std::vector<tasks::ArithmeticExample>& examples) {
  eval::SegmentStatistics stats;
  stats.width = 2;
  for (size_t i = 0; i < outputs.size(); ++i) stats.append({outputs[i] == examples[i].target ? 1.0 : 0.0, 1.0});
  return stats;
}

// One attention.jsonl line per example and head.
void append_attention(std::string& lines, const std::string& system, const std::string& set,
                      const std::vector<TeamInspection>& inspections, const std::vector<std::string>& augmenting,
                      int64_t layer) {
  std::string agents;
  for (const auto& a : augmenting) agents += (agents.empty() ? "" : ",") + a;
  for (size_t e = 0; e < inspections.size(); ++e) {
    const auto& r = inspections[e];
    for (int64_t h = 0; h < r.attention.size(0); ++h) {
      const auto p = r.attention[h].to(torch::kDouble).contiguous();
      nlohmann::json weights = nlohmann::json::array();
      for (int64_t q = 0; q < p.size(0); ++q) {
        const auto row = p[q];
        weights.push_back(std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + row.numel()));
      }
      lines += nlohmann::json{{"system", system},   {"set", set},
                              {"example", e},       {"agent", agents},
                              {"layer", layer},     {"head", h},
                              {"query_tokens", r.query_tokens}, {"key_tokens", r.key_tokens},
                              {"weights", weights}, {"gate", r.gate},
                              {"state_norm", r.state_norm}, {"message_norm", r.message_norm}}
                   .dump() +
               "\n";
    }
  }
}

// How the head behaves on 200 examples of each KV-MATH set: the attention on the aligned step of
// the other agent (query position i reading that agent's position i, which is where the value of
// the key at position i is decoded), the gate, and how large the message is next to the state.
nlohmann::json attention_diagnostics(FusedTeam& team, const std::vector<EvalSet>& sets) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& set : sets) {
    const auto n = std::min<size_t>(200, set.examples.size());
    const auto inspections = team.inspect(inputs_of(set.examples, 0, n), team.task_index(set.task));
    double aligned = 0, null_weight = 0, gate = 0, ratio = 0;
    int64_t count = 0;
    const int64_t null_columns = team.head()->options().null_slot ? 1 : 0;
    for (const auto& r : inspections) {
      const auto mean_heads = r.attention.mean(0);  // [queries, keys]
      for (size_t q = 0; q + 1 < r.query_tokens.size(); q += 2) {  // operand positions 0 and 2
        const auto column = null_columns + static_cast<int64_t>(q);
        if (column >= mean_heads.size(1)) continue;
        aligned += mean_heads[static_cast<int64_t>(q)][column].item<double>();
        if (null_columns) null_weight += mean_heads[static_cast<int64_t>(q)][0].item<double>();
        gate += r.gate[q];
        ratio += r.message_norm[q] / std::max(r.state_norm[q], 1e-12);
        ++count;
      }
    }
    const double c = std::max<int64_t>(count, 1);
    out[set.metric] = {{"aligned_attention", aligned / c},
                       {"null_attention", null_weight / c},
                       {"gate", gate / c},
                       {"message_to_state_norm", ratio / c},
                       {"operand_positions", count}};
  }
  return out;
}

// The phase times of the report.json an earlier run wrote into `folder` (an empty object when there
// is none or it cannot be read): a resumed run that skips a finished phase keeps that phase's time,
// since its work was done then, not in the few milliseconds of finding it done.
nlohmann::json earlier_phases(const std::filesystem::path& folder) {
  std::ifstream in(folder / "report.json");
  if (!in) return nlohmann::json::object();
  const auto report = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!report.is_object() || !report.contains("phases") || !report["phases"].is_object()) return nlohmann::json::object();
  return report["phases"];
}

// Sets phases[name] to the earlier run's entry (marked as such) when the phase was skipped now and
// the earlier run timed it; otherwise to `now`.
void record_phase(nlohmann::json& phases, const std::string& name, nlohmann::json now, bool skipped,
                  const nlohmann::json& earlier) {
  if (skipped && earlier.contains(name) && earlier[name].is_object() && earlier[name].contains("seconds")) {
    auto kept = earlier[name];
    kept["from_earlier_run"] = true;
    for (const auto& [key, value] : now.items()) {
      if (key != "seconds") kept[key] = value;
    }
    phases[name] = kept;
    return;
  }
  phases[name] = std::move(now);
}

}  // namespace

std::filesystem::path run_kv_arithmetic_experiment(const Config& config, const ExperimentRun& run) {
  namespace fs = std::filesystem;
  const auto total_start = Clock::now();
  const auto plan = read_plan(config);  // every config error surfaces here, before any work
  // An experiment's run folder holds one trainer run per phase (pretrain/<agent>, teams/<team>),
  // each resumed from its own latest checkpoint; the folder itself only has to hold a run.
  if (run.mode == RunMode::resume) {
    CHORUS_CHECK(fs::is_regular_file(config_path(run.folder)), "cannot resume: '", run.folder.string(),
                 "' holds no run (no config.yaml); start it without --resume");
  } else {
    prepare_run_folder(run.folder, run.mode);
  }
  save_resolved_config(run.folder, config.to_yaml(), run.evaluation_changed);
  const auto provenance = run_provenance(config.to_yaml());
  if (plan.threads > 0) at::set_num_threads(plan.threads);
  auto say = [&](const std::string& line) {
    if (!run.quiet) std::cerr << line << std::endl;
  };
  const bool resume = run.mode == RunMode::resume;
  nlohmann::json phases = nlohmann::json::object();
  const nlohmann::json earlier = resume ? earlier_phases(run.folder) : nlohmann::json::object();
  bool reused_any = false;

  // 1. The world and its agents (cached by fingerprint).
  const tasks::KeyValueArithmetic world(plan.world);
  auto phase_start = Clock::now();
  std::vector<PretrainResult> pretrained(plan.agents.size());
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    jobs.push_back([&, i] {
      const auto& spec = plan.agents[i];
      auto spec_quiet = spec;
      spec_quiet.trainer.show_progress = !run.quiet;
      spec_quiet.trainer.plain_progress = plan.parallel;
      const auto folder = plan.cache / (spec.name + "-" + spec.fingerprint(plan.world));
      pretrained[i] = pretrain_kv_agent(world, spec_quiet, folder, run.folder / "pretrain" / spec.name, resume);
    });
  }
  say("pretraining " + std::to_string(plan.agents.size()) + " agents (cache: " + plan.cache.string() + ")");
  run_jobs(jobs, plan.parallel);
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    say("  agent " + plan.agents[i].name + ": " + (pretrained[i].cached ? "from the cache" : "trained") +
        ", exact match on its task " + std::to_string(pretrained[i].exact_match) + "  (" + pretrained[i].folder.string() + ")");
    record_phase(phases, "pretrain_" + plan.agents[i].name,
                 {{"seconds", pretrained[i].seconds}, {"cached", pretrained[i].cached}}, pretrained[i].cached, earlier);
  }
  const bool all_cached = std::all_of(pretrained.begin(), pretrained.end(), [](const auto& p) { return p.cached; });
  record_phase(phases, "pretrain", {{"seconds", since(phase_start)}}, all_cached, earlier);
  reused_any = reused_any || (all_cached && phases["pretrain"].value("from_earlier_run", false));

  std::map<std::string, collab::Agent> agents;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    agents.emplace(plan.agents[i].name,
                   collab::load_agent(plan.agents[i].name, pretrained[i].folder, plan.agents[i].role));
  }

  // 2. Fusion heads over the frozen agents.
  phase_start = Clock::now();
  std::vector<std::unique_ptr<FusedTeam>> teams;
  std::vector<std::unique_ptr<TeamTrainingProblem>> problems;
  jobs.clear();
  std::vector<double> team_seconds(plan.teams.size());
  std::vector<char> team_skipped(plan.teams.size(), 0);  // finished before this call: nothing trained now
  for (size_t i = 0; i < plan.teams.size(); ++i) {
    // Each head's initial weights depend only on the seed and its place in the config (not on
    // whatever drew from the global generator before, e.g. agents trained now or found cached).
    torch::manual_seed(stream_seed(plan.seed, static_cast<int64_t>(i), 0x7EA));
    teams.push_back(std::make_unique<FusedTeam>(plan.teams[i], agents));
    problems.push_back(std::make_unique<TeamTrainingProblem>(*teams.back(), plan.teams[i], world, plan.seed));
    jobs.push_back([&, i] {
      const auto start = Clock::now();
      const auto folder = run.folder / "teams" / plan.teams[i].name;
      const bool team_resume = resume && fs::is_regular_file(latest_checkpoint_path(folder));
      prepare_run_folder(folder, team_resume ? RunMode::resume : RunMode::overwrite);
      auto options = plan.teams[i].trainer;
      options.show_progress = !run.quiet;
      options.plain_progress = plan.parallel;
      team_skipped[i] = train(*problems[i], options, folder, team_resume).losses.empty() && team_resume;
      if (fs::is_regular_file(best_checkpoint_path(folder))) {
        load_parameters(best_checkpoint_path(folder), problems[i]->parameters());
      }
      team_seconds[i] = since(start);
    });
  }
  say("training " + std::to_string(plan.teams.size()) + " fusion heads over the frozen agents");
  run_jobs(jobs, plan.parallel);
  for (size_t i = 0; i < plan.teams.size(); ++i) {
    record_phase(phases, "team_" + plan.teams[i].name,
                 {{"seconds", team_seconds[i]}, {"parameters", teams[i]->head()->parameter_count()}},
                 team_skipped[i] != 0, earlier);
  }
  const bool all_skipped = std::all_of(team_skipped.begin(), team_skipped.end(), [](char k) { return k != 0; });
  record_phase(phases, "teams", {{"seconds", since(phase_start)}}, all_skipped, earlier);
  reused_any = reused_any || (all_skipped && phases["teams"].value("from_earlier_run", false));

  // 3. Evaluation of every system on the same examples.
  phase_start = Clock::now();
  torch::NoGradGuard no_grad;
  std::vector<EvalSet> sets = {
      {"kv_subs", tasks::ArithmeticTask::kv_subs, tasks::arithmetic_examples(world, tasks::ArithmeticTask::kv_subs, tasks::ArithmeticSampling{}, plan.eval_examples, plan.seed * 1000 + 1)},
      {"num_math", tasks::ArithmeticTask::num_math, tasks::arithmetic_examples(world, tasks::ArithmeticTask::num_math, tasks::ArithmeticSampling{}, plan.eval_examples, plan.seed * 1000 + 2)},
      {"kv_math_heldout", tasks::ArithmeticTask::kv_math,
       tasks::arithmetic_examples(world, tasks::ArithmeticTask::kv_math, tasks::ArithmeticSampling{0.0, 0.0, tasks::KeySet::heldout}, plan.eval_examples, plan.seed * 1000 + 3)},
      {"kv_math_train", tasks::ArithmeticTask::kv_math,
       tasks::arithmetic_examples(world, tasks::ArithmeticTask::kv_math, tasks::ArithmeticSampling{0.0, 0.0, tasks::KeySet::train}, plan.eval_examples, plan.seed * 1000 + 4)}};
  model::GenerationOptions greedy;
  greedy.max_new_tokens = 8;
  std::vector<SystemResult> systems;
  std::string attention_lines;  // attention.jsonl: the head's attention on the transcript examples
  nlohmann::json diagnostics = nlohmann::json::object();
  std::map<std::string, std::map<std::string, std::vector<std::string>>> agent_outputs;
  for (const auto& spec : plan.agents) {
    SystemResult r;
    r.name = "agent-" + spec.name;
    r.description = "agent '" + spec.name + "' alone" + (spec.role.empty() ? "" : " (" + spec.role + ")");
    const auto& agent = agents.at(spec.name);
    for (const auto& set : sets) {
      const auto start = Clock::now();
      r.outputs[set.metric] = answer_all(set.examples, [&](const auto& in) { return agent.generate_text(in, greedy); });
      r.cost[set.metric].seconds = since(start);
      for (size_t e = 0; e < set.examples.size(); ++e) {
        r.cost[set.metric] += agent_call(agent, set.examples[e].input, r.outputs[set.metric][e]);
      }
      r.answered_by[set.metric] = spec.name;
    }
    agent_outputs[spec.name] = r.outputs;
    systems.push_back(std::move(r));
  }
  std::map<std::string, std::map<std::string, collab::ComputeCost>> agent_costs;
  for (const auto& system : systems) agent_costs[system.name.substr(6)] = system.cost;
  auto apply_routes = [&](SystemResult& r) {
    for (const auto& [metric, agent] : plan.routes) {
      r.outputs[metric] = agent_outputs.at(agent).at(metric);
      r.cost[metric] = agent_costs.at(agent).at(metric);
      r.answered_by[metric] = agent;
    }
  };
  for (size_t i = 0; i < plan.teams.size(); ++i) {
    const auto& spec = plan.teams[i];
    SystemResult r;
    r.name = "team-" + spec.name;
    std::string others;
    for (const auto& a : spec.augmenting) others += (others.empty() ? "" : ", ") + a;
    r.description = "anchor '" + spec.anchor + "' attending to " + others + " through a fusion head (values: " +
                    collab::to_string(spec.fusion.value_source) + ")";
    std::vector<const collab::Agent*> other_agents;
    for (const auto& name : spec.augmenting) other_agents.push_back(&agents.at(name));
    for (const auto& set : sets) {
      const auto start = Clock::now();
      const int64_t task = teams[i]->task_index(set.task);
      r.outputs[set.metric] = answer_all(set.examples, [&](const auto& in) { return teams[i]->answer(in, task); });
      r.cost[set.metric].seconds = since(start);
      for (size_t e = 0; e < set.examples.size(); ++e) {
        std::vector<std::string> other_outputs;
        for (const auto& name : spec.augmenting) other_outputs.push_back(agent_outputs.at(name).at(set.metric)[e]);
        r.cost[set.metric] += team_call(agents.at(spec.anchor), other_agents, other_outputs, spec, set.examples[e].input,
                                        r.outputs[set.metric][e]);
      }
      r.answered_by[set.metric] = "fusion";
      const auto shown = std::min<size_t>(static_cast<size_t>(plan.transcript_examples), set.examples.size());
      if (shown > 0) {
        append_attention(attention_lines, r.name, set.metric, teams[i]->inspect(inputs_of(set.examples, 0, shown), task),
                         spec.augmenting, spec.inject_layer);
      }
    }
    diagnostics[r.name] = attention_diagnostics(*teams[i], sets);
    apply_routes(r);
    systems.push_back(std::move(r));
  }
  if (plan.pipeline) {
    SystemResult r;
    r.name = "team-pipeline";
    r.description = "text pipeline: '" + plan.pipeline_first + "' answers, its output is '" + plan.pipeline_second + "''s input";
    const auto& first = agents.at(plan.pipeline_first);
    const auto& second = agents.at(plan.pipeline_second);
    for (const auto& set : sets) {
      const auto start = Clock::now();
      std::vector<std::string> middle;
      r.outputs[set.metric] = answer_all(set.examples, [&](const auto& in) {
        const auto rewritten = first.generate_text(in, greedy);
        middle.insert(middle.end(), rewritten.begin(), rewritten.end());
        return second.generate_text(rewritten, greedy);
      });
      r.cost[set.metric].seconds = since(start);
      for (size_t e = 0; e < set.examples.size(); ++e) {
        r.cost[set.metric] += agent_call(first, set.examples[e].input, middle[e]) +
                              agent_call(second, middle[e], r.outputs[set.metric][e]);
      }
      r.answered_by[set.metric] = "pipeline";
    }
    apply_routes(r);
    systems.push_back(std::move(r));
  }
  phases["evaluation"] = {{"seconds", since(phase_start)}};

  // 4. The report: exact match with bootstrap intervals, paired tests against each agent alone.
  const eval::ScoreFromTotals fraction = [](const std::vector<double>& t) { return t[1] > 0 ? t[0] / t[1] : 0.0; };
  eval::BootstrapParams bootstrap;
  bootstrap.resamples = static_cast<int>(plan.bootstrap_resamples);
  bootstrap.seed = 12345 + plan.seed;
  nlohmann::json report_systems = nlohmann::json::array();
  std::ofstream transcripts;
  nlohmann::json transcript_lines = nlohmann::json::array();
  for (const auto& system : systems) {
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& set : sets) {
      const auto& outputs = system.outputs.at(set.metric);
      const auto stats = correctness(outputs, set.examples);
      const auto ci = eval::bootstrap_confidence_interval(stats, fraction, bootstrap);
      metrics[set.metric] = {{"value", ci.score},
                             {"ci95", {ci.low, ci.high}},
                             {"ci_half_width", ci.half_width},
                             {"n", set.examples.size()},
                             {"answered_by", system.answered_by.at(set.metric)}};
      // The set's declared success predicate, when it has one.
      const auto predicate = plan.completion.find(set.metric);
      std::vector<eval::PredicateOutcome> outcomes;
      if (predicate != plan.completion.end()) {
        std::vector<std::vector<std::string>> references;
        for (const auto& ex : set.examples) references.push_back({ex.target});
        auto completion = score_task_completion(predicate->second, outputs, references, bootstrap);
        completion.metric["answered_by"] = system.answered_by.at(set.metric);
        metrics[completion_metric(set.metric)] = completion.metric;
        outcomes = std::move(completion.outcomes);
      }
      for (int64_t i = 0; i < std::min<int64_t>(plan.transcript_examples, static_cast<int64_t>(set.examples.size())); ++i) {
        const auto& ex = set.examples[static_cast<size_t>(i)];
        nlohmann::json line = {{"system", system.name},
                               {"set", set.metric},
                               {"input", ex.input},
                               {"target", ex.target},
                               {"output", outputs[static_cast<size_t>(i)]}};
        if (!outcomes.empty()) {
          line["completed"] = outcomes[static_cast<size_t>(i)].success;
          if (!outcomes[static_cast<size_t>(i)].success) line["completion_failure"] = outcomes[static_cast<size_t>(i)].reason;
        }
        transcript_lines.push_back(std::move(line));
      }
    }
    // Cost: mean per example over every set, and per set.
    collab::ComputeCost total;
    double examples = 0;
    nlohmann::json per_set = nlohmann::json::object();
    for (const auto& set : sets) {
      const auto& c = system.cost.at(set.metric);
      total += c;
      examples += static_cast<double>(set.examples.size());
      per_set[set.metric] = collab::to_json(c.per_example(static_cast<double>(set.examples.size())));
    }
    report_systems.push_back({{"name", system.name},
                              {"description", system.description},
                              {"metrics", metrics},
                              {"cost", collab::to_json(total.per_example(examples))},
                              {"cost_per_set", per_set}});
  }
  nlohmann::json comparisons = nlohmann::json::array();
  for (const auto& system : systems) {
    if (system.name.rfind("team-", 0) != 0) continue;
    for (const auto& baseline : systems) {
      if (baseline.name.rfind("agent-", 0) != 0) continue;
      for (const auto& set : sets) {
        if (system.answered_by.at(set.metric) == baseline.name.substr(6)) continue;  // same outputs
        const auto base = correctness(baseline.outputs.at(set.metric), set.examples);
        const auto ours = correctness(system.outputs.at(set.metric), set.examples);
        if (base.values == ours.values) {
          // Identical per-example scores: every resample differs by exactly zero. sacrebleu's
          // convention would report p = 1/(n+1) here (ties are not attributed to chance), which
          // reads as a significant difference where there is none.
          comparisons.push_back({{"system", system.name},
                                 {"baseline", baseline.name},
                                 {"metric", set.metric},
                                 {"difference", 0.0},
                                 {"p_value", 1.0},
                                 {"test", "identical per-example scores"}});
          continue;
        }
        const auto test = eval::paired_bootstrap_test(base, ours, fraction, bootstrap);
        comparisons.push_back({{"system", system.name},
                               {"baseline", baseline.name},
                               {"metric", set.metric},
                               {"difference", test.system_score - test.baseline_score},
                               {"p_value", test.p_value},
                               {"test", "paired bootstrap"}});
      }
    }
  }
  // A re-evaluation: the run's total stays the earlier one (its training happened then); this
  // call's own wall time is recorded beside it, and "evaluation" above is this call's.
  record_phase(phases, "total", {{"seconds", since(total_start)}}, reused_any, earlier);
  if (phases["total"].value("from_earlier_run", false)) phases["reevaluation"] = {{"seconds", since(total_start)}};
  nlohmann::json report = {
      {"experiment", "kv_arithmetic"},
      {"seed", plan.seed},
      {"config_hash", provenance.config_hash},
      {"versions", {{"chorus", provenance.chorus_version}, {"libtorch", provenance.libtorch_version},
                    {"cuda_kernels", provenance.cuda_kernels}}},
      {"world", {{"keys", plan.world.keys}, {"max_value", plan.world.max_value}, {"train_keys", plan.world.train_keys}}},
      {"metric_definitions",
       {{"kv_subs", "exact match: replace each key of an expression over keys by its value"},
        {"num_math", "exact match: evaluate an expression over integers"},
        {"kv_math_heldout", "exact match: evaluate an expression over two keys never used in fusion training"},
        {"kv_math_train", "exact match: evaluate an expression over two keys of the fusion training subset"}}},
      {"routes", plan.routes},
      {"cost_definition",
       "mean per example over every set (cost_per_set: per set); agent_calls counts prompts answered, "
       "tokens_in/out as each agent tokenizes them (special tokens included), flops estimated from the "
       "models' shapes without padding (collab/cost.h; fusion teams add the head and the anchor's second "
       "encoder pass), seconds is wall time of batched greedy decoding on this machine"},
      {"systems", report_systems},
      {"comparisons", comparisons},
      {"phases", phases},
      {"fusion_diagnostics", diagnostics},
      {"threads", at::get_num_threads()}};
  std::string transcript_text;
  for (const auto& line : transcript_lines) transcript_text += line.dump() + "\n";
  write_file_atomically(run.folder / "transcripts.jsonl", transcript_text);
  write_file_atomically(run.folder / "attention.jsonl", attention_lines);
  for (const auto& [metric, spec] : plan.completion)
    report["metric_definitions"][completion_metric(metric)] = "task completion on " + metric + ": " + eval::describe(spec);
  const auto report_path = run.folder / "report.json";
  write_file_atomically(report_path, report.dump(2) + "\n");

  // A short table on the terminal.
  if (!run.quiet) {
    std::cerr << "\n" << std::left;
    char line[256];
    std::snprintf(line, sizeof line, "%-16s %10s %10s %16s %14s\n", "system", "kv_subs", "num_math", "kv_math_heldout",
                  "kv_math_train");
    std::cerr << line;
    for (const auto& s : report_systems) {
      const auto& m = s["metrics"];
      std::snprintf(line, sizeof line, "%-16s %10.3f %10.3f %16.3f %14.3f\n", s["name"].get<std::string>().c_str(),
                    m["kv_subs"]["value"].get<double>(), m["num_math"]["value"].get<double>(),
                    m["kv_math_heldout"]["value"].get<double>(), m["kv_math_train"]["value"].get<double>());
      std::cerr << line;
    }
    if (!plan.completion.empty()) {
      // Task completion, in the same set order, with what each predicate checks.
      std::cerr << "\n" << std::setw(16) << "task completion";
      for (const auto& set : sets) {
        if (plan.completion.count(set.metric)) std::cerr << " " << std::right << std::setw(16) << set.metric << std::left;
      }
      std::cerr << "\n";
      for (const auto& s : report_systems) {
        std::cerr << std::setw(16) << s["name"].get<std::string>();
        for (const auto& set : sets) {
          if (!plan.completion.count(set.metric)) continue;
          std::snprintf(line, sizeof line, " %16.3f", s["metrics"][completion_metric(set.metric)]["value"].get<double>());
          std::cerr << line;
        }
        std::cerr << "\n";
      }
      for (const auto& set : sets) {
        const auto predicate = plan.completion.find(set.metric);
        if (predicate != plan.completion.end()) std::cerr << "  " << set.metric << ": " << eval::describe(predicate->second) << "\n";
      }
    }
    std::snprintf(line, sizeof line, "total %.1f s\n", since(total_start));
    std::cerr << line;
  }
  return report_path;
}

}  // namespace chorus::train
