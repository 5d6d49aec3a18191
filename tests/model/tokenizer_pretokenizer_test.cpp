// The GPT-2 pre-tokenisation pattern and the UTF-8 / Unicode-category helpers under it.
#include <gtest/gtest.h>

#include "model/tokenizers/gpt2_pretokenizer.h"
#include "model/tokenizers/unicode_categories.h"

namespace chorus::model {
namespace {

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view piece : gpt2_pretokenize(text)) out.emplace_back(piece);
  return out;
}

struct SplitCase {
  const char* name;
  const char* text;
  std::vector<std::string> expected;
};

// Expected splits follow the pattern's alternatives by hand; the parity test
// checks the same function against the `regex` module on whole corpora.
const SplitCase kSplitCases[] = {
    SplitCase{"Words", "Hello world", {"Hello", " world"}},
    SplitCase{"Contractions", "don't we'll I'M", {"don", "'t", " we", "'ll", " I", "'", "M"}},
    SplitCase{"Numbers", "in 2024, 3.5x", {"in", " 2024", ",", " 3", ".", "5", "x"}},
    SplitCase{"Punctuation", "a ?!b", {"a", " ?!", "b"}},
    // A whitespace run leaves its last space to the next word.
    SplitCase{"SpaceRuns", "a   b", {"a", "  ", " b"}},
    SplitCase{"TrailingSpaces", "a  ", {"a", "  "}},
    SplitCase{"NewlineBeforeWord", "a\nb", {"a", "\n", "b"}},
    SplitCase{"SpacesThenNewline", "a  \n b", {"a", "  \n", " b"}},
    SplitCase{"LeadingSpace", " x", {" x"}},
    SplitCase{"UnicodeLetters", "Straße naïve", {"Straße", " naïve"}},
    SplitCase{"UnicodeNumbers", "x½²", {"x", "½²"}},
    SplitCase{"NoBreakSpace", "a\u00a0b", {"a", "\u00a0", "b"}}, SplitCase{"Empty", "", {}}};

TEST(Gpt2Pretokenizer, SplitsLikeThePattern) {
  for (const SplitCase& split : kSplitCases)
    EXPECT_EQ(pieces(split.text), split.expected) << split.name;
}

TEST(Gpt2Pretokenizer, MalformedUtf8IsCoveredByteForByte) {
  const std::string text = "ab\xff\xc3 c";
  std::string joined;
  for (std::string_view piece : gpt2_pretokenize(text)) joined += piece;
  EXPECT_EQ(joined, text);
}

TEST(Unicode, CategoriesOfSampleCodePoints) {
  EXPECT_TRUE(unicode::is_letter(U'é'));
  EXPECT_TRUE(unicode::is_letter(U'漢'));
  EXPECT_TRUE(unicode::is_letter(U'ß'));
  EXPECT_FALSE(unicode::is_letter(U'1'));
  EXPECT_TRUE(unicode::is_number(U'½'));
  EXPECT_TRUE(unicode::is_number(U'Ⅻ'));
  EXPECT_TRUE(unicode::is_number(U'٣'));  // Arabic-Indic digit
  EXPECT_FALSE(unicode::is_number(U'a'));
  EXPECT_TRUE(unicode::is_whitespace(0x3000));
  EXPECT_FALSE(unicode::is_whitespace(0x1C));
  EXPECT_TRUE(unicode::is_python_space(0x1C));
  EXPECT_FALSE(unicode::is_letter(0x1F916));  // an emoji is a symbol
}

TEST(Unicode, MalformedSequencesBecomeOneReplacementPerMaximalSubpart) {
  // As Python's bytes.decode("utf-8", errors="replace").
  EXPECT_EQ(chorus::to_valid_utf8("a\xe2\x82"
                                   "b"),
            "a\xef\xbf\xbd"
            "b");  // truncated 3-byte: one U+FFFD
  EXPECT_EQ(chorus::to_valid_utf8("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");  // overlong: two
  EXPECT_EQ(chorus::to_valid_utf8("\xed\xa0\x80"),
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate: three
  EXPECT_EQ(chorus::to_valid_utf8("\xf4\x90\x80\x80"),
            "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // past U+10FFFF
  EXPECT_EQ(chorus::to_valid_utf8("ok \xf0\x9f\xa4\x96"), "ok \xf0\x9f\xa4\x96");
}

}  // namespace
}  // namespace chorus::model
