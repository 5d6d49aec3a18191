// BLEU (Papineni et al. 2002) with sacrebleu 2.x's tokenisation, smoothing and signature.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "eval/metrics/segment_statistics.h"
#include "eval/metrics/significance.h"

namespace chorus::eval {

// Smoothing methods of Chen & Cherry (2014) as named by sacrebleu.
enum class BleuSmoothing { kNone, kFloor, kAddK, kExp };

struct BleuParams {
  bool lowercase = false;
  BleuSmoothing smoothing = BleuSmoothing::kExp;
  std::optional<double> smooth_value;  // floor: 0.1, add-k: 1 when unset
  int max_ngram_order = 4;             // 1..4
  bool effective_order = false;        // sacrebleu enables it for sentence BLEU
};

struct BleuScore {
  double score = 0;  // 0..100
  std::vector<double> counts;
  std::vector<double> totals;
  std::vector<double> precisions;
  double brevity_penalty = 0;
  double sys_len = 0;
  double ref_len = 0;

  // "60.0/40.0/... (BP = 1.000 ratio = 1.000 hyp_len = 9 ref_len = 9)"
  std::string verbose() const;
};

// Parses "none", "floor", "add-k" or "exp"; throws chorus::Error otherwise.
BleuSmoothing parse_bleu_smoothing(const std::string& name);

class BleuScorer {
 public:
  explicit BleuScorer(BleuParams params = {});

  const BleuParams& params() const { return params_; }

  // references[r][s] is the r-th reference of segment s (sacrebleu's layout).
  // One row per segment: hyp_len, ref_len (closest), correct[1..N], total[1..N].
  SegmentStatistics segment_statistics(const std::vector<std::string>& hypotheses,
                                       const std::vector<std::vector<std::string>>& references) const;

  BleuScore score_from_totals(std::vector<double> totals) const;
  ScoreFromTotals score_function() const;

  BleuScore corpus_score(const std::vector<std::string>& hypotheses,
                         const std::vector<std::vector<std::string>>& references) const;
  BleuScore sentence_score(const std::string& hypothesis, const std::vector<std::string>& references) const;

  // e.g. "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.5.1"; with a
  // bootstrap, "bs:N|seed:S" follow nrefs as in sacrebleu.
  std::string signature(int num_refs, const ConfidenceInterval* bootstrap = nullptr) const;

 private:
  BleuParams params_;
};

// The sacrebleu release whose conventions and signature format Chorus follows.
inline constexpr const char* kSacrebleuVersion = "2.5.1";

}  // namespace chorus::eval
