// `chorus train CONFIG` and `chorus pretrain CONFIG`: experiments and agents from YAML configs.
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/experiment_runs.h"
#include "common/config.h"
#include "common/error.h"
#include "train/kv_agents.h"
#include "train/kv_experiment.h"
#include "train/run_folder.h"
#include "train/text_agents.h"

namespace chorus::cli {
namespace {

struct TrainArguments {
  std::string config;
  std::string out;
  bool resume = false;
  bool overwrite = false;
  bool quiet = false;
  std::vector<std::string> overrides;
};

// runs/<config name>-<UTC timestamp>: a new folder per run unless --out says otherwise.
std::filesystem::path default_run_folder(const std::string& config) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &utc);
  return std::filesystem::path("runs") / (std::filesystem::path(config).stem().string() + "-" + stamp);
}

void add_common_options(CLI::App* command, TrainArguments& a) {
  command->add_option("CONFIG", a.config, "Experiment config (YAML)")->required()->check(CLI::ExistingFile);
  command->add_option("OVERRIDES", a.overrides, "Config overrides a.b.c=value (YAML values)");
  command->add_flag("--quiet", a.quiet, "No progress output");
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArguments>();
  auto* command = app.add_subcommand(
      "train", "Run an experiment from a YAML config: pretrain its agents (cached), train its collaboration heads, "
               "evaluate every system and write report.json into the run folder");
  add_common_options(command, *args);
  command->add_option("--out", args->out, "Run folder (default: runs/<config>-<UTC time>)");
  auto* resume = command->add_flag("--resume", args->resume, "Continue the run in --out from its latest checkpoints");
  command->add_flag("--overwrite", args->overwrite, "Replace the run folder --out if it holds a run")->excludes(resume);
  command->callback([args] {
    CHORUS_CHECK(!args->resume || !args->out.empty(), "--resume needs --out RUN_FOLDER (the run to continue)");
    const auto config = Config::load(args->config, args->overrides);
    train::ExperimentRun run;
    run.folder = args->out.empty() ? default_run_folder(args->config) : std::filesystem::path(args->out);
    run.mode = args->resume ? train::RunMode::resume : args->overwrite ? train::RunMode::overwrite : train::RunMode::fresh;
    run.quiet = args->quiet;
    const auto report = run_experiment(config, run);
    std::cout << "report: " << report.string() << "\n";
    write_html_after_training(run.folder);
  });
}

void add_pretrain_command(CLI::App& app) {
  auto args = std::make_shared<TrainArguments>();
  auto* command = app.add_subcommand(
      "pretrain", "Train a small T5-style agent from scratch on a generated task, or on text pairs when the "
                  "config has a data block; writes an agent folder (model.h5, word_vocab.txt or spiece.model, "
                  "pretrain.json) that experiments load and freeze");
  add_common_options(command, *args);
  command->add_option("--out", args->out, "Agent folder to create (its training run goes to <out>.run)")->required();
  command->add_flag("--resume", args->resume, "Continue an interrupted training run in <out>.run");
  command->callback([args] {
    const auto config = Config::load(args->config, args->overrides);
    const auto root = config.root();
    if (root.has("data")) {  // an agent trained on text pairs (docs/DATA.md)
      auto spec = train::read_text_agent(root);
      config.check_all_keys_used();
      spec.trainer.show_progress = !args->quiet;
      const std::filesystem::path out(args->out);
      CHORUS_CHECK(!std::filesystem::exists(out), "agent folder '", out.string(),
                   "' already exists; choose another --out or remove it");
      const auto result =
          train::pretrain_text_agent(spec, out, std::filesystem::path(out.string() + ".run"), args->resume);
      std::cout << "agent: " << result.folder.string();
      if (spec.language_model()) {
        std::cout << "  validation perplexity " << result.perplexity << " over " << result.eval_tokens << " tokens";
      } else {
        std::cout << "  BLEU " << result.bleu;
      }
      std::cout << "  (" << result.steps << " steps, " << result.seconds << " s)\n";
      return;
    }
    root.get_choice("experiment", {"kv_arithmetic"}, std::string("kv_arithmetic"));
    const auto seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
    const auto world_options = tasks::read_key_value_world(root.child_or_empty("world"), seed);
    auto spec = train::read_kv_agent(root.child("agent"), root.get<std::string>("name", std::string("agent")), seed);
    config.check_all_keys_used();
    spec.trainer.show_progress = !args->quiet;
    const std::filesystem::path out(args->out);
    CHORUS_CHECK(!std::filesystem::exists(out), "agent folder '", out.string(),
                 "' already exists; choose another --out or remove it");
    const tasks::KeyValueArithmetic world(world_options);
    const auto result = train::pretrain_kv_agent(world, spec, out, std::filesystem::path(out.string() + ".run"), args->resume);
    std::cout << "agent: " << result.folder.string() << "  exact match " << result.exact_match << "  ("
              << result.seconds << " s)\n";
  });
}

}  // namespace chorus::cli
