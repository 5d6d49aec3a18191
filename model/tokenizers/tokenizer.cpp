#include "model/tokenizers/tokenizer.h"

#include <algorithm>

#include "common/error.h"
#include "model/tokenizers/byte_level_bpe_tokenizer.h"
#include "model/tokenizers/sentencepiece_tokenizer.h"
#include "model/tokenizers/word_level_tokenizer.h"

namespace chorus::model {

std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  CHORUS_CHECK(fs::is_directory(folder), folder.string(),
               ": not a folder (a tokenizer is loaded from a model folder)");
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
