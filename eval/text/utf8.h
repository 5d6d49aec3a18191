// Strict UTF-8 decoding and encoding (rejects overlongs, surrogates and stray bytes).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chorus::eval {

// Byte offset of the first invalid UTF-8 sequence in `text`, or nullopt when valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// Decodes `text` into code points; throws chorus::Error naming `what` and the
// byte offset when the text is not valid UTF-8.
std::u32string decode_utf8(std::string_view text, std::string_view what = "text");

void append_utf8(std::string& out, char32_t code_point);
std::string encode_utf8(std::u32string_view text);

}  // namespace chorus::eval
