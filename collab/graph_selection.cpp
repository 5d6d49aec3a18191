// Learned answer selection by graph attention over agents: node features from the agents' own
// calls, the selector module, its training and the mechanism that records what it decided.
#include "collab/graph_selection.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/normalization.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <set>

#include "common/error.h"
#include "model/generation/generate.h"

namespace chorus::collab {

int64_t node_feature_width(const Agent& agent) {
  CHORUS_CHECK(agent.model != nullptr, "agent '", agent.name, "' has no model");
  return 2 * agent.model->config().d_model;
}

NodeAnswers ask_nodes(const std::vector<Agent>& agents, const std::vector<std::string>& inputs,
                      const model::GenerationOptions& options, const std::string& channel,
                      Transcript* transcript) {
  return ask_nodes(agents, std::vector<std::vector<std::string>>(agents.size(), inputs), options,
                   channel, transcript);
}

NodeAnswers ask_nodes(const std::vector<Agent>& agents,
                      const std::vector<std::vector<std::string>>& node_inputs,
                      const model::GenerationOptions& options, const std::string& channel,
                      Transcript* transcript) {
  CHORUS_CHECK(!agents.empty(), channel, ": needs at least one agent, got none");
  CHORUS_CHECK(node_inputs.size() == agents.size(), channel, ": expected one input list per agent (",
               agents.size(), "), got ", node_inputs.size());
  for (size_t node = 1; node < agents.size(); ++node) {
    CHORUS_CHECK(node_inputs[node].size() == node_inputs[0].size(), channel, ": agent '",
                 agents[node].name, "' has ", node_inputs[node].size(), " inputs, agent '",
                 agents[0].name, "' has ", node_inputs[0].size());
  }
  CHORUS_CHECK(options.num_return_sequences == 1, channel,
               ": every agent gives one answer per input (num_return_sequences = 1, got ",
               options.num_return_sequences, ")");
  const size_t examples = node_inputs[0].size();
  NodeAnswers out;
  out.answers.assign(examples, std::vector<Response>(agents.size()));
  torch::NoGradGuard no_grad;
  auto generation = options;
  generation.output_hidden_states = true;
  for (size_t node = 0; node < agents.size(); ++node) {
    const auto& agent = agents[node];
    const auto& inputs = node_inputs[node];
    CHORUS_CHECK(agent.model != nullptr && agent.tokenizer != nullptr, channel, ": agent '",
                 agent.name, "' needs a model and a tokenizer to answer");
    const int64_t width = node_feature_width(agent);
    if (inputs.empty()) {
      out.features.push_back(torch::zeros({0, width}, torch::kFloat32));
      continue;
    }
    const auto batch = agent.tokenize(inputs);
    // The encoder output generation reads anyway: encoded once, pooled here, decoded from below.
    const auto encoder = agent.model->encode(batch.input_ids, batch.attention_mask,
                                             /*output_hidden_states=*/false);
    const auto result = model::generate_from_encoder(*agent.model, encoder, generation);
    const auto sequences = result.sequences.to(torch::kCPU).contiguous();
    const auto scores = result.sequence_scores.to(torch::kCPU, torch::kFloat64).contiguous();
    const int64_t eos = agent.tokenizer->eos_id();
    const auto rows = static_cast<int64_t>(inputs.size());
    const int64_t steps = sequences.size(1) - 1;  // position 0 is the decoder start token
    auto generated_mask = torch::zeros({rows, steps}, torch::kFloat32);
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t* ids = sequences[i].data_ptr<int64_t>();
      std::vector<int64_t> generated;
      for (int64_t t = 1; t <= steps; ++t) {
        generated.push_back(ids[t]);
        if (ids[t] == eos) break;
      }
      Response& r = out.answers[static_cast<size_t>(i)][node];
      r.text = agent.tokenizer->decode(generated, /*skip_special_tokens=*/true);
      r.log_prob = scores[i].item<double>();
      r.tokens = static_cast<int64_t>(generated.size());
      generated_mask[i].narrow(0, 0, r.tokens).fill_(1.0);
    }
    // Step t's last-layer state is the one that generated token t.
    std::vector<torch::Tensor> step_states;
    for (const auto& step : result.decoder_hidden_states) step_states.push_back(step.back());
    const auto decoder_states = torch::cat(step_states, 1).to(torch::kCPU, torch::kFloat32);
    const auto encoder_mean =
        pool_agent_states(encoder.last_hidden_state.to(torch::kCPU, torch::kFloat32),
                          encoder.attention_mask.to(torch::kCPU));
    const auto decoder_mean = pool_agent_states(decoder_states, generated_mask);
    out.features.push_back(torch::cat({encoder_mean, decoder_mean}, 1).contiguous());
  }
  if (transcript != nullptr) {
    for (size_t e = 0; e < examples; ++e) {
      for (size_t node = 0; node < agents.size(); ++node) {
        const auto& a = out.answers[e][node];
        transcript->append(Message::text_message(channel, 0, agents[node].name, {}, a.text,
                                                 {{"example", static_cast<int64_t>(e)},
                                                  {"log_prob", a.log_prob},
                                                  {"tokens", a.tokens},
                                                  {"prompt", node_inputs[node][e]}}));
      }
    }
  }
  return out;
}

