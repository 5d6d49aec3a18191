// Cost accounting: the FLOP estimate of a seq2seq call against a hand count, sums and means.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collab/cost.h"
#include "common/error.h"

namespace chorus::collab {
namespace {

// d_model 4, one encoder and one decoder layer, 2 heads of width 3 (inner 6), ff 8, vocab 10.
model::Seq2SeqConfig tiny(bool gated) {
  model::Seq2SeqConfig c;
  c.vocab_size = 10;
  c.d_model = 4;
  c.encoder_layers = 1;
  c.decoder_layers = 1;
  c.encoder_heads = 2;
  c.decoder_heads = 2;
  c.head_dim = 3;
  c.encoder_ffn_dim = 8;
  c.decoder_ffn_dim = 8;
  c.gated_ffn = gated;
  return c;
}

TEST(CallCost, MatchesAHandCountForThreeTokensInAndTwoOut) {
  // Encoder over S = 3: projections 4 matrices of 4x6, 2*3*4*6 each = 576; attention 4*2*3*3*3 =
  // 216; feed-forward 2 matrices of 4x8, 2*3*4*8 each = 384. Total 1176.
  const double encoder = 576 + 216 + 384;
  // Decoder, steps t = 1, 2: self projections 4 * 2*4*6 per step = 192, twice = 384; self attention
  // 4*2*3*(1 + 2) = 72; cross Q and O 2 * 2*4*6 per step = 96, twice = 192; cross attention 4*2*3*3
  // per step = 72, twice = 144; cross K and V of 3 encoder states once, 2 * 2*3*4*6 = 288;
  // feed-forward 2 * 2*4*8 per step = 128, twice = 256. Output projection 2*4*10 per step, twice =
  // 160.
  const double decoder = 384 + 72 + 192 + 144 + 288 + 256 + 160;
  EXPECT_DOUBLE_EQ(seq2seq_call_flops(tiny(false), 3, 2), encoder + decoder);
  // Gated feed-forward: a third matrix in each feed-forward.
  EXPECT_DOUBLE_EQ(seq2seq_call_flops(tiny(true), 3, 2), encoder + decoder + 384 / 2 + 256 / 2);
  // No generated token: the encoder alone.
  EXPECT_DOUBLE_EQ(seq2seq_call_flops(tiny(false), 3, 0), encoder);
}

TEST(CallCost, CountsOneCallAndItsTokens) {
  const auto cost = seq2seq_call_cost(tiny(false), 3, 2);
  EXPECT_EQ(cost.agent_calls, 1);
  EXPECT_EQ(cost.tokens_in, 3);
  EXPECT_EQ(cost.tokens_out, 2);
  EXPECT_EQ(cost.seconds, 0);
  EXPECT_GT(seq2seq_call_flops(tiny(false), 3, 3), cost.flops);
  EXPECT_THAT([] { seq2seq_call_flops(tiny(false), -1, 2); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("token counts must be >= 0")));
}

TEST(CallCost, SumsMeansAndMeasures) {
  ComputeCost a{1, 3, 2, 100, 0.5};
  const ComputeCost b{2, 5, 4, 300, 1.5};
  const auto sum = a + b;
  EXPECT_EQ(sum.agent_calls, 3);
  EXPECT_EQ(sum.flops, 400);
  a += b;
  const auto mean = a.per_example(2);
  EXPECT_EQ(mean.agent_calls, 1.5);
  EXPECT_EQ(mean.tokens_in, 4);
  EXPECT_EQ(mean.seconds, 1);
  EXPECT_EQ(mean.measure("tokens"), 4 + 3);
  EXPECT_EQ(mean.measure("flops"), 200);
  EXPECT_EQ(to_json(mean)["tokens_out"], 3);
  EXPECT_THAT(
      [&] { mean.measure("watts"); },
      ::testing::ThrowsMessage<Error>(::testing::HasSubstr("unknown cost measure 'watts'")));
  EXPECT_THROW(a.per_example(0), Error);
}

}  // namespace
}  // namespace chorus::collab
