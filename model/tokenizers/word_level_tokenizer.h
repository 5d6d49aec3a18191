// WordLevelTokenizer: whitespace-split words over a fixed vocabulary, for Chorus's generated tasks.
#pragma once

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizers/tokenizer.h"

namespace chorus::model {

// Vocabulary file format (word_vocab.txt): one token per line, the line
// number is the id. The first three lines are the special tokens <pad> </s>
// <unk> (ids 0, 1, 2, as in T5). Encoding splits on ASCII whitespace, maps
// unknown words to <unk> and appends </s>; decoding joins with single spaces.
class WordLevelTokenizer final : public Tokenizer {
 public:
  static constexpr const char* kFileName = "word_vocab.txt";

  // `words` are the ordinary tokens; the special tokens are put in front. A
  // duplicate, empty or whitespace-containing word is a chorus::Error.
  explicit WordLevelTokenizer(const std::vector<std::string>& words);
  // Reads a vocabulary file written by save(); errors name the file and line.
  static WordLevelTokenizer load(const std::filesystem::path& file);
  // Every distinct whitespace-separated word of `texts`, in order of first
  // appearance.
  static WordLevelTokenizer from_texts(const std::vector<std::string>& texts);
  // Writes `folder`/word_vocab.txt atomically (creating the folder).
  void save(const std::filesystem::path& folder) const;

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = true) const override;
  int64_t pad_id() const override { return 0; }
  int64_t eos_id() const override { return 1; }
  int64_t bos_id() const override { return -1; }
  int64_t unk_id() const override { return 2; }
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::string token(int64_t id) const override;

 private:
  WordLevelTokenizer() = default;
  void add(const std::string& word, const std::string& where);

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace chorus::model
