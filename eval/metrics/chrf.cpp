#include "eval/metrics/chrf.h"

#include "common/error.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/ngram_counts.h"
#include "eval/text/python_text.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

// Python's string.punctuation, which chrF++ splits off word edges.
bool is_ascii_punctuation(char32_t c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}

// sacrebleu's _remove_punctuation: one leading or trailing punctuation mark
// becomes its own word (the trailing one wins when both are present).
std::vector<std::u32string_view> words_for_chrf(std::u32string_view text) {
  std::vector<std::u32string_view> words;
  for (std::u32string_view w : python_split(text)) {
    if (w.size() == 1) {
      words.push_back(w);
    } else if (is_ascii_punctuation(w.back())) {
      words.push_back(w.substr(0, w.size() - 1));
      words.push_back(w.substr(w.size() - 1));
    } else if (is_ascii_punctuation(w.front())) {
      words.push_back(w.substr(0, 1));
      words.push_back(w.substr(1));
    } else {
      words.push_back(w);
    }
  }
  return words;
}

// N-gram counts of one segment: char orders first, then word orders.
struct ChrfNgrams {
  std::vector<std::vector<NgramCount>> by_order;
};

ChrfNgrams extract(const std::u32string& text, const ChrfParams& params, TokenInterner<std::u32string_view>& interner,
                   std::vector<NgramKey>& scratch) {
  ChrfNgrams out;
  std::vector<std::uint32_t> chars;
  chars.reserve(text.size());
  for (char32_t c : text) {
    if (params.whitespace || !is_python_space(c)) chars.push_back(static_cast<std::uint32_t>(c));
  }
  for (int n = 1; n <= params.char_order; ++n) {
    ngram_keys(chars, n, 21, scratch);
    out.by_order.push_back(count_ngrams(scratch));
  }
  if (params.word_order > 0) {
    std::vector<std::uint32_t> ids;
    for (auto word : words_for_chrf(text)) ids.push_back(interner.id(word));
    for (int n = 1; n <= params.word_order; ++n) {
      ngram_keys(ids, n, 32, scratch);
      out.by_order.push_back(count_ngrams(scratch));
    }
  }
  return out;
}

std::uint64_t total_count(const std::vector<NgramCount>& counts) {
  std::uint64_t total = 0;
  for (const auto& c : counts) total += c.count;
  return total;
}

}  // namespace

ChrfScorer::ChrfScorer(ChrfParams params) : params_(params) {
  CHORUS_CHECK(params_.char_order >= 1 && params_.char_order <= 6, "chrF character order must be in 1..6, got ",
               params_.char_order);
  CHORUS_CHECK(params_.word_order >= 0 && params_.word_order <= 4, "chrF word order must be in 0..4, got ",
               params_.word_order);
  CHORUS_CHECK(params_.beta >= 1, "chrF beta must be positive, got ", params_.beta);
}

std::string ChrfScorer::name() const {
  return "chrF" + std::to_string(params_.beta) + std::string(static_cast<std::size_t>(params_.word_order), '+');
}

