// The router kind: a policy that picks, per input, one of several other systems (its arms),
// trained by reinforcement learning on reward = score - lambda * cost on a task split where every
// arm has answered; a lambda sweep traces the accuracy-cost curve on the selection split.
#include <torch/torch.h>

#include <chrono>

#include "collab/router.h"
#include "collab/systems.h"
#include "common/error.h"
#include "experiment/kinds/fitted_module.h"
#include "experiment/kinds/kinds.h"
#include "experiment/registry.h"
#include "experiment/scoring.h"

namespace chorus::experiment {
namespace {

struct RouterRecipe {
  std::string name;
  std::vector<std::string> arms;
  std::string tokenizer;  // the agent whose tokenizer the policy reads
  double lambda = 0.0;
  std::vector<double> sweep;
  std::string cost_measure = "flops";
  collab::RouterTrainingOptions training;
  int64_t embedding_dim = 32, hidden_dim = 64;
  std::string task, split, metric, sweep_split;
  int64_t examples = 500;
};

class RouterSystem final : public collab::System {
 public:
  RouterSystem(std::string name, std::vector<collab::SystemPtr> arms, collab::MemberPtr reader,
               collab::RouterPolicy policy, double lambda)
      : System(std::move(name)),
        arms_(std::move(arms)),
        reader_(std::move(reader)),
        policy_(std::move(policy)),
        lambda_(lambda) {}

  std::string kind() const override { return "router"; }
  std::string description() const override {
    std::string names;
    for (const auto& a : arms_) names += (names.empty() ? "" : ", ") + a->name();
    return "learned router (lambda " + std::to_string(lambda_).substr(0, 5) + ") over " + names;
  }
  std::vector<std::string> agents() const override {
    std::vector<std::string> out;
    for (const auto& a : arms_) {
      for (const auto& n : a->agents()) {
        if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
      }
    }
    return out;
  }

  // The policy's features of a batch: the reader's token ids of each input.
  model::TokenBatch features(const collab::Batch& batch) const {
    return model::tokenize_batch(*reader_->agent.tokenizer, batch.inputs());
  }

  std::vector<int64_t> choose(const collab::Batch& batch) {
    const auto f = features(batch);
    const auto chosen = policy_->choose(f.input_ids, f.attention_mask).contiguous();
    return std::vector<int64_t>(chosen.data_ptr<int64_t>(),
                                chosen.data_ptr<int64_t>() + chosen.numel());
  }

  std::vector<collab::SystemAnswer> answer(const collab::Batch& batch,
                                           collab::Transcript* transcript) override {
    torch::NoGradGuard no_grad;
    const auto f = features(batch);
    const auto chosen = choose(batch);
    std::vector<collab::SystemAnswer> out(batch.examples.size());
    for (size_t a = 0; a < arms_.size(); ++a) {
      collab::Batch part;
      part.task = batch.task;
      std::vector<size_t> rows;
      for (size_t i = 0; i < chosen.size(); ++i) {
        if (chosen[i] == static_cast<int64_t>(a)) {
          part.examples.push_back(batch.examples[i]);
          rows.push_back(i);
        }
      }
      if (rows.empty()) continue;
      collab::Transcript local;
      const auto answers = arms_[a]->answer(part, transcript ? &local : nullptr);
      for (size_t k = 0; k < rows.size(); ++k) {
        out[rows[k]] = answers[k];
        out[rows[k]].details = {{"arm", arms_[a]->name()}, {"arm_details", answers[k].details}};
      }
      if (transcript != nullptr) {
        for (auto m : local.messages()) {
          const auto e = m.metadata.value("example", int64_t{-1});
          if (e >= 0) m.metadata["example"] = static_cast<int64_t>(rows[static_cast<size_t>(e)]);
          transcript->append(std::move(m));
        }
      }
    }
    const auto tokens = f.attention_mask.sum(1).contiguous();
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].cost.flops +=
          policy_->flops_per_decision(tokens[static_cast<int64_t>(i)].item<int64_t>());
    }
    return out;
  }

  nlohmann::json summarise(const std::vector<collab::SystemAnswer>& answers) const override {
    nlohmann::json chosen = nlohmann::json::object();
    for (const auto& a : arms_) chosen[a->name()] = 0;
    for (const auto& a : answers) {
      const auto arm = a.details.value("arm", std::string());
      chosen[arm] = chosen.value(arm, int64_t{0}) + 1;
    }
    return {{"requests", answers.size()}, {"chosen", chosen}};
  }

 private:
  std::vector<collab::SystemPtr> arms_;
  collab::MemberPtr reader_;
  collab::RouterPolicy policy_;
  double lambda_;
};

// Every arm's per-example score and cost on `examples`.
struct ArmTable {
  torch::Tensor scores, costs;  // [N, A] float64
};

