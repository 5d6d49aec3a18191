// `chorus eval RUN_FOLDER|CONFIG`: re-run a run's evaluation (or a config's whole run) and write
// report.html.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/experiment_runs.h"
#include "common/config.h"
#include "common/error.h"
#include "eval/report/report_html.h"
#include "train/run_folder.h"

namespace chorus::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArguments {
  std::string target;
  std::string out;
  bool html_only = false;
  bool quiet = false;
  std::vector<std::string> overrides;
};

// A finished run: resuming skips every finished phase (agents come from the cache, heads from
// their checkpoints), so only the evaluation runs again and report.json is rewritten. Overrides
// may change the evaluation block only (e.g. add a task completion predicate to an old run); the
// run's config.yaml then becomes the new resolved config, so report.json's config_hash matches it.
void evaluate_run_folder(const fs::path& folder, const EvalArguments& args) {
  CHORUS_CHECK(args.out.empty(), "'", folder.string(), "' is a run folder: --out applies to a config only");
  for (const auto& override_text : args.overrides) {
    CHORUS_CHECK(override_text.rfind("evaluation.", 0) == 0, "'", folder.string(),
                 "' is a run folder: its training is fixed, so only evaluation.* overrides apply; got '",
                 override_text, "'");
  }
  if (args.html_only) {
    CHORUS_CHECK(fs::is_regular_file(folder / "report.json"), "'", folder.string(),
                 "' holds no report.json; --html-only needs a run folder written by chorus train");
    return;
  }
  const fs::path config_file = train::config_path(folder);
  CHORUS_CHECK(fs::is_regular_file(config_file), "'", folder.string(),
               "' holds no config.yaml; expected a run folder written by chorus train (or an "
               "experiment config)");
  const auto config = Config::load(config_file, args.overrides);
  run_experiment(config, train::ExperimentRun{folder, train::RunMode::resume, args.quiet, !args.overrides.empty()});
}

// A config: a new run, as `chorus train CONFIG` makes it.
fs::path run_config(const fs::path& config_file, const EvalArguments& args) {
  CHORUS_CHECK(!args.html_only, "--html-only needs a run folder; '", config_file.string(),
               "' is a file");
  const auto config = Config::load(config_file, args.overrides);
  const fs::path folder =
      args.out.empty() ? timestamped_run_folder(config_file.string()) : fs::path(args.out);
  run_experiment(config, train::ExperimentRun{folder, train::RunMode::fresh, args.quiet});
  return folder;
}

void run_eval(const EvalArguments& args) {
  const fs::path target(args.target);
  CHORUS_CHECK(fs::exists(target), "'", target.string(),
               "' does not exist; expected a run folder written by chorus train (config.yaml, "
               "report.json) or an "
               "experiment config (YAML)");
  fs::path folder = target;
  if (fs::is_directory(target)) {
    evaluate_run_folder(target, args);
  } else {
    folder = run_config(target, args);
  }
  const fs::path page = eval::report::write_report_html(folder);
  std::cout << "report: " << (folder / "report.json").string() << "\nreport.html: " << page.string()
            << "\n";
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArguments>();
  auto* command = app.add_subcommand(
      "eval",
      "Evaluate a run again and write its self-contained HTML report (report.html beside "
      "report.json). "
      "Given a run folder, its finished phases are reused and only the evaluation runs; given an "
      "experiment config, the whole experiment runs into a new run folder first");
  command
      ->add_option("RUN_OR_CONFIG", args->target,
                   "Run folder written by chorus train, or an experiment config (YAML)")
      ->required();
  command->add_option("OVERRIDES", args->overrides,
                      "Config overrides a.b.c=value (with a run folder: evaluation.* only)");
  command->add_option("--out", args->out,
                      "Run folder for a config (default: runs/<config>-<UTC time>)");
  command->add_flag("--html-only", args->html_only,
                    "Only re-render report.html from the run folder's files");
  command->add_flag("--quiet", args->quiet, "No progress output");
  command->callback([args] { run_eval(*args); });
}

}  // namespace chorus::cli
