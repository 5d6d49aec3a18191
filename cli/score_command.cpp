// `chorus score`: sacrebleu-like scoring of plain segment files.
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "common/error.h"
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

void run_score(const ScoreArgs& args) {
  eval::CorpusScoringOptions options;
  options.metrics = split_commas(args.metrics);
  eval::check_metric_names(options.metrics);  // before reading possibly large files
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
    std::cout << to_json(results).dump(1) << "\n";
  } else {
    for (const auto& r : results) std::cout << eval::format_result(r, args.width) << "\n";
  }
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  CLI::App* cmd = app.add_subcommand("score", "Score a hypothesis file against reference files (one segment a line)");
  cmd->add_option("--metrics,-m", args->metrics,
                  "Comma-separated metrics: bleu, chrf, chrf++, rouge1, rouge2, rougeL, rougeLsum, em, f1")
      ->capture_default_str();
  cmd->add_option("--refs,-r", args->refs, "Reference file; repeat for several references")->required();
  cmd->add_option("--hyps,-i", args->hyps, "Hypothesis file")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object with a key per metric");
  cmd->add_flag("--ci", args->confidence, "Add 95% bootstrap confidence intervals (sacrebleu's convention)");
  cmd->add_option("--bootstrap", args->bootstrap, "Bootstrap resamples for --ci")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Seed of the bootstrap resampling")->capture_default_str();
  cmd->add_flag("--lowercase", args->lowercase, "Case-insensitive BLEU and chrF");
  cmd->add_flag("--rouge-stem", args->rouge_stem, "Porter-stem tokens longer than 3 characters for ROUGE");
  cmd->add_flag("--allow-empty-lines", args->allow_empty_lines, "Score empty lines as empty segments");
  cmd->add_option("--width,-w", args->width, "Decimals in the text output")->capture_default_str();
  cmd->callback([args]() { run_score(*args); });
}

}  // namespace chorus::cli
