// Graph attention over agents through the chorus::attention op's group visibility mask.
#include "collab/graph_attention.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "kernels/torch/attention_op.h"

namespace chorus::collab {

GraphAttentionImpl::GraphAttentionImpl(GraphAttentionOptions options, torch::Tensor adjacency)
    : options_(options) {
  CHORUS_CHECK(adjacency.defined() && adjacency.dim() == 2 &&
                   adjacency.size(0) == adjacency.size(1) && adjacency.size(0) > 0,
               "graph attention: adjacency must be a square [N, N] matrix with N >= 1, got ",
               adjacency.defined() ? adjacency.sizes() : torch::IntArrayRef{});
  CHORUS_CHECK(
      adjacency.scalar_type() == torch::kBool || !at::isFloatingType(adjacency.scalar_type()),
      "graph attention: adjacency must be bool or integer 0/1, got ", adjacency.scalar_type());
  if (adjacency.scalar_type() != torch::kBool) {
    CHORUS_CHECK(((adjacency == 0) | (adjacency == 1)).all().item<bool>(),
                 "graph attention: adjacency entries must be 0 or 1");
  }
  CHORUS_CHECK(options_.dim > 0, "graph attention: dim must be positive, got ", options_.dim);
  CHORUS_CHECK(options_.heads > 0, "graph attention: heads must be positive, got ", options_.heads);
  CHORUS_CHECK(options_.steps > 0, "graph attention: steps must be positive, got ", options_.steps);
  if (options_.head_dim == 0) {
    CHORUS_CHECK(options_.dim % options_.heads == 0, "graph attention: dim ", options_.dim,
                 " is not divisible by heads ", options_.heads, "; give head_dim");
    options_.head_dim = options_.dim / options_.heads;
  }
  CHORUS_CHECK(options_.head_dim > 0, "graph attention: head_dim must be positive, got ",
               options_.head_dim);
  adjacency_ = adjacency.to(torch::kCPU, torch::kBool).contiguous();
  node_ids_ = torch::arange(adjacency_.size(0), torch::kInt64);
  reads_anyone_ = adjacency_.any(1).view({1, -1, 1});

  const int64_t inner = options_.heads * options_.head_dim;
  for (int64_t k = 0; k < options_.steps; ++k) {
    const auto suffix = std::to_string(k);
    queries_.push_back(register_module("query" + suffix, torch::nn::Linear(options_.dim, inner)));
    keys_.push_back(register_module("key" + suffix, torch::nn::Linear(options_.dim, inner)));
    values_.push_back(register_module("value" + suffix, torch::nn::Linear(options_.dim, inner)));
    outputs_.push_back(register_module("output" + suffix, torch::nn::Linear(inner, options_.dim)));
    norms_.push_back(register_module(
        "norm" + suffix, torch::nn::LayerNorm(torch::nn::LayerNormOptions({options_.dim}))));
  }
  // Initial weights from the module's own seed (uniform +-1/sqrt(fan_in), as torch::nn::Linear).
  torch::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
  for (auto* layers : {&queries_, &keys_, &values_, &outputs_}) {
    for (auto& layer : *layers) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(layer->weight.size(1)));
      layer->weight.uniform_(-bound, bound, generator);
      layer->bias.uniform_(-bound, bound, generator);
    }
  }
}

torch::Tensor GraphAttentionImpl::step(int64_t k, const torch::Tensor& nodes) {
  CHORUS_CHECK(k >= 0 && k < options_.steps, "graph attention: step ", k, " out of range [0, ",
               options_.steps, ")");
  const int64_t b = nodes.size(0), n = nodes.size(1);
  auto heads = [&](const torch::Tensor& x) {  // [B, N, H*D] -> [B, H, N, D]
    return x.view({b, n, options_.heads, options_.head_dim}).transpose(1, 2);
  };
  AttentionOptions attention_options;
  attention_options.query_groups = node_ids_.to(nodes.device());
  attention_options.key_groups = attention_options.query_groups;
  attention_options.group_visibility = adjacency_.to(nodes.device());
  const auto k_ = static_cast<size_t>(k);
  const auto message = attention(heads(queries_[k_](nodes)), heads(keys_[k_](nodes)),
                                 heads(values_[k_](nodes)), attention_options);
  const auto merged = message.transpose(1, 2).reshape({b, n, options_.heads * options_.head_dim});
  // A node that reads nobody gets no message at all (not the output projection's bias).
  return norms_[k_](nodes +
                    outputs_[k_](merged) * reads_anyone_.to(nodes.device(), nodes.scalar_type()));
}

torch::Tensor GraphAttentionImpl::forward(const torch::Tensor& nodes) {
  CHORUS_CHECK(
      nodes.dim() == 3 && nodes.size(1) == adjacency_.size(0) && nodes.size(2) == options_.dim,
      "graph attention: nodes must be [B, ", adjacency_.size(0), ", ", options_.dim, "], got ",
      nodes.sizes());
  auto h = nodes;
  for (int64_t k = 0; k < options_.steps; ++k) h = step(k, h);
  return h;
}

torch::Tensor pool_agent_states(const torch::Tensor& states, const torch::Tensor& mask) {
  CHORUS_CHECK(states.dim() == 3, "pool_agent_states: states must be [B, S, d], got ",
               states.sizes());
  if (!mask.defined()) return states.mean(1);
  CHORUS_CHECK(mask.dim() == 2 && mask.size(0) == states.size(0) && mask.size(1) == states.size(1),
               "pool_agent_states: mask must be [", states.size(0), ", ", states.size(1), "], got ",
               mask.sizes());
  const auto weights = mask.to(states.scalar_type()).unsqueeze(-1);
  return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0);
}

