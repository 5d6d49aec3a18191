// The router experiment: a task mix over the key-value world, arms built from frozen agents (one
// agent, pipelines, votes, negotiation, consensus rules, self-consistency, a learned answer
// selector), one router trained per lambda and objective, each router calibrated to cost budgets on
// the validation requests, all evaluated against every fixed arm, the best single agent and an
// oracle.
#include "train/kv_router.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "collab/cost.h"
#include "collab/responder.h"
#include "collab/router.h"
#include "collab/voting.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/metrics/significance.h"
#include "train/kv_agents.h"
#include "train/kv_router_arms.h"
#include "train/parallel_jobs.h"
#include "train/seq2seq_training.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Longest answer an agent may generate: an expression of the world is a few tokens (each number is
// one token).
constexpr int64_t kMaxNewTokens = 8;

// The sets a request may come from, as the quickstart names its evaluation sets.
const std::vector<std::string> kSets = {"kv_subs", "num_math", "kv_math_heldout", "kv_math_train"};

// The request's instruction: KV-SUBS asks for a rewrite, the others for a value. KV-SUBS and
// KV-MATH share their expressions, so without it no one could tell them apart; agents see the
// expression only.
bool is_rewrite(size_t set) { return set == 0; }

struct Plan {
  uint64_t seed = 0;
  int threads = 0;
  bool parallel = true;
  tasks::KeyValueArithmeticOptions world;
  fs::path cache;
  std::vector<KvAgentSpec> agents;
  std::vector<double> mix;  // weight per kSets entry
  std::vector<ArmSpec> arms;
  std::string cost_measure = "flops";
  std::vector<double> lambdas;
  std::vector<double> budgets;  // fractions of the validation-best team's mean cost
  collab::RouterOptions policy;
  collab::RouterTrainingOptions training;
  std::vector<collab::PolicyObjective> objectives;  // one router per lambda and objective
  int64_t train_examples = 2000, validation_examples = 500, test_examples = 1000;
  int64_t bootstrap_resamples = 1000;
  int64_t transcript_examples = 20;
  double target_score_fraction = 0.95, target_cost_fraction = 0.60;
};

Plan read_plan(const Config& config) {
  const auto root = config.root();
  Plan p;
  root.get_choice("experiment", {"kv_router"});
  p.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
  p.threads = static_cast<int>(root.get_int("threads", 0, 0, 1024));
  p.parallel = root.get<bool>("parallel", true);
  p.world = tasks::read_key_value_world(root.child_or_empty("world"), p.seed);
  const auto cache = root.get<std::string>("cache_dir", std::string());
  p.cache = cache.empty() ? default_agent_cache() : root.get_path("cache_dir", false);
  const auto agents = root.child("agents");
  for (const auto& name : agents.keys())
    p.agents.push_back(read_kv_agent(agents.child(name), name, p.seed));
  CHORUS_CHECK(!p.agents.empty(), config.origin("agents"), ": agents: expected at least one agent");
  // The quickstart's own sections: a config that includes the quickstart sets them to ~.
  for (const char* unused : {"teams", "pipeline", "evaluation"}) {
    CHORUS_CHECK(
        !root.has(unused), config.origin(unused), ": ", unused,
        ": the kv_router experiment does not read it"
        " (set it to ~ when including the quickstart; the router's settings live under router:)");
    root.child_or_empty(unused);
  }

  const auto router = root.child("router");
  const auto mix = router.child_or_empty("mix");
  for (const auto& set : kSets)
    p.mix.push_back(mix.get_double(set, mix.keys().empty() ? 1.0 : 0.0, 0.0));
  CHORUS_CHECK(std::accumulate(p.mix.begin(), p.mix.end(), 0.0) > 0, config.origin("router.mix"),
               ": router.mix: at least one set needs a positive weight");
  std::vector<std::string> agent_names;
  for (const auto& a : p.agents) agent_names.push_back(a.name);
  p.arms = read_router_arms(config, router, agent_names);
  p.cost_measure = router.child_or_empty("cost").get_choice(
      "measure", {"agent_calls", "tokens", "flops"}, std::string("flops"));
  p.lambdas = router.get<std::vector<double>>("lambdas");
  CHORUS_CHECK(!p.lambdas.empty(), config.origin("router.lambdas"),
               ": router.lambdas: expected at least one lambda (e.g. [0, 0.2, 0.5])");
  for (double lambda : p.lambdas) {
    CHORUS_CHECK(lambda >= 0, config.origin("router.lambdas"),
                 ": router.lambdas: expected lambdas >= 0, got ", lambda);
  }
  p.budgets = router.get<std::vector<double>>("budgets", {});
  for (double budget : p.budgets) {
    CHORUS_CHECK(
        budget > 0 && budget <= 1.0, config.origin("router.budgets"),
        ": router.budgets: expected fractions in (0, 1] of the best team's mean cost, got ",
        budget);
  }
  const bool has_team =
      std::any_of(p.arms.begin(), p.arms.end(), [](const ArmSpec& a) { return a.team(); });
  CHORUS_CHECK(p.budgets.empty() || has_team, config.origin("router.budgets"),
               ": router.budgets: a budget is a fraction of the best multi-agent arm's cost, and "
               "no arm has more than one agent");
  const auto policy = router.child_or_empty("policy");
  p.policy.embedding_dim = policy.get_int("embedding_dim", 32, 1);
  p.policy.hidden_dim = policy.get_int("hidden_dim", 64, 1);
  const auto t = router.child_or_empty("train");
  auto& o = p.training;
  // One objective or a list of them: a router is trained per lambda and objective.
  std::vector<std::string> objectives;
  try {
    objectives = t.get<std::vector<std::string>>("objective");
  } catch (const Error&) {
    objectives = {t.get_choice("objective", {"reinforce", "ppo"}, std::string("reinforce"))};
  }
  CHORUS_CHECK(!objectives.empty(), t.origin("objective"),
               ": router.train.objective: expected reinforce, ppo or a list of them, got []");
  for (const auto& name : objectives) {
    CHORUS_CHECK(name == "reinforce" || name == "ppo", t.origin("objective"),
                 ": router.train.objective: expected one of reinforce, ppo; got '", name, "'");
    const auto objective = collab::policy_objective_from_string(name);
    CHORUS_CHECK(
        std::find(p.objectives.begin(), p.objectives.end(), objective) == p.objectives.end(),
        t.origin("objective"), ": router.train.objective: '", name, "' is listed twice");
    p.objectives.push_back(objective);
  }
  o.objective = p.objectives.front();
  o.steps = t.get_int("steps", 400, 1);
  o.batch_size = t.get_int("batch_size", 64, 1);
  o.learning_rate = t.get_double("learning_rate", 1e-2, 1e-12);
  o.entropy_bonus = t.get_double("entropy_bonus", 0.01, 0.0);
  o.value_weight = t.get_double("value_weight", 0.5, 0.0);
  o.ppo_epochs = t.get_int("ppo_epochs", 4, 1);
  o.ppo_clip = t.get_double("ppo_clip", 0.2, 1e-6, 0.999);
  const auto examples = router.child_or_empty("examples");
  p.train_examples = examples.get_int("train", 2000, 1);
  p.validation_examples = examples.get_int("validation", 500, 1);
  p.test_examples = examples.get_int("test", 1000, 1);
  p.bootstrap_resamples = router.get_int("bootstrap_resamples", 1000, 10);
  p.transcript_examples = router.get_int("transcript_examples", 20, 0);
  const auto target = router.child_or_empty("target");
  p.target_score_fraction = target.get_double("score_fraction", 0.95, 0.0, 1.0);
  p.target_cost_fraction = target.get_double("cost_fraction", 0.60, 0.0, 1.0);
  config.check_all_keys_used();
  return p;
}

