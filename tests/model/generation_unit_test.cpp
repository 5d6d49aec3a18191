// Generation pieces on their own: logits processors, option checks, seeded sampling.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/generation/generate.h"
#include "model/generation/logits_processors.h"
#include "model/packed_linear.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(LogitsProcessors, TopKKeepsTheKLargestAndTies) {
  auto scores = torch::tensor({{1.0f, 5.0f, 3.0f, 5.0f, 0.0f}});
  auto kept = model::keep_top_k(scores, 2, 1);
  EXPECT_TRUE(torch::equal(kept, torch::tensor({{-kInf, 5.0f, -kInf, 5.0f, -kInf}})));
  // min_tokens_to_keep wins over a smaller k; k beyond the vocabulary keeps everything.
  EXPECT_EQ(torch::isfinite(model::keep_top_k(scores, 1, 3)).sum().item<int64_t>(), 3);
  EXPECT_TRUE(torch::equal(model::keep_top_k(scores, 50, 1), scores));
}

TEST(LogitsProcessors, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.25, 0.125, 0.125.
  auto scores = torch::log(torch::tensor({{0.5f, 0.25f, 0.125f, 0.125f}}));
  auto kept = model::keep_top_p(scores, 0.7, 1);
  auto finite = torch::isfinite(kept);
  EXPECT_TRUE(finite[0][0].item<bool>());
  EXPECT_TRUE(finite[0][1].item<bool>());
  EXPECT_FALSE(finite[0][2].item<bool>());
  EXPECT_FALSE(finite[0][3].item<bool>());
  // A tiny p still keeps min_tokens_to_keep tokens.
  EXPECT_EQ(torch::isfinite(model::keep_top_p(scores, 1e-6, 1)).sum().item<int64_t>(), 1);
}

TEST(LogitsProcessors, NoRepeatNgramBansWhatFollowedTheLastPrefix) {
  auto scores = torch::zeros({1, 10});
  // Bigrams so far: (4,7) (7,4) (4,9); the sequence ends in 4, so 7 and 9 are banned.
  auto sequence = torch::tensor({{4, 7, 4, 9, 4}}, torch::kInt64);
  auto out = model::ban_repeated_ngrams(scores, sequence, 2);
  for (int64_t t = 0; t < 10; ++t) {
    EXPECT_EQ(std::isinf(out[0][t].item<float>()), t == 7 || t == 9) << "token " << t;
  }
}

TEST(LogitsProcessors, RepetitionPenaltyDividesPositiveAndMultipliesNegativeSeenScores) {
  auto scores = torch::tensor({{2.0f, -2.0f, 3.0f, -1.0f, 0.5f}});
  // Token 1 occurs twice and is penalised once; tokens 2 and 3 were never generated.
  auto sequence = torch::tensor({{0, 1, 1, 4}}, torch::kInt64);
  auto out = model::penalize_repetitions(scores, sequence, 2.0);
  EXPECT_TRUE(torch::equal(out, torch::tensor({{1.0f, -4.0f, 3.0f, -1.0f, 0.25f}}))) << out;
  // A penalty below 1 rewards repeats.
  auto rewarded = model::penalize_repetitions(scores, sequence, 0.5);
  EXPECT_TRUE(torch::equal(rewarded, torch::tensor({{4.0f, -1.0f, 3.0f, -1.0f, 1.0f}}))) << rewarded;
}

TEST(LogitsProcessors, RepetitionPenaltyComesBeforeTheWarpers) {
  // With temperature 2 after a penalty of 4: token 0 (seen, logit 8) becomes 8 / 4 / 2 = 1.
  model::LogitsProcessing p;
  p.repetition_penalty = 4.0;
  p.sample = true;
  p.temperature = 2.0;
  p.top_k = 2;
  auto scores = torch::tensor({{8.0f, 3.0f, 1.0f, 0.0f}});
  auto out = model::process_logits(scores, torch::tensor({{0}}, torch::kInt64), p);
  // Temperature then top-k over the penalised scores keeps tokens 1 (1.5) and 0 (1.0).
  EXPECT_TRUE(torch::equal(out, torch::tensor({{1.0f, 1.5f, -kInf, -kInf}}))) << out;
}

