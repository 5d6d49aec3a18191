// The config dialect: includes, overrides, typed reads, their error messages, and the limits that
// keep a broken document from crashing or exhausting whoever reads it.
#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/train/error_of.h"

namespace {

namespace fs = std::filesystem;
using chorus::Error;
using chorus::Config;
using chorus::ConfigValueKind;
using chorus::ConfigView;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh folder under the system temporary directory, removed at the end of the test.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    dir_ = fs::temp_directory_path() /
           ("chorus-config-test-" + std::to_string(stamp) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  fs::path write(const std::string& relative, const std::string& text) {
    const fs::path path = dir_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path;
  }
  fs::path dir_;
};

using chorus::testing::error_of;

// ---------------------------------------------------------------------------------------------
// Includes.

TEST_F(ConfigFiles, IncludesMergeDeeplyInOrderAndTheIncludingFileWins) {
  write("base.yaml",
        "trainer:\n  lr: 0.1\n  steps: 10\n  schedule: {kind: cosine, warmup: 5}\nseed: 1\nlayers: [1, 2, 3]\n");
  write("more.yaml", "trainer:\n  steps: 20\n  schedule: {warmup: 7}\nname: more\n");
  const fs::path exp = write("exp.yaml",
                             "include: [base.yaml, more.yaml]\n"
                             "trainer:\n  lr: 0.5\n"
                             "layers: [9]\n");
  const Config config = Config::load(exp);
  const ConfigView trainer = config.root().child("trainer");
  EXPECT_DOUBLE_EQ(trainer.get<double>("lr"), 0.5);            // the including file wins
  EXPECT_EQ(trainer.get<int64_t>("steps"), 20);                // the later include wins over the earlier
  const ConfigView schedule = trainer.child("schedule");
  EXPECT_EQ(schedule.get<std::string>("kind"), "cosine");      // deep merge keeps untouched keys
  EXPECT_EQ(schedule.get<int>("warmup"), 7);
  EXPECT_EQ(config.root().get<int>("seed"), 1);
  EXPECT_EQ(config.root().get<std::string>("name"), "more");
  EXPECT_THAT(config.root().get<std::vector<int64_t>>("layers"), ElementsAre(9));  // lists are replaced
  EXPECT_THAT(config.to_yaml(), Not(HasSubstr("include")));
  // Origins point at the file and line that set each value.
  EXPECT_THAT(config.origin("trainer.lr"), HasSubstr("exp.yaml:3"));
  EXPECT_THAT(config.origin("trainer.steps"), HasSubstr("more.yaml:2"));
  EXPECT_THAT(config.origin("trainer.schedule.kind"), HasSubstr("base.yaml:4"));
  EXPECT_THAT(config.origin("seed"), HasSubstr("base.yaml:5"));
  config.check_all_keys_used();
}

TEST_F(ConfigFiles, NestedIncludesResolveRelativeToTheIncludingFile) {
  write("shared/defaults/model.yaml", "model: {width: 64, depth: 2}\n");
  write("shared/common.yaml", "include: defaults/model.yaml\nmodel: {depth: 3}\n");
  const fs::path exp = write("experiments/exp.yaml", "include: ../shared/common.yaml\nmodel: {width: 32}\n");
  const Config config = Config::load(exp);
  const ConfigView model = config.root().child("model");
  EXPECT_EQ(model.get<int>("width"), 32);
  EXPECT_EQ(model.get<int>("depth"), 3);
  EXPECT_THAT(config.origin("model.depth"), HasSubstr("shared/common.yaml:2"));
  EXPECT_THAT(config.origin("model"), HasSubstr("experiments/exp.yaml:2"));
}

TEST_F(ConfigFiles, IncludeCycleNamesTheChain) {
  write("a.yaml", "include: b.yaml\nx: 1\n");
  write("b.yaml", "include: [c.yaml]\ny: 2\n");
  write("c.yaml", "include: a.yaml\nz: 3\n");
  const std::string message = error_of([&] { Config::load(dir_ / "a.yaml"); });
  EXPECT_THAT(message, HasSubstr("include cycle"));
  EXPECT_THAT(message, HasSubstr("a.yaml -> "));
  EXPECT_THAT(message, HasSubstr("b.yaml -> "));
  EXPECT_THAT(message, HasSubstr("c.yaml -> "));
  EXPECT_THAT(message, HasSubstr("c.yaml:1"));
}

TEST_F(ConfigFiles, MissingFilesAndSyntaxErrorsNameTheFileAndLine) {
  EXPECT_THAT(error_of([&] { Config::load(dir_ / "nope.yaml"); }), HasSubstr("nope.yaml' does not exist"));
  EXPECT_THAT(error_of([&] { Config::load(dir_); }), HasSubstr("' is not a regular file"));
  write("exp.yaml", "seed: 1\ninclude:\n  - missing.yaml\n");
  const std::string missing = error_of([&] { Config::load(dir_ / "exp.yaml"); });
  EXPECT_THAT(missing, HasSubstr("exp.yaml:3: included file 'missing.yaml' does not exist"));
  write("bad.yaml", "trainer:\n  lr: [1, 2\n  steps: 3\n");
  const std::string syntax = error_of([&] { Config::load(dir_ / "bad.yaml"); });
  EXPECT_THAT(syntax, HasSubstr("bad.yaml:"));
  EXPECT_THAT(syntax, HasSubstr("YAML syntax error"));
  EXPECT_THAT(error_of([&] { Config::parse("- a\n- b\n", "list.yaml"); }),
              HasSubstr("list.yaml:1: expected a map of keys at the top level, got a list"));
  EXPECT_THAT(error_of([&] { Config::parse("a: 1\nb: 2\na: 3\n", "dup.yaml"); }),
              HasSubstr("dup.yaml:3: duplicate key 'a' (first set at dup.yaml:1)"));
  EXPECT_THAT(error_of([&] { Config::parse("include: {a: 1}\n", "inc.yaml"); }),
              HasSubstr("inc.yaml:1: include: expected a file name or a list of file names, got a map"));
}

// ---------------------------------------------------------------------------------------------
// Overrides.

TEST(ConfigOverrides, ValuesAreParsedAsYaml) {
  const Config config = Config::parse("trainer: {lr: 0.1, steps: 5, name: old}\n", "exp.yaml", ".",
                                      {"trainer.steps=30", "trainer.lr=2.5e-3", "trainer.bf16=true",
                                       "trainer.layers=[1, 2]", "trainer.name=hello world",
                                       "model.head.kind=bridge", "trainer.opts={a: 1}"});
  const ConfigView trainer = config.root().child("trainer");
  EXPECT_EQ(trainer.get<int64_t>("steps"), 30);
  EXPECT_DOUBLE_EQ(trainer.get<double>("lr"), 2.5e-3);
  EXPECT_TRUE(trainer.get<bool>("bf16"));
  EXPECT_THAT(trainer.get<std::vector<int64_t>>("layers"), ElementsAre(1, 2));
  EXPECT_EQ(trainer.get<std::string>("name"), "hello world");
  EXPECT_EQ(trainer.child("opts").get<int>("a"), 1);
  EXPECT_EQ(config.root().child("model").child("head").get<std::string>("kind"), "bridge");
  EXPECT_EQ(config.origin("trainer.steps"), "override 'trainer.steps=30'");
  EXPECT_EQ(config.origin("model.head"), "override 'model.head.kind=bridge'");
  EXPECT_THAT(config.origin("trainer"), HasSubstr("exp.yaml:1"));
}

TEST(ConfigOverrides, LaterOverridesWinAndListItemsCanBeAddressed) {
  const Config config = Config::parse("tasks:\n  - {name: a}\n  - {name: b}\nx: {y: 1}\n", "exp.yaml", ".",
                                      {"tasks[1].name=c", "x=5", "x=7"});
  const auto tasks = config.root().list("tasks");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1].get<std::string>("name"), "c");
  EXPECT_EQ(config.root().get<int>("x"), 7);  // a scalar replaced the map
  EXPECT_EQ(config.origin("x.y"), "override 'x=7'");
  // null brings back the default.
  const Config reset = Config::parse("steps: 5\n", "exp.yaml", ".", {"steps=null"});
  EXPECT_EQ(reset.root().get_int("steps", 100), 100);
}

