// The trainer: schedules, accumulation, clipping, early stopping, determinism, in-process resume.
#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <stdexcept>

#include "common/error.h"
#include "tests/foundation/test_paths.h"
#include "tests/train/toy_problems.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/progress.h"
#include "train/run_folder.h"

namespace chorus::train {
namespace {

using chorus::testing::LinearRegression;
using chorus::testing::TemporaryFolder;
using chorus::testing::TinyMlp;

TrainerOptions quiet_options(int64_t steps) {
  TrainerOptions options;
  options.steps = steps;
  options.checkpoint_every = 5;
  options.log_every = 1;
  options.show_progress = false;
  options.optimizer.learning_rate = 0.05;
  return options;
}

TEST(Schedule, WarmUpIsLinearAndNeverZero) {
  ScheduleOptions s{Schedule::cosine, 4, 0.0};
  EXPECT_DOUBLE_EQ(learning_rate_at(0, 20, 1.0, s), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate_at(1, 20, 1.0, s), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate_at(3, 20, 1.0, s), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at(4, 20, 1.0, s), 1.0);  // decay starts at base
}

TEST(Schedule, LinearAndCosineDecayTowardsTheMinimum) {
  ScheduleOptions linear{Schedule::linear, 0, 0.1};
  EXPECT_DOUBLE_EQ(learning_rate_at(0, 10, 2.0, linear), 2.0);
  EXPECT_NEAR(learning_rate_at(5, 10, 2.0, linear), 2.0 * (0.1 + 0.9 * 0.5), 1e-12);
  EXPECT_NEAR(learning_rate_at(9, 10, 2.0, linear), 2.0 * (0.1 + 0.9 * 0.1), 1e-12);
  EXPECT_NEAR(learning_rate_at(10, 10, 2.0, linear), 0.2, 1e-12);  // the step after the last reaches the minimum
  ScheduleOptions cosine{Schedule::cosine, 2, 0.0};
  EXPECT_DOUBLE_EQ(learning_rate_at(2, 12, 1.0, cosine), 1.0);
  EXPECT_NEAR(learning_rate_at(7, 12, 1.0, cosine), 0.5, 1e-12);  // half way: cos(pi/2) = 0
  EXPECT_NEAR(learning_rate_at(11, 12, 1.0, cosine), 0.5 * (1 + std::cos(M_PI * 0.9)), 1e-12);
  EXPECT_LT(learning_rate_at(11, 12, 1.0, cosine), learning_rate_at(10, 12, 1.0, cosine));
  ScheduleOptions constant{Schedule::constant, 3, 0.0};
  EXPECT_DOUBLE_EQ(learning_rate_at(0, 100, 1.0, constant), 1.0 / 3);
  EXPECT_DOUBLE_EQ(learning_rate_at(99, 100, 1.0, constant), 1.0);
}

TEST(Schedule, RejectsBadArguments) {
  EXPECT_THROW(learning_rate_at(0, 0, 1.0, {}), Error);
  EXPECT_THROW(learning_rate_at(-1, 10, 1.0, {}), Error);
  EXPECT_THROW(learning_rate_at(0, 10, 1.0, {Schedule::linear, 0, 1.5}), Error);
}

TEST(Trainer, AccumulatedMicroBatchesEqualOneConcatenatedBatch) {
  TemporaryFolder tmp;
  std::filesystem::create_directories(tmp / "k");
  std::filesystem::create_directories(tmp / "one");
  LinearRegression accumulated(6, 8, 4, 3), concatenated(6, 8, 4, 3, /*concatenate=*/true);
  TrainerOptions options = quiet_options(12);
  options.clip_norm = 0.5;  // the clip sees the same gradient in both
  options.accumulation = 4;
  const TrainResult a = train(accumulated, options, tmp / "k", false);
  options.accumulation = 1;
  const TrainResult b = train(concatenated, options, tmp / "one", false);
  ASSERT_EQ(a.losses.size(), 12u);
  ASSERT_EQ(b.losses.size(), 12u);
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_NEAR(a.losses[i], b.losses[i], 1e-10) << "step " << i;
  EXPECT_TRUE(torch::allclose(accumulated.w_, concatenated.w_, 1e-9, 1e-10));
  EXPECT_TRUE(torch::allclose(accumulated.b_, concatenated.b_, 1e-9, 1e-10));
  EXPECT_LT(a.losses.back(), a.losses.front());  // it learns
}

TEST(Trainer, ClippingCapsTheGlobalNorm) {
  torch::Tensor a = torch::zeros({3}, torch::requires_grad()), b = torch::zeros({2}, torch::requires_grad()),
                unused = torch::zeros({2}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f, 0.0f});
  b.mutable_grad() = torch::tensor({0.0f, 4.0f});
  EXPECT_NEAR(clip_gradient_norm({a, b, unused}, 1.0), 5.0, 1e-6);
  const double after = std::sqrt(a.grad().pow(2).sum().item<double>() + b.grad().pow(2).sum().item<double>());
  EXPECT_NEAR(after, 1.0, 1e-5);
  EXPECT_NEAR(a.grad()[0].item<double>() / b.grad()[1].item<double>(), 0.75, 1e-6);  // direction kept
  EXPECT_NEAR(clip_gradient_norm({a, b}, 0.0), after, 1e-6);                        // off: measure only
  EXPECT_NEAR(clip_gradient_norm({a, b}, 10.0), after, 1e-6);                       // below the cap: unchanged
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-5);
}

