// `chorus score`: sacrebleu-like scoring of plain segment files, and HumanEval's functional correctness.
#include <algorithm>
#include <iostream>
#include <optional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/fluency_scoring.h"
#include "common/error.h"
#include "eval/metrics/task_completion.h"
#include "eval/scoring/corpus_scoring.h"
#include "eval/scoring/segment_file.h"

namespace chorus::cli {
namespace {

struct ScoreArgs {
  std::string metrics = "bleu,chrf,rouge1,rouge2,rougeL";
  std::vector<std::string> refs;
  std::string hyps;
  bool json = false;
  bool confidence = false;
  int bootstrap = 1000;
  std::uint64_t seed = 12345;
  bool lowercase = false;
  bool rouge_stem = false;
  bool allow_empty_lines = false;
  int width = 2;
  // --task humaneval
  std::string task;
  std::string problems;
  std::string samples;
  std::string ks = "1,10,100";
  double timeout = 10;
  std::size_t memory_mb = 1024;
  int jobs = 0;
  bool ignore_incomplete = false;
  bool allow_network = false;
  // --metrics ppl
  std::string lm;
  std::string lm_sources;
  int64_t lm_batch_size = 32;
};

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> names;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    if (!name.empty()) names.push_back(name);
  }
  return names;
}

nlohmann::json to_json(const std::vector<eval::MetricResult>& results) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& r : results) {
    nlohmann::json entry = {{"name", r.name}, {"score", r.score}, {"signature", r.signature}};
    if (!r.details.empty()) entry["details"] = r.details;
    if (r.interval) {
      entry["confidence"] = {{"mean", r.interval->mean},          {"half_width", r.interval->half_width},
                             {"low", r.interval->low},            {"high", r.interval->high},
                             {"resamples", r.interval->resamples}, {"seed", r.interval->seed}};
    }
    out[r.key] = entry;
  }
  return out;
}

std::vector<std::size_t> parse_ks(const std::string& list) {
  std::vector<std::size_t> ks;
  for (const auto& item : split_commas(list)) {
    std::size_t used = 0;
    long long k = 0;
    try {
      k = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    CHORUS_CHECK(used == item.size() && k >= 1, "--k: '", item, "' is not a positive whole number (expected e.g. 1,10,100)");
    ks.push_back(static_cast<std::size_t>(k));
  }
  CHORUS_CHECK(!ks.empty(), "--k: expected a comma-separated list of positive whole numbers, e.g. 1,10,100");
  return ks;
}

// openai/human-eval's evaluate_functional_correctness: every sample's completion runs against its
// problem's tests in the sandbox; per-sample results go to SAMPLES_results.jsonl; pass@k per problem.
void run_humaneval(const ScoreArgs& args) {
  CHORUS_CHECK(args.refs.empty() && args.hyps.empty(), "--task humaneval reads --problems and --samples; ",
               "--refs and --hyps do not apply");
  CHORUS_CHECK(!args.problems.empty(), "--task humaneval needs --problems (HumanEval.jsonl.gz)");
  CHORUS_CHECK(!args.samples.empty(), "--task humaneval needs --samples (JSON lines of task_id and completion)");
  const auto ks = parse_ks(args.ks);
  const auto problems = eval::load_code_problems(args.problems);
  const auto samples = eval::load_code_samples(args.samples, problems);

  std::map<std::string, eval::ProblemTally> tallies;
  for (const auto& s : samples) ++tallies[s.task_id].samples;
  if (!args.ignore_incomplete && tallies.size() < problems.size()) {
    std::string missing;
    std::size_t listed = 0;
    for (const auto& [id, problem] : problems) {
      if (tallies.count(id) || listed == 3) continue;
      missing += (missing.empty() ? "" : ", ") + id;
      ++listed;
    }
    throw Error("'" + args.samples + "' has samples for " + std::to_string(tallies.size()) + " of the " +
                std::to_string(problems.size()) + " problems in '" + args.problems + "' (none for " + missing +
                (problems.size() - tallies.size() > listed ? ", ..." : "") +
                "); pass --ignore-incomplete to score only the problems attempted");
  }

  eval::UnitTestSpec spec;
  spec.timeout_s = args.timeout;
  spec.memory_mb = args.memory_mb;
  spec.network = args.allow_network ? eval::NetworkPolicy::isolated_if_possible : eval::NetworkPolicy::isolated;
  const int jobs = args.jobs > 0 ? args.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string why_not;
  const std::string isolation = eval::probe_network_isolation(&why_not);
  CHORUS_CHECK(isolation != "none" || args.allow_network, "cannot isolate the samples from the network (", why_not,
               "); pass --allow-network to run them with the host network");
  std::cerr << "Running " << samples.size() << " samples of " << tallies.size() << " problems on " << jobs
            << " threads (timeout " << args.timeout << " s, network isolation: " << isolation << ")...\n";
  const auto outcomes = eval::run_code_samples(spec, problems, samples, jobs);

  const std::string results_file = args.samples + "_results.jsonl";  // human-eval's name
  eval::write_code_sample_results(results_file, samples, outcomes);
  std::size_t passed = 0;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (outcomes[i].success) {
      ++tallies[samples[i].task_id].passed;
      ++passed;
    }
  }
  std::vector<eval::ProblemTally> per_problem;
  for (const auto& [id, tally] : tallies) per_problem.push_back(tally);
  const auto report = eval::pass_at_k_report(per_problem, ks, {args.bootstrap, args.seed});
  CHORUS_CHECK(!report.empty(), "no k in --k ", args.ks, " is at most the fewest samples of a problem");

  std::vector<eval::MetricResult> results;
  for (const auto& entry : report) {
    eval::MetricResult r;
    r.key = r.name = "pass@" + std::to_string(entry.k);
    r.score = 100 * entry.score;  // on the 0..100 scale of every chorus score metric
    std::ostringstream signature;
    signature << "problems:" << per_problem.size() << "|samples:" << samples.size() << "|timeout:" << args.timeout
              << "s|mem:" << args.memory_mb << "M|net:" << (isolation == "none" ? "shared" : "isolated")
              << "|bs:" << args.bootstrap << "|seed:" << args.seed;
    r.signature = signature.str();
    eval::ConfidenceInterval interval = entry.interval;
    for (double* v : {&interval.score, &interval.mean, &interval.half_width, &interval.low, &interval.high}) *v *= 100;
    r.interval = interval;
    results.push_back(r);
  }
  if (args.json) {
    auto out = to_json(results);
    out["problems"] = per_problem.size();
    out["samples"] = samples.size();
    out["passed"] = passed;
    out["results_file"] = results_file;
    out["network_isolation"] = isolation;  // netns, userns+netns, or none (--allow-network)
    std::cout << out.dump(1) << "\n";
  } else {
    for (const auto& r : results) std::cout << eval::format_result(r, args.width) << "\n";
    std::cerr << passed << " of " << samples.size() << " samples passed; per-sample results in " << results_file << "\n";
  }
}

