// Seq2seq model pieces on their own: T5's relative buckets, config checks, loading errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/error.h"
#include "model/io/hf_folder.h"
#include "model/io/safetensors.h"
#include "model/seq2seq_layers.h"
#include "model/seq2seq_model.h"
#include "model/t5/t5_relative_position.h"
#include "tests/foundation/test_paths.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

// Buckets the reference (transformers' T5Attention._relative_position_bucket) gives
// for these relative positions: standard T5, and short tables where most
// distances fall in the logarithmic or the last bucket.
const std::vector<int64_t> kRelativePositions = {-300, -128, -127, -40, -20, -9, -8, -7, -5, -3, -2, -1, 0,
                                                 1,    2,    3,    5,   7,   8,  9,  20, 40, 127, 128, 300};
struct BucketCase {
  bool bidirectional;
  int64_t buckets, max_distance;
  std::vector<int64_t> expected;
};

class RelativeBuckets : public ::testing::TestWithParam<BucketCase> {};

TEST_P(RelativeBuckets, MatchTheReference) {
  const auto& c = GetParam();
  auto relative = torch::tensor(kRelativePositions, torch::kInt64);
  auto buckets = model::relative_position_bucket(relative, c.bidirectional, c.buckets, c.max_distance);
  EXPECT_TRUE(torch::equal(buckets, torch::tensor(c.expected, torch::kInt64))) << buckets;
}

