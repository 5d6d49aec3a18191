// The fusion kind: a FusionTeam over declared agents, its head trained through the trainer on a
// mix of tasks' training splits, its best checkpoint chosen on a validation split.
#include <torch/torch.h>

#include <random>

#include "collab/systems.h"
#include "common/error.h"
#include "experiment/generation_config.h"
#include "experiment/kinds/kinds.h"
#include "experiment/registry.h"
#include "experiment/scoring.h"
#include "train/multitask.h"
#include "train/run_folder.h"
#include "train/seq2seq_training.h"
#include "train/trainer.h"
#include "train/trainer_config.h"

namespace chorus::experiment {
namespace {

// One entry of the training mix: a task's split, sampled with a relative weight.
struct MixEntry {
  std::string task;
  std::string split = "train";
  double weight = 1.0;
};

struct FusionRecipe {
  std::string name;
  std::string anchor;
  std::vector<std::string> augmenting;
  collab::FusionTeamOptions team;
  train::TrainerOptions trainer;
  int64_t batch_size = 32;
  std::vector<MixEntry> mix;
  train::TaskSampling sampling = train::TaskSampling::proportional;
  double sampling_temperature = 1.0;
  train::LossWeighting weighting = train::LossWeighting::fixed;
  std::string eval_task, eval_split, eval_metric;  // best checkpoint; empty split: best = latest
  int64_t eval_examples = 200;
};

// Trains the head on rows drawn from the mix: a pure function of (seed, step, micro) for exact
// resume.
class FusionTrainingProblem final : public train::TrainingProblem {
 public:
  FusionTrainingProblem(collab::FusionSystem& system, const FusionRecipe& recipe,
                        const std::map<std::string, tasks::Task>& tasks, int64_t eval_batch)
      : system_(system), recipe_(recipe), eval_batch_(eval_batch), sampler_([&] {
          std::vector<double> sizes;
          for (const auto& m : recipe.mix) sizes.push_back(m.weight);
          return train::TaskSampler(sizes, recipe.sampling, recipe.sampling_temperature);
        }()) {
    std::vector<double> weights;
    for (const auto& m : recipe.mix) {
      weights.push_back(m.weight);
      pools_.push_back(&tasks.at(m.task).split(m.split));
    }
    weights_ = train::TaskLossWeights(recipe.weighting, weights);
    if (!recipe.eval_split.empty()) {
      eval_ = tasks::first_examples(tasks.at(recipe.eval_task).split(recipe.eval_split),
                                    recipe.eval_examples);
    }
  }

  std::vector<std::pair<std::string, torch::Tensor>> parameters() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : system_.team().head()->named_parameters())
      out.emplace_back(item.key(), item.value());
    for (const auto& item : weights_->named_parameters())
      out.emplace_back("loss_weights." + item.key(), item.value());
    return out;
  }

