// Task completion in experiment configs: `evaluation.task_completion` read through the config
// system (origins across overrides, unknown sets and keys), scored into report entries, and the
// predicates the shipped experiments declare.
#include "train/task_completion_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/train/error_of.h"

namespace {

using chorus::Error;
using chorus::eval::PredicateKind;
using chorus::Config;
using ::testing::HasSubstr;

using chorus::testing::error_of;

const std::vector<std::string> kSets = {"kv_subs", "num_math"};

auto read(const Config& config) {
  return chorus::train::read_task_completion(config, config.root().child_or_empty("evaluation"), kSets);
}

TEST(TaskCompletionConfig, ReadsOneSpecPerSetAndMarksItsKeysKnown) {
  const Config config = Config::parse(
      "evaluation:\n"
      "  examples: 3\n"
      "  task_completion:\n"
      "    kv_subs: {kind: format, format: \"regex:-?[0-9]+ [-+] -?[0-9]+\"}\n"
      "    num_math:\n"
      "      kind: answer_correct\n"
      "      normalization: number\n",
      "exp.yaml");
  const auto specs = read(config);
  config.root().child("evaluation").get_int("examples");
  EXPECT_NO_THROW(config.check_all_keys_used());
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs.at("kv_subs").kind, PredicateKind::format);
  EXPECT_EQ(specs.at("num_math").kind, PredicateKind::answer_correct);
  EXPECT_EQ(chorus::eval::describe(specs.at("kv_subs")), "output matches -?[0-9]+ [-+] -?[0-9]+");
}

TEST(TaskCompletionConfig, AbsentBlockMeansNoPredicates) {
  const Config config = Config::parse("evaluation: {examples: 3}\n", "exp.yaml");
  EXPECT_TRUE(read(config).empty());
}

TEST(TaskCompletionConfig, ErrorsNameTheFileLineAndKey) {
  // An unknown set, with the valid ones listed.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    kv_sub: {kind: format, format: integer}\n",
                                   "exp.yaml"));
              }),
              HasSubstr("exp.yaml:3: evaluation.task_completion.kv_sub: unknown evaluation set (expected one of: "
                        "kv_subs, num_math)"));
  // A bad value deep in the spec: its own line, not the block's.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    kv_subs:\n      kind: constraint\n"
                                   "      max_words: many\n",
                                   "exp.yaml"));
              }),
              HasSubstr("exp.yaml:5: evaluation.task_completion.kv_subs.max_words: expected an integer >= 0, got 'many'"));
  // An unknown key inside a spec.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    kv_subs: {kind: format, formt: integer}\n",
                                   "exp.yaml"));
              }),
              HasSubstr("exp.yaml:3: evaluation.task_completion.kv_subs.formt: unknown key for kind format "
                        "(expected one of format, kind; did you mean 'format'?)"));
  // A spec that is not a map.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    kv_subs: integer\n", "exp.yaml"));
              }),
              HasSubstr("exp.yaml:3: evaluation.task_completion.kv_subs: expected a map, got 'integer'"));
  // A value set by an override is located there.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    kv_subs: {kind: format, format: integer}\n",
                                   "exp.yaml", ".", {"evaluation.task_completion.kv_subs.format=float"}));
              }),
              HasSubstr("override 'evaluation.task_completion.kv_subs.format=float': "
                        "evaluation.task_completion.kv_subs.format: unknown format 'float'"));
  // Unit tests need code problems, which these sets do not have.
  EXPECT_THAT(error_of([] {
                read(Config::parse("evaluation:\n  task_completion:\n    num_math: {kind: unit_tests}\n", "exp.yaml"));
              }),
              HasSubstr("exp.yaml:3: evaluation.task_completion.num_math: kind unit_tests needs code problems"));
}

TEST(TaskCompletionConfig, ScoresOutputsIntoAReportEntry) {
  const Config config = Config::parse(
      "evaluation:\n  task_completion:\n    num_math: {kind: answer_correct, normalization: number}\n", "exp.yaml");
  const auto spec = read(config).at("num_math");
  chorus::eval::BootstrapParams bootstrap;
  bootstrap.resamples = 200;
  const auto result = chorus::train::score_task_completion(spec, {"12", "0012", "-3", "seven"},
                                                           {{"12"}, {"12"}, {"3"}, {"7"}}, bootstrap);
  ASSERT_EQ(result.outcomes.size(), 4u);
  EXPECT_TRUE(result.outcomes[0].success);
  EXPECT_TRUE(result.outcomes[1].success);  // compared as numbers
  EXPECT_FALSE(result.outcomes[2].success);
  EXPECT_FALSE(result.outcomes[3].success);
  EXPECT_FALSE(result.outcomes[3].reason.empty());
  EXPECT_DOUBLE_EQ(result.metric["value"].get<double>(), 0.5);
  EXPECT_EQ(result.metric["successes"].get<size_t>(), 2u);
  EXPECT_EQ(result.metric["n"].get<size_t>(), 4u);
  const auto ci = result.metric["ci95"];
  EXPECT_LE(ci[0].get<double>(), 0.5);
  EXPECT_GE(ci[1].get<double>(), 0.5);
  EXPECT_LT(ci[0].get<double>(), ci[1].get<double>());
  EXPECT_EQ(chorus::train::completion_metric("num_math"), "num_math_completion");
}

// The predicates the shipped experiments declare parse, and judge real-looking outputs as documented.
TEST(TaskCompletionConfig, ShippedExperimentsDeclareWorkingPredicates) {
  const std::filesystem::path experiments = "experiments";  // tests run in the source folder
  const Config quickstart = Config::load(experiments / "quickstart.yaml");
  const auto kv = chorus::train::read_task_completion(quickstart, quickstart.root().child_or_empty("evaluation"),
                                                      {"kv_subs", "num_math", "kv_math_heldout", "kv_math_train"});
  ASSERT_EQ(kv.size(), 4u);
  const auto& rewrite = kv.at("kv_subs").format;
  EXPECT_TRUE(chorus::eval::check_format(rewrite, "62 - 65").success);
  EXPECT_TRUE(chorus::eval::check_format(rewrite, "0 + -5").success);
  EXPECT_FALSE(chorus::eval::check_format(rewrite, "62 - zufeva").success);  // a key is left
  EXPECT_FALSE(chorus::eval::check_format(rewrite, "62").success);
  EXPECT_TRUE(chorus::eval::check_format(kv.at("num_math").format, "-16").success);
  EXPECT_FALSE(chorus::eval::check_format(kv.at("num_math").format, "72 - 88").success);

  const Config mt = Config::load(experiments / "multisource_mt.yaml");
  const auto translation = chorus::train::read_task_completion(mt, mt.root().child_or_empty("evaluation"),
                                                               {"test_2016_flickr"});
  ASSERT_EQ(translation.size(), 1u);
  const auto& c = translation.at("test_2016_flickr").constraint;
  EXPECT_TRUE(chorus::eval::check_constraints(c, "Ein Mann fährt Fahrrad.").success);
  EXPECT_FALSE(chorus::eval::check_constraints(c, "Mann").success);
  EXPECT_FALSE(chorus::eval::check_constraints(c, "Ein ⁇ fährt Fahrrad.").success);
}

}  // namespace
