// The system kinds: each runs one mechanism over members and reads per-example costs from its
// transcript.
#include "collab/systems.h"

#include <torch/torch.h>

#include <chrono>

#include "common/error.h"
#include "common/seeds.h"

namespace chorus::collab {
namespace {

using Clock = std::chrono::steady_clock;

std::string names_of(const std::vector<MemberPtr>& members) {
  std::string out;
  for (const auto& m : members) out += (out.empty() ? "" : ", ") + m->agent.name;
  return out;
}

std::vector<std::string> agent_names(const std::vector<MemberPtr>& members) {
  std::vector<std::string> out;
  for (const auto& m : members) out.push_back(m->agent.name);
  return out;
}

std::vector<std::shared_ptr<AgentResponder>> responders_for(const std::vector<MemberPtr>& members,
                                                            const Batch& batch) {
  std::vector<std::shared_ptr<AgentResponder>> out;
  for (const auto& m : members) out.push_back(member_responder(*m, batch, m->generation));
  return out;
}

std::vector<ResponderPtr> as_responders(
    const std::vector<std::shared_ptr<AgentResponder>>& responders) {
  return {responders.begin(), responders.end()};
}

// Answers with their costs: the transcript's calls, and the batch's wall time shared evenly.
std::vector<SystemAnswer> with_costs(std::vector<SystemAnswer> answers,
                                     const Transcript& transcript,
                                     const std::vector<std::shared_ptr<AgentResponder>>& responders,
                                     Clock::time_point start) {
  const auto costs = costs_from_transcript(transcript, responders, answers.size());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count() /
                         static_cast<double>(std::max<size_t>(1, answers.size()));
  for (size_t i = 0; i < answers.size(); ++i) {
    answers[i].cost += costs[i];
    answers[i].cost.seconds = seconds;
  }
  return answers;
}

// Appends `local`'s messages to `transcript`, if any.
void keep(Transcript& local, Transcript* transcript) {
  if (transcript == nullptr) return;
  for (const auto& m : local.messages()) transcript->append(m);
}

nlohmann::json vote_summary(const std::vector<SystemAnswer>& answers) {
  int64_t ties = 0;
  double distinct = 0;
  nlohmann::json winners = nlohmann::json::object();
  for (const auto& a : answers) {
    ties += a.details.value("tie_broken", false) ? 1 : 0;
    distinct += a.details.value("distinct_answers", 0.0);
    const auto w = a.details.value("winner", std::string());
    winners[w] = winners.value(w, int64_t{0}) + 1;
  }
  const double n = static_cast<double>(std::max<size_t>(1, answers.size()));
  return {{"requests", answers.size()},
          {"ties_broken", ties},
          {"mean_distinct_answers", distinct / n},
          {"winners", winners}};
}

}  // namespace

// --- agent
// -----------------------------------------------------------------------------------------

AgentSystem::AgentSystem(std::string name, MemberPtr member)
    : System(std::move(name)), member_(std::move(member)) {}

std::string AgentSystem::description() const {
  return "agent '" + member_->agent.name + "' alone" +
         (member_->agent.role.empty() ? "" : " (" + member_->agent.role + ")");
}

std::vector<SystemAnswer> AgentSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  const auto responders = responders_for({member_}, batch);
  Transcript local;
  const auto answers = ask_all(as_responders(responders), batch.inputs(), "answer", 0, &local);
  std::vector<SystemAnswer> out(answers.size());
  for (size_t i = 0; i < answers.size(); ++i) {
    out[i].text = answers[i][0].text;
    out[i].details = {{"log_prob", answers[i][0].log_prob}};
  }
  out = with_costs(std::move(out), local, responders, start);
  keep(local, transcript);
  return out;
}

// --- vote
// ------------------------------------------------------------------------------------------

VoteSystem::VoteSystem(std::string name, std::vector<MemberPtr> members, VotingOptions options)
    : System(std::move(name)), members_(std::move(members)), options_(std::move(options)) {
  CHORUS_CHECK(members_.size() >= 2, "system '", this->name(),
               "': a vote needs at least two agents (got ", members_.size(), ")");
  check_voting_options(options_, agent_names(members_));
}

std::string VoteSystem::description() const {
  return to_string(options_.rule) + " vote of " + names_of(members_);
}

