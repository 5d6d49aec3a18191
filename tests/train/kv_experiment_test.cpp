// The key-value arithmetic experiment end to end on a tiny world: report, cache, determinism, config
// errors before any work, run folders never overwritten, and a real `chorus train` killed with
// SIGKILL and resumed.
#include <gtest/gtest.h>
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/error.h"
#include "train/kv_experiment.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A world and agents small enough to run in a few seconds.
const char* kTinyConfig = R"(experiment: kv_arithmetic
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
    smoothing: {noise_std: 0.05, mixup_fraction: 0.25}
    train: {steps: 40, batch_size: 32, learning_rate: 3.0e-3, warmup_steps: 5, eval_every: 20, checkpoint_every: 10, log_every: 5}
    eval_examples: 40
teams:
  fusion:
    anchor: math
    augmenting: [kv]
    value_source: bridge
    query_layer: 1
    inject_layer: 0
    head_dim: 16
    tasks: [{task: kv_math, mixed_fraction: 0.5}, {task: num_math}]
    train: {steps: 30, batch_size: 32, learning_rate: 3.0e-3, eval_every: 15, checkpoint_every: 5, log_every: 1}
    eval_examples: 40
  calm:
    anchor: math
    augmenting: [kv]
    value_source: hidden
    augmenting_states: encoder
    query_layer: 1
    inject_layer: 1
    heads: 2
    head_dim: 16
    tasks: [{task: kv_math, mixed_fraction: 0.5, weight: 2}, {task: num_math}]
    task_sampling: {strategy: round_robin}
    loss_weighting: uncertainty
    train: {steps: 30, batch_size: 32, learning_rate: 3.0e-3, eval_every: 15, checkpoint_every: 5, log_every: 1}
    eval_examples: 40
pipeline: {first: kv, second: math}
evaluation: {examples: 60, bootstrap_resamples: 100, transcript_examples: 2, routes: {kv_subs: kv}}
)";

class KvExperimentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("chorus-kv-experiment-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    std::ofstream(root_ / "tiny.yaml") << kTinyConfig;
  }
  void TearDown() override { fs::remove_all(root_); }

  Config config(std::vector<std::string> overrides = {}) const {
    overrides.push_back("cache_dir=" + (root_ / "cache").string());
    return Config::load(root_ / "tiny.yaml", overrides);
  }
  fs::path run(const std::string& name, std::vector<std::string> overrides = {}) const {
    ExperimentRun r;
    r.folder = root_ / name;
    r.quiet = true;
    return run_kv_arithmetic_experiment(config(std::move(overrides)), r);
  }

  fs::path root_;
};

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

// The systems of a report without their measured wall times (which no two runs share).
nlohmann::json systems_without_seconds(nlohmann::json report) {
  auto systems = report["systems"];
  for (auto& s : systems) {
    s["cost"].erase("seconds");
    for (auto& [set, cost] : s["cost_per_set"].items()) cost.erase("seconds");
  }
  return systems;
}

// The train loss records of a trainer run, as written (full precision).
std::vector<std::string> train_losses(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.value("split", "") == "train") out.push_back(std::to_string(j["step"].get<int64_t>()) + ":" + j["loss"].dump());
  }
  return out;
}

