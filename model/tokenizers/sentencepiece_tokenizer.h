// SentencePieceTokenizer: T5's tokenizer (spiece.model through libsentencepiece) with its added
// special tokens.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/tokenizers/added_tokens.h"
#include "model/tokenizers/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace chorus::model {

// Follows transformers' T5Tokenizer (legacy mode, its default): the
// SentencePiece vocabulary keeps its ids; `extra_ids` sentinels <extra_id_0>
// .. <extra_id_{n-1}> follow it in reverse order (<extra_id_0> is the last
// one); special tokens missing from the piece vocabulary (e.g. <pad> in a
// model trained without it) are added after those. Special tokens written in
// the text are matched as whole tokens before SentencePiece sees the rest,
// sentinels swallowing the whitespace around them. encode() appends </s>
// unless the ids already end with it.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  struct Options {
    int extra_ids = 100;
    std::string pad_token = "<pad>";
    std::string eos_token = "</s>";
    std::string unk_token = "<unk>";
  };

  // Reads `folder`/spiece.model and the folder's tokenizer_config.json /
  // added_tokens.json when present (their added tokens and ids win).
  static std::unique_ptr<SentencePieceTokenizer> load(const std::filesystem::path& folder);
  // From a bare SentencePiece model file with explicit options.
  SentencePieceTokenizer(const std::filesystem::path& model_file, const Options& options);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string decode(const std::vector<int64_t>& ids,
                     bool skip_special_tokens = true) const override;
  int64_t pad_id() const override { return pad_id_; }
  int64_t eos_id() const override { return eos_id_; }
  int64_t bos_id() const override { return -1; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t vocab_size() const override;
  std::string token(int64_t id) const override;

  // Number of SentencePiece pieces (ids below it are the model's own).
  int64_t piece_count() const { return piece_count_; }

 private:
  SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor,
                         AddedTokens added, const Options& options, const std::string& where);
  void resolve_special_ids(const Options& options, const std::string& where);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  AddedTokens added_;
  int64_t piece_count_ = 0;
  int64_t pad_id_ = -1;
  int64_t eos_id_ = -1;
  int64_t unk_id_ = -1;
};

}  // namespace chorus::model
