// The ISA detection agrees with the compiler's CPU model and the override is validated.
#include <gtest/gtest.h>

#include "common/error.h"
#include "kernels/cpu/cpu_isa.h"

namespace chorus::kernels {
namespace {

TEST(CpuIsa, DetectionAgreesWithCpuFeatures) {
  __builtin_cpu_init();
  const CpuIsa isa = detect_cpu_isa();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const CpuIsa expected = avx512 ? CpuIsa::kAvx512 : avx2 ? CpuIsa::kAvx2 : CpuIsa::kGeneric;
  EXPECT_EQ(isa, expected) << cpu_isa_name(isa);
  // The active ISA never exceeds the hardware's.
  EXPECT_LE(static_cast<int>(active_cpu_isa()), static_cast<int>(isa));
}

TEST(CpuIsa, ParsesNamesAndRejectsUnknownOnes) {
  EXPECT_EQ(parse_cpu_isa("AVX512", "test"), CpuIsa::kAvx512);
  EXPECT_EQ(parse_cpu_isa("avx-512", "test"), CpuIsa::kAvx512);
  EXPECT_EQ(parse_cpu_isa("avx2", "test"), CpuIsa::kAvx2);
  EXPECT_EQ(parse_cpu_isa("Generic", "test"), CpuIsa::kGeneric);
  try {
    parse_cpu_isa("sse9", "CHORUS_CPU_ISA");
    FAIL() << "expected an error";
  } catch (const chorus::Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("CHORUS_CPU_ISA"), std::string::npos) << message;
    EXPECT_NE(message.find("sse9"), std::string::npos) << message;
  }
}

TEST(CpuIsa, NamesAreHumanReadable) {
  EXPECT_STREQ(cpu_isa_name(CpuIsa::kAvx512), "AVX-512");
  EXPECT_STREQ(cpu_isa_name(CpuIsa::kAvx2), "AVX2");
  EXPECT_STREQ(cpu_isa_name(CpuIsa::kGeneric), "generic");
}

}  // namespace
}  // namespace chorus::kernels