TEST_F(KvExperimentTest, WritesAReportForEverySystemAndReusesTrainedAgents) {
  const auto report_path = run("first");
  const auto report = read_json(report_path);
  std::vector<std::string> names;
  for (const auto& s : report["systems"]) names.push_back(s["name"]);
  EXPECT_THAT(names, ::testing::ElementsAre("agent-kv", "agent-math", "team-fusion", "team-calm", "team-pipeline"));
  for (const auto& s : report["systems"]) {
    for (const char* metric : {"kv_subs", "num_math", "kv_math_heldout", "kv_math_train"}) {
      const auto& m = s["metrics"][metric];
      const double value = m["value"];
      EXPECT_GE(value, 0.0);
      EXPECT_LE(value, 1.0);
      EXPECT_LE(m["ci95"][0].get<double>(), value + 1e-12) << s["name"] << " " << metric;
      EXPECT_GE(m["ci95"][1].get<double>(), value - 1e-12) << s["name"] << " " << metric;
      EXPECT_EQ(m["n"].get<int>(), 60);
    }
  }
  // Cost per example: one call for an agent alone, two for every team (kv and the anchor) except
  // on KV-SUBS, which kv answers alone inside every team; FLOPs follow.
  for (const auto& s : report["systems"]) {
    const bool team = s["name"].get<std::string>().rfind("team-", 0) == 0;
    EXPECT_DOUBLE_EQ(s["cost_per_set"]["kv_math_heldout"]["agent_calls"].get<double>(), team ? 2.0 : 1.0) << s["name"];
    EXPECT_DOUBLE_EQ(s["cost_per_set"]["kv_subs"]["agent_calls"].get<double>(), 1.0) << s["name"];
    EXPECT_GT(s["cost"]["flops"].get<double>(), 0.0);
    EXPECT_GT(s["cost"]["tokens_in"].get<double>(), 0.0);
  }
  EXPECT_GT(report["systems"][2]["cost_per_set"]["kv_math_heldout"]["flops"].get<double>(),
            report["systems"][1]["cost_per_set"]["kv_math_heldout"]["flops"].get<double>());
  // The head's attention on the transcript examples: one line per example, set and head, each row a
  // distribution over the null slot and kv's tokens; and the diagnostics per team and set.
  {
    std::ifstream in(root_ / "first" / "attention.jsonl");
    int64_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
      const auto a = nlohmann::json::parse(line);
      EXPECT_EQ(a["key_tokens"][0], "<null>");
      ASSERT_EQ(a["weights"].size(), a["query_tokens"].size());
      for (const auto& row : a["weights"]) {
        ASSERT_EQ(row.size(), a["key_tokens"].size());
        double total = 0;
        for (const auto& w : row) total += w.get<double>();
        EXPECT_NEAR(total, 1.0, 1e-5);
      }
      EXPECT_EQ(a["gate"].size(), a["query_tokens"].size());
    }
    EXPECT_GT(lines, 0);
    const auto& d = report["fusion_diagnostics"]["team-fusion"]["kv_math_heldout"];
    EXPECT_GE(d["aligned_attention"].get<double>(), 0.0);
    EXPECT_LE(d["aligned_attention"].get<double>(), 1.0);
  }
  // Routing: inside every team KV-SUBS is answered by kv, so its outputs are kv's.
  EXPECT_EQ(report["systems"][2]["metrics"]["kv_subs"]["answered_by"], "kv");
  EXPECT_EQ(report["systems"][2]["metrics"]["kv_subs"]["value"], report["systems"][0]["metrics"]["kv_subs"]["value"]);
  EXPECT_FALSE(report["phases"]["pretrain_kv"]["cached"].get<bool>());
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "config.yaml"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "transcripts.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "teams" / "fusion" / "checkpoints" / "best.h5"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "first" / "teams" / "calm" / "metrics.h5"));

  // A second run finds both agents in the cache and evaluates the same agents identically.
  const auto again = read_json(run("second"));
  EXPECT_TRUE(again["phases"]["pretrain_kv"]["cached"].get<bool>());
  EXPECT_TRUE(again["phases"]["pretrain_math"]["cached"].get<bool>());
  EXPECT_EQ(again["systems"][0]["metrics"], report["systems"][0]["metrics"]);
  // Same config and seed: the heads' losses are identical, bit for bit.
  EXPECT_EQ(train_losses(root_ / "first" / "teams" / "fusion" / "metrics.jsonl"),
            train_losses(root_ / "second" / "teams" / "fusion" / "metrics.jsonl"));
  EXPECT_EQ(train_losses(root_ / "first" / "teams" / "calm" / "metrics.jsonl"),
            train_losses(root_ / "second" / "teams" / "calm" / "metrics.jsonl"));
  // A different seed changes them.
  run("other-seed", {"seed=4"});
  EXPECT_NE(train_losses(root_ / "first" / "teams" / "fusion" / "metrics.jsonl"),
            train_losses(root_ / "other-seed" / "teams" / "fusion" / "metrics.jsonl"));
}

TEST_F(KvExperimentTest, ConfigErrorsComeBeforeAnyWork) {
  auto expect_error = [&](std::vector<std::string> overrides, const std::string& expected) {
    try {
      run("bad", overrides);
      ADD_FAILURE() << "no error for " << expected;
    } catch (const Error& e) {
      EXPECT_THAT(std::string(e.what()), HasSubstr(expected));
    }
    EXPECT_FALSE(fs::exists(root_ / "bad")) << "a run folder was created for a bad config";
    EXPECT_FALSE(fs::exists(root_ / "cache")) << "agents were trained for a bad config";
  };
  expect_error({"teams.fusion.train.learnig_rate=0.1"}, "did you mean 'teams.fusion.train.learning_rate'");
  expect_error({"teams.fusion.anchor=mathh"}, "no agent called 'mathh'");
  expect_error({"agents.kv.train.steps=ten"}, "agents.kv.train.steps: expected an integer");
  expect_error({"teams.fusion.value_source=brige"}, "did you mean 'bridge'");
  expect_error({"teams.calm.value_source=bridge"}, "augmenting_states: decoder");
  expect_error({"agents.kv.smoothing.mixup_fraction=0.5"}, "num_math agents only");
  expect_error({"world.train_keys=16"}, "world.train_keys");
  expect_error({"teams.fusion.task_conditioning=embeding"}, "did you mean 'embedding'");
}