std::vector<std::string> VoteSystem::agents() const { return agent_names(members_); }

std::vector<SystemAnswer> VoteSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  const auto responders = responders_for(members_, batch);
  Transcript local;
  const auto outcomes = Voting(as_responders(responders), options_).run(batch.inputs(), &local);
  std::vector<SystemAnswer> out(outcomes.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    out[i].text = outcomes[i].answer;
    out[i].details = {{"winner", members_[outcomes[i].winner]->agent.name},
                      {"tie_broken", outcomes[i].tie_broken},
                      {"distinct_answers", outcomes[i].tally.size()}};
  }
  out = with_costs(std::move(out), local, responders, start);
  keep(local, transcript);
  return out;
}

nlohmann::json VoteSystem::summarise(const std::vector<SystemAnswer>& answers) const {
  return vote_summary(answers);
}

// --- self-consistency
// ------------------------------------------------------------------------------

SelfConsistencySystem::SelfConsistencySystem(std::string name, MemberPtr member,
                                             SelfConsistencyOptions options)
    : System(std::move(name)), member_(std::move(member)), options_(std::move(options)) {
  CHORUS_CHECK(options_.samples >= 2, "system '", this->name(), "': samples = ", options_.samples,
               " (expected at least 2)");
  CHORUS_CHECK(options_.voting.rule == VoteRule::majority ||
                   options_.voting.rule == VoteRule::log_prob_weighted ||
                   options_.voting.rule == VoteRule::minimum_bayes_risk,
               "system '", this->name(),
               "': self-consistency votes by majority, log_prob or mbr (got ",
               to_string(options_.voting.rule), ")");
}

std::string SelfConsistencySystem::description() const {
  return std::to_string(options_.samples) + " samples of '" + member_->agent.name +
         "' (T = " + std::to_string(options_.temperature).substr(0, 4) + "), " +
         to_string(options_.voting.rule) + " vote";
}

std::vector<SystemAnswer> SelfConsistencySystem::answer(const Batch& batch,
                                                        Transcript* transcript) {
  const auto start = Clock::now();
  const uint64_t b = batches_++;
  std::vector<std::shared_ptr<AgentResponder>> samplers;
  for (int64_t k = 0; k < options_.samples; ++k) {
    auto generation = member_->generation;
    generation.do_sample = true;
    generation.num_beams = 1;
    generation.temperature = options_.temperature;
    generation.top_k = options_.top_k;
    generation.top_p = options_.top_p;
    generation.seed = stream_seed(options_.seed, k, static_cast<int64_t>(b));
    samplers.push_back(member_responder(*member_, batch, generation,
                                        member_->agent.name + "#" + std::to_string(k + 1)));
  }
  Transcript local;
  const auto outcomes =
      Voting(as_responders(samplers), options_.voting).run(batch.inputs(), &local);
  std::vector<SystemAnswer> out(outcomes.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    out[i].text = outcomes[i].answer;
    out[i].details = {{"winner", samplers[outcomes[i].winner]->name()},
                      {"tie_broken", outcomes[i].tie_broken},
                      {"distinct_answers", outcomes[i].tally.size()}};
  }
  out = with_costs(std::move(out), local, samplers, start);
  keep(local, transcript);
  return out;
}

nlohmann::json SelfConsistencySystem::summarise(const std::vector<SystemAnswer>& answers) const {
  auto s = vote_summary(answers);
  s.erase("winners");
  return s;
}

// --- negotiation
// -----------------------------------------------------------------------------------

NegotiationSystem::NegotiationSystem(std::string name, std::vector<MemberPtr> members,
                                     NegotiationOptions options, MemberPtr judge)
    : System(std::move(name)),
      members_(std::move(members)),
      options_(std::move(options)),
      judge_(std::move(judge)) {
  CHORUS_CHECK(members_.size() >= 2, "system '", this->name(),
               "': a negotiation needs at least two agents (got ", members_.size(), ")");
  CHORUS_CHECK((options_.rule == AgreementRule::judge) == (judge_ != nullptr), "system '",
               this->name(), "': a judge is named exactly when rule is judge");
  if (judge_) options_.judge = judge_->agent.name;
}

std::string NegotiationSystem::description() const {
  return "negotiation between " + names_of(members_) + ", at most " +
         std::to_string(options_.rounds) + " rounds, " + to_string(options_.rule) +
         (judge_ ? " (judge " + judge_->agent.name + ")" : "");
}

