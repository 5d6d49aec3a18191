// Generation pieces on their own: logits processors, option checks, seeded sampling.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "common/error.h"
#include "model/generation/generate.h"
#include "model/generation/logits_processors.h"
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
  bad([](auto& o) { o.num_beams = 2; o.do_sample = true; });
  bad([](auto& o) { o.eos_token_ids = {10}; });
  model::GenerationOptions fine;
  EXPECT_NO_THROW(model::check_generation_options(fine, config));
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

}  // namespace
}  // namespace chorus::testing
