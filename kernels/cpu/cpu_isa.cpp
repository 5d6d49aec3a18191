#include "kernels/cpu/cpu_isa.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/error.h"

namespace chorus::kernels {

CpuIsa detect_cpu_isa() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's cpu model also checks XCR0, so an OS that does not save the wide
  // registers reports the feature as absent.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return CpuIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return CpuIsa::kAvx2;
  }
#endif
  return CpuIsa::kGeneric;
}

bool cpu_has_avx512_bf16() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && __GNUC__ >= 11
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

CpuIsa parse_cpu_isa(const std::string& name, const std::string& origin) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "generic") return CpuIsa::kGeneric;
  if (lower == "avx2") return CpuIsa::kAvx2;
  if (lower == "avx512" || lower == "avx-512") return CpuIsa::kAvx512;
  throw Error(detail::concat(origin, ": unknown CPU ISA '", name,
                             "' (expected generic, avx2 or avx512)"));
}

CpuIsa active_cpu_isa() {
  static const CpuIsa isa = [] {
    const CpuIsa detected = detect_cpu_isa();
    const char* forced = std::getenv("CHORUS_CPU_ISA");
    if (forced == nullptr || *forced == '\0') return detected;
    const CpuIsa wanted = parse_cpu_isa(forced, "CHORUS_CPU_ISA");
    CHORUS_CHECK(static_cast<int>(wanted) <= static_cast<int>(detected), "CHORUS_CPU_ISA=", forced,
                 " asks for ", cpu_isa_name(wanted), " but this CPU supports at most ",
                 cpu_isa_name(detected));
    return wanted;
  }();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return "AVX-512";
    case CpuIsa::kAvx2:
      return "AVX2";
    case CpuIsa::kGeneric:
      break;
  }
  return "generic";
}

}  // namespace chorus::kernels
