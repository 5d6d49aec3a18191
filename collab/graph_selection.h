// Learned answer selection by graph attention over agents: every agent answers, each answer becomes
// a node (the agent's pooled encoder and decoder states), graph attention lets the nodes read each
// other, and a learned score per node picks the answer to keep.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "collab/graph_attention.h"
#include "collab/message.h"
#include "collab/responder.h"
#include "model/generation/generation_options.h"

namespace chorus::collab {

// --- Node features from the agents' own calls ----------------------------------------------------

// What the agents (the nodes, in order) answered to a batch of inputs.
struct NodeAnswers {
  std::vector<std::vector<Response>> answers;  // [example][node]
  // Per node, [B, node_feature_width(agent)] float32: the concatenation of the mean of the agent's
  // encoder last hidden states over the prompt's real tokens and the mean of its decoder's
  // last-layer hidden states at the steps that generated the answer's tokens (up to and including
  // the first end-of-sequence token).
  std::vector<torch::Tensor> features;
};

// Width of an agent's node feature: twice its model's d_model (encoder mean, decoder mean).
int64_t node_feature_width(const Agent& agent);

// Every agent answers every input once (its prompt template wraps the input) with `options` (one
// returned sequence; greedy by default) and gives its node feature. The encoder runs once per
// batch and generation reads it (generate_from_encoder), so a node feature costs the agent nothing
// beyond its normal call but two masked means. Answers are the same as an AgentResponder's with
// the same options. When `transcript` is given, each answer is recorded as voting records its
// answers: a text message on `channel` in round 0, broadcast, with metadata {example, log_prob,
// tokens, prompt}.
NodeAnswers ask_nodes(const std::vector<Agent>& agents, const std::vector<std::string>& inputs,
                      const model::GenerationOptions& options, const std::string& channel,
                      Transcript* transcript);
// The same where each agent reads inputs of its own: inputs[node][example], every node with the
// same number of examples (e.g. one caption in each agent's source language). A recorded answer's
// prompt is its own node's input.
NodeAnswers ask_nodes(const std::vector<Agent>& agents,
                      const std::vector<std::vector<std::string>>& inputs,
                      const model::GenerationOptions& options, const std::string& channel,
                      Transcript* transcript);

// --- The selector --------------------------------------------------------------------------------

struct GraphSelectorOptions {
  std::vector<int64_t> feature_widths;  // per node (agents may differ in width)
  GraphAttentionOptions graph;          // graph.dim is the width every node is mapped to
  torch::Tensor adjacency;              // bool [N, N], N = feature_widths.size()
};

// Scores each node of a request: node i's feature is normalised (LayerNorm without weights, so
// agents of different scales start alike), mapped to graph.dim by a Linear of its own, and a
// learned embedding of node i (its identity) is added; then graph.steps steps of GraphAttention
// over the adjacency; then one Linear(dim -> 1) shared by the nodes gives the score. p(node) is
// the softmax of the scores over the nodes. The graph attention's weights come from graph.seed;
// the projections, embeddings and score from a generator seeded with graph.seed + 1.
class GraphSelectorImpl : public torch::nn::Module {
 public:
  explicit GraphSelectorImpl(GraphSelectorOptions options);

  // features: per node [B, feature_widths[i]] -> scores [B, N] (the logits of p(node)).
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  // softmax of the scores over the nodes, [B, N]. No gradients.
  torch::Tensor probabilities(const std::vector<torch::Tensor>& features);
  // The most probable node per request (ties: the lowest index). No gradients.
  std::vector<int64_t> choose(const std::vector<torch::Tensor>& features);

  int64_t nodes() const { return static_cast<int64_t>(options_.feature_widths.size()); }
  const GraphSelectorOptions& options() const { return options_; }
  // FLOPs of one decision (a multiply-add is 2): the per-node projections, every graph-attention
  // step (projections and attention as in DESIGN.md's convention) and the scores. Norms, softmax
  // and the pooling of agent states are elementwise and not counted, as in seq2seq_call_cost.
  double flops_per_decision() const;
  int64_t parameter_count() const;

