// Training checkpoints: writing, verifying and restoring model and AdamW state.
#include "train/checkpoint.h"

#include <torch/torch.h>
#include <zlib.h>

#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"

namespace chorus::train {
namespace {

constexpr const char* kModelPrefix = "model:";
constexpr const char* kOptimizerPrefix = "adamw:";

std::string format_double(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

uint32_t crc_update(uint32_t crc, const void* data, size_t size) {
  // zlib's crc32 takes a uInt length; feed large tensors in slices.
  const auto* bytes = static_cast<const Bytef*>(data);
  while (size > 0) {
    const size_t chunk = std::min<size_t>(size, std::numeric_limits<uInt>::max());
    crc = static_cast<uint32_t>(crc32(crc, bytes, static_cast<uInt>(chunk)));
    bytes += chunk;
    size -= chunk;
  }
  return crc;
}

uint32_t crc_string(uint32_t crc, const std::string& text) {
  const uint64_t length = text.size();
  crc = crc_update(crc, &length, sizeof length);
  return crc_update(crc, text.data(), text.size());
}

const std::string& metadata_at(const Checkpoint& checkpoint, const std::string& key) {
  auto it = checkpoint.file.metadata.find(key);
  CHORUS_CHECK(it != checkpoint.file.metadata.end(), "checkpoint '", checkpoint.path.string(),
               "' lacks the metadata \"", key, "\"");
  return it->second;
}

int64_t parse_int(const Checkpoint& checkpoint, const std::string& key) {
  const std::string& text = metadata_at(checkpoint, key);
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(::chorus::detail::concat("checkpoint '", checkpoint.path.string(), "': metadata \"", key,
                             "\" should be an integer, found \"", text, "\""));
}

double parse_double(const Checkpoint& checkpoint, const std::string& key) {
  const std::string& text = metadata_at(checkpoint, key);
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(::chorus::detail::concat("checkpoint '", checkpoint.path.string(), "': metadata \"", key,
                             "\" should be a number, found \"", text, "\""));
}

std::string shape_string(const torch::Tensor& tensor) {
  std::ostringstream out;
  out << tensor.sizes();
  return out.str();
}

std::string optimizer_key(const std::string& name, const char* field) {
  return std::string(kOptimizerPrefix) + name + ":" + field;
}

}  // namespace

NamedParameters Checkpoint::model_tensors() const {
  NamedParameters result;
  const std::string prefix = kModelPrefix;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.rfind(prefix, 0) == 0) result.emplace_back(name.substr(prefix.size()), tensor);
  }
  return result;
}

uint32_t checkpoint_checksum(const model::TensorFile& file) {
  uint32_t crc = static_cast<uint32_t>(crc32(0L, Z_NULL, 0));
  for (const auto& [name, tensor] : file.tensors) {
    crc = crc_string(crc, name);
    crc = crc_string(crc, std::string(c10::toString(tensor.scalar_type())));
    const uint64_t rank = tensor.dim();
    crc = crc_update(crc, &rank, sizeof rank);
    for (int64_t size : tensor.sizes()) crc = crc_update(crc, &size, sizeof size);
    const torch::Tensor bytes = tensor.detach().to(torch::kCPU).contiguous();
    crc = crc_update(crc, bytes.data_ptr(), bytes.nbytes());
  }
  for (const auto& [key, value] : file.metadata) {
    if (key == "checksum") continue;
    crc = crc_string(crc, key);
    crc = crc_string(crc, value);
  }
  return crc;
}

