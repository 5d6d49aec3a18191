// yaml-cpp parses experiment-style documents and reports errors with positions.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace {

TEST(Yaml, ParsesNestedExperimentDocument) {
  const YAML::Node doc = YAML::Load(R"(
experiment: kv-arithmetic
seed: 17
agents:
  - name: augmenting
    layers: [1, 2]
  - name: anchor
    layers: []
train:
  lr: 3.0e-3
  schedule: {warmup: 100, kind: cosine}
  bf16: false
)");
  EXPECT_EQ(doc["experiment"].as<std::string>(), "kv-arithmetic");
  EXPECT_EQ(doc["seed"].as<int>(), 17);
  ASSERT_TRUE(doc["agents"].IsSequence());
  ASSERT_EQ(doc["agents"].size(), 2u);
  EXPECT_EQ(doc["agents"][0]["layers"][1].as<int>(), 2);
  EXPECT_EQ(doc["agents"][1]["layers"].size(), 0u);
  EXPECT_DOUBLE_EQ(doc["train"]["lr"].as<double>(), 3.0e-3);
  EXPECT_EQ(doc["train"]["schedule"]["kind"].as<std::string>(), "cosine");
  EXPECT_FALSE(doc["train"]["bf16"].as<bool>());
  EXPECT_FALSE(doc["missing"].IsDefined());
}

TEST(Yaml, MalformedDocumentReportsLineAndColumn) {
  try {
    YAML::Load("train:\n  lr: [1, 2\n  steps: 3\n");
    FAIL() << "expected a parse error";
  } catch (const YAML::ParserException& e) {
    EXPECT_GE(e.mark.line, 1) << e.what();
  }
}

TEST(Yaml, WrongTypeConversionThrows) {
  const YAML::Node doc = YAML::Load("steps: many");
  EXPECT_THROW(doc["steps"].as<int>(), YAML::BadConversion);
}

}  // namespace
