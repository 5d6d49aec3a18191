// Multi-task learning: which task each training row comes from (proportional, temperature or
// round-robin sampling) and how the per-task losses are combined (fixed weights, or learned
// homoscedastic uncertainty as in Kendall, Gal and Cipolla 2018).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace chorus::train {

enum class TaskSampling { proportional, temperature, round_robin };
enum class LossWeighting { fixed, uncertainty };

TaskSampling parse_task_sampling(const std::string& name, const std::string& where);
LossWeighting parse_loss_weighting(const std::string& name, const std::string& where);
std::string to_string(TaskSampling sampling);
std::string to_string(LossWeighting weighting);

// Draws the task of each row. `sizes` are the tasks' relative sizes (data set sizes or declared
// weights): proportional p_i ∝ size_i; temperature p_i ∝ size_i^(1/T) (T = 1 is proportional,
// large T tends to uniform); round-robin cycles through the tasks row by row, starting where the
// previous batch stopped (so a batch of B rows from step s is a pure function of (s, B)).
class TaskSampler {
 public:
  TaskSampler(std::vector<double> sizes, TaskSampling sampling, double temperature = 1.0);
  const std::vector<double>& probabilities() const { return probabilities_; }
  // The tasks of the `rows` rows of optimizer step `step`, micro-batch `micro` of `micro_batches`.
  std::vector<int64_t> draw(int64_t step, int64_t micro, int64_t micro_batches, int64_t rows, std::mt19937_64& rng) const;

 private:
  TaskSampling sampling_;
  std::vector<double> probabilities_;
};

// Combines per-task mean losses L_i of n_i rows. fixed: each row weighs its task's weight w_i,
// sum_i w_i n_i L_i / sum_i w_i n_i (equal weights give the plain mean over rows).
// uncertainty: sum_i exp(-s_i) L_i + s_i over the tasks present, with a learned log-variance s_i
// per task (parameter "log_variance", zero at the start).
class TaskLossWeightsImpl : public torch::nn::Module {
 public:
  TaskLossWeightsImpl(LossWeighting weighting, std::vector<double> weights);
  // losses[i]: the mean loss of task i over its rows[i] rows in the batch (undefined when 0 rows).
  torch::Tensor combine(const std::vector<torch::Tensor>& losses, const std::vector<int64_t>& rows) const;
  LossWeighting weighting() const { return weighting_; }

 private:
  LossWeighting weighting_;
  std::vector<double> weights_;
  torch::Tensor log_variance_;
};
TORCH_MODULE(TaskLossWeights);

}  // namespace chorus::train
