// `chorus convert` carries a folder's tokenizer and generation defaults: a converted checkpoint
// tokenizes and generates as its source folder, and converting back restores the files byte for byte.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "model/generation/generate.h"
#include "model/io/model_conversion.h"
#include "model/seq2seq_model.h"
#include "model/tokenizers/tokenizer.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A fresh folder for one test, removed afterwards.
struct ScratchFolder {
  fs::path path;
  explicit ScratchFolder(const std::string& name)
      : path(fs::temp_directory_path() / ("chorus-" + name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// Beam search on one text, with the model's own defaults, tokenizer and model all from `path`.
torch::Tensor generate_ids(const fs::path& path, const std::string& text) {
  const auto model = model::load_seq2seq_model(path);
  const auto tokenizer = model::load_tokenizer(path);
  auto options = model::load_generation_defaults(path, model->config());
  options.max_new_tokens = 10;
  options.num_beams = 3;
  options.num_return_sequences = 2;
  options.repetition_penalty = 1.2;
  const auto ids = tokenizer->encode(text);
  const auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  return model::generate(*model, input, torch::ones_like(input), options).sequences;
}

TEST(ConvertCarriesFiles, CheckpointGeneratesLikeTheFolderAndConvertsBackByteForByte) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  ScratchFolder scratch("convert-carry");
  const auto folder = fixtures / "t5_v1_0";
  const auto checkpoint = scratch.path / "t5.h5";
  const auto there = model::convert_model(folder, checkpoint);
  EXPECT_EQ(there.carried_files, (std::vector<std::string>{"generation_config.json", "word_vocab.txt"}));

  const std::string text = "w5 w17 w17 w40 w9 w33 w61 w12 w5 w28 w7";
  const auto expected = generate_ids(folder, text);
  const auto got = generate_ids(checkpoint, text);
  EXPECT_TRUE(torch::equal(got, expected)) << "checkpoint\n" << got << "\nfolder\n" << expected;
  EXPECT_EQ(model::load_tokenizer(checkpoint)->encode(text), model::load_tokenizer(folder)->encode(text));

  const auto back = scratch.path / "back";
  const auto summary = model::convert_model(checkpoint, back);
  EXPECT_EQ(summary.carried_files, there.carried_files);
  for (const auto& name : there.carried_files) {
    ASSERT_TRUE(fs::exists(back / name)) << name;
    EXPECT_EQ(read_bytes(back / name), read_bytes(folder / name)) << name << " changed on the round trip";
  }
  EXPECT_TRUE(torch::equal(generate_ids(back, text), expected));
}

TEST(ConvertCarriesFiles, GenerationDefaultsTravelAndAMissingTokenizerIsNamed) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  ScratchFolder scratch("convert-defaults");
  // This BART keeps forced_bos_token_id only in its generation_config.json.
  const auto folder = fixtures / "bart_forced_bos_relu";
  const auto checkpoint = scratch.path / "bart.h5";
  model::convert_model(folder, checkpoint);
  const auto model = model::load_seq2seq_model(checkpoint);
  const auto from_folder = model::load_generation_defaults(folder, model->config());
  const auto from_checkpoint = model::load_generation_defaults(checkpoint, model->config());
  ASSERT_TRUE(from_folder.forced_bos_token_id.has_value());
  EXPECT_EQ(from_checkpoint.forced_bos_token_id.value_or(-1), from_folder.forced_bos_token_id.value_or(-1));
  EXPECT_EQ(from_checkpoint.forced_eos_token_id.value_or(-1), from_folder.forced_eos_token_id.value_or(-1));
  EXPECT_EQ(from_checkpoint.eos_token_ids, from_folder.eos_token_ids);
  EXPECT_EQ(from_checkpoint.decoder_start_token_id.value_or(-1), from_folder.decoder_start_token_id.value_or(-1));
  // The fixture folder has no tokenizer, so neither has the checkpoint.
  try {
    model::load_tokenizer(checkpoint);
    ADD_FAILURE() << "a checkpoint without tokenizer files gave a tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("carries no tokenizer files"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace chorus::testing