void save_checkpoint(const std::filesystem::path& path, const NamedParameters& parameters,
                     const torch::optim::AdamW* optimizer, const CheckpointState& state) {
  model::TensorFile file;
  std::set<std::string> seen;
  for (const auto& [name, parameter] : parameters) {
    CHORUS_CHECK(!name.empty() && name.find('/') == std::string::npos && name.find(':') == std::string::npos,
                 "checkpoint '", path.string(), "': parameter name \"", name,
                 "\" must be non-empty and free of '/' and ':'");
    CHORUS_CHECK(seen.insert(name).second, "checkpoint '", path.string(), "': parameter name \"", name,
                 "\" appears twice");
    CHORUS_CHECK(parameter.defined(), "checkpoint '", path.string(), "': parameter \"", name,
                 "\" is an undefined tensor");
    file.tensors.emplace_back(kModelPrefix + name, parameter.detach().to(torch::kCPU).contiguous());
  }
  if (optimizer != nullptr) {
    const auto& states = optimizer->state();
    for (const auto& [name, parameter] : parameters) {
      auto it = states.find(parameter.unsafeGetTensorImpl());
      if (it == states.end()) continue;  // never stepped (no gradient yet)
      const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      file.tensors.emplace_back(optimizer_key(name, "exp_avg"), adam.exp_avg().detach().to(torch::kCPU).contiguous());
      file.tensors.emplace_back(optimizer_key(name, "exp_avg_sq"),
                                adam.exp_avg_sq().detach().to(torch::kCPU).contiguous());
      if (adam.max_exp_avg_sq().defined()) {
        file.tensors.emplace_back(optimizer_key(name, "max_exp_avg_sq"),
                                  adam.max_exp_avg_sq().detach().to(torch::kCPU).contiguous());
      }
      file.tensors.emplace_back(optimizer_key(name, "step"), torch::tensor(adam.step(), torch::kInt64));
    }
  }
  file.metadata["chorus_checkpoint_format"] = std::to_string(kCheckpointFormat);
  file.metadata["step"] = std::to_string(state.step);
  file.metadata["best_value"] = format_double(state.best_value);
  file.metadata["best_step"] = std::to_string(state.best_step);
  file.metadata["patience_used"] = std::to_string(state.patience_used);
  file.metadata["finished"] = state.finished ? "1" : "0";
  file.metadata["stopped_early"] = state.stopped_early ? "1" : "0";
  file.metadata["seed"] = std::to_string(state.seed);
  file.metadata["extra"] = state.extra;
  file.metadata["last_eval"] = state.last_eval;
  file.metadata["trainer_options"] = state.options;
  file.metadata["checksum"] = std::to_string(checkpoint_checksum(file));
  model::save_tensor_file(path, file);
}

Checkpoint read_checkpoint(const std::filesystem::path& path) {
  CHORUS_CHECK(std::filesystem::is_regular_file(path), "checkpoint '", path.string(), "' does not exist");
  Checkpoint checkpoint;
  checkpoint.path = path;
  checkpoint.file = model::load_tensor_file(path);
  const std::string& format = metadata_at(checkpoint, "chorus_checkpoint_format");
  CHORUS_CHECK(format == std::to_string(kCheckpointFormat), "checkpoint '", path.string(), "' has format version ",
               format, "; this build reads version ", kCheckpointFormat);
  const std::string& stored = metadata_at(checkpoint, "checksum");
  const std::string computed = std::to_string(checkpoint_checksum(checkpoint.file));
  CHORUS_CHECK(stored == computed, "checkpoint '", path.string(), "' is corrupt: checksum ", computed,
               " of its content differs from the stored checksum ", stored);
  CheckpointState& state = checkpoint.state;
  state.step = parse_int(checkpoint, "step");
  state.best_value = parse_double(checkpoint, "best_value");
  state.best_step = parse_int(checkpoint, "best_step");
  state.patience_used = parse_int(checkpoint, "patience_used");
  state.finished = parse_int(checkpoint, "finished") != 0;
  state.stopped_early = parse_int(checkpoint, "stopped_early") != 0;
  const std::string& seed = metadata_at(checkpoint, "seed");
  try {
    state.seed = std::stoull(seed);
  } catch (const std::exception&) {
    throw Error(::chorus::detail::concat("checkpoint '", path.string(), "': metadata \"seed\" should be an unsigned integer, found \"",
                               seed, "\""));
  }
  state.extra = metadata_at(checkpoint, "extra");
  state.last_eval = metadata_at(checkpoint, "last_eval");
  state.options = metadata_at(checkpoint, "trainer_options");
  return checkpoint;
}

