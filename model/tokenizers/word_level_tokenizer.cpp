#include "model/tokenizers/word_level_tokenizer.h"

#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "common/error.h"

namespace chorus::model {
namespace {

const char* const kSpecialTokens[] = {"<pad>", "</s>", "<unk>"};

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

template <typename Visit>
void for_each_word(std::string_view text, Visit visit) {
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_ascii_space(text[i])) ++i;
    std::size_t end = i;
    while (end < text.size() && !is_ascii_space(text[end])) ++end;
    if (end > i) visit(text.substr(i, end - i));
    i = end;
  }
}

}  // namespace

void WordLevelTokenizer::add(const std::string& word, const std::string& where) {
  CHORUS_CHECK(!word.empty(), where, ": empty token");
  for (char c : word)
    CHORUS_CHECK(!is_ascii_space(c), where, ": token '", word, "' contains whitespace");
  CHORUS_CHECK(ids_.emplace(word, static_cast<int64_t>(tokens_.size())).second, where, ": token '",
               word, "' appears twice");
  tokens_.push_back(word);
}

WordLevelTokenizer::WordLevelTokenizer(const std::vector<std::string>& words) {
  for (const char* special : kSpecialTokens) add(special, "word vocabulary");
  for (const std::string& word : words) add(word, "word vocabulary");
}

WordLevelTokenizer WordLevelTokenizer::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  CHORUS_CHECK(in.good(), file.string(), ": cannot open");
  WordLevelTokenizer tokenizer;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string where = detail::concat(file.string(), ":", number);
    if (number <= 3)
      CHORUS_CHECK(line == kSpecialTokens[number - 1], where, ": expected the special token '",
                   kSpecialTokens[number - 1], "', found '", line, "'");
    tokenizer.add(line, where);
  }
  CHORUS_CHECK(tokenizer.tokens_.size() >= 3, file.string(),
               ": expected at least the lines <pad>, </s>, <unk>");
  return tokenizer;
}

WordLevelTokenizer WordLevelTokenizer::from_texts(const std::vector<std::string>& texts) {
  WordLevelTokenizer tokenizer(std::vector<std::string>{});
  for (const std::string& text : texts)
    for_each_word(text, [&](std::string_view word) {
      if (!tokenizer.ids_.count(std::string(word)))
        tokenizer.add(std::string(word), "word vocabulary");
    });
  return tokenizer;
}

void WordLevelTokenizer::save(const std::filesystem::path& folder) const {
  std::filesystem::create_directories(folder);
  std::ostringstream out;
  for (const std::string& word : tokens_) out << word << "\n";
  write_file_atomically(folder / kFileName, out.str());
}

std::vector<int64_t> WordLevelTokenizer::encode(std::string_view text,
                                                bool add_special_tokens) const {
  std::vector<int64_t> ids;
  for_each_word(text, [&](std::string_view word) {
    auto it = ids_.find(std::string(word));
    ids.push_back(it == ids_.end() ? unk_id() : it->second);
  });
  if (add_special_tokens) ids.push_back(eos_id());
  return ids;
}

std::string WordLevelTokenizer::decode(const std::vector<int64_t>& ids,
                                       bool skip_special_tokens) const {
  std::string text;
  for (int64_t id : ids) {
    CHORUS_CHECK(id >= 0 && id < vocab_size(), "word-level decode: id ", id,
                 " is outside the vocabulary [0, ", vocab_size(), ")");
    if (skip_special_tokens && id < 3) continue;
    if (!text.empty()) text += ' ';
    text += tokens_[id];
  }
  return text;
}

std::string WordLevelTokenizer::token(int64_t id) const {
  CHORUS_CHECK(id >= 0 && id < vocab_size(), "word-level tokenizer: id ", id,
               " is outside the vocabulary [0, ", vocab_size(), ")");
  return tokens_[id];
}

}  // namespace chorus::model
