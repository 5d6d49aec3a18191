// UTF-8 decoding and encoding shared by tokenizers and metrics (Unicode Table 3-7 well-formedness).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chorus {

// One code point read at a byte position. A malformed sequence yields U+FFFD
// with `valid` false and the length of its maximal subpart (at least one byte),
// the unit Python's `errors="replace"` decoder substitutes, so every byte is covered.
struct Utf8CodePoint {
  char32_t cp;
  std::size_t length;
  bool valid;
};
Utf8CodePoint decode_utf8_at(std::string_view text, std::size_t position);

// Byte offset of the first ill-formed sequence (overlongs, surrogates, stray or
// truncated bytes, code points past U+10FFFF), or nullopt when `text` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Strict decoding; throws chorus::Error naming `what` and the byte offset of the
// first ill-formed sequence.
std::u32string decode_utf8(std::string_view text, std::string_view what = "text");

// `bytes` with every ill-formed sequence replaced by U+FFFD, as Python's
// bytes.decode("utf-8", errors="replace").
std::string to_valid_utf8(std::string_view bytes);

void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(std::u32string_view text);

}  // namespace chorus
