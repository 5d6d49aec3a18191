// Metric conventions on small cases worked out by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "eval/metrics/answer_match.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "eval/metrics/diversity.h"
#include "eval/metrics/porter_stemmer.h"
#include "eval/metrics/rouge.h"
#include "eval/metrics/tokenizer_13a.h"
#include "common/text/utf8.h"

namespace chorus::eval {
namespace {

std::string tok13a(const std::string& s) { return encode_utf8(tokenize_13a(decode_utf8(s))); }

struct TokenizerCase {
  std::string input;
  std::string expected;
};
class Tokenizer13a : public ::testing::TestWithParam<TokenizerCase> {};
TEST_P(Tokenizer13a, SplitsLikeMteval) { EXPECT_EQ(tok13a(GetParam().input), GetParam().expected); }
INSTANTIATE_TEST_SUITE_P(
    Cases, Tokenizer13a,
    ::testing::Values(TokenizerCase{"Hello, world!", "Hello , world !"},
                      TokenizerCase{"It costs 3.5 or 1,000 dollars.", "It costs 3.5 or 1,000 dollars ."},
                      TokenizerCase{"pages 10-20", "pages 10 - 20"},
                      TokenizerCase{"&quot;hi&quot; &amp; &lt;b&gt;", "\" hi \" & < b >"},
                      TokenizerCase{"<skipped>x  y", "x y"},
                      TokenizerCase{"e.g. caf\u00e9,ok", "e . g . caf\u00e9 , ok"},
                      TokenizerCase{"a\u00a0b", "a b"}));

TEST(Bleu, IdenticalIsHundredAndDisjointIsZero) {
  const BleuScorer bleu;
  EXPECT_DOUBLE_EQ(bleu.corpus_score({"the cat sat on the mat"}, {{"the cat sat on the mat"}}).score, 100.0);
  EXPECT_EQ(bleu.corpus_score({"dogs bark loudly"}, {{"the cat sat on the mat"}}).score, 0.0);
  EXPECT_EQ(bleu.corpus_score({""}, {{"the cat"}}).score, 0.0);
}

TEST(Bleu, ExpSmoothingAndBrevityPenaltyFromCounts) {
  // hyp: the cat sat on the mat (6 tokens); ref: the cat is on the mat (6 tokens)
  // matches: 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4, 4-grams 0/3.
  const BleuScore s = BleuScorer().corpus_score({"the cat sat on the mat"}, {{"the cat is on the mat"}});
  const double p4 = 100.0 / (2 * 3);  // exp smoothing: first zero order gets 1 / (2 * total)
  const double expected = std::exp((std::log(500.0 / 6) + std::log(60.0) + std::log(25.0) + std::log(p4)) / 4);
  EXPECT_NEAR(s.score, expected, 1e-12);
  EXPECT_EQ(s.verbose(), "83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)");

  const BleuScore short_hyp = BleuScorer().corpus_score({"the cat"}, {{"the cat is on the mat"}});
  EXPECT_NEAR(short_hyp.brevity_penalty, std::exp(1.0 - 6.0 / 2.0), 1e-12);
}

TEST(Bleu, ClosestReferenceLengthPrefersShorterOnTies) {
  // hyp has 4 tokens; references of 3 and 5 tokens are equally close: 3 wins.
  const BleuScore s = BleuScorer().corpus_score({"a b c d"}, {{"a b c"}, {"a b c d e"}});
  EXPECT_EQ(s.ref_len, 3.0);
}

TEST(Bleu, SignaturesFollowSacrebleu) {
  EXPECT_EQ(BleuScorer().signature(1), "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.5.1");
  BleuParams p;
  p.smoothing = BleuSmoothing::kFloor;
  p.lowercase = true;
  EXPECT_EQ(BleuScorer(p).signature(2), "nrefs:2|case:lc|eff:no|tok:13a|smooth:floor[0.10]|version:2.5.1");
  p.smoothing = parse_bleu_smoothing("add-k");
  p.lowercase = false;
  p.effective_order = true;
  ConfidenceInterval ci;
  ci.resamples = 1000;
  ci.seed = 12345;
  EXPECT_EQ(BleuScorer(p).signature(1, &ci),
            "nrefs:1|bs:1000|seed:12345|case:mixed|eff:yes|tok:13a|smooth:add-k[1.00]|version:2.5.1");
  EXPECT_THROW(parse_bleu_smoothing("laplace"), Error);
}

TEST(Chrf, IdenticalIsHundredAndNamesFollowOrders) {
  EXPECT_NEAR(ChrfScorer().corpus_score({"Ein Mann schl\u00e4ft."}, {{"Ein Mann schl\u00e4ft."}}).score, 100.0, 1e-9);
  ChrfParams pp;
  pp.word_order = 2;
  EXPECT_EQ(ChrfScorer(pp).name(), "chrF2++");
  EXPECT_EQ(ChrfScorer().signature(1), "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.5.1");
  EXPECT_EQ(ChrfScorer(pp).signature(3), "nrefs:3|case:mixed|eff:yes|nc:6|nw:2|space:no|version:2.5.1");
}

TEST(Chrf, WhitespaceIsIgnoredByDefault) {
  const ChrfScorer chrf;
  EXPECT_NEAR(chrf.corpus_score({"ab cd"}, {{"abcd"}}).score, 100.0, 1e-9);
  EXPECT_LT(chrf.corpus_score({"abdc"}, {{"abcd"}}).score, 100.0);
}

TEST(Rouge, TokeniserFollowsRougeScore) {
  EXPECT_EQ(rouge_tokenize("Hello, World! caf\u00e9 x_y 42", false),
            (std::vector<std::string>{"hello", "world", "caf", "x", "y", "42"}));
  EXPECT_EQ(rouge_tokenize("\u212aelvin", false), (std::vector<std::string>{"kelvin"}));
  EXPECT_EQ(rouge_tokenize("running dogs ran", true), (std::vector<std::string>{"run", "dog", "ran"}));
}

TEST(Rouge, NgramAndLcsScores) {
  const RougeScorer scorer({"rouge1", "rouge2", "rougeL"});
  const auto s = scorer.score("testing one two", "testing");
  EXPECT_DOUBLE_EQ(s[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(s[0].recall, 1.0 / 3);
  EXPECT_DOUBLE_EQ(s[0].fmeasure, 0.5);
  EXPECT_DOUBLE_EQ(s[1].fmeasure, 0.0);
  // LCS of "a b c d" and "a c b d" has length 3.
  const auto l = scorer.score("a b c d", "a c b d");
  EXPECT_DOUBLE_EQ(l[2].fmeasure, 0.75);
  EXPECT_THROW(RougeScorer({"rougeX"}), Error);
}

TEST(Rouge, MultipleTargetsTakeTheBestF) {
  const RougeScorer scorer({"rouge1"});
  const auto best = scorer.score_multi({"x y z", "a b c"}, "a b");
  EXPECT_DOUBLE_EQ(best[0].fmeasure, scorer.score("a b c", "a b")[0].fmeasure);
}

struct StemCase {
  const char* word;
  const char* stem;
};
class PorterStemmer : public ::testing::TestWithParam<StemCase> {};
TEST_P(PorterStemmer, MatchesNltkOnKnownWords) { EXPECT_EQ(porter_stem(GetParam().word), GetParam().stem); }
INSTANTIATE_TEST_SUITE_P(Words, PorterStemmer,
                         ::testing::Values(StemCase{"caresses", "caress"}, StemCase{"ponies", "poni"},
                                           StemCase{"cats", "cat"}, StemCase{"running", "run"},
                                           StemCase{"hopping", "hop"}, StemCase{"happy", "happi"},
                                           StemCase{"dying", "die"}, StemCase{"news", "news"},
                                           StemCase{"sky", "sky"}));

TEST(AnswerMatch, SquadNormalisation) {
  EXPECT_EQ(normalize_answer("The Quick, brown fox!"), "quick brown fox");
  EXPECT_EQ(normalize_answer("an apple a day"), "apple day");
  EXPECT_EQ(normalize_answer("theatre"), "theatre");
  EXPECT_EQ(exact_match("The answer.", "answer"), 1.0);
  EXPECT_DOUBLE_EQ(token_f1("the cat sat", "cat sat down"), 0.8);
  EXPECT_EQ(token_f1("", "the"), 1.0);  // both normalise to nothing
  EXPECT_EQ(token_f1("cat", ""), 0.0);
  EXPECT_DOUBLE_EQ(max_over_golds(token_f1, "cat", {"dog", "cat"}), 1.0);
  EXPECT_DOUBLE_EQ(accuracy({"a", "b", "c", "d"}, {"a", "x", "c", "y"}), 0.5);
  EXPECT_THROW(accuracy({"a"}, {"a", "b"}), Error);
}

TEST(Diversity, DistinctAndRepetition) {
  EXPECT_DOUBLE_EQ(distinct_n({"a b a b"}, 1), 0.5);
  EXPECT_DOUBLE_EQ(distinct_n({"a b a b"}, 2), 2.0 / 3);
  EXPECT_DOUBLE_EQ(distinct_n({"a b", "a b"}, 1), 0.5);
  EXPECT_DOUBLE_EQ(repetition_rate({"a b a b", "c d e"}, 2), (1 - 2.0 / 3 + 0.0) / 2);
  EXPECT_EQ(distinct_n({""}, 1), 0.0);
}

}  // namespace
}  // namespace chorus::eval