TEST(ConfigOverrides, MalformedOverridesAreQuoted) {
  const auto attempt = [](const std::string& text) {
    return error_of([&] { Config::parse("a: {b: 1}\n", "exp.yaml", ".", {text}); });
  };
  EXPECT_THAT(attempt("trainer.lr"), HasSubstr("override 'trainer.lr': expected key.path=value"));
  EXPECT_THAT(attempt("=3"), HasSubstr("override '=3': the key before '=' is empty"));
  EXPECT_THAT(attempt("a..b=3"), HasSubstr("override 'a..b=3': 'a..b' is not a key path"));
  EXPECT_THAT(attempt("a.b=[1, 2"), HasSubstr("override 'a.b=[1, 2': the value is not valid YAML"));
  EXPECT_THAT(attempt("a.b.c=1"), HasSubstr("override 'a.b.c=1': 'a.b' is '1', not a map"));
  EXPECT_THAT(attempt("a.b[0]=1"), HasSubstr("'a.b' is '1', not a list"));
}

// ---------------------------------------------------------------------------------------------
// Typed reads.

TEST(ConfigReads, TypesAreCheckedWithOriginAndKeyPath) {
  const Config config = Config::parse(
      "trainer:\n"
      "  steps: ten\n"
      "  lr: 0.5\n"
      "  warmup: 0.5\n"
      "  bf16: maybe\n"
      "  quoted: \"10\"\n"
      "  layers: [1, x, 3]\n"
      "  name: [a]\n"
      "  huge: 99999999999\n",
      "exp.yaml");
  const ConfigView trainer = config.root().child("trainer");
  EXPECT_THAT(error_of([&] { trainer.get<int64_t>("steps"); }),
              HasSubstr("exp.yaml:2: trainer.steps: expected an integer, got 'ten'"));
  EXPECT_DOUBLE_EQ(trainer.get<double>("lr"), 0.5);
  EXPECT_THAT(error_of([&] { trainer.get<int>("warmup"); }),
              HasSubstr("exp.yaml:4: trainer.warmup: expected an integer, got '0.5'"));
  EXPECT_THAT(error_of([&] { trainer.get<bool>("bf16"); }),
              HasSubstr("exp.yaml:5: trainer.bf16: expected a boolean"));
  EXPECT_THAT(error_of([&] { trainer.get<int64_t>("quoted"); }),
              HasSubstr("exp.yaml:6: trainer.quoted: expected an integer, got '10'"));
  EXPECT_EQ(trainer.get<std::string>("quoted"), "10");
  EXPECT_THAT(error_of([&] { trainer.get<std::vector<int64_t>>("layers"); }),
              HasSubstr("exp.yaml:7: trainer.layers[1]: expected an integer, got 'x'"));
  EXPECT_THAT(error_of([&] { trainer.get<std::string>("name"); }),
              HasSubstr("exp.yaml:8: trainer.name: expected a string, got a list"));
  EXPECT_EQ(trainer.get<int64_t>("huge"), 99999999999);
  EXPECT_THAT(error_of([&] { trainer.get<int>("huge"); }), HasSubstr("out of range"));
  EXPECT_THAT(error_of([&] { config.root().child("trainer").child("steps"); }),
              HasSubstr("exp.yaml:2: trainer.steps: expected a map, got 'ten'"));
}

