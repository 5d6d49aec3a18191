#include "model/io/model_conversion.h"

#include "common/error.h"
#include "model/io/hf_folder.h"
#include "model/io/model_checkpoint.h"

namespace chorus::model {

namespace fs = std::filesystem;

ConversionSummary convert_model(const fs::path& source, const fs::path& destination) {
  CHORUS_CHECK(fs::exists(source), source.string(),
               ": not found (expected a Hugging Face model folder or a .h5 checkpoint)");
  std::error_code error;
  CHORUS_CHECK(!fs::exists(destination) || !fs::equivalent(source, destination, error),
               destination.string(), ": the destination is the source");
  const ModelFiles model = load_model_files(source);
  ConversionSummary summary;
  summary.tensors = model.weights.size();
  for (const auto& entry : model.weights) summary.bytes += entry.second.nbytes();
  if (fs::is_directory(source)) {
    CHORUS_CHECK(!fs::is_directory(destination), destination.string(),
                 ": is a folder; converting a Hugging Face folder writes one .h5 checkpoint file");
    save_model_checkpoint(destination, model);
    summary.direction = "huggingface-folder -> chorus-checkpoint";
  } else {
    CHORUS_CHECK(!fs::exists(destination) || fs::is_directory(destination), destination.string(),
                 ": is a file; converting a checkpoint writes a Hugging Face folder");
    save_hf_folder(destination, model.config, model.weights);
    summary.direction = "chorus-checkpoint -> huggingface-folder";
  }
  return summary;
}

}  // namespace chorus::model
