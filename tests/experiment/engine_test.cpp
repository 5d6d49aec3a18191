// The experiment engine end to end on the tiny team (a T5 v1.1 with SentencePiece and a BART with
// byte-level BPE, made by transformers; make_tiny_team.py): every kind of system through the real
// `chorus train`, the report checked against its schema, agents alone identical to transformers'
// greedy answers, a resumed run reusing everything, and the errors that need loaded agents.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "experiment/runner.h"
#include "tests/foundation/test_paths.h"
#include "tests/train/error_of.h"

namespace chorus::experiment {
namespace {

namespace fs = std::filesystem;
using chorus::testing::error_of;
using chorus::testing::TemporaryFolder;

const fs::path kTeam = CHORUS_TINY_TEAM;

#define REQUIRE_TEAM()                                         \
  if (!fs::is_regular_file(kTeam / "manifest.json"))           \
  GTEST_SKIP()                                                 \
      << "the tiny team fixture is absent (" << kTeam.string() \
      << "): it is built by ctest's experiment.tiny_team_fixture, which needs CHORUS_PYTHON"

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Runs a command, returning its exit status and its output (stdout and stderr together).
int run(const std::string& command, std::string* output) {
  std::array<char, 4096> buffer{};
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output->append(buffer.data(), n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// An experiment over the tiny team with one system of every kind.
std::string experiment_yaml(const std::string& systems_extra = "") {
  const auto t = kTeam.string();
  return "name: tiny_team\nseed: 0\nthreads: 1\n"
         "tasks:\n"
         "  qa:\n"
         "    description: made-up facts; the T5 knows colours, the BART shapes\n"
         "    splits: {train: " +
         t + "/task/train.jsonl, valid: " + t + "/task/valid.jsonl, test: " + t +
         "/task/test.jsonl.gz}\n"
         "    fields: {input: question, context: context}\n"
         "    references: answers\n"
         "agents:\n"
         "  t5: {model: " +
         t +
         "/t5, role: knows colours, generation: {max_new_tokens: 8}}\n"
         "  bart: {model: " +
         t +
         "/bart, role: knows shapes, generation: {max_new_tokens: 8}}\n"
         "systems:\n"
         "  vote: {kind: vote, agents: [t5, bart], rule: log_prob}\n"
         "  mbr: {kind: vote, agents: [t5, bart], rule: mbr, utility: chrf}\n"
         "  sampled: {kind: self_consistency, agent: t5, samples: 3, temperature: 0.8}\n"
         "  debate: {kind: negotiation, agents: [t5, bart], rounds: 2, rule: judge, judge: t5}\n"
         "  rules:\n"
         "    kind: consensus_rules\n"
         "    agents: [t5, bart]\n"
         "    rules: [{when: 'regex:(red|green|yellow|blue|purple|orange|brown|white)', prefer: "
         "t5}, "
         "{when: any, prefer: bart}]\n"
         "  relay:\n"
         "    kind: pipeline\n"
         "    roles: [{name: draft, responder: bart}, {name: answer, responder: t5, prompt: "
         "'{input} {draft}'}]\n"
         "    output: answer\n"
         "  fused:\n"
         "    kind: fusion\n"
         "    anchor: t5\n"
         "    augmenting: [bart]\n"
         "    heads: 2\n"
         "    head_dim: 16\n"
         "    train: {steps: 24, batch_size: 16, learning_rate: 3.0e-3, warmup_steps: 4, "
         "eval_every: 12,\n"
         "            checkpoint_every: 8, tasks: [{task: qa}], eval_examples: 20}\n"
         "  select:\n"
         "    kind: graph_select\n"
         "    agents: [t5, bart]\n"
         "    graph: {dim: 16, heads: 2, head_dim: 8, steps: 1}\n"
         "    train: {task: qa, examples: 120, steps: 60}\n"
         "  route:\n"
         "    kind: router\n"
         "    arms: [agent-t5, agent-bart, vote]\n"
         "    tokenizer: t5\n"
         "    lambda: 0.1\n"
         "    lambdas: [0.0, 1.0]\n"
         "    train: {task: qa, examples: 120, steps: 60}\n" +
         systems_extra +
         "evaluation:\n"
         "  metrics: {qa: [em, f1, chrf, distinct1]}\n"
         "  task_completion: {qa: {kind: answer_correct}}\n"
         "  fluency: {lm: bart}\n"
         "  bootstrap_resamples: 200\n"
         "  batch_size: 16\n"
         "  transcript_examples: 5\n"
         "  attention_examples: 2\n";
}

const nlohmann::json& system_named(const nlohmann::json& report, const std::string& name) {
  for (const auto& s : report["systems"]) {
    if (s["name"] == name) return s;
  }
  throw std::runtime_error("no system " + name + " in report.json");
}

TEST(EngineEndToEnd, EveryKindOfSystemOverTwoFamiliesThroughChorusTrain) {
  REQUIRE_TEAM();
  TemporaryFolder dir;
  std::ofstream(dir / "tiny_team.yaml") << experiment_yaml();
  const auto folder = dir / "run";
  std::string output;
  const auto command = std::string(CHORUS_BINARY) + " train " + (dir / "tiny_team.yaml").string() +
                       " --out " + folder.string() + " --quiet";
  ASSERT_EQ(run(command, &output), 0) << output;

  // The report validates against the schema (and its cross-references hold).
  std::string validation;
  const char* python = std::getenv("CHORUS_PYTHON");
  ASSERT_NE(python, nullptr);
  ASSERT_EQ(
      run(std::string(python) + " " + CHORUS_SOURCE_DIR "/tests/experiment/validate_report.py " +
              CHORUS_SOURCE_DIR "/docs/report.schema.json " + (folder / "report.json").string(),
          &validation),
      0)
      << validation;

  const auto report = read_json(folder / "report.json");
  std::set<std::string> kinds;
  for (const auto& s : report["systems"]) kinds.insert(s["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"agent", "vote", "self_consistency", "negotiation",
                                          "consensus_rules", "pipeline", "fusion", "graph_select",
                                          "router"}));

  // Each agent alone answers exactly as transformers' greedy generate does on the test rows.
  const auto manifest = read_json(kTeam / "manifest.json");
  for (const std::string agent : {"t5", "bart"}) {
    std::ifstream in(folder / "outputs" / ("agent-" + agent) / "qa.test.jsonl");
    std::vector<std::string> outputs;
    for (std::string line; std::getline(in, line);)
      outputs.push_back(nlohmann::json::parse(line)["output"]);
    const auto expected =
        manifest["models"][agent]["test_predictions"].get<std::vector<std::string>>();
    EXPECT_EQ(outputs, expected) << agent;
  }

  // Costs follow the mechanisms: one call per agent, one per sample, at least one per debater.
  auto calls = [&](const std::string& s) {
    return system_named(report, s)["cost"]["agent_calls"].get<double>();
  };
  EXPECT_DOUBLE_EQ(calls("agent-t5"), 1.0);
  EXPECT_DOUBLE_EQ(calls("vote"), 2.0);
  EXPECT_DOUBLE_EQ(calls("sampled"), 3.0);
  EXPECT_DOUBLE_EQ(calls("relay"), 2.0);
  EXPECT_GE(calls("debate"), 2.0);
  EXPECT_LE(calls("debate"), 5.0);
  EXPECT_DOUBLE_EQ(calls("fused"), 2.0);  // the augmenting agent's encoder and the anchor's answer
  EXPECT_GT(system_named(report, "fused")["cost"]["flops"].get<double>(),
            system_named(report, "agent-t5")["cost"]["flops"].get<double>());
  const auto route = system_named(report, "route");
  EXPECT_GE(route["cost"]["agent_calls"].get<double>(), 1.0);
  EXPECT_LE(route["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_EQ(route["training"]["curve"].size(), 2u);

  // Trained systems say what they trained; the fusion head kept its best checkpoint.
  const auto fused = system_named(report, "fused");
  EXPECT_EQ(fused["training"]["steps"], 24);
  EXPECT_EQ(fused["training"]["best_metric"], "qa/em");
  EXPECT_GT(system_named(report, "select")["training"]["trainable_examples"].get<int64_t>(), 0);

  // Paired tests against each agent and the best single agent chosen on validation data.
  ASSERT_EQ(report["best_single_agent"].size(), 1u);
  EXPECT_EQ(report["best_single_agent"][0]["chosen_on"], "valid");
  bool against_best = false;
  for (const auto& c : report["comparisons"])
    against_best = against_best || c["baseline_role"] == "best single agent";
  EXPECT_TRUE(against_best);

  // Inspection files: transcripts, each mechanism's messages, the fusion head's attention maps, the
  // page.
  EXPECT_TRUE(fs::is_regular_file(folder / "transcripts.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(folder / "outputs" / "debate" / "qa.test.messages.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(folder / "attention.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(folder / "report.html")) << output;

  // Resumed, the run reuses every trained system and every evaluation: the same figures.
  std::string resumed;
  ASSERT_EQ(run(command + " --resume", &resumed), 0) << resumed;
  const auto again = read_json(folder / "report.json");
  for (const auto& s : report["systems"]) {
    EXPECT_EQ(system_named(again, s["name"])["metrics"], s["metrics"]) << s["name"];
  }
  EXPECT_EQ(system_named(again, "select")["training"]["resumed"], true);
}

// experiments/templates/two_hf_models.yaml, the README's starting point, runs as written once its
// paths name real folders and data (here the tiny team; training shortened by overrides).
TEST(EngineEndToEnd, TheTemplateRunsWithOnlyItsPathsChanged) {
  REQUIRE_TEAM();
  TemporaryFolder dir;
  const auto t = kTeam.string();
  std::string output;
  const auto command =
      std::string(CHORUS_BINARY) + " train " + CHORUS_SOURCE_DIR +
      "/experiments/templates/two_hf_models.yaml --out " + (dir / "run").string() +
      " --quiet agents.flan.model=" + t + "/t5 agents.bart.model=" + t + "/bart" +
      " tasks.qa.splits.train=" + t + "/task/train.jsonl tasks.qa.splits.valid=" + t +
      "/task/valid.jsonl tasks.qa.splits.test=" + t + "/task/test.jsonl" +
      " systems.fused.train.steps=4 systems.fused.train.eval_every=2 evaluation.limit=12"
      " systems.select.train.examples=60 systems.route.train.examples=60";
  ASSERT_EQ(run(command, &output), 0) << output;
  const auto report = read_json(dir / "run" / "report.json");
  EXPECT_EQ(report["systems"].size(), 10u);  // 8 declared, 2 agents alone
  EXPECT_EQ(report["tasks"][0]["evaluated_examples"], 12);
}

// A run killed (SIGKILL) while its fusion head trains resumes to the same report as a run never
// interrupted: the trainer's checkpoints, the systems already built and the outputs already written
// are reused, nothing is lost.
TEST(EngineEndToEnd, AKilledRunResumesToTheSameFigures) {
  REQUIRE_TEAM();
  TemporaryFolder dir;
  const auto t = kTeam.string();
  std::ofstream(dir / "kill.yaml")
      << "seed: 3\nthreads: 1\ntasks:\n  qa:\n    splits: {train: " + t +
             "/task/train.jsonl, valid: " + t + "/task/valid.jsonl, test: " + t +
             "/task/test.jsonl}\n    fields: {input: question}\n"
             "    references: answers\n"
             "agents:\n  t5: {model: " +
             t +
             "/t5, generation: {max_new_tokens: 8}}\n"
             "  bart: {model: " +
             t +
             "/bart, generation: {max_new_tokens: 8}}\n"
             "systems:\n  fused:\n    kind: fusion\n    anchor: t5\n    augmenting: [bart]\n"
             "    train: {steps: 400, batch_size: 8, learning_rate: 1.0e-3, eval_every: 100, "
             "checkpoint_every: 20,\n"
             "            tasks: [{task: qa}], eval_examples: 10}\n"
             "evaluation: {metrics: {qa: [em, chrf]}, bootstrap_resamples: 100}\n";
  const std::string train =
      std::string(CHORUS_BINARY) + " train " + (dir / "kill.yaml").string() + " --quiet --out ";
  std::string output;
  ASSERT_EQ(run(train + (dir / "whole").string(), &output), 0) << output;

  const auto folder = dir / "killed";
  const auto config_path = (dir / "kill.yaml").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // the chorus program itself, so SIGKILL reaches it and nothing else
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(CHORUS_BINARY, "chorus", "train", config_path.c_str(), "--quiet", "--out", folder.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill it once the head has logged step 50 (checkpoints every 20 steps: latest is step 40).
  const auto log = folder / "systems" / "fused" / "metrics.jsonl";
  bool killed = false;
  for (int i = 0; i < 6000 && !killed; ++i) {
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("\"step\":50") != std::string::npos) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    usleep(10000);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(killed) << "the run ended before its fusion head logged step 50";
  ASSERT_EQ(run(train + folder.string() + " --resume", &output), 0) << output;
  const auto whole = read_json(dir / "whole" / "report.json");
  const auto resumed = read_json(folder / "report.json");
  for (const auto& s : whole["systems"]) {
    EXPECT_EQ(system_named(resumed, s["name"])["metrics"], s["metrics"]) << s["name"];
  }
  EXPECT_EQ(system_named(resumed, "fused")["training"]["best_value"],
            system_named(whole, "fused")["training"]["best_value"]);
}

TEST(EngineEndToEnd, BridgeValuesAcrossVocabulariesAreRefusedByName) {
  REQUIRE_TEAM();
  TemporaryFolder dir;
  auto yaml = experiment_yaml(
      "  bridged: {kind: fusion, anchor: t5, augmenting: [bart], value_source: bridge,\n"
      "            augmenting_states: decoder, train: {steps: 2, tasks: [{task: qa}]}}\n");
  const auto config = Config::parse(yaml, (dir / "x.yaml").string(), dir.path());
  RunOptions options;
  options.folder = dir / "run";
  options.quiet = true;
  const auto message = error_of([&] { run_experiment(config, options); });
  EXPECT_NE(
      message.find(
          "value_source bridge reads 'bart''s output distribution through 't5''s input embedding"),
      std::string::npos)
      << message;
  EXPECT_NE(message.find("use value_source: hidden"), std::string::npos) << message;
}

TEST(EngineEndToEnd, AMissingDeviceIsAnErrorNamingTheKey) {
  REQUIRE_TEAM();
  TemporaryFolder dir;
  const auto yaml = experiment_yaml();
  const auto config =
      Config::parse(yaml, (dir / "x.yaml").string(), dir.path(), {"agents.bart.device=cuda:3"});
  RunOptions options;
  options.folder = dir / "run";
  options.quiet = true;
  const auto message = error_of([&] { run_experiment(config, options); });
  EXPECT_NE(message.find("agents.bart.device: 'cuda:3'"), std::string::npos) << message;
  const auto typo =
      Config::parse(yaml, (dir / "x.yaml").string(), dir.path(), {"agents.bart.device=gpu"});
  EXPECT_NE(error_of([&] { run_experiment(typo, options); }).find("unknown device 'gpu'"),
            std::string::npos);
}

}  // namespace
}  // namespace chorus::experiment
