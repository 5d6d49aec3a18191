// The system kinds built on the collaboration mechanisms: an agent alone, votes, self-consistency,
// negotiation, consensus rules, pipelines of roles, fusion teams and learned selection. Each wraps
// one mechanism over Members and reports per-example costs read from its transcript.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "collab/consensus_rules.h"
#include "collab/fusion_team.h"
#include "collab/graph_selection.h"
#include "collab/negotiation.h"
#include "collab/pipeline.h"
#include "collab/system.h"
#include "collab/voting.h"

namespace chorus::collab {

// One agent answering alone with its own generation options.
class AgentSystem final : public System {
 public:
  AgentSystem(std::string name, MemberPtr member);
  std::string kind() const override { return "agent"; }
  std::string description() const override;
  std::vector<std::string> agents() const override { return {member_->agent.name}; }
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;

 private:
  MemberPtr member_;
};

// Every member answers; one vote per example (majority, log-probability weighted, learned
// weights, or minimum Bayes risk with a utility).
class VoteSystem final : public System {
 public:
  VoteSystem(std::string name, std::vector<MemberPtr> members, VotingOptions options);
  std::string kind() const override { return "vote"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const override;

 private:
  std::vector<MemberPtr> members_;
  VotingOptions options_;
};

// One member sampled `samples` times (each sample a responder of its own seed), then a vote.
struct SelfConsistencyOptions {
  int64_t samples = 5;
  double temperature = 0.7;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;  // sample k of batch b draws from a seed derived from (seed, k, b)
  VotingOptions voting;
};
class SelfConsistencySystem final : public System {
 public:
  SelfConsistencySystem(std::string name, MemberPtr member, SelfConsistencyOptions options);
  std::string kind() const override { return "self_consistency"; }
  std::string description() const override;
  std::vector<std::string> agents() const override { return {member_->agent.name}; }
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const override;

 private:
  MemberPtr member_;
  SelfConsistencyOptions options_;
  uint64_t batches_ = 0;
};

// Multi-round negotiation (debate) with a consensus rule and an optional judge.
class NegotiationSystem final : public System {
 public:
  NegotiationSystem(std::string name, std::vector<MemberPtr> members, NegotiationOptions options,
                    MemberPtr judge = nullptr);
  std::string kind() const override { return "negotiation"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const override;

 private:
  std::vector<MemberPtr> members_;
  NegotiationOptions options_;
  MemberPtr judge_;
};

// Declared rules that say whose answer to prefer.
class ConsensusRulesSystem final : public System {
 public:
  ConsensusRulesSystem(std::string name, std::vector<MemberPtr> members,
                       std::vector<ConsensusRule> rules);
  std::string kind() const override { return "consensus_rules"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const override;

 private:
  std::vector<MemberPtr> members_;
  std::vector<ConsensusRule> rules_;
};

// A graph of roles (understand -> generate); a role's responder is a member, by agent name.
class PipelineSystem final : public System {
 public:
  PipelineSystem(std::string name, std::vector<MemberPtr> members, PipelineConfig config);
  std::string kind() const override { return "pipeline"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;

 private:
  std::vector<MemberPtr> members_;
  PipelineConfig config_;
};

// A fusion team answering: the augmenting members read their own prompts for the example, the
// anchor answers from its fused encoder with its generation options. A task-conditioned head
// answers each task as the entry of the training mix it was trained under (`task_index`).
class FusionSystem final : public System {
 public:
  FusionSystem(std::string name, std::shared_ptr<FusionTeam> team, MemberPtr anchor,
               std::vector<MemberPtr> augmenting, std::map<std::string, int64_t> task_index = {});
  std::string kind() const override { return "fusion"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  FusionTeam& team() { return *team_; }
  // The texts each agent reads for the batch: anchor_texts[b], other_texts[a][b].
  std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>> texts(
      const Batch& batch) const;
  // The task ids of a batch of `task` for a task-conditioned head (undefined otherwise).
  torch::Tensor task_ids(const std::string& task, size_t rows) const;

 private:
  std::shared_ptr<FusionTeam> team_;
  MemberPtr anchor_;
  std::vector<MemberPtr> augmenting_;
  std::map<std::string, int64_t> task_index_;
};

// Learned answer selection: every member answers, a trained graph-attention selector over their
// states keeps one answer.
class GraphSelectSystem final : public System {
 public:
  GraphSelectSystem(std::string name, std::vector<MemberPtr> members, GraphSelector selector);
  std::string kind() const override { return "graph_select"; }
  std::string description() const override;
  std::vector<std::string> agents() const override;
  std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) override;
  nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const override;
  // Every member's answers and node features on a batch (for training the selector).
  NodeAnswers ask(const Batch& batch, Transcript* transcript) const;

 private:
  std::vector<MemberPtr> members_;
  GraphSelector selector_;
};

// The texts each member reads for a batch, as agents with the template already applied (for
// mechanisms that take per-agent inputs): agents[i] has prompt_template "{input}".
std::vector<Agent> plain_agents(const std::vector<MemberPtr>& members);
std::vector<std::vector<std::string>> member_texts(const std::vector<MemberPtr>& members,
                                                   const Batch& batch);

}  // namespace chorus::collab
