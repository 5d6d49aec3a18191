// What the CUDA runtime sees: devices, their names and compute capabilities.
#pragma once

#include <string>
#include <vector>

namespace chorus::kernels::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0;  // compute capability
  int minor = 0;
  std::size_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

struct DeviceQuery {
  std::vector<DeviceInfo> devices;
  // Why no device is visible (e.g. "no CUDA-capable device is detected"), empty otherwise.
  std::string unavailable_reason;
  int runtime_version = 0;  // e.g. 13000 for CUDA 13.0
  int driver_version = 0;   // 0 when no driver is installed
};

// Never throws: a machine without a GPU or driver yields an empty device list
// and the runtime's reason.
DeviceQuery query_devices();

}  // namespace chorus::kernels::cuda
