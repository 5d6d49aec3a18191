// T5 v1.0, T5 v1.1 and BART saved with bf16 and fp16 storage: the stored values load bit for
// bit, and the fp32 computation on the upcast weights matches transformers' fp32 forward and
// generation on the same upcast weights.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/generation/generate.h"
#include "model/io/safetensors.h"
#include "model/seq2seq_model.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

constexpr double kLogitsTolerance = 1e-4;

// The bits of a tensor as integers of its width, for comparisons that tell -0 from 0 and compare
// NaN payloads.
torch::Tensor bits(const torch::Tensor& t) {
  const auto width = t.element_size() == 2 ? torch::kInt16 : torch::kInt32;
  return t.contiguous().view(width);
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

const std::string kStored = "stored.";
const std::string kUpcast = "upcast.";

class LowPrecisionStorage : public ::testing::TestWithParam<std::string> {};

TEST_P(LowPrecisionStorage, StoredTensorsLoadBitForBit) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto file = model::load_safetensors(ref.folder / "model.safetensors");
  const auto expected_dtype =
      GetParam().find("_bf16") != std::string::npos ? torch::kBFloat16 : torch::kFloat16;
  const auto model = model::load_seq2seq_model(ref.folder);
  const auto params = model->named_parameters();
  std::size_t checked = 0;
  for (const auto& [key, stored] : ref.tensors) {
    if (!starts_with(key, kStored)) continue;
    const std::string name = key.substr(kStored.size());
    SCOPED_TRACE(name);
    ++checked;
    // The reader: the same dtype and bits as the safetensors library reads.
    ASSERT_TRUE(file.contains(name));
    const auto& ours = file.at(name);
    EXPECT_EQ(stored.scalar_type(), expected_dtype);
    EXPECT_EQ(ours.scalar_type(), expected_dtype);
    ASSERT_EQ(ours.sizes(), stored.sizes());
    EXPECT_TRUE(torch::equal(bits(ours), bits(stored)));
    // The model: an fp32 parameter holding exactly the upcast value.
    const auto* param = params.find(name);
    ASSERT_NE(param, nullptr);
    EXPECT_EQ(param->scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(bits(*param), bits(ref.at(kUpcast + name))));
  }
  EXPECT_EQ(checked, file.size()) << "reference.safetensors holds every stored tensor";
  EXPECT_GT(checked, 10u);
}

TEST_P(LowPrecisionStorage, Fp32LogitsMatchTheReferenceOnUpcastWeights) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto model = model::load_seq2seq_model(ref.folder);
  const auto out = model->forward(ref.at("input_ids"), ref.at("attention_mask"),
                                  ref.at("decoder_input_ids"), /*output_hidden_states=*/true);
  EXPECT_TRUE(all_close(out.logits, ref.at("logits"), kLogitsTolerance)) << "logits";
  const auto last = std::to_string(out.decoder_hidden_states.size() - 1);
  EXPECT_TRUE(all_close(out.decoder_hidden_states.back(), ref.at("decoder_hidden_states." + last),
                        1e-4, 1e-4))
      << "last decoder hidden state";
}

TEST_P(LowPrecisionStorage, GreedyAndBeamSequencesMatchTheReference) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, GetParam());
  const auto model = model::load_seq2seq_model(ref.folder);
  ASSERT_GE(ref.cases.size(), 2u);
  for (const auto& spec : ref.cases) {
    const std::string name = spec.at("name").get<std::string>();
    SCOPED_TRACE(name);
    auto options = model::load_generation_defaults(ref.folder, model->config());
    model::apply_generation_fields(spec.at("options"), "cases.json", options);
    const auto result =
        model::generate(*model, ref.at("input_ids"), ref.at("generation_attention_mask"), options);
    const auto& expected = ref.at(name + ".sequences");
    ASSERT_EQ(result.sequences.sizes(), expected.sizes()) << "got\n"
                                                          << result.sequences << "\nreference\n"
                                                          << expected;
    EXPECT_TRUE(torch::equal(result.sequences, expected)) << "got\n"
                                                          << result.sequences << "\nreference\n"
                                                          << expected;
    if (ref.tensors.contains(name + ".sequence_scores")) {
      EXPECT_TRUE(all_close(result.sequence_scores, ref.at(name + ".sequence_scores"), 1e-4, 1e-5))
          << "sequence scores";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, LowPrecisionStorage,
                         ::testing::ValuesIn(low_precision_model_names()),
                         [](const auto& info) { return info.param; });

// The tests above would prove little if rounding the weights to 16 bits left the reference's
// logits where the fp32-stored model has them.
TEST(LowPrecisionStorageFixtures, RoundingTheWeightsChangesTheReferenceLogits) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  for (const auto& name : low_precision_model_names()) {
    const auto rounded = load_reference_model(fixtures, name);
    const auto full = load_reference_model(fixtures, name.substr(0, name.rfind('_')));
    const double change = (rounded.at("logits") - full.at("logits")).abs().max().item<double>();
    EXPECT_GT(change, 10 * kLogitsTolerance) << name;
  }
}

}  // namespace
}  // namespace chorus::testing
