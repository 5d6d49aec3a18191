// Tokenizer: text <-> token ids, with the special-token conventions of the Hugging Face reference.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace chorus::model {

// One interface over SentencePiece (T5), byte-level BPE (BART/RoBERTa/GPT-2)
// and word-level vocabularies (generated tasks). Implementations are
// immutable after loading and safe to share between threads.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`. With add_special_tokens the reference's sequence
  // wrapping is applied: T5 and word-level append </s>; BART/RoBERTa wrap as
  // <s> ... </s>.
  virtual std::vector<int64_t> encode(std::string_view text,
                                      bool add_special_tokens = true) const = 0;
  // Text of `ids`; with skip_special_tokens, pad/eos/bos/unk-free output as the
  // reference's decode(..., skip_special_tokens=True). Ids outside
  // [0, vocab_size()) are a chorus::Error.
  virtual std::string decode(const std::vector<int64_t>& ids,
                             bool skip_special_tokens = true) const = 0;

  virtual int64_t pad_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t bos_id() const = 0;  // -1 when the vocabulary has none (T5)
  virtual int64_t unk_id() const = 0;
  // Number of ids, special and added tokens included (ids are 0..vocab_size()-1).
  virtual int64_t vocab_size() const = 0;
  // The vocabulary entry of `id` (a SentencePiece piece, a byte-level BPE
  // token in its unicode-mapped form, a word); chorus::Error when out of range.
  virtual std::string token(int64_t id) const = 0;
};

// Chooses the tokenizer by what `folder` holds, first match wins:
//   spiece.model                  -> SentencePiece with T5's conventions
//   vocab.json + merges.txt       -> byte-level BPE
//   tokenizer.json (BPE model)    -> byte-level BPE
//   word_vocab.txt                -> word-level vocabulary
// tokenizer_config.json / special_tokens_map.json / added_tokens.json are
// honoured where the reference honours them. Anything else is a chorus::Error
// listing what the folder holds. `folder` may also be a Chorus checkpoint file
// that carries the tokenizer files of the folder it was converted from
// (model/io/model_conversion.h).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& folder);

}  // namespace chorus::model
