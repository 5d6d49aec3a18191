// The cross-agent fusion head: zero-initialised gate, masks, null slot, group visibility, bridge values.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "collab/cross_agent_fusion.h"
#include "common/error.h"
#include "kernels/torch/attention_op.h"

namespace chorus::collab {
namespace {

FusionOptions options(ValueSource source, int64_t heads = 2) {
  FusionOptions o;
  o.anchor_width = 8;
  o.augmenting_widths = {6, 10};
  o.value_source = source;
  o.heads = heads;
  o.head_dim = 4;
  o.position_bias = 3;
  return o;
}

std::vector<AugmentingStates> others(int64_t batch, int64_t vocab) {
  std::vector<AugmentingStates> out(2);
  out[0].key_states = torch::randn({batch, 5, 6});
  out[0].logits = torch::randn({batch, 5, vocab});
  out[0].mask = torch::tensor({{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}}, torch::kInt64);
  out[1].key_states = torch::randn({batch, 4, 10});
  out[1].logits = torch::randn({batch, 4, vocab});
  return out;
}

TEST(CrossAgentFusion, StartsAsTheIdentityAndLearnsThroughTheGate) {
  torch::manual_seed(0);
  for (auto source : {ValueSource::bridge, ValueSource::hidden}) {
    CrossAgentFusion head(options(source));
    const auto states = torch::randn({2, 3, 8});
    const auto embedding = torch::randn({11, 8});
    const auto out = head->forward(states, states, others(2, 11), embedding);
    EXPECT_TRUE(torch::equal(out, states)) << to_string(source);
    out.pow(2).sum().backward();
    const auto params = head->named_parameters();
    // The gate is zero, so only the gate's own parameters receive gradient at the start.
    EXPECT_GT(params["gate_weight"].grad().abs().sum().item<double>(), 0.0);
    EXPECT_GT(params["gate_bias"].grad().abs().sum().item<double>(), 0.0);
    EXPECT_EQ(params["query.weight"].grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(CrossAgentFusion, EveryParameterGetsGradientOnceTheGateIsOpen) {
  torch::manual_seed(1);
  CrossAgentFusion head(options(ValueSource::hidden));
  {
    torch::NoGradGuard no_grad;
    head->named_parameters()["gate_bias"].fill_(0.5);
  }
  const auto states = torch::randn({2, 3, 8});
  head->forward(states, states, others(2, 11)).pow(2).sum().backward();
  for (const auto& p : head->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

// Task conditioning starts as the unconditioned head; once trained, a task's embedding and gate
// bias act on its own rows only, and each task's parameters learn only from rows of that task.
TEST(CrossAgentFusion, TaskConditioningActsPerRow) {
  torch::manual_seed(2);
  auto o = options(ValueSource::hidden);
  o.tasks = 3;
  CrossAgentFusion head(o);
  CrossAgentFusion plain(options(ValueSource::hidden));
  EXPECT_EQ(head->parameter_count(), plain->parameter_count() + 3 * (8 + 1));
  {
    torch::NoGradGuard no_grad;
    head->named_parameters()["gate_bias"].fill_(0.5);
  }
  const auto states = torch::randn({2, 3, 8});
  const auto agents = others(2, 11);
  const auto tasks = torch::tensor({2, 0}, torch::kInt64);
  const auto unconditioned = head->forward(states, states, agents);
  const auto at_start = head->forward(states, states, agents, {}, {}, nullptr, tasks);
  EXPECT_TRUE(torch::equal(at_start, unconditioned));  // zero-initialised: the same head

  {
    torch::NoGradGuard no_grad;
    head->named_parameters()["task_gate"][2].fill_(0.7);
    head->named_parameters()["task_query"][2].fill_(0.3);
  }
  const auto conditioned = head->forward(states, states, agents, {}, {}, nullptr, tasks);
  EXPECT_FALSE(torch::allclose(conditioned[0], unconditioned[0]));  // task 2 changed
  EXPECT_TRUE(torch::equal(conditioned[1], unconditioned[1]));      // task 0 did not

  conditioned.pow(2).sum().backward();
  const auto params = head->named_parameters();
  const auto query_grad = params["task_query"].grad(), gate_grad = params["task_gate"].grad();
  EXPECT_GT(query_grad[2].abs().sum().item<double>(), 0.0);
  EXPECT_GT(query_grad[0].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(query_grad[1].abs().sum().item<double>(), 0.0);  // no row of task 1
  EXPECT_GT(gate_grad[2].abs().item<double>(), 0.0);
  EXPECT_EQ(gate_grad[1].item<double>(), 0.0);

  // Ids outside the head's tasks, a wrong shape, or ids given to an unconditioned head.
  EXPECT_THROW(head->forward(states, states, agents, {}, {}, nullptr, torch::tensor({3, 0}, torch::kInt64)), Error);
  EXPECT_THROW(head->forward(states, states, agents, {}, {}, nullptr, torch::tensor({1}, torch::kInt64)), Error);
  EXPECT_THROW(plain->forward(states, states, agents, {}, {}, nullptr, tasks), Error);
}

TEST(CrossAgentFusion, MessageMatchesAHandWrittenAttention) {
  torch::manual_seed(2);
  auto o = options(ValueSource::bridge, 1);
  o.augmenting_widths = {6};
  o.null_slot = false;
  o.position_bias = 0;
  CrossAgentFusion head(o);
  const auto query_states = torch::randn({2, 3, 8});
  AugmentingStates s;
  s.key_states = torch::randn({2, 5, 6});
  s.logits = torch::randn({2, 5, 11});
  s.mask = torch::tensor({{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}}, torch::kInt64);
  const auto embedding = torch::randn({11, 8});
  const auto message = head->message(query_states, {s}, embedding, {}, nullptr);
  // Reference: softmax(q k^T / sqrt(d) + mask) (softmax(logits) E).
  auto params = head->named_parameters();
  auto ln = [](const torch::Tensor& x) { return torch::layer_norm(x, {x.size(-1)}); };
  const auto q = torch::matmul(ln(query_states), params["query.weight"].t());
  const auto k = torch::matmul(ln(s.key_states), params["key_0.weight"].t());
  auto scores = torch::matmul(q, k.transpose(1, 2)) / 2.0;
  scores = scores.masked_fill(s.mask.unsqueeze(1) == 0, -1e30);
  const auto values = torch::matmul(torch::softmax(s.logits, -1), embedding);
  const auto expected = torch::matmul(torch::softmax(scores, -1), values);
  EXPECT_TRUE(torch::allclose(message, expected, 1e-5, 1e-5)) << (message - expected).abs().max();
}

TEST(CrossAgentFusion, HiddenAgentsAndTheNullSlot) {
  torch::manual_seed(3);
  CrossAgentFusion head(options(ValueSource::hidden));
  const auto states = torch::randn({2, 3, 8});
  auto all = others(2, 11);
  // With every agent masked out by the group mask, only the null slot (value 0) remains.
  const auto none = head->message(states, all, {}, {false, false}, nullptr);
  EXPECT_EQ(none.abs().max().item<double>(), 0.0);
  // Hiding agent 1 equals giving agent 1 no real position.
  const auto hidden = head->message(states, all, {}, {true, false}, nullptr);
  auto masked = all;
  masked[1].mask = torch::zeros({2, 4}, torch::kInt64);
  const auto absent = head->message(states, masked, {}, {}, nullptr);
  EXPECT_TRUE(torch::allclose(hidden, absent, 1e-6, 1e-6));
  torch::Tensor probabilities;
  head->message(states, all, {}, {}, &probabilities);
  ASSERT_TRUE(probabilities.defined());
  EXPECT_EQ(probabilities.sizes(), (at::IntArrayRef{2, 2, 3, 1 + 5 + 4}));
  EXPECT_TRUE(torch::allclose(probabilities.sum(-1), torch::ones({2, 2, 3}), 1e-5, 1e-5));
  // Padded positions get no attention.
  EXPECT_EQ(probabilities.index({0, torch::indexing::Slice(), torch::indexing::Slice(), torch::indexing::Slice(4, 6)})
                .abs().max().item<double>(), 0.0);
}

TEST(CrossAgentFusion, InterpolatingResidualReplacesTheStateAtGateOne) {
  torch::manual_seed(3);
  auto o = options(ValueSource::bridge);
  o.residual = Residual::interpolate;
  CrossAgentFusion head(o);
  const auto states = torch::randn({2, 3, 8});
  const auto embedding = torch::randn({11, 8});
  const auto in = others(2, 11);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(head->forward(states, states, in, embedding), states));  // gate 0
  head->named_parameters()["gate_bias"].fill_(1.0);
  const auto message = head->message(states, in, embedding, {}, nullptr);
  EXPECT_TRUE(torch::allclose(head->forward(states, states, in, embedding), message, 1e-5, 1e-6));
  head->named_parameters()["gate_bias"].fill_(0.25);
  EXPECT_TRUE(torch::allclose(head->forward(states, states, in, embedding), 0.75 * states + 0.25 * message, 1e-5, 1e-6));
}

TEST(CrossAgentFusion, DiagonalPriorFavoursAlignedPositionsAtTheStart) {
  torch::manual_seed(4);
  auto o = options(ValueSource::bridge, 1);
  o.augmenting_widths = {6};
  o.null_slot = false;
  o.position_bias = 4;
  o.diagonal_prior = 6.0;
  CrossAgentFusion head(o);
  std::vector<AugmentingStates> in(1);
  in[0].key_states = torch::zeros({1, 3, 6});  // equal keys: only the position bias tells them apart
  in[0].logits = torch::randn({1, 3, 11});
  torch::Tensor p;
  head->message(torch::randn({1, 3, 8}), in, torch::randn({11, 8}), {}, &p);
  for (int64_t q = 0; q < 3; ++q) {
    EXPECT_GT(p[0][0][q][q].item<double>(), 0.98) << "query " << q;  // e^6 / (e^6 + 2)
  }
  EXPECT_EQ(head->named_parameters()["position_table"].requires_grad(), true);
}

TEST(CrossAgentFusion, BadShapesAreNamed) {
  CrossAgentFusion head(options(ValueSource::bridge));
  const auto states = torch::randn({2, 3, 8});
  auto bad = others(2, 11);
  bad[1].key_states = torch::randn({2, 4, 7});
  try {
    head->forward(states, states, bad, torch::randn({11, 8}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("augmenting agent 1"), std::string::npos) << e.what();
  }
  try {
    head->forward(states, states, others(2, 11), torch::randn({12, 8}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shared vocabularies"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CrossAgentFusion(FusionOptions{}), Error);
}

}  // namespace
}  // namespace chorus::collab
