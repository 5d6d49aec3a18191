// Cross-agent attention fusion: projections, null slot, position-pair bias, group mask and gate.
#include "collab/cross_agent_fusion.h"

#include <torch/torch.h>

#include <limits>

#include "common/error.h"
#include "kernels/torch/attention_op.h"

namespace chorus::collab {

std::string to_string(ValueSource source) { return source == ValueSource::hidden ? "hidden" : "bridge"; }
std::string to_string(GateKind gate) { return gate == GateKind::scalar ? "scalar" : "per_position"; }
std::string to_string(Residual residual) { return residual == Residual::add ? "add" : "interpolate"; }

namespace {

torch::nn::LayerNorm plain_norm(int64_t width) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).elementwise_affine(false));
}

}  // namespace

CrossAgentFusionImpl::CrossAgentFusionImpl(FusionOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  CHORUS_CHECK(o.anchor_width > 0, "fusion head: anchor_width = ", o.anchor_width, "; expected a positive width");
  CHORUS_CHECK(!o.augmenting_widths.empty(), "fusion head: no augmenting agents (expected at least one)");
  CHORUS_CHECK(o.heads > 0 && o.head_dim > 0, "fusion head: heads = ", o.heads, ", head_dim = ", o.head_dim,
               "; expected positive numbers");
  CHORUS_CHECK(o.anchor_width % o.heads == 0, "fusion head: the anchor width ", o.anchor_width,
               " is not divisible by heads = ", o.heads, " (values are split across heads)");
  CHORUS_CHECK(o.bridge_temperature > 0, "fusion head: bridge_temperature = ", o.bridge_temperature,
               "; expected > 0");
  CHORUS_CHECK(o.position_bias >= 0, "fusion head: position_bias = ", o.position_bias, "; expected >= 0");
  const int64_t inner = o.heads * o.head_dim;
  query_norm_ = register_module("query_norm", plain_norm(o.anchor_width));
  query_ = register_module("query", torch::nn::Linear(torch::nn::LinearOptions(o.anchor_width, inner).bias(false)));
  for (size_t a = 0; a < o.augmenting_widths.size(); ++a) {
    const auto width = o.augmenting_widths[a];
    CHORUS_CHECK(width > 0, "fusion head: augmenting agent ", a, " has width ", width);
    const auto id = std::to_string(a);
    key_norms_.push_back(register_module("key_norm_" + id, plain_norm(width)));
    keys_.push_back(register_module("key_" + id, torch::nn::Linear(torch::nn::LinearOptions(width, inner).bias(false))));
    if (o.value_source == ValueSource::hidden) {
      value_norms_.push_back(register_module("value_norm_" + id, plain_norm(width)));
      values_.push_back(
          register_module("value_" + id, torch::nn::Linear(torch::nn::LinearOptions(width, o.anchor_width).bias(false))));
    }
  }
  if (o.null_slot) {
    null_key_ = register_parameter("null_key", torch::randn({o.heads, 1, o.head_dim}) / std::sqrt(double(o.head_dim)));
    null_bias_ = register_parameter("null_bias", torch::zeros({o.heads}));
  }
  if (o.position_bias > 0) {
    position_table_ = register_parameter(
        "position_table", (torch::eye(o.position_bias) * o.diagonal_prior).expand({o.heads, -1, -1}).contiguous());
  }
  if (o.gate == GateKind::per_position) {
    gate_norm_ = register_module("gate_norm", plain_norm(o.anchor_width));
    gate_weight_ = register_parameter("gate_weight", torch::zeros({o.anchor_width}));
  }
  gate_bias_ = register_parameter("gate_bias", torch::zeros({1}));
  CHORUS_CHECK(o.tasks >= 0, "fusion head: tasks = ", o.tasks, "; expected >= 0");
  if (o.tasks > 0) {
    task_query_ = register_parameter("task_query", torch::zeros({o.tasks, o.anchor_width}));
    task_gate_ = register_parameter("task_gate", torch::zeros({o.tasks}));
  }
}