namespace {

std::string node_list(const std::vector<std::string>& nodes) {
  std::string known;
  for (const auto& n : nodes) known += (known.empty() ? "" : ", ") + n;
  return known;
}

// The index of the node named by the string at `key` of `view`.
int64_t node_at(const ConfigView& view, const std::string& key, const std::vector<std::string>& nodes) {
  const std::string name = view.get<std::string>(key);
  const auto it = std::find(nodes.begin(), nodes.end(), name);
  if (it == nodes.end()) throw view.error(key, "unknown node '" + name + "' (nodes: " + node_list(nodes) + ")");
  return static_cast<int64_t>(it - nodes.begin());
}

// adjacency: [[1, 0], [1, 1]], row i what node i reads.
torch::Tensor adjacency_from_matrix(const ConfigView& graph, int64_t n) {
  const size_t rows = graph.list_size("adjacency");
  if (static_cast<int64_t>(rows) != n) {
    throw graph.error("adjacency", detail::concat("expected ", n, " rows (one per node), got ", rows));
  }
  auto adjacency = torch::zeros({n, n}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) {
    const std::string row = detail::concat("adjacency[", i, "]");
    const std::string expected = detail::concat("expected a row of ", n, " entries 0 or 1");
    if (graph.kind_of(row) != ConfigValueKind::list || static_cast<int64_t>(graph.list_size(row)) != n) {
      throw graph.error(row, expected + ", got " + graph.describe(row));
    }
    for (int64_t j = 0; j < n; ++j) {
      const std::string entry = detail::concat(row, "[", j, "]");
      const std::string text = graph.kind_of(entry) == ConfigValueKind::scalar ? graph.get<std::string>(entry) : "";
      if (text != "0" && text != "1" && text != "true" && text != "false") {
        throw graph.error(entry, "expected 0 or 1, got " + graph.describe(entry));
      }
      adjacency.index_put_({i, j}, text == "1" || text == "true");
    }
  }
  return adjacency;
}

// adjacency: {a: [a, b], b: [b]}, what each node reads.
torch::Tensor adjacency_from_lists(const ConfigView& graph, const std::vector<std::string>& nodes) {
  const auto reads = graph.child("adjacency");
  const auto n = static_cast<int64_t>(nodes.size());
  auto adjacency = torch::zeros({n, n}, torch::kBool);
  for (const auto& reader : reads.keys()) {
    const auto it = std::find(nodes.begin(), nodes.end(), reader);
    if (it == nodes.end()) {
      throw reads.error(reader, "unknown node '" + reader + "' (nodes: " + node_list(nodes) + ")");
    }
    const auto i = static_cast<int64_t>(it - nodes.begin());
    if (reads.kind_of(reader) != ConfigValueKind::list) {
      throw reads.error(reader, "expected a list of node names, got " + reads.describe(reader));
    }
    const size_t seen = reads.list_size(reader);
    for (size_t k = 0; k < seen; ++k) {
      const std::string item = detail::concat(reader, "[", k, "]");
      const auto j = node_at(reads, item, nodes);
      if (adjacency[i][j].item<bool>()) throw reads.error(item, "'" + nodes[static_cast<size_t>(j)] + "' listed twice");
      adjacency.index_put_({i, j}, true);
    }
  }
  return adjacency;
}

}  // namespace

GraphAttentionSpec graph_attention_from_config(const ConfigView& graph, const std::vector<std::string>& nodes,
                                               bool complete_by_default) {
  CHORUS_CHECK(!nodes.empty(), graph.origin("adjacency"), ": ", graph.path(), ": a graph needs at least one node");
  CHORUS_CHECK(std::set<std::string>(nodes.begin(), nodes.end()).size() == nodes.size(), graph.origin("adjacency"),
               ": ", graph.path(), ": node names must be unique (nodes: ", node_list(nodes), ")");
  graph.check_keys({"adjacency", "dim", "head_dim", "heads", "seed", "steps"});
  GraphAttentionSpec out;
  auto& o = out.options;
  o.dim = graph.get_int("dim", std::nullopt, 1);
  o.heads = graph.get_int("heads", 1, 1);
  o.head_dim = graph.get_int("head_dim", 0, 0);
  o.steps = graph.get_int("steps", 1, 1);
  o.seed = static_cast<uint64_t>(graph.get_int("seed", 0, 0));
  if (o.head_dim == 0 && o.dim % o.heads != 0) {
    throw graph.error(graph.has("heads") ? "heads" : "dim",
                      detail::concat("dim ", o.dim, " is not divisible by heads ", o.heads, "; give head_dim"));
  }
  switch (graph.kind_of("adjacency")) {
    case ConfigValueKind::list:
      out.adjacency = adjacency_from_matrix(graph, static_cast<int64_t>(nodes.size()));
      break;
    case ConfigValueKind::map:
      out.adjacency = adjacency_from_lists(graph, nodes);
      break;
    case ConfigValueKind::absent:
      if (complete_by_default) {
        const auto n = static_cast<int64_t>(nodes.size());
        out.adjacency = torch::ones({n, n}, torch::kBool);
        break;
      }
      throw Error(graph.origin("adjacency") + ": missing required key '" + graph.key_path("adjacency") +
                  "' (an N x N matrix of 0/1, or a map from a node to the nodes it reads)");
    case ConfigValueKind::scalar:
      throw graph.error("adjacency", "expected an N x N matrix of 0/1 or a map from a node to the nodes it reads, got " +
                                         graph.describe("adjacency"));
  }
  return out;
}

}  // namespace chorus::collab
