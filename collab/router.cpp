// The router policy and its reinforcement-learning updates (REINFORCE with a baseline, PPO).
#include "collab/router.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/activation.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace chorus::collab {

RouterPolicyImpl::RouterPolicyImpl(RouterOptions options) : options_(options) {
  CHORUS_CHECK(options_.vocab_size > 0, "router: vocab_size must be positive, got ",
               options_.vocab_size);
  CHORUS_CHECK(options_.num_arms > 0, "router: expected at least one arm, got ", options_.num_arms);
  CHORUS_CHECK(options_.embedding_dim > 0 && options_.hidden_dim > 0,
               "router: embedding_dim and hidden_dim must be "
               "positive, got ",
               options_.embedding_dim, " and ", options_.hidden_dim);
  embedding_ = register_module("embedding",
                               torch::nn::Embedding(options_.vocab_size, options_.embedding_dim));
  hidden_ =
      register_module("hidden", torch::nn::Linear(options_.embedding_dim, options_.hidden_dim));
  policy_ = register_module("policy", torch::nn::Linear(options_.hidden_dim, options_.num_arms));
  value_ = register_module("value", torch::nn::Linear(options_.hidden_dim, 1));
  // Initial weights from the router's own seed, whatever drew from the global generator before.
  torch::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
  embedding_->weight.normal_(0.0, 1.0, generator);
  const double bound = 1.0 / std::sqrt(static_cast<double>(options_.embedding_dim));
  hidden_->weight.uniform_(-bound, bound, generator);
  hidden_->bias.zero_();
  // A uniform initial policy and a zero baseline: exploration starts even over the arms.
  policy_->weight.zero_();
  policy_->bias.zero_();
  value_->weight.zero_();
  value_->bias.zero_();
}

RouterOutput RouterPolicyImpl::forward(const torch::Tensor& ids, const torch::Tensor& mask) {
  CHORUS_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64,
               "router: ids must be int64 [B, S], got ", ids.sizes(), " ", ids.scalar_type());
  CHORUS_CHECK(!mask.defined() || mask.sizes() == ids.sizes(),
               "router: mask must have the shape of ids ", ids.sizes(), ", got ", mask.sizes());
  if (ids.numel() > 0) {
    const auto low = ids.min().item<int64_t>(), high = ids.max().item<int64_t>();
    CHORUS_CHECK(low >= 0 && high < options_.vocab_size, "router: token ids must be in [0, ",
                 options_.vocab_size, "), got [", low, ", ", high, "]");
  }
  const auto weights =
      mask.defined() ? mask.to(torch::kFloat32) : torch::ones(ids.sizes(), torch::kFloat32);
  const auto counts = weights.sum(1, /*keepdim=*/true).clamp_min(1.0);
  const auto pooled = (embedding_(ids) * weights.unsqueeze(-1)).sum(1) / counts;
  const auto h = torch::relu(hidden_(pooled));
  return {policy_(h), value_(h).squeeze(-1)};
}

torch::Tensor RouterPolicyImpl::choose(const torch::Tensor& ids, const torch::Tensor& mask) {
  torch::NoGradGuard no_grad;
  return forward(ids, mask).logits.argmax(1);
}

torch::Tensor RouterPolicyImpl::log_probs(const torch::Tensor& ids, const torch::Tensor& mask) {
  torch::NoGradGuard no_grad;
  return torch::log_softmax(forward(ids, mask).logits, 1);
}

double RouterPolicyImpl::flops_per_decision(int64_t tokens) const {
  const double e = static_cast<double>(options_.embedding_dim),
               h = static_cast<double>(options_.hidden_dim);
  return static_cast<double>(tokens) * e + 2.0 * e * h +
         2.0 * h * static_cast<double>(options_.num_arms + 1);
}

int64_t RouterPolicyImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

RewardFunction reward_table(torch::Tensor rewards) {
  CHORUS_CHECK(rewards.dim() == 2, "reward_table: expected [examples, arms], got ",
               rewards.sizes());
  rewards = rewards.to(torch::kFloat32).contiguous();
  return [rewards](const torch::Tensor& examples, const torch::Tensor& arms) {
    return rewards.index({examples, arms});
  };
}

std::string to_string(PolicyObjective objective) {
  return objective == PolicyObjective::ppo ? "ppo" : "reinforce";
}

PolicyObjective policy_objective_from_string(const std::string& name) {
  if (name == "reinforce") return PolicyObjective::reinforce;
  if (name == "ppo") return PolicyObjective::ppo;
  throw Error("unknown policy objective '" + name + "' (expected reinforce or ppo)");
}

