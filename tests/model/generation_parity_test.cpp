// Greedy, beam search, sampling and beam sampling, with and without repetition penalty and
// n-gram bans, against transformers' generate(): identical token sequences. Sampling matches
// too because the seeded CPU generator draws the same stream as the reference's
// torch.manual_seed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/generation/generate.h"
#include "model/seq2seq_model.h"
#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

using model::GenerationOptions;

struct GenerationCase {
  std::string model;
  std::string name;
};
void PrintTo(const GenerationCase& c, std::ostream* os) { *os << c.model << "/" << c.name; }

// The cases of make_reference.py's CASES, for every model.
std::vector<GenerationCase> all_cases() {
  std::vector<GenerationCase> cases;
  for (const auto& m : reference_model_names()) {
    for (const char* c : {"greedy", "greedy_min_new_no_repeat", "beam3", "beam4_full_lp2", "beam2_never_lp05",
                          "sample", "greedy_rep13", "greedy_no_repeat3", "beam3_rep13", "beam3_no_repeat2",
                          "beam4_no_repeat3_rep08", "beam_sample3"}) {
      cases.push_back({m, c});
    }
  }
  return cases;
}

class GenerationParity : public ::testing::TestWithParam<GenerationCase> {};

TEST_P(GenerationParity, SequencesMatchTheReference) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto& param = GetParam();
  const auto ref = load_reference_model(fixtures, param.model);
  const nlohmann::json* spec = nullptr;
  for (const auto& c : ref.cases) {
    if (c.at("name") == param.name) spec = &c;
  }
  ASSERT_NE(spec, nullptr) << "cases.json has no case " << param.name;
  const auto model = model::load_seq2seq_model(ref.folder);
  // The model's own defaults (generation_config.json: forced BOS/EOS, ...) under the case's options.
  auto options = model::load_generation_defaults(ref.folder, model->config());
  model::apply_generation_fields(spec->at("options"), "cases.json", options);
  options.seed = spec->value("seed", 0);
  options.output_hidden_states = spec->value("hidden_states", false);

  const auto result = model::generate(*model, ref.at("input_ids"), ref.at("generation_attention_mask"), options);
  const auto& expected = ref.at(param.name + ".sequences");
  ASSERT_EQ(result.sequences.sizes(), expected.sizes())
      << "got\n" << result.sequences << "\nreference\n" << expected;
  EXPECT_TRUE(torch::equal(result.sequences, expected)) << "got\n" << result.sequences << "\nreference\n" << expected;
  if (ref.tensors.contains(param.name + ".sequence_scores")) {
    EXPECT_TRUE(all_close(result.sequence_scores, ref.at(param.name + ".sequence_scores"), 1e-4, 1e-5))
        << "sequence scores";
  }
  if (options.output_hidden_states) {
    ASSERT_EQ(result.decoder_hidden_states.size(), static_cast<size_t>(expected.size(1) - 1));
    for (size_t step = 0; step < result.decoder_hidden_states.size(); ++step) {
      EXPECT_TRUE(all_close(result.decoder_hidden_states[step].back(),
                            ref.at(param.name + ".hidden." + std::to_string(step)), 1e-4, 1e-4))
          << "last decoder hidden state of step " << step;
    }
  }
  // Per-token scores are log-probabilities of the chosen tokens: finite and <= 0 where generated.
  EXPECT_EQ(result.token_scores.size(1), result.sequences.size(1) - 1);
  EXPECT_TRUE(torch::isfinite(result.token_scores).all().item<bool>());
  EXPECT_TRUE((result.token_scores <= 1e-6).all().item<bool>());
}

// The processors' cases would prove nothing if the reference's output did not change with them.
TEST(GenerationParityFixtures, RepetitionPenaltyAndNgramBansChangeTheReferenceOutput) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
    return a.sizes() == b.sizes() && torch::equal(a, b);
  };
  int changed_by_penalty = 0;
  for (const auto& name : reference_model_names()) {
    const auto ref = load_reference_model(fixtures, name);
    EXPECT_FALSE(same(ref.at("greedy.sequences"), ref.at("greedy_no_repeat3.sequences"))) << name;
    EXPECT_FALSE(same(ref.at("beam3.sequences"), ref.at("beam3_rep13.sequences"))) << name;
    changed_by_penalty += same(ref.at("greedy.sequences"), ref.at("greedy_rep13.sequences")) ? 0 : 1;
  }
  EXPECT_GE(changed_by_penalty, 3) << "the repetition penalty changed few greedy outputs";
}

INSTANTIATE_TEST_SUITE_P(ReferenceCases, GenerationParity, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.model + "_" + info.param.name; });

}  // namespace
}  // namespace chorus::testing
