// T5's relative position buckets, written op for op like the reference so the buckets agree exactly.
#include "model/t5/t5_relative_position.h"

#include <torch/torch.h>

#include <cmath>

namespace chorus::model {

torch::Tensor relative_position_bucket(const torch::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance) {
  auto buckets = torch::zeros_like(relative_position);
  auto distance = relative_position;
  if (bidirectional) {
    num_buckets /= 2;
    buckets = buckets + (relative_position > 0).to(torch::kInt64) * num_buckets;
    distance = torch::abs(relative_position);
  } else {
    distance = -torch::minimum(relative_position, torch::zeros_like(relative_position));
  }
  const int64_t max_exact = num_buckets / 2;
  auto is_small = distance < max_exact;
  // float32 arithmetic with a double constant, as in the reference.
  auto large = max_exact + (torch::log(distance.to(torch::kFloat32) / static_cast<double>(max_exact)) /
                            std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                            static_cast<double>(num_buckets - max_exact))
                               .to(torch::kInt64);
  large = torch::minimum(large, torch::full_like(large, num_buckets - 1));
  return buckets + torch::where(is_small, distance, large);
}

torch::Tensor relative_position_bias(const torch::Tensor& table, int64_t query_offset, int64_t query_length,
                                     int64_t key_length, bool bidirectional, int64_t max_distance) {
  auto context = torch::arange(query_offset, query_offset + query_length, torch::kInt64).unsqueeze(1);
  auto memory = torch::arange(key_length, torch::kInt64).unsqueeze(0);
  auto bucket = relative_position_bucket(memory - context, bidirectional, table.size(0), max_distance);
  // [Nq, Nk, H] -> [1, H, Nq, Nk]
  return torch::embedding(table, bucket).permute({2, 0, 1}).unsqueeze(0);
}

}  // namespace chorus::model
