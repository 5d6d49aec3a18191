// Tokenizers on small hand-made vocabularies: special tokens, merges, sentinels, folder detection,
// bad files.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/data_paths.h"
#include "common/error.h"
#include "model/tokenizers/byte_level_bpe_tokenizer.h"
#include "model/tokenizers/sentencepiece_tokenizer.h"
#include "model/tokenizers/tokenizer.h"
#include "model/tokenizers/word_level_tokenizer.h"
#include "tests/foundation/test_paths.h"

namespace chorus::model {
namespace {

using chorus::testing::TemporaryFolder;
namespace fs = std::filesystem;
using Ids = std::vector<int64_t>;

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

// --- Word level --------------------------------------------------------------------------------

TEST(WordLevelTokenizer, EncodesWordsAppendsEosAndDecodes) {
  const WordLevelTokenizer tokenizer =
      WordLevelTokenizer::from_texts({"key1 = 7", "key2 = key1 + 3"});
  EXPECT_EQ(tokenizer.vocab_size(), 3 + 6);
  EXPECT_EQ(tokenizer.encode("key1  +\tkey2 unseen"), (Ids{3, 7, 6, 2, 1}));
  EXPECT_EQ(tokenizer.encode("key1", false), (Ids{3}));
  EXPECT_EQ(tokenizer.decode({3, 7, 6, 2, 1, 0}), "key1 + key2");
  EXPECT_EQ(tokenizer.decode({3, 1, 0}, false), "key1 </s> <pad>");
  EXPECT_EQ(tokenizer.token(4), "=");
  EXPECT_EQ(tokenizer.bos_id(), -1);
  EXPECT_NE(error_of([&] { tokenizer.decode({99}); }).find("id 99"), std::string::npos);
}

TEST(WordLevelTokenizer, SavedFolderLoadsBackThroughTheFactory) {
  TemporaryFolder dir;
  WordLevelTokenizer({"alpha", "beta"}).save(dir.path());
  const auto loaded = load_tokenizer(dir.path());
  EXPECT_EQ(loaded->encode("beta alpha gamma"), (Ids{4, 3, 2, 1}));
  EXPECT_EQ(loaded->pad_id(), 0);
}

TEST(WordLevelTokenizer, BadVocabularyFilesNameTheLine) {
  TemporaryFolder dir;
  write_text(dir / "v.txt", "<pad>\n</s>\n<unk>\nword\nword\n");
  EXPECT_NE(error_of([&] {
              WordLevelTokenizer::load(dir / "v.txt");
            }).find("v.txt:5: token 'word' appears twice"),
            std::string::npos);
  write_text(dir / "v.txt", "<pad>\n<unk>\n</s>\n");
  EXPECT_NE(error_of([&] {
              WordLevelTokenizer::load(dir / "v.txt");
            }).find("v.txt:2: expected the special token '</s>'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { WordLevelTokenizer({"two words"}); }).find("contains whitespace"),
            std::string::npos);
}

// --- Byte-level BPE on a hand-made vocabulary --------------------------------------------------

// Vocabulary: specials, the bytes of "lowerĠnew" (Ġ is the mapped space), and merges building
// "low", "er", "lower", "Ġn", "Ġne", "Ġnew".
void write_tiny_bpe(const fs::path& folder, const std::string& extra_merge = "") {
  const std::vector<std::string> tokens = {
      "<s>",   "<pad>",     "</s>",       "<unk>",       "l",     "o",   "w",
      "e",     "r",         "n",          "\xc4\xa0",    "lo",    "low", "er",
      "lower", "\xc4\xa0n", "\xc4\xa0ne", "\xc4\xa0new", "<mask>"};
  nlohmann::json vocab = nlohmann::json::object();
  for (std::size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  write_text(folder / "vocab.json", vocab.dump());
  write_text(folder / "merges.txt",
             "#version: 0.2\nl o\nlo w\ne r\nlow er\n\xc4\xa0 n\n\xc4\xa0n e\n\xc4\xa0ne w\n" +
                 extra_merge);
}

TEST(ByteLevelBpeTokenizer, MergesByRankAndWrapsInBosEos) {
  TemporaryFolder dir;
  write_tiny_bpe(dir.path());
  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->encode("lower new"), (Ids{0, 14, 17, 2}));
  EXPECT_EQ(tokenizer->encode("low", false), (Ids{12}));
  // 'x' is not in this vocabulary: its byte becomes <unk>.
  EXPECT_EQ(tokenizer->encode("lox", false), (Ids{11, 3}));
  EXPECT_EQ(tokenizer->encode("low<mask> new</s>", false), (Ids{12, 18, 17, 2}));
  // <mask> swallows the space on its left.
  EXPECT_EQ(tokenizer->encode("low <mask>", false), (Ids{12, 18}));
  EXPECT_EQ(tokenizer->decode({0, 14, 17, 2}), "lower new");
  EXPECT_EQ(tokenizer->decode({0, 14, 17, 2}, false), "<s>lower new</s>");
  EXPECT_EQ(tokenizer->token(17), "\xc4\xa0new");
  EXPECT_EQ(tokenizer->bos_id(), 0);
  EXPECT_EQ(tokenizer->pad_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->unk_id(), 3);
}

TEST(ByteLevelBpeTokenizer, AddPrefixSpaceFromTheTokenizerConfig) {
  TemporaryFolder dir;
  write_tiny_bpe(dir.path());
  write_text(dir / "tokenizer_config.json", R"({"add_prefix_space": true})");
  EXPECT_EQ(load_tokenizer(dir.path())->encode("new", false), (Ids{17}));
}

TEST(ByteLevelBpeTokenizer, WrongVocabularyFilesAreErrorsNamingFileAndLine) {
  TemporaryFolder dir;
  write_tiny_bpe(dir.path(), "q z\n");
  EXPECT_NE(error_of([&] {
              load_tokenizer(dir.path());
            }).find("merges.txt:9: merge 'q z' uses a token missing"),
            std::string::npos);
  write_tiny_bpe(dir.path(), "e w\n");
  EXPECT_NE(error_of([&] { load_tokenizer(dir.path()); }).find("makes 'ew', which is missing"),
            std::string::npos);
  write_tiny_bpe(dir.path(), "lonely\n");
  EXPECT_NE(error_of([&] { load_tokenizer(dir.path()); }).find("merges.txt:9: expected two tokens"),
            std::string::npos);
  write_text(dir / "merges.txt", "");
  write_text(dir / "vocab.json", R"({"a": 0, "b": 2})");
  EXPECT_NE(error_of([&] { load_tokenizer(dir.path()); }).find("no token has id 1"),
            std::string::npos);
  write_text(dir / "vocab.json", R"({"a": 0})");
  EXPECT_NE(error_of([&] { load_tokenizer(dir.path()); }).find("lacks the special token '<s>'"),
            std::string::npos);
  write_text(dir / "vocab.json", R"(["a"])");
  EXPECT_NE(
      error_of([&] { load_tokenizer(dir.path()); }).find("vocab.json: expected a JSON object"),
      std::string::npos);
}

// --- SentencePiece with T5's conventions --------------------------------------------------------

class SentencePieceWithSample : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = find_data_file("sentencepiece/sample.sp.model");
    if (!model)
      GTEST_SKIP()
          << "sentencepiece/sample.sp.model not found under the data root (set CHORUS_DATA)";
    model_ = *model;
  }
  fs::path model_;
};

TEST_F(SentencePieceWithSample, SentinelsFollowThePiecesAndMissingSpecialsComeLast) {
  // sample.sp.model has 1000 pieces with <unk>=0, <s>=1, </s>=2 and no <pad>.
  SentencePieceTokenizer tokenizer(model_, SentencePieceTokenizer::Options{});
  EXPECT_EQ(tokenizer.piece_count(), 1000);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  EXPECT_EQ(tokenizer.unk_id(), 0);
  EXPECT_EQ(tokenizer.pad_id(), 1100);  // after the 100 sentinels, as T5Tokenizer adds it
  EXPECT_EQ(tokenizer.vocab_size(), 1101);
  EXPECT_EQ(tokenizer.token(1099), "<extra_id_0>");
  EXPECT_EQ(tokenizer.token(1000), "<extra_id_99>");
  EXPECT_EQ(tokenizer.bos_id(), -1);

  const Ids ids = tokenizer.encode("Hello world <extra_id_0> there");
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1099), 1);
  // A text already ending in </s> gets no second one.
  const Ids with_eos = tokenizer.encode("Hello</s>");
  EXPECT_EQ(std::count(with_eos.begin(), with_eos.end(), 2), 1);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("Hello world")), "Hello world");
  EXPECT_NE(error_of([&] { tokenizer.decode({1101}); }).find("id 1101"), std::string::npos);
}

