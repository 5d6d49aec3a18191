// The runner of tests/kernels/mini_test.h: selection, reporting and the exit code.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "tests/kernels/mini_test.h"

namespace chorus::mini_test {
namespace {
int g_failures_in_test = 0;
}  // namespace

std::vector<TestInfo>& registry() {
  static std::vector<TestInfo> tests;
  return tests;
}

Failure::Failure(const char* file, int line, const char* condition) {
  message_ << file << ":" << line << ": failed: " << condition << "\n  ";
}

Failure::~Failure() {
  ++g_failures_in_test;
  std::fprintf(stderr, "%s\n", message_.str().c_str());
}

int run(int argc, char** argv) {
  std::string filter;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--filter=", 9) == 0) {
      filter = argv[i] + 9;
    } else if (std::strcmp(argv[i], "--list") == 0) {
      list = true;
    } else {
      std::fprintf(stderr, "usage: %s [--filter=SUBSTRING] [--list]\n", argv[0]);
      return 2;
    }
  }
  int ran = 0, passed = 0, skipped = 0, failed = 0;
  for (const TestInfo& test : registry()) {
    if (!filter.empty() && test.name.find(filter) == std::string::npos) continue;
    if (list) {
      std::printf("%s\n", test.name.c_str());
      continue;
    }
    ++ran;
    std::printf("[ RUN      ] %s\n", test.name.c_str());
    std::fflush(stdout);
    g_failures_in_test = 0;
    bool skip = false;
    try {
      test.body();
    } catch (const SkipSignal& s) {
      skip = true;
      std::printf("[  SKIPPED ] %s: %s\n", test.name.c_str(), s.reason.c_str());
    } catch (const std::exception& e) {
      ++g_failures_in_test;
      std::fprintf(stderr, "unexpected exception: %s\n", e.what());
    }
    if (skip && g_failures_in_test == 0) {
      ++skipped;
    } else if (g_failures_in_test == 0) {
      ++passed;
      std::printf("[       OK ] %s\n", test.name.c_str());
    } else {
      ++failed;
      std::printf("[  FAILED  ] %s (%d failures)\n", test.name.c_str(), g_failures_in_test);
    }
    std::fflush(stdout);
  }
  if (list) return 0;
  std::printf("%d tests: %d passed, %d skipped, %d failed\n", ran, passed, skipped, failed);
  if (ran == 0) {
    std::fprintf(stderr, "no test matches the filter '%s'\n", filter.c_str());
    return 1;
  }
  if (failed > 0) return 1;
  return skipped == ran ? 77 : 0;
}

}  // namespace chorus::mini_test

int main(int argc, char** argv) { return chorus::mini_test::run(argc, argv); }
