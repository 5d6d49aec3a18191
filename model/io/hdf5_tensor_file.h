// Named tensors in an HDF5 file: Chorus's on-disk format for weights and checkpoints.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace chorus::model {

// One file = a group "/tensors" holding one dataset per tensor (the tensor's
// name is the dataset name, so state-dict names like "encoder.block.0.weight"
// are kept verbatim) plus string attributes on "/" for metadata (config JSON,
// format version). float32/float64/int64/int32/int8/uint8/bool are stored as
// the native HDF5 types, so h5py and HDFView read them directly; bfloat16 and
// float16 are stored as their 16-bit patterns with a "dtype" attribute.
struct TensorFile {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;

  // The tensor called `name`; throws chorus::Error listing what the file has.
  const torch::Tensor& at(const std::string& name) const;
};

// Writes atomically: `path` holds either its previous content or the complete
// new file. Tensors may live on any device and be non-contiguous; names must be
// unique, non-empty and free of '/'.
void save_tensor_file(const std::filesystem::path& path, const TensorFile& file);

// Reads every tensor (on the CPU) and all metadata; errors name the file and
// the dataset at fault.
TensorFile load_tensor_file(const std::filesystem::path& path);

}  // namespace chorus::model
