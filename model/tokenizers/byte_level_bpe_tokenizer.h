// ByteLevelBpeTokenizer: GPT-2 / RoBERTa / BART byte-level BPE, written from the published
// algorithm.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizers/added_tokens.h"
#include "model/tokenizers/tokenizer.h"

namespace chorus::model {

// Text is split by the GPT-2 pre-tokenisation pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (hand-written matcher over Unicode category tables), each piece's UTF-8
// bytes are mapped to printable code points (the byte-to-unicode table) and
// merged pairwise by merge rank. Special tokens <s> </s> <pad> <unk> <mask>
// are matched verbatim in the text (<mask> swallowing whitespace on its left,
// as in BART/RoBERTa). encode() wraps as <s> ... </s> (BART/RoBERTa).
class ByteLevelBpeTokenizer final : public Tokenizer {
 public:
  struct Options {
    bool add_prefix_space = false;  // prepend a space when the text does not start with one
    std::string bos_token = "<s>";
    std::string eos_token = "</s>";
    std::string pad_token = "<pad>";
    std::string unk_token = "<unk>";
    std::string mask_token = "<mask>";
  };

  // `folder` holds vocab.json + merges.txt, or tokenizer.json (model type
  // BPE); tokenizer_config.json's add_prefix_space is honoured. Errors name
  // the file and line (bad JSON, a merge of unknown tokens, a missing special).
  static std::unique_ptr<ByteLevelBpeTokenizer> load(const std::filesystem::path& folder);
  ByteLevelBpeTokenizer(const std::filesystem::path& vocab_json,
                        const std::filesystem::path& merges_txt, const Options& options);
  ~ByteLevelBpeTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = true) const override;
  int64_t pad_id() const override { return pad_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t bos_id() const override { return bos_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(tokens_.size()); }
  std::string token(int64_t id) const override;

 private:
  struct PairHash {
    std::size_t operator()(const std::pair<int64_t, int64_t>& p) const {
      return std::hash<int64_t>()(p.first * 1000003 + p.second);
    }
  };

  ByteLevelBpeTokenizer(const Options& options);
  void set_vocabulary(std::unordered_map<std::string, int64_t> vocab, const std::string& where);
  void add_merge(const std::string& left, const std::string& right, int64_t rank,
                 const std::string& where);
  void finish(const Options& options, const std::string& where);
  // Appends the ids of one pre-tokenised word (its bytes, not yet mapped).
  void encode_word(std::string_view word, std::vector<int64_t>& ids) const;

  std::vector<std::string> tokens_;               // id -> mapped token
  std::unordered_map<std::string, int64_t> ids_;  // mapped token -> id
  std::unordered_map<std::pair<int64_t, int64_t>, std::pair<int64_t, int64_t>, PairHash>
      merges_;  // (left, right) -> (rank, merged id)
  AddedTokens added_;
  bool add_prefix_space_ = false;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1, mask_id_ = -1;

  // Words seen before and their ids: BPE on a word is the costly step and
  // natural text repeats words (the reference keeps such a cache too).
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache_;
};

}  // namespace chorus::model