void CrossAgentFusionImpl::check_tasks(const torch::Tensor& tasks, int64_t batch) const {
  CHORUS_CHECK(options_.tasks > 0, "fusion head: given task ids but built without task conditioning (tasks = 0)");
  CHORUS_CHECK(tasks.dim() == 1 && tasks.size(0) == batch && tasks.scalar_type() == torch::kInt64,
               "fusion head: task ids have shape ", tasks.sizes(), " and type ", tasks.scalar_type(),
               "; expected int64 [", batch, "]");
  if (batch == 0) return;
  const auto low = tasks.min().item<int64_t>(), high = tasks.max().item<int64_t>();
  CHORUS_CHECK(low >= 0 && high < options_.tasks, "fusion head: task ids span [", low, ", ", high,
               "]; expected ids in [0, ", options_.tasks, ")");
}

int64_t CrossAgentFusionImpl::parameter_count() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

torch::Tensor CrossAgentFusionImpl::gate(const torch::Tensor& states, const torch::Tensor& tasks) {
  auto g = options_.gate == GateKind::scalar ? gate_bias_.view({1, 1, 1})
                                             : torch::matmul(gate_norm_(states), gate_weight_).unsqueeze(-1) + gate_bias_;
  if (!tasks.defined()) return g;
  check_tasks(tasks, states.size(0));
  return g + task_gate_.index_select(0, tasks).view({-1, 1, 1});
}

