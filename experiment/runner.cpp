// The experiment runner: a table of contents (read, agents, systems, evaluation, scoring, report);
// each phase is a function of its own below.
#include "experiment/runner.h"

#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "collab/systems.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/fluency/perplexity.h"
#include "eval/metrics/answer_match.h"
#include "experiment/agents.h"
#include "experiment/report.h"
#include "experiment/scoring.h"
#include "experiment/spec.h"
#include "train/task_completion_config.h"

namespace chorus::experiment {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// --- The run folder ----------------------------------------------------------------------------

void prepare_folder(const RunOptions& run, const Config& config) {
  if (run.mode == train::RunMode::resume) {
    CHORUS_CHECK(fs::is_regular_file(train::config_path(run.folder)),
                 "cannot resume in run folder '", run.folder.string(),
                 "': it holds no config.yaml (start it without --resume)");
  } else {
    train::prepare_run_folder(run.folder, run.mode);
  }
  train::save_resolved_config(run.folder, config.to_yaml(), run.evaluation_changed);
}

// --- Outputs, cached per system, task and split --------------------------------------------------

fs::path outputs_path(const fs::path& folder, const std::string& system, const std::string& task,
                      const std::string& split) {
  return folder / "outputs" / system / (task + "." + split + ".jsonl");
}

collab::ComputeCost cost_from_json(const nlohmann::json& j) {
  collab::ComputeCost c;
  c.agent_calls = j.value("agent_calls", 0.0);
  c.tokens_in = j.value("tokens_in", 0.0);
  c.tokens_out = j.value("tokens_out", 0.0);
  c.flops = j.value("flops", 0.0);
  c.seconds = j.value("seconds", 0.0);
  return c;
}

// The saved answers when the file holds exactly these examples (a torn or stale file is redone).
std::optional<std::vector<collab::SystemAnswer>> load_outputs(
    const fs::path& path, const std::vector<tasks::Example>& examples) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::vector<collab::SystemAnswer> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    const size_t i = out.size();
    if (i >= examples.size() || j.value("example", std::string()) != examples[i].id)
      return std::nullopt;
    collab::SystemAnswer a;
    a.text = j.value("output", std::string());
    a.cost = cost_from_json(j.value("cost", nlohmann::json::object()));
    a.details = j.value("details", nlohmann::json::object());
    out.push_back(std::move(a));
  }
  if (out.size() != examples.size()) return std::nullopt;
  return out;
}

void save_outputs(const fs::path& path, const std::vector<tasks::Example>& examples,
                  const std::vector<collab::SystemAnswer>& answers) {
  std::string text;
  for (size_t i = 0; i < answers.size(); ++i) {
    text += nlohmann::json{{"example", examples[i].id},
                           {"output", answers[i].text},
                           {"cost", collab::to_json(answers[i].cost)},
                           {"details", answers[i].details}}
                .dump() +
            "\n";
  }
  fs::create_directories(path.parent_path());
  write_file_atomically(path, text);
}

// --- Phases --------------------------------------------------------------------------------------

struct Run {
  const ExperimentSpec& spec;
  const RunOptions& options;
  BuiltAgents agents;
  std::map<std::string, collab::SystemPtr> systems;
  std::map<std::string, nlohmann::json> training;
  std::map<std::string, std::vector<tasks::Example>>
      evaluated;  // task -> examples of the evaluated split
  // outputs[system][task] on the evaluated split; selection[system][task] on the selection split
  std::map<std::string, std::map<std::string, std::vector<collab::SystemAnswer>>> outputs,
      selection;
  std::vector<std::pair<std::string, nlohmann::json>> phases;
  std::string transcripts, attention, messages;

  void say(const std::string& line) const {
    if (!options.quiet) std::cerr << line << std::endl;
  }
};

