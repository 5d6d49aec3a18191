// A model's config and weights from either on-disk form: a Hugging Face folder or a Chorus HDF5
// file.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "model/io/weight_map.h"

namespace chorus::model {

struct ModelFiles {
  nlohmann::json config;  // the config.json object (model_type, d_model, ...)
  WeightMap weights;      // CPU tensors in their stored dtype
};

// A Chorus model checkpoint: an HDF5 tensor file (model/io/hdf5_tensor_file.h)
// holding the weights, with the config.json text in the metadata key "config"
// and "chorus_model_format" = "hf-config-1". Written atomically.
void save_model_checkpoint(const std::filesystem::path& file, const ModelFiles& model);
// Errors name the file: not a model checkpoint, config missing or not JSON.
ModelFiles load_model_checkpoint(const std::filesystem::path& file);

// Loads from `path`: a directory is read as a Hugging Face folder
// (load_hf_config + load_hf_weights), a regular file as a Chorus checkpoint.
ModelFiles load_model_files(const std::filesystem::path& path);

}  // namespace chorus::model
