// `chorus generate` end to end: the real binary on the reference T5 folders (with a word-level
// tokenizer) and on a checkpoint `chorus convert` made of one, against the text of the reference ids.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/model/models_reference_fixtures.h"

namespace chorus::testing {
namespace {

// Single-quoted for the shell.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command's standard output and exit status.
std::pair<std::string, int> run(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return {"", -1};
  std::string out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0;) out.append(buffer, n);
  const int status = ::pclose(pipe.release());
  return {out, status};
}

// Runs every case of `cases_file` with `chorus generate --model model` and compares the text.
void expect_reference_text(const std::filesystem::path& cases_file, const std::filesystem::path& model) {
  std::ifstream in(cases_file);
  const auto spec = nlohmann::json::parse(in);
  for (const auto& c : spec.at("cases")) {
    std::string command = quoted(CHORUS_BINARY) + " generate --model " + quoted(model.string()) + " --input " +
                          quoted(spec.at("input").get<std::string>());
    for (const auto& flag : c.at("flags")) command += " " + quoted(flag.get<std::string>());
    const auto [out, status] = run(command);
    SCOPED_TRACE(c.at("name").get<std::string>() + ": " + command);
    ASSERT_EQ(status, 0) << out;
    EXPECT_EQ(out, c.at("text").get<std::string>() + "\n");
  }
}

TEST(GenerateCommand, PrintsTheTextOfTheReferenceIds) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  int folders = 0;
  for (const auto& name : reference_model_names()) {
    const auto folder = fixtures / name;
    if (!std::filesystem::exists(folder / "cli_cases.json")) continue;
    ++folders;
    SCOPED_TRACE(name);
    expect_reference_text(folder / "cli_cases.json", folder);
  }
  EXPECT_GE(folders, 3) << "the reference fixtures hold no cli_cases.json";
}

// `chorus convert` puts the tokenizer and generation defaults into the checkpoint, so the
// checkpoint alone generates the reference's text.
TEST(GenerateCommand, AConvertedCheckpointGeneratesTheSameText) {
  CHORUS_REQUIRE_REFERENCE_FIXTURES(fixtures);
  const auto folder = fixtures / "t5_v1_1";
  const auto checkpoint =
      std::filesystem::temp_directory_path() / ("chorus-generate-cli-" + std::to_string(::getpid()) + ".h5");
  const auto [out, status] =
      run(quoted(CHORUS_BINARY) + " convert " + quoted(folder.string()) + " " + quoted(checkpoint.string()));
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("carried files: generation_config.json, word_vocab.txt"), std::string::npos) << out;
  expect_reference_text(folder / "cli_cases.json", checkpoint);
  std::filesystem::remove(checkpoint);
}

}  // namespace
}  // namespace chorus::testing