INSTANTIATE_TEST_SUITE_P(
    Configs, RelativeBuckets,
    ::testing::Values(
        BucketCase{true, 32, 128, {15, 15, 15, 12, 10, 8, 8, 7, 5, 3, 2, 1, 0, 17, 18, 19, 21, 23, 24, 24, 26, 28, 31, 31, 31}},
        BucketCase{false, 32, 128, {31, 31, 31, 23, 17, 9, 8, 7, 5, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        BucketCase{true, 6, 5, {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 0, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}},
        BucketCase{false, 6, 5, {5, 5, 5, 5, 5, 5, 5, 5, 5, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        BucketCase{true, 8, 20, {3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 1, 0, 5, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}},
        BucketCase{false, 4, 3, {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}));

TEST(RelativeBias, DecoderStepBiasIsTheLastRowsOfTheFullBias) {
  auto table = torch::randn({8, 3});
  auto full = model::relative_position_bias(table, 0, 6, 6, false, 20);
  auto step = model::relative_position_bias(table, 5, 1, 6, false, 20);
  EXPECT_TRUE(torch::equal(full.narrow(2, 5, 1), step));
  EXPECT_EQ(full.sizes(), (std::vector<int64_t>{1, 3, 6, 6}));
}

nlohmann::json t5_config() {
  return {{"model_type", "t5"}, {"vocab_size", 10}, {"d_model", 8}, {"d_kv", 3}, {"d_ff", 16},
          {"num_layers", 1},    {"num_heads", 2},   {"feed_forward_proj", "gated-gelu"}};
}

TEST(Seq2SeqConfig, ReadsT5AndAppliesTheGatedGeluRule) {
  const auto c = model::parse_seq2seq_config(t5_config(), "config.json");
  EXPECT_EQ(c.family, model::ModelFamily::t5);
  EXPECT_TRUE(c.gated_ffn);
  EXPECT_EQ(c.activation, "gelu_new");
  EXPECT_EQ(c.decoder_layers, 1);
  EXPECT_EQ(c.head_dim, 3);
  EXPECT_EQ(c.decoder_start_token_id, 0);
}

TEST(Seq2SeqConfig, ErrorsNameTheFileAndTheField) {
  auto missing = t5_config();
  missing.erase("d_kv");
  try {
    model::parse_seq2seq_config(missing, "some/config.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("some/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("d_kv"), std::string::npos) << e.what();
  }
  auto bad_type = t5_config();
  bad_type["model_type"] = "gpt2";
  EXPECT_THROW(model::parse_seq2seq_config(bad_type, "config.json"), Error);
  auto bad_act = t5_config();
  bad_act["feed_forward_proj"] = "gated-mystery";
  EXPECT_THROW(model::parse_seq2seq_config(bad_act, "config.json"), Error);
  auto bad_pad = t5_config();
  bad_pad["pad_token_id"] = 99;
  EXPECT_THROW(model::parse_seq2seq_config(bad_pad, "config.json"), Error);
}

TEST(Seq2SeqLoading, MissingAndUnexpectedTensorsAreListedTogether) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  TemporaryFolder tmp;
  const auto source = fixtures / "t5_v1_1";
  const auto config = model::load_hf_config(source);
  const auto weights = model::load_hf_weights(source);
  model::WeightMap edited(source.string());
  for (const auto& [name, tensor] : weights) {
    if (name != "decoder.final_layer_norm.weight") edited.insert(name, tensor);
  }
  edited.insert("encoder.block.0.layer.9.extra.weight", torch::zeros({2}));
  model::save_hf_folder(tmp.path(), config, edited);
  try {
    model::load_seq2seq_model(tmp.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("decoder.final_layer_norm.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("encoder.block.0.layer.9.extra.weight"), std::string::npos) << what;
  }
}

TEST(Seq2SeqLoading, WrongShapeNamesTheTensor) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  TemporaryFolder tmp;
  const auto source = fixtures / "bart";
  auto config = model::load_hf_config(source);
  config["encoder_ffn_dim"] = 41;
  model::save_hf_folder(tmp.path(), config, model::load_hf_weights(source));
  try {
    model::load_seq2seq_model(tmp.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc1"), std::string::npos) << e.what();
  }
}

TEST(Seq2SeqLoading, BadTokenIdsAreAnError) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto model = model::load_seq2seq_model(fixtures / "t5_v1_0");
  EXPECT_THROW(model->encode(torch::full({1, 3}, model->vocab_size(), torch::kInt64)), Error);
  EXPECT_THROW(model->encode(torch::zeros({1, 3}, torch::kInt32)), Error);
  EXPECT_THROW(model->encode(torch::zeros({1, 3}, torch::kInt64), torch::ones({1, 4}, torch::kInt64)), Error);
}

TEST(Seq2SeqLoading, SharedFrozenModelServesIndependentCaches) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  std::shared_ptr<const model::Seq2SeqModel> model = model::load_seq2seq_model(fixtures / "bart");
  const auto ids = torch::tensor({{0, 5, 9, 2}}, torch::kInt64);
  const auto encoder = model->encode(ids);
  auto first = model->start_decoding(encoder);
  auto second = model->start_decoding(encoder);
  const auto start = torch::tensor({{2}}, torch::kInt64);
  const auto a = model->decode_step(start, first).logits;
  model->decode_step(torch::tensor({{7}}, torch::kInt64), first);
  const auto b = model->decode_step(start, second).logits;
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(first.length(), 2);
  EXPECT_EQ(second.length(), 1);
}

// T5's self-attention q, k and v are views into one stacked tensor: a frozen model projects with
// one product, a trainable one with three (so autograd reaches each parameter). Both must
// compute the same, and training must still give each of q, k and v a gradient.
TEST(T5StackedProjections, FrozenAndTrainableModelsAgreeAndTrainEachProjection) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto ref = load_reference_model(fixtures, "t5_v1_1");
  const auto frozen = model::load_seq2seq_model(ref.folder);
  model::LoadOptions trainable_options;
  trainable_options.freeze = false;
  const auto trainable = model::load_seq2seq_model(ref.folder, trainable_options);
  const auto expected = frozen->forward(ref.at("input_ids"), ref.at("attention_mask"), ref.at("decoder_input_ids"));
  const auto out = trainable->forward(ref.at("input_ids"), ref.at("attention_mask"), ref.at("decoder_input_ids"));
  EXPECT_TRUE(all_close(out.logits.detach(), expected.logits, 1e-5, 1e-5));
  EXPECT_TRUE(all_close(expected.logits, ref.at("logits"), 1e-4));
  out.logits.pow(2).sum().backward();
  const auto params = trainable->named_parameters();
  for (const char* stack : {"encoder", "decoder"}) {
    for (const char* projection : {"q", "k", "v"}) {
      const std::string name = std::string(stack) + ".block.0.layer.0.SelfAttention." + projection + ".weight";
      const auto* param = params.find(name);
      ASSERT_NE(param, nullptr) << name;
      ASSERT_TRUE(param->grad().defined()) << name;
      EXPECT_GT(param->grad().abs().sum().item<double>(), 0.0) << name;
    }
  }
}

}  // namespace
}  // namespace chorus::testing

// The fused RMS norm (float32, nothing to record) against the op-by-op formula it replaces,
// which the same function runs when autograd records; rows both below and above the size that
// spreads them over threads.
TEST(RmsNorm, FusedLoopMatchesTheOpByOpFormula) {
  torch::manual_seed(3);
  for (const auto& shape : {std::vector<int64_t>{1, 1, 512}, std::vector<int64_t>{4, 300, 96}}) {
    const auto x = torch::randn(shape) * 3;
    const auto weight = torch::rand({shape.back()}) + 0.5;
    const double eps = 1e-6;
    const auto formula = weight * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
    const auto fused = chorus::model::rms_norm(x, weight, eps);
    EXPECT_LT((fused - formula).abs().max().item<float>(), 1e-5);
    const auto recorded = chorus::model::rms_norm(x.clone().requires_grad_(true), weight, eps);
    ASSERT_TRUE(recorded.requires_grad());
    EXPECT_LT((recorded.detach() - formula).abs().max().item<float>(), 1e-6);
    // Non-contiguous input takes the formula too.
    const auto strided = chorus::model::rms_norm(x.transpose(0, 1).contiguous().transpose(0, 1), weight, eps);
    EXPECT_LT((strided - formula).abs().max().item<float>(), 1e-5);
  }
}
