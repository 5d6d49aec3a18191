// Run-time detection of the CPU's vector instruction set, chosen once per process.
#pragma once

#include <string>

namespace chorus::kernels {

// Vector ISAs the CPU kernels have code paths for, weakest first.
enum class CpuIsa { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// What the hardware and OS support (AVX2 needs AVX2+FMA; AVX-512 needs F, BW, VL, DQ).
CpuIsa detect_cpu_isa();

// The ISA kernels should use: detect_cpu_isa(), lowered by the environment
// variable CHORUS_CPU_ISA=generic|avx2|avx512 when set (for testing every path
// on one machine). Asking for more than the CPU has is an error. Read once and cached.
CpuIsa active_cpu_isa();

// Parses "generic" / "avx2" / "avx512" (case-insensitive); throws chorus::Error naming `origin`.
CpuIsa parse_cpu_isa(const std::string& name, const std::string& origin);

// "generic", "AVX2", "AVX-512".
const char* cpu_isa_name(CpuIsa isa);

// Whether the CPU has native bf16 dot products (AVX512_BF16).
bool cpu_has_avx512_bf16();

}  // namespace chorus::kernels
