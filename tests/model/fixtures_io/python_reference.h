// Running a Python reference script from a test: finds $CHORUS_PYTHON, runs it, captures its
// output.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace chorus::testing {

// $CHORUS_PYTHON when it names an existing interpreter, else empty.
inline std::string reference_python() {
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0' || !std::filesystem::exists(python)) return {};
  return python;
}

// Runs `python script args...` (arguments are shell-quoted), returns the exit
// status and appends stdout+stderr to `output`.
inline int run_python(const std::string& python, const std::filesystem::path& script,
                      const std::vector<std::string>& args, std::string& output) {
  const auto quote = [](const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  std::string command = quote(python) + " " + quote(script.string());
  for (const std::string& arg : args) command += " " + quote(arg);
  command += " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> buffer{};
  std::size_t read = 0;
  while ((read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    output.append(buffer.data(), read);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The folder of this test's Python scripts (tests run from the source root).
inline std::filesystem::path fixture_scripts() {
  return std::filesystem::path("tests/model/fixtures_io");
}

}  // namespace chorus::testing
