// The tiled attention kernels, AVX2 + FMA build; compiled with that ISA's flags
// (kernels/CMakeLists.txt).
#include "kernels/cpu/vec_avx2.h"

#include "kernels/cpu/attention_cpu_kernel.h"

namespace chorus::kernels::cpu {

const IsaKernels& avx2_kernels() {
  static const IsaKernels kernels{&pack_kv<VecAvx2>, &forward_block<VecAvx2>,
                                  &forward_rows<VecAvx2>,
                                  &backward_head<VecAvx2>};
  return kernels;
}

}  // namespace chorus::kernels::cpu
