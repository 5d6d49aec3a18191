// Running experiments from configs, shared by `chorus train` and `chorus eval`.
#include "cli/experiment_runs.h"

#include <ctime>
#include <iostream>

#include "common/error.h"
#include "eval/report/report_html.h"
#include "experiment/runner.h"
#include "experiment/spec.h"
#include "train/kv_router.h"
#include "train/multisource_mt.h"

namespace chorus::cli {

std::filesystem::path timestamped_run_folder(const std::string& config) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  return std::filesystem::path("runs") /
         (std::filesystem::path(config).stem().string() + "-" + stamp);
}

std::filesystem::path run_experiment(const Config& config, const train::ExperimentRun& run) {
  if (experiment::is_engine_config(config)) {
    experiment::RunOptions options;
    options.folder = run.folder;
    options.mode = run.mode;
    options.quiet = run.quiet;
    options.evaluation_changed = run.evaluation_changed;
    return experiment::run_experiment(config, options);
  }
  const auto kind = config.root().get_choice("experiment", {"kv_arithmetic", "kv_router", "multisource_mt"});
  if (kind == "kv_router") return train::run_kv_router_experiment(config, run);
  if (kind == "multisource_mt") return train::run_multisource_mt_experiment(config, run);
  return train::run_kv_arithmetic_experiment(config, run);
}

void write_html_after_training(const std::filesystem::path& run_folder) {
  try {
    const auto page = eval::report::write_report_html(run_folder);
    std::cout << "report.html: " << page.string() << "\n";
  } catch (const Error& e) {
    std::cerr << "chorus: warning: report.html not written: " << e.what()
              << "\n  (retry with: chorus eval " << run_folder.string() << " --html-only)\n";
  }
}

}  // namespace chorus::cli
