// The heap settings for tensor work (common/heap.h): what they do to glibc's malloc, and when they
// leave it alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/heap.h"

namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value == nullptr) {
      unsetenv(name);
    } else {
      setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      setenv(name_, old_.c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

#if defined(__GLIBC__)
TEST(Heap, EnvironmentSettingsAreLeftAlone) {
  {
    ScopedEnv off("CHORUS_SYSTEM_MALLOC", "1");
    EXPECT_NE(chorus::configure_heap_for_tensor_work().find("CHORUS_SYSTEM_MALLOC=1"), std::string::npos);
  }
  ScopedEnv no_switch("CHORUS_SYSTEM_MALLOC", nullptr);
  {
    ScopedEnv tunables("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000");
    EXPECT_NE(chorus::configure_heap_for_tensor_work().find("as the environment sets it"), std::string::npos);
  }
  {
    ScopedEnv threshold("MALLOC_MMAP_THRESHOLD_", "1000000");
    EXPECT_NE(chorus::configure_heap_for_tensor_work().find("as the environment sets it"), std::string::npos);
  }
}

// A block of 64 MiB (the logits of a step over 512 rows and a 32k vocabulary) comes from the heap
// once the thresholds are raised: glibc's count of mmapped bytes does not grow by it. Without the
// settings glibc maps it, whatever it saw before: its dynamic threshold never rises above 32 MiB.
TEST(Heap, LargeBlocksComeFromTheHeapAfterConfiguration) {
  ScopedEnv no_switch("CHORUS_SYSTEM_MALLOC", nullptr);
  ScopedEnv no_tunables("GLIBC_TUNABLES", nullptr);
  ScopedEnv no_mmap("MALLOC_MMAP_THRESHOLD_", nullptr);
  ScopedEnv no_trim("MALLOC_TRIM_THRESHOLD_", nullptr);
  EXPECT_NE(chorus::configure_heap_for_tensor_work().find("mmap threshold 256 MiB"), std::string::npos);
  constexpr size_t kBlock = size_t{64} << 20;
  const size_t mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(kBlock);
  ASSERT_NE(block, nullptr);
  static_cast<volatile char*>(block)[kBlock - 1] = 1;
  EXPECT_LT(mallinfo2().hblkhd, mapped_before + kBlock);
  std::free(block);
}
#endif

}  // namespace
