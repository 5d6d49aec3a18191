#include "model/io/hf_folder.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/io/safetensors.h"

namespace chorus::model {
namespace {

namespace fs = std::filesystem;

nlohmann::json read_json_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  CHORUS_CHECK(in.good(), file.string(), ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(file.string(), ": not valid JSON (", e.what(), ")"));
  }
}

std::string folder_listing(const fs::path& folder) {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? std::string("nothing") : out;
}

WeightMap load_sharded(const fs::path& folder, const fs::path& index_file) {
  const nlohmann::json index = read_json_file(index_file);
  auto weight_map = index.find("weight_map");
  CHORUS_CHECK(index.is_object() && weight_map != index.end() && weight_map->is_object(),
               index_file.string(),
               ": missing object field 'weight_map' (tensor name -> shard file)");
  std::map<std::string, std::set<std::string>> names_by_shard;
  for (auto it = weight_map->begin(); it != weight_map->end(); ++it) {
    CHORUS_CHECK(it.value().is_string(), index_file.string(), ": weight_map entry '", it.key(),
                 "' is not a file name");
    const std::string shard = it.value().get<std::string>();
    // Shards live beside the index: no absolute paths, no climbing out.
    CHORUS_CHECK(
        !shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..",
        index_file.string(), ": shard name '", shard, "' of '", it.key(),
        "' is not a plain file name");
    names_by_shard[shard].insert(it.key());
  }
  CHORUS_CHECK(!names_by_shard.empty(), index_file.string(), ": weight_map is empty");

  WeightMap weights(folder.string());
  for (const auto& [shard, names] : names_by_shard) {
    const fs::path shard_file = folder / shard;
    WeightMap part = load_safetensors(shard_file);
    std::vector<std::string> missing, extra;
    for (const std::string& name : names)
      if (!part.contains(name)) missing.push_back(name);
    for (const auto& entry : part)
      if (!names.count(entry.first)) extra.push_back(entry.first);
    CHORUS_CHECK(missing.empty(), shard_file.string(), ": lacks ", missing.size(), " tensors that ",
                 index_file.filename().string(), " places there, e.g. '",
                 missing.empty() ? "" : missing.front(), "'");
    CHORUS_CHECK(extra.empty(), shard_file.string(), ": holds ", extra.size(), " tensors that ",
                 index_file.filename().string(), " does not place there, e.g. '",
                 extra.empty() ? "" : extra.front(), "'");
    weights.merge(std::move(part));
  }
  return weights;
}

}  // namespace

nlohmann::json load_hf_config(const fs::path& folder) {
  const fs::path file = folder / "config.json";
  CHORUS_CHECK(fs::is_regular_file(file), file.string(),
               ": not found (a Hugging Face model folder needs config.json)");
  nlohmann::json config = read_json_file(file);
  CHORUS_CHECK(config.is_object(), file.string(), ": expected a JSON object, found ",
               config.type_name());
  return config;
}

WeightMap load_hf_weights(const fs::path& folder) {
  CHORUS_CHECK(fs::is_directory(folder), folder.string(), ": not a folder");
  const fs::path single = folder / "model.safetensors";
  if (fs::exists(single)) {
    WeightMap weights = load_safetensors(single);
    weights.set_source(single.string());
    return weights;
  }
  const fs::path index = folder / "model.safetensors.index.json";
  if (fs::exists(index)) return load_sharded(folder, index);
  throw Error(detail::concat(
      folder.string(), ": no model.safetensors or model.safetensors.index.json (the folder holds ",
      folder_listing(folder), "; PyTorch .bin weights are not read, convert them to safetensors)"));
}

void save_hf_folder(const fs::path& folder, const nlohmann::json& config,
                    const WeightMap& weights) {
  std::error_code error;
  fs::create_directories(folder, error);
  CHORUS_CHECK(!error && fs::is_directory(folder), folder.string(), ": cannot create the folder (",
               error.message(), ")");
  save_safetensors(folder / "model.safetensors", weights, {{"format", "pt"}});
  write_file_atomically(folder / "config.json", config.dump(2) + "\n");
}

}  // namespace chorus::model
