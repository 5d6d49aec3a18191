// The CUDA attention kernels behind the core's params structs (kernels/attention.h): a ladder of
// versions, a dispatcher that picks one, and the forward/backward entry points.
//
// Every pointer in AttentionParams, AttentionForwardOutputs and AttentionBackwardArgs is a device
// pointer (masks and bias included); strides count elements as on the CPU, and the mask
// semantics are the CPU's: causal aligned bottom-right, key lengths, group visibility, an additive
// fp32 bias broadcast through its strides; a fully masked row gives a zero output, a log-sum-exp
// of -inf and zero gradients. AttentionParams::parallel_for is ignored. Work is queued on
// `stream`; nothing here synchronises the device.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"

namespace chorus::kernels::cuda {

// The ladder, slowest first (see docs/KERNELS_CUDA.md).
enum class AttentionVersion {
  kNaive,   // v1: one thread per output element, fp32 accumulation, any dtype and size
  kTiled,   // v2: shared-memory tiles, fp32 compute, online softmax
  kFlash,   // v3: tensor cores (mma.sync m16n8k16), bf16/fp16 with D = Dv in {64, 128}
  kCublas,  // baseline: unfused cuBLAS GEMMs around masked softmax kernels (forward, backward)
};

const char* attention_version_name(AttentionVersion version);
// Parses "naive", "tiled", "flash" or "cublas"; false for anything else.
bool parse_attention_version(const char* text, AttentionVersion* version);

// What the dispatcher needs to know about the device.
struct CudaDeviceTraits {
  int major = 0, minor = 0;                 // compute capability
  size_t max_shared_bytes_per_block = 0;    // opt-in maximum (cudaDevAttrMaxSharedMemoryPerBlockOptin)
};
// The current device's traits; throws chorus::Error when the runtime reports an error.
CudaDeviceTraits current_device_traits();

// The fastest version expected to be correct for this case: flash for bf16/fp16 with D = Dv in
// {64, 128} on sm_80 or newer, else tiled when its tiles fit in shared memory, else naive.
AttentionVersion choose_version(const CudaDeviceTraits& device, ElementType dtype, int64_t d,
                                int64_t dv, bool needs_backward);
// choose_version, unless CHORUS_ATTENTION_CUDA_VERSION names a version (naive|tiled|flash|
// cublas); an unknown name throws chorus::Error.
AttentionVersion requested_version(const CudaDeviceTraits& device, ElementType dtype, int64_t d,
                                   int64_t dv, bool needs_backward);
// The version that actually runs when `requested` is asked for: a version that cannot take the
// case steps down the ladder (flash -> tiled -> naive; cublas -> the dispatcher's choice when a
// tensor lacks a unit last stride or a size is 0).
AttentionVersion effective_forward_version(const CudaDeviceTraits& device,
                                           const AttentionParams& params,
                                           AttentionVersion requested);
AttentionVersion effective_backward_version(const CudaDeviceTraits& device,
                                            const AttentionParams& params,
                                            AttentionVersion requested);

// Device scratch memory the call needs (bytes, 256-byte aligned pointer expected); 0 when none.
size_t attention_forward_cuda_workspace_bytes(const AttentionParams& params,
                                              AttentionVersion version);
size_t attention_backward_cuda_workspace_bytes(const AttentionParams& params,
                                               AttentionVersion version);

// out.probabilities, when set, is filled from the log-sum-exp by a separate elementwise kernel
// (whatever the version). Throws chorus::Error for unsupported arguments (an element type the
// kernels do not know, a missing workspace) and for CUDA launch errors.
void attention_forward_cuda(const AttentionParams& params, const AttentionForwardOutputs& out,
                            AttentionVersion version, cudaStream_t stream, void* workspace,
                            size_t workspace_bytes);
// Recomputes the probabilities from the log-sum-exp with D_i = rowsum(dO * O) precomputed
// (flash style). args.dbias, when set, must be zero on entry (as on the CPU).
void attention_backward_cuda(const AttentionParams& params, const AttentionBackwardArgs& args,
                             AttentionVersion version, cudaStream_t stream, void* workspace,
                             size_t workspace_bytes);

}  // namespace chorus::kernels::cuda
