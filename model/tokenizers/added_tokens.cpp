#include "model/tokenizers/added_tokens.h"

#include "model/tokenizers/unicode_categories.h"

namespace chorus::model {
namespace {

// Bytes of Python whitespace (str.isspace) at the end / the start of `text`.
std::size_t trailing_space_bytes(std::string_view text) {
  std::size_t content_end = 0;
  for (std::size_t i = 0; i < text.size();) {
    const Utf8CodePoint d = decode_utf8_at(text, i);
    i += d.length;
    if (!unicode::is_python_space(d.cp)) content_end = i;
  }
  return text.size() - content_end;
}

std::size_t leading_space_bytes(std::string_view text) {
  std::size_t cut = 0;
  while (cut < text.size()) {
    const Utf8CodePoint d = decode_utf8_at(text, cut);
    if (!unicode::is_python_space(d.cp)) break;
    cut += d.length;
  }
  return cut;
}

}  // namespace

void AddedTokens::add(const AddedToken& token) {
  auto it = by_content_.find(token.content);
  if (it != by_content_.end()) {
    by_id_.erase(tokens_[it->second].id);
    tokens_[it->second] = token;
    by_id_[token.id] = it->second;
    return;
  }
  if (!token.content.empty()) first_bytes_[static_cast<unsigned char>(token.content[0])] = true;
  by_content_.emplace(token.content, tokens_.size());
  by_id_[token.id] = tokens_.size();
  tokens_.push_back(token);
}

const AddedToken* AddedTokens::find_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::find_id(int64_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::vector<TextSegment> AddedTokens::split(std::string_view text) const {
  // Leftmost, then longest, occurrence of any added token.
  std::vector<TextSegment> raw;
  std::size_t plain_start = 0;
  for (std::size_t i = 0; i < text.size();) {
    const AddedToken* best = nullptr;
    if (!first_bytes_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    for (const AddedToken& token : tokens_) {
      if (!token.content.empty() && text.compare(i, token.content.size(), token.content) == 0 &&
          (best == nullptr || token.content.size() > best->content.size()))
        best = &token;
    }
    if (best == nullptr) {
      ++i;
      continue;
    }
    if (i > plain_start) raw.push_back({text.substr(plain_start, i - plain_start), -1});
    raw.push_back({text.substr(i, best->content.size()), best->id});
    i += best->content.size();
    plain_start = i;
  }
  if (plain_start < text.size()) raw.push_back({text.substr(plain_start), -1});

  // Strip whitespace next to tokens that swallow it, then drop empty text.
  for (std::size_t k = 0; k < raw.size(); ++k) {
    if (raw[k].token_id < 0) continue;
    const AddedToken* token = find_id(raw[k].token_id);
    if (token->rstrip && k + 1 < raw.size() && raw[k + 1].token_id < 0)
      raw[k + 1].text.remove_prefix(leading_space_bytes(raw[k + 1].text));
    if (token->lstrip && k > 0 && raw[k - 1].token_id < 0)
      raw[k - 1].text.remove_suffix(trailing_space_bytes(raw[k - 1].text));
  }
  std::vector<TextSegment> segments;
  for (const TextSegment& segment : raw)
    if (segment.token_id >= 0 || !segment.text.empty()) segments.push_back(segment);
  return segments;
}

}  // namespace chorus::model
