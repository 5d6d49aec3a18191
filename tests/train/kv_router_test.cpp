// The router experiment end to end on a tiny world with tiny agents: the report's schema, only the
// chosen arms run, every mechanism as an arm (negotiation, consensus rules, MBR and majority votes,
// self-consistency, the learned answer selector) with its cost and transcript, budgets calibrated
// on the validation requests, two objectives side by side, determinism and resume, and
// configuration errors before any work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/error.h"
#include "train/kv_router.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The kv experiment test's world and agents, a small sweep and few router steps.
const char* kTinyConfig = R"(experiment: kv_router
seed: 3
threads: 1
parallel: true
world: {keys: 16, max_value: 9, train_keys: 11}
agents:
  kv:
    task: kv_subs
    sampling: {single_fraction: 0.25, mixed_fraction: 0.2}
    model: {d_model: 32, layers: 1, heads: 2, d_kv: 16, d_ff: 64}
    train: {steps: 40, batch_size: 32, learning_rate: 3.0e-3, warmup_steps: 5, eval_every: 20, checkpoint_every: 10, log_every: 5}
    eval_examples: 40
  math:
    task: num_math
    model: {d_model: 32, layers: 1, heads: 2, d_kv: 16, d_ff: 64}
    train: {steps: 40, batch_size: 32, learning_rate: 3.0e-3, warmup_steps: 5, eval_every: 20, checkpoint_every: 10, log_every: 5}
    eval_examples: 40
router:
  mix: {kv_subs: 1, num_math: 1, kv_math_heldout: 1, kv_math_train: 1}
  arms:
    kv: {kind: agent, agents: [kv]}
    math: {kind: agent, agents: [math]}
    pipeline: {kind: pipeline, agents: [kv, math]}
    vote: {kind: vote, agents: [kv, math], rule: log_prob}
  cost: {measure: flops}
  lambdas: [0, 50]
  train: {steps: 60, batch_size: 32, learning_rate: 5.0e-2}
  examples: {train: 120, validation: 40, test: 80}
  bootstrap_resamples: 100
  transcript_examples: 2
)";

class KvRouterTest : public ::testing::Test {
 protected:
  // One agent cache for the whole suite: the agents train once.
  static fs::path cache() {
    return fs::temp_directory_path() / ("chorus-kv-router-cache-" + std::to_string(::getpid()));
  }
  static void TearDownTestSuite() { fs::remove_all(cache()); }

  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("chorus-kv-router-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::ofstream(root_ / "tiny.yaml") << kTinyConfig;
  }
  void TearDown() override { fs::remove_all(root_); }

  Config config(std::vector<std::string> overrides = {},
                const fs::path& cache_dir = cache()) const {
    overrides.push_back("cache_dir=" + cache_dir.string());
    return Config::load(root_ / "tiny.yaml", overrides);
  }
  nlohmann::json run(const std::string& name, std::vector<std::string> overrides = {},
                     RunMode mode = RunMode::fresh) const {
    ExperimentRun r;
    r.folder = root_ / name;
    r.quiet = true;
    r.mode = mode;
    std::ifstream in(run_kv_router_experiment(config(std::move(overrides)), r));
    return nlohmann::json::parse(in);
  }

  fs::path root_;
};

const nlohmann::json& system(const nlohmann::json& report, const std::string& name) {
  for (const auto& s : report["systems"]) {
    if (s["name"] == name) return s;
  }
  throw std::runtime_error("no system " + name);
}

