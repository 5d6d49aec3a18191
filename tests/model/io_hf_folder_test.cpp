// Hugging Face folders (single and sharded safetensors), Chorus HDF5 checkpoints, conversion both
// ways.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <fstream>

#include "common/error.h"
#include "model/io/config_fields.h"
#include "model/io/hdf5_tensor_file.h"
#include "model/io/hf_folder.h"
#include "model/io/model_checkpoint.h"
#include "model/io/model_conversion.h"
#include "model/io/safetensors.h"
#include "tests/foundation/test_paths.h"

namespace chorus::model {
namespace {

using chorus::testing::TemporaryFolder;
namespace fs = std::filesystem;

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool bit_equal(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  return a.nbytes() == b.nbytes() && std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0;
}

// A small T5-like set of weights in the three storage dtypes models ship in.
WeightMap tiny_weights() {
  torch::manual_seed(3);
  WeightMap weights;
  weights.insert("shared.weight", torch::randn({32, 8}));
  weights.insert("encoder.block.0.layer.0.SelfAttention.q.weight",
                 torch::randn({8, 8}).to(torch::kFloat16));
  weights.insert("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 torch::randn({32, 2}).to(torch::kBFloat16));
  weights.insert("encoder.final_layer_norm.weight", torch::ones({8}));
  return weights;
}

const nlohmann::json kConfig = {
    {"model_type", "t5"}, {"d_model", 8}, {"num_heads", 2}, {"vocab_size", 32}};

void expect_same_weights(const WeightMap& got, const WeightMap& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, tensor] : want) EXPECT_TRUE(bit_equal(got.at(name), tensor)) << name;
}

TEST(HfFolder, SingleFileFolderLoadsConfigAndWeightsInTheirStoredDtype) {
  TemporaryFolder dir;
  save_hf_folder(dir.path(), kConfig, tiny_weights());
  EXPECT_EQ(load_hf_config(dir.path()), kConfig);
  const WeightMap weights = load_hf_weights(dir.path());
  expect_same_weights(weights, tiny_weights());
  EXPECT_EQ(weights.at("encoder.block.0.layer.0.SelfAttention.q.weight").scalar_type(),
            torch::kFloat16);
  EXPECT_EQ(read_safetensors(dir / "model.safetensors").metadata.at("format"), "pt");
}

// Writes the weights as shards plus an index, the way transformers' save_pretrained splits large
// models.
void write_sharded(const fs::path& folder, const WeightMap& weights,
                   const nlohmann::json& index_override = {}) {
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  WeightMap shard_a, shard_b;
  std::size_t i = 0;
  for (const auto& [name, tensor] : weights) {
    const bool first = i++ % 2 == 0;
    (first ? shard_a : shard_b).insert(name, tensor);
    index["weight_map"][name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  save_safetensors(folder / "model-00001-of-00002.safetensors", shard_a);
  save_safetensors(folder / "model-00002-of-00002.safetensors", shard_b);
  if (!index_override.is_null()) index.merge_patch(index_override);
  write_text(folder / "model.safetensors.index.json", index.dump());
}

TEST(HfFolder, ShardedFolderLoadsEveryShard) {
  TemporaryFolder dir;
  write_sharded(dir.path(), tiny_weights());
  const WeightMap weights = load_hf_weights(dir.path());
  expect_same_weights(weights, tiny_weights());
  EXPECT_EQ(weights.source(), dir.path().string());
}

TEST(HfFolder, ShardedIndexThatDisagreesWithTheShardsIsAnError) {
  TemporaryFolder dir;
  write_sharded(dir.path(), tiny_weights(),
                {{"weight_map", {{"shared.weight", "model-00002-of-00002.safetensors"}}}});
  const std::string message = error_of([&] { load_hf_weights(dir.path()); });
  EXPECT_NE(message.find("model-0000"), std::string::npos) << message;
  EXPECT_NE(message.find("'shared.weight'"), std::string::npos) << message;

  TemporaryFolder escape;
  write_sharded(escape.path(), tiny_weights(),
                {{"weight_map", {{"shared.weight", "../secret.safetensors"}}}});
  EXPECT_NE(error_of([&] { load_hf_weights(escape.path()); }).find("not a plain file name"),
            std::string::npos);

  TemporaryFolder missing_shard;
  write_sharded(missing_shard.path(), tiny_weights());
  fs::remove(missing_shard / "model-00002-of-00002.safetensors");
  EXPECT_NE(error_of([&] {
              load_hf_weights(missing_shard.path());
            }).find("model-00002-of-00002.safetensors"),
            std::string::npos);
}

TEST(HfFolder, MissingOrBrokenFilesAreErrorsNamingThem) {
  TemporaryFolder dir;
  EXPECT_NE(error_of([&] { load_hf_config(dir.path()); }).find("config.json: not found"),
            std::string::npos);
  write_text(dir / "config.json", "{\"d_model\": ");
  EXPECT_NE(error_of([&] { load_hf_config(dir.path()); }).find("config.json: not valid JSON"),
            std::string::npos);
  write_text(dir / "config.json", "[1]");
  EXPECT_NE(error_of([&] { load_hf_config(dir.path()); }).find("expected a JSON object"),
            std::string::npos);

  write_text(dir / "pytorch_model.bin", "x");
  const std::string message = error_of([&] { load_hf_weights(dir.path()); });
  EXPECT_NE(message.find("no model.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("pytorch_model.bin"), std::string::npos) << message;
  write_text(dir / "model.safetensors.index.json", "{\"weight_map\": 3}");
  EXPECT_NE(error_of([&] { load_hf_weights(dir.path()); }).find("'weight_map'"), std::string::npos);
}

TEST(ConfigFields, MissingAndMistypedFieldsNameTheFileAndKey) {
  const nlohmann::json config = {
      {"d_model", 512}, {"feed_forward_proj", "gated-gelu"}, {"d_kv", nullptr}};
  EXPECT_EQ(required_field<int>(config, "d_model", "config.json"), 512);
  EXPECT_EQ(optional_field<int>(config, "d_kv", 64, "config.json"), 64);
  EXPECT_EQ(error_of([&] { required_field<int>(config, "num_layers", "m/config.json"); }),
            "m/config.json: missing field 'num_layers'");
  EXPECT_NE(error_of([&] {
              required_field<int>(config, "feed_forward_proj", "m/config.json");
            }).find("field 'feed_forward_proj' has the wrong type"),
            std::string::npos);
}

TEST(ModelCheckpoint, RoundTripKeepsConfigAndWeights) {
  TemporaryFolder dir;
  save_model_checkpoint(dir / "m.h5", {kConfig, tiny_weights()});
  const ModelFiles model = load_model_checkpoint(dir / "m.h5");
  EXPECT_EQ(model.config, kConfig);
  expect_same_weights(model.weights, tiny_weights());
  EXPECT_EQ(load_model_files(dir / "m.h5").config, kConfig);
}

TEST(ModelCheckpoint, PlainTensorFilesAreNotModelCheckpoints) {
  TemporaryFolder dir;
  TensorFile plain;
  plain.tensors.emplace_back("x", torch::zeros({2}));
  save_tensor_file(dir / "plain.h5", plain);
  EXPECT_NE(error_of([&] {
              load_model_checkpoint(dir / "plain.h5");
            }).find("not a Chorus model checkpoint"),
            std::string::npos);
  plain.metadata = {{"chorus_model_format", "hf-config-1"}, {"config", "{broken"}};
  save_tensor_file(dir / "broken.h5", plain);
  EXPECT_NE(error_of([&] {
              load_model_checkpoint(dir / "broken.h5");
            }).find("'config' is not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_model_files(dir / "absent.h5"); }).find("not found"),
            std::string::npos);
}

TEST(ModelConversion, FolderToCheckpointAndBackIsLossless) {
  TemporaryFolder dir;
  fs::create_directories(dir / "hf");
  write_sharded(dir / "hf", tiny_weights());
  write_text(dir / "hf" / "config.json", kConfig.dump());

  const ConversionSummary to_h5 = convert_model(dir / "hf", dir / "m.h5");
  EXPECT_EQ(to_h5.tensors, 4u);
  EXPECT_EQ(to_h5.direction, "huggingface-folder -> chorus-checkpoint");
  const ConversionSummary back = convert_model(dir / "m.h5", dir / "hf2");
  EXPECT_EQ(back.bytes, to_h5.bytes);
  EXPECT_EQ(load_hf_config(dir / "hf2"), kConfig);
  expect_same_weights(load_hf_weights(dir / "hf2"), tiny_weights());
  EXPECT_TRUE(fs::exists(dir / "hf2" / "model.safetensors"));

  EXPECT_NE(error_of([&] { convert_model(dir / "hf", dir / "hf2"); }).find("is a folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              convert_model(dir / "m.h5", dir / "m.h5");
            }).find("the destination is the source"),
            std::string::npos);
  EXPECT_NE(error_of([&] { convert_model(dir / "nothing", dir / "x.h5"); }).find("not found"),
            std::string::npos);
}

}  // namespace
}  // namespace chorus::model
