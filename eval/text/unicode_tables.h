// Generated Unicode tables (Python's str.lower and regex \w), see generate_unicode_tables.py.
#pragma once

#include <cstddef>

namespace chorus::eval::unicode_tables {

struct CaseMapping {
  char32_t from;
  char32_t to;
};

struct CodePointRange {
  char32_t first;
  char32_t last;
};

// Single code point lowercase mappings, sorted by `from`.
extern const CaseMapping kLowercase[];
extern const std::size_t kLowercaseSize;

// Code points where Python's str.isalnum() holds, plus '_', as sorted ranges.
extern const CodePointRange kWordCharacters[];
extern const std::size_t kWordCharactersSize;

}  // namespace chorus::eval::unicode_tables
