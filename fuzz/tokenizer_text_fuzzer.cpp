// libFuzzer target: the tokenizers' text scanning (UTF-8 decoding, GPT-2 pre-tokenisation,
// added-token splitting) on any bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizers/added_tokens.h"
#include "model/tokenizers/gpt2_pretokenizer.h"
#include "model/tokenizers/unicode_categories.h"

namespace {

const chorus::model::AddedTokens& added_tokens() {
  static const chorus::model::AddedTokens tokens = [] {
    chorus::model::AddedTokens t;
    t.add({"<s>", 0, false, false, true});
    t.add({"</s>", 2, false, false, true});
    t.add({"<mask>", 4, true, false, true});
    t.add({"<extra_id_0>", 9, true, true, true});
    t.add({"<extra_id_10>", 10, true, true, true});
    return t;
  }();
  return tokens;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<char> bytes(data, data + size);  // exact-size heap copy for AddressSanitizer
  const std::string_view text(bytes.data(), bytes.size());

  // Pre-tokenisation pieces are non-empty and tile the input exactly.
  std::size_t covered = 0;
  for (std::string_view piece : chorus::model::gpt2_pretokenize(text)) {
    if (piece.empty() || piece.data() != text.data() + covered) __builtin_trap();
    covered += piece.size();
  }
  if (covered != text.size()) __builtin_trap();

  // Replacing malformed sequences gives valid UTF-8, which is then a fixed point.
  const std::string valid = chorus::to_valid_utf8(text);
  if (chorus::to_valid_utf8(valid) != valid) __builtin_trap();

  // Added-token splitting: segments are views inside the text, in order.
  const char* last_end = text.data();
  for (const auto& segment : added_tokens().split(text)) {
    if (segment.text.data() < last_end ||
        segment.text.data() + segment.text.size() > text.data() + text.size())
      __builtin_trap();
    last_end = segment.text.data() + segment.text.size();
  }
  return 0;
}