TEST(Trainer, RecordsThePreClipNormAndTheScheduleInMetrics) {
  TemporaryFolder tmp;
  LinearRegression problem(4, 16, 1, 5);
  TrainerOptions options = quiet_options(6);
  options.clip_norm = 1e-3;
  options.schedule = {Schedule::linear, 2, 0.0};
  train(problem, options, tmp.path(), false);
  const auto records = read_metrics_jsonl(tmp / "metrics.jsonl");
  ASSERT_EQ(records.size(), 6u);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].step, static_cast<int64_t>(i) + 1);
    EXPECT_EQ(records[i].split, "train");
    EXPECT_GT(records[i].values.at("grad_norm"), 1e-3);
    EXPECT_DOUBLE_EQ(records[i].values.at("lr"),
                     learning_rate_at(static_cast<int64_t>(i), 6, options.optimizer.learning_rate, options.schedule));
    EXPECT_EQ(records[i].values.at("tokens"), 16);
  }
  ASSERT_TRUE(std::filesystem::exists(tmp / "metrics.h5"));
  const model::TensorFile h5 = model::load_tensor_file(tmp / "metrics.h5");
  EXPECT_EQ(h5.at("train.loss").numel(), 6);
  EXPECT_EQ(h5.at("train.loss.step")[5].item<int64_t>(), 6);
  EXPECT_EQ(h5.at("train.loss")[2].item<double>(), records[2].values.at("loss"));
}

// Scripted evaluation values; remembers the parameters seen at each evaluation.
class ScriptedEvaluation : public LinearRegression {
 public:
  explicit ScriptedEvaluation(std::vector<double> values) : LinearRegression(3, 8, 1, 11), values_(std::move(values)) {}
  std::map<std::string, double> evaluate(int64_t step) override {
    snapshots_[step] = w_.detach().clone();
    return {{"accuracy", values_.at(static_cast<size_t>(step) - 1)}, {"other", 1.0}};
  }
  std::vector<double> values_;
  std::map<int64_t, torch::Tensor> snapshots_;
};