TEST(ConfigReads, IntegersAreNumbersAndListsConvert) {
  const Config config = Config::parse("a: 3\nb: [1, 2.5, -4e-1]\nc: [x, 'y']\nd: -.inf\n", "exp.yaml");
  const ConfigView root = config.root();
  EXPECT_DOUBLE_EQ(root.get<double>("a"), 3.0);
  EXPECT_THAT(root.get<std::vector<double>>("b"), ElementsAre(1.0, 2.5, -0.4));
  EXPECT_THAT(root.get<std::vector<std::string>>("c"), ElementsAre("x", "y"));
  EXPECT_EQ(root.get<double>("d"), -std::numeric_limits<double>::infinity());
  EXPECT_THAT(error_of([&] { root.get<std::vector<int64_t>>("a"); }),
              HasSubstr("exp.yaml:1: a: expected a list of integers, got '3'"));
  // Names chosen by users may hold spaces; an explicit !!str is a string like a quoted scalar.
  const Config named = Config::parse("agents: {my agent: {width: 4}}\nsteps: !!str 5\n", "exp.yaml");
  EXPECT_EQ(named.root().child("agents").child("my agent").get<int>("width"), 4);
  EXPECT_THAT(error_of([&] { named.root().get<int>("steps"); }), HasSubstr("expected an integer, got '5'"));
  EXPECT_THAT(Config::parse(named.to_yaml(), "again.yaml").root().get<std::string>("steps"), "5");
}