// --- The selector --------------------------------------------------------------------------------

GraphSelectorImpl::GraphSelectorImpl(GraphSelectorOptions options) : options_(std::move(options)) {
  const auto n = static_cast<int64_t>(options_.feature_widths.size());
  CHORUS_CHECK(n > 0, "graph selector: needs at least one node (feature width), got none");
  for (size_t i = 0; i < options_.feature_widths.size(); ++i) {
    CHORUS_CHECK(options_.feature_widths[i] > 0, "graph selector: node ", i,
                 "'s feature width must be positive, got ", options_.feature_widths[i]);
  }
  CHORUS_CHECK(options_.adjacency.defined() && options_.adjacency.dim() == 2 &&
                   options_.adjacency.size(0) == n && options_.adjacency.size(1) == n,
               "graph selector: the adjacency must be [", n, ", ", n, "] for ", n, " nodes, got ",
               options_.adjacency.defined() ? options_.adjacency.sizes() : torch::IntArrayRef{});
  graph_ = register_module("graph", GraphAttention(options_.graph, options_.adjacency));
  const int64_t dim = graph_->options().dim;
  for (int64_t i = 0; i < n; ++i) {
    projections_.push_back(
        register_module("projection" + std::to_string(i),
                        torch::nn::Linear(options_.feature_widths[static_cast<size_t>(i)], dim)));
  }
  node_embedding_ = register_module("node_embedding", torch::nn::Embedding(n, dim));
  score_ = register_module("score", torch::nn::Linear(dim, 1));
  torch::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options_.graph.seed + 1);
  for (auto& layer : projections_) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(layer->weight.size(1)));
    layer->weight.uniform_(-bound, bound, generator);
    layer->bias.uniform_(-bound, bound, generator);
  }
  node_embedding_->weight.normal_(0.0, 1.0, generator);
  const double bound = 1.0 / std::sqrt(static_cast<double>(dim));
  score_->weight.uniform_(-bound, bound, generator);
  score_->bias.zero_();
}

namespace {

// Checks features against the selector's nodes and widths; returns the number of requests.
int64_t check_features(const std::vector<torch::Tensor>& features,
                       const std::vector<int64_t>& widths, const std::string& what) {
  CHORUS_CHECK(features.size() == widths.size(), what, ": expected features of ", widths.size(),
               " nodes (one tensor per node), got ", features.size());
  int64_t requests = -1;
  for (size_t i = 0; i < features.size(); ++i) {
    const auto& f = features[i];
    CHORUS_CHECK(f.defined() && f.dim() == 2 && f.size(1) == widths[i], what, ": node ", i,
                 "'s features must be [requests, ", widths[i], "], got ",
                 f.defined() ? f.sizes() : torch::IntArrayRef{});
    CHORUS_CHECK(requests < 0 || f.size(0) == requests, what, ": node ", i, " has ", f.size(0),
                 " requests, node 0 has ", requests);
    requests = f.size(0);
  }
  return requests;
}

// Per row of scores [B, N], the index of the largest (ties: the lowest index).
std::vector<int64_t> argmax_lowest_index(const torch::Tensor& scores) {
  const auto cpu = scores.to(torch::kCPU, torch::kFloat32).contiguous();
  const auto s = cpu.accessor<float, 2>();
  std::vector<int64_t> out;
  for (int64_t r = 0; r < cpu.size(0); ++r) {
    int64_t best = 0;
    for (int64_t i = 1; i < cpu.size(1); ++i) {
      if (s[r][i] > s[r][best]) best = i;
    }
    out.push_back(best);
  }
  return out;
}

}  // namespace