TEST(Trainer, EarlyStoppingStopsAfterPatienceAndKeepsTheBest) {
  TemporaryFolder tmp;
  ScriptedEvaluation problem({0.5, 0.6, 0.55, 0.6, 0.59, 0.9, 0.95, 0.99});
  TrainerOptions options = quiet_options(8);
  options.eval_every = 1;
  options.best_metric = "accuracy";
  options.early_stopping_patience = 3;
  const TrainResult result = train(problem, options, tmp.path(), false);
  EXPECT_TRUE(result.stopped_early);
  EXPECT_EQ(result.steps_done, 5);
  EXPECT_EQ(result.losses.size(), 5u);
  EXPECT_EQ(result.best_step, 2);
  EXPECT_DOUBLE_EQ(result.best_value, 0.6);
  EXPECT_DOUBLE_EQ(result.last_eval.at("accuracy"), 0.59);
  // best.h5 holds the parameters evaluated at step 2, latest.h5 those of step 5.
  torch::Tensor w = torch::zeros({3}, torch::kFloat64).requires_grad_(true);
  torch::Tensor b = torch::zeros({}, torch::kFloat64).requires_grad_(true);
  load_parameters(best_checkpoint_path(tmp.path()), {{"w", w}, {"b", b}});
  EXPECT_TRUE(torch::equal(w, problem.snapshots_.at(2)));
  load_parameters(latest_checkpoint_path(tmp.path()), {{"w", w}, {"b", b}});
  EXPECT_TRUE(torch::equal(w, problem.snapshots_.at(5)));
  EXPECT_TRUE(read_checkpoint(latest_checkpoint_path(tmp.path())).state.finished);
  // The finished run resumes to its stored result at once.
  ScriptedEvaluation again({0.5});
  const TrainResult resumed = train(again, options, tmp.path(), true);
  EXPECT_TRUE(resumed.losses.empty());
  EXPECT_TRUE(resumed.stopped_early);
  EXPECT_EQ(resumed.steps_done, 5);
  EXPECT_EQ(resumed.best_step, 2);
  EXPECT_DOUBLE_EQ(resumed.last_eval.at("accuracy"), 0.59);
}