void build_systems(Run& run) {
  for (const auto& s : run.spec.systems) {
    const auto start = Clock::now();
    BuildContext b;
    b.members = run.agents.members;
    b.systems = run.systems;
    b.tasks = &run.spec.tasks;
    b.metrics = &run.spec.evaluation.metrics;
    b.folder = run.options.folder / "systems" / s.name;
    b.resume = run.options.mode == train::RunMode::resume;
    b.quiet = run.options.quiet;
    b.seed = run.spec.seed;
    b.batch_size = run.spec.evaluation.batch_size;
    fs::create_directories(b.folder);
    if (s.recipe.trainable) run.say("training system " + s.name + " (" + s.recipe.kind + ")");
    run.systems[s.name] = s.recipe.build(b);
    if (s.recipe.trainable) {
      run.training[s.name] = b.training;
      run.phases.emplace_back("train_" + s.name, nlohmann::json{{"seconds", since(start)}});
    }
  }
}

std::vector<collab::SystemAnswer> answers_of(Run& run, collab::System& system,
                                             const std::string& task, const std::string& split,
                                             const std::vector<tasks::Example>& examples,
                                             bool keep_messages) {
  const auto path = outputs_path(run.options.folder, system.name(), task, split);
  if (run.options.mode == train::RunMode::resume || run.options.evaluation_changed) {
    if (auto saved = load_outputs(path, examples)) return std::move(*saved);
  }
  collab::Transcript transcript;
  auto answers = answer_all(system, task, examples, run.spec.evaluation.batch_size,
                            keep_messages ? &transcript : nullptr);
  save_outputs(path, examples, answers);
  if (keep_messages) {
    std::string text;
    for (const auto& m : transcript.messages()) {
      const auto e = m.metadata.value("example", int64_t{-1});
      if (e < 0 || e >= run.spec.evaluation.transcript_examples) continue;
      auto j = collab::message_to_json(m);
      j["system"] = system.name();
      j["task"] = task;
      text += j.dump() + "\n";
    }
    write_file_atomically(path.parent_path() / (task + "." + split + ".messages.jsonl"), text);
  }
  return answers;
}

void evaluate_systems(Run& run) {
  const auto& e = run.spec.evaluation;
  for (const auto& task : e.tasks) {
    run.evaluated[task] = tasks::first_examples(run.spec.tasks.at(task).split(e.split), e.limit);
  }
  for (const auto& s : run.spec.systems) {
    const auto start = Clock::now();
    auto& system = *run.systems.at(s.name);
    for (const auto& task : e.tasks) {
      run.outputs[s.name][task] =
          answers_of(run, system, task, e.split, run.evaluated.at(task), true);
      // Agents alone also answer the selection split: the best single agent is chosen there.
      const auto& t = run.spec.tasks.at(task);
      if (s.recipe.kind == "agent" && t.has_split(e.selection_split) &&
          e.selection_split != e.split) {
        const auto examples = tasks::first_examples(t.split(e.selection_split), e.limit);
        run.selection[s.name][task] =
            answers_of(run, system, task, e.selection_split, examples, false);
      }
    }
    run.phases.emplace_back("evaluate_" + s.name, nlohmann::json{{"seconds", since(start)}});
    run.say("evaluated " + s.name + " (" + std::to_string(since(start)).substr(0, 6) + " s)");
  }
}

// --- Scoring -------------------------------------------------------------------------------------

std::vector<std::vector<std::string>> references_of(const std::vector<tasks::Example>& examples) {
  std::vector<std::vector<std::string>> out;
  for (const auto& ex : examples) out.push_back(ex.references);
  return out;
}

std::vector<std::string> texts_of(const std::vector<collab::SystemAnswer>& answers) {
  std::vector<std::string> out;
  for (const auto& a : answers) out.push_back(a.text);
  return out;
}

collab::ComputeCost mean_cost(const std::vector<collab::SystemAnswer>& answers) {
  collab::ComputeCost total;
  for (const auto& a : answers) total += a.cost;
  return answers.empty() ? total : total.per_example(static_cast<double>(answers.size()));
}

