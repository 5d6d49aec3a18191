// Scoring throughput: Chorus's BLEU + chrF + ROUGE-1/2/L against sacrebleu +
// rouge-score on the same 100k segment pairs, in the same run.
//
// Data: Multi30k train English captions (found through the data root) as
// references, deterministic word drops/swaps/case changes as hypotheses,
// written to temporary files that both sides read. The Python side runs
// benchmarks/scoring_reference.py under $CHORUS_PYTHON (run from the project
// root); its scoring time excludes interpreter start-up and imports. Both
// sides are single-threaded. The ratio counter is Python seconds / Chorus
// seconds, reported by the Chorus benchmark.
#include <benchmark/benchmark.h>
#include <zlib.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "common/data_paths.h"
#include "eval/scoring/corpus_scoring.h"
#include "eval/scoring/segment_file.h"

namespace {

constexpr std::size_t kSegments = 100000;

struct Corpus {
  std::filesystem::path hyps;
  std::filesystem::path refs;
  std::string error;  // non-empty: unavailable
};

std::vector<std::string> read_gzip_lines(const std::string& path) {
  std::vector<std::string> lines;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return lines;
  std::string content;
  std::array<char, 65536> buffer;
  int n = 0;
  while ((n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) content.append(buffer.data(), n);
  gzclose(file);
  std::istringstream in(content);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A hypothesis that differs from its reference the way system outputs do.
std::string damage(const std::string& ref, std::mt19937_64& rng) {
  std::vector<std::string> words;
  std::istringstream in(ref);
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() > 3 && rng() % 2 == 0) words.erase(words.begin() + static_cast<long>(rng() % words.size()));
  if (words.size() > 2 && rng() % 2 == 0) std::swap(words[rng() % (words.size() - 1)], words.back());
  if (!words.empty() && rng() % 3 == 0) words[0][0] = static_cast<char>(std::tolower(static_cast<unsigned char>(words[0][0])));
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out.empty() ? "empty" : out;
}

const Corpus& corpus() {
  static const Corpus c = [] {
    Corpus out;
    const auto path = chorus::find_data_file("multi30k/train.en.gz");
    if (!path) {
      out.error = "multi30k/train.en.gz not found under the data root (set CHORUS_DATA)";
      return out;
    }
    const auto lines = read_gzip_lines(path->string());
    if (lines.empty()) {
      out.error = "cannot read " + path->string();
      return out;
    }
    const auto dir = std::filesystem::temp_directory_path();
    out.hyps = dir / "chorus_scoring_bench_hyps.txt";
    out.refs = dir / "chorus_scoring_bench_refs.txt";
    std::ofstream hyps(out.hyps), refs(out.refs);
    std::mt19937_64 rng(2024);
    for (std::size_t i = 0; i < kSegments; ++i) {
      const std::string& ref = lines[i % lines.size()];
      refs << ref << "\n";
      hyps << damage(ref, rng) << "\n";
    }
    return out;
  }();
  return c;
}

double python_seconds = 0;  // set by BM_SacrebleuRougeScore, read by BM_ChorusScore

void BM_SacrebleuRougeScore(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.error.empty()) return state.SkipWithError(c.error.c_str());
  const char* python = std::getenv("CHORUS_PYTHON");
  if (python == nullptr || *python == '\0') return state.SkipWithError("CHORUS_PYTHON is not set: no sacrebleu to time");
  const std::string command = std::string("'") + python + "' benchmarks/scoring_reference.py '" + c.hyps.string() +
                              "' '" + c.refs.string() + "'";
  for (auto _ : state) {
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    std::array<char, 4096> buffer;
    std::size_t n = 0;
    while (pipe != nullptr && (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
    if (pipe == nullptr || pclose(pipe) != 0 || output.empty()) {
      return state.SkipWithError(("reference scorer failed (run from the project root): " + command).c_str());
    }
    const auto result = nlohmann::json::parse(output);
    python_seconds = result["seconds"].get<double>();
    state.SetIterationTime(python_seconds);
    for (const char* key : {"bleu", "chrf", "rouge1", "rouge2", "rougeL"}) state.counters[key] = result[key].get<double>();
  }
  state.counters["segments"] = kSegments;
}
BENCHMARK(BM_SacrebleuRougeScore)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_ChorusScore(benchmark::State& state) {
  const Corpus& c = corpus();
  if (!c.error.empty()) return state.SkipWithError(c.error.c_str());
  chorus::eval::CorpusScoringOptions options;
  options.metrics = {"bleu", "chrf", "rouge1", "rouge2", "rougeL"};
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const auto hyps = chorus::eval::read_segment_file(c.hyps.string());
    const std::vector<std::vector<std::string>> refs = {chorus::eval::read_segment_file(c.refs.string())};
    const auto results = chorus::eval::score_corpus(hyps, refs, options);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    for (const auto& r : results) state.counters[r.key] = r.score;
  }
  state.counters["segments"] = kSegments;
  if (python_seconds > 0) state.counters["speedup_vs_python"] = python_seconds / seconds;
}
BENCHMARK(BM_ChorusScore)->Iterations(2)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
