#include "eval/text/python_text.h"

#include <algorithm>

#include "eval/text/unicode_tables.h"

namespace chorus::eval {
namespace {

char32_t lower_one(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  const auto* begin = unicode_tables::kLowercase;
  const auto* end = begin + unicode_tables::kLowercaseSize;
  const auto* it = std::lower_bound(begin, end, cp, [](const unicode_tables::CaseMapping& m, char32_t c) {
    return m.from < c;
  });
  return (it != end && it->from == cp) ? it->to : cp;
}

// A letter that has a case: the approximation of Unicode's "Cased" property
// used for the final-sigma context (letters whose case mapping changes them).
bool is_cased(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
  if (lower_one(cp) != cp) return true;
  // Lowercase letters: some other code point lowers onto them.
  for (std::size_t i = 0; i < unicode_tables::kLowercaseSize; ++i) {
    if (unicode_tables::kLowercase[i].to == cp) return true;
  }
  return false;
}

// Combining marks and apostrophes that the final-sigma rule skips over.
bool is_case_ignorable(char32_t cp) {
  return cp == '\'' || cp == 0x2019 || cp == 0xB7 || (cp >= 0x300 && cp <= 0x36F);
}

}  // namespace

bool is_python_space(char32_t cp) {
  return (cp >= 9 && cp <= 13) || (cp >= 28 && cp <= 32) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_python_word_char(char32_t cp) {
  if (cp < 0x80) {
    return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  }
  const auto* begin = unicode_tables::kWordCharacters;
  const auto* end = begin + unicode_tables::kWordCharactersSize;
  const auto* it = std::upper_bound(begin, end, cp, [](char32_t c, const unicode_tables::CodePointRange& r) {
    return c < r.first;
  });
  return it != begin && cp <= (it - 1)->last;
}

std::u32string python_lower(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char32_t cp = text[i];
    if (cp < 0x80) {
      out.push_back((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp);
    } else if (cp == 0x130) {
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (cp == 0x3A3) {
      // Final sigma: preceded by a cased letter and not followed by one.
      std::size_t before = i;
      while (before > 0 && is_case_ignorable(text[before - 1])) --before;
      std::size_t after = i + 1;
      while (after < text.size() && is_case_ignorable(text[after])) ++after;
      const bool final_sigma =
          before > 0 && is_cased(text[before - 1]) && !(after < text.size() && is_cased(text[after]));
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(lower_one(cp));
    }
  }
  return out;
}

std::vector<std::u32string_view> python_split(std::u32string_view text) {
  std::vector<std::u32string_view> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_python_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_python_space(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace chorus::eval