void score_systems(Run& run, Report& report) {
  const auto& e = run.spec.evaluation;
  const eval::BootstrapParams bootstrap{e.resamples > 0 ? e.resamples : 1000, e.bootstrap_seed};
  std::shared_ptr<const collab::Member> lm;
  if (!e.fluency_lm.empty()) lm = run.agents.members.at(e.fluency_lm);
  for (const auto& s : run.spec.systems) {
    const auto& system = *run.systems.at(s.name);
    SystemReport r;
    r.name = s.name;
    r.kind = s.recipe.kind;
    r.description = system.description();
    r.agents = system.agents();
    r.baseline = s.baseline;
    if (run.training.count(s.name)) r.training = run.training.at(s.name);
    std::vector<collab::SystemAnswer> all;
    for (const auto& task : e.tasks) {
      const auto& answers = run.outputs.at(s.name).at(task);
      const auto outputs = texts_of(answers);
      const auto& examples = run.evaluated.at(task);
      const auto references = references_of(examples);
      for (const auto& metric : e.metrics.at(task)) {
        const auto v = score_metric(metric, outputs, references, e.resamples, e.bootstrap_seed);
        r.metrics[task + "/" + metric] = {v.value, v.interval, v.n, s.name, std::nullopt};
      }
      if (e.completion.count(task)) {
        const auto c =
            train::score_task_completion(e.completion.at(task), outputs, references, bootstrap);
        MetricEntry m;
        m.value = c.metric.at("value").get<double>();
        m.n = static_cast<int64_t>(outputs.size());
        m.answered_by = s.name;
        m.successes = c.metric.value("successes", int64_t{0});
        if (c.metric.contains("ci95")) {
          eval::ConfidenceInterval ci;
          ci.low = c.metric["ci95"][0].get<double>();
          ci.high = c.metric["ci95"][1].get<double>();
          ci.half_width = c.metric.value("ci_half_width", 0.0);
          m.interval = ci;
        }
        r.metrics[task + "/completion"] = m;
      }
      if (lm) {
        const auto p = eval::text_perplexity(*lm->agent.model, *lm->agent.tokenizer, outputs);
        r.metrics[task + "/perplexity"] = {
            p.perplexity, p.interval, static_cast<int64_t>(outputs.size()), s.name, std::nullopt};
      }
      r.cost_by_task[task] = mean_cost(answers);
      const auto summary = system.summarise(answers);
      if (!summary.is_null()) r.decisions[task] = summary;
      all.insert(all.end(), answers.begin(), answers.end());
    }
    r.cost = mean_cost(all);
    report.systems.push_back(std::move(r));
  }
}

// The best agent alone on each task's selection split (or, without one, on the evaluated split,
// which the report says), under the task's primary metric.
void choose_best_agents(Run& run, Report& report) {
  const auto& e = run.spec.evaluation;
  for (const auto& task : e.tasks) {
    const auto& metric = e.metrics.at(task).front();
    if (!decomposable(metric) && !needs_references(metric)) continue;
    BestSingleAgent best;
    bool found = false;
    for (const auto& s : run.spec.systems) {
      if (s.recipe.kind != "agent") continue;
      const bool on_selection = run.selection.count(s.name) && run.selection.at(s.name).count(task);
      const auto& answers =
          on_selection ? run.selection.at(s.name).at(task) : run.outputs.at(s.name).at(task);
      const auto& t = run.spec.tasks.at(task);
      const auto examples = on_selection
                                ? tasks::first_examples(t.split(e.selection_split), e.limit)
                                : run.evaluated.at(task);
      const double value =
          score_metric(metric, texts_of(answers), references_of(examples), 0, 0).value;
      const bool better = higher_is_better(metric) ? value > best.value : value < best.value;
      if (!found || better) {
        best = {task,   s.name, s.recipe.agents.front(), on_selection ? e.selection_split : e.split,
                metric, value};
        found = true;
      }
    }
    if (found) report.best_single_agent.push_back(best);
  }
}

