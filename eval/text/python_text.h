// Python's str semantics the reference scorers rely on: isspace, split(), lower(), regex \w.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chorus::eval {

// str.isspace() for one code point (ASCII controls 9-13 and 28-31, NEL, NBSP, ...).
bool is_python_space(char32_t cp);

// True where Python's `re` matches \w: str.isalnum() or '_'.
bool is_python_word_char(char32_t cp);

// str.lower(): full Unicode mapping including U+0130 -> "i\u0307" and the
// final-sigma rule (a capital sigma ending a word becomes U+03C2).
std::u32string python_lower(std::u32string_view text);

// str.split() with no argument: runs of Python whitespace separate words.
std::vector<std::u32string_view> python_split(std::u32string_view text);

}  // namespace chorus::eval
