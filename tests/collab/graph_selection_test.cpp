// Learned answer selection by graph attention over agents: on synthetic node features whose right
// node is known, training learns it (through a message from another node) and lowers the loss; the
// same seed gives the same losses; a node hidden by the adjacency does not move its reader's score;
// node features of tiny agents match a teacher-forced reference, also when each agent reads inputs
// of its own; fitting is training then choosing; the mechanism records its decision; shapes that
// disagree are errors.
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "collab/graph_selection.h"
#include "collab/responder.h"
#include "common/error.h"
#include "model/t5/t5_init.h"
#include "model/tokenizers/word_level_tokenizer.h"

namespace chorus::collab {
namespace {

using ::testing::HasSubstr;

const std::vector<int64_t> kWidths = {6, 6, 10};  // agents may differ in width

torch::Tensor full_adjacency(int64_t n = 3) { return torch::ones({n, n}, torch::kBool); }

GraphSelector make_selector(torch::Tensor adjacency = full_adjacency(), int64_t steps = 1,
                            uint64_t seed = 0) {
  GraphSelectorOptions o;
  o.feature_widths = kWidths;
  o.graph.dim = 16;
  o.graph.heads = 2;
  o.graph.steps = steps;
  o.graph.seed = seed;
  o.adjacency = std::move(adjacency);
  return GraphSelector(o);
}

// Synthetic requests over three nodes. Node 0 is never right; the sign of node 0's first feature
// says which of nodes 1 and 2 is (positive: node 1), so a node can only tell whether it is right by
// reading node 0. One request in ten has no right node at all.
struct Synthetic {
  std::vector<torch::Tensor> features;  // per node [R, width]
  torch::Tensor correct;                // bool [R, 3]
  std::vector<int64_t> right;           // per request, the right node (-1: none)
};

Synthetic synthetic(int64_t requests, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  Synthetic s;
  for (auto width : kWidths) s.features.push_back(torch::randn({requests, width}, generator));
  const auto sign = torch::randint(2, {requests}, generator, torch::kInt64) * 2 - 1;
  const auto magnitude = 1.0 + torch::rand({requests}, generator);
  s.features[0].select(1, 0).copy_(sign.to(torch::kFloat32) * magnitude);
  const auto none = torch::rand({requests}, generator) < 0.1;
  s.correct = torch::zeros({requests, 3}, torch::kBool);
  for (int64_t r = 0; r < requests; ++r) {
    if (none[r].item<bool>()) {
      s.right.push_back(-1);
      continue;
    }
    const int64_t right = sign[r].item<int64_t>() > 0 ? 1 : 2;
    s.correct.index_put_({r, right}, true);
    s.right.push_back(right);
  }
  return s;
}

GraphSelectorTrainingOptions training(uint64_t seed = 0) {
  GraphSelectorTrainingOptions o;
  o.steps = 300;
  o.batch_size = 64;
  o.learning_rate = 1e-2;
  o.seed = seed;
  return o;
}

double mean_of(const std::vector<double>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(begin),
                         v.begin() + static_cast<std::ptrdiff_t>(end), 0.0) /
         static_cast<double>(end - begin);
}

TEST(GraphSelector, LearnsTheRightNodeThroughAMessage) {
  const auto train = synthetic(2000, 1), test = synthetic(1000, 2);
  auto selector = make_selector();
  const auto log = train_graph_selector(selector, train.features, train.correct, training());
  ASSERT_EQ(log.losses.size(), 300u);
  EXPECT_EQ(log.requests, 2000);
  EXPECT_LT(log.trainable, 2000);  // the requests without a right node are skipped
  EXPECT_GT(log.trainable, 1700);
  // Uniform over three nodes with one right: about log 3 at the start; far lower at the end.
  EXPECT_GT(mean_of(log.losses, 0, 10), 0.6);
  EXPECT_LT(mean_of(log.losses, 290, 300), 0.2);
  const auto chosen = selector->choose(test.features);
  int64_t right = 0, counted = 0;
  for (size_t r = 0; r < chosen.size(); ++r) {
    if (test.right[r] < 0) continue;
    ++counted;
    right += chosen[r] == test.right[r] ? 1 : 0;
  }
  EXPECT_GE(static_cast<double>(right) / static_cast<double>(counted), 0.95);
  // Probabilities are a distribution over the nodes.
  const auto p = selector->probabilities(test.features);
  EXPECT_TRUE(torch::allclose(p.sum(1), torch::ones({1000}), 1e-5, 1e-5));
}

TEST(GraphSelector, SameSeedSameLosses) {
  const auto data = synthetic(300, 3);
  auto options = training();
  options.steps = 40;
  auto a = make_selector(), b = make_selector();
  const auto first = train_graph_selector(a, data.features, data.correct, options);
  const auto second = train_graph_selector(b, data.features, data.correct, options);
  EXPECT_EQ(first.losses, second.losses);
  auto other_draws = options;
  other_draws.seed = 7;
  auto c = make_selector();
  EXPECT_NE(train_graph_selector(c, data.features, data.correct, other_draws).losses, first.losses);
}

TEST(GraphSelector, AHiddenNodeDoesNotMoveItsReadersScore) {
  // Nodes 0 and 1 read each other; node 2 reads everyone and nobody reads node 2, so no path leads
  // from node 2 to nodes 0 and 1 however many steps run.
  const auto adjacency =
      torch::tensor({{1, 1, 0}, {1, 1, 0}, {1, 1, 1}}, torch::kInt64).to(torch::kBool);
  for (int64_t steps : {1, 2}) {
    auto selector = make_selector(adjacency, steps);
    const auto data = synthetic(8, 4);
    auto changed = data.features;
    changed[2] = synthetic(8, 99).features[2];  // other features (a shift alone is normalised away)
    torch::NoGradGuard no_grad;
    const auto before = selector->forward(data.features), after = selector->forward(changed);
    EXPECT_TRUE(torch::equal(before.narrow(1, 0, 2), after.narrow(1, 0, 2))) << steps;
    EXPECT_FALSE(torch::allclose(before.select(1, 2), after.select(1, 2))) << steps;
    // Node 1 reads node 0: its score moves with node 0's features.
    auto moved = data.features;
    moved[0] = moved[0] * -2.0;
    EXPECT_FALSE(torch::allclose(before.select(1, 1), selector->forward(moved).select(1, 1)));
  }
}

TEST(GraphSelector, TiesGoToTheLowestIndex) {
  auto selector = make_selector();
  torch::NoGradGuard no_grad;
  for (auto& item : selector->named_parameters()) {
    if (item.key() == "score.weight") item.value().zero_();  // every node scores the same
  }
  const auto data = synthetic(5, 5);
  EXPECT_EQ(selector->choose(data.features), std::vector<int64_t>(5, 0));
}

TEST(GraphSelector, CountsItsFlops) {
  auto selector = make_selector(full_adjacency(), 2);
  // Projections 2 * (6 + 6 + 10) * 16; per step, q/k/v/o over 3 nodes (4 * 2 * 16 * 16 each) and
  // attention 4 * heads * 3 * 3 * head_dim; the scores 3 * 2 * 16.
  const double expected = 2.0 * 22 * 16 + 2 * (3 * 4 * 2.0 * 16 * 16 + 4.0 * 2 * 9 * 8) + 3 * 32.0;
  EXPECT_DOUBLE_EQ(selector->flops_per_decision(), expected);
  EXPECT_GT(selector->parameter_count(), 0);
}

TEST(GraphSelectorErrors, ShapesThatDisagreeAreNamed) {
  auto selector = make_selector();
  const auto data = synthetic(6, 6);
  auto expect = [](const std::function<void()>& f, const std::string& message) {
    EXPECT_THAT(f, ::testing::ThrowsMessage<Error>(HasSubstr(message)));
  };
  expect(
      [&] {
        selector->forward({data.features[0], data.features[1]});
      },
      "expected features of 3 nodes (one tensor per node), got 2");
  expect(
      [&] {
        selector->forward({data.features[0], data.features[2], data.features[2]});
      },
      "node 1's features must be [requests, 6], got [6, 10]");
  expect(
      [&] {
        selector->forward({data.features[0], data.features[1].narrow(0, 0, 4), data.features[2]});
      },
      "node 1 has 4 requests, node 0 has 6");
  expect(
      [&] {
        train_graph_selector(selector, data.features, data.correct.narrow(1, 0, 2), training());
      },
      "correct must be bool [6, 3]");
  expect(
      [&] {
        train_graph_selector(selector, data.features, data.correct.to(torch::kFloat32), training());
      },
      "correct must be bool [6, 3]");
  expect(
      [&] {
        train_graph_selector(selector, data.features, torch::zeros({6, 3}, torch::kBool),
                             training());
      },
      "no request among 6 has a correct node");
  auto bad = training();
  bad.batch_size = 0;
  expect([&] { train_graph_selector(selector, data.features, data.correct, bad); },
         "batch_size must be positive");
  expect([&] { make_selector(full_adjacency(2)); }, "the adjacency must be [3, 3] for 3 nodes");
}

// --- Node features of real (tiny, untrained) agents --------------------------------------------

Agent tiny_agent(const std::string& name, int64_t d_model, uint64_t seed) {
  auto tokenizer = std::make_shared<model::WordLevelTokenizer>(
      model::WordLevelTokenizer::from_texts({"one two three four five six seven eight nine"}));
  model::T5Shape shape;
  shape.vocab_size = tokenizer->vocab_size();
  shape.d_model = d_model;
  shape.num_layers = 1;
  shape.num_decoder_layers = 1;
  shape.num_heads = 2;
  shape.d_kv = 8;
  shape.d_ff = 32;
  auto model = model::make_untrained_t5(model::make_t5_config(shape), seed);
  model->freeze();
  Agent agent;
  agent.name = name;
  agent.model = model;
  agent.tokenizer = tokenizer;
  agent.prompt_template = "one {input}";
  return agent;
}

TEST(NodeFeatures, AreTheAgentsPooledStatesAndTheirAnswersAreUnchanged) {
  const std::vector<Agent> agents = {tiny_agent("small", 16, 3), tiny_agent("wide", 24, 4)};
  const std::vector<std::string> inputs = {"two three", "four", "five six seven"};
  Transcript transcript;
  const auto nodes = ask_nodes(agents, inputs, greedy_generation(4), "graph_select", &transcript);
  ASSERT_EQ(nodes.features.size(), 2u);
  for (size_t n = 0; n < agents.size(); ++n) {
    const auto& agent = agents[n];
    const int64_t d = agent.model->config().d_model;
    EXPECT_EQ(node_feature_width(agent), 2 * d);
    ASSERT_EQ(nodes.features[n].sizes(), (std::vector<int64_t>{3, 2 * d}));
    // The same answers as the agent's responder.
    AgentResponder responder(agent, greedy_generation(4));
    const auto expected = responder.respond(inputs);
    for (size_t e = 0; e < inputs.size(); ++e) {
      EXPECT_EQ(nodes.answers[e][n].text, expected[e].text);
      EXPECT_EQ(nodes.answers[e][n].tokens, expected[e].tokens);
      EXPECT_NEAR(nodes.answers[e][n].log_prob, expected[e].log_prob, 1e-5);
    }
    // Reference per input, alone (no padding): the encoder's mean state, and the teacher-forced
    // decoder's last-layer mean state at the positions that generated the answer's tokens.
    for (size_t e = 0; e < inputs.size(); ++e) {
      const auto batch = agent.tokenize({inputs[e]});
      torch::NoGradGuard no_grad;
      const auto generated = model::generate(*agent.model, batch.input_ids, batch.attention_mask,
                                             greedy_generation(4));
      const int64_t tokens = nodes.answers[e][n].tokens;
      const auto decoder_inputs = generated.sequences.narrow(1, 0, tokens);
      const auto forward = agent.model->forward(batch.input_ids, batch.attention_mask,
                                                decoder_inputs, /*output_hidden_states=*/true);
      const auto reference = torch::cat(
          {forward.encoder.last_hidden_state.mean(1), forward.decoder_hidden_states.back().mean(1)},
          1);
      EXPECT_TRUE(torch::allclose(nodes.features[n].narrow(0, static_cast<int64_t>(e), 1),
                                  reference, 1e-4, 1e-5))
          << agent.name << " input " << e;
    }
  }
  // The answers are recorded as a vote records them: round 0, broadcast, one per agent and input.
  ASSERT_EQ(transcript.size(), 6u);
  EXPECT_EQ(transcript.messages()[0].channel, "graph_select");
  EXPECT_EQ(transcript.messages()[0].sender, "small");
  EXPECT_EQ(transcript.messages()[1].sender, "wide");
  EXPECT_EQ(transcript.messages()[2].metadata["example"], 1);
  EXPECT_EQ(transcript.messages()[2].metadata["prompt"], "four");
  EXPECT_TRUE(transcript.messages()[0].receivers.empty());
}

TEST(NodeFeatures, EachAgentMayReadInputsOfItsOwn) {
  const std::vector<Agent> agents = {tiny_agent("small", 16, 3), tiny_agent("wide", 24, 4)};
  const std::vector<std::vector<std::string>> inputs = {{"two three", "four"},
                                                        {"five six", "seven eight nine"}};
  Transcript transcript;
  const auto nodes = ask_nodes(agents, inputs, greedy_generation(4), "graph_select", &transcript);
  ASSERT_EQ(nodes.answers.size(), 2u);
  for (size_t n = 0; n < agents.size(); ++n) {
    // The same as the agent asked alone on its own inputs.
    const auto alone = ask_nodes({agents[n]}, inputs[n], greedy_generation(4), "x", nullptr);
    EXPECT_TRUE(torch::allclose(nodes.features[n], alone.features[0], 1e-6, 1e-6)) << n;
    for (size_t e = 0; e < 2; ++e) {
      EXPECT_EQ(nodes.answers[e][n].text, alone.answers[e][0].text);
      EXPECT_EQ(nodes.answers[e][n].tokens, alone.answers[e][0].tokens);
    }
  }
  // Each recorded answer's prompt is its own agent's input.
  ASSERT_EQ(transcript.size(), 4u);
  EXPECT_EQ(transcript.messages()[0].metadata["prompt"], "two three");
  EXPECT_EQ(transcript.messages()[1].metadata["prompt"], "five six");
  EXPECT_EQ(transcript.messages()[3].metadata["prompt"], "seven eight nine");
  // The mechanism reads the same per-agent inputs and gives every agent's answer with its choice.
  GraphSelectorOptions o;
  o.feature_widths = {node_feature_width(agents[0]), node_feature_width(agents[1])};
  o.graph.dim = 8;
  o.adjacency = full_adjacency(2);
  GraphSelector selector(o);
  const auto outcomes = GraphSelection(agents, selector, greedy_generation(4)).run(inputs);
  const auto chosen = selector->choose(nodes.features);
  ASSERT_EQ(outcomes.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(outcomes[e].chosen, chosen[e]);
    ASSERT_EQ(outcomes[e].answers.size(), 2u);
    for (size_t n = 0; n < 2; ++n) EXPECT_EQ(outcomes[e].answers[n].text, nodes.answers[e][n].text);
    EXPECT_EQ(outcomes[e].answer, nodes.answers[e][static_cast<size_t>(chosen[e])].text);
  }
  // One input list per agent, each as long as the first.
  const std::vector<std::vector<std::string>> one_list = {{"two"}};
  const std::vector<std::vector<std::string>> uneven = {{"two"}, {"three", "four"}};
  EXPECT_THAT([&] { ask_nodes(agents, one_list, greedy_generation(4), "gs", nullptr); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("gs: expected one input list per agent (2), got 1")));
  EXPECT_THAT([&] { ask_nodes(agents, uneven, greedy_generation(4), "gs", nullptr); },
              ::testing::ThrowsMessage<Error>(
                  HasSubstr("gs: agent 'wide' has 2 inputs, agent 'small' has 1")));
}

TEST(GraphSelector, FitIsTrainingThenChoosing) {
  const std::vector<Agent> agents = {tiny_agent("small", 16, 3), tiny_agent("wide", 24, 4)};
  auto generator = at::make_generator<at::CPUGeneratorImpl>(8);
  const std::vector<torch::Tensor> features = {torch::randn({40, 32}, generator),
                                               torch::randn({40, 48}, generator)};
  // Node 0 is right when its first feature is positive, node 1 otherwise; row 0 has no right node.
  auto correct = torch::stack({features[0].select(1, 0) > 0, features[0].select(1, 0) <= 0}, 1);
  correct[0].fill_(false);
  GraphAttentionSpec graph;
  graph.options.dim = 8;
  graph.options.heads = 2;
  graph.options.steps = 2;
  graph.adjacency = full_adjacency(2);
  auto options = training();
  options.steps = 20;
  const auto fit = fit_graph_selector(agents, graph, features, correct, options);
  // The same as building the selector, training it and asking it by hand.
  GraphSelectorOptions o;
  o.feature_widths = {32, 48};
  o.graph = graph.options;
  o.adjacency = graph.adjacency;
  GraphSelector selector(o);
  const auto log = train_graph_selector(selector, features, correct, options);
  EXPECT_EQ(fit.log.losses, log.losses);
  EXPECT_EQ(fit.log.trainable, 39);
  const auto chosen = selector->choose(features);
  EXPECT_EQ(fit.chosen, chosen);
  int64_t right = 0;
  for (size_t r = 0; r < chosen.size(); ++r) {
    right += correct[static_cast<int64_t>(r)][chosen[r]].item<bool>() ? 1 : 0;
  }
  EXPECT_EQ(fit.chosen_right, right);
  EXPECT_DOUBLE_EQ(fit.training_accuracy, static_cast<double>(right) / 39.0);
  EXPECT_GE(fit.seconds, 0.0);
}

TEST(GraphSelection, KeepsTheChosenAgentsAnswerAndRecordsTheDecision) {
  std::vector<Agent> agents = {tiny_agent("small", 16, 3), tiny_agent("wide", 24, 4)};
  GraphSelectorOptions o;
  o.feature_widths = {node_feature_width(agents[0]), node_feature_width(agents[1])};
  o.graph.dim = 8;
  o.graph.steps = 2;
  o.adjacency = full_adjacency(2);
  GraphSelector selector(o);
  GraphSelection selection(agents, selector, greedy_generation(4));
  const std::vector<std::string> inputs = {"two three", "four"};
  Transcript transcript;
  const auto outcomes = selection.run(inputs, &transcript);
  ASSERT_EQ(outcomes.size(), 2u);
  const auto nodes = ask_nodes(agents, inputs, greedy_generation(4), "x", nullptr);
  const auto chosen = selector->choose(nodes.features);
  ASSERT_EQ(transcript.size(), 6u);  // two answers per input, then one decision per input
  for (size_t e = 0; e < inputs.size(); ++e) {
    const auto& o_e = outcomes[e];
    EXPECT_EQ(o_e.chosen, chosen[e]);
    EXPECT_EQ(o_e.answer, nodes.answers[e][static_cast<size_t>(o_e.chosen)].text);
    EXPECT_NEAR(o_e.probabilities[0] + o_e.probabilities[1], 1.0, 1e-6);  // float32 softmax
    const auto& decision = transcript.messages()[4 + e];
    EXPECT_EQ(decision.sender, "graph_select");
    EXPECT_EQ(decision.text, o_e.answer);
    EXPECT_EQ(decision.metadata["example"], static_cast<int64_t>(e));
    EXPECT_EQ(decision.metadata["chosen"], agents[static_cast<size_t>(o_e.chosen)].name);
    EXPECT_DOUBLE_EQ(decision.metadata["probabilities"]["wide"].get<double>(),
                     o_e.probabilities[1]);
  }
  // A selector whose widths are not the agents'.
  o.feature_widths = {32, 32};
  EXPECT_THAT([&] { GraphSelection bad(agents, GraphSelector(o)); },
              ::testing::ThrowsMessage<Error>(HasSubstr(
                  "agent 'wide' gives features of width 48, node 1 of the selector reads 32")));
  EXPECT_THAT([&] { GraphSelection bad({agents[0]}, selector); },
              ::testing::ThrowsMessage<Error>(HasSubstr("1 agents for a selector of 2 nodes")));
}

}  // namespace
}  // namespace chorus::collab
