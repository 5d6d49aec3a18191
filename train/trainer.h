// The generic trainer: AdamW with schedules, clipping, accumulation, evaluation, early stopping, resume.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace chorus::train {

struct OptimizerOptions {
  double learning_rate = 1e-3;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
};

// After the linear warm-up: constant, linear decay to min, cosine decay to min.
enum class Schedule { constant, linear, cosine };

struct ScheduleOptions {
  Schedule kind = Schedule::cosine;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;  // the decay ends at base_lr * min_lr_ratio
};

// Learning rate of optimizer step `step` (0-based) out of `total_steps`: a
// linear warm-up base_lr * (step + 1) / warmup_steps (so no step runs at lr 0),
// then the decay over progress p = (step - warmup_steps) / (total_steps -
// warmup_steps), from base_lr at p = 0 towards base_lr * min_lr_ratio at p = 1
// (the step after the last, as in Hugging Face's schedules).
double learning_rate_at(int64_t step, int64_t total_steps, double base_lr, const ScheduleOptions& schedule);

struct TrainerOptions {
  std::string name = "train";           // shown in progress lines
  int64_t steps = 1000;                 // optimizer steps
  int64_t accumulation = 1;             // micro-batches per step (each micro loss is divided by accumulation)
  double clip_norm = 1.0;               // global L2 norm clip; <= 0: off
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  int64_t eval_every = 0;               // 0: only at the end
  int64_t checkpoint_every = 100;       // steps; also at the start, at the end and after each eval
  int64_t log_every = 10;               // metrics.jsonl train records (and plain progress lines)
  std::string best_metric;              // an evaluate() key; empty: best = latest
  bool higher_is_better = true;
  int64_t early_stopping_patience = 0;  // evals without improvement before stopping; 0: off
  uint64_t seed = 0;
  bool show_progress = true;
  bool plain_progress = false;          // periodic lines even on a terminal (several runs side by side)
  std::string checkpoint_extra = "{}";  // JSON stored verbatim in every checkpoint ("extra")
};

struct MicroBatchLoss {
  torch::Tensor loss;  // scalar with grad
  int64_t tokens = 0;
};

class TrainingProblem {
 public:
  virtual ~TrainingProblem() = default;
  // Trainable parameters with stable names (the checkpoint's keys). Called once.
  virtual std::vector<std::pair<std::string, torch::Tensor>> parameters() = 0;
  // Loss of micro-batch `micro` of optimizer step `step`. For exact resume it must depend only on
  // (step, micro, seed, parameters): draw data and noise from generators seeded from them.
  // (The trainer also reseeds LibTorch's global generator from (seed, step) before each step.)
  virtual MicroBatchLoss loss(int64_t step, int64_t micro) = 0;
  // Held-out metrics at `step` (called under NoGradGuard); may be empty.
  virtual std::map<std::string, double> evaluate(int64_t step) {
    (void)step;
    return {};
  }
};

struct TrainResult {
  int64_t steps_done = 0;
  int64_t best_step = -1;
  double best_value = 0;
  bool stopped_early = false;
  double seconds = 0;
  std::map<std::string, double> last_eval;
  std::vector<double> losses;  // per step run by this call
};

// Runs training writing into `folder` (an existing directory): checkpoints/latest.h5, checkpoints/best.h5,
// metrics.jsonl, metrics.h5. With resume=true it continues from checkpoints/latest.h5 (parameters, AdamW
// state, step, best value, patience counter), truncating metrics.jsonl records after that step; if that
// checkpoint already marks the run finished, it returns at once with the stored result. With resume=false
// and an existing checkpoint: error. The best parameters are NOT loaded back automatically.
TrainResult train(TrainingProblem& problem, const TrainerOptions& options, const std::filesystem::path& folder,
                  bool resume);

// Global L2 norm of the gradients of `tensors` (those without a gradient are
// skipped), computed in float32; when clip_norm > 0 and the norm exceeds it,
// the gradients are scaled by clip_norm / (norm + 1e-6). Returns the norm before clipping.
double clip_gradient_norm(const std::vector<torch::Tensor>& tensors, double clip_norm);

// Loads the model tensors of a checkpoint into `parameters` (names and shapes must match:
// otherwise one error listing missing/unexpected/mismatched names, naming the file).
void load_parameters(const std::filesystem::path& checkpoint,
                     const std::vector<std::pair<std::string, torch::Tensor>>& parameters);

}  // namespace chorus::train
