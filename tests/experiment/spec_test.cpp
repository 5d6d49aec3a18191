// The experiment spec reader: tasks from files, and every bad input the engine must refuse before
// any work, each with a message naming the file and line or the key and what was expected.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "experiment/registry.h"
#include "experiment/runner.h"
#include "experiment/spec.h"
#include "tests/foundation/test_paths.h"
#include "tests/train/error_of.h"

namespace chorus::experiment {
namespace {

namespace fs = std::filesystem;
using chorus::testing::error_of;
using chorus::testing::TemporaryFolder;

// `text` with every line indented by four more spaces.
std::string indent(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    out += "    " + text.substr(start, end - start + 1);
    start = end + 1;
  }
  return out;
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// A folder that stands for a model: the reader only checks that it exists.
struct World {
  TemporaryFolder dir;
  World() {
    fs::create_directories(dir / "model_a");
    fs::create_directories(dir / "model_b");
    write(dir / "train.jsonl",
          "{\"q\": \"one\", \"a\": [\"1\", \"i\"]}\n{\"q\": \"two\", \"a\": \"2\"}\n");
    write(dir / "test.jsonl", "{\"q\": \"three\", \"a\": \"3\"}\n\n{\"q\": \"four\", \"a\": 4}\n");
  }
  std::string yaml(const std::string& systems, const std::string& extra = "") const {
    return "tasks:\n  count:\n    splits: {train: train.jsonl, test: test.jsonl}\n    fields: "
           "{input: q}\n"
           "    references: a\n"
           "agents:\n  a: {model: model_a}\n  b: {model: model_b}\n" +
           systems + extra;
  }
  ExperimentSpec read(const std::string& text) const {
    return read_experiment(Config::parse(text, (dir / "exp.yaml").string(), dir.path()));
  }
};

TEST(ExperimentSpec, ReadsTasksAgentsAndSystemsInDependencyOrder) {
  World w;
  const auto spec =
      w.read(w.yaml("systems:\n  route: {kind: router, arms: [agent-a, vote], tokenizer: a, train: "
                    "{task: count}}\n"
                    "  vote: {kind: vote, agents: [a, b], rule: majority}\n",
                    "evaluation: {metrics: {count: [em, bleu]}}\n"));
  const auto& task = spec.tasks.at("count");
  ASSERT_EQ(task.split("train").size(), 2u);
  EXPECT_EQ(task.split("train")[0].references, (std::vector<std::string>{"1", "i"}));
  EXPECT_EQ(task.split("test")[1].references, (std::vector<std::string>{"4"}));  // a number as text
  EXPECT_EQ(task.split("test")[1].id, "test.jsonl:3");  // blank lines skipped
  EXPECT_EQ(task.split("train")[0].field("input"), "one");
  std::vector<std::string> order;
  for (const auto& s : spec.systems) order.push_back(s.name);
  // Baselines first, then each system after the systems it routes to.
  const auto at = [&](const std::string& n) {
    return std::find(order.begin(), order.end(), n) - order.begin();
  };
  EXPECT_LT(at("vote"), at("route"));
  EXPECT_LT(at("agent-a"), at("route"));
  EXPECT_EQ(spec.evaluation.metrics.at("count"), (std::vector<std::string>{"em", "bleu"}));
}

TEST(ExperimentSpec, UnknownAgentListsTheAgents) {
  World w;
  const auto message =
      error_of([&] { w.read(w.yaml("systems:\n  v: {kind: vote, agents: [a, c]}\n")); });
  EXPECT_NE(message.find("systems.v.agents: no agent called 'c' (agents: a, b)"), std::string::npos)
      << message;
  EXPECT_NE(message.find("exp.yaml:"), std::string::npos) << message;
}

TEST(ExperimentSpec, UnknownKindAndKeysSayWhatIsValid) {
  World w;
  auto message =
      error_of([&] { w.read(w.yaml("systems:\n  v: {kind: votes, agents: [a, b]}\n")); });
  EXPECT_NE(message.find("did you mean 'vote'"), std::string::npos) << message;
  message = error_of(
      [&] { w.read(w.yaml("systems:\n  v: {kind: vote, agents: [a, b], rul: majority}\n")); });
  EXPECT_NE(message.find("unknown key 'systems.v.rul' (did you mean 'systems.v.rule'?)"),
            std::string::npos)
      << message;
}

TEST(ExperimentSpec, CyclesBetweenSystemsNameTheChain) {
  World w;
  const auto message = error_of([&] {
    w.read(w.yaml(
        "systems:\n  r1: {kind: router, arms: [agent-a, r2], tokenizer: a, train: {task: count}}\n"
        "  r2: {kind: router, arms: [agent-b, r1], tokenizer: a, train: {task: count}}\n"));
  });
  EXPECT_NE(message.find("a cycle between systems: r1 -> r2 -> r1"), std::string::npos) << message;
}

TEST(ExperimentSpec, MissingFieldNamesTheFileAndLine) {
  World w;
  write(w.dir / "test.jsonl", "{\"q\": \"three\", \"a\": \"3\"}\n{\"a\": \"4\"}\n");
  const auto message = error_of([&] { w.read(w.yaml("")); });
  EXPECT_NE(message.find("test.jsonl:2: missing field 'q' (tasks.count.fields.input)"),
            std::string::npos)
      << message;
}

TEST(ExperimentSpec, EmptySplitIsAnError) {
  World w;
  write(w.dir / "test.jsonl", "\n");
  const auto message = error_of([&] { w.read(w.yaml("")); });
  EXPECT_NE(message.find("tasks.count.splits.test: no examples (an empty split)"),
            std::string::npos)
      << message;
}

TEST(ExperimentSpec, MetricNeedingReferencesOnATaskWithoutThem) {
  World w;
  const std::string yaml =
      "tasks:\n  free:\n    splits: {test: test.jsonl}\n    fields: {input: q}\n"
      "agents:\n  a: {model: model_a}\nevaluation: {metrics: {free: [bleu]}}\n";
  const auto message = error_of([&] { w.read(yaml); });
  EXPECT_NE(
      message.find("metric 'bleu' compares outputs with references, but task 'free' has none"),
      std::string::npos)
      << message;
  // Metrics that need no references are fine there.
  const auto spec = w.read(
      "tasks:\n  free:\n    splits: {test: test.jsonl}\n    fields: {input: q}\n"
      "agents:\n  a: {model: model_a}\nevaluation: {metrics: {free: [distinct1, repetition]}}\n");
  EXPECT_FALSE(spec.tasks.at("free").has_references);
}

TEST(ExperimentSpec, PromptTemplatesReadOnlyTheTasksFields) {
  World w;
  const std::string yaml =
      "tasks:\n  count:\n    splits: {test: test.jsonl}\n    fields: {input: q}\n    references: "
      "a\n"
      "agents:\n  a: {model: model_a, prompts: {count: 'question: {input} context: {context}'}}\n";
  const auto message = error_of([&] { w.read(yaml); });
  EXPECT_NE(message.find("agents.a.prompts.count: the template reads {context} but task 'count' "
                         "has the fields input"),
            std::string::npos)
      << message;
}

TEST(ExperimentSpec, AgentNeedsExactlyOneSource) {
  World w;
  const auto message = error_of([&] {
    w.read(
        "tasks:\n  count:\n    splits: {test: test.jsonl}\n    fields: {input: q}\n    references: "
        "a\n"
        "agents:\n  a: {role: nothing}\n");
  });
  EXPECT_NE(message.find("an agent needs exactly one of 'model'"), std::string::npos) << message;
}

TEST(ExperimentSpec, ParallelTextFilesAndTsv) {
  World w;
  write(w.dir / "x.en", "a cat\na dog\n");
  write(w.dir / "x.fr", "un chat\nun chien\n");
  write(w.dir / "x.de", "eine Katze\nein Hund\n");
  write(w.dir / "x.tsv", "src\tref\nhello\tbonjour\n");
  const auto spec = w.read(
      "tasks:\n  mt:\n    format: text\n    splits: {test: {input: x.en, fr: x.fr, references: "
      "[x.de]}}\n"
      "  tsv:\n    splits: {test: x.tsv}\n    header: true\n    fields: {input: src}\n    "
      "references: ref\n"
      "agents:\n  a: {model: model_a, prompts: {mt: '{fr}'}}\n"
      "evaluation: {metrics: {mt: [bleu], tsv: [em]}}\n");
  const auto& mt = spec.tasks.at("mt").split("test");
  ASSERT_EQ(mt.size(), 2u);
  EXPECT_EQ(mt[1].field("fr"), "un chien");
  EXPECT_EQ(mt[1].references, (std::vector<std::string>{"ein Hund"}));
  EXPECT_EQ(spec.tasks.at("tsv").split("test")[0].references,
            (std::vector<std::string>{"bonjour"}));
  write(w.dir / "x.fr", "un chat\n");
  const auto message = error_of([&] {
    w.read(
        "tasks:\n  mt:\n    format: text\n    splits: {test: {input: x.en, fr: x.fr}}\n"
        "agents:\n  a: {model: model_a}\nevaluation: {metrics: {mt: [distinct1]}}\n");
  });
  EXPECT_NE(message.find("has 1 lines but"), std::string::npos) << message;
}

// The key-value arithmetic world on the engine: two agents Chorus pretrains (cached), generated
// tasks, and a text pipeline between the agents, from YAML alone.
TEST(ExperimentEngine, KeyValueArithmeticAgentsAndTasksFromYaml) {
  TemporaryFolder dir;
  const std::string agent_block =
      "    model: {d_model: 16, layers: 1, heads: 2, d_kv: 8, d_ff: 32}\n"
      "    train: {steps: 30, batch_size: 32, learning_rate: 3.0e-3, eval_every: 30, "
      "checkpoint_every: 30}\n"
      "    eval_examples: 20\n";
  const std::string yaml =
      "seed: 1\ncache_dir: cache\n"
      "tasks:\n"
      "  kv_subs: {generator: {kind: key_value_arithmetic, world: &world {keys: 12, max_value: 9, "
      "train_keys: 8},\n"
      "                        task: kv_subs, splits: {test: 30}}}\n"
      "  kv_math: {generator: {kind: key_value_arithmetic, world: *world, task: kv_math, keys: "
      "heldout,\n"
      "                        splits: {test: {examples: 30, stream: 3}}}}\n"
      "agents:\n"
      "  kv:\n    role: knows keys\n    pretrain:\n      world: *world\n      agent:\n        "
      "task: kv_subs\n" +
      indent(agent_block) +
      "  math:\n    pretrain:\n      world: *world\n      agent:\n        task: num_math\n" +
      indent(agent_block) +
      "systems:\n  relay: {kind: pipeline, roles: [{name: rewrite, responder: kv}, "
      "{name: answer, responder: math, prompt: '{rewrite}'}]}\n"
      "evaluation: {metrics: {kv_subs: [accuracy], kv_math: [accuracy]}, bootstrap_resamples: "
      "50}\n";
  RunOptions options;
  options.folder = dir / "run";
  options.quiet = true;
  const auto config = Config::parse(yaml, (dir / "kv.yaml").string(), dir.path());
  const auto report_path = run_experiment(config, options);
  std::ifstream in(report_path);
  const auto report = nlohmann::json::parse(in);
  ASSERT_EQ(report["systems"].size(), 3u);  // agent-kv, agent-math, relay
  for (const auto& a : report["agents"]) {
    EXPECT_EQ(a["source"], "pretrained");
    EXPECT_EQ(a["cached"], false);
  }
  const auto& tasks = report["tasks"];
  EXPECT_EQ(tasks[1]["evaluated_examples"], 30);
  // The same config again: both agents come from the cache.
  options.folder = dir / "again";
  std::ifstream again(run_experiment(config, options));
  for (const auto& a : nlohmann::json::parse(again)["agents"]) EXPECT_EQ(a["cached"], true);
}

TEST(ExperimentSpec, EveryBuiltInKindIsRegistered) {
  EXPECT_EQ(system_kinds(), (std::vector<std::string>{"agent", "consensus_rules", "fusion",
                                                      "graph_select", "negotiation", "pipeline",
                                                      "router", "self_consistency", "vote"}));
}

}  // namespace
}  // namespace chorus::experiment
