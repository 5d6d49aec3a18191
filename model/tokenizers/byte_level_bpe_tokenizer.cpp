#include "model/tokenizers/byte_level_bpe_tokenizer.h"

#include <array>
#include <fstream>
#include <limits>

#include "common/error.h"
#include "model/tokenizers/gpt2_pretokenizer.h"
#include "model/tokenizers/tokenizer_files.h"
#include "model/tokenizers/unicode_categories.h"

namespace chorus::model {
namespace {

namespace fs = std::filesystem;

// Words longer than this are not cached (long runs of symbols are rare and unbounded).
constexpr std::size_t kMaxCachedWordBytes = 64;
constexpr std::size_t kMaxCacheEntries = 200'000;

// GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves,
// the other 68 bytes to U+0100 onwards in byte order, so every byte has a
// visible, non-space character in the vocabulary.
struct ByteMap {
  std::array<std::string, 256> encoded;  // byte -> UTF-8 of its character
  std::array<int, 0x200> decoded;        // character -> byte, -1 when none

  ByteMap() {
    decoded.fill(-1);
    int next = 256;
    for (int byte = 0; byte < 256; ++byte) {
      const bool printable =
          (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174);
      const char32_t cp = printable ? static_cast<char32_t>(byte) : static_cast<char32_t>(next++);
      append_utf8(encoded[byte], cp);
      decoded[cp] = byte;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

std::unordered_map<std::string, int64_t> vocabulary_from_json(const nlohmann::json& vocab,
                                                              const std::string& where) {
  CHORUS_CHECK(vocab.is_object(), where, ": the vocabulary is ", vocab.type_name(),
               ", expected an object token -> id");
  std::unordered_map<std::string, int64_t> out;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    CHORUS_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0, where,
                 ": token '", it.key(), "' has id ", it.value().dump(),
                 ", expected a non-negative integer");
    out.emplace(it.key(), it.value().get<int64_t>());
  }
  return out;
}

}  // namespace

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const Options& options)
    : add_prefix_space_(options.add_prefix_space) {}

ByteLevelBpeTokenizer::~ByteLevelBpeTokenizer() = default;

ByteLevelBpeTokenizer::ByteLevelBpeTokenizer(const fs::path& vocab_json, const fs::path& merges_txt,
                                             const Options& options)
    : ByteLevelBpeTokenizer(options) {
  auto vocab = read_json_object_if_present(vocab_json);
  CHORUS_CHECK(vocab.has_value(), vocab_json.string(), ": not found");
  set_vocabulary(vocabulary_from_json(*vocab, vocab_json.string()), vocab_json.string());

  std::ifstream in(merges_txt, std::ios::binary);
  CHORUS_CHECK(in.good(), merges_txt.string(), ": cannot open");
  std::string line;
  int64_t rank = 0;
  for (std::size_t line_number = 1; std::getline(in, line); ++line_number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const std::size_t space = line.find(' ');
    CHORUS_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                     line.find(' ', space + 1) == std::string::npos,
                 merges_txt.string(), ":", line_number,
                 ": expected two tokens separated by one space, found '", line, "'");
    add_merge(line.substr(0, space), line.substr(space + 1), rank++,
              detail::concat(merges_txt.string(), ":", line_number));
  }
  finish(options, vocab_json.string());
}