TEST(ConfigReads, MissingRequiredKeysAndDefaults) {
  const Config config = Config::parse("agents:\n  math:\n    width: 8\n  kv: ~\n", "exp.yaml");
  const ConfigView math = config.root().child("agents").child("math");
  EXPECT_THAT(error_of([&] { math.get<int>("layers"); }),
              HasSubstr("exp.yaml:2: missing required key 'agents.math.layers' (an integer)"));
  EXPECT_THAT(error_of([&] { config.root().get<std::string>("title"); }),
              HasSubstr("exp.yaml: missing required key 'title' (a string)"));
  EXPECT_EQ(math.get<int>("layers", 4), 4);
  EXPECT_EQ(math.get_int("width", 1, 1, 16), 8);
  EXPECT_FALSE(config.root().child("agents").has("kv"));  // null counts as absent
  EXPECT_TRUE(math.has("width"));
  const ConfigView empty = config.root().child_or_empty("trainer");
  EXPECT_EQ(empty.path(), "trainer");
  EXPECT_TRUE(empty.keys().empty());
  EXPECT_EQ(empty.get<double>("lr", 0.25), 0.25);
  EXPECT_THAT(error_of([&] { config.root().child("trainer"); }),
              HasSubstr("missing required key 'trainer' (a map)"));
}

TEST(ConfigReads, RangesAndChoices) {
  const Config config = Config::parse("steps: 0\nlr: 1.5\nkind: brige\nfrac: .nan\n", "exp.yaml");
  const ConfigView root = config.root();
  EXPECT_THAT(error_of([&] { root.get_int("steps", 100, 1); }),
              HasSubstr("exp.yaml:1: steps: expected an integer >= 1, got '0'"));
  EXPECT_EQ(root.get_int("steps", 100, -5, 5), 0);
  EXPECT_THAT(error_of([&] { root.get_double("lr", {}, 0.0, 1.0); }),
              HasSubstr("exp.yaml:2: lr: expected a number in [0, 1], got '1.5'"));
  EXPECT_THAT(error_of([&] { root.get_double("frac", {}, 0.0); }), HasSubstr("expected a number >= 0"));
  EXPECT_DOUBLE_EQ(root.get_double("lr", {}, {}, 2.0), 1.5);
  EXPECT_THAT(error_of([&] { root.get_int("missing", {}, {}, 3); }),
              HasSubstr("missing required key 'missing' (an integer <= 3)"));
  // A value of the wrong type is told the range too.
  EXPECT_THAT(error_of([&] { root.get_int("kind", 0, 0); }),
              HasSubstr("exp.yaml:3: kind: expected an integer >= 0, got 'brige'"));
  EXPECT_THAT(error_of([&] { root.get_double("kind", {}, {}, 1.0); }),
              HasSubstr("exp.yaml:3: kind: expected a number <= 1, got 'brige'"));
  EXPECT_THAT(error_of([&] { root.get_choice("kind", {"bridge", "hidden"}); }),
              HasSubstr("exp.yaml:3: kind: expected one of bridge, hidden; got 'brige' (did you mean 'bridge'?)"));
  EXPECT_THAT(error_of([&] { root.get_choice("kind", {"sum", "mean"}); }), Not(HasSubstr("did you mean")));
  EXPECT_EQ(root.get_choice("mode", {"a", "b"}, std::string("b")), "b");
}

// ---------------------------------------------------------------------------------------------
// Unused keys.

TEST(ConfigUnusedKeys, ReportsEveryUnreadKeyWithOriginAndSuggestion) {
  const Config config = Config::parse(
      "trainer:\n"
      "  learning_rate: 0.1\n"
      "  steps: 3\n"
      "  learnig_rate: 0.2\n"
      "extra: {a: 1}\n"
      "tasks:\n"
      "  - {name: a}\n"
      "  - {name: b, wieght: 2}\n",
      "experiments/quickstart.yaml");
  const ConfigView trainer = config.root().child("trainer");
  trainer.get<double>("learning_rate");
  trainer.get_int("steps", 1);
  for (const ConfigView& task : config.root().list("tasks")) {
    task.get<std::string>("name");
    task.get<double>("weight", 1.0);
  }
  const std::string message = error_of([&] { config.check_all_keys_used(); });
  EXPECT_THAT(message, HasSubstr("experiments/quickstart.yaml:4: unknown key 'trainer.learnig_rate' "
                                 "(did you mean 'trainer.learning_rate'?)"));
  EXPECT_THAT(message, HasSubstr("experiments/quickstart.yaml:5: unknown key 'extra'"));
  EXPECT_THAT(message, Not(HasSubstr("extra.a")));  // only the top of an unread branch
  EXPECT_THAT(message, HasSubstr("unknown key 'tasks[1].wieght' (did you mean 'tasks[1].weight'?)"));
  EXPECT_THAT(message, Not(HasSubstr("'trainer.steps'")));
  EXPECT_EQ(config.unused_keys().size(), 3u);
}

