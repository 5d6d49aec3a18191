// Kills a real training process with SIGKILL midway, resumes it, and compares
// its losses with those of an uninterrupted run, bit for bit.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/foundation/test_paths.h"
#include "train/checkpoint.h"
#include "train/metrics_log.h"
#include "train/run_folder.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using chorus::testing::TemporaryFolder;

// The toy program is built next to this test's executable.
fs::path toy_program() {
  std::vector<char> buffer(4096);
  const ssize_t length = readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
  if (length <= 0) return {};
  return fs::path(std::string(buffer.data(), static_cast<size_t>(length))).parent_path() / "toy_training_main";
}

pid_t start(const fs::path& program, const std::vector<std::string>& args) {
  std::vector<std::string> all{program.string()};
  all.insert(all.end(), args.begin(), args.end());
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

int run(const fs::path& program, const std::vector<std::string>& args) {
  const int status = wait_for(start(program, args));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int64_t last_train_step(const fs::path& folder) {
  int64_t last = 0;
  try {
    for (const MetricsRecord& record : read_metrics_jsonl(folder / "metrics.jsonl")) {
      if (record.split == "train") last = record.step;
    }
  } catch (const std::exception&) {
  }
  return last;
}

std::vector<MetricsRecord> train_records(const fs::path& folder) {
  std::vector<MetricsRecord> result;
  for (MetricsRecord& record : read_metrics_jsonl(folder / "metrics.jsonl")) {
    if (record.split == "train") result.push_back(std::move(record));
  }
  return result;
}

TEST(ResumeAfterKill, GivesTheLossesOfTheUninterruptedRun) {
  const fs::path program = toy_program();
  ASSERT_TRUE(fs::exists(program)) << program;
  TemporaryFolder tmp;
  const fs::path whole = tmp / "whole", killed = tmp / "killed";
  fs::create_directories(whole);
  fs::create_directories(killed);
  ASSERT_EQ(run(program, {whole.string()}), 0);

  // Slowed down so that the kill lands midway: after step 12 (checkpoints at 0, 5, 10), long before step 60.
  const pid_t pid = start(program, {killed.string(), "--step-delay-ms", "15"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (last_train_step(killed) < 12 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  const int status = wait_for(pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended before it was killed";
  const Checkpoint interrupted = read_checkpoint(latest_checkpoint_path(killed));
  ASSERT_FALSE(interrupted.state.finished);
  ASSERT_GE(interrupted.state.step, 10);
  ASSERT_LT(interrupted.state.step, 60);

  ASSERT_EQ(run(program, {killed.string(), "--resume"}), 0);
  const auto expected = train_records(whole);
  const auto actual = train_records(killed);
  ASSERT_EQ(expected.size(), 60u);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].step, expected[i].step);
    EXPECT_EQ(actual[i].values.at("loss"), expected[i].values.at("loss")) << "step " << expected[i].step;
    EXPECT_EQ(actual[i].values.at("grad_norm"), expected[i].values.at("grad_norm")) << "step " << expected[i].step;
  }
  const Checkpoint a = read_checkpoint(latest_checkpoint_path(whole));
  const Checkpoint b = read_checkpoint(latest_checkpoint_path(killed));
  EXPECT_TRUE(b.state.finished);
  EXPECT_EQ(a.state.best_step, b.state.best_step);
  EXPECT_EQ(a.state.best_value, b.state.best_value);
  const auto ta = a.model_tensors(), tb = b.model_tensors();
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) EXPECT_TRUE(ta[i].second.equal(tb[i].second)) << ta[i].first;
}

}  // namespace
}  // namespace chorus::train
