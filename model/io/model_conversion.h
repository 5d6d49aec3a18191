// Converting a model between a Hugging Face folder and a Chorus HDF5 checkpoint (`chorus convert`).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace chorus::model {

// What convert_model did, for the command's report.
struct ConversionSummary {
  std::string direction;  // "huggingface-folder -> chorus-checkpoint" or the reverse
  std::size_t tensors = 0;
  std::size_t bytes = 0;  // tensor payload
  std::vector<std::string> carried_files;  // the side files copied along (carried_file_names())
};

// A folder `source` (config.json + safetensors) becomes the HDF5 checkpoint
// file `destination`; a checkpoint file `source` becomes the folder
// `destination` (config.json + model.safetensors). Tensors keep their names,
// dtypes and values bit for bit. The folder's side files named by
// carried_file_names() (generation defaults and tokenizer) travel too: the
// checkpoint embeds them byte for byte, and the reverse conversion writes them
// back out unchanged, so a converted model generates and tokenizes as its
// source did. Refuses a destination that would be the wrong kind (a folder for
// a checkpoint or a file for a folder) or the source itself.
ConversionSummary convert_model(const std::filesystem::path& source,
                                const std::filesystem::path& destination);

// The side files of a Hugging Face model folder that conversions carry:
// generation_config.json and every file load_tokenizer reads (spiece.model,
// vocab.json, merges.txt, tokenizer.json, word_vocab.txt, tokenizer_config.json,
// special_tokens_map.json, added_tokens.json).
const std::vector<std::string>& carried_file_names();

// The side files embedded in the Chorus checkpoint `checkpoint` (file name ->
// bytes; the HDF5 group /files, one uint8 dataset per file), without reading
// its weights; empty when it has none.
std::map<std::string, std::string> read_carried_files(const std::filesystem::path& checkpoint);

}  // namespace chorus::model