void compare_systems(Run& run, Report& report) {
  const auto& e = run.spec.evaluation;
  if (e.resamples <= 0) return;
  for (const auto& task : e.tasks) {
    const auto references = references_of(run.evaluated.at(task));
    std::string best;
    for (const auto& b : report.best_single_agent) {
      if (b.task == task) best = b.system;
    }
    for (const auto& metric : e.metrics.at(task)) {
      if (!decomposable(metric)) continue;
      std::map<std::string, MetricStatistics> stats;
      for (const auto& s : run.spec.systems) {
        stats.emplace(s.name, metric_statistics(metric, texts_of(run.outputs.at(s.name).at(task)),
                                                references));
      }
      for (const auto& s : run.spec.systems) {
        if (s.baseline) continue;
        for (const auto& b : run.spec.systems) {
          if (b.recipe.kind != "agent" || b.name == s.name) continue;
          const auto& base = stats.at(b.name);
          const auto test = eval::paired_bootstrap_test(
              base.stats, stats.at(s.name).stats, base.score, {e.resamples, e.bootstrap_seed});
          report.comparisons.push_back({s.name, b.name, task + "/" + metric, "paired bootstrap",
                                        test.system_score - test.baseline_score, test.p_value,
                                        b.name == best ? "best single agent" : "agent"});
        }
      }
    }
  }
}

// --- Inspection: transcripts and attention maps --------------------------------------------------

void write_transcripts(Run& run) {
  const auto& e = run.spec.evaluation;
  std::string text;
  for (const auto& s : run.spec.systems) {
    for (const auto& task : e.tasks) {
      const auto& examples = run.evaluated.at(task);
      const auto& answers = run.outputs.at(s.name).at(task);
      const bool exact =
          e.metrics.at(task).front() == "em" || e.metrics.at(task).front() == "accuracy";
      const auto n = std::min<size_t>(examples.size(), static_cast<size_t>(e.transcript_examples));
      for (size_t i = 0; i < n; ++i) {
        nlohmann::json line = {
            {"system", s.name},
            {"set", task},
            {"example", examples[i].id},
            {"input", examples[i].field("input")},
            {"target", examples[i].references.empty() ? "" : examples[i].references.front()},
            {"output", answers[i].text},
            {"cost", collab::to_json(answers[i].cost)},
            {"details", answers[i].details}};
        if (exact && !examples[i].references.empty()) {
          // The line's own verdict under the task's primary metric (SQuAD-normalised or
          // byte-exact).
          const bool em = e.metrics.at(task).front() == "em";
          bool correct = false;
          for (const auto& ref : examples[i].references) {
            correct = correct ||
                      (em ? eval::exact_match(answers[i].text, ref) > 0 : answers[i].text == ref);
          }
          line["correct"] = correct;
        }
        text += line.dump() + "\n";
      }
    }
  }
  write_file_atomically(run.options.folder / "transcripts.jsonl", text);
}

void write_attention_maps(Run& run) {
  const auto& e = run.spec.evaluation;
  std::string text;
  for (const auto& s : run.spec.systems) {
    auto* fusion = dynamic_cast<collab::FusionSystem*>(run.systems.at(s.name).get());
    if (fusion == nullptr || e.attention_examples == 0) continue;
    std::string agents;
    for (const auto& a : fusion->team().augmenting())
      agents += (agents.empty() ? "" : ",") + a.name;
    for (const auto& task : e.tasks) {
      const auto examples = tasks::first_examples(run.evaluated.at(task), e.attention_examples);
      collab::Batch batch;
      batch.task = task;
      for (const auto& ex : examples) batch.examples.push_back(&ex);
      const auto [anchor, others] = fusion->texts(batch);
      const auto inspections =
          fusion->team().inspect(anchor, others, fusion->task_ids(task, anchor.size()));
      for (size_t i = 0; i < inspections.size(); ++i) {
        const auto& r = inspections[i];
        for (int64_t h = 0; h < r.attention.size(0); ++h) {
          const auto p = r.attention[h].to(torch::kDouble).contiguous();
          nlohmann::json weights = nlohmann::json::array();
          for (int64_t q = 0; q < p.size(0); ++q) {
            const auto row = p[q];
            weights.push_back(
                std::vector<double>(row.data_ptr<double>(), row.data_ptr<double>() + row.numel()));
          }
          text += nlohmann::json{{"system", s.name},
                                 {"set", task},
                                 {"example", static_cast<int64_t>(i)},
                                 {"agent", agents},
                                 {"layer", fusion->team().options().inject_layer},
                                 {"head", h},
                                 {"query_tokens", r.query_tokens},
                                 {"key_tokens", r.key_tokens},
                                 {"weights", weights},
                                 {"gate", r.gate},
                                 {"state_norm", r.state_norm},
                                 {"message_norm", r.message_norm}}
                      .dump() +
                  "\n";
        }
      }
    }
  }
  if (!text.empty()) write_file_atomically(run.options.folder / "attention.jsonl", text);
}