// Runs the enclosing scope with one intra-op thread, then restores the previous count.
class SingleThreaded {
 public:
  SingleThreaded() : threads_(at::get_num_threads()) { at::set_num_threads(1); }
  ~SingleThreaded() { at::set_num_threads(threads_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int threads_;
};

// --- Requests ------------------------------------------------------------------------------------

struct Request {
  tasks::ArithmeticExample example;
  size_t set = 0;  // index into kSets
};

std::vector<Request> draw_requests(const tasks::KeyValueArithmetic& world, const std::vector<double>& mix,
                                   int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::discrete_distribution<size_t> pick(mix.begin(), mix.end());
  const tasks::ArithmeticSampling any{}, heldout{0.0, 0.0, tasks::KeySet::heldout}, train_keys{0.0, 0.0, tasks::KeySet::train};
  std::vector<Request> out;
  for (int64_t i = 0; i < count; ++i) {
    Request r;
    r.set = pick(rng);
    const tasks::ArithmeticTask task = r.set == 0   ? tasks::ArithmeticTask::kv_subs
                        : r.set == 1 ? tasks::ArithmeticTask::num_math
                                     : tasks::ArithmeticTask::kv_math;
    r.example = world.sample(task, r.set == 2 ? heldout : r.set == 3 ? train_keys : any, rng);
    out.push_back(std::move(r));
  }
  return out;
}

// The router's view of requests: the instruction (two ids after the world's vocabulary) and the
// expression's tokens, padded. Nothing an agent computed.
struct Features {
  torch::Tensor ids, mask;
  std::vector<int64_t> tokens;  // per request
};

Features router_features(const tasks::KeyValueArithmetic& world, const std::vector<Request>& requests) {
  const int64_t vocab = world.tokenizer().vocab_size();
  std::vector<std::vector<int64_t>> rows;
  size_t width = 1;
  for (const auto& r : requests) {
    std::vector<int64_t> row = {vocab + (is_rewrite(r.set) ? 0 : 1)};
    for (auto id : world.tokenizer().encode(r.example.input, false)) row.push_back(id);
    width = std::max(width, row.size());
    rows.push_back(std::move(row));
  }
  const auto n = static_cast<int64_t>(rows.size());
  Features f;
  f.ids = torch::zeros({n, static_cast<int64_t>(width)}, torch::kInt64);
  f.mask = torch::zeros({n, static_cast<int64_t>(width)}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const auto& row = rows[static_cast<size_t>(i)];
    for (size_t j = 0; j < row.size(); ++j) {
      f.ids.index_put_({i, static_cast<int64_t>(j)}, row[j]);
      f.mask.index_put_({i, static_cast<int64_t>(j)}, 1);
    }
    f.tokens.push_back(static_cast<int64_t>(row.size()));
  }
  return f;
}

std::vector<std::string> inputs_of(const std::vector<Request>& requests) {
  std::vector<std::string> out;
  for (const auto& r : requests) out.push_back(r.example.input);
  return out;
}

// --- Scores and reports --------------------------------------------------------------------------

// A system's answers to the test requests and what each cost.
struct SystemResult {
  std::string name;
  std::string description;
  std::vector<std::string> answers;
  std::vector<collab::ComputeCost> costs;
  std::vector<int64_t> arms;  // the arm that answered each request (-1: not an arm's answer)
  std::vector<nlohmann::json> outcomes;                // what the answering arm's mechanism decided
  std::vector<std::vector<collab::Message>> messages;  // the first requests' messages
};

// Exact match: the answer is the target as written (the score of every system, and what a
// graph_select arm's selector is trained to prefer).
bool is_right(const std::string& answer, const Request& request) {
  return answer == request.example.target;
}

std::vector<double> correct(const std::vector<std::string>& answers,
                            const std::vector<Request>& requests) {
  std::vector<double> out;
  for (size_t i = 0; i < answers.size(); ++i)
    out.push_back(is_right(answers[i], requests[i]) ? 1.0 : 0.0);
  return out;
}

double mean(const std::vector<double>& values) {
  return values.empty() ? 0.0
                        : std::accumulate(values.begin(), values.end(), 0.0) /
                              static_cast<double>(values.size());
}

collab::ComputeCost mean_cost(const std::vector<collab::ComputeCost>& costs) {
  collab::ComputeCost total;
  for (const auto& c : costs) total += c;
  return costs.empty() ? total : total.per_example(static_cast<double>(costs.size()));
}

class Scorer {
 public:
  Scorer(const std::vector<Request>& requests, int64_t resamples, uint64_t seed)
      : requests_(requests) {
    bootstrap_.resamples = static_cast<int>(resamples);
    bootstrap_.seed = 12345 + seed;
  }

  // {value, ci95, ci_half_width, n} of exact match over the requests where `keep` holds.
  nlohmann::json metric(const std::vector<double>& hits,
                        const std::function<bool(size_t)>& keep) const {
    eval::SegmentStatistics stats;
    stats.width = 2;
    for (size_t i = 0; i < hits.size(); ++i) {
      if (keep(i)) stats.append({hits[i], 1.0});
    }
    const auto n = stats.segments();
    if (n == 0)
      return {{"value", nullptr}, {"ci95", nullptr}, {"ci_half_width", nullptr}, {"n", 0}};
    const eval::ScoreFromTotals fraction = [](const std::vector<double>& t) {
      return t[1] > 0 ? t[0] / t[1] : 0.0;
    };
    const auto ci = eval::bootstrap_confidence_interval(stats, fraction, bootstrap_);
    return {{"value", ci.score},
            {"ci95", {ci.low, ci.high}},
            {"ci_half_width", ci.half_width},
            {"n", n}};
  }

  // exact_match over the whole mix, then over each set of it.
  nlohmann::json metrics(const std::vector<std::string>& answers) const {
    const auto hits = correct(answers, requests_);
    nlohmann::json out = {{"exact_match", metric(hits, [](size_t) { return true; })}};
    for (size_t s = 0; s < kSets.size(); ++s) {
      out[kSets[s]] = metric(hits, [&](size_t i) { return requests_[i].set == s; });
    }
    return out;
  }

 private:
  const std::vector<Request>& requests_;
  eval::BootstrapParams bootstrap_;
};

nlohmann::json arm_fractions(const std::vector<int64_t>& chosen, const std::vector<ArmSpec>& arms) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t a = 0; a < arms.size(); ++a) {
    const auto n = std::count(chosen.begin(), chosen.end(), static_cast<int64_t>(a));
    out[arms[a].name] =
        chosen.empty() ? 0.0 : static_cast<double>(n) / static_cast<double>(chosen.size());
  }
  return out;
}

