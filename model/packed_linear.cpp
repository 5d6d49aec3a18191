// Products with MKL-packed weights (see packed_linear.h).
#include "model/packed_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <optional>

namespace chorus::model {
namespace {

using ReorderFn = at::Tensor(const at::Tensor&, int64_t);
using LinearFn = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            int64_t);

struct MklOps {
  std::optional<c10::TypedOperatorHandle<ReorderFn>> reorder;
  std::optional<c10::TypedOperatorHandle<LinearFn>> linear;
};

// The ops when this LibTorch registers them (builds with MKL).
const MklOps& mkl_ops() {
  static const MklOps ops = [] {
    MklOps o;
    auto& dispatcher = c10::Dispatcher::singleton();
    const auto reorder = dispatcher.findSchema({"mkl::_mkl_reorder_linear_weight", ""});
    const auto linear = dispatcher.findSchema({"mkl::_mkl_linear", ""});
    if (reorder.has_value() && linear.has_value() && reorder->hasKernelForDispatchKey(c10::DispatchKey::CPU) &&
        linear->hasKernelForDispatchKey(c10::DispatchKey::CPU)) {
      o.reorder = reorder->typed<ReorderFn>();
      o.linear = linear->typed<LinearFn>();
    }
    return o;
  }();
  return ops;
}

}  // namespace

bool packing_pays(int64_t rows, torch::ScalarType dtype) {
  if (rows < kPackedLinearMinRows || dtype != torch::kFloat32 || torch::GradMode::is_enabled()) return false;
  const char* setting = std::getenv("CHORUS_PACKED_GEMM");
  if (setting != nullptr && std::strcmp(setting, "0") == 0) return false;
  return mkl_ops().reorder.has_value();
}

std::shared_ptr<const PackedWeights> pack_weights(const std::vector<torch::Tensor>& weights, int64_t rows) {
  auto out = std::make_shared<PackedWeights>();
  out->rows = rows;
  const auto& ops = mkl_ops();
  if (!ops.reorder.has_value()) return out;
  for (const auto& w : weights) {
    if (!w.defined() || out->packed.count(w.data_ptr()) == 1) continue;
    out->packed.emplace(w.data_ptr(), PackedWeights::Entry{w, ops.reorder->call(w.contiguous(), rows), w._version()});
  }
  return out;
}

std::shared_ptr<const PackedWeights> PackedWeightsCache::get(const std::vector<torch::Tensor>& weights, int64_t rows) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto still_valid = [&] {
    if (!last_ || last_->rows != rows) return false;
    for (const auto& w : weights) {
      if (!w.defined()) continue;
      const auto found = last_->packed.find(w.data_ptr());
      if (found == last_->packed.end() || !found->second.weight.is_same(w) ||
          found->second.version != w._version()) {
        return false;
      }
    }
    return true;
  };
  if (!still_valid()) {
    last_.reset();  // free the old packing before making the new one
    last_ = pack_weights(weights, rows);
  }
  return last_;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const PackedWeights* packed) {
  if (packed != nullptr) {
    const auto found = packed->packed.find(weight.data_ptr());
    if (found != packed->packed.end() && found->second.weight.sizes() == weight.sizes() && weight.is_contiguous()) {
      return mkl_ops().linear->call(x, found->second.packed, weight, std::nullopt, packed->rows);
    }
  }
  return torch::linear(x, weight);
}

}  // namespace chorus::model