ArmTable arm_table(const RouterRecipe& recipe, BuildContext& b,
                   const std::vector<tasks::Example>& examples) {
  const auto n = static_cast<int64_t>(examples.size());
  const auto arms = static_cast<int64_t>(recipe.arms.size());
  ArmTable t{torch::zeros({n, arms}, torch::kFloat64), torch::zeros({n, arms}, torch::kFloat64)};
  std::vector<std::vector<std::string>> references;
  for (const auto& ex : examples) references.push_back(ex.references);
  for (int64_t a = 0; a < arms; ++a) {
    const auto answers = answer_all(*b.system(recipe.arms[static_cast<size_t>(a)]), recipe.task,
                                    examples, b.batch_size);
    std::vector<std::string> outputs;
    for (const auto& x : answers) outputs.push_back(x.text);
    const auto scores = example_scores(recipe.metric, outputs, references);
    for (int64_t i = 0; i < n; ++i) {
      t.scores.index_put_({i, a}, scores[static_cast<size_t>(i)]);
      t.costs.index_put_({i, a}, answers[static_cast<size_t>(i)].cost.measure(recipe.cost_measure));
    }
  }
  return t;
}

collab::SystemPtr build_router(const RouterRecipe& recipe, BuildContext& b) {
  std::vector<collab::SystemPtr> arms;
  for (const auto& a : recipe.arms) arms.push_back(b.system(a));
  const auto reader = b.member(recipe.tokenizer);
  const auto& task = b.tasks->at(recipe.task);
  const auto examples = tasks::first_examples(task.split(recipe.split), recipe.examples);
  collab::Batch all;
  all.task = recipe.task;
  for (const auto& ex : examples) all.examples.push_back(&ex);
  // The policy's vocabulary is the reader's whole vocabulary, so inputs unseen in training map to
  // embeddings too.
  const auto vocab = reader->agent.tokenizer->vocab_size();
  const auto checkpoint = b.folder / "router.h5";
  auto make_policy = [&]() {
    collab::RouterOptions options;
    options.vocab_size = vocab;
    options.num_arms = static_cast<int64_t>(recipe.arms.size());
    options.embedding_dim = recipe.embedding_dim;
    options.hidden_dim = recipe.hidden_dim;
    options.seed = recipe.training.seed;
    return collab::RouterPolicy(options);
  };
  if (b.resume && std::filesystem::exists(checkpoint)) {  // trained before the run was stopped
    auto policy = make_policy();
    b.training = load_fitted(checkpoint, *policy);
    return std::make_shared<RouterSystem>(recipe.name, arms, reader, policy, recipe.lambda);
  }

  const auto start = std::chrono::steady_clock::now();
  const auto table = arm_table(recipe, b, examples);
  const auto features = model::tokenize_batch(*reader->agent.tokenizer, all.inputs());
  // Costs are in units of the most expensive arm's mean cost, so lambda is unitless.
  const double cost_scale = std::max(1e-12, table.costs.mean(0).max().item<double>());
  auto train_one = [&](double lambda, collab::RouterTrainingLog* log) {
    auto policy = make_policy();
    collab::RouterBandit bandit;
    bandit.ids = features.input_ids;
    bandit.mask = features.attention_mask;
    bandit.reward = collab::reward_table(
        (table.scores - lambda * table.costs / cost_scale).to(torch::kFloat32));
    *log = collab::train_router(policy, bandit, recipe.training);
    return policy;
  };
  collab::RouterTrainingLog log;
  auto policy = train_one(recipe.lambda, &log);

  nlohmann::json arm_means = nlohmann::json::object();
  for (size_t a = 0; a < recipe.arms.size(); ++a) {
    arm_means[recipe.arms[a]] = {
        {"score", table.scores.select(1, static_cast<int64_t>(a)).mean().item<double>()},
        {recipe.cost_measure,
         table.costs.select(1, static_cast<int64_t>(a)).mean().item<double>()}};
  }
  const auto oracle = table.scores.max(1);
  b.training = {{"task", recipe.task},
                {"split", recipe.split},
                {"examples", examples.size()},
                {"metric", recipe.metric},
                {"cost_measure", recipe.cost_measure},
                {"cost_scale", cost_scale},
                {"lambda", recipe.lambda},
                {"objective", collab::to_string(recipe.training.objective)},
                {"steps", recipe.training.steps},
                {"final_mean_reward", log.mean_reward.empty() ? 0.0 : log.mean_reward.back()},
                {"arms", arm_means},
                {"oracle_score", std::get<0>(oracle).mean().item<double>()}};

  // The accuracy-cost curve: one policy per lambda, choosing on the sweep split.
  if (!recipe.sweep.empty()) {
    const auto sweep_examples =
        tasks::first_examples(task.split(recipe.sweep_split), recipe.examples);
    const auto sweep_table = arm_table(recipe, b, sweep_examples);
    collab::Batch sweep_batch;
    sweep_batch.task = recipe.task;
    for (const auto& ex : sweep_examples) sweep_batch.examples.push_back(&ex);
    const auto sweep_features =
        model::tokenize_batch(*reader->agent.tokenizer, sweep_batch.inputs());
    nlohmann::json curve = nlohmann::json::array();
    for (const double lambda : recipe.sweep) {
      collab::RouterTrainingLog sweep_log;
      auto p = train_one(lambda, &sweep_log);
      const auto chosen = p->choose(sweep_features.input_ids, sweep_features.attention_mask);
      const auto rows = torch::arange(chosen.size(0));
      const double score = sweep_table.scores.index({rows, chosen}).mean().item<double>();
      const double cost = sweep_table.costs.index({rows, chosen}).mean().item<double>();
      curve.push_back(
          {{"lambda", lambda}, {"score", score}, {"cost", {{recipe.cost_measure, cost}}}});
    }
    b.training["curve"] = curve;
    b.training["curve_split"] = recipe.sweep_split;
  }
  b.training["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  save_fitted(checkpoint, *policy, recipe.training.steps, recipe.training.seed, b.training);
  return std::make_shared<RouterSystem>(recipe.name, arms, reader, policy, recipe.lambda);
}

SystemRecipe read_router(const ConfigView& v, const std::string& name, const ReadContext& c) {
  auto recipe = std::make_shared<RouterRecipe>();
  recipe->name = name;
  recipe->arms = v.get<std::vector<std::string>>("arms");
  CHORUS_CHECK(recipe->arms.size() >= 2, v.origin("arms"), ": ", v.key_path("arms"),
               ": a router needs at least two arms (systems)");
  for (const auto& a : recipe->arms) {
    CHORUS_CHECK(a != name, v.origin("arms"), ": ", v.key_path("arms"),
                 ": a router cannot route to itself");
    c.check_system(v, "arms", a);
  }
  recipe->tokenizer = v.get<std::string>("tokenizer");
  c.check_agent(v, "tokenizer", recipe->tokenizer);
  recipe->lambda = v.get_double("lambda", 0.0, 0.0);
  if (v.has("lambdas")) recipe->sweep = v.get<std::vector<double>>("lambdas");
  for (const double l : recipe->sweep) {
    CHORUS_CHECK(l >= 0, v.origin("lambdas"), ": ", v.key_path("lambdas"), ": ", l,
                 " (expected values >= 0)");
  }
  recipe->cost_measure =
      v.get_choice("cost", {"flops", "agent_calls", "tokens", "seconds"}, std::string("flops"));
  recipe->embedding_dim = v.get_int("embedding_dim", 32, 1);
  recipe->hidden_dim = v.get_int("hidden_dim", 64, 1);
  const auto train = v.child("train");
  recipe->task = train.get<std::string>("task");
  const auto& task = c.task(train, "task", recipe->task);
  CHORUS_CHECK(task.has_references, train.origin("task"), ": ", train.key_path("task"), ": task '",
               recipe->task, "' has no references to reward the arms with");
  recipe->split = train.get<std::string>("split", std::string("train"));
  CHORUS_CHECK(task.has_split(recipe->split), train.origin("split"), ": ", train.key_path("split"),
               ": task '", recipe->task, "' has no split '", recipe->split, "'");
  recipe->sweep_split = train.get<std::string>("sweep_split", std::string("valid"));
  CHORUS_CHECK(recipe->sweep.empty() || task.has_split(recipe->sweep_split),
               train.origin("sweep_split"), ": ", train.key_path("sweep_split"), ": task '",
               recipe->task, "' has no split '", recipe->sweep_split, "' for the lambda sweep");
  const auto metrics =
      c.metrics->count(recipe->task) ? c.metrics->at(recipe->task) : std::vector<std::string>{"em"};
  recipe->metric = train.get_choice("metric", metric_names(), metrics.front());
  CHORUS_CHECK(decomposable(recipe->metric), train.origin("metric"), ": ", train.key_path("metric"),
               ": '", recipe->metric, "' has no per-example scores to reward with");
  recipe->examples = train.get_int("examples", 500, 1);
  auto& o = recipe->training;
  o.objective = collab::policy_objective_from_string(
      train.get_choice("objective", {"reinforce", "ppo"}, std::string("reinforce")));
  o.steps = train.get_int("steps", 300, 1);
  o.batch_size = train.get_int("batch_size", 64, 1);
  o.learning_rate = train.get_double("learning_rate", 1e-2, 1e-9);
  o.entropy_bonus = train.get_double("entropy_bonus", 0.01, 0.0);
  o.value_weight = train.get_double("value_weight", 0.5, 0.0);
  o.ppo_epochs = train.get_int("ppo_epochs", 4, 1);
  o.ppo_clip = train.get_double("ppo_clip", 0.2, 1e-6, 0.999999);
  o.seed = static_cast<uint64_t>(train.get_int("seed", static_cast<int64_t>(c.seed), 0));
  collab::check_router_training_options(o);

  SystemRecipe r;
  r.kind = "router";
  r.trainable = true;
  r.systems = recipe->arms;
  r.agents = {recipe->tokenizer};
  r.build = [recipe](BuildContext& b) { return build_router(*recipe, b); };
  return r;
}

}  // namespace

void register_router_kind() { register_system_kind("router", read_router); }

}  // namespace chorus::experiment