std::unique_ptr<ByteLevelBpeTokenizer> ByteLevelBpeTokenizer::load(const fs::path& folder) {
  Options options;
  options.add_prefix_space = read_tokenizer_flag(folder, "add_prefix_space", false);
  if (fs::exists(folder / "vocab.json") && fs::exists(folder / "merges.txt")) {
    auto tokenizer = std::unique_ptr<ByteLevelBpeTokenizer>(
        new ByteLevelBpeTokenizer(folder / "vocab.json", folder / "merges.txt", options));
    // Tokens added after training (tokenizer_config.json / added_tokens.json).
    read_added_tokens(folder, tokenizer->added_);
    tokenizer->finish(options, folder.string());
    return tokenizer;
  }

  // tokenizer.json: the `tokenizers` library's single-file form.
  const fs::path file = folder / "tokenizer.json";
  auto json = read_json_object_if_present(file);
  CHORUS_CHECK(json.has_value(), folder.string(),
               ": no vocab.json + merges.txt and no tokenizer.json");
  const std::string where = file.string();
  auto model = json->find("model");
  CHORUS_CHECK(model != json->end() && model->is_object(), where, ": missing object 'model'");
  CHORUS_CHECK(model->value("type", std::string()) == "BPE", where, ": model type '",
               model->value("type", std::string()),
               "' is not BPE (only byte-level BPE tokenizer.json files are read)");
  auto pre = json->find("pre_tokenizer");
  if (pre != json->end() && pre->is_object() && pre->value("type", std::string()) == "ByteLevel")
    options.add_prefix_space = pre->value("add_prefix_space", options.add_prefix_space);

  auto tokenizer = std::unique_ptr<ByteLevelBpeTokenizer>(new ByteLevelBpeTokenizer(options));
  auto vocab = model->find("vocab");
  CHORUS_CHECK(vocab != model->end(), where, ": missing 'model.vocab'");
  tokenizer->set_vocabulary(vocabulary_from_json(*vocab, where + " model.vocab"), where);
  auto merges = model->find("merges");
  CHORUS_CHECK(merges != model->end() && merges->is_array(), where,
               ": missing array 'model.merges'");
  int64_t rank = 0;
  for (const nlohmann::json& merge : *merges) {
    const std::string at = detail::concat(where, " model.merges[", rank, "]");
    std::string left, right;
    if (merge.is_string()) {  // "a b"
      const std::string text = merge.get<std::string>();
      const std::size_t space = text.find(' ');
      CHORUS_CHECK(space != std::string::npos && space > 0 && space + 1 < text.size(), at,
                   ": expected two tokens separated by a space, found '", text, "'");
      left = text.substr(0, space), right = text.substr(space + 1);
    } else {  // ["a", "b"]
      CHORUS_CHECK(
          merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(), at,
          ": expected \"a b\" or [\"a\", \"b\"], found ", merge.dump());
      left = merge[0].get<std::string>(), right = merge[1].get<std::string>();
    }
    tokenizer->add_merge(left, right, rank++, at);
  }
  auto added = json->find("added_tokens");
  if (added != json->end()) {
    CHORUS_CHECK(added->is_array(), where, ": 'added_tokens' is not an array");
    for (const nlohmann::json& token : *added) {
      CHORUS_CHECK(token.is_object() && token.contains("id") && token["id"].is_number_integer() &&
                       token.contains("content") && token["content"].is_string(),
                   where, ": added token ", token.dump(),
                   " lacks an integer 'id' or a string 'content'");
      tokenizer->added_.add({token["content"].get<std::string>(), token["id"].get<int64_t>(),
                             token.value("lstrip", false), token.value("rstrip", false),
                             token.value("special", false)});
    }
  }
  read_added_tokens(folder, tokenizer->added_);
  tokenizer->finish(options, where);
  return tokenizer;
}

void ByteLevelBpeTokenizer::set_vocabulary(std::unordered_map<std::string, int64_t> vocab,
                                           const std::string& where) {
  CHORUS_CHECK(!vocab.empty(), where, ": the vocabulary is empty");
  int64_t largest = -1;
  for (const auto& entry : vocab) largest = std::max(largest, entry.second);
  CHORUS_CHECK(largest < std::numeric_limits<int32_t>::max(), where, ": token id ", largest,
               " is implausibly large");
  tokens_.assign(static_cast<std::size_t>(largest + 1), std::string());
  std::vector<bool> used(tokens_.size(), false);
  for (auto& [token, id] : vocab) {
    CHORUS_CHECK(!used[id], where, ": id ", id, " is given to both '", tokens_[id], "' and '",
                 token, "'");
    used[id] = true;
    tokens_[id] = token;
  }
  for (std::size_t id = 0; id < used.size(); ++id)
    CHORUS_CHECK(used[id], where, ": no token has id ", id, " (ids must be 0..", largest,
                 " without gaps)");
  ids_ = std::move(vocab);
}

void ByteLevelBpeTokenizer::add_merge(const std::string& left, const std::string& right,
                                      int64_t rank, const std::string& where) {
  auto l = ids_.find(left), r = ids_.find(right), merged = ids_.find(left + right);
  CHORUS_CHECK(l != ids_.end() && r != ids_.end(), where, ": merge '", left, " ", right,
               "' uses a token missing from the vocabulary");
  CHORUS_CHECK(merged != ids_.end(), where, ": merge '", left, " ", right, "' makes '",
               left + right, "', which is missing from the vocabulary");
  // A repeated pair keeps its first (best) rank.
  merges_.emplace(std::make_pair(l->second, r->second), std::make_pair(rank, merged->second));
}

