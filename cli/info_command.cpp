// `chorus info`: what this build is and what the machine offers it.
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chorus/config.h"
#include "cli/commands.h"
#include "kernels/cpu/cpu_isa.h"
#if CHORUS_WITH_CUDA
#include "kernels/cuda/device_query.h"
#endif

namespace chorus::cli {
namespace {

#if CHORUS_WITH_CUDA
std::string cuda_version_string(int version) {
  std::ostringstream out;
  out << version / 1000 << "." << (version % 1000) / 10;
  return out.str();
}
#endif

nlohmann::json collect_info() {
  nlohmann::json info;
  info["chorus_version"] = CHORUS_VERSION_STRING;
  info["libtorch_version"] = TORCH_VERSION;
  info["libtorch_cuda"] = torch::cuda::is_available();
  info["cuda_compiled"] = static_cast<bool>(CHORUS_WITH_CUDA);
  nlohmann::json gpus = nlohmann::json::array();
#if CHORUS_WITH_CUDA
  const auto query = kernels::cuda::query_devices();
  info["cuda_runtime"] = cuda_version_string(query.runtime_version);
  info["cuda_driver"] = query.driver_version > 0 ? cuda_version_string(query.driver_version) : "none";
  for (const auto& device : query.devices) {
    gpus.push_back({{"index", device.index},
                    {"name", device.name},
                    {"compute_capability", std::to_string(device.major) + "." + std::to_string(device.minor)},
                    {"memory_gib", static_cast<double>(device.total_memory_bytes) / (1ULL << 30)},
                    {"multiprocessors", device.multiprocessors}});
  }
  info["gpu_unavailable_reason"] = query.unavailable_reason;
#else
  // Without Chorus's CUDA kernels LibTorch can still see a GPU; report what it sees.
  for (int i = 0, n = static_cast<int>(torch::cuda::device_count()); i < n; ++i) {
    gpus.push_back({{"index", i}});
  }
  info["gpu_unavailable_reason"] = gpus.empty() ? "LibTorch sees no CUDA device" : "";
#endif
  info["gpus"] = gpus;
  const auto detected = kernels::detect_cpu_isa();
  info["cpu_isa"] = kernels::cpu_isa_name(kernels::active_cpu_isa());
  info["cpu_isa_detected"] = kernels::cpu_isa_name(detected);
  info["cpu_avx512_bf16"] = kernels::cpu_has_avx512_bf16();
  info["threads"] = at::get_num_threads();
  info["interop_threads"] = at::get_num_interop_threads();
  return info;
}

void print_text(const nlohmann::json& info) {
  auto row = [](const char* key, const std::string& value) {
    std::cout << "  " << key << std::string(16 - std::string(key).size(), ' ') << value << "\n";
  };
  std::cout << "Chorus " << info["chorus_version"].get<std::string>() << "\n";
  row("LibTorch", info["libtorch_version"].get<std::string>());
  std::string cuda = info["cuda_compiled"].get<bool>() ? "compiled in" : "not compiled in";
  if (info.contains("cuda_runtime")) {
    cuda += " (runtime " + info["cuda_runtime"].get<std::string>() + ", driver " +
            info["cuda_driver"].get<std::string>() + ")";
  }
  row("CUDA kernels", cuda);
  if (info["gpus"].empty()) {
    row("GPU", "none visible (" + info["gpu_unavailable_reason"].get<std::string>() + ")");
  } else {
    for (const auto& gpu : info["gpus"]) {
      std::ostringstream line;
      line << "#" << gpu["index"].get<int>();
      if (gpu.contains("name")) {
        line << " " << gpu["name"].get<std::string>() << ", sm_" << gpu["compute_capability"].get<std::string>()
             << ", " << gpu["multiprocessors"].get<int>() << " SMs, " << std::fixed
             << std::setprecision(1) << gpu["memory_gib"].get<double>() << " GiB";
      }
      row("GPU", line.str());
    }
  }
  std::string isa = info["cpu_isa"].get<std::string>();
  if (isa != info["cpu_isa_detected"].get<std::string>()) {
    isa += " (forced by CHORUS_CPU_ISA; CPU has " + info["cpu_isa_detected"].get<std::string>() + ")";
  }
  if (info["cpu_avx512_bf16"].get<bool>()) isa += ", with AVX512_BF16";
  row("CPU ISA", isa);
  row("Threads", std::to_string(info["threads"].get<int>()) + " intra-op, " +
                     std::to_string(info["interop_threads"].get<int>()) + " inter-op (LibTorch)");
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* command = app.add_subcommand("info", "Print the build and machine facts Chorus runs with");
  static bool as_json = false;
  command->add_flag("--json", as_json, "Print one JSON object instead of text");
  command->callback([] {
    const auto info = collect_info();
    if (as_json) {
      std::cout << info.dump(2) << "\n";
    } else {
      print_text(info);
    }
  });
}

}  // namespace chorus::cli