void check_router_training_options(const RouterTrainingOptions& o) {
  CHORUS_CHECK(o.steps > 0, "router training: steps must be positive, got ", o.steps);
  CHORUS_CHECK(o.batch_size > 0, "router training: batch_size must be positive, got ",
               o.batch_size);
  CHORUS_CHECK(o.learning_rate > 0, "router training: learning_rate must be positive, got ",
               o.learning_rate);
  CHORUS_CHECK(o.entropy_bonus >= 0 && o.value_weight >= 0,
               "router training: entropy_bonus and value_weight must be "
               ">= 0, got ",
               o.entropy_bonus, " and ", o.value_weight);
  CHORUS_CHECK(o.ppo_epochs > 0, "router training: ppo_epochs must be positive, got ",
               o.ppo_epochs);
  CHORUS_CHECK(o.ppo_clip > 0 && o.ppo_clip < 1,
               "router training: ppo_clip must be in (0, 1), got ", o.ppo_clip);
}

namespace {

// One batch of rollouts under the current policy.
struct Rollouts {
  torch::Tensor examples, arms, rewards, old_log_probs;
  double entropy = 0;
};

Rollouts collect(RouterPolicy& policy, const RouterBandit& bandit, int64_t batch_size,
                 at::Generator& generator) {
  torch::NoGradGuard no_grad;
  Rollouts r;
  r.examples = torch::randint(bandit.ids.size(0), {batch_size}, generator, torch::kInt64);
  const auto mask = bandit.mask.defined() ? bandit.mask.index({r.examples}) : torch::Tensor();
  const auto out = policy->forward(bandit.ids.index({r.examples}), mask);
  const auto log_probs = torch::log_softmax(out.logits, 1);
  r.arms = torch::multinomial(log_probs.exp(), 1, /*replacement=*/false, generator).squeeze(1);
  r.old_log_probs = log_probs.gather(1, r.arms.unsqueeze(1)).squeeze(1);
  r.entropy = -(log_probs.exp() * log_probs).sum(1).mean().item<double>();
  r.rewards = bandit.reward(r.examples, r.arms).to(torch::kFloat32);
  CHORUS_CHECK(r.rewards.sizes() == r.arms.sizes(),
               "router training: the reward function returned ", r.rewards.sizes(), " for ",
               r.arms.sizes(), " arms");
  return r;
}

// The loss on `batch`: the policy term (REINFORCE, or PPO's clipped surrogate against the rollout's
// log-probabilities), the baseline's squared error and the entropy bonus.
torch::Tensor loss(RouterPolicy& policy, const RouterBandit& bandit, const Rollouts& batch,
                   const RouterTrainingOptions& o) {
  const auto mask = bandit.mask.defined() ? bandit.mask.index({batch.examples}) : torch::Tensor();
  const auto out = policy->forward(bandit.ids.index({batch.examples}), mask);
  const auto log_probs = torch::log_softmax(out.logits, 1);
  const auto chosen = log_probs.gather(1, batch.arms.unsqueeze(1)).squeeze(1);
  const auto advantage = batch.rewards - out.value.detach();
  torch::Tensor policy_loss;
  if (o.objective == PolicyObjective::reinforce) {
    policy_loss = -(chosen * advantage).mean();
  } else {
    const auto ratio = (chosen - batch.old_log_probs).exp();
    const auto clipped = ratio.clamp(1.0 - o.ppo_clip, 1.0 + o.ppo_clip);
    policy_loss = -torch::min(ratio * advantage, clipped * advantage).mean();
  }
  const auto value_loss = (out.value - batch.rewards).pow(2).mean();
  const auto entropy = -(log_probs.exp() * log_probs).sum(1).mean();
  return policy_loss + o.value_weight * value_loss - o.entropy_bonus * entropy;
}

}  // namespace

RouterTrainingLog train_router(RouterPolicy& policy, const RouterBandit& bandit,
                               const RouterTrainingOptions& o) {
  check_router_training_options(o);
  CHORUS_CHECK(bandit.ids.defined() && bandit.ids.dim() == 2 && bandit.ids.size(0) > 0,
               "router training: expected at least one example in ids [N, S]");
  CHORUS_CHECK(static_cast<bool>(bandit.reward), "router training: no reward function");
  policy->train();
  torch::optim::Adam optimizer(policy->parameters(), torch::optim::AdamOptions(o.learning_rate));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t epochs = o.objective == PolicyObjective::ppo ? o.ppo_epochs : 1;
  RouterTrainingLog log;
  for (int64_t step = 0; step < o.steps; ++step) {
    const auto batch = collect(policy, bandit, o.batch_size, generator);
    log.mean_reward.push_back(batch.rewards.mean().item<double>());
    log.mean_entropy.push_back(batch.entropy);
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      optimizer.zero_grad();
      loss(policy, bandit, batch, o).backward();
      optimizer.step();
    }
  }
  policy->eval();
  return log;
}