void ByteLevelBpeTokenizer::finish(const Options& options, const std::string& where) {
  // Added tokens may extend the id range (ids past the vocabulary).
  for (const AddedToken& token : added_.all()) {
    CHORUS_CHECK(token.id >= 0 && token.id < std::numeric_limits<int32_t>::max(), where,
                 ": added token '", token.content, "' has id ", token.id);
    if (token.id >= static_cast<int64_t>(tokens_.size()))
      tokens_.resize(static_cast<std::size_t>(token.id) + 1);
    tokens_[token.id] = token.content;
  }
  const auto special = [&](const std::string& content, bool lstrip, bool required) -> int64_t {
    if (const AddedToken* token = added_.find_content(content)) return token->id;
    auto it = ids_.find(content);
    CHORUS_CHECK(it != ids_.end() || !required, where, ": the vocabulary lacks the special token '",
                 content, "'");
    if (it == ids_.end()) return -1;
    added_.add({content, it->second, lstrip, false, true});
    return it->second;
  };
  bos_id_ = special(options.bos_token, false, true);
  eos_id_ = special(options.eos_token, false, true);
  unk_id_ = special(options.unk_token, false, true);
  pad_id_ = special(options.pad_token, false, true);
  // <mask> swallows the space before it, as in BART and RoBERTa.
  mask_id_ = special(options.mask_token, true, false);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cache_.clear();
}

void ByteLevelBpeTokenizer::encode_word(std::string_view word, std::vector<int64_t>& ids) const {
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const ByteMap& map = byte_map();
  // Symbols start as single mapped bytes; -1 marks a byte the vocabulary lacks.
  std::vector<int64_t> symbols;
  symbols.reserve(word.size());
  for (char c : word) {
    auto it = ids_.find(map.encoded[static_cast<unsigned char>(c)]);
    symbols.push_back(it == ids_.end() ? -1 : it->second);
  }
  // Repeatedly merge every occurrence of the best-ranked adjacent pair.
  std::vector<int64_t> next;
  while (symbols.size() > 1) {
    int64_t best_rank = std::numeric_limits<int64_t>::max();
    std::pair<int64_t, int64_t> best_pair{-1, -1};
    int64_t best_merged = -1;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      if (symbols[i] < 0 || symbols[i + 1] < 0) continue;
      auto it = merges_.find({symbols[i], symbols[i + 1]});
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_pair = it->first;
        best_merged = it->second.second;
      }
    }
    if (best_merged < 0) break;
    next.clear();
    for (std::size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == best_pair.first &&
          symbols[i + 1] == best_pair.second) {
        next.push_back(best_merged);
        ++i;
      } else {
        next.push_back(symbols[i]);
      }
    }
    symbols.swap(next);
  }
  for (int64_t& symbol : symbols)
    if (symbol < 0) symbol = unk_id_;
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(symbols));
  }
}

std::vector<int64_t> ByteLevelBpeTokenizer::encode(std::string_view text,
                                                   bool add_special_tokens) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.empty() &&
      !unicode::is_python_space(decode_utf8_at(text, 0).cp)) {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  std::vector<int64_t> ids;
  if (add_special_tokens) ids.push_back(bos_id_);
  for (const TextSegment& segment : added_.split(text)) {
    if (segment.token_id >= 0) {
      ids.push_back(segment.token_id);
      continue;
    }
    for (std::string_view word : gpt2_pretokenize(segment.text)) encode_word(word, ids);
  }
  if (add_special_tokens) ids.push_back(eos_id_);
  return ids;
}

std::string ByteLevelBpeTokenizer::decode(const std::vector<int64_t>& ids,
                                          bool skip_special_tokens) const {
  const ByteMap& map = byte_map();
  std::string bytes;
  for (int64_t id : ids) {
    CHORUS_CHECK(id >= 0 && id < vocab_size(), "byte-level BPE decode: id ", id,
                 " is outside the vocabulary [0, ", vocab_size(), ")");
    const AddedToken* added = added_.find_id(id);
    if (added != nullptr) {
      if (!(skip_special_tokens && added->special)) bytes += added->content;
      continue;
    }
    const std::string& token = tokens_[id];
    for (std::size_t i = 0; i < token.size();) {
      const Utf8CodePoint d = decode_utf8_at(token, i);
      if (d.cp < map.decoded.size() && map.decoded[d.cp] >= 0)
        bytes += static_cast<char>(map.decoded[d.cp]);
      else
        bytes.append(token, i, d.length);  // not a mapped byte: keep the text
      i += d.length;
    }
  }
  return to_valid_utf8(bytes);
}

std::string ByteLevelBpeTokenizer::token(int64_t id) const {
  CHORUS_CHECK(id >= 0 && id < vocab_size(), "byte-level BPE: id ", id,
               " is outside the vocabulary [0, ", vocab_size(), ")");
  return tokens_[id];
}

}  // namespace chorus::model