void run_score(const ScoreArgs& args) {
  if (!args.task.empty()) {
    CHORUS_CHECK(args.task == "humaneval", "unknown --task '", args.task, "' (valid: humaneval)");
    run_humaneval(args);
    return;
  }
  auto metrics = split_commas(args.metrics);
  // Perplexity reads a reference model, not references: it is scored by its own engine.
  const auto ppl = std::find(metrics.begin(), metrics.end(), "ppl");
  const bool with_ppl = ppl != metrics.end();
  if (with_ppl) metrics.erase(ppl);
  CHORUS_CHECK(!with_ppl || !args.lm.empty(), "--metrics ppl needs --lm MODEL_DIR (the reference language model: a ",
               "Hugging Face folder or a Chorus agent folder)");
  CHORUS_CHECK(with_ppl || (args.lm.empty() && args.lm_sources.empty()),
               "--lm and --lm-sources apply only with the metric ppl (add it to --metrics)");
  CHORUS_CHECK(!args.hyps.empty(), "--hyps is required (or --task humaneval with --problems and --samples)");
  eval::CorpusScoringOptions options;
  options.metrics = metrics;
  if (!metrics.empty()) {
    eval::check_metric_names(options.metrics);  // before reading possibly large files
    CHORUS_CHECK(!args.refs.empty(), "--refs is required for ", args.metrics,
                 " (or --task humaneval with --problems and --samples)");
  } else {
    CHORUS_CHECK(args.refs.empty(), "--metrics ppl needs no --refs (it scores --hyps under --lm)");
  }
  std::string ppl_output;
  if (with_ppl) {
    FluencyScoringOptions fluency;
    fluency.bootstrap = args.bootstrap;
    fluency.seed = args.seed;
    fluency.batch_size = args.lm_batch_size;
    fluency.allow_empty_lines = args.allow_empty_lines;
    fluency.width = args.width;
    std::ostringstream out;
    score_perplexity(args.lm, args.hyps,
                     args.lm_sources.empty() ? std::nullopt : std::optional<std::string>(args.lm_sources), args.json,
                     out, fluency);
    ppl_output = out.str();
  }
  if (metrics.empty()) {
    std::cout << ppl_output;
    return;
  }
  options.lowercase = args.lowercase;
  options.rouge_stem = args.rouge_stem;
  options.confidence = args.confidence;
  options.bootstrap = {args.bootstrap, args.seed};

  const eval::SegmentFileOptions file_options{args.allow_empty_lines};
  const auto hypotheses = eval::read_segment_file(args.hyps, file_options);
  std::vector<std::vector<std::string>> references;
  for (const auto& path : args.refs) {
    references.push_back(eval::read_segment_file(path, file_options));
    CHORUS_CHECK(references.back().size() == hypotheses.size(), "'", args.hyps, "' has ", hypotheses.size(),
                 " lines but '", path, "' has ", references.back().size(),
                 " (expected one segment per line in every file)");
  }
  const auto results = eval::score_corpus(hypotheses, references, options);
  if (args.json) {
    auto out = to_json(results);
    if (with_ppl) {
      const auto fluency = nlohmann::json::parse(ppl_output);
      out["ppl"] = fluency["ppl"];
      out["ppl"]["tokens"] = fluency["tokens"];
      out["ppl"]["segments"] = fluency["segments"];
      out["ppl"]["model"] = fluency["model"];
    }
    std::cout << out.dump(1) << "\n";
  } else {
    for (const auto& r : results) std::cout << eval::format_result(r, args.width) << "\n";
    std::cout << ppl_output;
  }
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Score a hypothesis file against reference files (one segment a line), or HumanEval samples (--task humaneval)");
  cmd->add_option("--metrics,-m", args->metrics,
                  "Comma-separated metrics: bleu, chrf, chrf++, rouge1, rouge2, rougeL, rougeLsum, em, f1, and ppl "
                  "(perplexity under --lm; needs no --refs)")
      ->capture_default_str();
  cmd->add_option("--refs,-r", args->refs, "Reference file; repeat for several references (required without --task)");
  cmd->add_option("--hyps,-i", args->hyps, "Hypothesis file (required without --task)");
  cmd->add_flag("--json", args->json, "Print one JSON object with a key per metric");
  cmd->add_flag("--ci", args->confidence, "Add 95% bootstrap confidence intervals (sacrebleu's convention)");
  cmd->add_option("--bootstrap", args->bootstrap, "Bootstrap resamples for --ci")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Seed of the bootstrap resampling")->capture_default_str();
  cmd->add_flag("--lowercase", args->lowercase, "Case-insensitive BLEU and chrF");
  cmd->add_flag("--rouge-stem", args->rouge_stem, "Porter-stem tokens longer than 3 characters for ROUGE");
  cmd->add_flag("--allow-empty-lines", args->allow_empty_lines, "Score empty lines as empty segments");
  cmd->add_option("--width,-w", args->width, "Decimals in the text output")->capture_default_str();
  cmd->add_option("--lm", args->lm,
                  "ppl: the reference model folder (Hugging Face, or a Chorus agent from chorus pretrain)");
  cmd->add_option("--lm-sources", args->lm_sources,
                  "ppl: line-aligned conditioning sources (default: the empty source, the decoder as a language model)");
  cmd->add_option("--lm-batch-size", args->lm_batch_size, "ppl: segments per forward pass")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--task", args->task,
                  "humaneval: run --samples' completions against --problems' unit tests in a sandbox and report "
                  "pass@k (openai/human-eval's conventions)");
  cmd->add_option("--problems", args->problems, "HumanEval problems (HumanEval.jsonl.gz or plain .jsonl)");
  cmd->add_option("--samples", args->samples,
                  "JSON lines {\"task_id\": ..., \"completion\": ...}; results go to SAMPLES_results.jsonl");
  cmd->add_option("--k", args->ks, "pass@k for these k (those at most every problem's sample count)")->capture_default_str();
  cmd->add_option("--timeout", args->timeout, "Wall-clock (and CPU) seconds per sample")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--memory-mb", args->memory_mb, "Address-space limit per sample, MiB")
      ->capture_default_str()->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--jobs,-j", args->jobs, "Samples run at once (default: hardware threads)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--ignore-incomplete", args->ignore_incomplete, "Score only the problems that have samples");
  cmd->add_flag("--allow-network", args->allow_network,
                "Run samples with the host network when no network namespace can be made (default: refuse)");
  cmd->callback([args]() { run_score(*args); });
}

}  // namespace chorus::cli