TEST(LogitsProcessors, ForcedAndMinLengthFollowTheReferenceOrder) {
  model::LogitsProcessing p;
  p.max_length = 5;
  p.min_length = 3;
  p.eos_token_ids = {2};
  p.forced_bos_token_id = 0;
  p.forced_eos_token_id = 2;
  auto scores = torch::zeros({1, 6});
  // Step 1: forced BOS (after the EOS ban).
  auto first = model::process_logits(scores, torch::zeros({1, 1}, torch::kInt64), p);
  EXPECT_EQ(first.argmax(-1).item<int64_t>(), 0);
  EXPECT_EQ(torch::isfinite(first).sum().item<int64_t>(), 1);
  // Step 2: EOS banned (length 2 < min_length 3).
  auto second = model::process_logits(scores, torch::zeros({1, 2}, torch::kInt64), p);
  EXPECT_TRUE(std::isinf(second[0][2].item<float>()));
  // Last step before max_length: forced EOS.
  auto last = model::process_logits(scores, torch::zeros({1, 4}, torch::kInt64), p);
  EXPECT_EQ(last.argmax(-1).item<int64_t>(), 2);
}

TEST(GenerationOptions, OutOfRangeOptionsAreErrors) {
  model::Seq2SeqConfig config;
  config.vocab_size = 10;
  const auto bad = [&](auto edit) {
    model::GenerationOptions o;
    edit(o);
    EXPECT_THROW(model::check_generation_options(o, config), Error);
  };
  bad([](auto& o) { o.num_beams = 0; });
  bad([](auto& o) { o.temperature = 0.0; });
  bad([](auto& o) { o.top_p = 1.5; });
  bad([](auto& o) { o.max_new_tokens = 0; });
  bad([](auto& o) { o.num_beams = 2; o.num_return_sequences = 3; });
  bad([](auto& o) { o.repetition_penalty = 0.0; });
  bad([](auto& o) { o.repetition_penalty = -1.3; });
  bad([](auto& o) { o.repetition_penalty = std::numeric_limits<double>::quiet_NaN(); });
  bad([](auto& o) { o.no_repeat_ngram_size = -1; });
  bad([](auto& o) { o.eos_token_ids = {10}; });
  model::GenerationOptions fine;
  EXPECT_NO_THROW(model::check_generation_options(fine, config));
  fine.num_beams = 2;
  fine.do_sample = true;  // beam sampling
  fine.repetition_penalty = 0.7;
  EXPECT_NO_THROW(model::check_generation_options(fine, config));
}

TEST(GenerationOptions, RepetitionPenaltyIsReadAndItsErrorNamesIt) {
  model::GenerationOptions o;
  model::apply_generation_fields({{"repetition_penalty", 1.3}, {"no_repeat_ngram_size", 3}}, "g.json", o);
  EXPECT_DOUBLE_EQ(o.repetition_penalty, 1.3);
  EXPECT_EQ(o.no_repeat_ngram_size, 3);
  o.repetition_penalty = -2.0;
  model::Seq2SeqConfig config;
  config.vocab_size = 10;
  try {
    model::check_generation_options(o, config);
    ADD_FAILURE() << "a negative repetition_penalty was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("repetition_penalty is -2"), std::string::npos) << e.what();
  }
}

TEST(GenerationOptions, EarlyStoppingReadsTheReferenceValues) {
  model::GenerationOptions o;
  model::apply_generation_fields({{"early_stopping", true}, {"num_beams", 4}}, "g.json", o);
  EXPECT_EQ(o.early_stopping, model::EarlyStopping::when_full);
  EXPECT_EQ(o.num_beams, 4);
  model::apply_generation_fields({{"early_stopping", "never"}}, "g.json", o);
  EXPECT_EQ(o.early_stopping, model::EarlyStopping::never);
  EXPECT_THROW(model::apply_generation_fields({{"early_stopping", "sometimes"}}, "g.json", o), Error);
}

TEST(Sampling, SameSeedSameTokensAndTopKOneIsGreedy) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto model = model::load_seq2seq_model(fixtures / "t5_v1_0");
  const auto ids = torch::tensor({{5, 9, 12, 40, 1}, {7, 7, 30, 1, 0}}, torch::kInt64);
  const auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}}, torch::kInt64);
  model::GenerationOptions o;
  o.max_new_tokens = 10;
  o.do_sample = true;
  o.top_k = 0;
  o.seed = 42;
  const auto a = model::generate(*model, ids, mask, o).sequences;
  const auto b = model::generate(*model, ids, mask, o).sequences;
  EXPECT_TRUE(torch::equal(a, b));
  o.top_k = 1;
  model::GenerationOptions greedy;
  greedy.max_new_tokens = 10;
  EXPECT_TRUE(torch::equal(model::generate(*model, ids, mask, o).sequences,
                           model::generate(*model, ids, mask, greedy).sequences));
}