torch::Tensor CrossAgentFusionImpl::message(const torch::Tensor& query_states, const std::vector<AugmentingStates>& others,
                                            const torch::Tensor& anchor_embedding, const std::vector<bool>& visible,
                                            torch::Tensor* probabilities, const torch::Tensor& tasks) {
  const auto& o = options_;
  CHORUS_CHECK(query_states.dim() == 3 && query_states.size(2) == o.anchor_width,
               "fusion head: query states have shape ", query_states.sizes(), "; expected [batch, length, ",
               o.anchor_width, "]");
  CHORUS_CHECK(others.size() == o.augmenting_widths.size(), "fusion head: built for ", o.augmenting_widths.size(),
               " augmenting agents but given ", others.size());
  CHORUS_CHECK(visible.empty() || visible.size() == others.size(), "fusion head: ", visible.size(),
               " visibility flags for ", others.size(), " agents");
  const int64_t batch = query_states.size(0);
  const int64_t nq = query_states.size(1);
  const int64_t heads = o.heads;
  const int64_t dv = o.anchor_width / heads;
  auto split = [&](const torch::Tensor& x, int64_t width) {
    return x.view({batch, x.size(1), heads, width}).transpose(1, 2);
  };
  auto query_input = query_norm_(query_states);
  if (tasks.defined()) {
    check_tasks(tasks, batch);
    query_input = query_input + task_query_.index_select(0, tasks).unsqueeze(1);
  }
  auto q = split(query_(query_input), o.head_dim);

  std::vector<torch::Tensor> keys, values, biases, masks, groups;
  const auto options = query_states.options();
  const auto qpos = torch::arange(nq, torch::kInt64).clamp_max(std::max<int64_t>(o.position_bias - 1, 0));
  if (o.null_slot) {
    keys.push_back(null_key_.unsqueeze(0).expand({batch, heads, 1, o.head_dim}));
    values.push_back(torch::zeros({batch, heads, 1, dv}, options));
    biases.push_back(null_bias_.view({1, heads, 1, 1}).expand({batch, heads, nq, 1}));
    masks.push_back(torch::ones({batch, 1}, torch::kBool));
    groups.push_back(torch::zeros({1}, torch::kInt64));
  }
  for (size_t a = 0; a < others.size(); ++a) {
    const auto& other = others[a];
    const auto where = "fusion head, augmenting agent " + std::to_string(a);
    CHORUS_CHECK(other.key_states.defined() && other.key_states.dim() == 3 && other.key_states.size(0) == batch &&
                     other.key_states.size(2) == o.augmenting_widths[a],
                 where, ": key states have shape ", other.key_states.defined() ? other.key_states.sizes() : at::IntArrayRef{},
                 "; expected [", batch, ", length, ", o.augmenting_widths[a], "]");
    const int64_t nk = other.key_states.size(1);
    keys.push_back(split(keys_[a](key_norms_[a](other.key_states)), o.head_dim));
    torch::Tensor v;
    if (o.value_source == ValueSource::bridge) {
      CHORUS_CHECK(other.logits.defined() && other.logits.dim() == 3 && other.logits.size(0) == batch &&
                       other.logits.size(1) == nk,
                   where, ": bridge values need logits [", batch, ", ", nk, ", vocab]");
      CHORUS_CHECK(anchor_embedding.defined() && anchor_embedding.dim() == 2 &&
                       anchor_embedding.size(0) == other.logits.size(2) && anchor_embedding.size(1) == o.anchor_width,
                   where, ": bridge values map a vocabulary of ", other.logits.size(2),
                   " through the anchor embedding, which has shape ",
                   anchor_embedding.defined() ? anchor_embedding.sizes() : at::IntArrayRef{}, "; expected [",
                   other.logits.size(2), ", ", o.anchor_width, "] (shared vocabularies)");
      v = torch::matmul(torch::softmax(other.logits / o.bridge_temperature, -1), anchor_embedding.detach());
    } else {
      const auto& states = other.value_states.defined() ? other.value_states : other.key_states;
      CHORUS_CHECK(states.dim() == 3 && states.size(0) == batch && states.size(1) == nk &&
                       states.size(2) == o.augmenting_widths[a],
                   where, ": value states have shape ", states.sizes(), "; expected [", batch, ", ", nk, ", ",
                   o.augmenting_widths[a], "]");
      v = values_[a](value_norms_[a](states));
    }
    values.push_back(split(v, dv));
    if (o.position_bias > 0) {
      const auto kpos = torch::arange(nk, torch::kInt64).clamp_max(o.position_bias - 1);
      biases.push_back(position_table_.index_select(1, qpos).index_select(2, kpos).unsqueeze(0).expand({batch, heads, nq, nk}));
    } else {
      biases.push_back(torch::zeros({batch, heads, nq, nk}, options));
    }
    if (other.mask.defined()) {
      CHORUS_CHECK(other.mask.dim() == 2 && other.mask.size(0) == batch && other.mask.size(1) == nk, where,
                   ": mask has shape ", other.mask.sizes(), "; expected [", batch, ", ", nk, "]");
      masks.push_back(other.mask.to(torch::kBool));
    } else {
      masks.push_back(torch::ones({batch, nk}, torch::kBool));
    }
    groups.push_back(torch::full({nk}, static_cast<int64_t>(a) + 1, torch::kInt64));
  }
  auto k = torch::cat(keys, 2);
  auto v = torch::cat(values, 2);
  auto mask = torch::cat(masks, 1).view({batch, 1, 1, -1});
  auto bias = torch::cat(biases, 3).masked_fill(~mask, std::numeric_limits<float>::lowest());

  const int64_t agents = static_cast<int64_t>(others.size());
  auto visibility = torch::ones({agents + 1, agents + 1}, torch::kBool);
  for (size_t a = 0; a < visible.size(); ++a) visibility.index_put_({0, static_cast<int64_t>(a) + 1}, bool(visible[a]));

  AttentionOptions attention_options;
  attention_options.bias = bias;
  attention_options.query_groups = torch::zeros({nq}, torch::kInt64);
  attention_options.key_groups = torch::cat(groups, 0);
  attention_options.group_visibility = visibility;
  attention_options.return_probabilities = probabilities != nullptr;
  auto result = attention_forward(q, k, v, attention_options);
  if (probabilities != nullptr) *probabilities = result.probabilities;
  return result.output.transpose(1, 2).reshape({batch, nq, o.anchor_width});
}

torch::Tensor CrossAgentFusionImpl::forward(const torch::Tensor& query_states, const torch::Tensor& states,
                                            const std::vector<AugmentingStates>& others,
                                            const torch::Tensor& anchor_embedding, const std::vector<bool>& visible,
                                            torch::Tensor* probabilities, const torch::Tensor& tasks) {
  CHORUS_CHECK(states.sizes() == query_states.sizes(), "fusion head: states have shape ", states.sizes(),
               " but query states ", query_states.sizes(), "; expected the same");
  const auto m = message(query_states, others, anchor_embedding, visible, probabilities, tasks);
  if (options_.residual == Residual::interpolate) return states + gate(states, tasks) * (m - states);
  return states + gate(states, tasks) * m;
}

}  // namespace chorus::collab
