// AddedTokens: tokens matched verbatim in the text before the subword model runs (specials,
// sentinels).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace chorus::model {

// One added token, with the flags of Hugging Face's AddedToken.
struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false;  // swallows whitespace on its left
  bool rstrip = false;  // swallows whitespace on its right
  bool special = true;  // dropped by decode(skip_special_tokens=true)
};

// A piece of text after splitting out added tokens: either plain text for
// the subword model (token_id == -1) or one added token.
struct TextSegment {
  std::string_view text;
  int64_t token_id = -1;
};

class AddedTokens {
 public:
  // Adds or replaces the token with this content.
  void add(const AddedToken& token);
  const AddedToken* find_content(std::string_view content) const;
  const AddedToken* find_id(int64_t id) const;
  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& all() const { return tokens_; }

  // Splits `text` at the leftmost-longest occurrences of the added tokens, as
  // transformers' trie does, then applies lstrip/rstrip (Unicode whitespace)
  // to the neighbouring plain segments. Empty plain segments are dropped.
  std::vector<TextSegment> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, std::size_t> by_content_;
  std::unordered_map<int64_t, std::size_t> by_id_;
  std::array<bool, 256> first_bytes_{};  // bytes some token starts with
};

}  // namespace chorus::model
