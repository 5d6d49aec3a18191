// T5, T5 v1.1 and BART against the transformers reference: logits, hidden states, cached decoding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/io/safetensors.h"
#include "model/seq2seq_model.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

using model::load_seq2seq_model;

// fp32 end to end; the reference computes in fp32 too, with other summation orders.
constexpr double kLogitsTolerance = 1e-4;
constexpr double kHiddenAbsTolerance = 1e-4;
constexpr double kHiddenRelTolerance = 1e-4;

class ModelParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelParity, LogitsAndHiddenStatesMatchTheReference) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto model = load_seq2seq_model(ref.folder);
  const auto out = model->forward(ref.at("input_ids"), ref.at("attention_mask"), ref.at("decoder_input_ids"),
                                  /*output_hidden_states=*/true);
  EXPECT_TRUE(all_close(out.logits, ref.at("logits"), kLogitsTolerance)) << "logits";
  const auto& config = model->config();
  ASSERT_EQ(out.encoder.hidden_states.size(), static_cast<size_t>(config.encoder_layers + 1));
  ASSERT_EQ(out.decoder_hidden_states.size(), static_cast<size_t>(config.decoder_layers + 1));
  // Padded encoder positions carry no meaning to compare beyond what the reference computes for them;
  // compare them all anyway (the masks make them depend only on the real tokens).
  for (size_t i = 0; i < out.encoder.hidden_states.size(); ++i) {
    EXPECT_TRUE(all_close(out.encoder.hidden_states[i], ref.at("encoder_hidden_states." + std::to_string(i)),
                          kHiddenAbsTolerance, kHiddenRelTolerance))
        << "encoder hidden state " << i;
  }
  for (size_t i = 0; i < out.decoder_hidden_states.size(); ++i) {
    EXPECT_TRUE(all_close(out.decoder_hidden_states[i], ref.at("decoder_hidden_states." + std::to_string(i)),
                          kHiddenAbsTolerance, kHiddenRelTolerance))
        << "decoder hidden state " << i;
  }
}

TEST_P(ModelParity, CachedDecodingEqualsFullRecomputation) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto model = load_seq2seq_model(ref.folder);
  const auto& decoder_ids = ref.at("decoder_input_ids");
  const auto encoder = model->encode(ref.at("input_ids"), ref.at("attention_mask"));
  auto full_cache = model->start_decoding(encoder);
  const auto full = model->decode_step(decoder_ids, full_cache, /*output_hidden_states=*/true);
  // One token at a time, then a prefix of 3 followed by single tokens (a multi-token step after a cached one).
  for (int64_t first_chunk : {1, 3}) {
    auto cache = model->start_decoding(encoder);
    std::vector<torch::Tensor> logits;
    for (int64_t t = 0; t < decoder_ids.size(1);) {
      const int64_t n = t == 0 ? first_chunk : 1;
      logits.push_back(model->decode_step(decoder_ids.narrow(1, t, n), cache).logits);
      t += n;
    }
    EXPECT_EQ(cache.length(), decoder_ids.size(1));
    EXPECT_TRUE(all_close(torch::cat(logits, 1), full.logits, 1e-5, 1e-5)) << "first chunk " << first_chunk;
  }
}

TEST_P(ModelParity, FrozenModelHasNoGradientsAndReferenceNames) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto model = load_seq2seq_model(ref.folder);
  EXPECT_TRUE(model->frozen());
  EXPECT_FALSE(model->is_training());
  const auto names = model->named_parameters();
  ASSERT_GT(names.size(), 0u);
  for (const auto& p : names) EXPECT_FALSE(p.value().requires_grad()) << p.key();
  const auto weights = model::load_safetensors(ref.folder / "model.safetensors");
  // Every stored tensor is a parameter under the same name with the same values.
  for (const auto& [name, tensor] : weights) {
    const auto* param = names.find(name);
    ASSERT_NE(param, nullptr) << name;
    EXPECT_TRUE(torch::equal(*param, tensor.to(torch::kFloat32))) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, ModelParity, ::testing::ValuesIn(reference_model_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace chorus::testing
