// Run folders: one directory per training run, guarded against accidental overwrites.
#pragma once

#include <filesystem>
#include <string>

namespace chorus::train {

// fresh: the folder must not hold anything yet; resume: it must hold
// checkpoints/latest.h5; overwrite: whatever it holds is removed first.
enum class RunMode { fresh, resume, overwrite };

// Conventional paths inside a run folder.
std::filesystem::path config_path(const std::filesystem::path& folder);             // config.yaml
std::filesystem::path checkpoints_path(const std::filesystem::path& folder);        // checkpoints/
std::filesystem::path latest_checkpoint_path(const std::filesystem::path& folder);  // checkpoints/latest.h5
std::filesystem::path best_checkpoint_path(const std::filesystem::path& folder);    // checkpoints/best.h5

// Checks `folder` against `mode` and creates it (with checkpoints/). Never
// removes anything except in overwrite mode.
void prepare_run_folder(const std::filesystem::path& folder, RunMode mode);

// Writes the resolved configuration to config.yaml atomically. When a
// config.yaml is already there and differs, this is an error (resuming under a
// changed config would not reproduce the uninterrupted run) unless allow_changed.
void save_resolved_config(const std::filesystem::path& folder, const std::string& yaml_text,
                          bool allow_changed = false);

// What report.json records about where its numbers come from.
struct RunProvenance {
  std::string config_hash;      // FNV-1a 64 (hex) of the resolved config text saved as config.yaml
  std::string chorus_version;
  std::string libtorch_version;
  bool cuda_kernels = false;    // whether this build has the CUDA kernels
};
RunProvenance run_provenance(const std::string& resolved_yaml);

}  // namespace chorus::train
