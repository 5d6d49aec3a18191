// Graph attention over agents: the adjacency decides who hears whom (through the attention op's
// group mask), one step matches a hand-written reference, messages travel one hop per step, and bad
// adjacencies are errors.
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "collab/graph_attention.h"
#include "common/config.h"
#include "common/error.h"

namespace chorus::collab {
namespace {

using ::testing::HasSubstr;

// Node 0 reads itself and node 2; node 1 reads everyone; node 2 reads itself only.
torch::Tensor hiding_one_from_zero() {
  return torch::tensor({{1, 0, 1}, {1, 1, 1}, {0, 0, 1}}, torch::kInt64).to(torch::kBool);
}

GraphAttention make(torch::Tensor adjacency, int64_t steps = 1, int64_t heads = 2) {
  GraphAttentionOptions o;
  o.dim = 8;
  o.heads = heads;
  o.steps = steps;
  o.seed = 5;
  return GraphAttention(o, std::move(adjacency));
}

torch::Tensor random_nodes(int64_t batch = 2, int64_t n = 3) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(42);
  return torch::randn({batch, n, 8}, generator, torch::TensorOptions().dtype(torch::kFloat32));
}

TEST(GraphAttention, AHiddenNodeDoesNotReachItsReader) {
  auto graph = make(hiding_one_from_zero());
  const auto nodes = random_nodes();
  auto changed = nodes.clone();
  changed.select(1, 1).add_(3.0);  // node 1's state changes
  const auto before = graph->forward(nodes), after = graph->forward(changed);
  EXPECT_TRUE(
      torch::equal(before.select(1, 0), after.select(1, 0)));  // node 0 does not read node 1
  EXPECT_TRUE(torch::equal(before.select(1, 2), after.select(1, 2)));
  EXPECT_FALSE(torch::allclose(before.select(1, 1), after.select(1, 1)));
}

TEST(GraphAttention, MessagesTravelOneHopPerStep) {
  // A chain: 0 reads 1, 1 reads 2 (and each reads itself). A change at node 2 reaches node 1 after
  // one step and node 0 only after two.
  const auto chain =
      torch::tensor({{1, 1, 0}, {0, 1, 1}, {0, 0, 1}}, torch::kInt64).to(torch::kBool);
  const auto nodes = random_nodes();
  auto changed = nodes.clone();
  changed.select(1, 2).add_(3.0);
  auto one = make(chain, 1), two = make(chain, 2);
  EXPECT_TRUE(torch::equal(one->forward(nodes).select(1, 0), one->forward(changed).select(1, 0)));
  EXPECT_FALSE(
      torch::allclose(one->forward(nodes).select(1, 1), one->forward(changed).select(1, 1)));
  EXPECT_FALSE(
      torch::allclose(two->forward(nodes).select(1, 0), two->forward(changed).select(1, 0)));
}

// One step written out with plain tensor operations.
torch::Tensor reference_step(GraphAttention& graph, const torch::Tensor& x,
                             const torch::Tensor& adjacency) {
  std::map<std::string, torch::Tensor> p;
  for (const auto& item : graph->named_parameters()) p[item.key()] = item.value();
  auto linear = [&](const std::string& name, const torch::Tensor& in) {
    return torch::matmul(in, p[name + ".weight"].t()) + p[name + ".bias"];
  };
  const int64_t b = x.size(0), n = x.size(1), h = 2, d = 4;
  auto split = [&](const torch::Tensor& t) { return t.view({b, n, h, d}).permute({0, 2, 1, 3}); };
  const auto q = split(linear("query0", x)), k = split(linear("key0", x)),
             v = split(linear("value0", x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
  scores = scores.masked_fill(adjacency.logical_not().view({1, 1, n, n}), -INFINITY);
  const auto message =
      torch::matmul(torch::softmax(scores, -1), v).permute({0, 2, 1, 3}).reshape({b, n, h * d});
  const auto y = x + linear("output0", message);
  const auto mean = y.mean(-1, true), var = y.var(-1, /*unbiased=*/false, true);
  return (y - mean) / torch::sqrt(var + 1e-5) * p["norm0.weight"] + p["norm0.bias"];
}

TEST(GraphAttention, OneStepMatchesAHandWrittenReference) {
  const auto adjacency = hiding_one_from_zero();
  auto graph = make(adjacency);
  const auto x = random_nodes();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(graph->forward(x), reference_step(graph, x, adjacency), 1e-5, 1e-5));
}

TEST(GraphAttention, ANodeThatReadsNobodyKeepsItsNormalisedState) {
  const auto adjacency =
      torch::tensor({{0, 0}, {1, 1}}, torch::kInt64).to(torch::kBool);  // node 0 reads nobody
  GraphAttentionOptions o;
  o.dim = 8;
  GraphAttention graph(o, adjacency);
  const auto x = random_nodes(2, 2);
  const auto y = graph->forward(x);
  EXPECT_FALSE(torch::isnan(y).any().item<bool>());
  const auto node0 = x.select(1, 0);
  const auto expected =
      (node0 - node0.mean(-1, true)) / torch::sqrt(node0.var(-1, false, true) + 1e-5);
  EXPECT_TRUE(torch::allclose(y.select(1, 0), expected, 1e-5,
                              1e-5));  // LayerNorm starts at weight 1, bias 0
}

TEST(GraphAttention, TrainsThroughTheOp) {
  auto graph = make(hiding_one_from_zero(), 2);
  const auto x = random_nodes().requires_grad_();
  graph->forward(x).pow(2).sum().backward();
  for (const auto& p : graph->parameters()) ASSERT_TRUE(p.grad().defined());
  // Node 0's output never depends on node 1 in one step: no gradient flows there from node 0 alone.
  auto one = make(hiding_one_from_zero(), 1);
  const auto y = random_nodes().requires_grad_();
  one->forward(y).select(1, 0).sum().backward();
  EXPECT_TRUE(torch::equal(y.grad().select(1, 1), torch::zeros({2, 8})));
}

TEST(GraphAttention, PoolsAgentStatesOverRealPositions) {
  const auto states = torch::arange(12, torch::kFloat32).view({2, 3, 2});
  const auto mask = torch::tensor({{1, 1, 0}, {0, 0, 0}}, torch::kInt64);
  const auto pooled = pool_agent_states(states, mask);
  EXPECT_TRUE(torch::allclose(pooled, torch::tensor({{1.0f, 2.0f}, {0.0f, 0.0f}})));
  EXPECT_TRUE(torch::allclose(pool_agent_states(states), states.mean(1)));
}

// The graph block of a config, read with `nodes` {kv, math, judge} (or {a, b}).
GraphAttentionSpec graph_of(const std::string& yaml,
                            const std::vector<std::string>& nodes = {"kv", "math", "judge"}) {
  return graph_attention_from_config(Config::parse(yaml, "exp.yaml").root().child("graph"), nodes);
}

TEST(GraphAttention, AdjacencyFromConfigForms) {
  const Config config = Config::parse(
      "graph:\n  dim: 8\n  steps: 2\n  adjacency: {kv: [kv, judge], math: [kv, math, judge], judge: [judge]}\n",
      "exp.yaml");
  const auto lists = graph_attention_from_config(config.root().child("graph"), {"kv", "math", "judge"});
  EXPECT_NO_THROW(config.check_all_keys_used());
  EXPECT_TRUE(torch::equal(lists.adjacency, hiding_one_from_zero()));
  EXPECT_EQ(lists.options.steps, 2);
  EXPECT_EQ(lists.options.heads, 1);
  const auto matrix = graph_of("graph: {dim: 8, heads: 2, seed: 5, adjacency: [[1, 0, 1], [1, 1, 1], [0, 0, 1]]}");
  EXPECT_TRUE(torch::equal(matrix.adjacency, hiding_one_from_zero()));
  EXPECT_EQ(matrix.options.heads, 2);
  EXPECT_EQ(matrix.options.seed, 5u);
  const auto booleans = graph_of("graph: {dim: 8, adjacency: [[true, false, true], [1, 1, 1], [0, 0, true]]}");
  EXPECT_TRUE(torch::equal(booleans.adjacency, hiding_one_from_zero()));
}

TEST(GraphAttentionErrors, BadAdjacenciesAreNamed) {
  GraphAttentionOptions o;
  o.dim = 8;
  EXPECT_THAT(
      [&] {
        GraphAttention g(o, torch::ones({2, 3}, torch::kBool));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("square [N, N]")));
  EXPECT_THAT(
      [&] {
        GraphAttention g(o, torch::full({2, 2}, 2, torch::kInt64));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("0 or 1")));
  EXPECT_THAT(
      [&] {
        GraphAttention g(o, torch::full({2, 2}, 0.5));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("bool or integer")));
  auto graph = make(hiding_one_from_zero());
  EXPECT_THAT(
      [&] {
        graph->forward(torch::zeros({1, 2, 8}));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("nodes must be [B, 3, 8]")));
  // From a config, every error at its key's line.
  const std::vector<std::string> nodes = {"a", "b"};
  const auto error_of = [&](const std::string& yaml) {
    try {
      graph_of(yaml, nodes);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("graph: {dim: 8, adjacency: [[1, 0]]}"), "exp.yaml:1: graph.adjacency: expected 2 rows (one per node), got 1");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency:\n    - [1, 0]\n    - [1]\n"),
            "exp.yaml:5: graph.adjacency[1]: expected a row of 2 entries 0 or 1, got a list");
  EXPECT_EQ(error_of("graph: {dim: 8, adjacency: [[1, 0], [2, 1]]}"),
            "exp.yaml:1: graph.adjacency[1][0]: expected 0 or 1, got '2'");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency:\n    a: [c]\n"),
            "exp.yaml:4: graph.adjacency.a[0]: unknown node 'c' (nodes: a, b)");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency:\n    c: [a]\n"),
            "exp.yaml:4: graph.adjacency.c: unknown node 'c' (nodes: a, b)");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency: {a: [a, b, a]}\n"),
            "exp.yaml:3: graph.adjacency.a[2]: 'a' listed twice");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency: {a: b}\n"),
            "exp.yaml:3: graph.adjacency.a: expected a list of node names, got 'b'");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  adjacency: {}\n  hops: 2\n"),
            "exp.yaml:4: graph.hops: unknown key (expected one of adjacency, dim, head_dim, heads, seed, steps)");
  EXPECT_EQ(error_of("graph:\n  dim: 8\n  stesp: 2\n  adjacency: {}\n"),
            "exp.yaml:3: graph.stesp: unknown key (expected one of adjacency, dim, head_dim, heads, seed, steps; did "
            "you mean 'steps'?)");
  EXPECT_EQ(error_of("graph: {adjacency: {}}\n"), "exp.yaml:1: missing required key 'graph.dim' (an integer >= 1)");
  EXPECT_EQ(error_of("graph: {dim: 8}\n"),
            "exp.yaml:1: missing required key 'graph.adjacency' (an N x N matrix of 0/1, or a map from a node to the "
            "nodes it reads)");
  EXPECT_EQ(error_of("graph: {dim: 8, heads: 0, adjacency: {}}\n"),
            "exp.yaml:1: graph.heads: expected an integer >= 1, got '0'");
  EXPECT_EQ(error_of("graph: {dim: 9, heads: 2, adjacency: {}}\n"),
            "exp.yaml:1: graph.heads: dim 9 is not divisible by heads 2; give head_dim");
  EXPECT_EQ(graph_of("graph: {dim: 9, heads: 2, head_dim: 4, adjacency: {}}\n", nodes).options.head_dim, 4);
  EXPECT_EQ(error_of("graph: {dim: 8, adjacency: 1}\n"),
            "exp.yaml:1: graph.adjacency: expected an N x N matrix of 0/1 or a map from a node to the nodes it reads, "
            "got '1'");
}

}  // namespace
}  // namespace chorus::collab
