// Generation options from a config block (an agent's `generation:`, or a system's override).
#pragma once

#include "common/config.h"
#include "model/generation/generation_options.h"

namespace chorus::experiment {

// Reads max_new_tokens, max_length, min_new_tokens, num_beams, length_penalty, early_stopping
// (true | false | never), do_sample, temperature, top_k, top_p, seed, repetition_penalty,
// no_repeat_ngram_size over `base` (the model folder's own defaults, as transformers reads them).
// Names and meanings are transformers' GenerationConfig's.
model::GenerationOptions read_generation(const ConfigView& view, model::GenerationOptions base);

}  // namespace chorus::experiment
