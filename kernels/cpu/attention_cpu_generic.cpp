// The tiled attention kernels, portable build (any x86-64 or other CPU); compiled with that ISA's
// flags (kernels/CMakeLists.txt).
#include "kernels/cpu/vec_generic.h"

#include "kernels/cpu/attention_cpu_kernel.h"

namespace chorus::kernels::cpu {

const IsaKernels& generic_kernels() {
  static const IsaKernels kernels{&pack_kv<VecGeneric>, &forward_block<VecGeneric>,
                                  &forward_rows<VecGeneric>,
                                  &backward_head<VecGeneric>};
  return kernels;
}

}  // namespace chorus::kernels::cpu