TEST(ConfigUnusedKeys, KeysAndHasBehaveAsDocumented) {
  const Config config = Config::parse("agents: {kv: {layers: 2}, math: {layers: 3}}\nseed: 4\n", "exp.yaml");
  EXPECT_TRUE(config.root().has("seed"));  // has() alone does not make a key known
  const ConfigView agents = config.root().child("agents");
  EXPECT_THAT(agents.keys(), ElementsAre("kv", "math"));
  EXPECT_THAT(config.unused_keys(), ElementsAre(HasSubstr("unknown key 'agents.kv.layers'"),
                                                HasSubstr("unknown key 'agents.math.layers'"),
                                                HasSubstr("unknown key 'seed'")));
  for (const std::string& name : agents.keys()) agents.child(name).get<int>("layers");
  config.root().get<int>("seed");
  EXPECT_NO_THROW(config.check_all_keys_used());
}

TEST(ConfigUnusedKeys, ListItemErrorsNameTheItem) {
  const Config config = Config::parse("tasks:\n  - {name: a, weight: 1}\n  - {name: 3x, weight: heavy}\n  - 7\n",
                                      "exp.yaml");
  EXPECT_THAT(error_of([&] { config.root().list("tasks"); }),
              HasSubstr("exp.yaml:4: tasks[2]: expected a map, got '7'"));
  const Config ok = Config::parse("tasks:\n  - {name: a}\n  - {weight: heavy}\n", "exp.yaml");
  const auto tasks = ok.root().list("tasks");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[1].path(), "tasks[1]");
  EXPECT_THAT(error_of([&] { tasks[1].get<std::string>("name"); }),
              HasSubstr("exp.yaml:3: missing required key 'tasks[1].name' (a string)"));
  EXPECT_THAT(error_of([&] { tasks[1].get<double>("weight"); }),
              HasSubstr("exp.yaml:3: tasks[1].weight: expected a number, got 'heavy'"));
  EXPECT_THAT(error_of([&] { ok.root().list("agents"); }), HasSubstr("missing required key 'agents'"));
  EXPECT_TRUE(ok.root().list_or_empty("agents").empty());
}

// ---------------------------------------------------------------------------------------------
// Paths and saving.

TEST_F(ConfigFiles, PathsResolveAgainstTheFileThatSetThem) {
  write("data/train.jsonl", "{}\n");
  write("shared/data.yaml", "data:\n  train: ../data/train.jsonl\n  valid: valid.jsonl\n");
  const fs::path exp = write("exp/exp.yaml", "include: ../shared/data.yaml\ndata: {test: /abs/test.jsonl}\n");
  const Config config = Config::load(exp, {"data.extra=extra.jsonl"});
  const ConfigView data = config.root().child("data");
  const fs::path root = fs::weakly_canonical(dir_);
  EXPECT_EQ(data.get_path("train", true), root / "data/train.jsonl");
  EXPECT_EQ(data.get_path("test", false), fs::path("/abs/test.jsonl"));
  EXPECT_EQ(data.get_path("extra", false), (fs::current_path() / "extra.jsonl").lexically_normal());
  const std::string message = error_of([&] { data.get_path("valid", true); });
  EXPECT_THAT(message, HasSubstr("shared/data.yaml:3: data.valid: file 'valid.jsonl' does not exist (resolved to '" +
                                 (root / "shared/valid.jsonl").string() + "')"));
  EXPECT_EQ(data.get_path("none", false, fs::path("x")), fs::path("x"));
}