  train::MicroBatchLoss loss(int64_t step, int64_t micro) override {
    std::mt19937_64 rng(train::stream_seed(recipe_.trainer.seed ^ 0x5EEDULL, step, micro));
    const auto entries =
        sampler_.draw(step, micro, recipe_.trainer.accumulation, recipe_.batch_size, rng);
    // Rows grouped by task: each task's rows are rendered with its own prompts.
    std::vector<std::string> anchor_texts, targets;
    std::vector<std::vector<std::string>> other_texts(system_.team().augmenting().size());
    std::vector<int64_t> row_entry;
    for (size_t e = 0; e < recipe_.mix.size(); ++e) {
      collab::Batch batch;
      batch.task = recipe_.mix[e].task;
      for (const auto entry : entries) {
        if (static_cast<size_t>(entry) != e) continue;
        const auto& pool = *pools_[e];
        std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
        batch.examples.push_back(&pool[pick(rng)]);
      }
      if (batch.examples.empty()) continue;
      const auto [anchor, others] = system_.texts(batch);
      for (size_t i = 0; i < batch.examples.size(); ++i) {
        CHORUS_CHECK(!batch.examples[i]->references.empty(), "system '", system_.name(),
                     "': training example ", batch.examples[i]->id, " of task '", batch.task,
                     "' has no reference to learn");
        anchor_texts.push_back(anchor[i]);
        targets.push_back(batch.examples[i]->references.front());
        for (size_t a = 0; a < others.size(); ++a) other_texts[a].push_back(others[a][i]);
        row_entry.push_back(static_cast<int64_t>(e));
      }
    }
    auto& team = system_.team();
    const auto task_tensor =
        team.options().head.tasks > 0 ? torch::tensor(row_entry, torch::kInt64) : torch::Tensor();
    const auto encoded = team.encode(anchor_texts, other_texts, nullptr, task_tensor);
    const auto labels =
        model::tokenize_batch(*team.anchor().tokenizer, anchor_texts, targets).labels;
    const auto& model = *team.anchor().model;
    auto cache = model.start_decoding(encoded);
    const auto& c = model.config();
    auto decoded = model.decode_step(
        train::shift_right(labels, c.decoder_start_token_id, c.pad_token_id), cache);
    const auto rows = train::token_cross_entropy(decoded.logits, labels, /*per_row=*/true);
    std::vector<torch::Tensor> per_task(recipe_.mix.size());
    std::vector<int64_t> counts(recipe_.mix.size(), 0);
    for (const auto e : row_entry) ++counts[static_cast<size_t>(e)];
    const auto entry_of_row = torch::tensor(row_entry, torch::kInt64);
    for (size_t e = 0; e < recipe_.mix.size(); ++e) {
      if (counts[e] > 0) {
        per_task[e] = (rows * (entry_of_row == static_cast<int64_t>(e))).sum() /
                      static_cast<double>(counts[e]);
      }
    }
    return {weights_->combine(per_task, counts), static_cast<int64_t>(anchor_texts.size())};
  }

  std::map<std::string, double> evaluate(int64_t) override {
    if (eval_.empty()) return {};
    const auto answers = answer_all(system_, recipe_.eval_task, eval_, eval_batch_);
    std::vector<std::string> outputs;
    std::vector<std::vector<std::string>> references;
    for (size_t i = 0; i < answers.size(); ++i) {
      outputs.push_back(answers[i].text);
      references.push_back(eval_[i].references);
    }
    return {{key(), score_metric(recipe_.eval_metric, outputs, references, 0, 0).value}};
  }

  std::string key() const { return recipe_.eval_task + "/" + recipe_.eval_metric; }

 private:
  collab::FusionSystem& system_;
  const FusionRecipe& recipe_;
  int64_t eval_batch_;
  train::TaskSampler sampler_;
  train::TaskLossWeights weights_{nullptr};
  std::vector<const std::vector<tasks::Example>*> pools_;
  std::vector<tasks::Example> eval_;
};

