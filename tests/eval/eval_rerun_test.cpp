// `chorus eval RUN_FOLDER` runs the folder's experiment again in resume mode (cli/experiment_runs.h):
// it must dispatch every experiment `chorus train` runs (the router too), and a re-evaluation keeps
// the earlier run's times for the phases it skipped while recording its own evaluation time.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/experiment_runs.h"
#include "common/config.h"
#include "common/error.h"
#include "train/run_folder.h"

namespace chorus::cli {
namespace {

namespace fs = std::filesystem;

// Agents and heads small enough to train in seconds (the experiments' own tests use the same).
const char* kAgents = R"(seed: 3
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
)";

const char* kRouter = R"(experiment: kv_router
router:
  mix: {kv_subs: 1, num_math: 1, kv_math_heldout: 1, kv_math_train: 1}
  arms:
    kv: {kind: agent, agents: [kv]}
    math: {kind: agent, agents: [math]}
    pipeline: {kind: pipeline, agents: [kv, math]}
  cost: {measure: flops}
  lambdas: [0]
  train: {steps: 40, batch_size: 32, learning_rate: 5.0e-2}
  examples: {train: 80, validation: 40, test: 60}
  bootstrap_resamples: 100
  transcript_examples: 2
)";

const char* kArithmetic = R"(experiment: kv_arithmetic
teams:
  fusion:
    anchor: math
    augmenting: [kv]
    value_source: bridge
    query_layer: 1
    inject_layer: 0
    head_dim: 16
    tasks: [{task: kv_math, mixed_fraction: 0.5}, {task: num_math}]
    train: {steps: 20, batch_size: 32, learning_rate: 3.0e-3, eval_every: 10, checkpoint_every: 5, log_every: 1}
    eval_examples: 40
pipeline: {first: kv, second: math}
evaluation: {examples: 40, bootstrap_resamples: 100, transcript_examples: 2}
)";

class EvalRerunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("chorus-eval-rerun-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Runs `experiment` fresh (as chorus train does), then again on the same folder the way
  // chorus eval does; returns both reports.
  std::pair<nlohmann::json, nlohmann::json> run_then_evaluate(const std::string& experiment) const {
    std::ofstream(root_ / "tiny.yaml") << experiment << kAgents;
    const auto config = Config::load(root_ / "tiny.yaml", {"cache_dir=" + (root_ / "cache").string()});
    const auto folder = root_ / "run";
    const auto first = read(run_experiment(config, train::ExperimentRun{folder, train::RunMode::fresh, true}));
    // chorus eval RUN_FOLDER: the run folder's own resolved config, resumed.
    const auto saved = Config::load(train::config_path(folder));
    const auto again = read(run_experiment(saved, train::ExperimentRun{folder, train::RunMode::resume, true}));
    return {first, again};
  }

  static nlohmann::json read(const fs::path& file) {
    std::ifstream in(file);
    return nlohmann::json::parse(in);
  }

  fs::path root_;
};

TEST_F(EvalRerunTest, RouterRunIsEvaluatedAgainKeepingItsPretrainTime) {
  const auto [first, again] = run_then_evaluate(kRouter);
  EXPECT_EQ(again["experiment"], "kv_router");
  EXPECT_EQ(again["curve"].size(), first["curve"].size());
  // The agents were trained by the first run and come from the cache now.
  const auto& phases = again["phases"];
  EXPECT_EQ(phases["pretrain"]["seconds"], first["phases"]["pretrain"]["seconds"]);
  EXPECT_TRUE(phases["pretrain"]["from_earlier_run"].get<bool>());
  EXPECT_EQ(phases["total"]["seconds"], first["phases"]["total"]["seconds"]);
  ASSERT_TRUE(phases.contains("reevaluation"));
  EXPECT_GT(phases["reevaluation"]["seconds"].get<double>(), 0.0);
  // The phases that ran again carry this run's times.
  EXPECT_FALSE(phases["routers"].contains("from_earlier_run"));
  EXPECT_FALSE(first["phases"]["pretrain"].contains("from_earlier_run"));
}