// A task-conditioned head (one query embedding and gate bias per training task) trains, answers
// each set as its task, and holds exactly those extra parameters; the same seed gives the same run.
TEST_F(KvExperimentTest, TaskConditionedHeadsTrainAndAnswer) {
  const auto plain = read_json(run("plain"));
  const std::vector<std::string> conditioned = {"teams.fusion.task_conditioning=embedding",
                                                "teams.calm.task_conditioning=embedding"};
  const auto report = read_json(run("conditioned", conditioned));
  for (const auto* team : {"team_fusion", "team_calm"}) {
    SCOPED_TRACE(team);
    // Two tasks each: 2 x (anchor width 32 + 1 gate bias).
    EXPECT_EQ(report["phases"][team]["parameters"].get<int64_t>(),
              plain["phases"][team]["parameters"].get<int64_t>() + 2 * (32 + 1));
  }
  for (const auto& s : report["systems"]) {
    for (const auto& [metric, m] : s["metrics"].items()) {
      EXPECT_GE(m["value"].get<double>(), 0.0);
      EXPECT_LE(m["value"].get<double>(), 1.0);
    }
  }
  // Agents alone do not change.
  EXPECT_EQ(report["systems"][0]["metrics"], plain["systems"][0]["metrics"]);
  const auto again = read_json(run("conditioned_again", conditioned));
  EXPECT_EQ(train_losses(root_ / "conditioned" / "teams" / "fusion" / "metrics.jsonl"),
            train_losses(root_ / "conditioned_again" / "teams" / "fusion" / "metrics.jsonl"));
  EXPECT_NE(train_losses(root_ / "conditioned" / "teams" / "fusion" / "metrics.jsonl"),
            train_losses(root_ / "plain" / "teams" / "fusion" / "metrics.jsonl"));
  EXPECT_EQ(systems_without_seconds(again), systems_without_seconds(report));
}

TEST_F(KvExperimentTest, AnEarlierRunIsNeverOverwrittenUnlessAsked) {
  fs::create_directories(root_ / "taken" / "checkpoints");
  std::ofstream(root_ / "taken" / "config.yaml") << "experiment: kv_arithmetic\n";
  try {
    run("taken");
    ADD_FAILURE() << "an existing run folder was reused";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("--overwrite"));
  }
  EXPECT_TRUE(fs::is_regular_file(root_ / "taken" / "config.yaml"));
  ExperimentRun resume;
  resume.folder = root_ / "nothing-here";
  resume.mode = RunMode::resume;
  resume.quiet = true;
  EXPECT_THROW(run_kv_arithmetic_experiment(config(), resume), Error);
}

fs::path chorus_program() {
  std::vector<char> buffer(4096);
  const ssize_t length = readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  if (length <= 0) return {};
  // <build>/tests/train/<test> -> <build>/chorus
  return fs::path(std::string(buffer.data(), static_cast<size_t>(length))).parent_path().parent_path().parent_path() /
         "chorus";
}

pid_t spawn(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

TEST_F(KvExperimentTest, ChorusTrainKilledWithSigkillResumesToTheSameLosses) {
  const auto program = chorus_program();
  if (!fs::is_regular_file(program)) GTEST_SKIP() << "the chorus program was not found at " << program;
  // Sequential phases and longer head training, so that the kill lands inside a head's training.
  const std::vector<std::string> common = {program.string(), "train", (root_ / "tiny.yaml").string(), "--quiet",
                                           "cache_dir=" + (root_ / "cache").string(), "parallel=false",
                                           "teams.fusion.train.steps=120", "teams.calm.train.steps=120"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ASSERT_EQ(wait_for(spawn(with({"--out", (root_ / "whole").string()}))), 0);

  const auto killed = root_ / "killed";
  const pid_t pid = spawn(with({"--out", killed.string()}));
  const auto metrics = killed / "teams" / "fusion" / "metrics.jsonl";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool in_training = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::is_regular_file(metrics) && train_losses(metrics).size() >= 12) {
      in_training = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  EXPECT_EQ(wait_for(pid), -SIGKILL);
  ASSERT_TRUE(in_training) << "the run never reached the head's training";
  ASSERT_FALSE(fs::is_regular_file(killed / "report.json")) << "the run ended before it was killed";

  ASSERT_EQ(wait_for(spawn(with({"--out", killed.string(), "--resume"}))), 0);
  EXPECT_EQ(train_losses(killed / "teams" / "fusion" / "metrics.jsonl"),
            train_losses(root_ / "whole" / "teams" / "fusion" / "metrics.jsonl"));
  EXPECT_EQ(train_losses(killed / "teams" / "calm" / "metrics.jsonl"),
            train_losses(root_ / "whole" / "teams" / "calm" / "metrics.jsonl"));
  EXPECT_EQ(systems_without_seconds(read_json(killed / "report.json")),
            systems_without_seconds(read_json(root_ / "whole" / "report.json")));
}

}  // namespace
}  // namespace chorus::train
