#include "kernels/cuda/device_query.h"

#include <cuda_runtime.h>

namespace chorus::kernels::cuda {

DeviceQuery query_devices() {
  DeviceQuery query;
  cudaRuntimeGetVersion(&query.runtime_version);
  if (cudaDriverGetVersion(&query.driver_version) != cudaSuccess) query.driver_version = 0;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    query.unavailable_reason = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return query;
  }
  if (count == 0) {
    query.unavailable_reason = "the CUDA runtime reports zero devices";
    return query;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    DeviceInfo info;
    info.index = i;
    info.name = prop.name;
    info.major = prop.major;
    info.minor = prop.minor;
    info.total_memory_bytes = prop.totalGlobalMem;
    info.multiprocessors = prop.multiProcessorCount;
    query.devices.push_back(info);
  }
  return query;
}

}  // namespace chorus::kernels::cuda
