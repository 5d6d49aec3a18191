#include "model/io/model_checkpoint.h"

#include "common/error.h"
#include "model/io/hdf5_tensor_file.h"
#include "model/io/hf_folder.h"

namespace chorus::model {
namespace {

constexpr const char* kFormatKey = "chorus_model_format";
constexpr const char* kFormatValue = "hf-config-1";
constexpr const char* kConfigKey = "config";

}  // namespace

void save_model_checkpoint(const std::filesystem::path& file, const ModelFiles& model) {
  CHORUS_CHECK(model.config.is_object(), file.string(), ": the model config must be a JSON object");
  TensorFile out;
  out.tensors.reserve(model.weights.size());
  for (const auto& entry : model.weights) out.tensors.push_back(entry);
  out.metadata[kFormatKey] = kFormatValue;
  out.metadata[kConfigKey] = model.config.dump();
  save_tensor_file(file, out);
}

ModelFiles load_model_checkpoint(const std::filesystem::path& file) {
  TensorFile in = load_tensor_file(file);
  auto format = in.metadata.find(kFormatKey);
  CHORUS_CHECK(format != in.metadata.end(), file.string(), ": not a Chorus model checkpoint (no '",
               kFormatKey, "' metadata)");
  CHORUS_CHECK(format->second == kFormatValue, file.string(), ": model checkpoint format '",
               format->second, "' is not the supported '", kFormatValue, "'");
  auto config_text = in.metadata.find(kConfigKey);
  CHORUS_CHECK(config_text != in.metadata.end(), file.string(), ": the checkpoint has no '",
               kConfigKey, "' metadata");
  ModelFiles model;
  try {
    model.config = nlohmann::json::parse(config_text->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(file.string(), ": metadata '", kConfigKey, "' is not valid JSON (",
                               e.what(), ")"));
  }
  CHORUS_CHECK(model.config.is_object(), file.string(), ": metadata '", kConfigKey,
               "' is not a JSON object");
  model.weights.set_source(file.string());
  for (auto& [name, tensor] : in.tensors) model.weights.insert(std::move(name), std::move(tensor));
  return model;
}

ModelFiles load_model_files(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) return {load_hf_config(path), load_hf_weights(path)};
  CHORUS_CHECK(std::filesystem::exists(path), path.string(),
               ": not found (expected a Hugging Face model folder or a Chorus .h5 checkpoint)");
  return load_model_checkpoint(path);
}

}  // namespace chorus::model
