// Router: a small learned policy that picks, per input, one arm (a subset of agents or a
// mechanism), trained by reinforcement learning on reward = task score - lambda * cost (REINFORCE
// with a learned baseline, or PPO's clipped objective).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace chorus::collab {

struct RouterOptions {
  int64_t vocab_size = 0;  // token ids the router reads are in [0, vocab_size)
  int64_t num_arms = 0;    // choices, at least 1
  int64_t embedding_dim = 32;
  int64_t hidden_dim = 64;
  uint64_t seed = 0;  // initial weights (drawn from a generator of their own, not the global one)
};

// The policy's view of a batch: a distribution over arms and the baseline (expected reward).
struct RouterOutput {
  torch::Tensor logits;  // [B, A]
  torch::Tensor value;   // [B]
};

// Features: the mean of learned token embeddings over the input's real tokens (a bag of words,
// the cheapest honest view of the input: no agent runs before the router decides), then one hidden
// layer (ReLU) shared by the policy head (logits) and the value head (the REINFORCE baseline). The
// policy head starts at zero, so an untrained router is uniform over arms.
class RouterPolicyImpl : public torch::nn::Module {
 public:
  explicit RouterPolicyImpl(RouterOptions options);

  // ids [B, S] int64 in [0, vocab_size); mask [B, S] (1 = token; undefined = all tokens).
  RouterOutput forward(const torch::Tensor& ids, const torch::Tensor& mask = {});
  // The most probable arm per input, [B] int64 (ties: the lowest index). No gradients.
  torch::Tensor choose(const torch::Tensor& ids, const torch::Tensor& mask = {});
  // log pi(a|x), [B, A] float. No gradients.
  torch::Tensor log_probs(const torch::Tensor& ids, const torch::Tensor& mask = {});

  // FLOPs of one decision over `tokens` input tokens (embedding sums, both layers and the value
  // head).
  double flops_per_decision(int64_t tokens) const;
  int64_t parameter_count() const;
  const RouterOptions& options() const { return options_; }

 private:
  RouterOptions options_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Linear hidden_{nullptr};
  torch::nn::Linear policy_{nullptr};
  torch::nn::Linear value_{nullptr};
};
TORCH_MODULE(RouterPolicy);

// Rewards of the sampled arms: examples [b] int64 (indices into the bandit's examples) and arms [b]
// int64, returns [b] float. Training reads nothing else about the arms, so it only ever learns
// from what the chosen arm earned (bandit feedback).
using RewardFunction =
    std::function<torch::Tensor(const torch::Tensor& examples, const torch::Tensor& arms)>;

// A contextual bandit over fixed examples: the router's features of each and the reward of any arm.
struct RouterBandit {
  torch::Tensor ids;   // [N, S] int64
  torch::Tensor mask;  // [N, S] 1 = token (undefined = all tokens)
  RewardFunction reward;
};

// A reward function reading a precomputed [N, A] table of rewards (e.g. score - lambda * cost of
// every arm on every training example, computed once).
RewardFunction reward_table(torch::Tensor rewards);

enum class PolicyObjective {
  reinforce,  // one gradient step per batch: -log pi(a|x) (r - V(x))
  ppo         // several epochs over each batch of rollouts, clipped ratio to the rollout's policy
};
std::string to_string(PolicyObjective objective);
// "reinforce" or "ppo"; anything else is a chorus::Error listing both.
PolicyObjective policy_objective_from_string(const std::string& name);

struct RouterTrainingOptions {
  PolicyObjective objective = PolicyObjective::reinforce;
  int64_t steps = 300;          // batches of rollouts
  int64_t batch_size = 64;      // examples drawn (with replacement) per batch
  double learning_rate = 1e-2;  // Adam
  double entropy_bonus = 0.01;  // weight of the policy's mean entropy, added to the objective
  double value_weight = 0.5;    // weight of the baseline's squared error
  int64_t ppo_epochs = 4;       // PPO: gradient steps per batch
  double ppo_clip = 0.2;        // PPO: the ratio is clipped to [1 - clip, 1 + clip]
  uint64_t seed = 0;            // example draws and arm sampling
};
// Checks every field (positive steps, batch, rate, epochs; clip in (0, 1); weights >= 0).
void check_router_training_options(const RouterTrainingOptions& options);

struct RouterTrainingLog {
  std::vector<double> mean_reward;   // per batch, of the sampled arms
  std::vector<double> mean_entropy;  // per batch, of the policy that sampled
};

// Trains `policy` on `bandit`. Deterministic on the CPU for a given seed, initial policy and thread
// count.
RouterTrainingLog train_router(RouterPolicy& policy, const RouterBandit& bandit,
                               const RouterTrainingOptions& options);

// --- Calibration to a cost budget
// -----------------------------------------------------------------
//
// A trained policy's argmax jumps from one arm to another as lambda crosses a threshold, so a sweep
// over lambda may have no point near a wanted cost. As RouteLLM calibrates its threshold, the
// policy's preferences are kept and a cost weight mu is chosen on held-out inputs: per input the
// arm maximising log pi(a|x) - mu * arm_cost[a]. mu = 0 is the policy's own argmax; a large mu is
// the cheapest arm everywhere.

// Per input (rows of log_probs [N, A]), the arm maximising log_probs[i][a] - mu * arm_costs[a]
// (ties: the lowest index). arm_costs has A entries, each finite; mu >= 0.
std::vector<int64_t> choose_with_cost_weight(const torch::Tensor& log_probs,
                                             const std::vector<double>& arm_costs, double mu);

struct BudgetCalibration {
  double mu = 0;                 // the cost weight chosen
  bool feasible = false;         // the mean cost at mu is within the budget
  double mean_cost = 0;          // the mean of request_costs over the choices at mu
  std::vector<int64_t> choices;  // per calibration input, at mu
  int64_t iterations = 0;        // bisection steps taken
};

struct BudgetCalibrationOptions {
  int64_t max_iterations = 100;
  double tolerance =
      1e-9;  // bisection stops when the bracket is narrower than tolerance * max(1, mu)
};

// The smallest cost weight mu >= 0, found by bisection, whose choices (choose_with_cost_weight) on
// the calibration inputs cost at most `budget` on average, where request_costs [N, A] holds what
// arm a costs on input i (arm_costs is what the decision rule expects an arm to cost, e.g. its mean
// on training inputs; request_costs what it did cost on these inputs).
//  - mu = 0 when the policy's own choices fit the budget;
//  - when even the upper end of the bracket (mu large enough that every input takes an arm of the
//    lowest arm_cost) costs more than the budget, the budget is infeasible: feasible = false, and
//    mu and the choices are that upper end's (the cheapest the policy can be made);
//  - when every arm_cost is the same, mu changes nothing: mu = 0, feasible says whether the argmax
//    fits.
// The mean cost falls as mu grows when request costs follow the arm costs' order; when they do not,
// the mu returned still meets the budget but need not be the smallest that does.
// Errors (chorus::Error): shapes that disagree, no inputs, a budget that is not positive and
// finite, a log-probability or cost that is not finite.
BudgetCalibration calibrate_cost_weight(const torch::Tensor& log_probs,
                                        const std::vector<double>& arm_costs,
                                        const torch::Tensor& request_costs, double budget,
                                        const BudgetCalibrationOptions& options = {});

}  // namespace chorus::collab
