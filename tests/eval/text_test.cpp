// UTF-8 decoding and the Python str semantics the scorers follow.
#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

TEST(Utf8, DecodesAndEncodesRoundTrip) {
  const std::string text = "a\u00e9\u4e2d\U0001F600";
  const std::u32string decoded = decode_utf8(text);
  EXPECT_EQ(decoded, (std::u32string{U'a', 0xE9, 0x4E2D, 0x1F600}));
  EXPECT_EQ(encode_utf8(decoded), text);
  EXPECT_FALSE(find_invalid_utf8(text).has_value());
}

struct InvalidCase {
  std::string bytes;
  std::size_t offset;
};

class Utf8Invalid : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(Utf8Invalid, IsRejectedAtItsOffset) {
  const auto& c = GetParam();
  ASSERT_TRUE(find_invalid_utf8(c.bytes).has_value());
  EXPECT_EQ(*find_invalid_utf8(c.bytes), c.offset);
  try {
    decode_utf8(c.bytes, "hyps.txt line 3");
    FAIL() << "expected chorus::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hyps.txt line 3: invalid UTF-8 at byte " + std::to_string(c.offset)),
              std::string::npos)
        << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Sequences, Utf8Invalid,
                         ::testing::Values(InvalidCase{"ab\x80", 2},            // stray continuation byte
                                           InvalidCase{"\xC0\x80", 0},          // overlong NUL
                                           InvalidCase{"x\xED\xA0\x80", 1},     // UTF-16 surrogate
                                           InvalidCase{"ok\xE2\x82", 2},        // truncated sequence
                                           InvalidCase{"\xF5\x80\x80\x80", 0},  // beyond U+10FFFF
                                           InvalidCase{"\xE2(\xA1", 0}));       // bad continuation

TEST(PythonText, LowerFollowsPythonIncludingSpecialCases) {
  EXPECT_EQ(python_lower(U"\u00c4BC \u00d6"), U"\u00e4bc \u00f6");
  EXPECT_EQ(python_lower(U"\u0130"), U"i\u0307");              // dotted capital I: two code points
  EXPECT_EQ(python_lower(U"\u212a"), U"k");                    // KELVIN SIGN lowercases to ASCII
  EXPECT_EQ(python_lower(U"\u039f\u0394\u039f\u03a3"), U"\u03bf\u03b4\u03bf\u03c2");  // final sigma
  EXPECT_EQ(python_lower(U"\u03a3\u0391"), U"\u03c3\u03b1");   // sigma not at a word end
  EXPECT_EQ(python_lower(U"\uff21"), U"\uff41");               // full-width letters
}

TEST(PythonText, SplitUsesPythonWhitespace) {
  const auto words = python_split(U" a\u00a0b\u3000c\u200bd\x1f e\n");
  ASSERT_EQ(words.size(), 4u);
  EXPECT_EQ(words[2], U"c\u200bd");  // ZERO WIDTH SPACE is not whitespace for Python
  EXPECT_EQ(words[3], U"e");
  EXPECT_TRUE(python_split(U" \t\u2028 ").empty());
}

TEST(PythonText, WordCharactersFollowPythonRegex) {
  EXPECT_TRUE(is_python_word_char(U'_'));
  EXPECT_TRUE(is_python_word_char(0xE9));    // é
  EXPECT_TRUE(is_python_word_char(0x4E2D));  // 中
  EXPECT_TRUE(is_python_word_char(0xB2));    // superscript two is numeric
  EXPECT_FALSE(is_python_word_char(U'-'));
  EXPECT_FALSE(is_python_word_char(0x2019));  // right single quotation mark
  EXPECT_FALSE(is_python_word_char(0x1F600));
}

}  // namespace
}  // namespace chorus::eval
