// The graph_select kind: every agent answers, a graph-attention selector over their states keeps
// one answer; the selector is fitted on a task split labelled by which agents' answers score best.
#include <torch/torch.h>

#include <chrono>

#include "collab/systems.h"
#include "common/error.h"
#include "experiment/kinds/fitted_module.h"
#include "experiment/kinds/kinds.h"
#include "experiment/registry.h"
#include "experiment/scoring.h"

namespace chorus::experiment {
namespace {

struct SelectRecipe {
  std::string name;
  std::vector<std::string> agents;
  collab::GraphAttentionSpec graph;
  collab::GraphSelectorTrainingOptions training;
  std::string task, split, metric;
  int64_t examples = 500;
};

// Labels: node i is right on an example when its score is the best of all nodes and the nodes do
// not all score the same (identical scores carry no signal: every choice is as good).
torch::Tensor labels_from_scores(const std::vector<std::vector<double>>& scores) {
  const auto n = static_cast<int64_t>(scores.size());
  const auto examples = static_cast<int64_t>(scores.front().size());
  auto right = torch::zeros({examples, n}, torch::kBool);
  for (int64_t e = 0; e < examples; ++e) {
    double best = scores[0][static_cast<size_t>(e)], worst = best;
    for (int64_t i = 1; i < n; ++i) {
      best = std::max(best, scores[static_cast<size_t>(i)][static_cast<size_t>(e)]);
      worst = std::min(worst, scores[static_cast<size_t>(i)][static_cast<size_t>(e)]);
    }
    if (best == worst) continue;
    for (int64_t i = 0; i < n; ++i) {
      if (scores[static_cast<size_t>(i)][static_cast<size_t>(e)] == best)
        right.index_put_({e, i}, true);
    }
  }
  return right;
}

collab::SystemPtr build_selector(const SelectRecipe& recipe, BuildContext& b) {
  std::vector<collab::MemberPtr> members;
  std::vector<collab::Agent> agents;
  for (const auto& a : recipe.agents) members.push_back(b.member(a));
  agents = collab::plain_agents(members);
  const auto checkpoint = b.folder / "selector.h5";

  auto make = [&](collab::GraphSelector selector) {
    return std::make_shared<collab::GraphSelectSystem>(recipe.name, members, std::move(selector));
  };
  collab::GraphSelectorOptions options;
  for (const auto& a : agents) options.feature_widths.push_back(collab::node_feature_width(a));
  options.graph = recipe.graph.options;
  options.adjacency = recipe.graph.adjacency;

  if (b.resume && std::filesystem::exists(checkpoint)) {  // fitted before the run was stopped
    collab::GraphSelector selector(options);
    b.training = load_fitted(checkpoint, *selector);
    return make(selector);
  }

  // Every agent answers the training examples; their node features and scores label them.
  const auto start = std::chrono::steady_clock::now();
  const auto examples =
      tasks::first_examples(b.tasks->at(recipe.task).split(recipe.split), recipe.examples);
  auto system = make(collab::GraphSelector(nullptr));
  std::vector<std::vector<torch::Tensor>> parts(agents.size());
  std::vector<std::vector<std::string>> outputs(agents.size());
  std::vector<std::vector<std::string>> references;
  for (size_t begin = 0; begin < examples.size(); begin += static_cast<size_t>(b.batch_size)) {
    collab::Batch batch;
    batch.task = recipe.task;
    for (size_t i = begin; i < std::min(examples.size(), begin + static_cast<size_t>(b.batch_size));
         ++i) {
      batch.examples.push_back(&examples[i]);
      references.push_back(examples[i].references);
    }
    const auto answers = system->ask(batch, nullptr);
    for (size_t node = 0; node < agents.size(); ++node) {
      parts[node].push_back(answers.features[node]);
      for (size_t e = 0; e < batch.examples.size(); ++e)
        outputs[node].push_back(answers.answers[e][node].text);
    }
  }
  std::vector<torch::Tensor> features;
  for (auto& p : parts) features.push_back(torch::cat(p, 0));
  std::vector<std::vector<double>> scores;
  for (const auto& o : outputs) scores.push_back(example_scores(recipe.metric, o, references));
  const auto right = labels_from_scores(scores);
  const auto answer_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  collab::GraphSelectorFit fit;
  try {
    fit = collab::fit_graph_selector(agents, recipe.graph, features, right, recipe.training);
  } catch (const Error& e) {
    throw Error("system '" + recipe.name + "': " + e.what());
  }
  nlohmann::json right_counts = nlohmann::json::object();
  for (size_t node = 0; node < agents.size(); ++node) {
    right_counts[recipe.agents[node]] =
        right.select(1, static_cast<int64_t>(node)).sum().item<int64_t>();
  }
  b.training = {{"task", recipe.task},
                {"split", recipe.split},
                {"metric", recipe.metric},
                {"examples", examples.size()},
                {"trainable_examples", fit.log.trainable},
                {"best_by_agent", right_counts},
                {"steps", recipe.training.steps},
                {"final_loss", fit.log.losses.empty() ? 0.0 : fit.log.losses.back()},
                {"training_accuracy", fit.training_accuracy},
                {"parameters", fit.selector->parameter_count()},
                {"answer_seconds", answer_seconds},
                {"seconds", fit.seconds}};
  save_fitted(checkpoint, *fit.selector, recipe.training.steps, recipe.training.seed, b.training);
  return make(fit.selector);
}

SystemRecipe read_graph_select(const ConfigView& v, const std::string& name, const ReadContext& c) {
  auto recipe = std::make_shared<SelectRecipe>();
  recipe->name = name;
  recipe->agents = v.get<std::vector<std::string>>("agents");
  CHORUS_CHECK(recipe->agents.size() >= 2, v.origin("agents"), ": ", v.key_path("agents"),
               ": graph selection needs at least two agents");
  for (const auto& a : recipe->agents) c.check_agent(v, "agents", a);
  if (v.has("graph")) {
    recipe->graph = collab::graph_attention_from_config(v.child("graph"), recipe->agents,
                                                        /*complete_by_default=*/true);
  } else {  // the default graph: every agent reads every agent, 64 wide, 2 heads, one step
    recipe->graph.options.dim = 64;
    recipe->graph.options.heads = 2;
    recipe->graph.options.steps = 1;
    recipe->graph.options.seed = c.seed;
    const auto n = static_cast<int64_t>(recipe->agents.size());
    recipe->graph.adjacency = torch::ones({n, n}, torch::kBool);
  }
  const auto train = v.child("train");
  recipe->task = train.get<std::string>("task");
  const auto& task = c.task(train, "task", recipe->task);
  CHORUS_CHECK(task.has_references, train.origin("task"), ": ", train.key_path("task"), ": task '",
               recipe->task, "' has no references to label the agents' answers with");
  recipe->split =
      train.get<std::string>("split", task.has_split("train") ? std::string("train") : "valid");
  CHORUS_CHECK(task.has_split(recipe->split), train.origin("split"), ": ", train.key_path("split"),
               ": task '", recipe->task, "' has no split '", recipe->split, "'");
  const auto metrics =
      c.metrics->count(recipe->task) ? c.metrics->at(recipe->task) : std::vector<std::string>{"em"};
  recipe->metric = train.get_choice("metric", metric_names(), metrics.front());
  CHORUS_CHECK(decomposable(recipe->metric), train.origin("metric"), ": ", train.key_path("metric"),
               ": '", recipe->metric, "' has no per-example scores to label answers with");
  recipe->examples = train.get_int("examples", 500, 1);
  recipe->training.steps = train.get_int("steps", 300, 1);
  recipe->training.batch_size = train.get_int("batch_size", 64, 1);
  recipe->training.learning_rate = train.get_double("learning_rate", 3e-3, 1e-9);
  recipe->training.seed =
      static_cast<uint64_t>(train.get_int("seed", static_cast<int64_t>(c.seed), 0));
  collab::check_graph_selector_training_options(recipe->training);

  SystemRecipe r;
  r.kind = "graph_select";
  r.trainable = true;
  r.agents = recipe->agents;
  r.build = [recipe](BuildContext& b) { return build_selector(*recipe, b); };
  return r;
}

}  // namespace

void register_graph_select_kind() { register_system_kind("graph_select", read_graph_select); }

}  // namespace chorus::experiment