// The example of docs/CONFIGS.md, value for value.
TEST_F(ConfigFiles, DocumentedExampleResolvesAsDocumented) {
  write("experiments/shared/trainer.yaml",
        "trainer:\n  learning_rate: 1.0e-3\n  steps: 1000\n  schedule: {kind: cosine, warmup_steps: 100}\n");
  const fs::path exp = write("experiments/small.yaml",
                             "# experiments/small.yaml\n"
                             "include: shared/trainer.yaml\n"
                             "trainer:\n"
                             "  steps: 200\n"
                             "  schedule: {warmup_steps: 10}\n"
                             "data:\n"
                             "  train: ../data/train.jsonl\n");
  const Config config =
      Config::load(exp, {"trainer.learning_rate=3e-4", "trainer.schedule.kind=linear", "trainer.steps=0"});
  const Config resolved = Config::parse(config.to_yaml(), "resolved.yaml");
  const ConfigView trainer = resolved.root().child("trainer");
  EXPECT_DOUBLE_EQ(trainer.get<double>("learning_rate"), 3e-4);
  EXPECT_EQ(trainer.child("schedule").get<std::string>("kind"), "linear");
  EXPECT_EQ(trainer.child("schedule").get<int>("warmup_steps"), 10);
  EXPECT_THAT(resolved.root().child("data").get<std::string>("train"), "../data/train.jsonl");
  const ConfigView original = config.root().child("trainer");
  EXPECT_THAT(error_of([&] { original.get_int("steps", 100, 1); }),
              HasSubstr("override 'trainer.steps=0': trainer.steps: expected an integer >= 1, got '0'"));
  EXPECT_THAT(error_of([&] { config.root().child("data").get_path("train", true); }),
              HasSubstr("experiments/small.yaml:7: data.train: file '../data/train.jsonl' does not exist"));
}

// A run folder keeps config.yaml and reads it back from there: paths that were read as paths are
// saved resolved, so they name the same files from any folder. Other strings stay as written.
TEST_F(ConfigFiles, SavedConfigKeepsPathsReadAsPathsResolved) {
  write("data/train.jsonl", "{}\n");
  const fs::path exp = write("exp/exp.yaml", "data: {train: ../data/train.jsonl, note: ../not/a/path}\n");
  const Config config = Config::load(exp);
  const fs::path train = config.root().child("data").get_path("train", true);
  config.root().child("data").get<std::string>("note");
  const fs::path saved = dir_ / "runs" / "a" / "config.yaml";
  fs::create_directories(saved.parent_path());
  config.save(saved);
  const Config again = Config::load(saved);
  EXPECT_EQ(again.root().child("data").get_path("train", true), train);
  EXPECT_EQ(again.root().child("data").get<std::string>("note"), "../not/a/path");
  EXPECT_EQ(again.to_yaml(), config.to_yaml());
  EXPECT_THAT(config.root().subtree_yaml("data"), HasSubstr(train.string()));
}

TEST_F(ConfigFiles, ResolvedYamlRoundTrips) {
  write("base.yaml", "trainer: {lr: 0.001, steps: 100, name: \"10\", tags: [a, b]}\n");
  const fs::path exp = write("exp.yaml", "include: base.yaml\nagents:\n  kv: {layers: [1, 2]}\n");
  const Config config = Config::load(exp, {"trainer.steps=7", "trainer.bf16=false", "trainer.note="});
  const fs::path saved = dir_ / "resolved.yaml";
  config.save(saved);
  const Config again = Config::load(saved);
  EXPECT_EQ(again.to_yaml(), config.to_yaml());
  const ConfigView trainer = again.root().child("trainer");
  EXPECT_DOUBLE_EQ(trainer.get<double>("lr"), 0.001);
  EXPECT_EQ(trainer.get<int64_t>("steps"), 7);
  EXPECT_FALSE(trainer.get<bool>("bf16"));
  EXPECT_EQ(trainer.get<std::string>("name"), "10");
  EXPECT_THAT(error_of([&] { trainer.get<int64_t>("name"); }), HasSubstr("expected an integer"));  // still quoted
  EXPECT_THAT(trainer.get<std::vector<std::string>>("tags"), ElementsAre("a", "b"));
  EXPECT_THAT(again.root().child("agents").child("kv").get<std::vector<int64_t>>("layers"), ElementsAre(1, 2));
  EXPECT_TRUE(trainer.has("note"));
  EXPECT_EQ(trainer.get<std::string>("note"), "");
  EXPECT_FALSE(again.root().has("include"));
  EXPECT_THAT(again.origin("trainer.steps"), HasSubstr("resolved.yaml:"));
}

// ---------------------------------------------------------------------------------------------
// Checks a consumer makes itself.