collab::FusionTeamOptions read_team_options(const ConfigView& v) {
  collab::FusionTeamOptions t;
  auto& f = t.head;
  f.value_source =
      v.get_choice("value_source", {"hidden", "bridge"}, std::string("hidden")) == "bridge"
          ? collab::ValueSource::bridge
          : collab::ValueSource::hidden;
  t.states =
      v.get_choice("augmenting_states", {"encoder", "decoder"}, std::string("encoder")) == "decoder"
          ? collab::StatesSource::decoder
          : collab::StatesSource::encoder;
  CHORUS_CHECK(
      !(f.value_source == collab::ValueSource::bridge && t.states == collab::StatesSource::encoder),
      v.origin("value_source"), ": ", v.key_path("value_source"),
      ": bridge values map the other agent's output distribution, which only its decoder has; "
      "set augmenting_states: decoder (or value_source: hidden)");
  f.heads = v.get_int("heads", 4, 1, 256);
  f.head_dim = v.get_int("head_dim", 64, 1, 4096);
  f.bridge_temperature = v.get_double("bridge_temperature", 1.0, 1e-6);
  f.gate = v.get_choice("gate", {"per_position", "scalar"}, std::string("per_position")) == "scalar"
               ? collab::GateKind::scalar
               : collab::GateKind::per_position;
  f.residual = v.get_choice("residual", {"add", "interpolate"}, std::string("add")) == "add"
                   ? collab::Residual::add
                   : collab::Residual::interpolate;
  f.null_slot = v.get<bool>("null_slot", true);
  f.position_bias = v.get_int("position_bias", 0, 0, 4096);
  f.diagonal_prior = v.get_double("diagonal_prior", 0.0);
  CHORUS_CHECK(f.diagonal_prior == 0.0 || f.position_bias > 0, v.origin("diagonal_prior"), ": ",
               v.key_path("diagonal_prior"), ": needs a position-pair bias (position_bias > 0)");
  t.query_layer = v.get_int("query_layer", 0, 0);
  t.inject_layer = v.get_int("inject_layer", 0, 0);
  t.augmenting_max_new_tokens = v.get_int("augmenting_max_new_tokens", 0, 0);
  return t;
}

