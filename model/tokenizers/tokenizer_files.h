// Reading the JSON side files of a Hugging Face tokenizer folder (tokenizer_config.json,
// added_tokens.json).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>

#include "model/tokenizers/added_tokens.h"

namespace chorus::model {

// The parsed file, or nullopt when it does not exist; invalid JSON or a
// non-object top level is a chorus::Error naming the file.
std::optional<nlohmann::json> read_json_object_if_present(const std::filesystem::path& file);

// Adds the tokens of tokenizer_config.json's "added_tokens_decoder" (id ->
// {content, lstrip, rstrip, special}) and of added_tokens.json (content -> id,
// not special) found in `folder`. Entries that are not well-formed are a
// chorus::Error naming the file and the entry.
void read_added_tokens(const std::filesystem::path& folder, AddedTokens& tokens);

// Reads tokenizer_config.json's boolean `key`, or `fallback` when absent.
bool read_tokenizer_flag(const std::filesystem::path& folder, const std::string& key,
                         bool fallback);

}  // namespace chorus::model