std::vector<std::string> NegotiationSystem::agents() const {
  auto out = agent_names(members_);
  if (judge_) out.push_back(judge_->agent.name);
  return out;
}

std::vector<SystemAnswer> NegotiationSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  auto responders = responders_for(members_, batch);
  std::shared_ptr<AgentResponder> judge;
  if (judge_) {  // a participant judges with its own responder; an outside judge gets one
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i]->agent.name == judge_->agent.name) judge = responders[i];
    }
    if (!judge) judge = member_responder(*judge_, batch, judge_->generation);
  }
  Transcript local;
  const auto outcomes =
      Negotiation(as_responders(responders), options_, judge).run(batch.inputs(), &local);
  if (judge && std::find(responders.begin(), responders.end(), judge) == responders.end())
    responders.push_back(judge);
  std::vector<SystemAnswer> out(outcomes.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    out[i].text = o.answer;
    out[i].details = {{"rounds_used", o.rounds_used},
                      {"consensus", o.consensus},
                      {"conflicts", o.conflicts},
                      {"resolution", to_string(o.resolution)}};
  }
  out = with_costs(std::move(out), local, responders, start);
  keep(local, transcript);
  return out;
}

nlohmann::json NegotiationSystem::summarise(const std::vector<SystemAnswer>& answers) const {
  int64_t with_conflict = 0, conflicts = 0;
  double rounds = 0;
  nlohmann::json resolutions = {{"consensus", 0}, {"judge", 0}, {"fallback_majority", 0}};
  for (const auto& a : answers) {
    const auto c = a.details.value("conflicts", int64_t{0});
    conflicts += c;
    with_conflict += c > 0 ? 1 : 0;
    rounds += a.details.value("rounds_used", 0.0);
    const auto r = a.details.value("resolution", std::string("consensus"));
    resolutions[r] = resolutions.value(r, int64_t{0}) + 1;
  }
  const double n = static_cast<double>(std::max<size_t>(1, answers.size()));
  return {{"requests", answers.size()},
          {"requests_with_conflict", with_conflict},
          {"conflicts", conflicts},
          {"mean_rounds", rounds / n},
          {"resolutions", resolutions}};
}

// --- consensus rules
// -------------------------------------------------------------------------------

ConsensusRulesSystem::ConsensusRulesSystem(std::string name, std::vector<MemberPtr> members,
                                           std::vector<ConsensusRule> rules)
    : System(std::move(name)), members_(std::move(members)), rules_(std::move(rules)) {
  ConsensusRules check(rules_, agent_names(members_));  // errors before any work
}

std::string ConsensusRulesSystem::description() const {
  return std::to_string(rules_.size()) + " consensus rules over " + names_of(members_);
}

std::vector<std::string> ConsensusRulesSystem::agents() const { return agent_names(members_); }

std::vector<SystemAnswer> ConsensusRulesSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  const auto responders = responders_for(members_, batch);
  Transcript local;
  const auto decisions =
      RuleBasedConsensus(as_responders(responders), rules_).run(batch.inputs(), &local);
  std::vector<SystemAnswer> out(decisions.size());
  for (size_t i = 0; i < decisions.size(); ++i) {
    out[i].text = decisions[i].answer;
    out[i].details = {{"rule", decisions[i].rule}, {"preferred", decisions[i].preferred}};
  }
  out = with_costs(std::move(out), local, responders, start);
  keep(local, transcript);
  return out;
}

nlohmann::json ConsensusRulesSystem::summarise(const std::vector<SystemAnswer>& answers) const {
  nlohmann::json fired = nlohmann::json::object();
  auto key_of = [&](int64_t r) {
    return r < 0 ? std::string("none")
                 : std::to_string(r) + ": " + rules_[static_cast<size_t>(r)].when + " -> " +
                       rules_[static_cast<size_t>(r)].prefer;
  };
  for (int64_t r = -1; r < static_cast<int64_t>(rules_.size()); ++r) fired[key_of(r)] = 0;
  for (const auto& a : answers) {
    const auto key = key_of(a.details.value("rule", int64_t{-1}));
    fired[key] = fired[key].get<int64_t>() + 1;
  }
  return {{"requests", answers.size()}, {"fired", fired}};
}

