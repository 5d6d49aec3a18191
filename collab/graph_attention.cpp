// Graph attention over agents through the chorus::attention op's group visibility mask.
#include "collab/graph_attention.h"

#include <ATen/CPUGeneratorImpl.h>

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

int64_t node_index(const std::vector<std::string>& nodes, const std::string& name,
                   const std::string& where) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] == name) return static_cast<int64_t>(i);
  }
  std::string known;
  for (const auto& n : nodes) known += (known.empty() ? "" : ", ") + n;
  throw Error(where + ": unknown node '" + name + "' (nodes: " + known + ")");
}

torch::Tensor adjacency_from_matrix(const nlohmann::json& rows, int64_t n,
                                    const std::string& where) {
  CHORUS_CHECK(static_cast<int64_t>(rows.size()) == n, where, ": expected ", n,
               " rows (one per node), got ", rows.size());
  auto adjacency = torch::zeros({n, n}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) {
    const auto& row = rows[static_cast<size_t>(i)];
    CHORUS_CHECK(row.is_array() && static_cast<int64_t>(row.size()) == n, where, "[", i,
                 "]: expected a row of ", n, " entries 0 or 1, got ", row.dump());
    for (int64_t j = 0; j < n; ++j) {
      const auto& entry = row[static_cast<size_t>(j)];
      CHORUS_CHECK((entry.is_number_integer() && (entry == 0 || entry == 1)) || entry.is_boolean(),
                   where, "[", i, "][", j, "]: expected 0 or 1, got ", entry.dump());
      adjacency.index_put_({i, j}, entry.is_boolean() ? entry.get<bool>() : entry.get<int>() == 1);
    }
  }
  return adjacency;
}

}  // namespace

torch::Tensor adjacency_from_lists(const std::vector<std::string>& nodes,
                                   const nlohmann::json& reads, const std::string& where) {
  CHORUS_CHECK(!nodes.empty(), where, ": a graph needs at least one node");
  CHORUS_CHECK(std::set<std::string>(nodes.begin(), nodes.end()).size() == nodes.size(), where,
               ": node names must be unique");
  CHORUS_CHECK(reads.is_object(), where, ": expected a map from node to the nodes it reads, got ",
               reads.dump());
  const auto n = static_cast<int64_t>(nodes.size());
  auto adjacency = torch::zeros({n, n}, torch::kBool);
  for (const auto& [reader, seen] : reads.items()) {
    const auto i = node_index(nodes, reader, where);
    CHORUS_CHECK(seen.is_array(), where, ".", reader, ": expected a list of node names, got ",
                 seen.dump());
    for (const auto& name : seen) {
      CHORUS_CHECK(name.is_string(), where, ".", reader, ": expected node names, got ",
                   name.dump());
      const auto j = node_index(nodes, name.get<std::string>(), where + "." + reader);
      CHORUS_CHECK(!adjacency[i][j].item<bool>(), where, ".", reader, ": '",
                   name.get<std::string>(), "' listed twice");
      adjacency.index_put_({i, j}, true);
    }
  }
  return adjacency;
}

GraphAttentionSpec graph_attention_from_json(const nlohmann::json& spec,
                                             const std::vector<std::string>& nodes,
                                             const std::string& where) {
  CHORUS_CHECK(spec.is_object(), where, ": expected a map, got ", spec.dump());
  static const std::set<std::string> known = {"dim",   "heads", "head_dim",
                                              "steps", "seed",  "adjacency"};
  for (const auto& [key, value] : spec.items()) {
    CHORUS_CHECK(known.count(key) == 1, where, ": unknown key '", key,
                 "' (expected dim, heads, head_dim, steps, seed, adjacency)");
  }
  CHORUS_CHECK(spec.contains("dim") && spec.contains("adjacency"), where,
               ": dim and adjacency are required");
  GraphAttentionSpec out;
  out.options.dim = spec.at("dim").get<int64_t>();
  out.options.heads = spec.value("heads", int64_t{1});
  out.options.head_dim = spec.value("head_dim", int64_t{0});
  out.options.steps = spec.value("steps", int64_t{1});
  out.options.seed = spec.value("seed", uint64_t{0});
  const auto& adjacency = spec.at("adjacency");
  out.adjacency = adjacency.is_array()
                      ? adjacency_from_matrix(adjacency, static_cast<int64_t>(nodes.size()),
                                              where + ".adjacency")
                      : adjacency_from_lists(nodes, adjacency, where + ".adjacency");
  return out;
}

}  // namespace chorus::collab