SegmentStatistics ChrfScorer::segment_statistics(const std::vector<std::string>& hypotheses,
                                                 const std::vector<std::vector<std::string>>& references) const {
  CHORUS_CHECK(!references.empty(), "chrF: no reference streams (expected at least one)");
  for (std::size_t r = 0; r < references.size(); ++r) {
    CHORUS_CHECK(references[r].size() == hypotheses.size(), "chrF: reference stream ", r, " has ",
                 references[r].size(), " segments but there are ", hypotheses.size(), " hypotheses");
  }
  const std::size_t orders = static_cast<std::size_t>(params_.char_order + params_.word_order);
  SegmentStatistics stats;
  stats.width = 3 * orders;
  stats.values.reserve(stats.width * hypotheses.size());

  TokenInterner<std::u32string_view> interner;
  std::vector<NgramKey> scratch;
  std::vector<double> row(stats.width), best(stats.width);
  std::vector<std::u32string> ref_texts(references.size());
  const auto prepare = [&](const std::string& segment) {
    std::u32string text = decode_utf8(segment, "chrF segment");
    return params_.lowercase ? python_lower(text) : text;
  };
  for (std::size_t s = 0; s < hypotheses.size(); ++s) {
    interner.clear();
    const std::u32string hyp_text = prepare(hypotheses[s]);
    const ChrfNgrams hyp = extract(hyp_text, params_, interner, scratch);
    double best_f = -1.0;
    for (std::size_t r = 0; r < references.size(); ++r) {
      // Kept alive while the interner holds views into it.
      ref_texts[r] = prepare(references[r][s]);
      const ChrfNgrams ref = extract(ref_texts[r], params_, interner, scratch);
      for (std::size_t o = 0; o < orders; ++o) {
        const auto& h = hyp.by_order[o];
        const auto& r = ref.by_order[o];
        row[3 * o] = r.empty() ? 0.0 : static_cast<double>(total_count(h));
        row[3 * o + 1] = static_cast<double>(total_count(r));
        row[3 * o + 2] = static_cast<double>(clipped_overlap(h, r));
      }
      const double f = f_score(row.data());
      if (f > best_f) {
        best_f = f;
        best = row;
      }
    }
    stats.values.insert(stats.values.end(), best.begin(), best.end());
  }
  return stats;
}

double ChrfScorer::f_score(const double* statistics) const {
  const double eps = 1e-16;
  const double factor = static_cast<double>(params_.beta) * params_.beta;
  const int orders = params_.char_order + params_.word_order;
  double score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
  int effective_order = 0;
  for (int i = 0; i < orders; ++i) {
    const double n_hyp = statistics[3 * i], n_ref = statistics[3 * i + 1], n_match = statistics[3 * i + 2];
    const double prec = n_hyp > 0 ? n_match / n_hyp : eps;
    const double rec = n_ref > 0 ? n_match / n_ref : eps;
    const double denom = factor * prec + rec;
    score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (params_.eps_smoothing) return 100.0 * score / orders;
  if (effective_order == 0) {
    avg_prec = avg_rec = 0.0;
  } else {
    avg_prec /= effective_order;
    avg_rec /= effective_order;
  }
  if (avg_prec + avg_rec != 0.0) {
    return 100.0 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
  }
  return 0.0;
}

ChrfScore ChrfScorer::score_from_totals(const std::vector<double>& totals) const {
  CHORUS_CHECK(totals.size() == 3 * static_cast<std::size_t>(params_.char_order + params_.word_order),
               "chrF statistics have ", totals.size(), " values, expected ",
               3 * (params_.char_order + params_.word_order));
  return {f_score(totals.data()), name()};
}

ScoreFromTotals ChrfScorer::score_function() const {
  return [scorer = *this](const std::vector<double>& totals) { return scorer.score_from_totals(totals).score; };
}

ChrfScore ChrfScorer::corpus_score(const std::vector<std::string>& hypotheses,
                                   const std::vector<std::vector<std::string>>& references) const {
  return score_from_totals(segment_statistics(hypotheses, references).totals());
}

ChrfScore ChrfScorer::sentence_score(const std::string& hypothesis, const std::vector<std::string>& references) const {
  std::vector<std::vector<std::string>> streams;
  for (const auto& ref : references) streams.push_back({ref});
  return corpus_score({hypothesis}, streams);
}

std::string ChrfScorer::signature(int num_refs, const ConfidenceInterval* bootstrap) const {
  std::string out = "nrefs:" + std::to_string(num_refs);
  if (bootstrap != nullptr) {
    out += "|bs:" + std::to_string(bootstrap->resamples) + "|seed:" + std::to_string(bootstrap->seed);
  }
  out += std::string("|case:") + (params_.lowercase ? "lc" : "mixed");
  out += std::string("|eff:") + (params_.eps_smoothing ? "no" : "yes");
  out += "|nc:" + std::to_string(params_.char_order) + "|nw:" + std::to_string(params_.word_order);
  out += std::string("|space:") + (params_.whitespace ? "yes" : "no");
  return out + "|version:" + kSacrebleuVersion;
}

}  // namespace chorus::eval