std::vector<int64_t> choose_with_cost_weight(const torch::Tensor& log_probs,
                                             const std::vector<double>& arm_costs, double mu) {
  CHORUS_CHECK(log_probs.dim() == 2 && log_probs.size(1) == static_cast<int64_t>(arm_costs.size()),
               "cost-weighted choice: expected log-probabilities [N, ", arm_costs.size(), "] for ",
               arm_costs.size(), " arm costs, got ", log_probs.sizes());
  CHORUS_CHECK(std::isfinite(mu) && mu >= 0,
               "cost-weighted choice: mu must be finite and >= 0, got ", mu);
  const auto lp = log_probs.to(torch::kFloat64).contiguous();
  const auto rows = lp.accessor<double, 2>();
  std::vector<int64_t> out(static_cast<size_t>(lp.size(0)));
  for (int64_t i = 0; i < lp.size(0); ++i) {
    int64_t best = 0;
    double best_value = -std::numeric_limits<double>::infinity();
    for (int64_t a = 0; a < lp.size(1); ++a) {
      const double value = rows[i][a] - mu * arm_costs[static_cast<size_t>(a)];
      if (value > best_value) {
        best = a;
        best_value = value;
      }
    }
    out[static_cast<size_t>(i)] = best;
  }
  return out;
}

BudgetCalibration calibrate_cost_weight(const torch::Tensor& log_probs,
                                        const std::vector<double>& arm_costs,
                                        const torch::Tensor& request_costs, double budget,
                                        const BudgetCalibrationOptions& options) {
  CHORUS_CHECK(log_probs.dim() == 2 && log_probs.size(0) > 0 &&
                   log_probs.size(1) == static_cast<int64_t>(arm_costs.size()) &&
                   log_probs.size(1) > 0,
               "budget calibration: expected log-probabilities [N > 0, ", arm_costs.size(),
               "] for ", arm_costs.size(), " arm costs, got ", log_probs.sizes());
  CHORUS_CHECK(request_costs.sizes() == log_probs.sizes(),
               "budget calibration: request costs must have the shape of the log-probabilities ",
               log_probs.sizes(), ", got ", request_costs.sizes());
  CHORUS_CHECK(std::isfinite(budget) && budget > 0,
               "budget calibration: the budget must be positive and finite, got ", budget);
  CHORUS_CHECK(options.max_iterations > 0 && options.tolerance > 0,
               "budget calibration: max_iterations and tolerance must be positive");
  for (double c : arm_costs) {
    CHORUS_CHECK(std::isfinite(c), "budget calibration: arm costs must be finite, got ", c);
  }
  const auto lp = log_probs.to(torch::kFloat64).contiguous();
  const auto costs = request_costs.to(torch::kFloat64).contiguous();
  CHORUS_CHECK(torch::isfinite(lp).all().item<bool>(),
               "budget calibration: every log-probability must be finite");
  CHORUS_CHECK(torch::isfinite(costs).all().item<bool>(),
               "budget calibration: every request cost must be finite");
  const auto cost_rows = costs.accessor<double, 2>();
  const auto n = lp.size(0);

  BudgetCalibration out;
  auto evaluate = [&](double mu) {
    out.mu = mu;
    out.choices = choose_with_cost_weight(lp, arm_costs, mu);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += cost_rows[i][out.choices[static_cast<size_t>(i)]];
    out.mean_cost = total / static_cast<double>(n);
    out.feasible = out.mean_cost <= budget;
    return out.feasible;
  };
  if (evaluate(0.0)) return out;

  // The bracket's upper end: once mu * (the smallest gap between two different arm costs) exceeds
  // every input's spread of log-probabilities, each input takes an arm of the lowest arm cost.
  double smallest_gap = std::numeric_limits<double>::infinity();
  for (size_t a = 0; a < arm_costs.size(); ++a) {
    for (size_t b = 0; b < arm_costs.size(); ++b) {
      const double gap = arm_costs[a] - arm_costs[b];
      if (gap > 0) smallest_gap = std::min(smallest_gap, gap);
    }
  }
  if (!std::isfinite(smallest_gap)) return out;  // every arm costs the same: mu changes nothing
  const double spread = (std::get<0>(lp.max(1)) - std::get<0>(lp.min(1))).max().item<double>();
  double low = 0.0, high = (spread + 1.0) / smallest_gap;
  if (!evaluate(high)) return out;  // infeasible: the cheapest the policy can be made
  while (high - low > options.tolerance * std::max(1.0, high) &&
         out.iterations < options.max_iterations) {
    ++out.iterations;
    const double mid = 0.5 * (low + high);
    if (evaluate(mid)) {
      high = mid;
    } else {
      low = mid;
    }
  }
  evaluate(high);
  return out;
}

}  // namespace chorus::collab
