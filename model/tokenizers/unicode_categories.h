// Unicode helpers for tokenizers: the letter/number/whitespace classes of regex patterns
// (UTF-8 decoding itself is in common/text/utf8.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/text/utf8.h"

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

}  // namespace chorus::model::unicode
