// Products with weights packed once: a decoding step multiplies each weight matrix by one row per
// sequence, and MKL's sgemm re-packs the weight into its panel layout inside every such product
// (a quarter of a decoding profile at one thread). MKL's packed GEMM (LibTorch's mkl::_mkl_linear)
// takes a weight packed ahead of time for a fixed number of rows; products with any other number of
// rows fall back to the plain product inside the op, so a packed weight is never wrong, only
// useless. Results equal torch::linear's to rounding (identical at the row counts tested).
#pragma once

#include <torch/types.h>

#include <memory>
#include <mutex>
#include <vector>

#include "model/seq2seq_model.h"

namespace chorus::model {

// Whether decoding over `rows` rows of this dtype should pack its weights: LibTorch has the MKL
// ops, the weights are float32, gradients are off (the packed op is for inference), rows is at
// least kPackedLinearMinRows (below it the saving per step, measured at one row, does not repay
// packing within a generation), and CHORUS_PACKED_GEMM is not "0".
constexpr int64_t kPackedLinearMinRows = 8;
bool packing_pays(int64_t rows, torch::ScalarType dtype);

// Packs each of `weights` ([N, K] float32, as torch::linear takes them) for products with `rows`
// rows.
std::shared_ptr<const PackedWeights> pack_weights(const std::vector<torch::Tensor>& weights, int64_t rows);

// The packing of a model's last generation, reused by the next one with the same number of rows
// while every weight is the same tensor at the same version (an in-place update, such as an
// optimizer step, makes it pack again). Packing t5-small's decoder takes 30-55 ms, 5% of a
// 32-token generation at batch 16. The price is a second copy of the packed weights, kept until a
// generation with another row count replaces it. Thread-safe.
class PackedWeightsCache {
 public:
  std::shared_ptr<const PackedWeights> get(const std::vector<torch::Tensor>& weights, int64_t rows);

 private:
  std::mutex mutex_;
  std::shared_ptr<const PackedWeights> last_;
};

// x W^T, through W's packed copy when `packed` holds one (x may be [..., K]); else torch::linear.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const PackedWeights* packed);

}  // namespace chorus::model
