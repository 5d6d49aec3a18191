// The router policy on synthetic bandits whose best arm per input type is known: REINFORCE and PPO
// learn it, a large cost weight drives it to the cheap arm, training is deterministic, and bad
// options are errors; calibration to a cost budget on fixed log-probabilities and costs whose
// cost weight and choices are known in advance.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "collab/router.h"
#include "common/error.h"

namespace chorus::collab {
namespace {

using ::testing::HasSubstr;

// Inputs of two types: type 0 is "token 1, then tokens from 3..5", type 1 is "token 2, then tokens
// from 3..5"; the shared tokens carry no information, and a pad column exercises the mask.
struct TwoTypes {
  torch::Tensor ids, mask;
  std::vector<int64_t> type;
};

TwoTypes two_types(int64_t n) {
  TwoTypes t;
  t.ids = torch::zeros({n, 4}, torch::kInt64);
  t.mask = torch::ones({n, 4}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t type = i % 2;
    t.type.push_back(type);
    t.ids.index_put_({i, 0}, 1 + type);
    t.ids.index_put_({i, 1}, 3 + (i / 2) % 3);
    t.ids.index_put_({i, 2}, 3 + (i / 3) % 3);
    if (i % 4 == 0)
      t.mask.index_put_({i, 3}, 0);  // padding (id 0)
    else
      t.ids.index_put_({i, 3}, 3 + i % 3);
  }
  return t;
}

// rewards[i][a]: type 0 is answered only by arm 0, type 1 only by arm 2; arm 1 never.
torch::Tensor known_best_rewards(const TwoTypes& t) {
  auto r = torch::zeros({static_cast<int64_t>(t.type.size()), 3});
  for (size_t i = 0; i < t.type.size(); ++i)
    r.index_put_({static_cast<int64_t>(i), t.type[i] == 0 ? 0 : 2}, 1.0);
  return r;
}

RouterPolicy make_policy(uint64_t seed = 7) {
  RouterOptions o;
  o.vocab_size = 6;
  o.num_arms = 3;
  o.embedding_dim = 8;
  o.hidden_dim = 16;
  o.seed = seed;
  return RouterPolicy(o);
}

RouterTrainingOptions quick(PolicyObjective objective) {
  RouterTrainingOptions o;
  o.objective = objective;
  o.steps = 60;
  o.batch_size = 32;
  o.learning_rate = 5e-2;
  o.seed = 11;
  return o;
}

std::vector<int64_t> choices(RouterPolicy& policy, const TwoTypes& t) {
  const auto c = policy->choose(t.ids, t.mask);
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(RouterPolicy, StartsUniformOverArms) {
  auto policy = make_policy();
  const auto t = two_types(8);
  const auto out = policy->forward(t.ids, t.mask);
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{8, 3}));
  EXPECT_TRUE(torch::equal(out.logits, torch::zeros({8, 3})));
  EXPECT_TRUE(torch::equal(out.value, torch::zeros({8})));
}

TEST(RouterPolicy, PaddingDoesNotChangeTheFeatures) {
  auto policy = make_policy();
  torch::NoGradGuard no_grad;
  // Give the policy head weights so the logits depend on the features.
  for (auto& p : policy->named_parameters()) {
    if (p.key() == "policy.weight") p.value().normal_();
  }
  const auto ids = torch::tensor({1, 3, 4}, torch::kInt64).view({1, 3});
  const auto padded = torch::tensor({1, 3, 4, 5, 5}, torch::kInt64).view({1, 5});
  const auto mask = torch::tensor({1, 1, 1, 0, 0}, torch::kInt64).view({1, 5});
  EXPECT_TRUE(torch::allclose(policy->forward(ids).logits, policy->forward(padded, mask).logits));
}

TEST(RouterTraining, ReinforceLearnsTheBestArmPerInputType) {
  const auto t = two_types(64);
  auto policy = make_policy();
  const auto log = train_router(policy, {t.ids, t.mask, reward_table(known_best_rewards(t))},
                                quick(PolicyObjective::reinforce));
  for (size_t i = 0; i < t.type.size(); ++i)
    EXPECT_EQ(choices(policy, t)[i], t.type[i] == 0 ? 0 : 2) << i;
  // Sampled arms earn more as the policy sharpens (uniform: 1/3).
  EXPECT_GT(log.mean_reward.back(), 0.8);
  EXPECT_LT(log.mean_entropy.back(), log.mean_entropy.front());
}

TEST(RouterTraining, PpoLearnsTheBestArmPerInputType) {
  const auto t = two_types(64);
  auto policy = make_policy();
  auto options = quick(PolicyObjective::ppo);
  options.steps = 25;  // four epochs per batch
  train_router(policy, {t.ids, t.mask, reward_table(known_best_rewards(t))}, options);
  for (size_t i = 0; i < t.type.size(); ++i)
    EXPECT_EQ(choices(policy, t)[i], t.type[i] == 0 ? 0 : 2) << i;
}

// Arm 0 is always right and costs 1; arm 1 costs 0.1 and is right on type 0 only.
torch::Tensor costly_rewards(const TwoTypes& t, double lambda) {
  auto r = torch::zeros({static_cast<int64_t>(t.type.size()), 2});
  for (size_t i = 0; i < t.type.size(); ++i) {
    const auto row = static_cast<int64_t>(i);
    r.index_put_({row, 0}, 1.0 - lambda * 1.0);
    r.index_put_({row, 1}, (t.type[i] == 0 ? 1.0 : 0.0) - lambda * 0.1);
  }
  return r;
}

std::vector<int64_t> train_on_costs(double lambda) {
  const auto t = two_types(64);
  RouterOptions o;
  o.vocab_size = 6;
  o.num_arms = 2;
  o.embedding_dim = 8;
  o.hidden_dim = 16;
  RouterPolicy policy(o);
  train_router(policy, {t.ids, t.mask, reward_table(costly_rewards(t, lambda))},
               quick(PolicyObjective::reinforce));
  return choices(policy, t);
}

TEST(RouterTraining, TheCostWeightMovesChoicesToTheCheapArm) {
  const auto t = two_types(64);
  // lambda 0: the expensive arm is right everywhere. lambda 0.5: the cheap arm where it is right
  // (0.95 > 0.5), the expensive one elsewhere (0.5 > -0.05). lambda 2: the cheap arm everywhere.
  const auto free = train_on_costs(0.0), some = train_on_costs(0.5), dear = train_on_costs(2.0);
  for (size_t i = 0; i < t.type.size(); ++i) {
    EXPECT_EQ(free[i], 0) << i;
    EXPECT_EQ(some[i], t.type[i] == 0 ? 1 : 0) << i;
    EXPECT_EQ(dear[i], 1) << i;
  }
}

TEST(RouterTraining, OnlyTheSampledArmsRewardsAreRead) {
  const auto t = two_types(16);
  auto policy = make_policy();
  auto options = quick(PolicyObjective::reinforce);
  options.steps = 3;
  options.batch_size = 5;
  int64_t asked = 0;
  const RewardFunction reward = [&](const torch::Tensor& examples, const torch::Tensor& arms) {
    EXPECT_EQ(examples.sizes(), arms.sizes());
    asked += arms.numel();
    return torch::zeros({arms.numel()});
  };
  train_router(policy, {t.ids, t.mask, reward}, options);
  EXPECT_EQ(asked, 15);
}

TEST(RouterTraining, IsDeterministicForASeed) {
  const auto t = two_types(32);
  const RouterBandit bandit{t.ids, t.mask, reward_table(known_best_rewards(t))};
  auto run = [&](uint64_t seed, PolicyObjective objective) {
    auto policy = make_policy();
    auto options = quick(objective);
    options.steps = 8;
    options.seed = seed;
    const auto log = train_router(policy, bandit, options);
    std::vector<torch::Tensor> weights;
    for (const auto& p : policy->parameters()) weights.push_back(p.detach().clone());
    return std::make_pair(log.mean_reward, weights);
  };
  for (auto objective : {PolicyObjective::reinforce, PolicyObjective::ppo}) {
    const auto a = run(1, objective), b = run(1, objective), c = run(2, objective);
    EXPECT_EQ(a.first, b.first);
    for (size_t i = 0; i < a.second.size(); ++i)
      EXPECT_TRUE(torch::equal(a.second[i], b.second[i]));
    EXPECT_NE(a.first, c.first);
  }
  // Initial weights come from the router's seed, not the global generator.
  torch::manual_seed(1);
  auto first = make_policy(3);
  torch::manual_seed(2);
  auto second = make_policy(3);
  EXPECT_TRUE(torch::equal(first->parameters()[0], second->parameters()[0]));
}

TEST(RouterErrors, BadOptionsAndInputsAreNamed) {
  RouterOptions o;
  o.vocab_size = 6;
  o.num_arms = 0;
  EXPECT_THAT([&] { RouterPolicy p(o); },
              ::testing::ThrowsMessage<Error>(HasSubstr("at least one arm")));
  auto policy = make_policy();
  EXPECT_THAT(
      [&] {
        policy->forward(torch::tensor({{1, 6}}, torch::kInt64));
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("token ids must be in [0, 6)")));
  EXPECT_THAT([&] { policy_objective_from_string("a2c"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("expected reinforce or ppo")));
  RouterTrainingOptions bad;
  bad.ppo_clip = 1.5;
  EXPECT_THAT([&] { check_router_training_options(bad); },
              ::testing::ThrowsMessage<Error>(HasSubstr("ppo_clip")));
  bad = RouterTrainingOptions{};
  bad.steps = 0;
  EXPECT_THAT([&] { check_router_training_options(bad); },
              ::testing::ThrowsMessage<Error>(HasSubstr("steps")));
  EXPECT_THAT(
      [&] {
        train_router(policy, {torch::zeros({0, 2}, torch::kInt64), {}, nullptr},
                     RouterTrainingOptions{});
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("at least one example")));
}

// --- Calibration to a cost budget ---------------------------------------------------------------

// Two arms: arm 0 costs 1, arm 1 costs 3. Every input prefers arm 1, by log-probability margins
// 0.2, 0.6, 1.0, 1.4; input i switches to arm 0 once mu > margin_i / (3 - 1).
torch::Tensor two_arm_log_probs() {
  return torch::tensor({{0.0, 0.2}, {0.0, 0.6}, {0.0, 1.0}, {0.0, 1.4}}, torch::kFloat64);
}
torch::Tensor request_costs(const std::vector<double>& per_arm, int64_t inputs) {
  return torch::tensor(per_arm, torch::kFloat64).unsqueeze(0).repeat({inputs, 1});
}

TEST(BudgetCalibration, TheCostWeightMovesEachInputAtItsMargin) {
  const auto lp = two_arm_log_probs();
  EXPECT_THAT(choose_with_cost_weight(lp, {1, 3}, 0.0), ::testing::ElementsAre(1, 1, 1, 1));
  EXPECT_THAT(choose_with_cost_weight(lp, {1, 3}, 0.25), ::testing::ElementsAre(0, 1, 1, 1));
  EXPECT_THAT(choose_with_cost_weight(lp, {1, 3}, 0.55), ::testing::ElementsAre(0, 0, 0, 1));
  EXPECT_THAT(choose_with_cost_weight(lp, {1, 3}, 10.0), ::testing::ElementsAre(0, 0, 0, 0));
}

TEST(BudgetCalibration, BisectionFindsTheKnownCostWeight) {
  const auto lp = two_arm_log_probs();
  const auto costs = request_costs({1, 3}, 4);
  // Mean cost 2: two inputs may keep arm 1, so the two smallest margins (0.2, 0.6) switch: mu =
  // 0.3.
  auto c = calibrate_cost_weight(lp, {1, 3}, costs, 2.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_NEAR(c.mu, 0.3, 1e-7);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(0, 0, 1, 1));
  EXPECT_DOUBLE_EQ(c.mean_cost, 2.0);
  EXPECT_GT(c.iterations, 10);
  // Mean cost 2.5: three inputs keep arm 1, only the margin 0.2 switches: mu = 0.1.
  c = calibrate_cost_weight(lp, {1, 3}, costs, 2.5);
  EXPECT_TRUE(c.feasible);
  EXPECT_NEAR(c.mu, 0.1, 1e-7);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(0, 1, 1, 1));
  EXPECT_DOUBLE_EQ(c.mean_cost, 2.5);
  // The policy's own choices fit: mu = 0, no bisection.
  c = calibrate_cost_weight(lp, {1, 3}, costs, 3.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_EQ(c.mu, 0.0);
  EXPECT_EQ(c.iterations, 0);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(1, 1, 1, 1));
}

TEST(BudgetCalibration, AnInfeasibleBudgetGivesTheCheapestChoicesAndSaysSo) {
  const auto c = calibrate_cost_weight(two_arm_log_probs(), {1, 3}, request_costs({1, 3}, 4), 0.5);
  EXPECT_FALSE(c.feasible);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(0, 0, 0, 0));
  EXPECT_DOUBLE_EQ(c.mean_cost, 1.0);
  EXPECT_GT(c.mu, 0.7);  // past every switching point (the largest is 1.4 / 2)
  // Arms of equal cost: mu changes nothing, the argmax stays and is reported as over the budget.
  const auto same =
      calibrate_cost_weight(two_arm_log_probs(), {2, 2}, request_costs({1, 3}, 4), 2.0);
  EXPECT_FALSE(same.feasible);
  EXPECT_EQ(same.mu, 0.0);
  EXPECT_THAT(same.choices, ::testing::ElementsAre(1, 1, 1, 1));
}