// --- pipeline
// --------------------------------------------------------------------------------------

PipelineSystem::PipelineSystem(std::string name, std::vector<MemberPtr> members,
                               PipelineConfig config)
    : System(std::move(name)), members_(std::move(members)), config_(std::move(config)) {
  std::vector<ResponderPtr> stand_ins;  // the graph is checked once here, before any work
  for (const auto& m : members_)
    stand_ins.push_back(std::make_shared<ScriptedResponder>(m->agent.name, Response{}));
  Pipeline check(config_, stand_ins);
}

std::string PipelineSystem::description() const {
  std::string out;
  for (const auto& role : config_.roles)
    out += (out.empty() ? "" : " -> ") + role.name + " (" + role.responder + ")";
  return "pipeline " + out;
}

std::vector<std::string> PipelineSystem::agents() const { return agent_names(members_); }

std::vector<SystemAnswer> PipelineSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  const auto responders = responders_for(members_, batch);
  Transcript local;
  const auto result = Pipeline(config_, as_responders(responders)).run(batch.inputs(), &local);
  std::vector<SystemAnswer> out(result.outputs.size());
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].text = result.outputs[i];
    for (const auto& [role, outputs] : result.role_outputs) out[i].details[role] = outputs[i];
  }
  out = with_costs(std::move(out), local, responders, start);
  keep(local, transcript);
  return out;
}

// --- fusion
// ----------------------------------------------------------------------------------------

FusionSystem::FusionSystem(std::string name, std::shared_ptr<FusionTeam> team, MemberPtr anchor,
                           std::vector<MemberPtr> augmenting,
                           std::map<std::string, int64_t> task_index)
    : System(std::move(name)),
      team_(std::move(team)),
      anchor_(std::move(anchor)),
      augmenting_(std::move(augmenting)),
      task_index_(std::move(task_index)) {}

std::string FusionSystem::description() const {
  const auto& o = team_->options();
  return "anchor '" + anchor_->agent.name + "' attending to " + names_of(augmenting_) + " (" +
         to_string(o.head.value_source) + " values from " + to_string(o.states) + " states, " +
         std::to_string(o.head.heads) + " head" + (o.head.heads == 1 ? "" : "s") + ")";
}

std::vector<std::string> FusionSystem::agents() const {
  auto out = agent_names(augmenting_);
  out.insert(out.begin(), anchor_->agent.name);
  return out;
}

std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>> FusionSystem::texts(
    const Batch& batch) const {
  std::vector<std::string> anchor;
  for (const auto* ex : batch.examples) anchor.push_back(anchor_->prompt_for(batch.task, *ex));
  return {anchor, member_texts(augmenting_, batch)};
}

torch::Tensor FusionSystem::task_ids(const std::string& task, size_t rows) const {
  if (team_->options().head.tasks == 0) return {};
  const auto it = task_index_.find(task);
  if (it == task_index_.end()) return {};  // a task the head never trained on: unconditioned
  return torch::full({static_cast<int64_t>(rows)}, it->second, torch::kInt64);
}

std::vector<SystemAnswer> FusionSystem::answer(const Batch& batch, Transcript* transcript) {
  const auto start = Clock::now();
  const auto [anchor_texts, other_texts] = texts(batch);
  const auto tasks = task_ids(batch.task, batch.examples.size());
  // The augmenting agents' own outputs (decoder states) are needed for the cost: ask them once.
  std::vector<std::vector<int64_t>> other_tokens(batch.examples.size(),
                                                 std::vector<int64_t>(augmenting_.size(), 0));
  if (team_->options().states == StatesSource::decoder) {
    const auto states = team_->augmenting_states(other_texts);
    for (size_t a = 0; a < states.size(); ++a) {
      const auto produced = states[a].mask.sum(1).to(torch::kCPU).contiguous();
      for (size_t i = 0; i < batch.examples.size(); ++i) {
        other_tokens[i][a] = produced[static_cast<int64_t>(i)].item<int64_t>();
      }
    }
  }
  const auto answers = team_->answer(anchor_texts, other_texts, anchor_->generation, tasks);
  std::vector<SystemAnswer> out(answers.size());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count() /
                         static_cast<double>(std::max<size_t>(1, answers.size()));
  for (size_t i = 0; i < answers.size(); ++i) {
    std::vector<std::string> others;
    for (const auto& t : other_texts) others.push_back(t[i]);
    out[i].text = answers[i].first;
    out[i].cost = team_->call_cost(anchor_texts[i], others, answers[i].second, other_tokens[i]);
    out[i].cost.seconds = seconds;
    if (transcript != nullptr) {
      transcript->append(Message::text_message("fusion", 0, anchor_->agent.name, {},
                                               answers[i].first,
                                               {{"example", static_cast<int64_t>(i)},
                                                {"tokens", answers[i].second},
                                                {"prompt", anchor_texts[i]}}));
    }
  }
  return out;
}