TEST_F(EvalRerunTest, ArithmeticRunKeepsSkippedPhaseTimesAndTimesItsEvaluation) {
  const auto [first, again] = run_then_evaluate(kArithmetic);
  const auto& before = first["phases"];
  const auto& after = again["phases"];
  for (const auto* name : {"pretrain_kv", "pretrain_math", "pretrain", "team_fusion", "teams", "total"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(after[name]["seconds"], before[name]["seconds"]);
    EXPECT_TRUE(after[name]["from_earlier_run"].get<bool>());
  }
  EXPECT_TRUE(after["pretrain_kv"]["cached"].get<bool>());  // today's facts stay beside the kept time
  EXPECT_FALSE(after["evaluation"].contains("from_earlier_run"));
  EXPECT_GT(after["evaluation"]["seconds"].get<double>(), 0.0);
  ASSERT_TRUE(after.contains("reevaluation"));
  EXPECT_GE(after["reevaluation"]["seconds"].get<double>(), after["evaluation"]["seconds"].get<double>());
  EXPECT_FALSE(before.contains("reevaluation"));
}

// chorus eval RUN_FOLDER evaluation.task_completion=...: a predicate added to a finished run. The
// training phases are reused; the run's config.yaml becomes the new resolved config; a changed
// config without that permission is still refused.
TEST_F(EvalRerunTest, ArithmeticRunTakesEvaluationOverridesOnReevaluation) {
  std::ofstream(root_ / "tiny.yaml") << kArithmetic << kAgents;
  const auto config = Config::load(root_ / "tiny.yaml", {"cache_dir=" + (root_ / "cache").string()});
  const auto folder = root_ / "run";
  const auto first = read(run_experiment(config, train::ExperimentRun{folder, train::RunMode::fresh, true}));
  EXPECT_FALSE(first["systems"][0]["metrics"].contains("kv_subs_completion"));

  const std::vector<std::string> overrides = {
      "evaluation.task_completion={kv_subs: {kind: format, format: 'regex:-?[0-9]+ [-+] -?[0-9]+'}, "
      "kv_math_heldout: {kind: answer_correct, normalization: number}}"};
  const auto changed = Config::load(train::config_path(folder), overrides);
  EXPECT_THROW(run_experiment(changed, train::ExperimentRun{folder, train::RunMode::resume, true}), Error);
  const auto again =
      read(run_experiment(changed, train::ExperimentRun{folder, train::RunMode::resume, true, /*evaluation_changed=*/true}));

  EXPECT_TRUE(again["phases"]["teams"]["from_earlier_run"].get<bool>());  // no head was trained again
  EXPECT_NE(again["config_hash"], first["config_hash"]);
  EXPECT_EQ(again["config_hash"], train::run_provenance(changed.to_yaml()).config_hash);
  std::ifstream saved(train::config_path(folder));
  const std::string saved_text((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_EQ(saved_text, changed.to_yaml());
  EXPECT_EQ(again["metric_definitions"]["kv_subs_completion"],
            "task completion on kv_subs: output matches -?[0-9]+ [-+] -?[0-9]+");
  for (size_t i = 0; i < again["systems"].size(); ++i) {
    const auto& system = again["systems"][i];
    SCOPED_TRACE(system["name"].get<std::string>());
    const auto& metrics = system["metrics"];
    ASSERT_TRUE(metrics.contains("kv_subs_completion"));
    ASSERT_TRUE(metrics.contains("kv_math_heldout_completion"));
    EXPECT_FALSE(metrics.contains("num_math_completion"));
    // The same outputs as before: a right answer is an answer, and a right value is a complete KV-MATH.
    EXPECT_EQ(metrics["kv_math_heldout"], first["systems"][i]["metrics"]["kv_math_heldout"]);
    EXPECT_DOUBLE_EQ(metrics["kv_math_heldout_completion"]["value"].get<double>(),
                     metrics["kv_math_heldout"]["value"].get<double>());
    EXPECT_GE(metrics["kv_subs_completion"]["value"].get<double>(), metrics["kv_subs"]["value"].get<double>());
    EXPECT_EQ(metrics["kv_subs_completion"]["n"], metrics["kv_subs"]["n"]);
  }
  // Transcripts of a set with a predicate say whether each example completed.
  std::ifstream transcripts(folder / "transcripts.jsonl");
  size_t judged = 0;
  for (std::string line; std::getline(transcripts, line);) {
    const auto entry = nlohmann::json::parse(line);
    if (entry["set"] == "kv_subs") {
      ASSERT_TRUE(entry.contains("completed"));
      EXPECT_EQ(entry.contains("completion_failure"), !entry["completed"].get<bool>());
      ++judged;
    } else if (entry["set"] == "num_math") {
      EXPECT_FALSE(entry.contains("completed"));
    }
  }
  EXPECT_GT(judged, 0u);
}

}  // namespace
}  // namespace chorus::cli