SystemRecipe read_fusion(const ConfigView& v, const std::string& name, const ReadContext& c) {
  auto recipe = std::make_shared<FusionRecipe>();
  recipe->name = name;
  recipe->anchor = v.get<std::string>("anchor");
  c.check_agent(v, "anchor", recipe->anchor);
  recipe->augmenting = v.get<std::vector<std::string>>("augmenting");
  CHORUS_CHECK(!recipe->augmenting.empty(), v.origin("augmenting"), ": ", v.key_path("augmenting"),
               ": expected at least one agent");
  for (const auto& a : recipe->augmenting) {
    c.check_agent(v, "augmenting", a);
    CHORUS_CHECK(a != recipe->anchor, v.origin("augmenting"), ": ", v.key_path("augmenting"),
                 ": the anchor '", a, "' cannot also augment itself");
  }
  recipe->team = read_team_options(v);

  const auto train = v.child("train");
  recipe->trainer = train::read_trainer_options(train, name, c.seed);
  recipe->batch_size = train.get_int("batch_size", 32, 1);
  for (const auto& entry : train.list("tasks")) {
    MixEntry m;
    m.task = entry.get<std::string>("task");
    const auto& task = c.task(entry, "task", m.task);
    m.split = entry.get<std::string>("split", std::string("train"));
    CHORUS_CHECK(task.has_split(m.split), entry.origin("split"), ": ", entry.key_path("split"),
                 ": task '", m.task, "' has no split '", m.split, "'");
    CHORUS_CHECK(task.has_references, entry.origin("task"), ": ", entry.key_path("task"),
                 ": task '", m.task, "' has no references to train on");
    m.weight = entry.get_double("weight", 1.0, 1e-9);
    recipe->mix.push_back(m);
  }
  CHORUS_CHECK(!recipe->mix.empty(), train.origin("tasks"), ": ", train.key_path("tasks"),
               ": expected at least one task to train on");
  const auto sampling = train.child_or_empty("task_sampling");
  recipe->sampling = train::parse_task_sampling(
      sampling.get_choice("strategy", {"proportional", "temperature", "round_robin"},
                          std::string("proportional")),
      sampling.path());
  recipe->sampling_temperature = sampling.get_double("temperature", 1.0, 1e-6);
  recipe->weighting = train::parse_loss_weighting(
      train.get_choice("loss_weighting", {"fixed", "uncertainty"}, std::string("fixed")),
      train.path());
  if (v.get_choice("task_conditioning", {"none", "embedding"}, std::string("none")) ==
      "embedding") {
    recipe->team.head.tasks = static_cast<int64_t>(recipe->mix.size());
  }
  // The best checkpoint: the first training task's validation split under its primary metric.
  recipe->eval_task = train.get<std::string>("eval_task", recipe->mix.front().task);
  const auto& eval_task = c.task(train, "eval_task", recipe->eval_task);
  recipe->eval_split = train.get<std::string>(
      "eval_split", eval_task.has_split("valid") ? std::string("valid") : "");
  if (!recipe->eval_split.empty()) {
    CHORUS_CHECK(eval_task.has_split(recipe->eval_split), train.origin("eval_split"), ": ",
                 train.key_path("eval_split"), ": task '", recipe->eval_task, "' has no split '",
                 recipe->eval_split, "'");
  }
  const auto metrics = c.metrics->count(recipe->eval_task) ? c.metrics->at(recipe->eval_task)
                                                           : std::vector<std::string>{"em"};
  recipe->eval_metric = train.get_choice("eval_metric", metric_names(), metrics.front());
  CHORUS_CHECK(decomposable(recipe->eval_metric), train.origin("eval_metric"), ": ",
               train.key_path("eval_metric"), ": '", recipe->eval_metric,
               "' compares no references; choose a metric such as em, f1, bleu or chrf");
  recipe->eval_examples = train.get_int("eval_examples", 200, 1);
  if (!recipe->eval_split.empty()) {
    recipe->trainer.best_metric = recipe->eval_task + "/" + recipe->eval_metric;
    recipe->trainer.higher_is_better = higher_is_better(recipe->eval_metric);
  }

  SystemRecipe r;
  r.kind = "fusion";
  r.trainable = true;
  r.agents = recipe->augmenting;
  r.agents.insert(r.agents.begin(), recipe->anchor);
  r.build = [recipe](BuildContext& b) -> collab::SystemPtr {
    auto anchor = b.member(recipe->anchor);
    std::vector<collab::MemberPtr> augmenting;
    std::vector<collab::Agent> agents;
    for (const auto& a : recipe->augmenting) {
      augmenting.push_back(b.member(a));
      agents.push_back(augmenting.back()->agent);
    }
    torch::manual_seed(recipe->trainer.seed);  // the head's initial weights
    auto team =
        std::make_shared<collab::FusionTeam>(recipe->name, anchor->agent, agents, recipe->team);
    std::map<std::string, int64_t> task_index;
    for (size_t e = 0; e < recipe->mix.size(); ++e)
      task_index.emplace(recipe->mix[e].task, static_cast<int64_t>(e));
    auto system =
        std::make_shared<collab::FusionSystem>(recipe->name, team, anchor, augmenting, task_index);

    FusionTrainingProblem problem(*system, *recipe, *b.tasks, b.batch_size);
    auto options = recipe->trainer;
    options.show_progress = !b.quiet;
    const bool resume =
        b.resume && std::filesystem::exists(train::latest_checkpoint_path(b.folder));
    std::filesystem::create_directories(train::checkpoints_path(b.folder));
    const auto result = train::train(problem, options, b.folder, resume);
    const auto best = train::best_checkpoint_path(b.folder);
    const bool use_best = !options.best_metric.empty() && std::filesystem::exists(best);
    if (use_best) train::load_parameters(best, problem.parameters());
    team->head()->eval();
    nlohmann::json mix = nlohmann::json::array();
    for (const auto& m : recipe->mix)
      mix.push_back({{"task", m.task}, {"split", m.split}, {"weight", m.weight}});
    b.training = {{"steps", result.steps_done},
                  {"seconds", result.seconds},
                  {"parameters", team->head()->parameter_count()},
                  {"mix", mix},
                  {"best_metric", options.best_metric},
                  {"best_step", result.best_step},
                  {"best_value", result.best_value},
                  {"checkpoint", use_best ? "best" : "latest"},
                  {"stopped_early", result.stopped_early},
                  {"final_loss", result.losses.empty() ? nlohmann::json(nullptr)
                                                       : nlohmann::json(result.losses.back())}};
    return system;
  };
  return r;
}

}  // namespace

void register_fusion_kind() { register_system_kind("fusion", read_fusion); }

}  // namespace chorus::experiment
