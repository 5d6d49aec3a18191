// The router experiment end to end on a tiny world with tiny agents: the report's schema, only the
// chosen arms run, determinism and resume, and configuration errors before any work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "train/config.h"
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

TEST_F(KvRouterTest, LineOfAnEmptyLambdaListInTheFile) {
  std::string text = kTinyConfig;
  text.replace(text.find("lambdas: [0, 50]"), 16, "lambdas: []");
  std::ofstream(root_ / "tiny.yaml") << text;
  expect_config_error(*this, config({}, root_ / "never"), (root_ / "run").string(),
                      "tiny.yaml:26: router.lambdas: expected at least one lambda");
}

}  // namespace
}  // namespace chorus::train
