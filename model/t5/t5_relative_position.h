// T5's relative position buckets and the attention bias they index.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace chorus::model {

// The bucket of each relative position (key - query), as Mesh TensorFlow and
// the reference compute it: with `bidirectional` half the buckets are for
// keys after the query; in each half, half are exact small distances and the
// rest logarithmically wider bins up to max_distance (beyond it: the last bin).
torch::Tensor relative_position_bucket(const torch::Tensor& relative_position, bool bidirectional,
                                       int64_t num_buckets, int64_t max_distance);

// The additive bias [1, H, Nq, Nk] for queries at positions
// query_offset .. query_offset + Nq - 1 and keys at 0 .. Nk - 1, looked up in
// `table` [num_buckets, H] (the relative_attention_bias embedding).
torch::Tensor relative_position_bias(const torch::Tensor& table, int64_t query_offset, int64_t query_length,
                                     int64_t key_length, bool bidirectional, int64_t max_distance);

}  // namespace chorus::model