TEST_F(SentencePieceWithSample, FactoryPicksSentencePieceAndConfigOverridesExtraIds) {
  TemporaryFolder dir;
  fs::copy_file(model_, dir / "spiece.model");
  write_text(dir / "tokenizer_config.json", R"({"extra_ids": 3, "pad_token": "<unk>"})");
  const auto tokenizer = load_tokenizer(dir.path());
  EXPECT_EQ(tokenizer->vocab_size(), 1003);
  EXPECT_EQ(tokenizer->token(1002), "<extra_id_0>");
  EXPECT_EQ(tokenizer->pad_id(), 0);
}

TEST(SentencePieceTokenizer, CorruptModelFileIsAnError) {
  TemporaryFolder dir;
  write_text(dir / "spiece.model", "not a model");
  EXPECT_NE(
      error_of([&] { load_tokenizer(dir.path()); }).find("spiece.model: not a SentencePiece model"),
      std::string::npos);
}

TEST(LoadTokenizer, FolderWithoutTokenizerFilesListsWhatItHolds) {
  TemporaryFolder dir;
  write_text(dir / "config.json", "{}");
  const std::string message = error_of([&] { load_tokenizer(dir.path()); });
  EXPECT_NE(message.find("no tokenizer found"), std::string::npos) << message;
  EXPECT_NE(message.find("config.json"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { load_tokenizer(dir / "absent"); }).find("not a folder"),
            std::string::npos);
}

}  // namespace
}  // namespace chorus::model
