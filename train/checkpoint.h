// Training checkpoints: model tensors, AdamW state and run counters in one checksummed HDF5 file.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "model/io/hdf5_tensor_file.h"

namespace torch::optim {
class AdamW;
}

namespace chorus::train {

// Version written as the "chorus_checkpoint_format" metadata; readers refuse others.
inline constexpr int kCheckpointFormat = 1;

// Named trainable tensors; the names are the checkpoint's keys.
using NamedParameters = std::vector<std::pair<std::string, torch::Tensor>>;

// Counters of a run at the moment of the checkpoint.
struct CheckpointState {
  int64_t step = 0;           // optimizer steps done
  double best_value = 0;      // value of the best metric at best_step
  int64_t best_step = -1;     // -1: no best yet
  int64_t patience_used = 0;  // evaluations since the last improvement
  bool finished = false;      // the run reached its last step or stopped early
  bool stopped_early = false;
  uint64_t seed = 0;
  std::string extra = "{}";      // caller's JSON, kept verbatim
  std::string last_eval = "{}";  // JSON object of the latest evaluation metrics
  std::string options = "{}";    // JSON of the trainer options that shape the losses
};

// A checkpoint read back and verified (format version and checksum).
struct Checkpoint {
  std::filesystem::path path;
  model::TensorFile file;
  CheckpointState state;

  // Model tensors by parameter name (the "model:" prefix removed), in file order.
  NamedParameters model_tensors() const;
};

// Writes `path` atomically: every parameter as "model:<name>", the AdamW state
// of each parameter that has one as "adamw:<name>:exp_avg" / ":exp_avg_sq" /
// ":step" (and ":max_exp_avg_sq" with amsgrad), the counters as metadata, and a
// CRC-32 checksum. `optimizer` may be null (model tensors only).
void save_checkpoint(const std::filesystem::path& path, const NamedParameters& parameters,
                     const torch::optim::AdamW* optimizer, const CheckpointState& state);

// Reads and verifies a checkpoint; a wrong format or checksum is a chorus::Error naming the file.
Checkpoint read_checkpoint(const std::filesystem::path& path);

// Throws one chorus::Error naming the file and listing the missing, unexpected
// and shape-mismatched parameter names when the checkpoint was written for
// another architecture.
void check_same_architecture(const Checkpoint& checkpoint, const NamedParameters& parameters);

// Copies the checkpoint's model tensors into `parameters` (after check_same_architecture).
void restore_parameters(const Checkpoint& checkpoint, const NamedParameters& parameters);

// Replaces the optimizer's per-parameter state with the checkpoint's. The
// optimizer must hold exactly the tensors of `parameters`.
void restore_optimizer(const Checkpoint& checkpoint, const NamedParameters& parameters,
                       torch::optim::AdamW& optimizer);

// CRC-32 (zlib) over each tensor's name, dtype, shape and bytes in file order,
// then over each metadata key and value except "checksum" (sorted by key).
uint32_t checkpoint_checksum(const model::TensorFile& file);

}  // namespace chorus::train
