// Generation options read through the config dialect.
#include "experiment/generation_config.h"

namespace chorus::experiment {

model::GenerationOptions read_generation(const ConfigView& v, model::GenerationOptions o) {
  o.max_new_tokens = v.get_int("max_new_tokens", o.max_new_tokens, 1);
  o.max_length = v.get_int("max_length", o.max_length, 1);
  o.min_new_tokens = v.get_int("min_new_tokens", o.min_new_tokens, 0);
  o.num_beams = v.get_int("num_beams", o.num_beams, 1);
  o.length_penalty = v.get_double("length_penalty", o.length_penalty);
  if (v.has("early_stopping")) {
    const auto stop = v.get_choice("early_stopping", {"true", "false", "never"});
    o.early_stopping = stop == "true"    ? model::EarlyStopping::when_full
                       : stop == "never" ? model::EarlyStopping::never
                                         : model::EarlyStopping::heuristic;
  }
  o.do_sample = v.get<bool>("do_sample", o.do_sample);
  o.temperature = v.get_double("temperature", o.temperature, 1e-6);
  o.top_k = v.get_int("top_k", o.top_k, 0);
  o.top_p = v.get_double("top_p", o.top_p, 1e-6, 1.0);
  o.seed = static_cast<uint64_t>(v.get_int("seed", static_cast<int64_t>(o.seed), 0));
  o.repetition_penalty = v.get_double("repetition_penalty", o.repetition_penalty, 1e-6);
  o.no_repeat_ngram_size = v.get_int("no_repeat_ngram_size", o.no_repeat_ngram_size, 0);
  return o;
}

}  // namespace chorus::experiment