TEST(Trainer, UnknownBestMetricIsAnErrorListingTheKeys) {
  TemporaryFolder tmp;
  ScriptedEvaluation problem({0.5, 0.6});
  TrainerOptions options = quiet_options(2);
  options.best_metric = "acc";
  try {
    train(problem, options, tmp.path(), false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"acc\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("accuracy other"), std::string::npos) << e.what();
  }
}

TEST(Trainer, SameSeedGivesIdenticalLosses) {
  TemporaryFolder tmp;
  std::filesystem::create_directories(tmp / "a");
  std::filesystem::create_directories(tmp / "b");
  std::filesystem::create_directories(tmp / "c");
  TrainerOptions options = quiet_options(15);
  options.accumulation = 2;
  options.schedule.warmup_steps = 3;
  TinyMlp first(7), second(7);
  const TrainResult a = train(first, options, tmp / "a", false);
  const TrainResult b = train(second, options, tmp / "b", false);
  ASSERT_EQ(a.losses.size(), 15u);
  EXPECT_EQ(a.losses, b.losses);  // bit for bit
  options.seed = 1;               // the trainer's per-step seeds drive the dropout masks
  TinyMlp third(7);
  const TrainResult c = train(third, options, tmp / "c", false);
  EXPECT_NE(a.losses, c.losses);
}

// Throws from loss() at a chosen step, like a run that dies there.
class Crashing : public TinyMlp {
 public:
  Crashing(uint64_t seed, int64_t crash_at) : TinyMlp(seed), crash_at_(crash_at) {}
  train::MicroBatchLoss loss(int64_t step, int64_t micro) override {
    if (step == crash_at_) throw std::runtime_error("simulated crash");
    return TinyMlp::loss(step, micro);
  }
  int64_t crash_at_;
};

TEST(Trainer, ResumeAfterACrashReproducesTheUninterruptedLosses) {
  TemporaryFolder tmp;
  std::filesystem::create_directories(tmp / "whole");
  std::filesystem::create_directories(tmp / "crashed");
  TrainerOptions options = quiet_options(20);
  options.eval_every = 6;
  options.best_metric = "loss";
  options.higher_is_better = false;
  TinyMlp whole(3);
  const TrainResult reference = train(whole, options, tmp / "whole", false);

  Crashing crashing(3, 13);  // checkpoints at 5, 6 (eval), 10, 12 (eval): resumes from 12
  EXPECT_THROW(train(crashing, options, tmp / "crashed", false), std::runtime_error);
  EXPECT_EQ(read_checkpoint(latest_checkpoint_path(tmp / "crashed")).state.step, 12);
  TinyMlp resumed_problem(3);
  const TrainResult resumed = train(resumed_problem, options, tmp / "crashed", true);
  ASSERT_EQ(resumed.losses.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(resumed.losses[i], reference.losses[12 + i]) << "step " << 13 + i;
  EXPECT_EQ(resumed.best_step, reference.best_step);
  EXPECT_EQ(resumed.best_value, reference.best_value);
  EXPECT_TRUE(torch::equal(resumed_problem.w2_, whole.w2_));
  // The metrics log holds each step once, equal to the uninterrupted run's.
  const auto a = read_metrics_jsonl(tmp / "whole" / "metrics.jsonl");
  const auto b = read_metrics_jsonl(tmp / "crashed" / "metrics.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].split, b[i].split);
    EXPECT_EQ(a[i].values.at("loss"), b[i].values.at("loss"));
  }
}

TEST(Trainer, RefusesToStartOverACheckpointOrResumeWithOtherOptions) {
  TemporaryFolder tmp;
  TinyMlp problem(1);
  TrainerOptions options = quiet_options(3);
  train(problem, options, tmp.path(), false);
  TinyMlp again(1);
  EXPECT_THROW(train(again, options, tmp.path(), false), Error);
  options.steps = 5;
  try {
    train(again, options, tmp.path(), true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("steps 3 -> 5"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeIntoAnotherArchitectureIsAnError) {
  TemporaryFolder tmp;
  TinyMlp small(1, 16, 32);
  train(small, quiet_options(2), tmp.path(), false);
  TinyMlp wider(1, 16, 48);
  TrainerOptions options = quiet_options(2);
  try {
    train(wider, options, tmp.path(), true);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another architecture"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layer1.weight"), std::string::npos) << e.what();
  }
}

TEST(Trainer, RejectsBadOptions) {
  TemporaryFolder tmp;
  TinyMlp problem(1);
  TrainerOptions options = quiet_options(0);
  EXPECT_THROW(train(problem, options, tmp.path(), false), Error);
  options = quiet_options(2);
  options.accumulation = 0;
  EXPECT_THROW(train(problem, options, tmp.path(), false), Error);
  options = quiet_options(2);
  options.early_stopping_patience = 2;  // without best_metric
  EXPECT_THROW(train(problem, options, tmp.path(), false), Error);
  EXPECT_THROW(train(problem, quiet_options(2), tmp / "missing", false), Error);
}

TEST(Progress, FormatsEtaAndBar) {
  EXPECT_EQ(format_eta(0), "00:00");
  EXPECT_EQ(format_eta(133), "02:13");
  EXPECT_EQ(format_eta(59.6), "01:00");
  EXPECT_EQ(format_eta(3725), "1:02:05");
  EXPECT_EQ(format_eta(-1), "--:--");
  EXPECT_EQ(format_eta(std::nan("")), "--:--");
  EXPECT_EQ(format_bar(0, 10, 10), "[..........]");
  EXPECT_EQ(format_bar(5, 10, 10), "[#####.....]");
  EXPECT_EQ(format_bar(120, 3000, 10), "[..........]");
  EXPECT_EQ(format_bar(10, 10, 4), "[####]");
  EXPECT_EQ(format_bar(20, 10, 4), "[####]");
  EXPECT_EQ(format_bar(3, 0, 4), "[....]");
  ProgressSnapshot s{"train", 120, 3000, 0.43121, 1234.4, 133};
  EXPECT_EQ(format_progress_line(s, 10), "train  step 120/3000 [..........]  loss 0.4312  1234 tok/s  ETA 02:13");
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress("p", 10, 0, 3, true, false, out, /*min_interval_s=*/0.0);
  for (int64_t step = 1; step <= 10; ++step) progress.update(step, 1.0, 5);
  progress.finish();
  std::rewind(out);
  std::string text;
  for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
  std::fclose(out);
  // The first step, every third and the last, one line each, no carriage returns.
  EXPECT_EQ(text.find('\r'), std::string::npos);
  int lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 5) << text;  // steps 1, 3, 6, 9, 10
  EXPECT_NE(text.find("p  step 1/10"), std::string::npos);
  EXPECT_NE(text.find("p  step 10/10 [####################]"), std::string::npos);
  EXPECT_EQ(text.find("step 4/10"), std::string::npos);
}

TEST(Progress, RedrawsOneLineOnATerminal) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  Progress progress("p", 4, 0, 3, true, true, out);
  for (int64_t step = 1; step <= 4; ++step) progress.update(step, 1.0, 5);
  progress.finish();
  std::rewind(out);
  std::string text;
  for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
  std::fclose(out);
  int returns = 0, lines = 0;
  for (char c : text) {
    returns += c == '\r';
    lines += c == '\n';
  }
  EXPECT_EQ(returns, 4);
  EXPECT_EQ(lines, 1);
}

}  // namespace
}  // namespace chorus::train