std::string lambda_name(double lambda) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", lambda);
  return text;
}

// Outputs of the arms `which` (indices into `arms`) on every request.
std::vector<ArmOutputs> run_arms(ArmRunner& runner, const std::vector<ArmSpec>& arms,
                                 const std::vector<size_t>& which,
                                 const std::vector<Request>& requests) {
  std::vector<ArmOutputs> out;
  const auto inputs = inputs_of(requests);
  for (auto a : which) out.push_back(runner.run(arms[a], inputs));
  return out;
}

// reward[i][a] = exact match of arm a on request i - lambda * its cost / `scale`.
torch::Tensor reward_matrix(const std::vector<ArmOutputs>& outputs,
                            const std::vector<Request>& requests, const std::string& measure,
                            double scale, double lambda) {
  const auto n = static_cast<int64_t>(requests.size()), arms = static_cast<int64_t>(outputs.size());
  auto rewards = torch::zeros({n, arms}, torch::kFloat32);
  auto r = rewards.accessor<float, 2>();
  for (int64_t a = 0; a < arms; ++a) {
    const auto hits = correct(outputs[static_cast<size_t>(a)].answers, requests);
    for (int64_t i = 0; i < n; ++i) {
      const double cost =
          outputs[static_cast<size_t>(a)].costs[static_cast<size_t>(i)].measure(measure);
      r[i][a] = static_cast<float>(hits[static_cast<size_t>(i)] - lambda * cost / scale);
    }
  }
  return rewards;
}

// Per-arm counts of what the mechanisms decided for the requests a system answered with them.
nlohmann::json mechanism_summaries(const SystemResult& s, const std::vector<ArmSpec>& arms) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t a = 0; a < arms.size(); ++a) {
    std::vector<const nlohmann::json*> mine;
    for (size_t i = 0; i < s.arms.size(); ++i) {
      if (s.arms[i] == static_cast<int64_t>(a)) mine.push_back(&s.outcomes[i]);
    }
    if (mine.empty()) continue;
    auto summary = summarise_outcomes(arms[a], mine);
    if (!summary.is_null()) out[arms[a].name] = std::move(summary);
  }
  return out;
}

// The phase times of the report.json an earlier run wrote into `folder` (an empty object when there
// is none or it cannot be read). Only pretraining is ever skipped by a resumed run (the phases
// after it rerun); when it is, its time is the earlier run's, when the agents were trained.
nlohmann::json earlier_phases(const fs::path& folder) {
  std::ifstream in(folder / "report.json");
  if (!in) return nlohmann::json::object();
  const auto report = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!report.is_object() || !report.contains("phases") || !report["phases"].is_object())
    return nlohmann::json::object();
  return report["phases"];
}

}  // namespace

