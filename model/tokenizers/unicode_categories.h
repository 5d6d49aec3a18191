// Unicode helpers for tokenizers: UTF-8 decoding and the letter/number/whitespace classes of regex
// patterns.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chorus::model::unicode {

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// Generated tables (unicode_tables.cpp, by generate_unicode_tables.py).
extern const CodePointRange kLetterRanges[];
extern const CodePointRange kNumberRanges[];
extern const std::size_t kLetterRangeCount;
extern const std::size_t kNumberRangeCount;
extern const char* const kUnicodeVersion;

bool is_letter(char32_t cp);  // \p{L}
bool is_number(char32_t cp);  // \p{N}
// \s of the regex engines the references use: the Unicode White_Space property.
bool is_whitespace(char32_t cp);
// Python's str.isspace(): White_Space plus the separators U+001C..U+001F.
bool is_python_space(char32_t cp);

// One decoded code point and how many bytes it took. Malformed UTF-8 yields
// U+FFFD for its maximal subpart (at least one byte), so every byte of the
// input is covered.
struct Decoded {
  char32_t cp;
  std::size_t length;
};
Decoded decode_utf8(std::string_view text, std::size_t position);
void append_utf8(std::string& out, char32_t cp);
// `bytes` with every malformed sequence replaced by U+FFFD, as Python's
// bytes.decode("utf-8", errors="replace").
std::string to_valid_utf8(std::string_view bytes);

}  // namespace chorus::model::unicode
