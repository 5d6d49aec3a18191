// Cross-agent attention fusion in the manner of CALM (Bansal et al. 2024): an anchor agent's states
// attend to the states of other (frozen) agents and the result enters the anchor through a gated,
// zero-initialised residual. Only this head's parameters train.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chorus::collab {

// Where the attended values come from.
//   hidden: a learned projection of the other agent's hidden states (CALM).
//   bridge: the other agent's output distribution mapped through the anchor's input embedding,
//           softmax(logits / T) . E_anchor (vocabularies shared or mapped id for id).
enum class ValueSource { hidden, bridge };
// The gate on the residual: one learned scalar, or per position g = w . LN(x) + b (both start at 0).
enum class GateKind { scalar, per_position };

// How the gated message enters the anchor.
//   add:         states + g * message (CALM's residual)
//   interpolate: states + g * (message - states): at g = 1 the message replaces the state, which an
//                additive message cannot do (it can only be added on top of what is there: e.g. the
//                anchor's embedding of a token it never learned, which no message cancels).
enum class Residual { add, interpolate };

std::string to_string(ValueSource source);
std::string to_string(GateKind gate);
std::string to_string(Residual residual);

struct FusionOptions {
  int64_t anchor_width = 0;                // d_model of the anchor
  std::vector<int64_t> augmenting_widths;  // d_model of each other agent, in the order their inputs are given
  ValueSource value_source = ValueSource::bridge;
  int64_t heads = 1;
  int64_t head_dim = 64;                   // query/key width per head
  double bridge_temperature = 1.0;         // T of the bridge's softmax
  GateKind gate = GateKind::per_position;
  Residual residual = Residual::add;
  bool null_slot = true;                   // a learned key with value 0: "attend to nothing"
  // A learned bias per (query position, key position) pair and head, for positions < this
  // (later positions share the last row/column); 0: none.
  int64_t position_bias = 0;
  // Initial value of the position-pair bias where query and key positions are equal (0: the table
  // starts at zero). A prior for agents that read the same input and whose positions line up
  // (e.g. one rewrites the input token for token); the table stays free to learn any alignment.
  double diagonal_prior = 0.0;
  // Task conditioning for multi-task heads (0: none). With T > 0 tasks the head holds, per task, an
  // embedding added to the normalised query states before the query projection (what to look for)
  // and a bias added to the gate (how much to let in). Both start at zero, so before training the
  // head is the unconditioned one; a batch without task ids also runs unconditioned.
  int64_t tasks = 0;
};

// What one other agent contributes for a batch. Positions are that agent's own.
struct AugmentingStates {
  torch::Tensor key_states;    // [B, Nk, width]: the states keys are projected from
  torch::Tensor value_states;  // hidden values: [B, Nk, width] (may be key_states); bridge: unused
  torch::Tensor logits;        // bridge values: [B, Nk, vocab] output logits; hidden: unused
  torch::Tensor mask;          // [B, Nk] 1 = a real position, 0 = padding; undefined = all real
  torch::Tensor token_ids;     // [B, Nk] the token at each key position (optional, for inspection)
};

class CrossAgentFusionImpl : public torch::nn::Module {
 public:
  explicit CrossAgentFusionImpl(FusionOptions options);

  // Returns states + gate(states) * message (or, interpolating, states + gate * (message - states)),
  // where the message is the attention of
  // queries = W_q LN(query_states) over the other agents' keys (and the null slot).
  //   query_states [B, Nq, anchor_width]: the anchor states queries come from (may be `states`);
  //   states [B, Nq, anchor_width]: the anchor states the result is added to;
  //   anchor_embedding [vocab, anchor_width]: the anchor's input embedding (bridge values only).
  // `visible` (optional, one flag per other agent) masks whole agents out through the op's group
  // mask, for ablations. `probabilities` (optional) receives the attention [B, H, Nq, keys].
  // `tasks` (optional, [B] int64 in [0, options.tasks)): each row's task, for a task-conditioned head.
  torch::Tensor forward(const torch::Tensor& query_states, const torch::Tensor& states,
                        const std::vector<AugmentingStates>& others, const torch::Tensor& anchor_embedding = {},
                        const std::vector<bool>& visible = {}, torch::Tensor* probabilities = nullptr,
                        const torch::Tensor& tasks = {});

  // The message alone (before gating), [B, Nq, anchor_width].
  torch::Tensor message(const torch::Tensor& query_states, const std::vector<AugmentingStates>& others,
                        const torch::Tensor& anchor_embedding, const std::vector<bool>& visible,
                        torch::Tensor* probabilities, const torch::Tensor& tasks = {});
  torch::Tensor gate(const torch::Tensor& states, const torch::Tensor& tasks = {});

  const FusionOptions& options() const { return options_; }
  int64_t parameter_count() const;

 private:
  FusionOptions options_;
  torch::nn::LayerNorm query_norm_{nullptr};
  torch::nn::Linear query_{nullptr};
  std::vector<torch::nn::LayerNorm> key_norms_;
  std::vector<torch::nn::Linear> keys_;
  std::vector<torch::nn::LayerNorm> value_norms_;  // hidden values only
  std::vector<torch::nn::Linear> values_;
  torch::Tensor null_key_;        // [H, 1, head_dim]
  torch::Tensor null_bias_;       // [H]
  torch::Tensor position_table_;  // [H, P, P]
  torch::nn::LayerNorm gate_norm_{nullptr};
  torch::Tensor gate_weight_, gate_bias_;  // per_position: [anchor_width], [1]; scalar: -, [1]
  torch::Tensor task_query_;  // [tasks, anchor_width]
  torch::Tensor task_gate_;   // [tasks]
  // Checks `tasks` against the batch size and the head's task count.
  void check_tasks(const torch::Tensor& tasks, int64_t batch) const;
};
TORCH_MODULE(CrossAgentFusion);

}  // namespace chorus::collab
