// WeightMap: a model's named CPU tensors, with lookups whose errors say what exists.
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace chorus::model {

// Named tensors in a fixed order (file order, or insertion order), all on the
// CPU and kept in the dtype they were stored in (fp32, fp16, bf16, ...): a model
// converts to its compute dtype itself. Names are unique.
class WeightMap {
 public:
  using Entry = std::pair<std::string, torch::Tensor>;

  WeightMap() = default;
  // `source` names where the weights came from (a file or folder); it is
  // quoted in every error this map raises.
  explicit WeightMap(std::string source) : source_(std::move(source)) {}

  // Adds a tensor; throws chorus::Error when the name is empty or already present.
  void insert(std::string name, torch::Tensor tensor);
  // Moves every entry of `other` in; throws on a name present in both.
  void merge(WeightMap&& other);

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor called `name`; nullptr when absent.
  const torch::Tensor* find(const std::string& name) const;
  // The tensor called `name`; when absent throws chorus::Error naming the
  // source, the missing name, the closest existing names and how many exist.
  const torch::Tensor& at(const std::string& name) const;
  // at(name), also checking the shape: the error gives both shapes.
  const torch::Tensor& at(const std::string& name, at::IntArrayRef expected_shape) const;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<std::string> names() const;
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

  const std::string& source() const { return source_; }
  void set_source(std::string source) { source_ = std::move(source); }

 private:
  std::string source_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
};

// Throws one chorus::Error listing every expected name that `weights` lacks and
// every name it holds that is not expected (each list capped for readability,
// with the total counts), naming `weights.source()`. Passes silently when the
// two sets are equal. `ignored_unexpected` lists names that may be present
// without being expected (e.g. a tied lm_head.weight a model does not read).
void check_expected_weights(const WeightMap& weights, const std::vector<std::string>& expected,
                            const std::vector<std::string>& ignored_unexpected = {});

// The names of `candidates` closest to `name` (edit distance), best first.
std::vector<std::string> closest_names(const std::string& name,
                                       const std::vector<std::string>& candidates,
                                       std::size_t how_many = 3);

}  // namespace chorus::model
