// The lm data format (running text cut into chunks of at most chunk_words words, a constant prompt as
// the source) and a language-model text agent evaluated by validation perplexity.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "common/config.h"
#include "common/error.h"
#include "eval/fluency/perplexity.h"
#include "train/data/text_pairs.h"
#include "train/text_agents.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LmDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("chorus-lm-data-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return dir_ / name;
  }
  fs::path dir_;
};

TEST(LmChunks, SplitAtWhitespaceIntoChunksOfAtMostNWords) {
  EXPECT_THAT(split_into_chunks("a b c d e", 2), ElementsAre("a b", "c d", "e"));
  EXPECT_THAT(split_into_chunks("  a\tb   c  ", 3), ElementsAre("a b c"));
  EXPECT_THAT(split_into_chunks("one two three", 1), ElementsAre("one", "two", "three"));
  EXPECT_THAT(split_into_chunks("a b c d", 4), ElementsAre("a b c d"));
  EXPECT_TRUE(split_into_chunks(" \t ", 5).empty());
  EXPECT_TRUE(split_into_chunks("", 5).empty());
  EXPECT_THAT(split_into_chunks(" = Über café = ", 2), ElementsAre("= Über", "café ="));
  EXPECT_THROW(split_into_chunks("a", 0), Error);
}

TEST_F(LmDataTest, EveryNonEmptyLineBecomesChunksBehindThePrompt) {
  TextPairSource source;
  source.format = TextPairFormat::lm;
  source.file = write("text.raw", " = Heading = \n\nthe first line has seven words in it\n   \nshort\r\nlast line");
  source.chunk_words = 3;
  TextPairStats stats;
  const auto pairs = load_text_pairs(source, TextPairOptions{}, &stats);
  std::vector<std::string> targets;
  for (const auto& p : pairs) {
    EXPECT_EQ(p.source, "");
    targets.push_back(p.target);
  }
  EXPECT_THAT(targets, ElementsAre("= Heading =", "the first line", "has seven words", "in it", "short", "last line"));
  EXPECT_EQ(stats.lines, 6);
  EXPECT_EQ(stats.skipped_empty, 2);

  source.prompt = "continue:";
  TextPairOptions first_two;
  first_two.max_examples = 2;
  const auto capped = load_text_pairs(source, first_two);
  ASSERT_EQ(capped.size(), 2u);
  EXPECT_EQ(capped[0].source, "continue:");
  EXPECT_EQ(capped[1].target, "the first line");
}

TEST_F(LmDataTest, ErrorsNameTheFileAndLine) {
  TextPairSource source;
  source.format = TextPairFormat::lm;
  source.file = write("bad.raw", "fine text\nbroken \xc3\x28 text\n");
  try {
    load_text_pairs(source, TextPairOptions{});
    FAIL() << "invalid UTF-8 was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad.raw:2: invalid UTF-8 at byte 8"));
  }
  source.file = dir_ / "missing.raw";
  EXPECT_THROW(load_text_pairs(source, TextPairOptions{}), Error);
}

const char* kLmConfig = R"(name: tiny_lm
seed: 2
data:
  format: lm
  train: {file: train.raw}
  valid: {file: valid.raw}
  chunk_words: 8
  max_length: 24
tokenizer: {type: unigram, vocab_size: 60}
agent:
  model: {d_model: 32, layers: 1, heads: 2, d_ff: 64}
  train: {steps: 40, learning_rate: 0.01, warmup_steps: 4, batch_size: 16, log_every: 5, eval_every: 20, checkpoint_every: 20}
  eval_examples: 30
  eval_batch_size: 8
)";

