// Perplexity under a reference model: parity with Hugging Face's loss on tiny T5, T5 v1.1 and BART
// models with trained tokenizers (fluency_reference.py), padding that does not leak, the bootstrap
// interval, bad input, and the `chorus score --metrics ppl` engine (cli/fluency_scoring.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/fluency_scoring.h"
#include "collab/agent.h"
#include "common/error.h"
#include "eval/fluency/perplexity.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The reference models and their Hugging Face figures, made once per build folder and script version
// (a file lock makes parallel test processes wait for one another). Empty, with `why`, without
// $CHORUS_PYTHON; a failing script is a test failure.
std::optional<fs::path> reference_folder(std::string& why) {
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0') {
    why = "CHORUS_PYTHON is not set: the transformers reference (scripts/setup.sh installs it) is needed to build "
          "the reference models";
    return std::nullopt;
  }
  fs::path script = "tests/eval/fluency_reference.py";  // tests run from the source root
  if (!fs::exists(script)) script = fs::path(__FILE__).parent_path() / "fluency_reference.py";
  const auto stamp = std::to_string(std::hash<std::string>{}(read_text(script)));
  const auto root = fs::read_symlink("/proc/self/exe").parent_path() / "fluency_reference";
  fs::create_directories(root);
  const int fd = ::open((root / ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (fd >= 0) ::flock(fd, LOCK_EX);
  const auto data = root / "data";
  std::optional<fs::path> result = data;
  if (!(fs::exists(root / "done") && read_text(root / "done") == stamp)) {
    fs::remove_all(data);
    const auto log = root / "fluency_reference.log";
    const std::string command = std::string("\"") + python + "\" \"" + fs::absolute(script).string() + "\" \"" +
                                data.string() + "\" > \"" + log.string() + "\" 2>&1";
    const int status = std::system(command.c_str());
    if (status != 0) {
      ADD_FAILURE() << "fluency_reference.py failed (status " << status << "); its output:\n" << read_text(log);
      why = "fluency_reference.py failed";
      result.reset();
    } else {
      std::ofstream(root / "done") << stamp;
    }
  }
  if (fd >= 0) {
    ::flock(fd, LOCK_UN);
    ::close(fd);
  }
  return result;
}

#define REQUIRE_REFERENCE(folder_var)                   \
  fs::path folder_var;                                  \
  {                                                     \
    std::string why_;                                   \
    auto found_ = reference_folder(why_);               \
    if (!found_) GTEST_SKIP() << why_;                  \
    folder_var = *found_;                               \
  }

const std::vector<std::string> kModels = {"t5", "t5_v1_1", "bart"};

std::vector<std::string> field(const nlohmann::json& cases, const char* name) {
  std::vector<std::string> out;
  for (const auto& c : cases) out.push_back(c[name].get<std::string>());
  return out;
}

// Our figures against the reference's, case by case, then the corpus perplexity.
void expect_parity(const std::string& model_name, const std::string& case_name, const nlohmann::json& cases,
                   const PerplexityResult& ours, const model::Tokenizer& tokenizer) {
  SCOPED_TRACE(model_name + " / " + case_name);
  ASSERT_EQ(ours.nll.size(), cases.size());
  double nll = 0;
  int64_t tokens = 0;
  double worst = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    // Tokenisation first: a different id sequence would explain any difference below.
    EXPECT_EQ(tokenizer.encode(c["text"].get<std::string>()), c["label_ids"].get<std::vector<int64_t>>())
        << "text " << i;
    EXPECT_EQ(tokenizer.encode(c["source"].get<std::string>()), c["source_ids"].get<std::vector<int64_t>>())
        << "source " << i;
    const double expected = c["nll"].get<double>();
    EXPECT_EQ(ours.tokens[i], c["tokens"].get<int64_t>()) << "text " << i;
    const double relative = std::abs(ours.nll[i] - expected) / std::abs(expected);
    worst = std::max(worst, relative);
    EXPECT_LT(relative, 1e-4) << "text " << i << ": nll " << ours.nll[i] << ", reference " << expected;
    nll += expected;
    tokens += c["tokens"].get<int64_t>();
  }
  const double reference_ppl = std::exp(nll / static_cast<double>(tokens));
  EXPECT_EQ(ours.total_tokens, tokens);
  EXPECT_NEAR(ours.perplexity, reference_ppl, 1e-5 * reference_ppl);
  // The figures the documentation quotes: the worst relative difference per model and case.
  std::cout << "[parity] " << model_name << " " << case_name << ": ppl " << ours.perplexity << " (reference "
            << reference_ppl << "), worst per-segment relative NLL difference " << worst << "\n";
}

