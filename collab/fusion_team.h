// FusionTeam: an anchor agent whose encoder attends, through one cross-agent fusion head, to what N
// other frozen agents make of their own inputs (the same input, or per-agent inputs for
// multi-source tasks). The one team class every experiment uses.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "collab/cost.h"
#include "collab/cross_agent_fusion.h"
#include "model/generation/generate.h"

namespace chorus::collab {

// Which states of an augmenting agent the head reads: its encoder's output, or its decoder's final
// states while it decodes its own answer greedily (bridge values need the decoder's logits).
enum class StatesSource { encoder, decoder };
std::string to_string(StatesSource source);

struct FusionTeamOptions {
  FusionOptions head;  // anchor_width and augmenting_widths are filled by the team
  StatesSource states = StatesSource::decoder;
  int64_t query_layer = 0;   // anchor encoder layer the queries come from (0 = embeddings)
  int64_t inject_layer = 0;  // anchor encoder layer the message is added after (0 = embeddings)
  // Tokens an augmenting agent decodes for decoder states; 0: its input length + 1.
  int64_t augmenting_max_new_tokens = 0;
};

// What the head does on one example, for reports and diagnosis.
struct FusionInspection {
  std::vector<std::string> query_tokens;  // the anchor's input tokens (padding dropped)
  std::vector<std::string> key_tokens;    // "<null>" (with a null slot), then each other agent's
                                          // tokens ("agent:token" when there are several)
  torch::Tensor attention;                // [heads, queries, keys] probabilities
  std::vector<double> gate;               // the gate at each query position
  std::vector<double> state_norm;         // |anchor state| where the message is added
  std::vector<double> message_norm;       // |what the head adds| there
};

class FusionTeam {
 public:
  // Checks the options against the agents before any work: at least one augmenting agent, layers
  // within the anchor's encoder, bridge values only from decoder states and only between agents
  // that share a vocabulary (the error names both agents and their vocabularies).
  FusionTeam(std::string name, Agent anchor, std::vector<Agent> augmenting,
             FusionTeamOptions options);

  const std::string& name() const { return name_; }
  CrossAgentFusion& head() { return head_; }
  const Agent& anchor() const { return anchor_; }
  const std::vector<Agent>& augmenting() const { return augmenting_; }
  const FusionTeamOptions& options() const { return options_; }

  // Inputs are the texts each agent reads (prompts already rendered): anchor_texts[b], and
  // other_texts[a][b] for augmenting agent a.
  // The augmenting agents' states (no gradients).
  std::vector<AugmentingStates> augmenting_states(
      const std::vector<std::vector<std::string>>& other_texts) const;
  // The anchor's encoder output with the fusion applied. `tasks` ([B] int64, optional) for a
  // task-conditioned head; `attention` (optional) receives the head's probabilities.
  model::EncoderOutput encode(const std::vector<std::string>& anchor_texts,
                              const std::vector<std::vector<std::string>>& other_texts,
                              torch::Tensor* attention = nullptr, const torch::Tensor& tasks = {});
  // The anchor generating from the fused encoder output.
  model::GenerationResult generate(const std::vector<std::string>& anchor_texts,
                                   const std::vector<std::vector<std::string>>& other_texts,
                                   const model::GenerationOptions& options,
                                   const torch::Tensor& tasks = {});
  // Decoded answers of generate() (first sequence per input, special tokens skipped) and the tokens
  // each produced up to and including end of sequence.
  std::vector<std::pair<std::string, int64_t>> answer(
      const std::vector<std::string>& anchor_texts,
      const std::vector<std::vector<std::string>>& other_texts,
      const model::GenerationOptions& options, const torch::Tensor& tasks = {});
  // Attention, gate and norms of the head on each input.
  std::vector<FusionInspection> inspect(const std::vector<std::string>& anchor_texts,
                                        const std::vector<std::vector<std::string>>& other_texts,
                                        const torch::Tensor& tasks = {});
  // What answering one input costs: every augmenting agent's call (its encoder, and its own
  // decoding for decoder states), the anchor's second encoder pass when queries and injection
  // differ, the head's projections and attention, and the anchor's answer.
  ComputeCost call_cost(const std::string& anchor_text, const std::vector<std::string>& other_texts,
                        int64_t anchor_output_tokens,
                        const std::vector<int64_t>& other_output_tokens) const;

 private:
  std::string name_;
  Agent anchor_;
  std::vector<Agent> augmenting_;
  FusionTeamOptions options_;
  CrossAgentFusion head_{nullptr};
};

// Token ids of each row of `sequences` after the decoder start token, up to and including the
// first `eos` (the tokens an answer costs).
std::vector<std::vector<int64_t>> generated_tokens(const torch::Tensor& sequences, int64_t eos);

}  // namespace chorus::collab
