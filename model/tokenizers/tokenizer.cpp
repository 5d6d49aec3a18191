#include "model/tokenizers/tokenizer.h"

#include <algorithm>

#include <stdlib.h>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/io/model_conversion.h"
#include "model/tokenizers/byte_level_bpe_tokenizer.h"
#include "model/tokenizers/sentencepiece_tokenizer.h"
#include "model/tokenizers/word_level_tokenizer.h"

namespace chorus::model {

namespace {

// The tokenizer files a checkpoint carries, written to a private temporary folder and loaded from there.
std::unique_ptr<Tokenizer> load_carried_tokenizer(const std::filesystem::path& checkpoint) {
  namespace fs = std::filesystem;
  const auto files = read_carried_files(checkpoint);
  bool has_tokenizer = false;
  for (const auto& entry : files) has_tokenizer = has_tokenizer || entry.first != "generation_config.json";
  CHORUS_CHECK(has_tokenizer, checkpoint.string(),
               ": the checkpoint carries no tokenizer files (convert it from a model folder that has them, or "
               "name a tokenizer folder)");
  std::string pattern = (fs::temp_directory_path() / "chorus-tokenizer-XXXXXX").string();
  CHORUS_CHECK(::mkdtemp(pattern.data()) != nullptr, "cannot create a temporary folder for the tokenizer of ",
               checkpoint.string());
  const fs::path folder = pattern;
  struct RemoveFolder {
    fs::path path;
    ~RemoveFolder() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  } cleanup{folder};
  for (const auto& [name, bytes] : files) write_file_atomically(folder / name, bytes);
  return load_tokenizer(folder);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(folder)) return load_carried_tokenizer(folder);
  CHORUS_CHECK(fs::is_directory(folder), folder.string(),
               ": not a folder (a tokenizer is loaded from a model folder or a Chorus checkpoint)");
  if (fs::exists(folder / "spiece.model")) return SentencePieceTokenizer::load(folder);
  if ((fs::exists(folder / "vocab.json") && fs::exists(folder / "merges.txt")) ||
      fs::exists(folder / "tokenizer.json"))
    return ByteLevelBpeTokenizer::load(folder);
  if (fs::exists(folder / WordLevelTokenizer::kFileName))
    return std::make_unique<WordLevelTokenizer>(
        WordLevelTokenizer::load(folder / WordLevelTokenizer::kFileName));
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(folder, error))
    names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string listing;
  for (const std::string& name : names) listing += (listing.empty() ? "" : ", ") + name;
  throw Error(
      detail::concat(folder.string(),
                     ": no tokenizer found (expected spiece.model, vocab.json + merges.txt, "
                     "tokenizer.json or ",
                     WordLevelTokenizer::kFileName, "; the folder holds ",
                     listing.empty() ? "nothing" : listing, ")"));
}

}  // namespace chorus::model
