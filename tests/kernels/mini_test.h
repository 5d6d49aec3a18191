// A minimal test runner for the CUDA kernel tests, so they build where GoogleTest is not
// installed (a GPU machine with only LibTorch, nvcc and CMake; see scripts/gpu_check.sh).
//
//   MINI_TEST(Suite, Name) { MINI_EXPECT(cond) << "message"; MINI_ASSERT(cond) << "..."; }
//   MINI_SKIP("reason");  // from inside a test: reported as skipped
//
// The binary takes --filter=SUBSTRING (tests whose "Suite.Name" contains it) and --list. Exit
// code: 0 when everything run passed, 1 on a failure, 77 when every selected test skipped
// (ctest's SKIP_RETURN_CODE).
#pragma once

#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace chorus::mini_test {

struct TestInfo {
  std::string name;
  std::function<void()> body;
};

std::vector<TestInfo>& registry();

struct Registrar {
  Registrar(const char* name, void (*body)()) { registry().push_back({name, body}); }
};

// Counts a failure of the running test and prints the message when destroyed.
class Failure {
 public:
  Failure(const char* file, int line, const char* condition);
  ~Failure();
  template <typename T>
  Failure& operator<<(const T& value) {
    message_ << value;
    return *this;
  }

 private:
  std::ostringstream message_;
};

// Lets MINI_ASSERT return from the test function after streaming its message.
struct ReturnHelper {
  void operator=(const Failure&) const {}
};

struct SkipSignal {
  std::string reason;
};

}  // namespace chorus::mini_test

#define MINI_TEST(suite, name)                                                          \
  static void mini_test_##suite##_##name();                                             \
  static const ::chorus::mini_test::Registrar mini_registrar_##suite##_##name(         \
      #suite "." #name, &mini_test_##suite##_##name);                                   \
  static void mini_test_##suite##_##name()

#define MINI_EXPECT(cond) \
  if (cond) {             \
  } else                  \
    ::chorus::mini_test::Failure(__FILE__, __LINE__, #cond)

#define MINI_ASSERT(cond)                          \
  if (cond) {                                      \
  } else                                           \
    return ::chorus::mini_test::ReturnHelper() =   \
               ::chorus::mini_test::Failure(__FILE__, __LINE__, #cond)

#define MINI_SKIP(reason) throw ::chorus::mini_test::SkipSignal{reason}
