// `chorus score --metrics ppl --lm DIR`'s engine: perplexity of a segment file under a reference model folder.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

namespace chorus::cli {

struct FluencyScoringOptions {
  int bootstrap = 1000;          // resamples of the interval (sacrebleu's default)
  std::uint64_t seed = 12345;    // seed of the resampling
  int64_t batch_size = 32;       // segments per forward pass
  bool allow_empty_lines = false;  // an empty line is usually a misaligned file; allowed, it scores </s>
  int width = 2;                 // decimals in the text output
};

// Loads the model folder `lm_dir` (a Hugging Face folder, or a Chorus agent folder with model.h5
// and its tokenizer files, as `chorus pretrain` writes), reads `hyps_file` (one segment a line,
// UTF-8, errors name file:line) and, when given, `sources_file` (line-aligned conditioning
// sources; default: the empty source, i.e. the decoder as a language model), and prints
//   text: "ppl = X [lo, hi]" with the 95% bootstrap interval over segments
//   json: {"ppl": {"value", "ci": [lo, hi], "resamples", "seed"}, "tokens", "segments", "model"}
// The convention is eval/fluency/perplexity.h's. Returns 0 (the exit code); errors are chorus::Error.
int score_perplexity(const std::string& lm_dir, const std::string& hyps_file,
                     const std::optional<std::string>& sources_file, bool json, std::ostream& out,
                     const FluencyScoringOptions& options = {});

}  // namespace chorus::cli