// --- The report ----------------------------------------------------------------------------------

void describe_tasks(const Run& run, Report& report) {
  const auto& e = run.spec.evaluation;
  for (const auto& task : e.tasks) {
    const auto& t = run.spec.tasks.at(task);
    TaskSummary s;
    s.name = task;
    s.description = t.description;
    s.evaluated_split = e.split;
    for (const auto& [split, examples] : t.splits)
      s.split_sizes[split] = static_cast<int64_t>(examples.size());
    s.evaluated = static_cast<int64_t>(run.evaluated.at(task).size());
    s.metrics = e.metrics.at(task);
    if (e.completion.count(task)) s.metrics.push_back("completion");
    if (!e.fluency_lm.empty()) s.metrics.push_back("perplexity");
    s.fields = t.fields;
    s.references = t.has_references;
    for (const auto& m : s.metrics) {
      auto definition = metric_definition(m);
      if (m == "perplexity") definition += " '" + e.fluency_lm + "'";
      if (m == "completion") definition += ": " + eval::describe(e.completion.at(task));
      report.metric_definitions[task + "/" + m] = task + ": " + definition;
    }
    report.tasks.push_back(std::move(s));
  }
}

void print_table(const Report& report, const ExperimentSpec& spec) {
  std::vector<std::string> columns;
  for (const auto& task : spec.evaluation.tasks)
    columns.push_back(task + "/" + spec.evaluation.metrics.at(task).front());
  std::cout << std::left << std::setw(28) << "system";
  for (const auto& c : columns) std::cout << std::setw(22) << c;
  std::cout << std::setw(14) << "calls/example"
            << "GFLOPs/example\n";
  for (const auto& s : report.systems) {
    std::cout << std::setw(28) << s.name;
    for (const auto& c : columns) {
      const auto& m = s.metrics.at(c);
      std::ostringstream cell;
      cell << std::fixed << std::setprecision(3) << m.value;
      if (m.interval) cell << " ±" << std::setprecision(3) << m.interval->half_width;
      std::cout << std::setw(22) << cell.str();
    }
    std::ostringstream calls, flops;
    calls << std::fixed << std::setprecision(2) << s.cost.agent_calls;
    flops << std::fixed << std::setprecision(3) << s.cost.flops / 1e9;
    std::cout << std::setw(14) << calls.str() << flops.str() << "\n";
  }
}

}  // namespace

fs::path run_experiment(const Config& config, const RunOptions& options) {
  const auto total = Clock::now();
  const auto spec = read_experiment(config);  // every error before any work
  prepare_folder(options, config);
  if (spec.threads > 0) at::set_num_threads(spec.threads);
  Run run{spec, options, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};

  auto start = Clock::now();
  run.agents =
      build_agents(spec, options.folder, options.mode == train::RunMode::resume, options.quiet);
  run.phases.emplace_back("agents", nlohmann::json{{"seconds", since(start)}});

  build_systems(run);

  start = Clock::now();
  evaluate_systems(run);
  run.phases.emplace_back("evaluation", nlohmann::json{{"seconds", since(start)}});

  Report report;
  report.experiment = spec.name;
  report.seed = spec.seed;
  const auto provenance = train::run_provenance(config.to_yaml());
  report.config_hash = provenance.config_hash;
  report.chorus_version = provenance.chorus_version;
  report.libtorch_version = provenance.libtorch_version;
  report.agents = run.agents.report;
  describe_tasks(run, report);
  start = Clock::now();
  score_systems(run, report);
  choose_best_agents(run, report);
  compare_systems(run, report);
  write_transcripts(run);
  write_attention_maps(run);
  run.phases.emplace_back("scoring", nlohmann::json{{"seconds", since(start)}});
  run.phases.emplace_back("total", nlohmann::json{{"seconds", since(total)}});
  report.phases = run.phases;
  const auto path = write_report(options.folder, report);
  if (!options.quiet) print_table(report, spec);
  return path;
}

}  // namespace chorus::experiment
