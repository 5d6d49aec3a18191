// Parity with sacrebleu 2.x and rouge-score 0.1.2 on DialogSum and Multi30k.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <map>

#include "common/data_paths.h"
#include "eval/metrics/answer_match.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "eval/metrics/porter_stemmer.h"
#include "eval/metrics/rouge.h"
#include "eval/metrics/significance.h"
#include "tests/eval/perturbation.h"
#include "tests/eval/reference_runner.h"

namespace chorus::eval {
namespace {

using testing::perturb_all;
using testing::split_into_lines;
using Streams = std::vector<std::vector<std::string>>;

// Tolerances stated by the project for parity with the reference tools.
constexpr double kBleuChrfTolerance = 0.01;
constexpr double kRougeTolerance = 1e-4;

struct ParityData {
  std::vector<std::string> hyps;
  Streams refs;
  std::vector<std::string> baseline;  // empty: no significance checks
  std::vector<std::string> stem_texts;  // more words for the stemmer check
};

// Every case checks BLEU, chrF and chrF++ with sacrebleu's defaults; the other
// variants (casing, smoothing, effective order, whitespace, eps smoothing) are
// spread over the cases to keep each test to a few seconds.
const std::vector<std::string> kDefaults = {"bleu", "chrf", "chrf_pp"};

struct ParityCase {
  std::string name;
  std::vector<std::string> variants;                 // besides kDefaults
  bool rouge_stemming;                               // also check ROUGE with Porter stemming
  std::function<std::optional<ParityData>()> load;  // nullopt: data set absent
};

// Every third line: Multi30k's 1014 validation lines would triple the
// reference scorers' run time without covering anything new.
std::vector<std::string> every_third(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < lines.size(); i += 3) out.push_back(lines[i]);
  return out;
}

std::optional<std::vector<nlohmann::json>> dialogsum_test() {
  const auto path = find_data_file("dialogsum/dialogsum.test.jsonl");
  if (!path) return std::nullopt;
  return testing::read_json_lines(path->string());
}

// Every other record's field: 250 dialogues with three references keep the
// reference scorers to a few seconds.
std::vector<std::string> field(const std::vector<nlohmann::json>& records, const char* key) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < records.size(); i += 2) out.push_back(records[i].at(key).get<std::string>());
  return out;
}

std::optional<std::vector<std::string>> multi30k(const char* file) {
  const auto path = find_data_file(std::string("multi30k/") + file);
  if (!path) return std::nullopt;
  return testing::read_gzip_lines(path->string());
}

std::vector<ParityCase> parity_cases() {
  return {
      {"DialogSumThreeRefs", {"bleu_lc", "chrf_lc"}, true,
       []() -> std::optional<ParityData> {
         auto records = dialogsum_test();
         if (!records) return std::nullopt;
         const auto s1 = field(*records, "summary1");
         return ParityData{perturb_all(s1, 0, 17),
                           {s1, field(*records, "summary2"), field(*records, "summary3")},
                           {},
                           field(*records, "dialogue")};
       }},
      {"DialogSumOtherAnnotator", {"bleu_floor", "bleu_addk", "bleu_none", "chrf_eps"}, false,
       []() -> std::optional<ParityData> {
         auto records = dialogsum_test();
         if (!records) return std::nullopt;
         const auto s2 = field(*records, "summary2");
         return ParityData{perturb_all(s2, 3, 5), {field(*records, "summary1")}, perturb_all(s2, 8, 6), {}};
       }},
      {"Multi30kGermanPerturbed", {"bleu_eff", "bleu_lc", "chrf_ws"}, true,
       []() -> std::optional<ParityData> {
         auto de = multi30k("val.de.gz");
         if (!de) return std::nullopt;
         const auto lines = every_third(*de);
         return ParityData{perturb_all(lines, 7, 3), {lines}, {}, {}};
       }},
      {"Multi30kGermanAgainstEnglishFrench", {"bleu_none", "bleu_floor", "chrf_lc"}, false,
       []() -> std::optional<ParityData> {
         auto de = multi30k("val.de.gz");
         auto en = multi30k("val.en.gz");
         auto fr = multi30k("val.fr.gz");
         if (!de || !en || !fr) return std::nullopt;
         return ParityData{every_third(*de), {every_third(*en), every_third(*fr)}, {}, {}};
       }},
  };
}