TEST_F(KvRouterTest, WritesTheCurveAndEverySystem) {
  const auto report = run("first");
  std::vector<std::string> names;
  for (const auto& s : report["systems"]) names.push_back(s["name"]);
  EXPECT_THAT(names, ::testing::ElementsAre("arm-kv", "arm-math", "arm-pipeline", "arm-vote",
                                            "best-single-agent", "oracle", "router-lambda-0",
                                            "router-lambda-50"));
  for (const auto& s : report["systems"]) {
    for (const char* metric :
         {"exact_match", "kv_subs", "num_math", "kv_math_heldout", "kv_math_train"}) {
      const auto& m = s["metrics"][metric];
      ASSERT_TRUE(m.contains("value") && m.contains("ci95") && m.contains("ci_half_width") &&
                  m.contains("n"))
          << metric;
    }
    const auto& em = s["metrics"]["exact_match"];
    EXPECT_EQ(em["n"].get<int>(), 80);
    EXPECT_LE(em["ci95"][0].get<double>(), em["value"].get<double>() + 1e-12);
    EXPECT_GE(em["ci95"][1].get<double>(), em["value"].get<double>() - 1e-12);
    for (const char* field : {"agent_calls", "tokens_in", "tokens_out", "flops", "seconds"}) {
      EXPECT_TRUE(s["cost"].contains(field)) << s["name"] << " " << field;
    }
  }
  // Fixed arms cost what they are: one call per agent, two for the pipeline and the vote.
  EXPECT_DOUBLE_EQ(system(report, "arm-kv")["cost"]["agent_calls"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(system(report, "arm-pipeline")["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(system(report, "arm-vote")["cost"]["agent_calls"].get<double>(), 2.0);
  // The oracle is an upper bound on every arm.
  const double oracle = system(report, "oracle")["metrics"]["exact_match"]["value"];
  for (const char* arm : {"arm-kv", "arm-math", "arm-pipeline", "arm-vote"}) {
    EXPECT_GE(oracle, system(report, arm)["metrics"]["exact_match"]["value"].get<double>()) << arm;
  }
  ASSERT_EQ(report["curve"].size(), 2u);
  for (const auto& point : report["curve"]) {
    for (const char* field :
         {"lambda", "score", "ci95", "cost", "arms", "score_vs_best_team", "cost_vs_best_team"}) {
      EXPECT_TRUE(point.contains(field)) << field;
    }
    double total = 0;
    for (const auto& [arm, fraction] : point["arms"].items()) total += fraction.get<double>();
    EXPECT_NEAR(total, 1.0, 1e-9);
  }
  // With a cost weight of 50, no multi-agent arm is worth its second call: only one agent runs per
  // request, so unchosen arms were not run.
  const auto& dear = report["curve"][1];
  EXPECT_EQ(dear["arms"]["pipeline"].get<double>() + dear["arms"]["vote"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(dear["cost"]["agent_calls"].get<double>(), 1.0);
  EXPECT_TRUE(report["target"]["met"].is_boolean());
  EXPECT_TRUE(report["target"]["best_team"] == "arm-pipeline" ||
              report["target"]["best_team"] == "arm-vote");
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "transcripts.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "config.yaml"));
  // Without router.budgets there is no budget curve.
  EXPECT_TRUE(report["budget_curve"].empty());
}

// Every transcript line of `system`, in order.
std::vector<nlohmann::json> transcript_lines(const fs::path& file, const std::string& system) {
  std::ifstream in(file);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    auto json = nlohmann::json::parse(line);
    if (json["system"] == system) out.push_back(std::move(json));
  }
  return out;
}

// The mechanisms as arms: the routed ones are the tiny config's four; the new ones are fixed
// systems only (route: false) except the MBR vote, which the router may pick.
const std::vector<std::string> kMechanismArms = {
    "router.arms.mbr={kind: vote, agents: [kv, math], rule: mbr, utility: token_f1}",
    "router.arms.majority={kind: vote, agents: [kv, math], rule: majority, route: false}",
    "router.arms.debate={kind: negotiation, agents: [kv, math], rounds: 3, rule: unanimity, "
    "revise_template: '{others}', answer_format: '{answer}', route: false}",
    "router.arms.judged={kind: negotiation, agents: [kv, math], rounds: 2, rule: judge, judge: "
    "math, "
    "revise_template: '{others}', judge_template: '{answers}', answer_format: '{answer}', "
    "separator: ' + ', route: false}",
    "router.arms.rules={kind: consensus, agents: [kv, math], rules: [{when: number, prefer: math}, "
    "{when: any, prefer: kv}], route: false}",
    "router.arms.sc={kind: self_consistency, agents: [math], samples: 3, temperature: 0.8, seed: "
    "5, "
    "route: false}",
    "router.budgets=[0.5, 1.0]",
    "router.train.objective=[reinforce, ppo]"};

TEST_F(KvRouterTest, EveryMechanismIsAnArmWithItsCostAndTranscript) {
  const auto report = run("mechanisms", kMechanismArms);
  std::vector<std::string> names;
  for (const auto& s : report["systems"]) names.push_back(s["name"]);
  EXPECT_THAT(names,
              ::testing::ElementsAre(
                  "arm-kv", "arm-math", "arm-pipeline", "arm-vote", "arm-mbr", "arm-majority",
                  "arm-debate", "arm-judged", "arm-rules", "arm-sc", "best-single-agent", "oracle",
                  "router-reinforce-lambda-0", "router-reinforce-lambda-50",
                  "router-reinforce-budget-0.5", "router-reinforce-budget-1", "router-ppo-lambda-0",
                  "router-ppo-lambda-50", "router-ppo-budget-0.5", "router-ppo-budget-1"));
  // Costs are what each mechanism asked for: a vote and the rules ask both agents once,
  // self-consistency its three samples, a negotiation both agents per round it took.
  for (const char* two : {"arm-mbr", "arm-majority", "arm-rules"}) {
    EXPECT_DOUBLE_EQ(system(report, two)["cost"]["agent_calls"].get<double>(), 2.0) << two;
  }
  EXPECT_DOUBLE_EQ(system(report, "arm-sc")["cost"]["agent_calls"].get<double>(), 3.0);
  const auto& debate = system(report, "arm-debate");
  const auto& summary = debate["mechanisms"]["debate"];
  EXPECT_EQ(summary["requests"].get<int>(), 80);
  const auto& resolutions = summary["resolutions"];
  EXPECT_EQ(resolutions["consensus"].get<int>() + resolutions["judge"].get<int>() +
                resolutions["fallback_majority"].get<int>(),
            80);
  EXPECT_EQ(resolutions["judge"].get<int>(), 0);  // unanimity never asks a judge
  EXPECT_GE(summary["conflicts"].get<int>(), summary["requests_with_conflict"].get<int>());
  EXPECT_NEAR(debate["cost"]["agent_calls"].get<double>(),
              2.0 * summary["mean_rounds"].get<double>(), 1e-9);
  // Under rule judge, every request still in conflict after the last round goes to the judge: one
  // more call each (a judge reply that matches no answer falls back to the majority).
  const auto& judged = system(report, "arm-judged");
  const auto& judged_summary = judged["mechanisms"]["judged"];
  const int judged_consensus = judged_summary["resolutions"]["consensus"].get<int>();
  EXPECT_NEAR(judged["cost"]["agent_calls"].get<double>() * 80,
              2.0 * judged_summary["mean_rounds"].get<double>() * 80 + (80 - judged_consensus),
              1e-6);
  const auto& fired = system(report, "arm-rules")["mechanisms"]["rules"]["fired"];
  int total = 0;
  for (const auto& [rule, n] : fired.items()) total += n.get<int>();
  EXPECT_EQ(total, 80);
  EXPECT_EQ(fired["none"].get<int>(), 0);  // the last rule ("any") always fires
  EXPECT_EQ(system(report, "arm-sc")["mechanisms"]["sc"]["requests"].get<int>(), 80);

  // Transcripts carry each mechanism's messages: the negotiation's rounds and its outcome, the
  // samples of self-consistency and the vote over them, the pipeline's stages.
  const auto dir = root_ / "mechanisms";
  const auto debate_lines = transcript_lines(dir / "transcripts.jsonl", "arm-debate");
  ASSERT_EQ(debate_lines.size(), 2u);
  for (const auto& line : debate_lines) {
    const auto& messages = line["messages"];
    ASSERT_FALSE(messages.empty());
    EXPECT_EQ(messages[0]["channel"], "negotiation");
    EXPECT_EQ(messages[0]["round"], 0);
    EXPECT_EQ(messages[0]["sender"], "kv");
    const auto& last = messages.back();
    EXPECT_EQ(last["sender"], "negotiation");
    EXPECT_EQ(last["content"], line["output"]);
    EXPECT_EQ(messages.size(), 2 * last["metadata"]["rounds_used"].get<size_t>() + 1);
    if (last["metadata"]["rounds_used"].get<int>() > 1) {
      // Round 1: each agent read the other's round-0 answer.
      EXPECT_EQ(messages[2]["metadata"]["prompt"], messages[1]["content"]);
      EXPECT_EQ(messages[3]["metadata"]["prompt"], messages[0]["content"]);
    }
  }
  const auto sc_lines = transcript_lines(dir / "transcripts.jsonl", "arm-sc");
  ASSERT_EQ(sc_lines.size(), 2u);
  const auto& sc = sc_lines[0]["messages"];
  ASSERT_EQ(sc.size(), 4u);
  EXPECT_EQ(sc[0]["sender"], "math#1");
  EXPECT_EQ(sc[2]["sender"], "math#3");
  EXPECT_EQ(sc[3]["channel"], "vote");
  EXPECT_EQ(sc[3]["metadata"]["rule"], "majority");
  const auto pipeline = transcript_lines(dir / "transcripts.jsonl", "arm-pipeline");
  ASSERT_EQ(pipeline[0]["messages"].size(), 2u);
  EXPECT_EQ(pipeline[0]["messages"][1]["metadata"]["prompt"],
            pipeline[0]["messages"][0]["content"]);
  EXPECT_EQ(pipeline[0]["messages"][1]["content"], pipeline[0]["output"]);

  // Routers pick only routed arms; both objectives have a curve and a budget curve.
  for (const char* objective : {"reinforce", "ppo"}) {
    const auto& curve = report["curves_by_objective"][objective];
    ASSERT_EQ(curve.size(), 2u) << objective;
    for (const auto& point : curve) {
      EXPECT_EQ(point["objective"], objective);
      for (const char* fixed : {"majority", "debate", "judged", "rules", "sc"})
        EXPECT_EQ(point["arms"][fixed].get<double>(), 0.0) << fixed;
    }
    const auto& budgets = report["budget_curves_by_objective"][objective];
    ASSERT_EQ(budgets.size(), 2u);
    for (const auto& point : budgets) {
      for (const char* field :
           {"budget", "budget_cost", "feasible", "mu", "policy_lambda", "validation", "score",
            "ci95", "cost", "arms", "score_vs_best_team", "cost_vs_best_team"}) {
        EXPECT_TRUE(point.contains(field)) << field;
      }
      EXPECT_GE(point["mu"].get<double>(), 0.0);
      // The calibration held the validation requests to the budget (when it could).
      if (point["feasible"].get<bool>()) {
        EXPECT_LE(point["validation"]["cost"].get<double>(),
                  point["budget_cost"].get<double>() * (1 + 1e-12));
      }
    }
    // The whole budget: the best team itself fits, so no cost weight is needed for some router.
    EXPECT_TRUE(budgets[1]["feasible"].get<bool>());
  }
  EXPECT_EQ(report["curve"], report["curves_by_objective"]["reinforce"]);
  EXPECT_EQ(report["budget_curve"], report["budget_curves_by_objective"]["reinforce"]);
  EXPECT_EQ(report["budget_reference"]["validation_cost"].get<double>() * 0.5,
            report["budget_curve"][0]["budget_cost"].get<double>());
  EXPECT_TRUE(report["target"]["points_meeting_it"].is_array());
}

// A learned answer selector over both agents, a fixed system only.
const std::string kGraphSelectArm =
    "router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 16, heads: 2, steps: 2, "
    "seed: 0, adjacency: {kv: [kv, math], math: [kv, math]}}, train: {steps: 30, batch_size: 16, "
    "learning_rate: 1.0e-2, seed: 0}, route: false}";

TEST_F(KvRouterTest, GraphSelectArmKeepsOneOfItsAgentsAnswers) {
  // The suite's agents (40 steps) answer nothing right, and a selector needs right answers to learn
  // from: these train longer (a few seconds), until each answers part of its own task.
  const auto report = run("graph_select", {kGraphSelectArm, "agents.kv.train.steps=300",
                                           "agents.math.train.steps=300"});
  // Trained first, on the training requests, which both agents answered once.
  const auto& fit = report["selectors"]["gs"];
  EXPECT_EQ(fit["requests"].get<int>(), 120);
  EXPECT_GT(fit["requests_with_a_right_agent"].get<int>(), 0);
  EXPECT_LE(fit["requests_with_a_right_agent"].get<int>(), 120);
  EXPECT_EQ(fit["steps"].get<int>(), 30);
  EXPECT_EQ(fit["chosen"]["kv"].get<int>() + fit["chosen"]["math"].get<int>(), 120);
  EXPECT_GE(fit["train_seconds"].get<double>(), 0.0);
  EXPECT_TRUE(report["phases"].contains("selectors"));
  // One call per agent per request; its FLOPs are the vote's (the same two calls) plus the
  // selector's own.
  const auto& gs = system(report, "arm-gs");
  const auto& vote = system(report, "arm-vote");
  EXPECT_DOUBLE_EQ(gs["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(gs["cost"]["tokens_in"].get<double>(), vote["cost"]["tokens_in"].get<double>());
  EXPECT_NEAR(gs["cost"]["flops"].get<double>(),
              vote["cost"]["flops"].get<double>() + fit["flops_per_decision"].get<double>(),
              1e-9 * gs["cost"]["flops"].get<double>());
  const auto& summary = gs["mechanisms"]["gs"];
  EXPECT_EQ(summary["requests"].get<int>(), 80);
  EXPECT_EQ(summary["chosen"]["kv"].get<int>() + summary["chosen"]["math"].get<int>(), 80);
  EXPECT_GE(summary["mean_p_chosen"].get<double>(), 0.5);  // the argmax of two nodes
  EXPECT_LE(summary["mean_p_chosen"].get<double>(), 1.0);
  // It can only be right where one of its agents is.
  const double kv = system(report, "arm-kv")["metrics"]["exact_match"]["value"];
  const double math = system(report, "arm-math")["metrics"]["exact_match"]["value"];
  EXPECT_LE(gs["metrics"]["exact_match"]["value"].get<double>(), kv + math + 1e-12);
  // Routers do not pick it.
  for (const auto& point : report["curve"]) EXPECT_EQ(point["arms"]["gs"].get<double>(), 0.0);

  // Transcript: each agent's answer (round 0, broadcast), then the decision with the node
  // probabilities; the output is the chosen agent's answer, the same as that agent's alone.
  const auto dir = root_ / "graph_select";
  const auto lines = transcript_lines(dir / "transcripts.jsonl", "arm-gs");
  const auto kv_lines = transcript_lines(dir / "transcripts.jsonl", "arm-kv");
  const auto math_lines = transcript_lines(dir / "transcripts.jsonl", "arm-math");
  ASSERT_EQ(lines.size(), 2u);
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto& messages = lines[i]["messages"];
    ASSERT_EQ(messages.size(), 3u);
    EXPECT_EQ(messages[0]["channel"], "graph_select");
    EXPECT_EQ(messages[0]["sender"], "kv");
    EXPECT_EQ(messages[0]["round"], 0);
    EXPECT_EQ(messages[0]["content"], kv_lines[i]["output"]);
    EXPECT_EQ(messages[1]["sender"], "math");
    EXPECT_EQ(messages[1]["content"], math_lines[i]["output"]);
    const auto& decision = messages[2];
    EXPECT_EQ(decision["channel"], "graph_select");
    EXPECT_EQ(decision["sender"], "graph_select");
    EXPECT_EQ(decision["content"], lines[i]["output"]);
    const auto& p = decision["metadata"]["probabilities"];
    EXPECT_NEAR(p["kv"].get<double>() + p["math"].get<double>(), 1.0, 1e-6);
    const auto chosen = decision["metadata"]["chosen"].get<std::string>();
    EXPECT_EQ(lines[i]["output"], messages[chosen == "kv" ? 0 : 1]["content"]);
    EXPECT_DOUBLE_EQ(decision["metadata"]["p_chosen"].get<double>(), p[chosen].get<double>());
  }
}

// The curve without the wall-clock fields.
nlohmann::json deterministic_part(nlohmann::json curve) {
  for (auto& point : curve) {
    point.erase("train_seconds");
    point["cost"].erase("seconds");
  }
  return curve;
}

TEST_F(KvRouterTest, IsDeterministicAndResumes) {
  const auto first =
      run("a", {"router.lambdas=[0.2]", "router.train.objective=ppo", "router.train.steps=20"});
  const auto second =
      run("b", {"router.lambdas=[0.2]", "router.train.objective=ppo", "router.train.steps=20"});
  EXPECT_EQ(deterministic_part(first["curve"]), deterministic_part(second["curve"]));
  const auto resumed =
      run("a", {"router.lambdas=[0.2]", "router.train.objective=ppo", "router.train.steps=20"},
          RunMode::resume);
  EXPECT_EQ(deterministic_part(first["curve"]), deterministic_part(resumed["curve"]));
  // A run folder holding a run is not overwritten by a fresh run.
  EXPECT_THROW(run("a", {"router.lambdas=[0.2]"}), Error);
}

// Errors name the file, line and key, and come before anything is trained (the cache stays empty).
void expect_config_error(const KvRouterTest& t, const Config& config, const std::string& folder,
                         const std::string& expected) {
  ExperimentRun r;
  r.folder = folder;
  r.quiet = true;
  EXPECT_THAT([&] { run_kv_router_experiment(config, r); },
              ::testing::ThrowsMessage<Error>(HasSubstr(expected)));
  EXPECT_FALSE(fs::exists(folder));
}

TEST_F(KvRouterTest, ConfigErrorsComeBeforeAnyWork) {
  const auto empty_cache = root_ / "never";
  const auto folder = (root_ / "run").string();
  expect_config_error(*this, config({"router.arms={}"}, empty_cache), folder,
                      "override 'router.arms={}': router.arms: a router needs at least one arm");
  expect_config_error(*this, config({"router.arms.pipeline.agents=[kv, judge]"}, empty_cache),
                      folder,
                      "router.arms.pipeline.agents: no agent called 'judge' (agents: kv, math)");
  expect_config_error(*this, config({"router.arms.kv.agents=[]"}, empty_cache), folder,
                      "router.arms.kv.agents: an arm needs at least one agent");
  expect_config_error(*this, config({"router.lambdas=[]"}, empty_cache), folder,
                      "override 'router.lambdas=[]': router.lambdas: expected at least one lambda");
  expect_config_error(*this, config({"router.train.objective=a2c"}, empty_cache), folder,
                      "router.train.objective: expected one of reinforce, ppo");
  expect_config_error(*this, config({"router.cost.measure=watts"}, empty_cache), folder,
                      "router.cost.measure");
  expect_config_error(*this, config({"teams={fusion: {anchor: math}}"}, empty_cache), folder,
                      "teams: the kv_router experiment does not read it");
  expect_config_error(*this, config({"router.lambda=[1]"}, empty_cache), folder,
                      "unknown key 'router.lambda' (did you mean 'router.lambdas'?)");
  EXPECT_FALSE(fs::exists(empty_cache));
}

TEST_F(KvRouterTest, ConfigErrorsOfMechanismArmsNameTheKey) {
  const auto empty_cache = root_ / "never";
  const auto folder = (root_ / "run").string();
  auto expect = [&](const std::string& override_text, const std::string& expected) {
    expect_config_error(*this, config({override_text}, empty_cache), folder, expected);
  };
  expect("router.arms.sc={kind: self_consistency, agents: [math], samples: 1}",
         "router.arms.sc.samples: expected an integer in [2, 64], got '1'");
  expect("router.arms.sc={kind: self_consistency, agents: [math]}",
         "missing required key 'router.arms.sc.samples'");
  expect("router.arms.sc={kind: self_consistency, agents: [kv, math], samples: 4}",
         "router.arms.sc.agents: an arm of kind self_consistency has exactly one agent, got 2");
  expect("router.arms.sc={kind: self_consistency, agents: [judge], samples: 4}",
         "router.arms.sc.agents: no agent called 'judge' (agents: kv, math)");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], rounds: 0}",
         "router.arms.debate.rounds: expected an integer in [1, 100], got '0'");
  expect("router.arms.debate={kind: negotiation, agents: [kv]}",
         "router.arms.debate.agents: an arm of kind negotiation needs at least two agents, got 1");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], rule: judge}",
         "missing required key 'router.arms.debate.judge'");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], rule: judge, judge: oracle}",
         "router.arms.debate.judge: no agent called 'oracle' (agents: kv, math)");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], judge: math}",
         "router.arms.debate.judge: a judge is asked only with rule: judge");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], rule: vote}",
         "router.arms.debate.rule: expected one of unanimity, majority, judge");
  expect("router.arms.debate={kind: negotiation, agents: [kv, math], revise_template: '{answers}'}",
         "router.arms.debate.revise_template: refers to '{answers}', which this mechanism does "
         "not fill (expected {input}, {others})");
  expect(
      "router.arms.rules={kind: consensus, agents: [kv, math], rules: [{when: number, prefer: "
      "judge}]}",
      "router.arms.rules.rules[0].prefer: unknown responder 'judge' (expected one of majority, kv, "
      "math)");
  expect(
      "router.arms.rules={kind: consensus, agents: [kv, math], rules: [{when: odd, prefer: kv}]}",
      "router.arms.rules.rules[0].when: unknown predicate 'odd' (expected number, any or "
      "regex:<pattern>)");
  expect("router.arms.rules={kind: consensus, agents: [kv, math]}",
         "missing required key 'router.arms.rules.rules' (a list of maps)");
  expect("router.arms.rules={kind: consensus, agents: [kv, math], rules: [{when: any, prefer: kv, "
         "otherwise: math}]}",
         "router.arms.rules.rules[0].otherwise: unknown key of a consensus rule (expected one of "
         "prefer, when)");
  expect("router.arms.mbr={kind: vote, agents: [kv, math], rule: mbr, utility: bleu}",
         "router.arms.mbr.utility: expected one of token_f1, exact_match");
  expect("router.arms.v={kind: vote, agents: [kv, kv]}",
         "router.arms.v.agents: an agent is listed twice");
  expect("router.arms.kv.rounds=2", "unknown key 'router.arms.kv.rounds'");
  expect("router.arms={kv: {kind: agent, agents: [kv], route: false}}",
         "router.arms: every arm has route: false");
  expect("router.budgets=[0.6, 0]",
         "router.budgets: expected fractions in (0, 1] of the best team's mean cost, got 0");
  expect("router.budgets=[1.5]",
         "router.budgets: expected fractions in (0, 1] of the best team's mean cost, got 1.5");
  expect_config_error(
      *this,
      config({"router.arms={kv: {kind: agent, agents: [kv]}, math: {kind: agent, agents: [math]}}",
              "router.budgets=[0.5]"},
             empty_cache),
      folder, "router.budgets: a budget is a fraction of the best multi-agent arm's cost");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math]}",
         "router.arms.gs.graph: an arm of kind graph_select needs a graph block");
  expect("router.arms.gs={kind: graph_select, agents: [kv], graph: {dim: 8, adjacency: [[1]]}}",
         "router.arms.gs.agents: an arm of kind graph_select needs at least two agents, got 1");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, adjacency: {kv: "
         "[kv, judge]}}}",
         "router.arms.gs.graph.adjacency.kv[1]: unknown node 'judge' (nodes: kv, math)");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, adjacency: [[1, "
         "1]]}}",
         "router.arms.gs.graph.adjacency: expected 2 rows (one per node), got 1");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, hops: 2, "
         "adjacency: {kv: [kv]}}}",
         "router.arms.gs.graph.hops: unknown key (expected one of adjacency, dim, head_dim, heads, "
         "seed, steps)");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, heads: two, "
         "adjacency: {kv: [kv]}}}",
         "router.arms.gs.graph.heads: expected an integer");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 9, heads: 2, "
         "adjacency: {kv: [kv]}}}",
         "router.arms.gs.graph.heads: dim 9 is not divisible by heads 2; give head_dim");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, adjacency: {kv: "
         "[kv]}}, train: {step: 3}}",
         "unknown key 'router.arms.gs.train.step' (did you mean 'router.arms.gs.train.steps'?)");
  expect("router.arms.gs={kind: graph_select, agents: [kv, math], graph: {dim: 8, adjacency: {kv: "
         "[kv]}}, train: {learning_rate: 0}}",
         "router.arms.gs.train.learning_rate");
  expect("router.train.objective=[reinforce, a2c]",
         "router.train.objective: expected one of reinforce, ppo; got 'a2c'");
  expect("router.train.objective=[ppo, ppo]", "router.train.objective: 'ppo' is listed twice");
  EXPECT_FALSE(fs::exists(empty_cache));
}

TEST_F(KvRouterTest, LineOfAnEmptyLambdaListInTheFile) {
  std::string text = kTinyConfig;
  text.replace(text.find("lambdas: [0, 50]"), 16, "lambdas: []");
  std::ofstream(root_ / "tiny.yaml") << text;
  expect_config_error(*this, config({}, root_ / "never"), (root_ / "run").string(),
                      "tiny.yaml:26: router.lambdas: expected at least one lambda");
}

}  // namespace
}  // namespace chorus::train
