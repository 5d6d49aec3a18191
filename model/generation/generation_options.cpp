// Reading and checking generation options.
#include "model/generation/generation_options.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "model/io/config_fields.h"
#include "model/io/model_conversion.h"

namespace chorus::model {

void apply_generation_fields(const nlohmann::json& j, const std::string& where, GenerationOptions& o) {
  o.max_length = optional_field<int64_t>(j, "max_length", o.max_length, where);
  o.max_new_tokens = optional_field<int64_t>(j, "max_new_tokens", o.max_new_tokens, where);
  o.min_length = optional_field<int64_t>(j, "min_length", o.min_length, where);
  o.min_new_tokens = optional_field<int64_t>(j, "min_new_tokens", o.min_new_tokens, where);
  o.num_beams = optional_field<int64_t>(j, "num_beams", o.num_beams, where);
  o.length_penalty = optional_field<double>(j, "length_penalty", o.length_penalty, where);
  o.num_return_sequences = optional_field<int64_t>(j, "num_return_sequences", o.num_return_sequences, where);
  if (auto it = j.find("early_stopping"); it != j.end() && !it->is_null()) {
    if (it->is_boolean()) {
      o.early_stopping = it->get<bool>() ? EarlyStopping::when_full : EarlyStopping::heuristic;
    } else {
      CHORUS_CHECK(it->is_string() && it->get<std::string>() == "never", where,
                   ": early_stopping must be true, false or \"never\"; got ", it->dump());
      o.early_stopping = EarlyStopping::never;
    }
  }
  o.do_sample = optional_field<bool>(j, "do_sample", o.do_sample, where);
  o.temperature = optional_field<double>(j, "temperature", o.temperature, where);
  o.top_k = optional_field<int64_t>(j, "top_k", o.top_k, where);
  o.top_p = optional_field<double>(j, "top_p", o.top_p, where);
  o.repetition_penalty = optional_field<double>(j, "repetition_penalty", o.repetition_penalty, where);
  o.no_repeat_ngram_size = optional_field<int64_t>(j, "no_repeat_ngram_size", o.no_repeat_ngram_size, where);
  for (auto [key, field] : {std::pair<const char*, std::optional<int64_t>*>{"forced_bos_token_id", &o.forced_bos_token_id},
                            {"forced_eos_token_id", &o.forced_eos_token_id},
                            {"pad_token_id", &o.pad_token_id},
                            {"decoder_start_token_id", &o.decoder_start_token_id}}) {
    if (auto it = j.find(key); it != j.end() && !it->is_null()) *field = required_field<int64_t>(j, key, where);
  }
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    o.eos_token_ids = it->is_array() ? required_field<std::vector<int64_t>>(j, "eos_token_id", where)
                                     : std::vector<int64_t>{required_field<int64_t>(j, "eos_token_id", where)};
  }
}

namespace {

nlohmann::json parse_generation_file(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": invalid JSON (" + e.what() + ")");
  }
  CHORUS_CHECK(j.is_object(), where, ": expected a JSON object");
  return j;
}

}  // namespace

GenerationOptions load_generation_defaults(const std::filesystem::path& model_path, const Seq2SeqConfig& config) {
  GenerationOptions options;
  const auto generation_file = model_path / "generation_config.json";
  if (std::filesystem::is_directory(model_path) && std::filesystem::exists(generation_file)) {
    std::ifstream in(generation_file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    apply_generation_fields(parse_generation_file(text.str(), generation_file.string()), generation_file.string(),
                            options);
    return options;
  }
  if (std::filesystem::is_regular_file(model_path)) {
    // A checkpoint converted from a folder carries that folder's generation_config.json.
    const auto files = read_carried_files(model_path);
    if (auto it = files.find("generation_config.json"); it != files.end()) {
      const std::string where = model_path.string() + " (generation_config.json)";
      apply_generation_fields(parse_generation_file(it->second, where), where, options);
      return options;
    }
  }
  apply_generation_fields(config.raw, model_path.string(), options);
  return options;
}

void check_generation_options(const GenerationOptions& o, const Seq2SeqConfig& config) {
  CHORUS_CHECK(o.max_new_tokens >= 1 || (o.max_new_tokens < 0 && o.max_length >= 2),
               "generation needs room for a token: max_new_tokens = ", o.max_new_tokens, ", max_length = ",
               o.max_length, " (expected max_new_tokens >= 1, or max_length >= 2 counting the start token)");
  CHORUS_CHECK(o.num_beams >= 1, "num_beams is ", o.num_beams, "; expected >= 1");
  CHORUS_CHECK(o.num_return_sequences >= 1 && (o.num_beams == 1 || o.num_return_sequences <= o.num_beams),
               "num_return_sequences is ", o.num_return_sequences, "; expected 1..num_beams (", o.num_beams, ")");
  CHORUS_CHECK(o.temperature > 0.0, "temperature is ", o.temperature, "; expected > 0");
  CHORUS_CHECK(o.top_k >= 0, "top_k is ", o.top_k, "; expected >= 0 (0 = off)");
  CHORUS_CHECK(o.top_p > 0.0 && o.top_p <= 1.0, "top_p is ", o.top_p, "; expected in (0, 1]");
  CHORUS_CHECK(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0.0, "repetition_penalty is ",
               o.repetition_penalty, "; expected a finite value > 0 (1 = off, > 1 penalises repeats)");
  CHORUS_CHECK(o.no_repeat_ngram_size >= 0, "no_repeat_ngram_size is ", o.no_repeat_ngram_size, "; expected >= 0");
  auto check_id = [&](const char* name, int64_t id) {
    CHORUS_CHECK(id >= 0 && id < config.vocab_size, name, " = ", id, " is outside the vocabulary [0, ",
                 config.vocab_size, ")");
  };
  for (auto id : o.eos_token_ids) check_id("eos_token_id", id);
  if (o.forced_bos_token_id) check_id("forced_bos_token_id", *o.forced_bos_token_id);
  if (o.forced_eos_token_id) check_id("forced_eos_token_id", *o.forced_eos_token_id);
  if (o.pad_token_id) check_id("pad_token_id", *o.pad_token_id);
  if (o.decoder_start_token_id) check_id("decoder_start_token_id", *o.decoder_start_token_id);
}

}  // namespace chorus::model
