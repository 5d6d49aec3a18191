// The generic trainer: one loop of AdamW steps with checkpoints, metrics and progress.
#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/error.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/progress.h"
#include "train/run_folder.h"

namespace chorus::train {

namespace fs = std::filesystem;

constexpr double kPi = 3.14159265358979323846;

double learning_rate_at(int64_t step, int64_t total_steps, double base_lr, const ScheduleOptions& schedule) {
  CHORUS_CHECK(total_steps > 0, "learning rate schedule: total_steps must be positive, got ", total_steps);
  CHORUS_CHECK(step >= 0, "learning rate schedule: step must be >= 0, got ", step);
  CHORUS_CHECK(schedule.warmup_steps >= 0, "learning rate schedule: warmup_steps must be >= 0, got ",
               schedule.warmup_steps);
  CHORUS_CHECK(schedule.min_lr_ratio >= 0 && schedule.min_lr_ratio <= 1,
               "learning rate schedule: min_lr_ratio must lie in [0, 1], got ", schedule.min_lr_ratio);
  if (step < schedule.warmup_steps) {
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  }
  if (schedule.kind == Schedule::constant) return base_lr;
  const int64_t span = std::max<int64_t>(total_steps - schedule.warmup_steps, 1);
  const double progress = std::min(1.0, static_cast<double>(step - schedule.warmup_steps) / static_cast<double>(span));
  const double min_ratio = schedule.min_lr_ratio;
  const double shape = schedule.kind == Schedule::linear ? 1.0 - progress
                                                         : 0.5 * (1.0 + std::cos(kPi * progress));
  return base_lr * (min_ratio + (1.0 - min_ratio) * shape);
}

namespace {

void check_options(const TrainerOptions& o) {
  CHORUS_CHECK(o.steps > 0, "trainer: steps must be positive, got ", o.steps);
  CHORUS_CHECK(o.accumulation >= 1, "trainer: accumulation must be >= 1, got ", o.accumulation);
  CHORUS_CHECK(o.eval_every >= 0, "trainer: eval_every must be >= 0, got ", o.eval_every);
  CHORUS_CHECK(o.checkpoint_every >= 1, "trainer: checkpoint_every must be >= 1, got ", o.checkpoint_every);
  CHORUS_CHECK(o.log_every >= 1, "trainer: log_every must be >= 1, got ", o.log_every);
  CHORUS_CHECK(o.early_stopping_patience >= 0, "trainer: early_stopping_patience must be >= 0, got ",
               o.early_stopping_patience);
  CHORUS_CHECK(o.early_stopping_patience == 0 || !o.best_metric.empty(),
               "trainer: early_stopping_patience needs best_metric (the evaluation metric to watch)");
  CHORUS_CHECK(o.optimizer.learning_rate >= 0, "trainer: optimizer learning_rate must be >= 0, got ",
               o.optimizer.learning_rate);
  CHORUS_CHECK(o.optimizer.weight_decay >= 0, "trainer: optimizer weight_decay must be >= 0, got ",
               o.optimizer.weight_decay);
  CHORUS_CHECK(o.optimizer.beta1 >= 0 && o.optimizer.beta1 < 1 && o.optimizer.beta2 >= 0 && o.optimizer.beta2 < 1,
               "trainer: optimizer betas must lie in [0, 1), got ", o.optimizer.beta1, " and ", o.optimizer.beta2);
  CHORUS_CHECK(o.optimizer.epsilon >= 0, "trainer: optimizer epsilon must be >= 0, got ", o.optimizer.epsilon);
  CHORUS_CHECK(o.schedule.warmup_steps >= 0, "trainer: schedule warmup_steps must be >= 0, got ",
               o.schedule.warmup_steps);
  CHORUS_CHECK(o.schedule.min_lr_ratio >= 0 && o.schedule.min_lr_ratio <= 1,
               "trainer: schedule min_lr_ratio must lie in [0, 1], got ", o.schedule.min_lr_ratio);
  try {
    const nlohmann::json extra = nlohmann::json::parse(o.checkpoint_extra);
    CHORUS_CHECK(extra.is_object(), "trainer: checkpoint_extra must be a JSON object, got ", o.checkpoint_extra);
  } catch (const nlohmann::json::exception& e) {
    throw Error(::chorus::detail::concat("trainer: checkpoint_extra must be JSON (", e.what(), ")"));
  }
}

// The options that shape the loss sequence; a resumed run must use the same ones.
nlohmann::json options_json(const TrainerOptions& o) {
  const char* kinds[] = {"constant", "linear", "cosine"};
  return {{"steps", o.steps},
          {"accumulation", o.accumulation},
          {"clip_norm", o.clip_norm},
          {"learning_rate", o.optimizer.learning_rate},
          {"weight_decay", o.optimizer.weight_decay},
          {"beta1", o.optimizer.beta1},
          {"beta2", o.optimizer.beta2},
          {"epsilon", o.optimizer.epsilon},
          {"schedule", kinds[static_cast<int>(o.schedule.kind)]},
          {"warmup_steps", o.schedule.warmup_steps},
          {"min_lr_ratio", o.schedule.min_lr_ratio},
          {"eval_every", o.eval_every},
          {"best_metric", o.best_metric},
          {"higher_is_better", o.higher_is_better},
          {"early_stopping_patience", o.early_stopping_patience},
          {"seed", o.seed}};
}

void check_same_options(const Checkpoint& checkpoint, const nlohmann::json& now) {
  nlohmann::json stored;
  try {
    stored = nlohmann::json::parse(checkpoint.state.options);
  } catch (const nlohmann::json::exception& e) {
    throw Error(::chorus::detail::concat("checkpoint '", checkpoint.path.string(), "': trainer_options is not JSON (", e.what(),
                               ")"));
  }
  std::ostringstream differences;
  for (const auto& [key, value] : now.items()) {
    const bool same = stored.contains(key) && stored[key] == value;
    if (!same) {
      differences << (differences.tellp() > 0 ? ", " : "") << key << " "
                  << (stored.contains(key) ? stored[key].dump() : std::string("(absent)")) << " -> " << value.dump();
    }
  }
  CHORUS_CHECK(differences.tellp() == 0, "cannot resume from '", checkpoint.path.string(),
               "': the trainer options differ from the run's (", differences.str(),
               "); a resumed run must use the same options to reproduce the uninterrupted one");
}

// Seeds LibTorch's global generators from (seed, step) so that dropout and other
// draws from them repeat exactly when a run resumes at that step (splitmix64 mixing).
uint64_t step_seed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// bf16 autocast on CUDA for the forward pass; restores the previous settings.
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enable) : enable_(enable) {
    if (!enable_) return;
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (!enable_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enable_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

NamedParameters checked_parameters(TrainingProblem& problem) {
  NamedParameters parameters = problem.parameters();
  CHORUS_CHECK(!parameters.empty(), "trainer: the problem has no trainable parameters");
  std::set<std::string> names;
  for (const auto& [name, tensor] : parameters) {
    CHORUS_CHECK(names.insert(name).second, "trainer: parameter name \"", name, "\" appears twice");
    CHORUS_CHECK(tensor.defined() && tensor.is_floating_point() && tensor.requires_grad(), "trainer: parameter \"",
                 name, "\" must be a defined floating-point tensor that requires grad");
  }
  return parameters;
}

std::map<std::string, double> parse_eval(const std::string& text) {
  std::map<std::string, double> result;
  const nlohmann::json json = nlohmann::json::parse(text);
  for (const auto& [key, value] : json.items()) {
    result[key] = value.is_number() ? value.get<double>() : std::nan("");
  }
  return result;
}

std::string eval_json(const std::map<std::string, double>& values) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [key, value] : values) json[key] = std::isfinite(value) ? nlohmann::json(value) : nlohmann::json();
  return json.dump();
}

std::string describe_eval(const std::string& name, int64_t step, const std::map<std::string, double>& values) {
  std::ostringstream out;
  out << name << "  eval at step " << step << ":";
  for (const auto& [key, value] : values) out << "  " << key << " " << value;
  return out.str();
}

}  // namespace