std::filesystem::path run_kv_router_experiment(const Config& config, const ExperimentRun& run) {
  const auto total_start = Clock::now();
  const auto plan = read_plan(config);  // every config error surfaces here, before any work
  if (run.mode == RunMode::resume) {
    CHORUS_CHECK(fs::is_regular_file(config_path(run.folder)), "cannot resume: '",
                 run.folder.string(), "' holds no run (no config.yaml); start it without --resume");
  } else {
    prepare_run_folder(run.folder, run.mode);
  }
  save_resolved_config(run.folder, config.to_yaml());
  const auto provenance = run_provenance(config.to_yaml());
  if (plan.threads > 0) at::set_num_threads(plan.threads);
  auto say = [&](const std::string& line) {
    if (!run.quiet) std::cerr << line << std::endl;
  };
  nlohmann::json phases = nlohmann::json::object();
  const nlohmann::json earlier =
      run.mode == RunMode::resume ? earlier_phases(run.folder) : nlohmann::json::object();

  // 1. The agents, from the cache the quickstart fills (trained here when absent). A resumed run
  // continues their training; the phases after it are deterministic and take seconds, so they
  // rerun.
  const tasks::KeyValueArithmetic world(plan.world);
  auto phase_start = Clock::now();
  std::vector<PretrainResult> pretrained(plan.agents.size());
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    jobs.push_back([&, i] {
      auto spec = plan.agents[i];
      spec.trainer.show_progress = !run.quiet;
      spec.trainer.plain_progress = plan.parallel;
      const auto folder = plan.cache / (spec.name + "-" + spec.fingerprint(plan.world));
      pretrained[i] = pretrain_kv_agent(world, spec, folder, run.folder / "pretrain" / spec.name,
                                        run.mode == RunMode::resume);
    });
  }
  say("pretraining " + std::to_string(plan.agents.size()) +
      " agents (cache: " + plan.cache.string() + ")");
  run_jobs(jobs, plan.parallel);
  std::map<std::string, collab::Agent> agents;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    say("  agent " + plan.agents[i].name + ": " +
        (pretrained[i].cached ? "from the cache" : "trained") + ", exact match on its task " +
        std::to_string(pretrained[i].exact_match));
    agents.emplace(
        plan.agents[i].name,
        collab::load_agent(plan.agents[i].name, pretrained[i].folder, plan.agents[i].role));
  }
  phases["pretrain"] = {{"seconds", since(phase_start)}};
  const bool pretrain_skipped = std::all_of(pretrained.begin(), pretrained.end(),
                                            [](const PretrainResult& p) { return p.cached; });
  const bool keep_earlier = pretrain_skipped && earlier.contains("pretrain") &&
                            earlier["pretrain"].is_object() &&
                            earlier["pretrain"].contains("seconds");
  if (keep_earlier) {
    phases["pretrain"] = earlier["pretrain"];
    phases["pretrain"]["from_earlier_run"] = true;
  }

  // 2. Requests. The routed arms run once on the training requests (training then reads only the
  // sampled arm's reward from that table); every arm runs on the validation requests (the best
  // single agent, the team that budgets refer to and the calibration of budgets are chosen there).
  torch::NoGradGuard no_grad;
  const auto train_requests =
      draw_requests(world, plan.mix, plan.train_examples, stream_seed(plan.seed, 1, 0x2047E));
  const auto validation_requests =
      draw_requests(world, plan.mix, plan.validation_examples, stream_seed(plan.seed, 2, 0x2047E));
  const auto test_requests =
      draw_requests(world, plan.mix, plan.test_examples, stream_seed(plan.seed, 3, 0x2047E));
  ArmRunner runner(agents, kMaxNewTokens);
  std::vector<size_t> routed, every_arm;
  for (size_t a = 0; a < plan.arms.size(); ++a) {
    every_arm.push_back(a);
    if (plan.arms[a].routed) routed.push_back(a);
  }
  // Learned answer selectors first (graph_select arms): each such arm's agents answer the training
  // requests once and its selector learns which answers were right.
  nlohmann::json selectors = nlohmann::json::object();
  phase_start = Clock::now();
  const auto train_inputs = inputs_of(train_requests);
  for (const auto& arm : plan.arms) {
    if (arm.kind != ArmKind::graph_select) continue;
    const auto fit =
        runner.fit_selector(arm, train_inputs, [&](size_t i, const std::string& answer) {
          return is_right(answer, train_requests[i]);
        });
    const size_t tail = std::max<size_t>(1, fit.losses.size() / 10);
    const auto mean_loss = [](auto begin, auto end) {
      return std::accumulate(begin, end, 0.0) / static_cast<double>(std::distance(begin, end));
    };
    selectors[arm.name] = {
        {"requests", fit.requests},
        {"requests_with_a_right_agent", fit.trainable},
        {"right", fit.right},
        {"chosen", fit.chosen},
        {"training_accuracy", fit.training_accuracy},
        {"steps", fit.losses.size()},
        {"initial_loss",
         mean_loss(fit.losses.begin(), fit.losses.begin() + static_cast<std::ptrdiff_t>(tail))},
        {"final_loss",
         mean_loss(fit.losses.end() - static_cast<std::ptrdiff_t>(tail), fit.losses.end())},
        {"parameters", fit.parameters},
        {"flops_per_decision", fit.flops_per_decision},
        {"answer_seconds", fit.answer_seconds},
        {"train_seconds", fit.train_seconds}};
    say("  selector " + arm.name + ": trained on " + std::to_string(fit.trainable) + " of " +
        std::to_string(fit.requests) + " training requests (the others have no right answer) in " +
        std::to_string(fit.train_seconds) + " s, training accuracy " +
        std::to_string(fit.training_accuracy));
  }
  if (!selectors.empty()) phases["selectors"] = {{"seconds", since(phase_start)}};

  phase_start = Clock::now();
  say("running " + std::to_string(routed.size()) + " routed arms on " +
      std::to_string(train_requests.size()) + " training requests and " +
      std::to_string(plan.arms.size()) + " arms on " + std::to_string(validation_requests.size()) +
      " validation requests");
  const auto train_outputs = run_arms(runner, plan.arms, routed, train_requests);
  const auto validation_outputs = run_arms(runner, plan.arms, every_arm, validation_requests);
  double cost_scale = 0;  // the most expensive routed arm's mean cost on the training requests
  for (const auto& o : train_outputs)
    cost_scale = std::max(cost_scale, mean_cost(o.costs).measure(plan.cost_measure));
  CHORUS_CHECK(cost_scale > 0, "router: every arm costs 0 ", plan.cost_measure,
               " on the training requests");
  // What the budget calibration expects each routed arm to cost (the cost in lambda's units).
  std::vector<double> expected_arm_cost;
  for (const auto& o : train_outputs)
    expected_arm_cost.push_back(mean_cost(o.costs).measure(plan.cost_measure) / cost_scale);
  phases["arms_on_training_requests"] = {{"seconds", since(phase_start)}};

  // 3. Fixed systems on the test requests: every arm alone, the best single agent (chosen on the
  // validation requests) and the oracle (per request the cheapest correct arm: an upper bound).
  phase_start = Clock::now();
  say("running every arm on " + std::to_string(test_requests.size()) + " test requests");
  const Scorer scorer(test_requests, plan.bootstrap_resamples, plan.seed);
  const auto test_inputs = inputs_of(test_requests);
  const auto shown =
      std::min<size_t>(static_cast<size_t>(plan.transcript_examples), test_requests.size());
  std::vector<SystemResult> systems;
  std::vector<double> arm_scores;
  for (size_t a = 0; a < plan.arms.size(); ++a) {
    auto out = runner.run(plan.arms[a], test_inputs, /*keep_messages=*/true);
    out.messages.resize(shown);
    systems.push_back({"arm-" + plan.arms[a].name, describe(plan.arms[a]), std::move(out.answers),
                       std::move(out.costs),
                       std::vector<int64_t>(test_requests.size(), static_cast<int64_t>(a)),
                       std::move(out.outcomes), std::move(out.messages)});
    arm_scores.push_back(mean(correct(systems.back().answers, test_requests)));
  }
  const size_t fixed_arms = systems.size();
  int64_t best_single = -1, best_team = -1, validation_team = -1;
  double best_single_validation = -1, best_team_validation = -1;
  for (size_t a = 0; a < plan.arms.size(); ++a) {
    const double validation_score =
        mean(correct(validation_outputs[a].answers, validation_requests));
    if (plan.arms[a].team()) {
      if (best_team < 0 || arm_scores[a] > arm_scores[static_cast<size_t>(best_team)])
        best_team = static_cast<int64_t>(a);
      if (validation_score > best_team_validation) {
        validation_team = static_cast<int64_t>(a);
        best_team_validation = validation_score;
      }
    } else if (plan.arms[a].kind == ArmKind::agent && validation_score > best_single_validation) {
      best_single = static_cast<int64_t>(a);
      best_single_validation = validation_score;
    }
  }
  if (best_single >= 0) {
    auto s = systems[static_cast<size_t>(best_single)];
    s.description = "the single agent best on the validation requests: " + s.description;
    s.name = "best-single-agent";
    systems.push_back(std::move(s));
  }
  {
    SystemResult oracle{
        "oracle",
        "upper bound: per request, the cheapest arm (of all arms) that answers correctly (else the "
        "cheapest arm), knowing every arm's answer",
        {},
        {},
        {},
        {},
        {}};
    for (size_t i = 0; i < test_requests.size(); ++i) {
      int64_t pick = -1;
      for (size_t a = 0; a < fixed_arms; ++a) {
        const bool right = systems[a].answers[i] == test_requests[i].example.target;
        const double cost = systems[a].costs[i].measure(plan.cost_measure);
        if (pick < 0) {
          pick = static_cast<int64_t>(a);
          continue;
        }
        const auto& best = systems[static_cast<size_t>(pick)];
        const bool best_right = best.answers[i] == test_requests[i].example.target;
        if ((right && !best_right) ||
            (right == best_right && cost < best.costs[i].measure(plan.cost_measure))) {
          pick = static_cast<int64_t>(a);
        }
      }
      const auto& from = systems[static_cast<size_t>(pick)];
      oracle.answers.push_back(from.answers[i]);
      oracle.costs.push_back(from.costs[i]);
      oracle.arms.push_back(pick);
      oracle.outcomes.push_back(from.outcomes[i]);
      if (i < shown) oracle.messages.push_back(from.messages[i]);
    }
    systems.push_back(std::move(oracle));
  }
  phases["fixed_systems"] = {{"seconds", since(phase_start)}};

  // 4. Routers over the routed arms: one per objective and lambda, trained on the training table,
  // then asked first on the test requests; only the arm it picks runs, on only the requests it was
  // picked for. Then, per objective and budget, a cost weight calibrated on the validation
  // requests.
  const auto train_features = router_features(world, train_requests);
  const auto validation_features = router_features(world, validation_requests);
  const auto test_features = router_features(world, test_requests);
  auto policy_options = plan.policy;
  policy_options.vocab_size = world.tokenizer().vocab_size() + 2;
  policy_options.num_arms = static_cast<int64_t>(routed.size());
  policy_options.seed = stream_seed(plan.seed, 4, 0x2047E);
  const collab::RouterPolicy sizing(policy_options);  // flops and parameters of any router
  const double team_score = best_team >= 0 ? arm_scores[static_cast<size_t>(best_team)] : 0.0;
  const double team_cost =
      best_team >= 0
          ? mean_cost(systems[static_cast<size_t>(best_team)].costs).measure(plan.cost_measure)
          : 0.0;
  // A routing decision's own cost in the measure (only FLOPs count it).
  auto routing_cost = [&](const Features& f, size_t i) {
    return plan.cost_measure == "flops" ? sizing->flops_per_decision(f.tokens[i]) : 0.0;
  };

  // The system that answers each test request with the arm `chosen` (indices into plan.arms).
  auto answer_with = [&](const std::string& name, const std::string& description,
                         const std::vector<int64_t>& chosen, double routing_seconds) {
    SystemResult r{name,
                   description,
                   std::vector<std::string>(test_requests.size()),
                   std::vector<collab::ComputeCost>(test_requests.size()),
                   chosen,
                   std::vector<nlohmann::json>(test_requests.size()),
                   std::vector<std::vector<collab::Message>>(shown)};
    for (size_t a = 0; a < plan.arms.size(); ++a) {
      std::vector<size_t> mine;
      for (size_t i = 0; i < chosen.size(); ++i) {
        if (chosen[i] == static_cast<int64_t>(a)) mine.push_back(i);
      }
      if (mine.empty()) continue;
      std::vector<std::string> inputs;
      for (auto i : mine) inputs.push_back(test_inputs[i]);
      auto out = runner.run(plan.arms[a], inputs, /*keep_messages=*/true);
      for (size_t k = 0; k < mine.size(); ++k) {
        const auto i = mine[k];
        r.answers[i] = out.answers[k];
        r.costs[i] = out.costs[k];
        r.outcomes[i] = out.outcomes[k];
        if (i < shown) {
          r.messages[i] = std::move(out.messages[k]);
          for (auto& m : r.messages[i]) m.metadata["example"] = static_cast<int64_t>(i);
        }
      }
    }
    for (size_t i = 0; i < test_requests.size(); ++i) {
      r.costs[i].flops += sizing->flops_per_decision(test_features.tokens[i]);
      r.costs[i].seconds += routing_seconds;
    }
    return r;
  };
  // The curve fields every router point carries: score, interval, cost, arm fractions, the same
  // fractions at random, and both relative to the best team.
  auto point_of = [&](const SystemResult& r) {
    const auto metric =
        scorer.metric(correct(r.answers, test_requests), [](size_t) { return true; });
    const auto cost = mean_cost(r.costs);
    const auto fractions = arm_fractions(r.arms, plan.arms);
    double random_same_mix = 0;  // the same arm fractions, assigned at random
    for (size_t a = 0; a < plan.arms.size(); ++a)
      random_same_mix += fractions[plan.arms[a].name].get<double>() * arm_scores[a];
    nlohmann::json point = {{"score", metric["value"]},
                            {"ci95", metric["ci95"]},
                            {"ci_half_width", metric["ci_half_width"]},
                            {"cost", collab::to_json(cost)},
                            {"arms", fractions},
                            {"random_same_mix_score", random_same_mix}};
    if (best_team >= 0) {
      point["score_vs_best_team"] =
          team_score > 0 ? metric["value"].get<double>() / team_score : 0.0;
      point["cost_vs_best_team"] = cost.measure(plan.cost_measure) / team_cost;
    }
    return point;
  };
  auto to_arm_indices = [&](const std::vector<int64_t>& routed_choice) {
    std::vector<int64_t> out;
    for (auto c : routed_choice)
      out.push_back(static_cast<int64_t>(routed[static_cast<size_t>(c)]));
    return out;
  };

  // Validation tables for the calibration: what each routed arm cost on each request (with the
  // routing decision) and whether it was right.
  const auto nv = static_cast<int64_t>(validation_requests.size());
  auto validation_cost = torch::zeros({nv, static_cast<int64_t>(routed.size())}, torch::kFloat64);
  std::vector<std::vector<double>> validation_hits;
  for (size_t r = 0; r < routed.size(); ++r) {
    const auto& o = validation_outputs[routed[r]];
    validation_hits.push_back(correct(o.answers, validation_requests));
    for (int64_t i = 0; i < nv; ++i) {
      validation_cost.index_put_({i, static_cast<int64_t>(r)},
                                 o.costs[static_cast<size_t>(i)].measure(plan.cost_measure) +
                                     routing_cost(validation_features, static_cast<size_t>(i)));
    }
  }
  const double budget_reference =
      validation_team >= 0
          ? mean_cost(validation_outputs[static_cast<size_t>(validation_team)].costs)
                .measure(plan.cost_measure)
          : 0.0;

  const bool several_objectives = plan.objectives.size() > 1;
  nlohmann::json curves = nlohmann::json::object(), budget_curves = nlohmann::json::object();
  const auto routers_start = Clock::now();
  for (const auto objective : plan.objectives) {
    const auto objective_name = collab::to_string(objective);
    const std::string prefix = several_objectives ? "router-" + objective_name + "-" : "router-";
    auto training = plan.training;
    training.objective = objective;
    training.seed = stream_seed(plan.seed, 5, 0x2047E);
    struct Fitted {
      double lambda;
      torch::Tensor validation_log_probs, test_log_probs;
    };
    std::vector<Fitted> fitted;
    nlohmann::json curve = nlohmann::json::array();
    for (const double lambda : plan.lambdas) {
      phase_start = Clock::now();
      // The router is far too small for intra-op threads; on a busy machine their barriers cost
      // more than the arithmetic (measured: 20x slower training with 2 threads under load).
      std::optional<SingleThreaded> single_threaded(std::in_place);
      collab::RouterPolicy policy(policy_options);
      collab::RouterBandit bandit{
          train_features.ids, train_features.mask,
          collab::reward_table(
              reward_matrix(train_outputs, train_requests, plan.cost_measure, cost_scale, lambda))};
      torch::AutoGradMode with_grad(true);
      const auto log = collab::train_router(policy, bandit, training);
      const double train_seconds = since(phase_start);

      torch::NoGradGuard no_grad_eval;
      const auto eval_start = Clock::now();
      const auto choice = policy->choose(test_features.ids, test_features.mask);
      const std::vector<int64_t> chosen =
          to_arm_indices({choice.data_ptr<int64_t>(), choice.data_ptr<int64_t>() + choice.numel()});
      const double routing_seconds = since(eval_start) / static_cast<double>(test_requests.size());
      fitted.push_back({lambda,
                        policy->log_probs(validation_features.ids, validation_features.mask),
                        policy->log_probs(test_features.ids, test_features.mask)});
      single_threaded.reset();  // the arms run with the experiment's threads, as the fixed arms did
      auto r = answer_with(prefix + "lambda-" + lambda_name(lambda),
                           "learned router (" + objective_name + ", lambda " + lambda_name(lambda) +
                               ", cost: " + plan.cost_measure +
                               "): picks one arm per request, only that arm runs",
                           chosen, routing_seconds);
      auto point = point_of(r);
      const size_t tail = std::max<size_t>(1, log.mean_reward.size() / 10);
      point["objective"] = objective_name;
      point["lambda"] = lambda;
      point["final_training_reward"] =
          std::accumulate(log.mean_reward.end() - static_cast<std::ptrdiff_t>(tail),
                          log.mean_reward.end(), 0.0) /
          static_cast<double>(tail);
      point["final_policy_entropy"] = log.mean_entropy.back();
      point["train_seconds"] = train_seconds;
      curve.push_back(point);
      say("  " + objective_name + " lambda " + lambda_name(lambda) + ": exact match " +
          std::to_string(point["score"].get<double>()) + ", " + plan.cost_measure + " " +
          std::to_string(mean_cost(r.costs).measure(plan.cost_measure)) + ", arms " +
          point["arms"].dump());
      systems.push_back(std::move(r));
    }
    curves[objective_name] = curve;

    // Budgets: for each lambda's router, the cost weight mu whose choices on the validation
    // requests cost at most the budget (bisection); the router scoring best on the validation
    // requests at its mu is kept, and only then asked on the test requests.
    nlohmann::json budget_curve = nlohmann::json::array();
    for (const double budget : plan.budgets) {
      const double allowed = budget * budget_reference;
      int64_t pick = -1;
      collab::BudgetCalibration best;
      double best_score = -1;
      for (size_t f = 0; f < fitted.size(); ++f) {
        const auto c = collab::calibrate_cost_weight(fitted[f].validation_log_probs,
                                                     expected_arm_cost, validation_cost, allowed);
        double score = 0;
        for (size_t i = 0; i < c.choices.size(); ++i)
          score += validation_hits[static_cast<size_t>(c.choices[i])][i];
        score /= static_cast<double>(c.choices.size());
        const bool better =
            pick < 0 || (c.feasible && !best.feasible) ||
            (c.feasible == best.feasible &&
             (score > best_score || (score == best_score && c.mean_cost < best.mean_cost)));
        if (better) {
          pick = static_cast<int64_t>(f);
          best = c;
          best_score = score;
        }
      }
      const auto& chosen_router = fitted[static_cast<size_t>(pick)];
      const auto eval_start = Clock::now();
      const auto chosen = to_arm_indices(collab::choose_with_cost_weight(
          chosen_router.test_log_probs, expected_arm_cost, best.mu));
      const double routing_seconds = since(eval_start) / static_cast<double>(test_requests.size());
      auto r =
          answer_with(prefix + "budget-" + lambda_name(budget),
                      "learned router (" + objective_name + ", lambda " +
                          lambda_name(chosen_router.lambda) + ") held to " + lambda_name(budget) +
                          " of the best team's validation cost: per request the arm "
                          "maximising log pi - mu * cost, mu calibrated on the validation "
                          "requests",
                      chosen, routing_seconds);
      auto point = point_of(r);
      point["objective"] = objective_name;
      point["budget"] = budget;
      point["budget_cost"] = allowed;
      point["feasible"] = best.feasible;
      point["mu"] = best.mu;
      point["policy_lambda"] = chosen_router.lambda;
      point["validation"] = {{"score", best_score},
                             {"cost", best.mean_cost},
                             {"cost_vs_reference", best.mean_cost / budget_reference},
                             {"bisection_steps", best.iterations}};
      budget_curve.push_back(point);
      say("  " + objective_name + " budget " + lambda_name(budget) + " (lambda " +
          lambda_name(chosen_router.lambda) + ", mu " + std::to_string(best.mu) +
          "): exact match " + std::to_string(point["score"].get<double>()) + ", " +
          plan.cost_measure + " vs best team " +
          (best_team >= 0 ? std::to_string(point["cost_vs_best_team"].get<double>()) : "-"));
      systems.push_back(std::move(r));
    }
    budget_curves[objective_name] = budget_curve;
  }
  phases["routers"] = {{"seconds", since(routers_start)}};

  // 5. The report.
  nlohmann::json report_systems = nlohmann::json::array();
  std::string transcript_text;
  for (const auto& s : systems) {
    report_systems.push_back({{"name", s.name},
                              {"description", s.description},
                              {"metrics", scorer.metrics(s.answers)},
                              {"cost", collab::to_json(mean_cost(s.costs))},
                              {"arms", arm_fractions(s.arms, plan.arms)},
                              {"mechanisms", mechanism_summaries(s, plan.arms)}});
    for (size_t i = 0; i < shown; ++i) {
      const auto& r = test_requests[i];
      nlohmann::json messages = nlohmann::json::array();
      for (const auto& m : s.messages[i]) messages.push_back(collab::message_to_json(m));
      const nlohmann::json line = {{"system", s.name},
                                   {"set", kSets[r.set]},
                                   {"instruction", is_rewrite(r.set) ? "rewrite" : "evaluate"},
                                   {"input", r.example.input},
                                   {"target", r.example.target},
                                   {"arm", plan.arms[static_cast<size_t>(s.arms[i])].name},
                                   {"output", s.answers[i]},
                                   {"messages", messages}};
      transcript_text += line.dump() + "\n";
    }
  }
  nlohmann::json target = {{"score_fraction", plan.target_score_fraction},
                           {"cost_fraction", plan.target_cost_fraction},
                           {"measure", plan.cost_measure}};
  if (best_team >= 0) {
    // Every router point counts: the lambda sweeps and the budgets, of every objective.
    nlohmann::json meeting = nlohmann::json::array();
    nlohmann::json cheapest_above_bar = nullptr;
    auto consider = [&](const nlohmann::json& point, const char* key) {
      const double score = point["score_vs_best_team"].get<double>();
      const double cost = point["cost_vs_best_team"].get<double>();
      const nlohmann::json where = {{"objective", point["objective"]},
                                    {key, point[key]},
                                    {"score_vs_best_team", score},
                                    {"cost_vs_best_team", cost}};
      if (score >= plan.target_score_fraction && cost <= plan.target_cost_fraction)
        meeting.push_back(where);
      if (score >= plan.target_score_fraction &&
          (cheapest_above_bar.is_null() ||
           cost < cheapest_above_bar["cost_vs_best_team"].get<double>()))
        cheapest_above_bar = where;
    };
    for (const auto objective : plan.objectives) {
      const auto name = collab::to_string(objective);
      for (const auto& point : curves[name]) consider(point, "lambda");
      for (const auto& point : budget_curves[name]) consider(point, "budget");
    }
    target["best_team"] = "arm-" + plan.arms[static_cast<size_t>(best_team)].name;
    target["best_team_score"] = team_score;
    target["best_team_cost"] = team_cost;
    target["points_meeting_it"] = meeting;
    target["cheapest_point_above_score_bar"] = cheapest_above_bar;
    target["met"] = !meeting.empty();
  } else {
    target["best_team"] = nullptr;
    target["met"] = nullptr;
  }
  nlohmann::json arms = nlohmann::json::array();
  for (const auto& a : plan.arms) {
    arms.push_back({{"name", a.name},
                    {"kind", to_string(a.kind)},
                    {"description", describe(a)},
                    {"agents", a.members()},
                    {"routed", a.routed}});
  }
  nlohmann::json mix = nlohmann::json::object();
  for (size_t s = 0; s < kSets.size(); ++s) mix[kSets[s]] = plan.mix[s];
  // A re-evaluation keeps the earlier run's total (the agents were trained then) and records its
  // own wall time beside it.
  if (keep_earlier && earlier.contains("total") && earlier["total"].is_object()) {
    phases["total"] = earlier["total"];
    phases["total"]["from_earlier_run"] = true;
    phases["reevaluation"] = {{"seconds", since(total_start)}};
  } else {
    phases["total"] = {{"seconds", since(total_start)}};
  }
  nlohmann::json objective_names = nlohmann::json::array();
  for (const auto objective : plan.objectives)
    objective_names.push_back(collab::to_string(objective));
  const auto first_objective = collab::to_string(plan.objectives.front());
  const nlohmann::json report = {
      {"experiment", "kv_router"},
      {"seed", plan.seed},
      {"config_hash", provenance.config_hash},
      {"versions",
       {{"chorus", provenance.chorus_version},
        {"libtorch", provenance.libtorch_version},
        {"cuda_kernels", provenance.cuda_kernels}}},
      {"world",
       {{"keys", plan.world.keys},
        {"max_value", plan.world.max_value},
        {"train_keys", plan.world.train_keys}}},
      {"mix", mix},
      {"requests",
       {{"train", plan.train_examples},
        {"validation", plan.validation_examples},
        {"test", plan.test_examples}}},
      {"arms", arms},
      {"cost_measure", plan.cost_measure},
      {"cost_scale", cost_scale},
      {"metric_definitions",
       {{"exact_match", "exact match over the whole test mix"},
        {"kv_subs", "exact match on the mix's rewrite requests (replace each key by its value)"},
        {"num_math", "exact match on the mix's expressions over integers"},
        {"kv_math_heldout",
         "exact match on the mix's expressions over keys of the held-out subset"},
        {"kv_math_train",
         "exact match on the mix's expressions over keys of the training subset"}}},
      {"router",
       {{"objectives", objective_names},
        {"features",
         "mean of learned embeddings of the instruction and the expression's tokens, one hidden "
         "layer"},
        {"parameters", sizing->parameter_count()},
        {"steps", plan.training.steps},
        {"batch_size", plan.training.batch_size}}},
      {"best_single_agent",
       best_single >= 0 ? nlohmann::json(systems[static_cast<size_t>(best_single)].name) : nullptr},
      {"selectors", selectors},
      {"budget_reference",
       {{"arm", validation_team >= 0
                    ? nlohmann::json(plan.arms[static_cast<size_t>(validation_team)].name)
                    : nullptr},
        {"validation_cost", budget_reference},
        {"description",
         "budgets are fractions of this arm's mean cost on the validation requests: the "
         "multi-agent arm best on them"}}},
      {"systems", report_systems},
      {"curve", curves[first_objective]},
      {"budget_curve", budget_curves[first_objective]},
      {"curves_by_objective", curves},
      {"budget_curves_by_objective", budget_curves},
      {"target", target},
      {"phases", phases},
      {"threads", at::get_num_threads()}};
  write_file_atomically(run.folder / "transcripts.jsonl", transcript_text);
  const auto report_path = run.folder / "report.json";
  write_file_atomically(report_path, report.dump(2) + "\n");

  if (!run.quiet) {
    char line[256];
    std::snprintf(line, sizeof line, "\n%-28s %12s %18s %10s %14s\n", "system", "exact_match",
                  "ci95", "calls", ("rel. " + plan.cost_measure).c_str());
    std::cerr << line;
    for (const auto& s : report_systems) {
      const auto& m = s["metrics"]["exact_match"];
      std::snprintf(line, sizeof line, "%-28s %12.3f   [%.3f, %.3f] %10.2f %14.3f\n",
                    s["name"].get<std::string>().c_str(), m["value"].get<double>(),
                    m["ci95"][0].get<double>(), m["ci95"][1].get<double>(),
                    s["cost"]["agent_calls"].get<double>(),
                    (plan.cost_measure == "tokens" ? s["cost"]["tokens_in"].get<double>() +
                                                         s["cost"]["tokens_out"].get<double>()
                                                   : s["cost"][plan.cost_measure].get<double>()) /
                        cost_scale);
      std::cerr << line;
    }
    std::cerr << "target (>= " << plan.target_score_fraction
              << " of the best team's score at <= " << plan.target_cost_fraction << " of its "
              << plan.cost_measure << "): " << target["met"].dump() << "\n";
    std::snprintf(line, sizeof line, "total %.1f s\n", since(total_start));
    std::cerr << line;
  }
  return report_path;
}

}  // namespace chorus::train
