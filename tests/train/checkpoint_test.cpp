// Checkpoints, metrics files and run folders: round trips, corruption, mismatches, modes.
#include "train/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "common/error.h"
#include "tests/foundation/test_paths.h"
#include "train/metrics_log.h"
#include "train/run_folder.h"

namespace chorus::train {
namespace {

using chorus::testing::TemporaryFolder;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A parameter set, an AdamW over it and a deterministic gradient per step.
struct Model {
  torch::Tensor weight = torch::randn({4, 3}).requires_grad_(true);
  torch::Tensor bias = torch::randn({3}).requires_grad_(true);
  NamedParameters named() { return {{"layer.weight", weight}, {"layer.bias", bias}}; }
  torch::optim::AdamW optimizer{std::vector<torch::Tensor>{weight, bias},
                                torch::optim::AdamWOptions(0.01).weight_decay(0.1)};
  void step(int64_t i) {
    optimizer.zero_grad();
    torch::Tensor x = torch::arange(8, torch::kFloat32).reshape({2, 4}) * (0.1 * static_cast<double>(i + 1));
    (x.matmul(weight) + bias).sin().sum().backward();
    optimizer.step();
  }
};

TEST(Checkpoint, RoundTripRestoresParametersOptimizerAndCounters) {
  TemporaryFolder tmp;
  torch::manual_seed(1);
  Model original;
  for (int i = 0; i < 3; ++i) original.step(i);
  CheckpointState state;
  state.step = 3;
  state.best_value = 0.1 + 0.2;
  state.best_step = 2;
  state.patience_used = 1;
  state.seed = 18446744073709551615ULL;
  state.extra = R"({"note":"x"})";
  save_checkpoint(tmp / "c.h5", original.named(), &original.optimizer, state);

  torch::manual_seed(2);
  Model restored;
  const Checkpoint checkpoint = read_checkpoint(tmp / "c.h5");
  restore_parameters(checkpoint, restored.named());
  restore_optimizer(checkpoint, restored.named(), restored.optimizer);
  EXPECT_TRUE(torch::equal(restored.weight, original.weight));
  EXPECT_EQ(checkpoint.state.step, 3);
  EXPECT_EQ(checkpoint.state.best_value, 0.1 + 0.2);  // bit for bit
  EXPECT_EQ(checkpoint.state.best_step, 2);
  EXPECT_EQ(checkpoint.state.patience_used, 1);
  EXPECT_EQ(checkpoint.state.seed, 18446744073709551615ULL);
  EXPECT_EQ(checkpoint.state.extra, R"({"note":"x"})");
  EXPECT_FALSE(checkpoint.state.finished);
  // The restored optimizer takes exactly the same next steps.
  for (int i = 3; i < 5; ++i) {
    original.step(i);
    restored.step(i);
  }
  EXPECT_TRUE(torch::equal(restored.weight, original.weight));
  EXPECT_TRUE(torch::equal(restored.bias, original.bias));
}

TEST(Checkpoint, WithoutRestoredOptimizerStateTheNextStepDiffers) {
  // Guards the test above: a fresh AdamW (no moments, step 0) moves differently.
  TemporaryFolder tmp;
  torch::manual_seed(1);
  Model original;
  for (int i = 0; i < 3; ++i) original.step(i);
  save_checkpoint(tmp / "c.h5", original.named(), &original.optimizer, {});
  Model fresh;
  restore_parameters(read_checkpoint(tmp / "c.h5"), fresh.named());
  original.step(3);
  fresh.step(3);
  EXPECT_FALSE(torch::equal(fresh.weight, original.weight));
}

TEST(Checkpoint, ChangedContentIsReportedAsCorrupt) {
  TemporaryFolder tmp;
  Model model;
  model.step(0);
  save_checkpoint(tmp / "c.h5", model.named(), &model.optimizer, {});
  model::TensorFile file = model::load_tensor_file(tmp / "c.h5");
  ASSERT_EQ(file.tensors.front().first, "model:layer.weight");
  file.tensors.front().second[0][0] += 1e-3;  // one value changed, the stored checksum kept
  model::save_tensor_file(tmp / "c.h5", file);
  const std::string message = error_of([&] { read_checkpoint(tmp / "c.h5"); });
  EXPECT_NE(message.find("c.h5' is corrupt: checksum"), std::string::npos) << message;

  file.tensors.front().second[0][0] -= 1e-3;
  file.metadata["step"] = "7";  // counters are covered too
  model::save_tensor_file(tmp / "c.h5", file);
  EXPECT_NE(error_of([&] { read_checkpoint(tmp / "c.h5"); }).find("corrupt"), std::string::npos);
}

TEST(Checkpoint, FlippedBytesOnDiskAreAnError) {
  TemporaryFolder tmp;
  torch::Tensor big = torch::arange(4096, torch::kFloat32).requires_grad_(true);
  save_checkpoint(tmp / "c.h5", {{"big", big}}, nullptr, {});
  std::fstream file(tmp / "c.h5", std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(file.tellg());
  // The float data dominates the file; flip a byte in its middle.
  file.seekp(size / 2);
  char byte = 0;
  file.seekg(size / 2);
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  file.seekp(size / 2);
  file.write(&byte, 1);
  file.close();
  EXPECT_THROW(read_checkpoint(tmp / "c.h5"), Error);
}

TEST(Checkpoint, AnotherArchitectureListsEveryDifference) {
  TemporaryFolder tmp;
  save_checkpoint(tmp / "c.h5", {{"a", torch::zeros({2, 3})}, {"b", torch::zeros({4})}}, nullptr, {});
  const std::string message = error_of([&] {
    restore_parameters(read_checkpoint(tmp / "c.h5"), {{"a", torch::zeros({3, 3})}, {"c", torch::zeros({4})}});
  });
  EXPECT_NE(message.find("c.h5' was written for another architecture"), std::string::npos) << message;
  EXPECT_NE(message.find("missing from the checkpoint (1): c"), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected in the checkpoint (1): b"), std::string::npos) << message;
  EXPECT_NE(message.find("shape mismatch (1): a (checkpoint [2, 3], model [3, 3])"), std::string::npos) << message;
}

TEST(Checkpoint, MissingFileAndBadNamesAreErrors) {
  TemporaryFolder tmp;
  EXPECT_NE(error_of([&] { read_checkpoint(tmp / "none.h5"); }).find("none.h5' does not exist"), std::string::npos);
  EXPECT_THROW(save_checkpoint(tmp / "c.h5", {{"a/b", torch::zeros({1})}}, nullptr, {}), Error);
  EXPECT_THROW(save_checkpoint(tmp / "c.h5", {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}, nullptr, {}),
               Error);
}

TEST(MetricsLog, RecordsReadBackBitForBitAndTornLinesAreDropped) {
  TemporaryFolder tmp;
  {
    MetricsLog log(tmp.path(), 0);
    log.append({1, "train", {{"loss", 0.1 + 0.2}, {"lr", 1e-3}}});
    log.append({2, "train", {{"loss", 1.0 / 3}, {"grad_norm", std::nan("")}}});
    log.append({2, "eval", {{"rouge/1", 0.25}}});
    log.save_h5();
  }
  {
    std::ofstream torn(tmp / "metrics.jsonl", std::ios::app);
    torn << "{\"step\":3,\"split\":\"tr";
  }
  const auto records = read_metrics_jsonl(tmp / "metrics.jsonl");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].values.at("loss"), 0.1 + 0.2);
  EXPECT_EQ(records[1].values.at("loss"), 1.0 / 3);
  EXPECT_TRUE(std::isnan(records[1].values.at("grad_norm")));
  EXPECT_EQ(records[2].split, "eval");
  const model::TensorFile h5 = model::load_tensor_file(tmp / "metrics.h5");
  EXPECT_EQ(h5.at("eval.rouge:1")[0].item<double>(), 0.25);
  EXPECT_EQ(h5.at("train.loss.step")[1].item<int64_t>(), 2);

  // Resuming at step 1 keeps only what that checkpoint had seen.
  MetricsLog resumed(tmp.path(), 1);
  ASSERT_EQ(resumed.records().size(), 1u);
  resumed.append({2, "train", {{"loss", 5.0}}});
  const auto after = read_metrics_jsonl(tmp / "metrics.jsonl");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[1].values.at("loss"), 5.0);
}

TEST(MetricsLog, ABrokenLineInTheMiddleNamesTheLine) {
  TemporaryFolder tmp;
  std::ofstream(tmp / "metrics.jsonl") << "{\"step\":1,\"split\":\"train\",\"loss\":1}\nnot json\n";
  const std::string message = error_of([&] { read_metrics_jsonl(tmp / "metrics.jsonl"); });
  EXPECT_NE(message.find("metrics.jsonl:2"), std::string::npos) << message;
}

TEST(RunFolder, FreshRefusesAnEarlierRunAndOverwriteReplacesIt) {
  TemporaryFolder tmp;
  const auto run = tmp / "run";
  prepare_run_folder(run, RunMode::fresh);  // created
  EXPECT_TRUE(std::filesystem::is_directory(checkpoints_path(run)));
  save_resolved_config(run, "a: 1\n");
  const std::string message = error_of([&] { prepare_run_folder(run, RunMode::fresh); });
  EXPECT_NE(message.find("run folder '" + run.string() + "' already holds a run (checkpoints/, config.yaml)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("--resume"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(config_path(run)));  // untouched
  // resume needs a checkpoint
  EXPECT_NE(error_of([&] { prepare_run_folder(run, RunMode::resume); }).find("has no checkpoint"), std::string::npos);
  save_checkpoint(latest_checkpoint_path(run), {{"a", torch::zeros({1})}}, nullptr, {});
  prepare_run_folder(run, RunMode::resume);
  EXPECT_TRUE(std::filesystem::exists(latest_checkpoint_path(run)));
  prepare_run_folder(run, RunMode::overwrite);
  EXPECT_FALSE(std::filesystem::exists(config_path(run)));
  EXPECT_TRUE(std::filesystem::is_directory(checkpoints_path(run)));
  prepare_run_folder(run, RunMode::fresh);  // an empty folder is fine
  std::ofstream(tmp / "file") << "x";
  EXPECT_THROW(prepare_run_folder(tmp / "file", RunMode::fresh), Error);
}

TEST(RunFolder, ResolvedConfigMayNotChangeOnResume) {
  TemporaryFolder tmp;
  save_resolved_config(tmp.path(), "lr: 0.1\n");
  save_resolved_config(tmp.path(), "lr: 0.1\n");  // same text: fine
  const std::string message = error_of([&] { save_resolved_config(tmp.path(), "lr: 0.2\n"); });
  EXPECT_NE(message.find("config.yaml"), std::string::npos) << message;
  EXPECT_NE(message.find("would not reproduce"), std::string::npos) << message;
  save_resolved_config(tmp.path(), "lr: 0.2\n", /*allow_changed=*/true);
  std::ifstream in(config_path(tmp.path()));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "lr: 0.2\n");
}

}  // namespace
}  // namespace chorus::train