torch::Tensor GraphSelectorImpl::forward(const std::vector<torch::Tensor>& features) {
  check_features(features, options_.feature_widths, "graph selector");
  std::vector<torch::Tensor> nodes;
  for (size_t i = 0; i < features.size(); ++i) {
    const auto f = features[i].to(torch::kFloat32);
    const auto normalised = torch::layer_norm(f, {f.size(1)});
    nodes.push_back(projections_[i](normalised) + node_embedding_->weight[static_cast<int64_t>(i)]);
  }
  return score_(graph_(torch::stack(nodes, 1))).squeeze(-1);
}

torch::Tensor GraphSelectorImpl::probabilities(const std::vector<torch::Tensor>& features) {
  torch::NoGradGuard no_grad;
  return torch::softmax(forward(features), 1);
}

std::vector<int64_t> GraphSelectorImpl::choose(const std::vector<torch::Tensor>& features) {
  torch::NoGradGuard no_grad;
  return argmax_lowest_index(forward(features));
}

double GraphSelectorImpl::flops_per_decision() const {
  const auto& g = graph_->options();
  const double n = static_cast<double>(nodes()), dim = static_cast<double>(g.dim),
               inner = static_cast<double>(g.heads * g.head_dim);
  double flops = 0;
  for (auto width : options_.feature_widths) flops += 2.0 * static_cast<double>(width) * dim;
  const double per_step =
      n * (3.0 * 2.0 * dim * inner + 2.0 * inner * dim) +
      4.0 * static_cast<double>(g.heads) * n * n * static_cast<double>(g.head_dim);
  flops += static_cast<double>(g.steps) * per_step;
  flops += n * 2.0 * dim;
  return flops;
}

int64_t GraphSelectorImpl::parameter_count() const {
  int64_t count = 0;
  for (const auto& p : parameters()) count += p.numel();
  return count;
}

// --- Training ------------------------------------------------------------------------------------

void check_graph_selector_training_options(const GraphSelectorTrainingOptions& o) {
  CHORUS_CHECK(o.steps > 0, "graph selector training: steps must be positive, got ", o.steps);
  CHORUS_CHECK(o.batch_size > 0, "graph selector training: batch_size must be positive, got ",
               o.batch_size);
  CHORUS_CHECK(o.learning_rate > 0 && std::isfinite(o.learning_rate),
               "graph selector training: learning_rate must be positive, got ", o.learning_rate);
}

GraphSelectorTrainingLog train_graph_selector(GraphSelector& selector,
                                              const std::vector<torch::Tensor>& features,
                                              const torch::Tensor& correct,
                                              const GraphSelectorTrainingOptions& options) {
  check_graph_selector_training_options(options);
  const auto& widths = selector->options().feature_widths;
  const int64_t requests = check_features(features, widths, "graph selector training");
  const auto n = static_cast<int64_t>(widths.size());
  CHORUS_CHECK(
      correct.defined() && correct.dim() == 2 && correct.size(0) == requests &&
          correct.size(1) == n && correct.scalar_type() == torch::kBool,
      "graph selector training: correct must be bool [", requests, ", ", n,
      "] (requests, nodes), got ", correct.defined() ? correct.sizes() : torch::IntArrayRef{},
      correct.defined() ? std::string(" ") + c10::toString(correct.scalar_type()) : std::string());
  const auto right = correct.to(torch::kCPU).contiguous();
  const auto trainable = right.any(1).nonzero().squeeze(1);
  GraphSelectorTrainingLog log;
  log.requests = requests;
  log.trainable = trainable.numel();
  CHORUS_CHECK(log.trainable > 0, "graph selector training: no request among ", requests,
               " has a correct node; there is nothing to learn from");
  std::vector<torch::Tensor> inputs;
  for (const auto& f : features) inputs.push_back(f.to(torch::kCPU, torch::kFloat32).contiguous());

  torch::AutoGradMode with_grad(true);
  selector->train();
  torch::optim::Adam optimizer(selector->parameters(),
                               torch::optim::AdamOptions(options.learning_rate));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const float minus_infinity = -std::numeric_limits<float>::infinity();
  for (int64_t step = 0; step < options.steps; ++step) {
    const auto draws =
        torch::randint(log.trainable, {options.batch_size}, generator, torch::kInt64);
    const auto rows = trainable.index_select(0, draws);
    std::vector<torch::Tensor> batch;
    for (const auto& f : inputs) batch.push_back(f.index_select(0, rows));
    const auto batch_right = right.index_select(0, rows);
    const auto log_p = torch::log_softmax(selector->forward(batch), 1);
    // -log of the probability on the correct nodes: every row has at least one.
    const auto loss =
        -torch::logsumexp(log_p.masked_fill(batch_right.logical_not(), minus_infinity), 1).mean();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    log.losses.push_back(loss.item<double>());
  }
  selector->eval();
  return log;
}