// Batches of at least model::kPackedLinearMinRows rows decode with MKL-packed weights
// (model/packed_linear.h); CHORUS_PACKED_GEMM=0 turns that off. Both give the same tokens and, to
// rounding, the same scores, for greedy search and beam search, at a batch that packs and at one
// that does not.
TEST(PackedWeights, DecodingWithPackedWeightsMatchesThePlainProducts) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  for (const char* name : {"t5_v1_0", "t5_v1_1"}) {
    const auto model = model::load_seq2seq_model(fixtures / name);
    for (const int64_t batch : {int64_t{3}, model::kPackedLinearMinRows + 4}) {
      const auto ids = (torch::arange(batch * 6, torch::kInt64).view({batch, 6}) * 7 + 3) % (model->vocab_size() - 2) + 2;
      const auto mask = torch::ones_like(ids);
      for (const int64_t beams : {int64_t{1}, int64_t{3}}) {
        model::GenerationOptions o;
        o.max_new_tokens = 12;
        o.num_beams = beams;
        setenv("CHORUS_PACKED_GEMM", "0", 1);
        const auto plain = model::generate(*model, ids, mask, o);
        unsetenv("CHORUS_PACKED_GEMM");
        const auto packed = model::generate(*model, ids, mask, o);
        EXPECT_TRUE(torch::equal(plain.sequences, packed.sequences)) << name << " batch " << batch << " beams " << beams;
        EXPECT_TRUE(torch::allclose(plain.sequence_scores, packed.sequence_scores, 1e-5, 1e-5))
            << name << " batch " << batch << " beams " << beams;
      }
    }
  }
}

TEST(PackedWeights, CacheReusesThePackingUntilAWeightChanges) {
  torch::NoGradGuard no_grad;
  if (!model::packing_pays(model::kPackedLinearMinRows, torch::kFloat32)) {
    GTEST_SKIP() << "this LibTorch has no MKL packed GEMM (or CHORUS_PACKED_GEMM=0)";
  }
  torch::manual_seed(5);
  std::vector<torch::Tensor> weights = {torch::randn({64, 32}), torch::randn({16, 32})};
  const int64_t rows = model::kPackedLinearMinRows;
  model::PackedWeightsCache cache;
  const auto first = cache.get(weights, rows);
  EXPECT_EQ(cache.get(weights, rows), first) << "same rows, same weights: the packing is reused";
  const auto other_rows = cache.get(weights, rows + 1);
  EXPECT_NE(other_rows, first);
  EXPECT_EQ(other_rows->rows, rows + 1);
  // An in-place update (as an optimizer step makes) packs again, and products see the new values.
  const auto before_update = cache.get(weights, rows);
  weights[0].add_(1.0);
  const auto after_update = cache.get(weights, rows);
  EXPECT_NE(after_update, before_update);
  const auto x = torch::randn({rows, 32});
  EXPECT_TRUE(torch::allclose(model::linear(x, weights[0], after_update.get()), torch::linear(x, weights[0]), 1e-5, 1e-5));
  // A replaced tensor, even of the same shape, is not the packed one.
  weights[1] = torch::randn({16, 32});
  const auto after_replace = cache.get(weights, rows);
  EXPECT_NE(after_replace, after_update);
  EXPECT_TRUE(torch::allclose(model::linear(x, weights[1], after_replace.get()), torch::linear(x, weights[1]), 1e-5, 1e-5));
}

