// Task sampling and loss weighting for multi-task training.
#include "train/multitask.h"

#include <torch/torch.h>

#include <cmath>
#include <numeric>

#include "common/error.h"

namespace chorus::train {

TaskSampling parse_task_sampling(const std::string& name, const std::string& where) {
  if (name == "proportional") return TaskSampling::proportional;
  if (name == "temperature") return TaskSampling::temperature;
  if (name == "round_robin") return TaskSampling::round_robin;
  throw Error(where + ": unknown task sampling '" + name + "' (expected proportional, temperature or round_robin)");
}

LossWeighting parse_loss_weighting(const std::string& name, const std::string& where) {
  if (name == "fixed") return LossWeighting::fixed;
  if (name == "uncertainty") return LossWeighting::uncertainty;
  throw Error(where + ": unknown loss weighting '" + name + "' (expected fixed or uncertainty)");
}

std::string to_string(TaskSampling s) {
  return s == TaskSampling::proportional ? "proportional" : s == TaskSampling::temperature ? "temperature" : "round_robin";
}
std::string to_string(LossWeighting w) { return w == LossWeighting::fixed ? "fixed" : "uncertainty"; }

TaskSampler::TaskSampler(std::vector<double> sizes, TaskSampling sampling, double temperature) : sampling_(sampling) {
  CHORUS_CHECK(!sizes.empty(), "task sampling: no tasks");
  CHORUS_CHECK(temperature > 0, "task sampling: temperature = ", temperature, "; expected > 0");
  const double exponent = sampling == TaskSampling::temperature ? 1.0 / temperature : 1.0;
  double total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    CHORUS_CHECK(sizes[i] > 0 && std::isfinite(sizes[i]), "task sampling: task ", i, " has size ", sizes[i],
                 "; expected a positive number");
    probabilities_.push_back(std::pow(sizes[i], exponent));
    total += probabilities_.back();
  }
  for (auto& p : probabilities_) p /= total;
}

std::vector<int64_t> TaskSampler::draw(int64_t step, int64_t micro, int64_t micro_batches, int64_t rows,
                                       std::mt19937_64& rng) const {
  std::vector<int64_t> tasks(static_cast<size_t>(rows));
  const auto n = static_cast<int64_t>(probabilities_.size());
  if (sampling_ == TaskSampling::round_robin) {
    const int64_t first = (step * micro_batches + micro) * rows;
    for (int64_t r = 0; r < rows; ++r) tasks[static_cast<size_t>(r)] = (first + r) % n;
    return tasks;
  }
  std::discrete_distribution<int64_t> pick(probabilities_.begin(), probabilities_.end());
  for (auto& t : tasks) t = pick(rng);
  return tasks;
}

TaskLossWeightsImpl::TaskLossWeightsImpl(LossWeighting weighting, std::vector<double> weights)
    : weighting_(weighting), weights_(std::move(weights)) {
  CHORUS_CHECK(!weights_.empty(), "loss weighting: no tasks");
  for (size_t i = 0; i < weights_.size(); ++i) {
    CHORUS_CHECK(weights_[i] > 0 && std::isfinite(weights_[i]), "loss weighting: task ", i, " has weight ",
                 weights_[i], "; expected a positive number");
  }
  if (weighting_ == LossWeighting::uncertainty) {
    log_variance_ = register_parameter("log_variance", torch::zeros({static_cast<int64_t>(weights_.size())}));
  }
}

torch::Tensor TaskLossWeightsImpl::combine(const std::vector<torch::Tensor>& losses,
                                           const std::vector<int64_t>& rows) const {
  CHORUS_CHECK(losses.size() == weights_.size() && rows.size() == weights_.size(), "loss weighting: ",
               losses.size(), " task losses and ", rows.size(), " row counts for ", weights_.size(), " tasks");
  torch::Tensor total;
  double weight_sum = 0;
  for (size_t i = 0; i < losses.size(); ++i) {
    if (!losses[i].defined() || rows[i] == 0) continue;
    torch::Tensor term;
    if (weighting_ == LossWeighting::uncertainty) {
      const auto s = log_variance_[static_cast<int64_t>(i)];
      term = torch::exp(-s) * losses[i] + s;
    } else {
      const double w = weights_[i] * static_cast<double>(rows[i]);
      term = losses[i] * w;
      weight_sum += w;
    }
    total = total.defined() ? total + term : term;
  }
  CHORUS_CHECK(total.defined(), "loss weighting: the batch holds no task");
  return weighting_ == LossWeighting::fixed ? total / weight_sum : total;
}

}  // namespace chorus::train
