// Readers of the mechanism kinds: agent, vote, self_consistency, negotiation, consensus_rules,
// pipeline.
#include <memory>

#include "collab/systems.h"
#include "common/error.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "experiment/generation_config.h"
#include "experiment/kinds/kinds.h"
#include "experiment/registry.h"

namespace chorus::experiment {
namespace {

// `agents: [a, b]`, each a declared agent.
std::vector<std::string> read_agents(const ConfigView& v, const ReadContext& c,
                                     const std::string& key = "agents") {
  const auto names = v.get<std::vector<std::string>>(key);
  for (const auto& n : names) c.check_agent(v, key, n);
  for (size_t i = 0; i < names.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      CHORUS_CHECK(names[i] != names[j], v.origin(key), ": ", v.key_path(key), ": agent '",
                   names[i], "' listed twice");
    }
  }
  return names;
}

std::vector<collab::MemberPtr> members_of(const BuildContext& b,
                                          const std::vector<std::string>& names) {
  std::vector<collab::MemberPtr> out;
  for (const auto& n : names) out.push_back(b.member(n));
  return out;
}

// A member with the system's own generation overrides, when it has any.
collab::MemberPtr with_generation(const collab::MemberPtr& member,
                                  const std::shared_ptr<ConfigView>& overrides) {
  if (!overrides) return member;
  auto copy = std::make_shared<collab::Member>(*member);
  copy->generation = read_generation(*overrides, member->generation);
  return copy;
}

// Voting rule and utility: rule (majority | log_prob | weights | mbr), weights {agent: w}, utility
// (token_f1 | exact_match | bleu | chrf; mbr).
collab::VotingOptions read_voting(const ConfigView& v, const std::vector<std::string>& voters,
                                  const std::vector<std::string>& rules) {
  collab::VotingOptions o;
  o.rule = collab::vote_rule_from_string(v.get_choice("rule", rules, std::string("majority")));
  const auto weights = v.child_or_empty("weights");
  for (const auto& name : weights.keys())
    o.weights[name] = weights.get_double(name, std::nullopt, 0.0);
  const auto utility =
      v.get_choice("utility", {"token_f1", "exact_match", "bleu", "chrf"}, std::string("token_f1"));
  if (utility == "bleu" || utility == "chrf") {
    o.utility = "token_f1";  // replaced by the custom utility below
    if (utility == "bleu") {
      o.custom_utility = [](const std::string& h, const std::string& r) {
        static const eval::BleuScorer bleu;
        return bleu.sentence_score(h, {r}).score;
      };
    } else {
      o.custom_utility = [](const std::string& h, const std::string& r) {
        static const eval::ChrfScorer chrf;
        return chrf.sentence_score(h, {r}).score;
      };
    }
  } else {
    o.utility = utility;
  }
  try {
    collab::check_voting_options(o, voters);
  } catch (const Error& e) {
    throw Error(v.origin("rule") + ": " + v.path() + ": " + e.what());
  }
  return o;
}

// A system's generation overrides: checked now, applied over the member's options when built.
std::shared_ptr<ConfigView> generation_overrides(const ConfigView& v) {
  if (!v.has("generation")) return nullptr;
  auto view = std::make_shared<ConfigView>(v.child("generation"));
  (void)read_generation(*view, model::GenerationOptions{});
  return view;
}

SystemRecipe read_agent_system(const ConfigView& v, const std::string& name, const ReadContext& c) {
  SystemRecipe r;
  r.kind = "agent";
  const auto agent = v.get<std::string>("agent");
  c.check_agent(v, "agent", agent);
  r.agents = {agent};
  const auto overrides = generation_overrides(v);
  r.build = [name, agent, overrides](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::AgentSystem>(name, with_generation(b.member(agent), overrides));
  };
  return r;
}

SystemRecipe read_vote(const ConfigView& v, const std::string& name, const ReadContext& c) {
  SystemRecipe r;
  r.kind = "vote";
  r.agents = read_agents(v, c);
  CHORUS_CHECK(r.agents.size() >= 2, v.origin("agents"), ": ", v.key_path("agents"),
               ": a vote needs at least two agents");
  const auto options = read_voting(v, r.agents, {"majority", "log_prob", "weights", "mbr"});
  r.build = [name, agents = r.agents, options](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::VoteSystem>(name, members_of(b, agents), options);
  };
  return r;
}

SystemRecipe read_self_consistency(const ConfigView& v, const std::string& name,
                                   const ReadContext& c) {
  SystemRecipe r;
  r.kind = "self_consistency";
  const auto agent = v.get<std::string>("agent");
  c.check_agent(v, "agent", agent);
  r.agents = {agent};
  collab::SelfConsistencyOptions o;
  o.samples = v.get_int("samples", 5, 2, 64);
  o.temperature = v.get_double("temperature", 0.7, 1e-6);
  o.top_k = v.get_int("top_k", 0, 0);
  o.top_p = v.get_double("top_p", 1.0, 1e-6, 1.0);
  o.seed = static_cast<uint64_t>(v.get_int("seed", static_cast<int64_t>(c.seed), 0));
  std::vector<std::string> samplers;
  for (int64_t k = 0; k < o.samples; ++k) samplers.push_back(agent + "#" + std::to_string(k + 1));
  o.voting = read_voting(v, samplers, {"majority", "log_prob", "mbr"});
  r.build = [name, agent, o](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::SelfConsistencySystem>(name, b.member(agent), o);
  };
  return r;
}

SystemRecipe read_negotiation(const ConfigView& v, const std::string& name, const ReadContext& c) {
  SystemRecipe r;
  r.kind = "negotiation";
  r.agents = read_agents(v, c);
  CHORUS_CHECK(r.agents.size() >= 2, v.origin("agents"), ": ", v.key_path("agents"),
               ": a negotiation needs at least two agents");
  collab::NegotiationOptions o;
  o.rounds = v.get_int("rounds", 3, 1, 100);
  o.rule = collab::agreement_rule_from_string(
      v.get_choice("rule", {"unanimity", "majority", "judge"}, std::string("unanimity")));
  o.revise_template = v.get<std::string>("revise_template", o.revise_template);
  o.judge_template = v.get<std::string>("judge_template", o.judge_template);
  o.answer_format = v.get<std::string>("answer_format", o.answer_format);
  o.separator = v.get<std::string>("separator", o.separator);
  std::string judge;
  if (o.rule == collab::AgreementRule::judge) {
    judge = v.get<std::string>("judge");
    c.check_agent(v, "judge", judge);
    o.judge = judge;
  } else {
    CHORUS_CHECK(!v.has("judge"), v.origin("judge"), ": ", v.key_path("judge"),
                 ": a judge is only read under rule: judge (rule is ", collab::to_string(o.rule),
                 ")");
  }
  if (!judge.empty() && std::find(r.agents.begin(), r.agents.end(), judge) == r.agents.end())
    r.agents.push_back(judge);
  // The templates' slots are checked by building the mechanism once over stand-ins.
  {
    std::vector<collab::ResponderPtr> stand_ins;
    for (const auto& a : v.get<std::vector<std::string>>("agents"))
      stand_ins.push_back(std::make_shared<collab::ScriptedResponder>(a, collab::Response{}));
    auto stand_in_judge =
        judge.empty() ? nullptr
                      : std::make_shared<collab::ScriptedResponder>(judge, collab::Response{});
    try {
      collab::Negotiation check(stand_ins, o, stand_in_judge);
    } catch (const Error& e) {
      throw Error(v.origin("rounds") + ": " + v.path() + ": " + e.what());
    }
  }
  const auto participants = v.get<std::vector<std::string>>("agents");
  r.build = [name, participants, judge, o](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::NegotiationSystem>(name, members_of(b, participants), o,
                                                       judge.empty() ? nullptr : b.member(judge));
  };
  return r;
}

SystemRecipe read_consensus_rules(const ConfigView& v, const std::string& name,
                                  const ReadContext& c) {
  SystemRecipe r;
  r.kind = "consensus_rules";
  r.agents = read_agents(v, c);
  const auto rules = collab::ConsensusRules::from_config(v, "rules", r.agents).rules();
  r.build = [name, agents = r.agents, rules](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::ConsensusRulesSystem>(name, members_of(b, agents), rules);
  };
  return r;
}

// The pipeline's roles are read by collab's one pipeline reader: {name, responder, prompt}, where
// a responder is an agent of the experiment.
SystemRecipe read_pipeline(const ConfigView& v, const std::string& name, const ReadContext& c) {
  SystemRecipe r;
  r.kind = "pipeline";
  const auto config = collab::pipeline_config_from_config(v, {"kind"});
  const auto roles = v.list("roles");
  for (size_t i = 0; i < config.roles.size(); ++i) {
    c.check_agent(roles[i], "responder", config.roles[i].responder);
    const auto& agent = config.roles[i].responder;
    if (std::find(r.agents.begin(), r.agents.end(), agent) == r.agents.end())
      r.agents.push_back(agent);
  }
  r.build = [name, agents = r.agents, config](BuildContext& b) -> collab::SystemPtr {
    return std::make_shared<collab::PipelineSystem>(name, members_of(b, agents), config);
  };
  return r;
}

}  // namespace

void register_mechanism_kinds() {
  register_system_kind("agent", read_agent_system);
  register_system_kind("vote", read_vote);
  register_system_kind("self_consistency", read_self_consistency);
  register_system_kind("negotiation", read_negotiation);
  register_system_kind("consensus_rules", read_consensus_rules);
  register_system_kind("pipeline", read_pipeline);
}

}  // namespace chorus::experiment