// T5's fused single-token step against the op-by-op one (CHORUS_FUSED_DECODE=0): greedy and beam
// search, batches that pack and that do not, right padding (key lengths) and other padding (an
// additive bias) in the sources, every hidden state.
TEST(FusedDecoding, MatchesTheOpByOpStep) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  for (const char* name : {"t5_v1_0", "t5_v1_1"}) {
    const auto model = model::load_seq2seq_model(fixtures / name);
    for (const int64_t batch : {int64_t{3}, model::kPackedLinearMinRows + 2}) {
      const auto ids = (torch::arange(batch * 7, torch::kInt64).view({batch, 7}) * 11 + 5) % (model->vocab_size() - 2) + 2;
      auto mask = torch::ones_like(ids);
      mask[1].narrow(0, 5, 2).fill_(0);  // right padding
      mask[2][0] = 0;                    // not a prefix: the padding becomes a bias
      for (const int64_t beams : {int64_t{1}, int64_t{3}}) {
        SCOPED_TRACE(std::string(name) + " batch " + std::to_string(batch) + " beams " + std::to_string(beams));
        model::GenerationOptions o;
        o.max_new_tokens = 20;  // past the 16 positions the cache starts with
        o.num_beams = beams;
        o.output_hidden_states = beams == 1;
        setenv("CHORUS_FUSED_DECODE", "0", 1);
        const auto plain = model::generate(*model, ids, mask, o);
        unsetenv("CHORUS_FUSED_DECODE");
        const auto fused = model::generate(*model, ids, mask, o);
        EXPECT_TRUE(torch::equal(plain.sequences, fused.sequences));
        EXPECT_TRUE(torch::allclose(plain.sequence_scores, fused.sequence_scores, 1e-5, 1e-5));
        ASSERT_EQ(plain.decoder_hidden_states.size(), fused.decoder_hidden_states.size());
        for (size_t step = 0; step < plain.decoder_hidden_states.size(); ++step) {
          ASSERT_EQ(plain.decoder_hidden_states[step].size(), fused.decoder_hidden_states[step].size());
          for (size_t layer = 0; layer < plain.decoder_hidden_states[step].size(); ++layer) {
            const auto& a = plain.decoder_hidden_states[step][layer];
            const auto& b = fused.decoder_hidden_states[step][layer];
            ASSERT_EQ(a.sizes(), b.sizes()) << "step " << step << " layer " << layer;
            EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << "step " << step << " layer " << layer;
          }
        }
      }
    }
  }
}

TEST(BeamSampling, SeededRunsRepeatAndScoresBelongToTheReturnedBeams) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto model = model::load_seq2seq_model(fixtures / "t5_v1_1");
  const auto ids = torch::tensor({{5, 9, 12, 40, 1}, {7, 7, 30, 1, 0}}, torch::kInt64);
  const auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}}, torch::kInt64);
  model::GenerationOptions o;
  o.max_new_tokens = 10;
  o.num_beams = 4;
  o.num_return_sequences = 3;
  o.do_sample = true;
  o.top_k = 5;
  o.length_penalty = 1.5;
  o.seed = 7;
  const auto a = model::generate(*model, ids, mask, o);
  const auto b = model::generate(*model, ids, mask, o);
  EXPECT_TRUE(torch::equal(a.sequences, b.sequences));
  EXPECT_TRUE(torch::equal(a.sequence_scores, b.sequence_scores));
  ASSERT_EQ(a.sequences.size(0), 2 * 3);
  // Each returned row is a beam: its score is its own tokens' processed log-probabilities,
  // summed and divided by its generated length^length_penalty; tokens outside the top-k
  // would score -inf.
  const auto eos = model->config().eos_token_id;
  for (int64_t row = 0; row < a.sequences.size(0); ++row) {
    const auto generated = a.sequences[row].slice(0, 1);
    int64_t length = generated.size(0);
    for (int64_t t = 0; t < generated.size(0); ++t) {
      if (generated[t].item<int64_t>() == eos) {
        length = t + 1;
        break;
      }
    }
    const auto scores = a.token_scores[row].slice(0, 0, length);
    EXPECT_TRUE(torch::isfinite(scores).all().item<bool>()) << "row " << row << ": " << scores;
    const double expected = scores.sum().item<double>() / std::pow(static_cast<double>(length), o.length_penalty);
    EXPECT_NEAR(a.sequence_scores[row].item<double>(), expected, 1e-4) << "row " << row;
  }
  // Beams of one input come sorted best first.
  for (int64_t input = 0; input < 2; ++input) {
    const auto s = a.sequence_scores.slice(0, input * 3, input * 3 + 3);
    EXPECT_TRUE((s.slice(0, 0, 2) >= s.slice(0, 1, 3)).all().item<bool>()) << s;
  }
  // The draws depend on the seed: some other seed gives other beams.
  bool differs = false;
  for (uint64_t seed = 8; seed < 12 && !differs; ++seed) {
    o.seed = seed;
    const auto other = model::generate(*model, ids, mask, o).sequences;
    differs = other.sizes() != a.sequences.sizes() || !torch::equal(other, a.sequences);
  }
  EXPECT_TRUE(differs) << "beam sampling gave the same beams for seeds 7 to 11";
}

}  // namespace
}  // namespace chorus::testing
