// libsentencepiece round-trips text through a real trained unigram model.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include "common/data_paths.h"

namespace {

class SentencePieceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    auto path = chorus::find_data_file("sentencepiece/sample.sp.model");
    if (!path) {
      GTEST_SKIP() << "sentencepiece/sample.sp.model not found (set CHORUS_DATA to the data sets' "
                      "folder, e.g. ../shared/data)";
    }
    const auto status = processor_.Load(path->string());
    ASSERT_TRUE(status.ok()) << status.ToString();
  }
  sentencepiece::SentencePieceProcessor processor_;
};

TEST_F(SentencePieceModel, EncodeDecodeRoundTrip) {
  const std::string text = "Two dogs run across the snowy field.";
  std::vector<int> ids;
  ASSERT_TRUE(processor_.Encode(text, &ids).ok());
  ASSERT_FALSE(ids.empty());
  for (int id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, processor_.GetPieceSize());
  }
  std::string decoded;
  ASSERT_TRUE(processor_.Decode(ids, &decoded).ok());
  EXPECT_EQ(decoded, text);
}

TEST_F(SentencePieceModel, PiecesMarkWordStartsAndConcatenateToText) {
  std::vector<std::string> pieces;
  ASSERT_TRUE(processor_.Encode("hello world", &pieces).ok());
  ASSERT_FALSE(pieces.empty());
  // SentencePiece marks a word start with U+2581 (LOWER ONE EIGHTH BLOCK).
  EXPECT_EQ(pieces.front().rfind("\xE2\x96\x81", 0), 0u) << pieces.front();
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  EXPECT_EQ(joined, "\xE2\x96\x81hello\xE2\x96\x81world");
}

TEST_F(SentencePieceModel, IdsAndPiecesAreConsistent) {
  std::vector<int> ids;
  std::vector<std::string> pieces;
  ASSERT_TRUE(processor_.Encode("The quick brown fox", &ids).ok());
  ASSERT_TRUE(processor_.Encode("The quick brown fox", &pieces).ok());
  ASSERT_EQ(ids.size(), pieces.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(processor_.IdToPiece(ids[i]), pieces[i]);
    EXPECT_EQ(processor_.PieceToId(pieces[i]), ids[i]);
  }
}

}  // namespace