TEST(PerplexityParity, MatchesHuggingFaceLossTimesTokens) {
  REQUIRE_REFERENCE(folder);
  const auto reference = nlohmann::json::parse(read_text(folder / "reference.json"));
  for (const auto& name : kModels) {
    const auto agent = collab::load_agent(name, folder / name, "reference");
    PerplexityOptions options;
    options.batch_size = 4;  // batches with padding on both sides
    const auto& lm = reference.at(name).at("language_model");
    expect_parity(name, "language model", lm,
                  text_perplexity(*agent.model, *agent.tokenizer, field(lm, "text"), {}, options), *agent.tokenizer);
    const auto& conditioned = reference.at(name).at("conditioned");
    expect_parity(name, "conditioned",
                  conditioned,
                  text_perplexity(*agent.model, *agent.tokenizer, field(conditioned, "text"),
                                  field(conditioned, "source"), options),
                  *agent.tokenizer);
  }
}

TEST(Perplexity, BatchedEqualsUnbatched) {
  REQUIRE_REFERENCE(folder);
  const auto reference = nlohmann::json::parse(read_text(folder / "reference.json"));
  for (const auto& name : kModels) {
    SCOPED_TRACE(name);
    const auto agent = collab::load_agent(name, folder / name, "reference");
    const auto& cases = reference.at(name).at("conditioned");
    const auto texts = field(cases, "text");
    const auto sources = field(cases, "source");
    PerplexityOptions one;
    one.batch_size = 1;
    const auto alone = text_perplexity(*agent.model, *agent.tokenizer, texts, sources, one);
    for (const int64_t batch : {2, 3, 64}) {
      PerplexityOptions options;
      options.batch_size = batch;
      const auto batched = text_perplexity(*agent.model, *agent.tokenizer, texts, sources, options);
      ASSERT_EQ(batched.nll.size(), alone.nll.size());
      for (size_t i = 0; i < texts.size(); ++i) {
        EXPECT_NEAR(batched.nll[i], alone.nll[i], 1e-5 * std::abs(alone.nll[i])) << "batch " << batch << ", text " << i;
        EXPECT_EQ(batched.tokens[i], alone.tokens[i]);
      }
    }
  }
}

TEST(Perplexity, EmptyTextScoresItsEndOfSequence) {
  REQUIRE_REFERENCE(folder);
  const auto agent = collab::load_agent("t5", folder / "t5", "reference");
  const auto result = text_perplexity(*agent.model, *agent.tokenizer, {""});
  ASSERT_EQ(result.tokens.size(), 1u);
  EXPECT_EQ(result.tokens[0], 1);  // "</s>" alone
  EXPECT_GT(result.nll[0], 0.0);
}

TEST(Perplexity, BadInputIsAClearError) {
  REQUIRE_REFERENCE(folder);
  const auto agent = collab::load_agent("bart", folder / "bart", "reference");
  const auto& model = *agent.model;
  const auto& tokenizer = *agent.tokenizer;
  const auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_THAT(message([&] { text_perplexity(model, tokenizer, {}); }), HasSubstr("no segments to score"));
  EXPECT_THAT(message([&] { text_perplexity(model, tokenizer, {"a", "b"}, {"x"}); }),
              HasSubstr("2 segments but 1 sources"));
  PerplexityOptions options;
  options.max_tokens = 5;
  options.origin = "hyps.txt";
  EXPECT_THAT(message([&] { text_perplexity(model, tokenizer, {"ok", "a much longer text than five tokens"}, {}, options); }),
              HasSubstr("hyps.txt:2: the text has"));
  // BART's own limit (max_position_embeddings = 128 in the fixture) applies without max_tokens.
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "word ";
  EXPECT_THAT(message([&] { text_perplexity(model, tokenizer, {long_text}); }),
              HasSubstr("above the limit of 128 (the model's max_position_embeddings)"));
  EXPECT_THAT(message([&] { sequence_perplexity(model, {{0, 2}}, {{0, 99999}}, tokenizer.pad_id()); }),
              HasSubstr("segment 1: token id 99999 in the source is outside the model's vocabulary"));
  EXPECT_THAT(message([&] { sequence_perplexity(model, {{}}, {{0, 2}}, tokenizer.pad_id()); }),
              HasSubstr("segment 1: an empty token sequence"));
}

TEST(Perplexity, BootstrapIntervalContainsThePointEstimate) {
  // Per-segment figures of known ratio: the interval is over segments, the score their pooled ratio.
  std::vector<double> nll;
  std::vector<int64_t> tokens;
  for (int i = 0; i < 50; ++i) {
    tokens.push_back(3 + i % 7);
    nll.push_back(static_cast<double>(tokens.back()) * (1.5 + 0.5 * std::sin(i)));
  }
  BootstrapParams params;
  params.resamples = 500;
  const auto result = summarize_perplexity(nll, tokens, params);
  double total_nll = 0;
  int64_t total_tokens = 0;
  for (size_t i = 0; i < nll.size(); ++i) {
    total_nll += nll[i];
    total_tokens += tokens[i];
  }
  EXPECT_DOUBLE_EQ(result.perplexity, std::exp(total_nll / static_cast<double>(total_tokens)));
  EXPECT_DOUBLE_EQ(result.interval.score, result.perplexity);
  EXPECT_LT(result.interval.low, result.perplexity);
  EXPECT_GT(result.interval.high, result.perplexity);
  EXPECT_LT(result.interval.high - result.interval.low, result.perplexity);  // not degenerate either way
  EXPECT_EQ(result.interval.resamples, 500);
  // One segment: every resample is that segment, the interval collapses onto the estimate.
  const auto single = summarize_perplexity({6.0}, {3}, params);
  EXPECT_DOUBLE_EQ(single.interval.low, std::exp(2.0));
  EXPECT_DOUBLE_EQ(single.interval.high, std::exp(2.0));
}