// --- graph selection
// -------------------------------------------------------------------------------

std::vector<Agent> plain_agents(const std::vector<MemberPtr>& members) {
  std::vector<Agent> out;
  for (const auto& m : members) {
    out.push_back(m->agent);
    out.back().prompt_template = "{input}";
  }
  return out;
}

std::vector<std::vector<std::string>> member_texts(const std::vector<MemberPtr>& members,
                                                   const Batch& batch) {
  std::vector<std::vector<std::string>> out;
  for (const auto& m : members) {
    std::vector<std::string> texts;
    for (const auto* ex : batch.examples) texts.push_back(m->prompt_for(batch.task, *ex));
    out.push_back(std::move(texts));
  }
  return out;
}

GraphSelectSystem::GraphSelectSystem(std::string name, std::vector<MemberPtr> members,
                                     GraphSelector selector)
    : System(std::move(name)), members_(std::move(members)), selector_(std::move(selector)) {
  CHORUS_CHECK(members_.size() >= 2, "system '", this->name(),
               "': graph selection needs at least two agents");
}

std::string GraphSelectSystem::description() const {
  return "learned graph-attention selector over " + names_of(members_);
}

std::vector<std::string> GraphSelectSystem::agents() const { return agent_names(members_); }

NodeAnswers GraphSelectSystem::ask(const Batch& batch, Transcript* transcript) const {
  return ask_nodes(plain_agents(members_), member_texts(members_, batch),
                   members_.front()->generation, "graph_select", transcript);
}

std::vector<SystemAnswer> GraphSelectSystem::answer(const Batch& batch, Transcript* transcript) {
  CHORUS_CHECK(selector_, "system '", name(), "' has no trained selector");
  const auto start = Clock::now();
  Transcript local;
  GraphSelection selection(plain_agents(members_), selector_, members_.front()->generation);
  const auto outcomes = selection.run(member_texts(members_, batch), &local);
  std::vector<SystemAnswer> out(outcomes.size());
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const auto& o = outcomes[i];
    nlohmann::json probabilities = nlohmann::json::object();
    for (size_t a = 0; a < members_.size(); ++a)
      probabilities[members_[a]->agent.name] = o.probabilities[a];
    out[i].text = o.answer;
    out[i].details = {{"chosen", members_[static_cast<size_t>(o.chosen)]->agent.name},
                      {"p_chosen", o.probabilities[static_cast<size_t>(o.chosen)]},
                      {"probabilities", probabilities}};
  }
  // Costs: each node's call on its own prompt (already rendered), plus the selector's arithmetic.
  std::vector<std::shared_ptr<AgentResponder>> accounts;
  for (const auto& agent : plain_agents(members_))
    accounts.push_back(std::make_shared<AgentResponder>(agent));
  out = with_costs(std::move(out), local, accounts, start);
  for (auto& a : out) a.cost.flops += selector_->flops_per_decision();
  keep(local, transcript);
  return out;
}

nlohmann::json GraphSelectSystem::summarise(const std::vector<SystemAnswer>& answers) const {
  nlohmann::json chosen = nlohmann::json::object();
  for (const auto& m : members_) chosen[m->agent.name] = 0;
  double p = 0;
  for (const auto& a : answers) {
    const auto agent = a.details.value("chosen", std::string());
    chosen[agent] = chosen.value(agent, int64_t{0}) + 1;
    p += a.details.value("p_chosen", 0.0);
  }
  return {{"requests", answers.size()},
          {"chosen", chosen},
          {"mean_p_chosen", p / static_cast<double>(std::max<size_t>(1, answers.size()))}};
}

}  // namespace chorus::collab