TrainResult train(TrainingProblem& problem, const TrainerOptions& options, const fs::path& folder, bool resume) {
  const auto started = std::chrono::steady_clock::now();
  check_options(options);
  CHORUS_CHECK(fs::is_directory(folder), "trainer: run folder '", folder.string(), "' does not exist");
  fs::create_directories(checkpoints_path(folder));
  const fs::path latest = latest_checkpoint_path(folder);
  const fs::path best = best_checkpoint_path(folder);

  torch::manual_seed(options.seed);
  const NamedParameters parameters = checked_parameters(problem);
  std::vector<torch::Tensor> tensors;
  for (const auto& entry : parameters) tensors.push_back(entry.second);
  const bool on_cuda = tensors.front().is_cuda();

  torch::optim::AdamW optimizer(tensors, torch::optim::AdamWOptions(options.optimizer.learning_rate)
                                             .betas({options.optimizer.beta1, options.optimizer.beta2})
                                             .eps(options.optimizer.epsilon)
                                             .weight_decay(options.optimizer.weight_decay));
  const nlohmann::json shaping_options = options_json(options);

  CheckpointState state;
  state.seed = options.seed;
  state.extra = options.checkpoint_extra;
  state.options = shaping_options.dump();
  std::map<std::string, double> last_eval;
  if (resume) {
    const Checkpoint checkpoint = read_checkpoint(latest);
    check_same_architecture(checkpoint, parameters);
    check_same_options(checkpoint, shaping_options);
    restore_parameters(checkpoint, parameters);
    restore_optimizer(checkpoint, parameters, optimizer);
    state = checkpoint.state;
    state.extra = options.checkpoint_extra;
    last_eval = parse_eval(state.last_eval);
    if (state.finished) {
      TrainResult result;
      result.steps_done = state.step;
      result.best_step = state.best_step;
      result.best_value = state.best_value;
      result.stopped_early = state.stopped_early;
      result.last_eval = last_eval;
      return result;
    }
  } else {
    CHORUS_CHECK(!fs::exists(latest), "run folder '", folder.string(), "' already holds a checkpoint (",
                 latest.string(), "); resume it or start in an empty folder");
  }

  MetricsLog metrics(folder, resume ? state.step : 0);
  Progress progress(options.name, options.steps, state.step, options.log_every, options.show_progress,
                    !options.plain_progress && Progress::is_terminal(stderr));

  const auto save = [&](bool also_best) {
    if (also_best) save_checkpoint(best, parameters, &optimizer, state);
    save_checkpoint(latest, parameters, &optimizer, state);
    metrics.save_h5();
  };
  if (!resume) save(false);  // step 0: a killed run can resume from its very start

  TrainResult result;
  while (state.step < options.steps && !state.finished) {
    const int64_t step = state.step;
    const auto step_started = std::chrono::steady_clock::now();
    torch::manual_seed(step_seed(options.seed, step));
    const double lr = learning_rate_at(step, options.steps, options.optimizer.learning_rate, options.schedule);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    optimizer.zero_grad();

    double loss = 0;
    int64_t tokens = 0;
    for (int64_t micro = 0; micro < options.accumulation; ++micro) {
      torch::Tensor micro_loss;
      {
        CudaAutocast autocast(on_cuda);
        MicroBatchLoss batch = problem.loss(step, micro);
        CHORUS_CHECK(batch.loss.defined() && batch.loss.numel() == 1 && batch.loss.requires_grad(), "trainer '",
                     options.name, "': loss of step ", step, " micro-batch ", micro,
                     " must be a one-element tensor that requires grad");
        micro_loss = batch.loss.reshape({});
        // A bf16 loss from autocast is summed in float32; float64 losses keep their precision.
        if (micro_loss.scalar_type() != torch::kFloat64) micro_loss = micro_loss.to(torch::kFloat32);
        tokens += batch.tokens;
      }
      const double value = micro_loss.item<double>();
      CHORUS_CHECK(std::isfinite(value), "trainer '", options.name, "': loss of step ", step, " micro-batch ", micro,
                   " is not finite (", value, "); lower the learning rate or check the inputs");
      (micro_loss / static_cast<double>(options.accumulation)).backward();
      loss += value / static_cast<double>(options.accumulation);
    }
    const double grad_norm = clip_gradient_norm(tensors, options.clip_norm);
    optimizer.step();
    state.step = step + 1;
    const int64_t done = state.step;
    result.losses.push_back(loss);

    const double step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_started).count();
    if (done % options.log_every == 0 || done == options.steps) {
      metrics.append({done,
                      "train",
                      {{"loss", loss},
                       {"lr", lr},
                       {"grad_norm", grad_norm},
                       {"tokens", static_cast<double>(tokens)},
                       {"tokens_per_s", step_seconds > 0 ? static_cast<double>(tokens) / step_seconds : 0.0}}});
    }
    progress.update(done, loss, tokens);

    const bool evaluate_now = (options.eval_every > 0 && done % options.eval_every == 0) || done == options.steps;
    bool improved = false;
    if (evaluate_now) {
      {
        torch::NoGradGuard no_grad;
        CudaAutocast autocast(on_cuda);
        last_eval = problem.evaluate(done);
      }
      state.last_eval = eval_json(last_eval);
      if (!last_eval.empty()) {
        metrics.append({done, "eval", last_eval});
        progress.message(describe_eval(options.name, done, last_eval));
      }
      if (!options.best_metric.empty()) {
        auto it = last_eval.find(options.best_metric);
        if (it == last_eval.end()) {
          std::ostringstream keys;
          for (const auto& [key, value] : last_eval) keys << " " << key;
          throw Error(::chorus::detail::concat("trainer '", options.name, "': best_metric \"", options.best_metric,
                                     "\" is not among the evaluation metrics (have:", keys.str(), ")"));
        }
        const double value = it->second;
        improved = state.best_step < 0 ||
                   (options.higher_is_better ? value > state.best_value : value < state.best_value);
        if (improved) {
          state.best_value = value;
          state.best_step = done;
          state.patience_used = 0;
        } else {
          ++state.patience_used;
          if (options.early_stopping_patience > 0 && state.patience_used >= options.early_stopping_patience) {
            state.stopped_early = true;
            progress.message(::chorus::detail::concat(options.name, "  early stop at step ", done, ": no improvement of ",
                                            options.best_metric, " in ", state.patience_used, " evaluations (best ",
                                            state.best_value, " at step ", state.best_step, ")"));
          }
        }
      }
    }
    state.finished = done == options.steps || state.stopped_early;
    if (options.best_metric.empty()) {
      state.best_step = done;
      state.best_value = loss;
    }
    if (done % options.checkpoint_every == 0 || evaluate_now || state.finished) {
      save(options.best_metric.empty() || improved);
    }
  }
  progress.finish();

  result.steps_done = state.step;
  result.best_step = state.best_step;
  result.best_value = state.best_value;
  result.stopped_early = state.stopped_early;
  result.last_eval = last_eval;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

double clip_gradient_norm(const std::vector<torch::Tensor>& tensors, double clip_norm) {
  std::vector<torch::Tensor> norms;
  for (const torch::Tensor& tensor : tensors) {
    if (tensor.grad().defined()) norms.push_back(tensor.grad().detach().to(torch::kFloat32).norm(2));
  }
  if (norms.empty()) return 0;
  const double total = torch::stack(norms).norm(2).item<double>();
  if (clip_norm > 0 && std::isfinite(total)) {
    const double coefficient = clip_norm / (total + 1e-6);
    if (coefficient < 1) {
      torch::NoGradGuard no_grad;
      for (const torch::Tensor& tensor : tensors) {
        if (tensor.grad().defined()) tensor.grad().mul_(coefficient);
      }
    }
  }
  return total;
}

void load_parameters(const fs::path& checkpoint, const std::vector<std::pair<std::string, torch::Tensor>>& parameters) {
  restore_parameters(read_checkpoint(checkpoint), parameters);
}

}  // namespace chorus::train