 private:
  GraphSelectorOptions options_;
  std::vector<torch::nn::Linear> projections_;
  torch::nn::Embedding node_embedding_{nullptr};
  GraphAttention graph_{nullptr};
  torch::nn::Linear score_{nullptr};
};
TORCH_MODULE(GraphSelector);

struct GraphSelectorTrainingOptions {
  int64_t steps = 300;
  int64_t batch_size = 64;      // requests drawn (with replacement) per step
  double learning_rate = 3e-3;  // Adam
  uint64_t seed = 0;            // the draws
};
// Checks every field (positive steps, batch and rate).
void check_graph_selector_training_options(const GraphSelectorTrainingOptions& options);

struct GraphSelectorTrainingLog {
  std::vector<double> losses;  // per step, the batch's mean loss
  int64_t requests = 0;        // requests given
  int64_t trainable = 0;       // requests with at least one correct node: the ones trained on
};

// Trains `selector` to put its probability on correct nodes: loss = mean over the batch of
// -log sum_{correct nodes i} p(i). features: per node [R, F_i]; correct: bool [R, N]. Requests
// where no node is correct carry no signal (every choice is wrong) and are skipped: batches are
// drawn from the others only. Gradients are on inside, whatever the caller's grad mode.
// Deterministic on the CPU for a seed, an initial selector and a thread count. Errors
// (chorus::Error): a number of nodes other than the selector's, a node's features of the wrong
// shape, requests that differ between nodes or from `correct`, no request with a correct node.
GraphSelectorTrainingLog train_graph_selector(GraphSelector& selector,
                                              const std::vector<torch::Tensor>& features,
                                              const torch::Tensor& correct,
                                              const GraphSelectorTrainingOptions& options);

// A selector over `agents` (one node each, in order; widths from node_feature_width) and the graph
// `graph`, trained on `features` and `correct` as train_graph_selector trains, then asked on the
// same requests.
struct GraphSelectorFit {
  GraphSelector selector{nullptr};
  GraphSelectorTrainingLog log;
  std::vector<int64_t> chosen;   // per request, the node the trained selector keeps
  int64_t chosen_right = 0;      // requests whose kept node is correct
  double training_accuracy = 0;  // chosen_right / log.trainable
  double seconds = 0;            // wall time of the training
};
GraphSelectorFit fit_graph_selector(const std::vector<Agent>& agents,
                                    const GraphAttentionSpec& graph,
                                    const std::vector<torch::Tensor>& features,
                                    const torch::Tensor& correct,
                                    const GraphSelectorTrainingOptions& options);

// --- The mechanism -------------------------------------------------------------------------------

struct GraphSelectionOutcome {
  std::string answer;
  int64_t chosen = 0;                 // the node (agent) whose answer is kept
  std::vector<double> probabilities;  // p(node), in the agents' order
  std::vector<Response> answers;      // every node's answer, in the agents' order
};

// Every agent answers (ask_nodes), the selector picks one answer per input. Transcript: the answers
// on channel "graph_select" (round 0, broadcast), then per input a decision from "graph_select"
// whose content is the kept answer, with metadata {example, chosen, p_chosen, probabilities:
// {agent: p}}.
class GraphSelection {
 public:
  // The agents are the selector's nodes in order; each agent's node_feature_width must be the
  // selector's width for that node.
  GraphSelection(std::vector<Agent> agents, GraphSelector selector,
                 model::GenerationOptions options = greedy_generation());
  std::vector<GraphSelectionOutcome> run(const std::vector<std::string>& inputs,
                                         Transcript* transcript = nullptr);
  // Each agent reads inputs of its own: inputs[node][example] (see ask_nodes).
  std::vector<GraphSelectionOutcome> run(const std::vector<std::vector<std::string>>& inputs,
                                         Transcript* transcript = nullptr);

 private:
  std::vector<Agent> agents_;
  GraphSelector selector_;
  model::GenerationOptions options_;
};

}  // namespace chorus::collab
