// Run folders: mode checks and the resolved configuration.
#include "train/run_folder.h"

#include <torch/version.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "chorus/config.h"
#include "common/atomic_file.h"
#include "common/error.h"

namespace chorus::train {

namespace fs = std::filesystem;

fs::path config_path(const fs::path& folder) { return folder / "config.yaml"; }
fs::path checkpoints_path(const fs::path& folder) { return folder / "checkpoints"; }
fs::path latest_checkpoint_path(const fs::path& folder) { return checkpoints_path(folder) / "latest.h5"; }
fs::path best_checkpoint_path(const fs::path& folder) { return checkpoints_path(folder) / "best.h5"; }

namespace {

// A few entries of the folder, for the error message ("config.yaml, checkpoints/, ...").
std::string describe_entries(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string() + (entry.is_directory() ? "/" : ""));
  }
  std::sort(names.begin(), names.end());
  std::ostringstream out;
  const size_t shown = std::min<size_t>(names.size(), 4);
  for (size_t i = 0; i < shown; ++i) out << (i == 0 ? "" : ", ") << names[i];
  if (names.size() > shown) out << ", ...";
  return out.str();
}

// True when the folder holds nothing but, perhaps, an empty checkpoints/ (what
// prepare_run_folder itself creates).
bool holds_nothing(const fs::path& folder) {
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path() == checkpoints_path(folder) && entry.is_directory() && fs::is_empty(entry.path())) continue;
    return false;
  }
  return true;
}

}  // namespace

void prepare_run_folder(const fs::path& folder, RunMode mode) {
  CHORUS_CHECK(!folder.empty(), "the run folder path is empty");
  const bool exists = fs::exists(folder);
  CHORUS_CHECK(!exists || fs::is_directory(folder), "run folder '", folder.string(),
               "' exists and is not a directory");
  switch (mode) {
    case RunMode::fresh:
      CHORUS_CHECK(!exists || holds_nothing(folder), "run folder '", folder.string(), "' already holds a run (",
                   describe_entries(folder), "); pass --resume to continue it or --overwrite to replace it");
      break;
    case RunMode::resume:
      CHORUS_CHECK(fs::is_regular_file(latest_checkpoint_path(folder)), "cannot resume in run folder '",
                   folder.string(), "': it has no checkpoint ", latest_checkpoint_path(folder).string(),
                   " (start it without --resume, or with --overwrite if it holds an unfinished attempt)");
      break;
    case RunMode::overwrite:
      if (exists) fs::remove_all(folder);
      break;
  }
  fs::create_directories(checkpoints_path(folder));
}

void save_resolved_config(const fs::path& folder, const std::string& yaml_text, bool allow_changed) {
  const fs::path path = config_path(folder);
  if (fs::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    CHORUS_CHECK(in, "cannot read ", path.string());
    std::ostringstream previous;
    previous << in.rdbuf();
    if (previous.str() == yaml_text) return;
    CHORUS_CHECK(allow_changed, "the resolved config differs from the run's ", path.string(),
                 "; resuming under a changed config would not reproduce the uninterrupted run "
                 "(start a new run folder, or allow the change explicitly)");
  }
  write_file_atomically(path, yaml_text);
}

RunProvenance run_provenance(const std::string& resolved_yaml) {
  RunProvenance p;
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : resolved_yaml) h = (h ^ ch) * 1099511628211ULL;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  p.config_hash = text;
  p.chorus_version = CHORUS_VERSION_STRING;
  p.libtorch_version = TORCH_VERSION;
  p.cuda_kernels = CHORUS_WITH_CUDA != 0;
  return p;
}

}  // namespace chorus::train
