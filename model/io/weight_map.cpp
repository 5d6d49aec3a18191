#include "model/io/weight_map.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "common/error.h"

namespace chorus::model {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string shape_string(at::IntArrayRef shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// "a, b, c (and 12 more)".
std::string capped_list(const std::vector<std::string>& names, std::size_t cap = 20) {
  std::ostringstream out;
  for (std::size_t i = 0; i < names.size() && i < cap; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > cap) out << " (and " << names.size() - cap << " more)";
  return out.str();
}

std::string source_or_default(const std::string& source) {
  return source.empty() ? std::string("weights") : source;
}

}  // namespace

void WeightMap::insert(std::string name, torch::Tensor tensor) {
  CHORUS_CHECK(!name.empty(), source_or_default(source_), ": a tensor with an empty name");
  CHORUS_CHECK(index_.count(name) == 0, source_or_default(source_), ": duplicate tensor name '",
               name, "'");
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(tensor));
}

void WeightMap::merge(WeightMap&& other) {
  for (auto& [name, tensor] : other.entries_) insert(std::move(name), std::move(tensor));
  other.entries_.clear();
  other.index_.clear();
}

const torch::Tensor* WeightMap::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const torch::Tensor& WeightMap::at(const std::string& name) const {
  if (const torch::Tensor* tensor = find(name)) return *tensor;
  std::ostringstream message;
  message << source_or_default(source_) << ": no tensor named '" << name << "' (" << entries_.size()
          << " tensors";
  if (!entries_.empty()) message << "; closest: " << capped_list(closest_names(name, names()));
  message << ")";
  throw Error(message.str());
}

const torch::Tensor& WeightMap::at(const std::string& name, at::IntArrayRef expected_shape) const {
  const torch::Tensor& tensor = at(name);
  CHORUS_CHECK(tensor.sizes() == expected_shape, source_or_default(source_), ": tensor '", name,
               "' has shape ", shape_string(tensor.sizes()), " but ", shape_string(expected_shape),
               " was expected");
  return tensor;
}

std::vector<std::string> WeightMap::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& entry : entries_) out.push_back(entry.first);
  return out;
}

void check_expected_weights(const WeightMap& weights, const std::vector<std::string>& expected,
                            const std::vector<std::string>& ignored_unexpected) {
  const std::set<std::string> expected_set(expected.begin(), expected.end());
  const std::set<std::string> ignored(ignored_unexpected.begin(), ignored_unexpected.end());
  std::vector<std::string> missing;
  for (const std::string& name : expected_set)
    if (!weights.contains(name)) missing.push_back(name);
  std::vector<std::string> unexpected;
  for (const auto& entry : weights)
    if (!expected_set.count(entry.first) && !ignored.count(entry.first))
      unexpected.push_back(entry.first);
  if (missing.empty() && unexpected.empty()) return;
  std::ostringstream message;
  message << source_or_default(weights.source()) << ": the weights do not match the model";
  if (!missing.empty()) message << "; missing " << missing.size() << ": " << capped_list(missing);
  if (!unexpected.empty())
    message << "; unexpected " << unexpected.size() << ": " << capped_list(unexpected);
  throw Error(message.str());
}

std::vector<std::string> closest_names(const std::string& name,
                                       const std::vector<std::string>& candidates,
                                       std::size_t how_many) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  scored.reserve(candidates.size());
  for (const std::string& candidate : candidates)
    scored.emplace_back(edit_distance(name, candidate), candidate);
  const std::size_t keep = std::min(how_many, scored.size());
  std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(keep),
                    scored.end());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < keep; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace chorus::model