// ---- the `chorus score --metrics ppl --lm DIR` engine ----

class FluencyScoringTest : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() /
            ("chorus-fluency-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(work_);
    fs::create_directories(work_);
  }
  void TearDown() override { fs::remove_all(work_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(work_ / name, std::ios::binary) << text;
    return (work_ / name).string();
  }
  fs::path work_;
};

TEST_F(FluencyScoringTest, PrintsTextAndJsonMatchingTheLibrary) {
  REQUIRE_REFERENCE(folder);
  const auto model_dir = (folder / "t5").string();
  const std::vector<std::string> hyps = {"The quick brown fox jumps over the lazy dog.", "Two children are playing.",
                                         "Windows!"};
  const auto hyps_file = write("hyps.txt", hyps[0] + "\n" + hyps[1] + "\n" + hyps[2] + "\n");
  const auto agent = collab::load_agent("t5", folder / "t5", "reference");
  const auto expected = text_perplexity(*agent.model, *agent.tokenizer, hyps);

  std::ostringstream text;
  EXPECT_EQ(cli::score_perplexity(model_dir, hyps_file, std::nullopt, false, text), 0);
  char line[128];
  std::snprintf(line, sizeof line, "ppl = %.2f [%.2f, %.2f]\n", expected.perplexity, expected.interval.low,
                expected.interval.high);
  EXPECT_EQ(text.str(), line);

  std::ostringstream json_text;
  EXPECT_EQ(cli::score_perplexity(model_dir, hyps_file, std::nullopt, true, json_text), 0);
  const auto json = nlohmann::json::parse(json_text.str());
  EXPECT_NEAR(json["ppl"]["value"].get<double>(), expected.perplexity, 1e-9 * expected.perplexity);
  EXPECT_NEAR(json["ppl"]["ci"][0].get<double>(), expected.interval.low, 1e-9 * expected.perplexity);
  EXPECT_NEAR(json["ppl"]["ci"][1].get<double>(), expected.interval.high, 1e-9 * expected.perplexity);
  EXPECT_EQ(json["tokens"].get<int64_t>(), expected.total_tokens);
  EXPECT_EQ(json["segments"].get<int64_t>(), 3);
  EXPECT_EQ(json["model"].get<std::string>(), model_dir);

  // Sources change the figure and come from a line-aligned file (an empty line is an empty source).
  const auto sources_file = write("sources.txt", "A fox and a dog.\n\nClean the windows.\n");
  std::ostringstream conditioned;
  cli::score_perplexity(model_dir, hyps_file, sources_file, true, conditioned);
  const auto with_sources =
      text_perplexity(*agent.model, *agent.tokenizer, hyps, {"A fox and a dog.", "", "Clean the windows."});
  EXPECT_NEAR(nlohmann::json::parse(conditioned.str())["ppl"]["value"].get<double>(), with_sources.perplexity,
              1e-9 * with_sources.perplexity);
}

TEST_F(FluencyScoringTest, BadFilesNameTheFileAndLine) {
  REQUIRE_REFERENCE(folder);
  const auto model_dir = (folder / "t5").string();
  const auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  std::ostringstream out;
  const auto bad_utf8 = write("bad.txt", "fine\nbroken \xff here\n");
  EXPECT_THAT(message([&] { cli::score_perplexity(model_dir, bad_utf8, std::nullopt, false, out); }),
              HasSubstr("bad.txt:2: invalid UTF-8"));
  const auto empty_line = write("empty_line.txt", "fine\n\nmore\n");
  EXPECT_THAT(message([&] { cli::score_perplexity(model_dir, empty_line, std::nullopt, false, out); }),
              HasSubstr("empty_line.txt:2: empty line"));
  const auto hyps = write("hyps.txt", "one\ntwo\n");
  const auto short_sources = write("sources.txt", "only one\n");
  EXPECT_THAT(message([&] { cli::score_perplexity(model_dir, hyps, short_sources, false, out); }),
              HasSubstr("hyps.txt' has 2 lines but '" + short_sources + "' has 1"));
  EXPECT_THAT(message([&] { cli::score_perplexity((work_ / "no_model").string(), hyps, std::nullopt, false, out); }),
              HasSubstr("no_model' is not a folder"));
  EXPECT_TRUE(out.str().empty());
}

}  // namespace
}  // namespace chorus::eval