void PrintTo(const ParityCase& c, std::ostream* os) { *os << c.name; }

class ReferenceParity : public ::testing::TestWithParam<ParityCase> {};

// Largest |a - b| over a series, with the index where it occurs.
struct Deviation {
  double max = 0;
  std::size_t at = 0;
  void add(double a, double b, std::size_t index) {
    const double d = std::abs(a - b);
    if (d > max || std::isnan(d)) max = d, at = index;
  }
};

TEST_P(ReferenceParity, MatchesSacrebleuAndRougeScore) {
  const auto python = testing::reference_python();
  if (!python) GTEST_SKIP() << "CHORUS_PYTHON is not set: no Python with sacrebleu and rouge-score to compare against";
  const auto data = GetParam().load();
  if (!data) GTEST_SKIP() << "data set for " << GetParam().name << " not found under the data root (set CHORUS_DATA)";

  const std::size_t n = data->hyps.size();
  std::vector<std::size_t> sentence_indices;
  for (std::size_t i = 0; i < n; i += 15) sentence_indices.push_back(i);
  std::vector<std::string> lsum_hyps;
  Streams lsum_refs(data->refs.size());
  for (const auto& h : data->hyps) lsum_hyps.push_back(split_into_lines(h));
  for (std::size_t r = 0; r < data->refs.size(); ++r) {
    for (const auto& line : data->refs[r]) lsum_refs[r].push_back(split_into_lines(line));
  }
  nlohmann::json input = {{"hyps", data->hyps},
                          {"refs", data->refs},
                          {"sentence_indices", sentence_indices},
                          {"lsum_hyps", lsum_hyps},
                          {"lsum_refs", lsum_refs}};
  std::vector<std::string> variants = kDefaults;
  variants.insert(variants.end(), GetParam().variants.begin(), GetParam().variants.end());
  input["variants"] = variants;
  std::vector<bool> stem_modes = {false};
  if (GetParam().rouge_stemming) stem_modes.push_back(true);
  input["rouge_stem_modes"] = stem_modes;
  if (!data->baseline.empty()) input["baseline_hyps"] = data->baseline;
  if (!data->stem_texts.empty()) input["stem_texts"] = data->stem_texts;
  const nlohmann::json ref = testing::run_reference_scores(*python, input);
  const int nrefs = static_cast<int>(data->refs.size());

  // Corpus BLEU and chrF variants, with their signatures.
  BleuParams lowercase_bleu, floor_bleu, addk_bleu, none_bleu, effective_bleu;
  lowercase_bleu.lowercase = true;
  floor_bleu.smoothing = BleuSmoothing::kFloor;
  addk_bleu.smoothing = BleuSmoothing::kAddK;
  none_bleu.smoothing = BleuSmoothing::kNone;
  effective_bleu.effective_order = true;
  ChrfParams lowercase_chrf, chrf_pp, whitespace_chrf, eps_chrf;
  lowercase_chrf.lowercase = true;
  chrf_pp.word_order = 2;
  whitespace_chrf.whitespace = true;
  eps_chrf.eps_smoothing = true;
  std::map<std::string, BleuScorer> bleus = {{"bleu", BleuScorer()},
                                             {"bleu_lc", BleuScorer(lowercase_bleu)},
                                             {"bleu_floor", BleuScorer(floor_bleu)},
                                             {"bleu_addk", BleuScorer(addk_bleu)},
                                             {"bleu_none", BleuScorer(none_bleu)},
                                             {"bleu_eff", BleuScorer(effective_bleu)}};
  std::map<std::string, ChrfScorer> chrfs = {{"chrf", ChrfScorer()},
                                             {"chrf_lc", ChrfScorer(lowercase_chrf)},
                                             {"chrf_pp", ChrfScorer(chrf_pp)},
                                             {"chrf_ws", ChrfScorer(whitespace_chrf)},
                                             {"chrf_eps", ChrfScorer(eps_chrf)}};
  for (const auto& name : variants) {
    if (bleus.count(name) == 0) continue;
    const BleuScorer& scorer = bleus.at(name);
    const double ours = scorer.corpus_score(data->hyps, data->refs).score;
    const double theirs = ref["corpus"][name]["score"].get<double>();
    EXPECT_NEAR(ours, theirs, kBleuChrfTolerance) << name;
    EXPECT_EQ(scorer.signature(nrefs), ref["corpus"][name]["signature"].get<std::string>()) << name;
    std::cout << "[parity] " << GetParam().name << " " << name << ": chorus " << ours << " sacrebleu " << theirs
              << "\n";
  }
  for (const auto& name : variants) {
    if (chrfs.count(name) == 0) continue;
    const ChrfScorer& scorer = chrfs.at(name);
    const double ours = scorer.corpus_score(data->hyps, data->refs).score;
    const double theirs = ref["corpus"][name]["score"].get<double>();
    EXPECT_NEAR(ours, theirs, kBleuChrfTolerance) << name;
    EXPECT_EQ(scorer.signature(nrefs), ref["corpus"][name]["signature"].get<std::string>()) << name;
    std::cout << "[parity] " << GetParam().name << " " << name << ": chorus " << ours << " sacrebleu " << theirs
              << "\n";
  }

  // Sentence level on a sample (sacrebleu's sentence BLEU uses effective order).
  const BleuScorer sentence_bleu(effective_bleu);
  const ChrfScorer sentence_chrf, sentence_chrf_pp(chrf_pp);
  Deviation bleu_dev, chrf_dev, chrf_pp_dev;
  for (std::size_t k = 0; k < sentence_indices.size(); ++k) {
    const std::size_t i = sentence_indices[k];
    std::vector<std::string> seg_refs;
    for (const auto& stream : data->refs) seg_refs.push_back(stream[i]);
    bleu_dev.add(sentence_bleu.sentence_score(data->hyps[i], seg_refs).score, ref["sentence"]["bleu"][k], i);
    chrf_dev.add(sentence_chrf.sentence_score(data->hyps[i], seg_refs).score, ref["sentence"]["chrf"][k], i);
    chrf_pp_dev.add(sentence_chrf_pp.sentence_score(data->hyps[i], seg_refs).score, ref["sentence"]["chrf_pp"][k], i);
  }
  EXPECT_LE(bleu_dev.max, kBleuChrfTolerance) << "sentence BLEU, segment " << bleu_dev.at << ": " << data->hyps[bleu_dev.at];
  EXPECT_LE(chrf_dev.max, kBleuChrfTolerance) << "sentence chrF, segment " << chrf_dev.at << ": " << data->hyps[chrf_dev.at];
  EXPECT_LE(chrf_pp_dev.max, kBleuChrfTolerance) << "sentence chrF++, segment " << chrf_pp_dev.at;

  // ROUGE F per segment, with and without stemming; Lsum on the line-split texts.
  for (const bool stem : stem_modes) {
    const auto& expected = ref["rouge"][stem ? "stem" : "plain"];
    const RougeScorer scorer({"rouge1", "rouge2", "rougeL"}, {stem});
    const RougeScorer lsum({"rougeLsum"}, {stem});
    const auto stats = scorer.segment_statistics(data->hyps, data->refs);
    const auto lsum_stats = lsum.segment_statistics(lsum_hyps, lsum_refs);
    const std::vector<std::pair<std::string, const SegmentStatistics*>> types = {
        {"rouge1", &stats[0]}, {"rouge2", &stats[1]}, {"rougeL", &stats[2]}, {"rougeLsum", &lsum_stats[0]}};
    for (const auto& [type, matrix] : types) {
      Deviation dev;
      double sum = 0;
      for (std::size_t i = 0; i < n; ++i) {
        dev.add(matrix->row(i)[2], expected[type][i].get<double>(), i);
        sum += expected[type][i].get<double>();
      }
      EXPECT_LE(dev.max, kRougeTolerance) << type << (stem ? " stemmed" : "") << ", segment " << dev.at << ": "
                                          << data->hyps[dev.at];
      EXPECT_NEAR(RougeScorer::mean_f(matrix->totals()), sum / n, kRougeTolerance) << type;
    }
  }

  // The Porter stemmer word by word.
  std::size_t stem_mismatches = 0;
  for (const auto& [word, stem] : ref["stems"].items()) {
    if (porter_stem(word) != stem.get<std::string>() && ++stem_mismatches <= 10) {
      ADD_FAILURE() << "stem of '" << word << "': chorus '" << porter_stem(word) << "', NLTK '" << stem << "'";
    }
  }
  EXPECT_EQ(stem_mismatches, 0u) << "of " << ref["stems"].size() << " words";
  std::cout << "[parity] " << GetParam().name << ": " << ref["stems"].size() << " words stemmed as NLTK does\n";

  // SQuAD exact match and token F1 against the official normalisation.
  const auto em = answer_statistics(exact_match, data->hyps, data->refs);
  const auto f1 = answer_statistics(token_f1, data->hyps, data->refs);
  Deviation em_dev, f1_dev;
  for (std::size_t i = 0; i < n; ++i) {
    em_dev.add(em.row(i)[0], ref["squad"]["em"][i], i);
    f1_dev.add(f1.row(i)[0], ref["squad"]["f1"][i], i);
  }
  EXPECT_EQ(em_dev.max, 0.0) << "exact match, segment " << em_dev.at << ": " << data->hyps[em_dev.at];
  EXPECT_LE(f1_dev.max, 1e-12) << "token F1, segment " << f1_dev.at << ": " << data->hyps[f1_dev.at];

  if (data->baseline.empty()) return;
  // Bootstrap intervals and paired tests: different random draws than numpy,
  // so the comparison is statistical (half-widths within 25%, same verdicts).
  const BleuScorer bleu;
  const ChrfScorer chrf;
  const auto bleu_stats = bleu.segment_statistics(data->hyps, data->refs);
  const auto chrf_stats = chrf.segment_statistics(data->hyps, data->refs);
  const auto bleu_ci = bootstrap_confidence_interval(bleu_stats, bleu.score_function());
  const auto chrf_ci = bootstrap_confidence_interval(chrf_stats, chrf.score_function());
  const double ref_bleu_hw = ref["corpus"]["bleu"]["ci_half_width"];
  const double ref_chrf_hw = ref["corpus"]["chrf"]["ci_half_width"];
  EXPECT_NEAR(bleu_ci.half_width, ref_bleu_hw, 0.25 * ref_bleu_hw);
  EXPECT_NEAR(chrf_ci.half_width, ref_chrf_hw, 0.25 * ref_chrf_hw);
  EXPECT_NEAR(bleu_ci.mean, ref["corpus"]["bleu"]["ci_mean"].get<double>(), ref_bleu_hw / 2);
  std::cout << "[parity] BLEU 95% half-width: chorus " << bleu_ci.half_width << " sacrebleu " << ref_bleu_hw
            << "; chrF: chorus " << chrf_ci.half_width << " sacrebleu " << ref_chrf_hw << "\n";

  const auto bleu_base = bleu.segment_statistics(data->baseline, data->refs);
  const auto chrf_base = chrf.segment_statistics(data->baseline, data->refs);
  const std::map<std::string, double> ours = {
      {"bs/bleu", paired_bootstrap_test(bleu_base, bleu_stats, bleu.score_function()).p_value},
      {"bs/chrf", paired_bootstrap_test(chrf_base, chrf_stats, chrf.score_function()).p_value},
      {"ar/bleu", approximate_randomization_test(bleu_base, bleu_stats, bleu.score_function(), {1000, 12345}).p_value},
      {"ar/chrf", approximate_randomization_test(chrf_base, chrf_stats, chrf.score_function(), {1000, 12345}).p_value}};
  for (const auto& [key, p] : ours) {
    const auto slash = key.find('/');
    const double theirs = ref["paired"][key.substr(0, slash)][key.substr(slash + 1)];
    std::cout << "[parity] p-value " << key << ": chorus " << p << " sacrebleu " << theirs << "\n";
    if (theirs < 0.01) {
      EXPECT_LT(p, 0.05) << key;
    }
    if (theirs > 0.2) {
      EXPECT_GT(p, 0.05) << key;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DataSets, ReferenceParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& info) { return info.param.name; });

}  // namespace
}  // namespace chorus::eval