TEST(BudgetCalibration, TheBudgetIsOnWhatTheInputsCostNotOnTheArmCosts) {
  // The decision expects arm 1 to cost 3, but on these inputs it cost 5: a mean of 3 is met only
  // when two inputs switch (2 * 5 + 2 * 1 = 12 = 4 * 3), so mu = 0.3 again, not 0.
  const auto c = calibrate_cost_weight(two_arm_log_probs(), {1, 3}, request_costs({1, 5}, 4), 3.0);
  EXPECT_TRUE(c.feasible);
  EXPECT_NEAR(c.mu, 0.3, 1e-7);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(0, 0, 1, 1));
}

TEST(BudgetCalibration, ThreeArmsSwitchThroughTheMiddleOrStraightToTheCheapest) {
  // Arms cost 1, 2, 4. Input 0 = [0, 1, 1.2]: to the middle arm at mu = 0.1 ((1.2 - 1) / 2).
  // Input 1 = [0, 0.5, 2.5]: straight to the cheapest at mu = 2.5 / 3, before the middle arm
  // (which it would take at mu = 1) is ever best.
  const auto lp = torch::tensor({{0.0, 1.0, 1.2}, {0.0, 0.5, 2.5}}, torch::kFloat64);
  const auto costs = request_costs({1, 2, 4}, 2);
  auto c = calibrate_cost_weight(lp, {1, 2, 4}, costs, 3.0);
  EXPECT_NEAR(c.mu, 0.1, 1e-7);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(1, 2));
  c = calibrate_cost_weight(lp, {1, 2, 4}, costs, 2.5);
  EXPECT_NEAR(c.mu, 2.5 / 3.0, 1e-7);
  EXPECT_THAT(c.choices, ::testing::ElementsAre(1, 0));
  EXPECT_DOUBLE_EQ(c.mean_cost, 1.5);
}

