// Converting a model between a Hugging Face folder and a Chorus HDF5 checkpoint (`chorus convert`).
#pragma once

#include <filesystem>
#include <string>

namespace chorus::model {

// What convert_model did, for the command's report.
struct ConversionSummary {
  std::string direction;  // "huggingface-folder -> chorus-checkpoint" or the reverse
  std::size_t tensors = 0;
  std::size_t bytes = 0;  // tensor payload
};

// A folder `source` (config.json + safetensors) becomes the HDF5 checkpoint
// file `destination`; a checkpoint file `source` becomes the folder
// `destination` (config.json + model.safetensors). Tensors keep their names,
// dtypes and values bit for bit. Only the model is converted: tokenizer files
// are not carried. Refuses a destination that would be the wrong kind (a
// folder for a checkpoint or a file for a folder) or the source itself.
ConversionSummary convert_model(const std::filesystem::path& source,
                                const std::filesystem::path& destination);

}  // namespace chorus::model
