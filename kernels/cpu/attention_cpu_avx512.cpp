// The tiled attention kernels, AVX-512 (F, BW, VL, DQ) build; compiled with that ISA's flags
// (kernels/CMakeLists.txt).
#include "kernels/cpu/vec_avx512.h"

#include "kernels/cpu/attention_cpu_kernel.h"

namespace chorus::kernels::cpu {

const IsaKernels& avx512_kernels() {
  static const IsaKernels kernels{&pack_kv<VecAvx512>, &forward_block<VecAvx512>,
                                  &forward_rows<VecAvx512>,
                                  &backward_head<VecAvx512>};
  return kernels;
}

}  // namespace chorus::kernels::cpu
