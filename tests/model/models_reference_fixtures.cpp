// Builds the reference fixtures once per build folder (see models_reference_fixtures.h).
#include <gtest/gtest.h>

#include "tests/model/models_reference_fixtures.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "model/io/safetensors.h"

namespace chorus::testing {
namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::filesystem::path script_path() {
  // Tests run from the source root (chorus_add_test's WORKING_DIRECTORY); fall
  // back to the location of this file for runs from elsewhere.
  const std::filesystem::path relative = "tests/model/reference/make_reference.py";
  if (std::filesystem::exists(relative)) return std::filesystem::absolute(relative);
  return std::filesystem::path(__FILE__).parent_path() / "reference" / "make_reference.py";
}

// Next to the test executable, so each build folder has its own.
std::filesystem::path fixture_root() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "models_reference_fixtures";
}

class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path) : fd_(::open(path.c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) {
      ::flock(fd_, LOCK_UN);
      ::close(fd_);
    }
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

}  // namespace

const std::vector<std::string>& reference_model_names() {
  static const std::vector<std::string> names = {"t5_v1_0", "t5_odd_heads_short_buckets", "t5_v1_1", "bart",
                                                 "bart_forced_bos_relu"};
  return names;
}

const std::vector<std::string>& low_precision_model_names() {
  static const std::vector<std::string> names = {"t5_v1_0_bf16", "t5_v1_1_bf16", "bart_bf16",
                                                 "t5_v1_0_fp16", "t5_v1_1_fp16", "bart_fp16"};
  return names;
}

std::optional<std::filesystem::path> reference_fixtures(std::string& why) {
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0') {
    why = "CHORUS_PYTHON is not set: the transformers reference (scripts/setup.sh installs it) is needed to build "
          "the reference models";
    return std::nullopt;
  }
  const auto script = script_path();
  const auto stamp = std::to_string(std::hash<std::string>{}(read_text(script)));
  const auto root = fixture_root();
  std::filesystem::create_directories(root);
  FileLock lock(root / ".lock");
  const auto done = root / "done";
  const auto data = root / "data";
  if (std::filesystem::exists(done) && read_text(done) == stamp) return data;
  std::filesystem::remove_all(data);
  const auto log = root / "make_reference.log";
  const std::string command = std::string("\"") + python + "\" \"" + script.string() + "\" \"" + data.string() +
                              "\" > \"" + log.string() + "\" 2>&1";
  const int status = std::system(command.c_str());
  if (status != 0) {
    ADD_FAILURE() << "make_reference.py failed (status " << status << "); its output:\n" << read_text(log);
    why = "make_reference.py failed";
    return std::nullopt;
  }
  std::ofstream(done) << stamp;
  return data;
}

ReferenceModel load_reference_model(const std::filesystem::path& fixtures, const std::string& name) {
  ReferenceModel model;
  model.folder = fixtures / name;
  model.tensors = model::load_safetensors(model.folder / "reference.safetensors");
  model.cases = nlohmann::json::parse(read_text(model.folder / "cases.json"));
  return model;
}

::testing::AssertionResult all_close(const torch::Tensor& actual, const torch::Tensor& expected, double atol,
                                     double rtol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " but the reference has "
                                         << expected.sizes();
  }
  auto a = actual.to(torch::kFloat64);
  auto e = expected.to(torch::kFloat64);
  auto excess = (a - e).abs() - (atol + rtol * e.abs());
  const double worst = excess.max().item<double>();
  if (worst <= 0.0) return ::testing::AssertionSuccess();
  const auto flat_index = excess.flatten().argmax().item<int64_t>();
  return ::testing::AssertionFailure() << "max |actual - reference| = " << (a - e).abs().max().item<double>()
                                       << " exceeds atol " << atol << " + rtol " << rtol << " * |reference| (at flat index "
                                       << flat_index << ": " << a.flatten()[flat_index].item<double>() << " vs "
                                       << e.flatten()[flat_index].item<double>() << ")";
}

}  // namespace chorus::testing
