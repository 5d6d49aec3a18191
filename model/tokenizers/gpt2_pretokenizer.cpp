#include "model/tokenizers/gpt2_pretokenizer.h"

#include "model/tokenizers/unicode_categories.h"

namespace chorus::model {
namespace {

enum class CharClass { kLetter, kNumber, kSpace, kOther };

struct Char {
  char32_t cp;
  std::size_t offset;  // byte offset in the text
  CharClass cls;
};

CharClass classify(char32_t cp) {
  if (unicode::is_letter(cp)) return CharClass::kLetter;
  if (unicode::is_number(cp)) return CharClass::kNumber;
  if (unicode::is_whitespace(cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

// Length in characters of the contraction ('s 't 're 've 'm 'll 'd) at i, or 0.
std::size_t contraction_length(const std::vector<Char>& chars, std::size_t i) {
  if (chars[i].cp != U'\'' || i + 1 >= chars.size()) return 0;
  const char32_t a = chars[i + 1].cp;
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  if (i + 2 >= chars.size()) return 0;
  const char32_t b = chars[i + 2].cp;
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// Length of the match at i (in characters); always at least 1.
std::size_t match_length(const std::vector<Char>& chars, std::size_t i) {
  if (std::size_t n = contraction_length(chars, i)) return n;
  const std::size_t size = chars.size();
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional ASCII space, then a run of one class.
  const std::size_t start = (chars[i].cp == U' ' && i + 1 < size) ? i + 1 : i;
  const CharClass cls = chars[start].cls;
  if (cls != CharClass::kSpace) {
    std::size_t end = start + 1;
    while (end < size && chars[end].cls == cls) ++end;
    return end - i;
  }
  // `\s+(?!\S)` then `\s+`: a whitespace run, leaving its last character to
  // the next word when a non-space follows (unless the run is one character).
  std::size_t end = i + 1;
  while (end < size && chars[end].cls == CharClass::kSpace) ++end;
  if (end < size && end - i > 1) --end;
  return end - i;
}

}  // namespace

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (std::size_t offset = 0; offset < text.size();) {
    const Utf8CodePoint d = decode_utf8_at(text, offset);
    chars.push_back({d.cp, offset, classify(d.cp)});
    offset += d.length;
  }
  std::vector<std::string_view> pieces;
  for (std::size_t i = 0; i < chars.size();) {
    const std::size_t end = i + match_length(chars, i);
    const std::size_t begin_byte = chars[i].offset;
    const std::size_t end_byte = end < chars.size() ? chars[end].offset : text.size();
    pieces.push_back(text.substr(begin_byte, end_byte - begin_byte));
    i = end;
  }
  return pieces;
}

}  // namespace chorus::model
