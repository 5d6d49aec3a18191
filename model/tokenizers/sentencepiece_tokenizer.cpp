#include "model/tokenizers/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>

#include "common/error.h"
#include "model/tokenizers/tokenizer_files.h"
#include "model/tokenizers/unicode_categories.h"

namespace chorus::model {
namespace {

namespace fs = std::filesystem;

const char* const kSentencePieceUnderline =
    "\xE2\x96\x81";  // U+2581, SentencePiece's word boundary

std::unique_ptr<sentencepiece::SentencePieceProcessor> load_processor(const fs::path& model_file) {
  CHORUS_CHECK(fs::is_regular_file(model_file), model_file.string(), ": not found");
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = processor->Load(model_file.string());
  CHORUS_CHECK(status.ok(), model_file.string(), ": not a SentencePiece model (", status.ToString(),
               ")");
  return processor;
}

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::string config_token(const nlohmann::json& config, const std::string& key,
                         const std::string& fallback, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  CHORUS_CHECK(it->is_object() && it->contains("content") && (*it)["content"].is_string(), where,
               ": '", key, "' is neither a string nor an object with a string 'content'");
  return (*it)["content"].get<std::string>();
}

// Python's str.strip() on UTF-8 text.
std::string strip_python_space(const std::string& text) {
  std::size_t begin = 0, end = 0;
  bool seen_content = false;
  for (std::size_t i = 0; i < text.size();) {
    const Utf8CodePoint d = decode_utf8_at(text, i);
    if (!unicode::is_python_space(d.cp)) {
      if (!seen_content) begin = i;
      seen_content = true;
      end = i + d.length;
    }
    i += d.length;
  }
  return seen_content ? text.substr(begin, end - begin) : std::string();
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(
    std::unique_ptr<sentencepiece::SentencePieceProcessor> processor, AddedTokens added,
    const Options& options, const std::string& where)
    : processor_(std::move(processor)), added_(std::move(added)) {
  piece_count_ = processor_->GetPieceSize();
  resolve_special_ids(options, where);
}

SentencePieceTokenizer::SentencePieceTokenizer(const fs::path& model_file, const Options& options)
    : SentencePieceTokenizer(load_processor(model_file), AddedTokens(), options,
                             model_file.string()) {}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const fs::path& folder) {
  const fs::path model_file = folder / "spiece.model";
  Options options;
  const fs::path config_file = folder / "tokenizer_config.json";
  if (auto config = read_json_object_if_present(config_file)) {
    const std::string where = config_file.string();
    auto extra = config->find("extra_ids");
    if (extra != config->end() && !extra->is_null()) {
      CHORUS_CHECK(extra->is_number_integer() && extra->get<int>() >= 0, where, ": 'extra_ids' is ",
                   extra->dump(), ", expected a non-negative integer");
      options.extra_ids = extra->get<int>();
    }
    options.pad_token = config_token(*config, "pad_token", options.pad_token, where);
    options.eos_token = config_token(*config, "eos_token", options.eos_token, where);
    options.unk_token = config_token(*config, "unk_token", options.unk_token, where);
  }
  AddedTokens added;
  read_added_tokens(folder, added);
  return std::unique_ptr<SentencePieceTokenizer>(new SentencePieceTokenizer(
      load_processor(model_file), std::move(added), options, folder.string()));
}

void SentencePieceTokenizer::resolve_special_ids(const Options& options, const std::string& where) {
  // Sentinels, as T5Tokenizer numbers them: <extra_id_0> is the last id.
  for (int i = 0; i < options.extra_ids; ++i) {
    const std::string content = "<extra_id_" + std::to_string(i) + ">";
    if (added_.find_content(content) == nullptr)
      added_.add({content, piece_count_ + options.extra_ids - 1 - i, true, true, true});
  }
  // pad/eos/unk: the piece's own id when the model has it, else a new id after everything else.
  const auto special = [&](const std::string& content) -> int64_t {
    if (const AddedToken* token = added_.find_content(content)) return token->id;
    const int piece = processor_->PieceToId(content);
    const bool in_model =
        piece >= 0 && piece < piece_count_ && processor_->IdToPiece(piece) == content;
    const int64_t id = in_model ? piece : vocab_size();
    added_.add({content, id, false, false, true});
    return id;
  };
  eos_id_ = special(options.eos_token);
  unk_id_ = special(options.unk_token);
  pad_id_ = special(options.pad_token);
  for (const AddedToken& token : added_.all())
    CHORUS_CHECK(token.id >= 0, where, ": added token '", token.content, "' has a negative id");
}

int64_t SentencePieceTokenizer::vocab_size() const {
  int64_t size = piece_count_;
  for (const AddedToken& token : added_.all()) size = std::max(size, token.id + 1);
  return size;
}

std::string SentencePieceTokenizer::token(int64_t id) const {
  if (const AddedToken* added = added_.find_id(id)) return added->content;
  CHORUS_CHECK(id >= 0 && id < piece_count_, "SentencePiece tokenizer: id ", id,
               " is outside the vocabulary [0, ", vocab_size(), ")");
  return processor_->IdToPiece(static_cast<int>(id));
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text,
                                                    bool add_special_tokens) const {
  std::vector<int64_t> ids;
  for (const TextSegment& segment : added_.split(text)) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    std::vector<int> pieces;
    const auto status = processor_->Encode(std::string(segment.text), &pieces);
    CHORUS_CHECK(status.ok(), "SentencePiece encode failed: ", status.ToString());
    ids.insert(ids.end(), pieces.begin(), pieces.end());
  }
  // T5Tokenizer does not add a second </s> when the text already ends with one.
  if (add_special_tokens && (ids.empty() || ids.back() != eos_id_)) ids.push_back(eos_id_);
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids,
                                           bool skip_special_tokens) const {
  // Mirrors T5Tokenizer's decode: runs of pieces are decoded by SentencePiece;
  // special tokens kept in the output are written verbatim (with a space
  // before a run of them); sentinels outside the piece vocabulary and
  // non-special added tokens become separate parts joined by spaces.
  std::vector<std::string> parts;
  std::vector<std::string> run;  // tokens for one SentencePiece decode
  std::vector<bool> run_is_special;
  const auto flush_run = [&](bool last) {
    if (run.empty()) return;
    if (run.front().rfind(kSentencePieceUnderline, 0) == 0) run.front().erase(0, 3);
    std::string out;
    std::vector<std::string> pieces;
    bool previous_special = false;
    for (std::size_t i = 0; i < run.size(); ++i) {
      if (run_is_special[i]) {
        if (!previous_special) out += " ";
        out += processor_->DecodePieces(pieces) + run[i];
        previous_special = true;
        pieces.clear();
      } else {
        pieces.push_back(run[i]);
        previous_special = false;
      }
    }
    out += processor_->DecodePieces(pieces);
    out = strip_python_space(out);
    if (last || !out.empty()) parts.push_back(out);
    run.clear();
    run_is_special.clear();
  };
  for (int64_t id : ids) {
    CHORUS_CHECK(id >= 0 && id < vocab_size(), "SentencePiece decode: id ", id,
                 " is outside the vocabulary [0, ", vocab_size(), ")");
    const AddedToken* added = added_.find_id(id);
    const bool special = added != nullptr && added->special;
    if (skip_special_tokens && special) continue;
    const bool separate =
        added != nullptr &&
        (!added->special || (added->content.rfind("<extra_id_", 0) == 0 && id >= piece_count_));
    if (separate) {
      flush_run(false);
      parts.push_back(added->content);
    } else {
      run.push_back(token(id));
      run_is_special.push_back(special);
    }
  }
  flush_run(true);
  std::string text;
  for (std::size_t i = 0; i < parts.size(); ++i) text += (i ? " " : "") + parts[i];
  return text;
}

}  // namespace chorus::model
