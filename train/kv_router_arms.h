// Arms of the router experiment: one agent, a pipeline, a vote, a negotiation, declared consensus
// rules, self-consistency or a learned answer selector (graph attention over the agents), read from
// router.arms and run over requests with the collab/ mechanisms, each request with its cost, the
// mechanism's decision and the messages exchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "collab/consensus_rules.h"
#include "collab/cost.h"
#include "collab/graph_attention.h"
#include "collab/graph_selection.h"
#include "collab/message.h"
#include "collab/negotiation.h"
#include "collab/responder.h"
#include "collab/voting.h"
#include "common/config.h"

namespace chorus::train {

enum class ArmKind {
  agent,
  pipeline,
  vote,
  negotiation,
  consensus,
  self_consistency,
  graph_select
};
std::string to_string(ArmKind kind);

struct ArmSpec {
  std::string name;
  ArmKind kind = ArmKind::agent;
  // The pipeline's stages in order; the participants of a vote, negotiation or consensus; the one
  // agent of agent and self_consistency.
  std::vector<std::string> agents;
  collab::VotingOptions voting;              // vote (rule, MBR utility)
  collab::NegotiationOptions negotiation;    // negotiation (rounds, rule, judge, templates)
  std::vector<collab::ConsensusRule> rules;  // consensus
  int64_t samples = 0;                       // self_consistency: answers drawn, >= 2
  double temperature = 0.7;                  // self_consistency sampling
  int64_t top_k = 0;                         // 0: off
  double top_p = 1.0;                        // 1: off
  uint64_t seed = 0;                         // self_consistency: the samples' seeds derive from it
  collab::GraphAttentionSpec graph;          // graph_select: the selector's graph over `agents`
  collab::GraphSelectorTrainingOptions selector_training;  // graph_select
  bool routed = true;  // the router may pick it (else a fixed system only)

  // Every agent the arm may call: its agents, then a judge that is not one of them.
  std::vector<std::string> members() const;
  // More than one distinct agent answers (a team; self-consistency is one agent, not a team).
  bool team() const { return members().size() > 1; }
};

// One line saying what the arm does.
std::string describe(const ArmSpec& arm);

// The graph block of a learned selector (`view`'s key graph: {dim, heads, head_dim, steps, seed,
// adjacency} over `nodes`), read by collab::graph_attention_from_config and checked by building the
// graph once. Errors name the key's origin and key path; a missing block says that `owner` (e.g.
// "an arm of kind graph_select") needs one.
collab::GraphAttentionSpec read_graph_block(const ConfigView& view,
                                            const std::vector<std::string>& nodes,
                                            const std::string& owner);
// A learned selector's training block {steps, batch_size, learning_rate, seed}; absent keys keep
// collab::GraphSelectorTrainingOptions' defaults. Other keys are left for the caller to read.
collab::GraphSelectorTrainingOptions read_selector_training(const ConfigView& train);

// Reads `router.arms` (a map: arm name -> {kind, agents, ...}) against the agents' names. Every
// error names the file and line (or the override) and the key, before any work: no arms, an arm
// without agents or with the wrong number, an unknown agent or judge, a self-consistency with fewer
// than two samples, a negotiation with fewer than one round, a template slot a mechanism does not
// fill, a consensus rule the rules reject, a graph_select without its graph block or with a graph
// that graph_attention_from_config or GraphAttention reject (an unknown node or key, a bad shape),
// no routed arm.
std::vector<ArmSpec> read_router_arms(const Config& config, const ConfigView& router,
                                      const std::vector<std::string>& agent_names);

// What an arm produced for some requests: one answer, cost, decision and message list each.
struct ArmOutputs {
  std::vector<std::string> answers;
  std::vector<collab::ComputeCost> costs;
  // What the mechanism decided (vote: winner, tie_broken, distinct answers; negotiation:
  // rounds_used, consensus, conflicts, resolution; consensus: rule, preferred; graph_select:
  // chosen, p_chosen, probabilities); {} for an agent or a pipeline.
  std::vector<nlohmann::json> outcomes;
  std::vector<std::vector<collab::Message>> messages;  // per request, when asked for
};

// How a graph_select arm's selector was trained.
struct SelectorFit {
  int64_t requests = 0;   // training requests its agents answered
  int64_t trainable = 0;  // of them, those with at least one right agent (the others are skipped)
  std::map<std::string, int64_t> right;  // per agent, the requests it answered right
  std::vector<double> losses;            // per training step
  double training_accuracy = 0;  // on the trainable requests, the chosen agent's answer is right
  std::map<std::string, int64_t> chosen;  // per agent, the training requests it was chosen for
  double answer_seconds = 0, train_seconds = 0;
  int64_t parameters = 0;
  double flops_per_decision = 0;
};

class ArmRunner {
 public:
  ArmRunner(const std::map<std::string, collab::Agent>& agents, int64_t max_new_tokens);
  // Runs `arm` on `inputs` only, in batches. Each request's cost adds the seq2seq_call_cost of
  // every agent call the mechanism made for it (read from its transcript), and for a graph_select
  // arm the selector's flops_per_decision; the wall time is spread evenly over the requests.
  // Self-consistency's samples draw from seeds that derive from the arm's seed, the sample's index
  // and how many batches this runner has sampled before. A graph_select arm needs fit_selector
  // first.
  ArmOutputs run(const ArmSpec& arm, const std::vector<std::string>& inputs,
                 bool keep_messages = false);

  // Trains the selector of a graph_select arm: its agents answer `inputs` once (greedy, as in run),
  // `is_right(i, answer)` says whether an answer to input i is right, and the selector learns from
  // the node features and that correctness (collab::train_graph_selector). Fitting again replaces
  // the selector. Errors: another kind of arm, no input with a right answer.
  SelectorFit fit_selector(const ArmSpec& arm, const std::vector<std::string>& inputs,
                           const std::function<bool(size_t, const std::string&)>& is_right);

 private:
  collab::ResponderPtr responder(const std::string& agent) const;
  std::vector<collab::Agent> agents_of(const ArmSpec& arm) const;

  std::map<std::string, collab::Agent> agents_;
  std::map<std::string, collab::ResponderPtr> responders_;  // greedy, one per agent
  std::map<std::string, collab::GraphSelector> selectors_;  // trained, per graph_select arm
  int64_t max_new_tokens_;
  uint64_t sampled_batches_ = 0;
};

// Counts over the outcomes of `arm` on some requests (null when the arm decides nothing): vote and
// self_consistency {requests, ties_broken, mean_distinct_answers}; negotiation {requests,
// requests_with_conflict, conflicts, mean_rounds, resolutions: {consensus, judge,
// fallback_majority}}; consensus {requests, fired: {"<rule index>: when -> prefer": n, "none": n}};
// graph_select {requests, chosen: {agent: n}, mean_p_chosen}.
nlohmann::json summarise_outcomes(const ArmSpec& arm,
                                  const std::vector<const nlohmann::json*>& outcomes);

}  // namespace chorus::train