TEST_F(LmDataTest, ConfigReadsTheLmKeysAndRejectsThemElsewhere) {
  write("train.raw", "a b c\n");
  write("valid.raw", "a b\n");
  write("lm.yaml", kLmConfig);
  const auto config = Config::load(dir_ / "lm.yaml");
  const auto spec = read_text_agent(config.root());
  config.check_all_keys_used();
  EXPECT_TRUE(spec.language_model());
  EXPECT_EQ(spec.train_data.chunk_words, 8);
  EXPECT_EQ(spec.valid_data.chunk_words, 8);
  EXPECT_EQ(spec.trainer.best_metric, "ppl");
  EXPECT_FALSE(spec.trainer.higher_is_better);

  // chunk_words means nothing to a pair format: an unused key, named.
  write("pairs.yaml", R"(data:
  format: tsv
  train: {file: train.raw}
  valid: {file: valid.raw}
  chunk_words: 8
agent:
  model: {d_model: 32}
  train: {steps: 1}
)");
  const auto pairs = Config::load(dir_ / "pairs.yaml");
  read_text_agent(pairs.root());
  try {
    pairs.check_all_keys_used();
    FAIL() << "data.chunk_words was accepted for the tsv format";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("chunk_words"));
  }
  write("zero.yaml", std::string(kLmConfig).replace(std::string(kLmConfig).find("chunk_words: 8"), 14, "chunk_words: 0"));
  const auto zero = Config::load(dir_ / "zero.yaml");
  EXPECT_THROW(read_text_agent(zero.root()), Error);
}

TEST_F(LmDataTest, TinyLanguageModelIsPickedAndReportedByValidationPerplexity) {
  torch::set_num_threads(1);
  // Sentences from a small grammar: a model that learns it beats the uniform perplexity by far.
  const std::vector<std::string> subjects = {"the dog", "a cat", "the old bird", "my friend"};
  const std::vector<std::string> verbs = {"sees", "likes", "follows"};
  const std::vector<std::string> objects = {"the river", "a red ball", "the tall tree"};
  std::mt19937 rng(11);
  for (const char* split : {"train", "valid"}) {
    std::ofstream out(dir_ / (std::string(split) + ".raw"));
    for (int line = 0; line < (std::string(split) == "train" ? 120 : 20); ++line) {
      for (int s = 0; s < 2; ++s) {
        out << subjects[rng() % subjects.size()] << " " << verbs[rng() % verbs.size()] << " "
            << objects[rng() % objects.size()] << " . ";
      }
      out << "\n" << (line % 10 == 0 ? "\n" : "");
    }
  }
  write("lm.yaml", kLmConfig);
  const auto config = Config::load(dir_ / "lm.yaml");
  auto spec = read_text_agent(config.root());
  spec.trainer.show_progress = false;
  const auto folder = dir_ / "tiny_lm";
  const auto result = pretrain_text_agent(spec, folder, dir_ / "tiny_lm.run", /*resume=*/false);
  EXPECT_EQ(result.steps, 40);
  EXPECT_EQ(result.bleu, 0.0);
  ASSERT_GT(result.perplexity, 1.0);

  std::ifstream in(folder / "pretrain.json");
  const auto info = nlohmann::json::parse(in);
  EXPECT_EQ(info.at("kind"), "text_lm");
  EXPECT_DOUBLE_EQ(info.at("ppl").get<double>(), result.perplexity);
  EXPECT_FALSE(info.contains("bleu"));

  // The published agent scores the validation chunks to the same perplexity through the
  // evaluation library, and well under a uniform guess over its vocabulary.
  const auto agent = collab::load_agent("tiny_lm", folder, "language model");
  TextPairOptions valid_options;
  valid_options.max_examples = spec.eval_examples;
  std::vector<std::string> texts;
  for (const auto& p : load_text_pairs(spec.valid_data, valid_options)) texts.push_back(p.target);
  const auto scored = eval::text_perplexity(*agent.model, *agent.tokenizer, texts);
  EXPECT_NEAR(scored.perplexity, result.perplexity, 1e-6 * result.perplexity);
  EXPECT_EQ(scored.total_tokens, result.eval_tokens);
  EXPECT_LT(result.perplexity, 0.5 * static_cast<double>(agent.tokenizer->vocab_size()));
}

}  // namespace
}  // namespace chorus::train
