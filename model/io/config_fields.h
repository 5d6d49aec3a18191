// Typed access to fields of a model's config.json, with errors that name the file and key.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/error.h"

namespace chorus::model {

// config[key] as T; throws chorus::Error "<where>: missing field 'key'" or
// "<where>: field 'key' is <json> but a <T> was expected". `where` is usually
// the config file's path.
template <typename T>
T required_field(const nlohmann::json& config, const std::string& key, const std::string& where) {
  auto it = config.find(key);
  CHORUS_CHECK(it != config.end() && !it->is_null(), where, ": missing field '", key, "'");
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(detail::concat(where, ": field '", key, "' has the wrong type (", it->type_name(),
                               " ", it->dump(), ")"));
  }
}

// config[key] as T, or `fallback` when the key is absent or null.
template <typename T>
T optional_field(const nlohmann::json& config, const std::string& key, const T& fallback,
                 const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  return required_field<T>(config, key, where);
}

}  // namespace chorus::model
