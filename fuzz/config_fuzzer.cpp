// libFuzzer target: the config dialect (common/config.h) on any bytes. The input is split at lines
// "%%%" into a main YAML document, an included file (inc.yaml, beside it) and overrides, one
// "a.b=value" per line. Both are written to a folder of their own; the main document is read with
// Config::load and with Config::parse, a few views are read in every way a consumer reads them, and
// the resolved config must read back. Only chorus::Error may come out of the config: anything else
// (another exception, a crash, a sanitizer report, a saved config that does not read back) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/error.h"

namespace {

namespace fs = std::filesystem;

// The folder the fuzzed files are written to, one per process (so that -jobs=N runs do not share it).
const fs::path& folder() {
  static const fs::path dir = [] {
    std::string tmpl = (fs::temp_directory_path() / "chorus-config-fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl);
  }();
  return dir;
}

void write(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// The parts of the input between lines "%%%": main document, include file, overrides.
std::vector<std::string_view> split(std::string_view input) {
  static constexpr std::string_view kSeparator = "\n%%%\n";
  std::vector<std::string_view> parts;
  while (parts.size() < 2) {
    const size_t at = input.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(input);
  while (parts.size() < 3) parts.emplace_back();
  return parts;
}

std::vector<std::string> overrides_of(std::string_view text) {
  std::vector<std::string> overrides;
  while (!text.empty() && overrides.size() < 4) {
    const size_t end = text.find('\n');
    overrides.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return overrides;
}

// Runs one read; a chorus::Error is the expected way to refuse.
template <class F>
void attempt(F&& read) {
  try {
    read();
  } catch (const chorus::Error&) {
  }
}

// Reads every key of `view` every way, and descends into maps and lists of maps.
void read_view(const chorus::ConfigView& view, int depth) {
  attempt([&] { view.check_keys({"include", "trainer", "steps", "name"}, "for the fuzzer"); });
  std::vector<std::string> keys;
  attempt([&] { keys = view.keys(); });
  for (const std::string& key : keys) {
    (void)view.has(key);
    (void)view.kind_of(key);
    (void)view.describe(key);
    (void)view.origin(key);
    (void)view.error(key, "fuzzed").what();
    attempt([&] { (void)view.get<bool>(key, false); });
    attempt([&] { (void)view.get<int>(key); });
    attempt([&] { (void)view.get_int(key, 0, -5, 5); });
    attempt([&] { (void)view.get_double(key, 0.5, 0.0, 1.0); });
    attempt([&] { (void)view.get<std::string>(key); });
    attempt([&] { (void)view.get<std::vector<int64_t>>(key); });
    attempt([&] { (void)view.get<std::vector<double>>(key, {}); });
    attempt([&] { (void)view.get<std::vector<std::string>>(key); });
    attempt([&] { (void)view.get_choice(key, {"bridge", "hidden"}, std::string("bridge")); });
    attempt([&] { (void)view.get_path(key, false); });
    attempt([&] { (void)view.get_path(key, true, folder()); });
    attempt([&] { (void)view.subtree_yaml(key); });
    attempt([&] {
      const size_t n = view.list_size(key);
      for (size_t i = 0; i < n && i < 4; ++i) {
        const std::string item = key + "[" + std::to_string(i) + "]";
        attempt([&] { (void)view.get<std::string>(item); });
        attempt([&] { (void)view.get<std::vector<int64_t>>(item); });
      }
    });
    if (depth < 4) {
      attempt([&] { read_view(view.child_or_empty(key), depth + 1); });
      attempt([&] {
        for (const auto& item : view.list_or_empty(key)) read_view(item, depth + 1);
      });
    }
  }
  // Keys that are absent, and key paths reaching through the document.
  attempt([&] { (void)view.get_int("absent.key[3]", 1); });
  attempt([&] { (void)view.child("trainer").get<std::string>("name"); });
}

void exercise(const chorus::Config& config) {
  read_view(config.root(), 0);
  (void)config.unused_keys();
  attempt([&] { config.check_all_keys_used(); });
  (void)config.origin("trainer.steps");
  (void)config.origin("a[0].b");
  // What a run folder saves must read back, to the same text.
  const std::string saved = config.to_yaml();
  try {
    const auto again = chorus::Config::parse(saved, "saved.yaml", folder());
    if (again.to_yaml() != saved) {
      std::fprintf(stderr, "saved config reads back differently:\n%s\n---\n%s\n", saved.c_str(),
                   again.to_yaml().c_str());
      std::abort();
    }
  } catch (const chorus::Error& e) {
    std::fprintf(stderr, "saved config does not read back: %s\n%s\n", e.what(), saved.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const auto parts = split(input);
  const fs::path main = folder() / "main.yaml";
  write(main, parts[0]);
  write(folder() / "inc.yaml", parts[1]);
  const auto overrides = overrides_of(parts[2]);
  attempt([&] { exercise(chorus::Config::load(main, overrides)); });
  attempt([&] { exercise(chorus::Config::parse(parts[0], "fuzz.yaml", folder(), overrides)); });
  return 0;
}
