// Multi-task sampling and loss weighting.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "common/error.h"
#include "train/multitask.h"

namespace chorus::train {
namespace {

TEST(TaskSampler, ProportionalAndTemperatureProbabilities) {
  TaskSampler proportional({1.0, 3.0}, TaskSampling::proportional);
  EXPECT_DOUBLE_EQ(proportional.probabilities()[0], 0.25);
  EXPECT_DOUBLE_EQ(proportional.probabilities()[1], 0.75);
  // p ∝ size^(1/T): T = 2 gives sqrt(1) : sqrt(9) = 1 : 3 for sizes 1 and 9.
  TaskSampler temperature({1.0, 9.0}, TaskSampling::temperature, 2.0);
  EXPECT_NEAR(temperature.probabilities()[0], 0.25, 1e-12);
  // A very high temperature tends to uniform.
  TaskSampler flat({1.0, 1000.0}, TaskSampling::temperature, 1e6);
  EXPECT_NEAR(flat.probabilities()[0], 0.5, 1e-3);
}

TEST(TaskSampler, DrawsFollowTheProbabilities) {
  TaskSampler sampler({1.0, 3.0}, TaskSampling::proportional);
  std::mt19937_64 rng(7);
  int64_t ones = 0;
  const int64_t n = 40000;
  for (const auto t : sampler.draw(0, 0, 1, n, rng)) ones += t;
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.01);
}

TEST(TaskSampler, RoundRobinContinuesAcrossMicroBatchesAndSteps) {
  TaskSampler sampler({5.0, 1.0, 1.0}, TaskSampling::round_robin);
  std::mt19937_64 rng(0);
  // Step 1, micro 1 of 2, 4 rows: rows 12..15 of the run -> tasks 0, 1, 2, 0.
  EXPECT_EQ(sampler.draw(1, 1, 2, 4, rng), (std::vector<int64_t>{0, 1, 2, 0}));
  EXPECT_EQ(sampler.draw(0, 0, 2, 4, rng), (std::vector<int64_t>{0, 1, 2, 0}));
  EXPECT_EQ(sampler.draw(0, 1, 2, 4, rng), (std::vector<int64_t>{1, 2, 0, 1}));
}

TEST(TaskLossWeights, FixedWeightsWeighRows) {
  TaskLossWeights equal(LossWeighting::fixed, std::vector<double>{1.0, 1.0});
  const auto a = torch::tensor(2.0), b = torch::tensor(5.0);
  // Equal weights: the plain mean over rows (3 rows of 2.0, 1 row of 5.0).
  EXPECT_NEAR(equal->combine({a, b}, {3, 1}).item<double>(), (3 * 2.0 + 5.0) / 4, 1e-12);
  TaskLossWeights weighted(LossWeighting::fixed, std::vector<double>{1.0, 3.0});
  EXPECT_NEAR(weighted->combine({a, b}, {3, 1}).item<double>(), (3 * 2.0 + 3 * 5.0) / 6, 1e-12);
  // A task absent from the batch is skipped.
  EXPECT_NEAR(weighted->combine({a, torch::Tensor()}, {3, 0}).item<double>(), 2.0, 1e-12);
  EXPECT_TRUE(equal->parameters().empty());
}

TEST(TaskLossWeights, UncertaintyLearnsLogVariances) {
  TaskLossWeights weights(LossWeighting::uncertainty, std::vector<double>{1.0, 1.0});
  const auto s = weights->named_parameters()["log_variance"];
  ASSERT_TRUE(s.defined());
  const auto total = weights->combine({torch::tensor(2.0), torch::tensor(0.5)}, {4, 4});
  EXPECT_NEAR(total.item<double>(), 2.5, 1e-12);  // exp(0) * L + 0 summed
  total.backward();
  // d/ds (exp(-s) L + s) = 1 - exp(-s) L.
  EXPECT_NEAR(s.grad()[0].item<double>(), 1.0 - 2.0, 1e-6);
  EXPECT_NEAR(s.grad()[1].item<double>(), 1.0 - 0.5, 1e-6);
}

TEST(MultiTask, BadInputIsNamed) {
  EXPECT_THROW(TaskSampler({}, TaskSampling::proportional), Error);
  EXPECT_THROW(TaskSampler({1.0, 0.0}, TaskSampling::proportional), Error);
  EXPECT_THROW(TaskSampler({1.0}, TaskSampling::temperature, 0.0), Error);
  EXPECT_THROW(TaskLossWeights(LossWeighting::fixed, std::vector<double>{1.0, -1.0}), Error);
  TaskLossWeights weights(LossWeighting::fixed, std::vector<double>{1.0, 1.0});
  EXPECT_THROW(weights->combine({torch::Tensor(), torch::Tensor()}, {0, 0}), Error);
  try {
    parse_task_sampling("roundrobin", "teams.fusion.task_sampling");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("round_robin"), std::string::npos);
  }
}

}  // namespace
}  // namespace chorus::train