TEST(ConfigReads, KindsDescriptionsAndErrorsForConsumers) {
  const Config config = Config::parse("a: 3\nb: [1, [0, 1]]\nc: {d: x}\ne: ~\n", "exp.yaml", ".", {"c.f=7"});
  const ConfigView root = config.root();
  EXPECT_EQ(root.kind_of("a"), ConfigValueKind::scalar);
  EXPECT_EQ(root.kind_of("b"), ConfigValueKind::list);
  EXPECT_EQ(root.kind_of("c"), ConfigValueKind::map);
  EXPECT_EQ(root.kind_of("e"), ConfigValueKind::absent);
  EXPECT_EQ(root.kind_of("zz"), ConfigValueKind::absent);
  EXPECT_EQ(root.describe("a"), "'3'");
  EXPECT_EQ(root.describe("b"), "a list");
  EXPECT_EQ(root.describe("e"), "null");
  EXPECT_EQ(root.describe("zz"), "nothing");
  EXPECT_EQ(std::string(root.error("a", "must be even").what()), "exp.yaml:1: a: must be even");
  EXPECT_EQ(std::string(root.child("c").error("f", "too big").what()), "override 'c.f=7': c.f: too big");
  // List items of any kind through "key[i]" paths.
  EXPECT_EQ(root.list_size("b"), 2u);
  EXPECT_EQ(root.get<int>("b[0]"), 1);
  EXPECT_THAT(root.get<std::vector<int64_t>>("b[1]"), ElementsAre(0, 1));
  EXPECT_THAT(error_of([&] { root.list_size("a"); }), HasSubstr("exp.yaml:1: a: expected a list, got '3'"));
  EXPECT_THAT(error_of([&] { root.list_size("zz"); }), HasSubstr("exp.yaml: missing required key 'zz' (a list)"));
  // Allowed keys, with a suggestion for a near miss.
  EXPECT_NO_THROW(root.child("c").check_keys({"d", "f"}));
  EXPECT_EQ(error_of([&] { root.child("c").check_keys({"d", "g"}, "of a thing"); }),
            "override 'c.f=7': c.f: unknown key of a thing (expected one of d, g; did you mean 'd'?)");
  const Config typo = Config::parse("trainer:\n  steps: 3\n  lerning_rate: 1\n", "exp.yaml");
  EXPECT_EQ(error_of([&] { typo.root().child("trainer").check_keys({"learning_rate", "steps"}); }),
            "exp.yaml:3: trainer.lerning_rate: unknown key (expected one of learning_rate, steps; did you mean "
            "'learning_rate'?)");
  EXPECT_EQ(error_of([&] { typo.root().child("trainer").check_keys({"steps"}); }),
            "exp.yaml:3: trainer.lerning_rate: unknown key (expected steps)");
}

// ---------------------------------------------------------------------------------------------
// Limits: what a broken or hostile document gets instead of a crash.

TEST(ConfigLimits, AnAliasInsideTheNodeItNamesIsAnError) {
  EXPECT_THAT(error_of([] { Config::parse("a: &x [1, *x]\n", "exp.yaml"); }),
              HasSubstr("nested deeper than 64 levels (or an alias inside the map or list it names)"));
  EXPECT_THAT(error_of([] { Config::parse("a: &x {b: *x}\n", "exp.yaml"); }), HasSubstr("exp.yaml:1: a.b.b.b"));
}

TEST(ConfigLimits, DeepNestingAndLongOverridePathsAreErrors) {
  std::string deep = "a: ";
  for (int i = 0; i < 70; ++i) deep += "[";
  for (int i = 0; i < 70; ++i) deep += "]";
  EXPECT_THAT(error_of([&] { Config::parse(deep + "\n", "exp.yaml"); }), HasSubstr("nested deeper than 64 levels"));
  std::string key = "a";
  for (int i = 0; i < 70; ++i) key += ".a";
  EXPECT_THAT(error_of([&] { Config::parse("", "exp.yaml", ".", {key + "=1"}); }),
              HasSubstr("the key path is deeper than 64 levels"));
  EXPECT_NO_THROW(Config::parse("", "exp.yaml", ".", {"a.b.c.d.e.f.g.h=1"}));
}

TEST(ConfigLimits, AliasExpansionIsBounded) {
  // Each line repeats the one before ten times: a million values from six lines.
  std::string yaml = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (char c = 'b'; c <= 'f'; ++c) {
    const char prev = static_cast<char>(c - 1);
    yaml += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) yaml += std::string(i ? ", *" : "*") + prev;
    yaml += "]\n";
  }
  EXPECT_THAT(error_of([&] { Config::parse(yaml, "exp.yaml"); }),
              HasSubstr("more than 100000 values in one document (an alias repeated many times?)"));
}

