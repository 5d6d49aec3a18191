// Perplexity of a segment file under a reference model folder, printed as text or JSON.
#include "cli/fluency_scoring.h"

#include <iomanip>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "common/error.h"
#include "eval/fluency/perplexity.h"
#include "eval/scoring/segment_file.h"

namespace chorus::cli {

int score_perplexity(const std::string& lm_dir, const std::string& hyps_file,
                     const std::optional<std::string>& sources_file, bool json, std::ostream& out,
                     const FluencyScoringOptions& options) {
  eval::SegmentFileOptions file_options;
  file_options.allow_empty_lines = options.allow_empty_lines;
  // The files first: a bad line should not wait for a model to load.
  const auto hypotheses = eval::read_segment_file(hyps_file, file_options);
  CHORUS_CHECK(!hypotheses.empty(), hyps_file, ": no segments (an empty file)");
  std::vector<std::string> sources;
  if (sources_file) {
    eval::SegmentFileOptions source_options;
    source_options.allow_empty_lines = true;  // an empty source is the language-model case
    sources = eval::read_segment_file(*sources_file, source_options);
    CHORUS_CHECK(sources.size() == hypotheses.size(), "'", hyps_file, "' has ", hypotheses.size(), " lines but '",
                 *sources_file, "' has ", sources.size(), " (expected line-aligned sources)");
  }
  const auto lm = collab::load_agent("reference model", lm_dir, "fluency reference");
  eval::PerplexityOptions ppl_options;
  ppl_options.batch_size = options.batch_size;
  ppl_options.origin = hyps_file;
  ppl_options.bootstrap = {options.bootstrap, options.seed};
  const auto result = eval::text_perplexity(*lm.model, *lm.tokenizer, hypotheses, sources, ppl_options);

  if (json) {
    const nlohmann::json report = {
        {"ppl",
         {{"value", result.perplexity},
          {"ci", {result.interval.low, result.interval.high}},
          {"resamples", result.interval.resamples},
          {"seed", result.interval.seed}}},
        {"tokens", result.total_tokens},
        {"segments", static_cast<int64_t>(hypotheses.size())},
        {"model", lm_dir}};
    out << report.dump(1) << "\n";
  } else {
    std::ostringstream line;
    line << std::fixed << std::setprecision(options.width) << "ppl = " << result.perplexity << " ["
         << result.interval.low << ", " << result.interval.high << "]";
    out << line.str() << "\n";
  }
  return 0;
}

}  // namespace chorus::cli