TEST(BudgetCalibration, BadInputsAreErrors) {
  const auto lp = two_arm_log_probs();
  const auto costs = request_costs({1, 3}, 4);
  EXPECT_THAT(
      [&] {
        calibrate_cost_weight(lp, {1, 3}, costs, 0.0);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("budget must be positive and finite, got 0")));
  EXPECT_THAT(
      [&] {
        calibrate_cost_weight(lp, {1, 3, 4}, costs, 1.0);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("for 3 arm costs")));
  EXPECT_THAT(
      [&] {
        calibrate_cost_weight(lp, {1, 3}, request_costs({1, 3}, 3), 1.0);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("request costs must have the shape")));
  auto bad = lp.clone();
  bad.index_put_({1, 1}, std::nan(""));
  EXPECT_THAT(
      [&] {
        calibrate_cost_weight(bad, {1, 3}, costs, 1.0);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("every log-probability must be finite")));
  EXPECT_THAT(
      [&] {
        choose_with_cost_weight(lp, {1, 3}, -1.0);
      },
      ::testing::ThrowsMessage<Error>(HasSubstr("mu must be finite and >= 0")));
}

TEST(BudgetCalibration, APolicysLogProbabilitiesAreNormalised) {
  auto policy = make_policy();
  const auto t = two_types(6);
  const auto lp = policy->log_probs(t.ids, t.mask);
  ASSERT_EQ(lp.sizes(), (std::vector<int64_t>{6, 3}));
  EXPECT_TRUE(torch::allclose(lp.exp().sum(1), torch::ones({6})));
  // An untrained policy is uniform: any positive mu picks the cheapest arm.
  EXPECT_THAT(choose_with_cost_weight(lp, {2, 1, 3}, 1e-3), ::testing::Each(1));
}

}  // namespace
}  // namespace chorus::collab