TEST(ConfigLimits, AliasesAreCopiesSoOneOverrideChangesOnePlace) {
  const Config config = Config::parse("top:\n  a: &x {lr: 1, tags: [p]}\n  b: *x\n", "exp.yaml", ".", {"top.b.lr=2"});
  EXPECT_EQ(config.root().child("top").child("a").get<int>("lr"), 1);
  EXPECT_EQ(config.root().child("top").child("b").get<int>("lr"), 2);
  EXPECT_THAT(config.root().child("top").child("b").get<std::vector<std::string>>("tags"), ElementsAre("p"));
  EXPECT_THAT(config.origin("top.b"), HasSubstr("exp.yaml:3"));
  EXPECT_THAT(config.origin("top.b.tags"), HasSubstr("exp.yaml:2"));  // where the aliased text is
}

TEST_F(ConfigFiles, FileNamesTheSystemRefusesAreErrors) {
  // A name longer than the system allows is an Error naming it, whether included or read as a path.
  const std::string long_name(300, 'x');
  const fs::path exp = write("exp.yaml", "include: " + long_name + "\n");
  EXPECT_THAT(error_of([&] { Config::load(exp); }), HasSubstr("exp.yaml:1: included file '"));
  std::string long_path;
  for (int i = 0; i < 2100; ++i) long_path += "y/";
  const Config config = Config::parse("data: " + long_path + "z\n", "exp.yaml", dir_);
  EXPECT_THAT(error_of([&] { config.root().get_path("data", /*must_exist=*/true); }),
              HasSubstr("exp.yaml:1: data: file '"));
  // A file that is not regular, and one too large to be a config.
  write("folder/x.yaml", "a: 1\n");
  EXPECT_THAT(error_of([&] { Config::load(write("dir.yaml", "include: folder\n")); }),
              HasSubstr("dir.yaml:1: included file 'folder' is not a regular file"));
  {
    std::ofstream big(dir_ / "big.yaml");
    const std::string line = "# " + std::string(1022, 'c') + "\n";
    for (int i = 0; i < 17 * 1024; ++i) big << line;
  }
  EXPECT_THAT(error_of([&] { Config::load(dir_ / "big.yaml"); }), HasSubstr("is larger than 16 MiB"));
}

TEST(ConfigLimits, KeysAreShortAndEverythingIsUtf8) {
  const std::string key(201, 'k');
  EXPECT_THAT(error_of([&] { Config::parse("a:\n  " + key + ": 1\n", "exp.yaml"); }),
              HasSubstr("exp.yaml:2: key 'a." + std::string(78, 'k') + "...': a key name is at most 200 bytes, got 201"));
  EXPECT_THAT(error_of([] { Config::parse("a: {\xff: 1}\n", "exp.yaml"); }),
              HasSubstr("exp.yaml:1: key 'a.\xef\xbf\xbd': not valid UTF-8"));
  EXPECT_THAT(error_of([] { Config::parse("a:\n  b: [x, ok, \xc3]\n", "exp.yaml"); }),
              HasSubstr("exp.yaml:2: a.b[2]: not valid UTF-8 (byte 1 of the value)"));
  EXPECT_THAT(error_of([] { Config::parse("", "exp.yaml", ".", {"a=x\xe2\x82"}); }),
              HasSubstr(": a: not valid UTF-8 (byte 2 of the value)"));
  EXPECT_THAT(error_of([] { Config::parse("", "exp.yaml", ".", {"a.\x9c|b=1"}); }),
              HasSubstr(": key '\xef\xbf\xbd|b': not valid UTF-8"));
  EXPECT_THAT(error_of([&] { Config::parse("", "exp.yaml", ".", {"a." + key + "=1"}); }),
              HasSubstr(": key '" + std::string(80, 'k') + "...': a key name is at most 200 bytes, got 201"));
  // The longest key, of bytes that are written escaped (four characters each), and a value longer
  // than a key may be, read back from the saved text and save to the same text.
  std::string escaped;
  for (int i = 0; i < 200; ++i) escaped += "\\x01";
  const Config config =
      Config::parse("a:\n  \"" + escaped + "\": 1\n  long: " + std::string(3000, 'v') + "\n  after: 2\n", "exp.yaml");
  const std::string saved = config.to_yaml();
  const Config again = Config::parse(saved, "saved.yaml");
  EXPECT_EQ(again.root().child("a").get<int>(std::string(200, '\x01')), 1);
  EXPECT_EQ(again.root().child("a").get<int>("after"), 2);
  EXPECT_EQ(again.to_yaml(), saved);
}

}  // namespace