void check_same_architecture(const Checkpoint& checkpoint, const NamedParameters& parameters) {
  std::map<std::string, torch::Tensor> stored;
  for (auto& [name, tensor] : checkpoint.model_tensors()) stored.emplace(name, tensor);
  std::vector<std::string> missing, mismatched, unexpected;
  std::set<std::string> expected;
  for (const auto& [name, parameter] : parameters) {
    expected.insert(name);
    auto it = stored.find(name);
    if (it == stored.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != parameter.sizes()) {
      mismatched.push_back(name + " (checkpoint " + shape_string(it->second) + ", model " + shape_string(parameter) +
                           ")");
    }
  }
  for (const auto& [name, tensor] : stored) {
    if (expected.count(name) == 0) unexpected.push_back(name);
  }
  if (missing.empty() && mismatched.empty() && unexpected.empty()) return;
  std::ostringstream message;
  message << "checkpoint '" << checkpoint.path.string()
          << "' was written for another architecture: its parameters do not match the model's";
  const auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    message << "; " << what << " (" << names.size() << "):";
    for (size_t i = 0; i < names.size(); ++i) message << (i == 0 ? " " : ", ") << names[i];
  };
  list("missing from the checkpoint", missing);
  list("unexpected in the checkpoint", unexpected);
  list("shape mismatch", mismatched);
  throw Error(message.str());
}

void restore_parameters(const Checkpoint& checkpoint, const NamedParameters& parameters) {
  check_same_architecture(checkpoint, parameters);
  torch::NoGradGuard no_grad;
  for (const auto& [name, parameter] : parameters) {
    parameter.copy_(checkpoint.file.at(kModelPrefix + name));
  }
}

void restore_optimizer(const Checkpoint& checkpoint, const NamedParameters& parameters,
                       torch::optim::AdamW& optimizer) {
  std::map<std::string, const torch::Tensor*> tensors;
  for (const auto& [name, tensor] : checkpoint.file.tensors) tensors.emplace(name, &tensor);
  const auto find = [&](const std::string& key) -> const torch::Tensor* {
    auto it = tensors.find(key);
    return it == tensors.end() ? nullptr : it->second;
  };
  auto& states = optimizer.state();
  states.clear();
  for (const auto& [name, parameter] : parameters) {
    const torch::Tensor* step = find(optimizer_key(name, "step"));
    if (step == nullptr) continue;  // the parameter had no optimizer state yet
    const torch::Tensor* exp_avg = find(optimizer_key(name, "exp_avg"));
    const torch::Tensor* exp_avg_sq = find(optimizer_key(name, "exp_avg_sq"));
    CHORUS_CHECK(exp_avg != nullptr && exp_avg_sq != nullptr, "checkpoint '", checkpoint.path.string(),
                 "': optimizer state of \"", name, "\" is incomplete (needs exp_avg and exp_avg_sq)");
    CHORUS_CHECK(exp_avg->sizes() == parameter.sizes() && exp_avg_sq->sizes() == parameter.sizes(), "checkpoint '",
                 checkpoint.path.string(), "': optimizer state of \"", name, "\" has shape ", shape_string(*exp_avg),
                 ", expected the parameter's ", shape_string(parameter));
    const auto like_parameter = [&](const torch::Tensor& tensor) {
      return tensor.to(parameter.device(), parameter.scalar_type()).clone();
    };
    auto adam = std::make_unique<torch::optim::AdamWParamState>();
    adam->step(step->item<int64_t>());
    adam->exp_avg(like_parameter(*exp_avg));
    adam->exp_avg_sq(like_parameter(*exp_avg_sq));
    if (const torch::Tensor* max_sq = find(optimizer_key(name, "max_exp_avg_sq"))) {
      adam->max_exp_avg_sq(like_parameter(*max_sq));
    }
    states[parameter.unsafeGetTensorImpl()] = std::move(adam);
  }
}

}  // namespace chorus::train
