// The router policy on synthetic bandits whose best arm per input type is known: REINFORCE and PPO
// learn it, a large cost weight drives it to the cheap arm, training is deterministic, and bad
// options are errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

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

}  // namespace
}  // namespace chorus::collab
