// Graph attention over agents: each agent is a node holding a pooled state; for K steps every node
// attends to the nodes its adjacency row lets it see (the attention op's group visibility mask),
// with a residual and LayerNorm after each step.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace chorus::collab {

struct GraphAttentionOptions {
  int64_t dim = 0;  // width of every node's state
  int64_t heads = 1;
  int64_t head_dim = 0;  // 0: dim / heads
  int64_t steps = 1;     // message-passing steps K, each with weights of its own
  uint64_t seed = 0;     // initial weights (from a generator of their own)
};

// Nodes are agents. adjacency: bool [N, N], node i reads node j iff adjacency[i][j]; a node reads
// itself only when its diagonal entry says so. A node that reads nobody gets no message (the
// attention op gives zeros for its fully masked row, and the output projection is skipped), so the
// step leaves it at LayerNorm(state).
class GraphAttentionImpl : public torch::nn::Module {
 public:
  GraphAttentionImpl(GraphAttentionOptions options, torch::Tensor adjacency);

  // nodes [B, N, dim] -> [B, N, dim] after `steps` steps.
  torch::Tensor forward(const torch::Tensor& nodes);
  // One step k (0-based): LayerNorm_k(h + W_o,k · attention(W_q,k h, W_k,k h, W_v,k h; adjacency)).
  torch::Tensor step(int64_t k, const torch::Tensor& nodes);

  const GraphAttentionOptions& options() const { return options_; }
  const torch::Tensor& adjacency() const { return adjacency_; }
  int64_t nodes() const { return adjacency_.size(0); }

 private:
  GraphAttentionOptions options_;
  torch::Tensor adjacency_;     // bool [N, N]
  torch::Tensor node_ids_;      // int64 [N]: node i is group i of the attention op
  torch::Tensor reads_anyone_;  // bool [1, N, 1]: whether node i's adjacency row has any entry
  std::vector<torch::nn::Linear> queries_, keys_, values_, outputs_;
  std::vector<torch::nn::LayerNorm> norms_;
};
TORCH_MODULE(GraphAttention);

// The mean of `states` [B, S, d] over the positions where mask [B, S] is 1 (undefined: all): an
// agent's pooled state, [B, d]. A row without any position pools to zeros.
torch::Tensor pool_agent_states(const torch::Tensor& states, const torch::Tensor& mask = {});

// Options and adjacency from a config map (common/config.h), e.g. a router arm's `graph` block:
//   {dim: 64, heads: 2, head_dim: 32, steps: 2, seed: 0, adjacency: A}
// dim (>= 1) and adjacency are required; heads and steps default to 1 (>= 1), head_dim to 0
// (dim / heads, which must then divide), seed to 0. A is either an N x N matrix of 0/1 or
// true/false (row i: what node i reads, `nodes` in the given order) or a map from a node to the
// list of nodes it reads ({kv: [kv, judge], judge: [judge]}; nodes absent from it read nobody).
// Every error names where the key was set (file:line or the override), its key path and what was
// expected: an unknown key, an unknown or repeated node, a matrix of the wrong shape or entries.
struct GraphAttentionSpec {
  GraphAttentionOptions options;
  torch::Tensor adjacency;
};
// With `complete_by_default`, an absent adjacency is the complete graph (every node reads every node).
GraphAttentionSpec graph_attention_from_config(const ConfigView& graph, const std::vector<std::string>& nodes,
                                               bool complete_by_default = false);

}  // namespace chorus::collab
