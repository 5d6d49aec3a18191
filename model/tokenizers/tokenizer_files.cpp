#include "model/tokenizers/tokenizer_files.h"

#include <fstream>

#include "common/error.h"

namespace chorus::model {

namespace fs = std::filesystem;

std::optional<nlohmann::json> read_json_object_if_present(const fs::path& file) {
  if (!fs::exists(file)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  CHORUS_CHECK(in.good(), file.string(), ": cannot open");
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(file.string(), ": not valid JSON (", e.what(), ")"));
  }
  CHORUS_CHECK(value.is_object(), file.string(), ": expected a JSON object, found ",
               value.type_name());
  return value;
}

void read_added_tokens(const fs::path& folder, AddedTokens& tokens) {
  const fs::path added_file = folder / "added_tokens.json";
  if (auto added = read_json_object_if_present(added_file)) {
    for (auto it = added->begin(); it != added->end(); ++it) {
      CHORUS_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0,
                   added_file.string(), ": token '", it.key(), "' has id ", it.value().dump(),
                   ", expected a non-negative integer");
      if (tokens.find_content(it.key()) == nullptr)
        tokens.add({it.key(), it.value().get<int64_t>(), false, false, false});
    }
  }
  const fs::path config_file = folder / "tokenizer_config.json";
  auto config = read_json_object_if_present(config_file);
  if (!config) return;
  auto decoder = config->find("added_tokens_decoder");
  if (decoder == config->end()) return;
  CHORUS_CHECK(decoder->is_object(), config_file.string(),
               ": 'added_tokens_decoder' is not an object");
  for (auto it = decoder->begin(); it != decoder->end(); ++it) {
    const std::string where =
        detail::concat(config_file.string(), ": added_tokens_decoder entry '", it.key(), "'");
    int64_t id = -1;
    try {
      std::size_t used = 0;
      id = std::stoll(it.key(), &used);
      CHORUS_CHECK(used == it.key().size() && id >= 0, where, ": the key is not a token id");
    } catch (const std::logic_error&) {
      throw Error(detail::concat(where, ": the key is not a token id"));
    }
    const nlohmann::json& entry = it.value();
    auto content = entry.find("content");
    CHORUS_CHECK(entry.is_object() && content != entry.end() && content->is_string(), where,
                 ": expected an object with a string 'content'");
    const auto flag = [&](const char* name, bool fallback) {
      auto value = entry.find(name);
      if (value == entry.end()) return fallback;
      CHORUS_CHECK(value->is_boolean(), where, ": '", name, "' is not a boolean");
      return value->get<bool>();
    };
    tokens.add({content->get<std::string>(), id, flag("lstrip", false), flag("rstrip", false),
                flag("special", false)});
  }
}

bool read_tokenizer_flag(const fs::path& folder, const std::string& key, bool fallback) {
  const fs::path file = folder / "tokenizer_config.json";
  auto config = read_json_object_if_present(file);
  if (!config) return fallback;
  auto value = config->find(key);
  if (value == config->end() || value->is_null()) return fallback;
  CHORUS_CHECK(value->is_boolean(), file.string(), ": '", key, "' is ", value->dump(),
               ", expected true or false");
  return value->get<bool>();
}

}  // namespace chorus::model