GraphSelectorFit fit_graph_selector(const std::vector<Agent>& agents,
                                    const GraphAttentionSpec& graph,
                                    const std::vector<torch::Tensor>& features,
                                    const torch::Tensor& correct,
                                    const GraphSelectorTrainingOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  GraphSelectorOptions selector_options;
  for (const auto& agent : agents) selector_options.feature_widths.push_back(node_feature_width(agent));
  selector_options.graph = graph.options;
  selector_options.adjacency = graph.adjacency;
  GraphSelectorFit fit;
  fit.selector = GraphSelector(selector_options);
  fit.log = train_graph_selector(fit.selector, features, correct, options);
  fit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fit.chosen = fit.selector->choose(features);
  const auto right = correct.to(torch::kCPU).contiguous();
  const auto r = right.accessor<bool, 2>();
  for (size_t i = 0; i < fit.chosen.size(); ++i) {
    fit.chosen_right += r[static_cast<int64_t>(i)][fit.chosen[i]] ? 1 : 0;
  }
  fit.training_accuracy =
      static_cast<double>(fit.chosen_right) / static_cast<double>(fit.log.trainable);
  return fit;
}

// --- The mechanism -------------------------------------------------------------------------------

GraphSelection::GraphSelection(std::vector<Agent> agents, GraphSelector selector,
                               model::GenerationOptions options)
    : agents_(std::move(agents)), selector_(std::move(selector)), options_(std::move(options)) {
  CHORUS_CHECK(!agents_.empty(), "graph selection: needs at least one agent, got none");
  CHORUS_CHECK(!selector_.is_empty(), "graph selection: needs a selector");
  CHORUS_CHECK(static_cast<int64_t>(agents_.size()) == selector_->nodes(),
               "graph selection: ", agents_.size(), " agents for a selector of ",
               selector_->nodes(), " nodes");
  std::set<std::string> names;
  for (size_t i = 0; i < agents_.size(); ++i) {
    CHORUS_CHECK(names.insert(agents_[i].name).second, "graph selection: two agents are called '",
                 agents_[i].name, "' (names must be unique)");
    const int64_t width = node_feature_width(agents_[i]);
    CHORUS_CHECK(width == selector_->options().feature_widths[i], "graph selection: agent '",
                 agents_[i].name, "' gives features of width ", width, ", node ", i,
                 " of the selector reads ", selector_->options().feature_widths[i]);
  }
  model::check_generation_options(options_, agents_.front().model->config());
}

std::vector<GraphSelectionOutcome> GraphSelection::run(const std::vector<std::string>& inputs,
                                                       Transcript* transcript) {
  return run(std::vector<std::vector<std::string>>(agents_.size(), inputs), transcript);
}

std::vector<GraphSelectionOutcome> GraphSelection::run(
    const std::vector<std::vector<std::string>>& node_inputs, Transcript* transcript) {
  const auto answers = ask_nodes(agents_, node_inputs, options_, "graph_select", transcript);
  std::vector<GraphSelectionOutcome> out;
  const size_t examples = answers.answers.size();
  if (examples == 0) return out;
  torch::NoGradGuard no_grad;
  const auto scores = selector_->forward(answers.features);
  const auto chosen = argmax_lowest_index(scores);
  const auto p = torch::softmax(scores, 1).to(torch::kCPU, torch::kFloat64).contiguous();
  const auto pa = p.accessor<double, 2>();
  for (size_t e = 0; e < examples; ++e) {
    GraphSelectionOutcome o;
    o.chosen = chosen[e];
    o.answers = answers.answers[e];
    o.answer = o.answers[static_cast<size_t>(o.chosen)].text;
    nlohmann::json by_agent = nlohmann::json::object();
    for (size_t i = 0; i < agents_.size(); ++i) {
      o.probabilities.push_back(pa[static_cast<int64_t>(e)][static_cast<int64_t>(i)]);
      by_agent[agents_[i].name] = o.probabilities.back();
    }
    if (transcript != nullptr) {
      transcript->append(
          Message::text_message("graph_select", 0, "graph_select", {}, o.answer,
                                {{"example", static_cast<int64_t>(e)},
                                 {"chosen", agents_[static_cast<size_t>(o.chosen)].name},
                                 {"p_chosen", o.probabilities[static_cast<size_t>(o.chosen)]},
                                 {"probabilities", by_agent}}));
    }
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace chorus::collab
