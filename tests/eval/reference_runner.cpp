#include "tests/eval/reference_runner.h"

#include <zlib.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace chorus::eval::testing {

std::optional<std::string> reference_python() {
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0') return std::nullopt;
  return std::string(python);
}

nlohmann::json run_reference_scores(const std::string& python, const nlohmann::json& input) {
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  const auto path = std::filesystem::temp_directory_path() / ("chorus_eval_parity_" + std::to_string(stamp) + ".json");
  {
    std::ofstream out(path);
    out << input.dump();
  }
  const std::string command = "'" + python + "' tests/eval/reference_scores.py '" + path.string() + "' 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::array<char, 65536> buffer;
  std::size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  std::filesystem::remove(path);
  if (status != 0) throw std::runtime_error("reference scorer failed: " + command + "\n" + output);
  // Warnings (e.g. sacrebleu's logger) may precede the JSON object.
  const auto start = output.find("{\"sacrebleu_version\"");
  if (start == std::string::npos) throw std::runtime_error("no JSON in reference output:\n" + output);
  return nlohmann::json::parse(output.substr(start));
}

std::vector<std::string> read_gzip_lines(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path);
  std::string content;
  std::array<char, 65536> buffer;
  int n = 0;
  while ((n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) content.append(buffer.data(), n);
  gzclose(file);
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

}  // namespace chorus::eval::testing
