// Small training problems for the trainer tests: linear regression and a two-layer MLP.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "train/trainer.h"

namespace chorus::testing {

// A generator seeded from (seed, a, b): every batch is a pure function of its coordinates.
inline at::Generator batch_generator(uint64_t seed, int64_t a, int64_t b) {
  uint64_t z = seed * 0x100000001B3ULL + static_cast<uint64_t>(a) * 0x9E3779B97F4A7C15ULL +
               static_cast<uint64_t>(b) * 0xC2B2AE3D27D4EB4FULL + 1;
  z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDULL;
  return at::detail::createCPUGenerator(z ^ (z >> 29));
}

// y = x·w* + 0.5 with noise, fitted by w, b under mean squared error. Micro-batch
// `micro` of step `step` is rows [micro*rows, (micro+1)*rows) of the step's
// batch of rows*parts rows, so one problem with parts=k, accumulation=k and one
// with parts=1, rows*k rows, accumulation=1 see the same data.
class LinearRegression : public train::TrainingProblem {
 public:
  LinearRegression(int64_t dim, int64_t rows, int64_t parts, uint64_t seed, bool concatenate = false)
      : dim_(dim), rows_(rows), parts_(parts), seed_(seed), concatenate_(concatenate) {
    w_ = torch::zeros({dim}, torch::kFloat64).requires_grad_(true);
    b_ = torch::zeros({}, torch::kFloat64).requires_grad_(true);
    auto g = batch_generator(seed, -1, -1);
    target_ = torch::randn({dim}, g, torch::kFloat64);
  }
  std::vector<std::pair<std::string, torch::Tensor>> parameters() override { return {{"w", w_}, {"b", b_}}; }

  std::pair<torch::Tensor, torch::Tensor> rows(int64_t step, int64_t part) const {
    auto g = batch_generator(seed_, step, part);
    torch::Tensor x = torch::randn({rows_, dim_}, g, torch::kFloat64);
    torch::Tensor y = x.matmul(target_) + 0.5 + 0.1 * torch::randn({rows_}, g, torch::kFloat64);
    return {x, y};
  }

  train::MicroBatchLoss loss(int64_t step, int64_t micro) override {
    std::vector<torch::Tensor> xs, ys;
    if (concatenate_) {
      for (int64_t part = 0; part < parts_; ++part) {
        auto [x, y] = rows(step, part);
        xs.push_back(x);
        ys.push_back(y);
      }
    } else {
      auto [x, y] = rows(step, micro);
      xs.push_back(x);
      ys.push_back(y);
    }
    torch::Tensor x = torch::cat(xs), y = torch::cat(ys);
    torch::Tensor prediction = x.matmul(w_) + b_;
    return {torch::mse_loss(prediction, y), x.size(0)};
  }

  torch::Tensor w_, b_;

 private:
  int64_t dim_, rows_, parts_;
  uint64_t seed_;
  bool concatenate_;
  torch::Tensor target_;
};

// A two-layer MLP with dropout (drawn from LibTorch's global generator, which the
// trainer reseeds per step) regressing a fixed random teacher network.
class TinyMlp : public train::TrainingProblem {
 public:
  explicit TinyMlp(uint64_t seed, int64_t input = 16, int64_t hidden = 32, int64_t batch = 32)
      : seed_(seed), input_(input), batch_(batch) {
    auto g = batch_generator(seed, -7, -7);
    w1_ = (torch::randn({input, hidden}, g) / std::sqrt(static_cast<double>(input))).requires_grad_(true);
    b1_ = torch::zeros({hidden}).requires_grad_(true);
    w2_ = (torch::randn({hidden, 1}, g) / std::sqrt(static_cast<double>(hidden))).requires_grad_(true);
    b2_ = torch::zeros({1}).requires_grad_(true);
    teacher_ = torch::randn({input, 1}, g);
  }
  std::vector<std::pair<std::string, torch::Tensor>> parameters() override {
    return {{"layer1.weight", w1_}, {"layer1.bias", b1_}, {"layer2.weight", w2_}, {"layer2.bias", b2_}};
  }
  torch::Tensor forward(const torch::Tensor& x, bool training) const {
    torch::Tensor h = torch::gelu(x.matmul(w1_) + b1_);
    h = torch::dropout(h, 0.1, training);
    return h.matmul(w2_) + b2_;
  }
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t a, int64_t b) const {
    auto g = batch_generator(seed_, a, b);
    torch::Tensor x = torch::randn({batch_, input_}, g);
    return {x, torch::sin(x.matmul(teacher_))};
  }
  train::MicroBatchLoss loss(int64_t step, int64_t micro) override {
    auto [x, y] = batch(step, micro);
    return {torch::mse_loss(forward(x, true), y), batch_};
  }
  std::map<std::string, double> evaluate(int64_t step) override {
    (void)step;
    auto [x, y] = batch(-3, -3);
    return {{"loss", torch::mse_loss(forward(x, false), y).item<double>()}};
  }

  torch::Tensor w1_, b1_, w2_, b2_;

 private:
  uint64_t seed_;
  int64_t input_, batch_;
  torch::Tensor teacher_;
};

}  // namespace chorus::testing
