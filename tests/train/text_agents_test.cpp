// Agents trained on text pairs: a tiny end-to-end `pretrain` from a YAML config on a synthetic
// reversal task, the published folder loads as an agent, and config mistakes fail before any work.
#include <gtest/gtest.h>
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "common/config.h"
#include "common/error.h"
#include "model/tokenizers/tokenizer.h"
#include "train/text_agents.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const char* kConfig = R"(name: reverser
seed: 4
data:
  format: jsonl
  train: {file: train.jsonl, source_field: words, target_field: reversed}
  valid: {file: valid.jsonl, source_field: words, target_field: reversed}
  max_length: 16
tokenizer: {type: unigram, vocab_size: 60}
agent:
  model: {d_model: 32, layers: 1, heads: 2, d_ff: 64}
  train: {steps: 60, learning_rate: 0.01, warmup_steps: 5, max_tokens: 256, log_every: 5, checkpoint_every: 30}
  eval_examples: 16
  eval_max_new_tokens: 12
)";

class TextAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("chorus-text-agent-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "agent.yaml") << kConfig;
    // Sentences over a small lexicon; the target is the source with its words in reverse order.
    const std::vector<std::string> words = {"red", "green", "blue", "dog", "cat", "bird", "runs", "sleeps",
                                            "small", "big", "über", "café"};
    std::mt19937 rng(7);
    for (const char* split : {"train", "valid"}) {
      std::ofstream out(dir_ / (std::string(split) + ".jsonl"));
      for (int i = 0; i < (std::string(split) == "train" ? 400 : 40); ++i) {
        std::vector<std::string> sentence;
        const int n = 2 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n; ++k) sentence.push_back(words[rng() % words.size()]);
        std::string source, target;
        for (int k = 0; k < n; ++k) {
          source += (k ? " " : "") + sentence[static_cast<size_t>(k)];
          target += (k ? " " : "") + sentence[static_cast<size_t>(n - 1 - k)];
        }
        out << nlohmann::json{{"words", source}, {"reversed", target}}.dump() << "\n";
      }
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

TEST_F(TextAgentTest, PretrainPublishesALoadableAgentThatLearned) {
  torch::set_num_threads(1);
  const auto config = Config::load(dir_ / "agent.yaml");
  auto spec = read_text_agent(config.root());
  config.check_all_keys_used();
  spec.trainer.show_progress = false;
  EXPECT_EQ(spec.trainer.best_metric, "bleu");
  EXPECT_EQ(spec.batching.max_tokens, 256);
  const auto folder = dir_ / "agents" / "reverser";
  const auto result = pretrain_text_agent(spec, folder, dir_ / "reverser.run", /*resume=*/false);

  EXPECT_EQ(result.steps, 60);
  EXPECT_EQ(result.train_examples, 400);
  ASSERT_EQ(result.losses.size(), 60u);
  const double first = std::accumulate(result.losses.begin(), result.losses.begin() + 10, 0.0) / 10;
  const double last = std::accumulate(result.losses.end() - 10, result.losses.end(), 0.0) / 10;
  EXPECT_LT(last, 0.7 * first) << "first steps " << first << ", last steps " << last;
  EXPECT_GE(result.bleu, 0.0);
  EXPECT_LE(result.bleu, 100.0);

  ASSERT_TRUE(fs::is_regular_file(folder / "model.h5"));
  ASSERT_TRUE(fs::is_regular_file(folder / "spiece.model"));
  std::ifstream in(folder / "pretrain.json");
  const auto info = nlohmann::json::parse(in);
  EXPECT_EQ(info.at("steps").get<int64_t>(), 60);
  EXPECT_DOUBLE_EQ(info.at("bleu").get<double>(), result.bleu);
  EXPECT_EQ(info.at("kind").get<std::string>(), "text");

  const auto agent = collab::load_agent("reverser", folder);
  const auto& tok = *agent.tokenizer;
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.unk_id(), 2);
  EXPECT_EQ(tok.vocab_size(), agent.model->vocab_size());
  for (const std::string text : {"big café runs", "über small dog sleeps"}) {
    const auto ids = tok.encode(text);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.back(), tok.eos_id());
    EXPECT_EQ(tok.decode(ids), text);
  }
  model::GenerationOptions options;
  options.max_new_tokens = 12;
  const auto out = agent.generate_text({"red dog runs"}, options);
  ASSERT_EQ(out.size(), 1u);

  // A second pretrain into the published folder is refused rather than overwriting it.
  EXPECT_THROW(pretrain_text_agent(spec, folder, dir_ / "again.run", false), Error);
}

// The cache key follows the data's content: the same files copied to another folder, or written
// again with a new time stamp, give the same fingerprint; one changed byte gives another.
TEST_F(TextAgentTest, FingerprintFollowsDataContentNotPlaceOrTime) {
  const auto fingerprint_in = [](const fs::path& folder) {
    const auto config = Config::load(folder / "agent.yaml");
    return read_text_agent(config.root()).fingerprint();
  };
  const std::string original = fingerprint_in(dir_);
  const fs::path copy = dir_ / "copy";
  fs::create_directories(copy);
  for (const char* name : {"agent.yaml", "train.jsonl", "valid.jsonl"}) fs::copy_file(dir_ / name, copy / name);
  fs::last_write_time(copy / "train.jsonl", fs::last_write_time(dir_ / "train.jsonl") + std::chrono::hours(5));
  EXPECT_EQ(fingerprint_in(copy), original);
  {
    std::fstream edit(copy / "valid.jsonl", std::ios::in | std::ios::out | std::ios::binary);
    edit.seekp(2);
    edit.put('W');  // "words" -> "Words": same size, other content
  }
  EXPECT_NE(fingerprint_in(copy), original);
}

TEST_F(TextAgentTest, ConfigMistakesAreNamed) {
  auto error_of = [&](std::vector<std::string> overrides) -> std::string {
    try {
      const auto config = Config::load(dir_ / "agent.yaml", overrides);
      read_text_agent(config.root());
      config.check_all_keys_used();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(error_of({"data.format=csv"}), HasSubstr("data.format"));
  EXPECT_THAT(error_of({"data.train.file=missing.jsonl"}), HasSubstr("missing.jsonl"));
  EXPECT_THAT(error_of({"agent.train.max_tokens=8"}), HasSubstr("below data.max_length = 16"));
  EXPECT_THAT(error_of({"tokenizer.typ=bpe"}), HasSubstr("did you mean 'tokenizer.type'"));
  EXPECT_THAT(error_of({"tokenizer.type=wordpiece"}), HasSubstr("tokenizer.type"));
  // Override paths resolve against the current folder, so these are absolute.
  EXPECT_EQ(error_of({"data.format=tsv", "data.train={file: '" + (dir_ / "train.jsonl").string() + "'}",
                      "data.valid={file: '" + (dir_ / "valid.jsonl").string() + "'}"}),
            "no error");
}

}  // namespace
}  // namespace chorus::train
