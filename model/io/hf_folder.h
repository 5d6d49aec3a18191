// Loading a Hugging Face model folder: config.json and (sharded) safetensors weights.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "model/io/weight_map.h"

namespace chorus::model {

// Parses `folder`/config.json; a missing file, invalid JSON or a non-object
// top level is a chorus::Error naming the file.
nlohmann::json load_hf_config(const std::filesystem::path& folder);

// Loads `folder`/model.safetensors, or, when absent, every shard listed in
// `folder`/model.safetensors.index.json ("weight_map": name -> shard file);
// each tensor must sit in the shard the index names, and every indexed name
// must be found. Tensors keep their stored dtype (fp32/fp16/bf16 ...). The
// map's source() is the folder. Errors name the file at fault and, when no
// weights file exists, what the folder holds (e.g. only pytorch_model.bin).
WeightMap load_hf_weights(const std::filesystem::path& folder);

// Writes `folder`/config.json (pretty-printed) and `folder`/model.safetensors
// (metadata {"format": "pt"}, as transformers writes), creating the folder.
void save_hf_folder(const std::filesystem::path& folder, const nlohmann::json& config,
                    const WeightMap& weights);

}  // namespace chorus::model
