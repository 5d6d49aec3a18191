// A small real training run (a two-layer MLP through chorus::train::train) that
// the resume test starts, kills with SIGKILL and resumes.
// Usage: toy_training_main FOLDER [--resume] [--steps N] [--step-delay-ms MS]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "tests/train/toy_problems.h"
#include "train/trainer.h"

namespace {

// Sleeps in every micro-batch so that a run lasts long enough to be killed midway.
class SlowMlp : public chorus::testing::TinyMlp {
 public:
  SlowMlp(uint64_t seed, int delay_ms) : TinyMlp(seed, 16, 64, 64), delay_ms_(delay_ms) {}
  chorus::train::MicroBatchLoss loss(int64_t step, int64_t micro) override {
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    return TinyMlp::loss(step, micro);
  }

 private:
  int delay_ms_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FOLDER [--resume] [--steps N] [--step-delay-ms MS]\n", argv[0]);
    return 2;
  }
  const std::string folder = argv[1];
  bool resume = false;
  int64_t steps = 60;
  int delay_ms = 0;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--resume") {
      resume = true;
    } else if (arg == "--steps" && i + 1 < argc) {
      steps = std::atoll(argv[++i]);
    } else if (arg == "--step-delay-ms" && i + 1 < argc) {
      delay_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "unknown argument: %s\n", arg.c_str());
      return 2;
    }
  }
  torch::set_num_threads(1);  // the same thread count in every process keeps the sums identical
  try {
    SlowMlp problem(5, delay_ms);
    chorus::train::TrainerOptions options;
    options.name = "toy";
    options.steps = steps;
    options.accumulation = 2;
    options.checkpoint_every = 5;
    options.log_every = 1;
    options.eval_every = 20;
    options.best_metric = "loss";
    options.higher_is_better = false;
    options.optimizer.learning_rate = 3e-3;
    options.schedule = {chorus::train::Schedule::cosine, 5, 0.1};
    options.seed = 42;
    const chorus::train::TrainResult result = chorus::train::train(problem, options, folder, resume);
    std::printf("steps %lld best_step %lld best %.17g\n", static_cast<long long>(result.steps_done),
                static_cast<long long>(result.best_step), result.best_value);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "toy_training_main: %s\n", e.what());
    return 1;
  }
  return 0;
}
