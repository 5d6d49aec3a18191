// The router experiment's arms: reading them from the config and running them with the collab/
// mechanisms (pipeline, voting, negotiation, consensus rules, graph selection), costed per request
// from the mechanisms' transcripts.
#include "train/kv_router_arms.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "collab/pipeline.h"
#include "common/error.h"
#include "train/seq2seq_training.h"

namespace chorus::train {
namespace {

using Clock = std::chrono::steady_clock;

// Requests per mechanism run: the agents generate over batches of this many prompts (the batch size
// the experiment used before mechanisms other than pipelines and votes were arms).
constexpr size_t kBatch = 250;

std::string joined(const std::vector<std::string>& names, const std::string& separator) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : separator) + n;
  return out;
}

// Slots of `text` outside `allowed` are an error naming the key.
void check_slots(const ConfigView& view, const std::string& key, const std::string& text,
                 const std::set<std::string>& allowed) {
  for (const auto& slot : collab::template_slots(text)) {
    if (allowed.count(slot) == 1) continue;
    std::vector<std::string> names;
    for (const auto& a : allowed) names.push_back("{" + a + "}");
    throw Error(view.origin(key) + ": " + view.key_path(key) + ": refers to '{" + slot +
                "}', which this mechanism does not fill (expected " + joined(names, ", ") + ")");
  }
}

}  // namespace

collab::GraphAttentionSpec read_graph_block(const ConfigView& view,
                                            const std::vector<std::string>& nodes,
                                            const std::string& owner) {
  const std::string where = view.origin("graph") + ": " + view.key_path("graph");
  CHORUS_CHECK(view.has("graph"), where, ": ", owner,
               " needs a graph block {dim, heads, steps, seed, adjacency} (graph attention over "
               "its agents)");
  // Every key through the reader that owns the block (each error at its key's line), then the
  // graph built once.
  auto spec = collab::graph_attention_from_config(view.child("graph"), nodes);
  try {
    collab::GraphAttention check(spec.options, spec.adjacency);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return spec;
}

collab::GraphSelectorTrainingOptions read_selector_training(const ConfigView& train) {
  collab::GraphSelectorTrainingOptions o;
  o.steps = train.get_int("steps", o.steps, 1);
  o.batch_size = train.get_int("batch_size", o.batch_size, 1);
  o.learning_rate = train.get_double("learning_rate", o.learning_rate, 1e-12);
  o.seed = static_cast<uint64_t>(train.get_int("seed", 0, 0));
  return o;
}

std::string to_string(ArmKind kind) {
  switch (kind) {
    case ArmKind::agent:
      return "agent";
    case ArmKind::pipeline:
      return "pipeline";
    case ArmKind::vote:
      return "vote";
    case ArmKind::negotiation:
      return "negotiation";
    case ArmKind::consensus:
      return "consensus";
    case ArmKind::self_consistency:
      return "self_consistency";
    case ArmKind::graph_select:
      return "graph_select";
  }
  return "?";
}

std::vector<std::string> ArmSpec::members() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& name) {
    if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  };
  for (const auto& a : agents) add(a);
  if (kind == ArmKind::negotiation && negotiation.rule == collab::AgreementRule::judge)
    add(negotiation.judge);
  return out;
}

std::string describe(const ArmSpec& arm) {
  switch (arm.kind) {
    case ArmKind::agent:
      return "agent '" + arm.agents[0] + "' alone";
    case ArmKind::pipeline:
      return "text pipeline " + joined(arm.agents, " -> ") +
             " (each stage reads the previous stage's answer)";
    case ArmKind::vote:
      return "vote (" + collab::to_string(arm.voting.rule) +
             (arm.voting.rule == collab::VoteRule::minimum_bayes_risk
                  ? ", utility " + arm.voting.utility
                  : std::string()) +
             ") over " + joined(arm.agents, ", ");
    case ArmKind::negotiation: {
      const auto& o = arm.negotiation;
      return "negotiation among " + joined(arm.agents, ", ") + ": up to " +
             std::to_string(o.rounds) + " rounds, rule " + collab::to_string(o.rule) +
             (o.rule == collab::AgreementRule::judge ? " (judge " + o.judge + ")" : std::string()) +
             ", revising with '" + o.revise_template + "'";
    }
    case ArmKind::consensus: {
      std::string rules;
      for (const auto& r : arm.rules)
        rules += (rules.empty() ? "" : "; ") + ("when " + r.when + " prefer " + r.prefer);
      return "consensus rules over " + joined(arm.agents, ", ") + " (" + rules + ")";
    }
    case ArmKind::self_consistency: {
      char t[32];
      std::snprintf(t, sizeof t, "%g", arm.temperature);
      return "self-consistency: agent '" + arm.agents[0] + "' sampled " +
             std::to_string(arm.samples) + " times (temperature " + t + "), majority vote";
    }
    case ArmKind::graph_select: {
      const auto& g = arm.graph.options;
      return "learned answer selector over " + joined(arm.agents, ", ") +
             ": every agent answers, its pooled encoder and decoder states are a node, " +
             std::to_string(g.steps) + " steps of graph attention (dim " + std::to_string(g.dim) +
             ", " + std::to_string(g.heads) +
             " heads) and a score per node pick the answer to keep; trained on the training "
             "requests to put its probability on right answers";
    }
  }
  return arm.name;
}

std::vector<ArmSpec> read_router_arms(const Config& config, const ConfigView& router,
                                      const std::vector<std::string>& agent_names) {
  const auto arms = router.child_or_empty("arms");
  CHORUS_CHECK(
      !arms.keys().empty(), config.origin("router.arms"),
      ": router.arms: a router needs at least one arm (e.g. kv: {kind: agent, agents: [kv]})");
  auto check_agent = [&](const ConfigView& view, const std::string& key, const std::string& agent) {
    if (std::find(agent_names.begin(), agent_names.end(), agent) != agent_names.end()) return;
    throw Error(view.origin(key) + ": " + view.key_path(key) + ": no agent called '" + agent +
                "' (agents: " + joined(agent_names, ", ") + ")");
  };
  std::vector<ArmSpec> out;
  for (const auto& name : arms.keys()) {
    const auto view = arms.child(name);
    const auto where = view.key_path("agents");
    ArmSpec arm;
    arm.name = name;
    const auto kind =
        view.get_choice("kind", {"agent", "pipeline", "vote", "negotiation", "consensus",
                                 "self_consistency", "graph_select"});
    for (auto k : {ArmKind::agent, ArmKind::pipeline, ArmKind::vote, ArmKind::negotiation,
                   ArmKind::consensus, ArmKind::self_consistency, ArmKind::graph_select}) {
      if (to_string(k) == kind) arm.kind = k;
    }
    arm.routed = view.get<bool>("route", true);
    arm.agents = view.get<std::vector<std::string>>("agents");
    CHORUS_CHECK(!arm.agents.empty(), view.origin("agents"), ": ", where,
                 ": an arm needs at least one agent");
    const bool single = arm.kind == ArmKind::agent || arm.kind == ArmKind::self_consistency;
    if (single) {
      CHORUS_CHECK(arm.agents.size() == 1, view.origin("agents"), ": ", where, ": an arm of kind ",
                   kind, " has exactly one agent, got ", arm.agents.size());
    } else {
      CHORUS_CHECK(arm.agents.size() >= 2, view.origin("agents"), ": ", where, ": an arm of kind ",
                   kind, " needs at least two agents, got ", arm.agents.size());
    }
    for (const auto& agent : arm.agents) check_agent(view, "agents", agent);
    if (arm.kind != ArmKind::pipeline && arm.kind != ArmKind::self_consistency) {
      const std::set<std::string> distinct(arm.agents.begin(), arm.agents.end());
      CHORUS_CHECK(distinct.size() == arm.agents.size(), view.origin("agents"), ": ", where,
                   ": an agent is listed twice (each participant answers once)");
    }

    switch (arm.kind) {
      case ArmKind::agent:
      case ArmKind::pipeline:
        break;
      case ArmKind::vote: {
        arm.voting.rule = collab::vote_rule_from_string(
            view.get_choice("rule", {"majority", "log_prob", "mbr"}, std::string("log_prob")));
        if (arm.voting.rule == collab::VoteRule::minimum_bayes_risk) {
          arm.voting.utility =
              view.get_choice("utility", {"token_f1", "exact_match"}, std::string("token_f1"));
        }
        break;
      }
      case ArmKind::negotiation: {
        auto& o = arm.negotiation;
        o.rounds = view.get_int("rounds", 3, 1, 100);
        o.rule = collab::agreement_rule_from_string(
            view.get_choice("rule", {"unanimity", "majority", "judge"}, std::string("unanimity")));
        if (o.rule == collab::AgreementRule::judge) {
          o.judge = view.get<std::string>("judge");
          check_agent(view, "judge", o.judge);
        } else {
          CHORUS_CHECK(!view.has("judge"), view.origin("judge"), ": ", view.key_path("judge"),
                       ": a judge is asked only with rule: judge (the rule is ",
                       collab::to_string(o.rule), ")");
          view.get<std::string>("judge", "");
        }
        o.revise_template = view.get<std::string>("revise_template", o.revise_template);
        o.judge_template = view.get<std::string>("judge_template", o.judge_template);
        o.answer_format = view.get<std::string>("answer_format", o.answer_format);
        o.separator = view.get<std::string>("separator", o.separator);
        check_slots(view, "revise_template", o.revise_template, {"input", "others"});
        check_slots(view, "judge_template", o.judge_template, {"input", "answers"});
        check_slots(view, "answer_format", o.answer_format, {"name", "answer"});
        break;
      }
      case ArmKind::consensus: {
        arm.rules = collab::ConsensusRules::from_config(view, "rules", arm.agents).rules();
        break;
      }
      case ArmKind::self_consistency: {
        arm.samples = view.get_int("samples", std::nullopt, 2, 64);
        arm.temperature = view.get_double("temperature", 0.7, 1e-3, 100.0);
        arm.top_k = view.get_int("top_k", 0, 0);
        arm.top_p = view.get_double("top_p", 1.0, 1e-6, 1.0);
        arm.seed = static_cast<uint64_t>(view.get_int("seed", 0, 0));
        break;
      }
      case ArmKind::graph_select: {
        arm.graph = read_graph_block(view, arm.agents, "an arm of kind graph_select");
        arm.selector_training = read_selector_training(view.child_or_empty("train"));
        break;
      }
    }
    out.push_back(std::move(arm));
  }
  CHORUS_CHECK(std::any_of(out.begin(), out.end(), [](const ArmSpec& a) { return a.routed; }),
               config.origin("router.arms"),
               ": router.arms: every arm has route: false; the router needs at least one arm to "
               "pick from");
  return out;
}

ArmRunner::ArmRunner(const std::map<std::string, collab::Agent>& agents, int64_t max_new_tokens)
    : agents_(agents), max_new_tokens_(max_new_tokens) {
  for (const auto& [name, agent] : agents_) {
    responders_.emplace(name, std::make_shared<collab::AgentResponder>(
                                  agent, collab::greedy_generation(max_new_tokens_)));
  }
}

collab::ResponderPtr ArmRunner::responder(const std::string& agent) const {
  return responders_.at(agent);
}

std::vector<collab::Agent> ArmRunner::agents_of(const ArmSpec& arm) const {
  std::vector<collab::Agent> out;
  for (const auto& a : arm.agents) out.push_back(agents_.at(a));
  return out;
}

SelectorFit ArmRunner::fit_selector(
    const ArmSpec& arm, const std::vector<std::string>& inputs,
    const std::function<bool(size_t, const std::string&)>& is_right) {
  CHORUS_CHECK(arm.kind == ArmKind::graph_select, "arm '", arm.name, "' is of kind ",
               to_string(arm.kind), "; only a graph_select arm has a selector to fit");
  SelectorFit fit;
  auto start = Clock::now();
  const auto nodes = agents_of(arm);
  const auto n = static_cast<int64_t>(nodes.size());
  std::vector<std::vector<torch::Tensor>> parts(nodes.size());
  auto right = torch::zeros({static_cast<int64_t>(inputs.size()), n}, torch::kBool);
  for (size_t begin = 0; begin < inputs.size(); begin += kBatch) {
    const size_t end = std::min(inputs.size(), begin + kBatch);
    const std::vector<std::string> part(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                        inputs.begin() + static_cast<std::ptrdiff_t>(end));
    const auto answers = collab::ask_nodes(nodes, part, collab::greedy_generation(max_new_tokens_),
                                           "graph_select", nullptr);
    for (size_t node = 0; node < nodes.size(); ++node) {
      parts[node].push_back(answers.features[node]);
      for (size_t e = 0; e < part.size(); ++e) {
        if (is_right(begin + e, answers.answers[e][node].text)) {
          right.index_put_({static_cast<int64_t>(begin + e), static_cast<int64_t>(node)}, true);
        }
      }
    }
  }
  std::vector<torch::Tensor> features;
  for (auto& p : parts) features.push_back(torch::cat(p, 0));
  fit.answer_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  fit.requests = static_cast<int64_t>(inputs.size());
  for (size_t node = 0; node < nodes.size(); ++node) {
    fit.right[arm.agents[node]] =
        right.select(1, static_cast<int64_t>(node)).sum().item<int64_t>();
  }

  collab::GraphSelectorFit trained;
  try {
    trained = collab::fit_graph_selector(nodes, arm.graph, features, right, arm.selector_training);
  } catch (const Error& e) {
    throw Error("graph_select arm '" + arm.name + "': " + e.what());
  }
  fit.losses = trained.log.losses;
  fit.trainable = trained.log.trainable;
  fit.train_seconds = trained.seconds;
  for (const auto& a : arm.agents) fit.chosen[a] = 0;
  for (const auto c : trained.chosen) fit.chosen[arm.agents[static_cast<size_t>(c)]] += 1;
  fit.training_accuracy = trained.training_accuracy;
  fit.parameters = trained.selector->parameter_count();
  fit.flops_per_decision = trained.selector->flops_per_decision();
  selectors_.insert_or_assign(arm.name, trained.selector);
  return fit;
}

ArmOutputs ArmRunner::run(const ArmSpec& arm, const std::vector<std::string>& inputs,
                          bool keep_messages) {
  const auto start = Clock::now();
  ArmOutputs out;
  out.answers.resize(inputs.size());
  out.costs.resize(inputs.size());
  out.outcomes.assign(inputs.size(), nlohmann::json::object());
  if (keep_messages) out.messages.resize(inputs.size());

  for (size_t begin = 0; begin < inputs.size(); begin += kBatch) {
    const size_t end = std::min(inputs.size(), begin + kBatch);
    const std::vector<std::string> part(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                        inputs.begin() + static_cast<std::ptrdiff_t>(end));
    collab::Transcript transcript;
    std::map<std::string, std::string> agent_of;  // responder name -> agent
    for (const auto& a : arm.members()) agent_of[a] = a;

    switch (arm.kind) {
      case ArmKind::agent:
      case ArmKind::pipeline: {  // an agent alone is a pipeline of one stage
        collab::PipelineConfig pipeline;
        std::vector<collab::ResponderPtr> responders;
        for (size_t s = 0; s < arm.agents.size(); ++s) {
          const std::string role = "stage-" + std::to_string(s + 1);
          pipeline.roles.push_back(
              {role, arm.agents[s], s == 0 ? "{input}" : "{stage-" + std::to_string(s) + "}"});
        }
        for (const auto& a : arm.members()) responders.push_back(responder(a));
        const auto result = collab::Pipeline(pipeline, responders).run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) out.answers[begin + i] = result.outputs[i];
        break;
      }
      case ArmKind::vote: {
        std::vector<collab::ResponderPtr> responders;
        for (const auto& a : arm.agents) responders.push_back(responder(a));
        const auto outcomes = collab::Voting(responders, arm.voting).run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) {
          out.answers[begin + i] = outcomes[i].answer;
          out.outcomes[begin + i] = {{"winner", arm.agents[outcomes[i].winner]},
                                     {"tie_broken", outcomes[i].tie_broken},
                                     {"distinct_answers", outcomes[i].tally.size()}};
        }
        break;
      }
      case ArmKind::self_consistency: {
        std::vector<collab::ResponderPtr> samplers;
        const uint64_t batch = sampled_batches_++;
        for (int64_t k = 0; k < arm.samples; ++k) {
          auto options = collab::greedy_generation(max_new_tokens_);
          options.do_sample = true;
          options.temperature = arm.temperature;
          options.top_k = arm.top_k;
          options.top_p = arm.top_p;
          options.seed = stream_seed(arm.seed, k, static_cast<int64_t>(batch));
          // Each sample is a responder of its own name, over the same agent.
          auto agent = agents_.at(arm.agents[0]);
          agent.name = arm.agents[0] + "#" + std::to_string(k + 1);
          agent_of[agent.name] = arm.agents[0];
          samplers.push_back(std::make_shared<collab::AgentResponder>(std::move(agent), options));
        }
        const auto outcomes = collab::Voting(samplers, arm.voting).run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) {
          out.answers[begin + i] = outcomes[i].answer;
          out.outcomes[begin + i] = {{"winner", samplers[outcomes[i].winner]->name()},
                                     {"tie_broken", outcomes[i].tie_broken},
                                     {"distinct_answers", outcomes[i].tally.size()}};
        }
        break;
      }
      case ArmKind::negotiation: {
        std::vector<collab::ResponderPtr> responders;
        for (const auto& a : arm.agents) responders.push_back(responder(a));
        const auto judge = arm.negotiation.rule == collab::AgreementRule::judge
                               ? responder(arm.negotiation.judge)
                               : nullptr;
        const auto outcomes =
            collab::Negotiation(responders, arm.negotiation, judge).run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) {
          const auto& o = outcomes[i];
          out.answers[begin + i] = o.answer;
          out.outcomes[begin + i] = {{"rounds_used", o.rounds_used},
                                     {"consensus", o.consensus},
                                     {"conflicts", o.conflicts},
                                     {"resolution", collab::to_string(o.resolution)}};
        }
        break;
      }
      case ArmKind::consensus: {
        std::vector<collab::ResponderPtr> responders;
        for (const auto& a : arm.agents) responders.push_back(responder(a));
        const auto decisions =
            collab::RuleBasedConsensus(responders, arm.rules).run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) {
          out.answers[begin + i] = decisions[i].answer;
          out.outcomes[begin + i] = {{"rule", decisions[i].rule},
                                     {"preferred", decisions[i].preferred}};
        }
        break;
      }
      case ArmKind::graph_select: {
        const auto selector = selectors_.find(arm.name);
        CHORUS_CHECK(selector != selectors_.end(), "graph_select arm '", arm.name,
                     "' has no trained selector (fit_selector comes first)");
        collab::GraphSelection selection(agents_of(arm), selector->second,
                                         collab::greedy_generation(max_new_tokens_));
        const auto outcomes = selection.run(part, &transcript);
        for (size_t i = 0; i < part.size(); ++i) {
          const auto& o = outcomes[i];
          nlohmann::json probabilities = nlohmann::json::object();
          for (size_t a = 0; a < arm.agents.size(); ++a)
            probabilities[arm.agents[a]] = o.probabilities[a];
          out.answers[begin + i] = o.answer;
          out.outcomes[begin + i] = {{"chosen", arm.agents[static_cast<size_t>(o.chosen)]},
                                     {"p_chosen", o.probabilities[static_cast<size_t>(o.chosen)]},
                                     {"probabilities", probabilities}};
        }
        break;
      }
    }

    // Costs and messages from the transcript: every message an agent sent is one call on its
    // prompt (metadata: example, prompt, tokens generated).
    for (auto& message : transcript.messages()) {
      const auto example = message.metadata.value("example", int64_t{-1});
      if (example < 0 || static_cast<size_t>(example) >= part.size()) continue;
      const size_t i = begin + static_cast<size_t>(example);
      const auto agent = agent_of.find(message.sender);
      if (agent != agent_of.end() && message.metadata.contains("prompt") &&
          message.metadata.contains("tokens")) {
        const auto& a = agents_.at(agent->second);
        const auto prompt = message.metadata["prompt"].get<std::string>();
        const auto tokens_in =
            static_cast<int64_t>(a.tokenizer->encode(a.prompt(prompt), true).size());
        out.costs[i] += collab::seq2seq_call_cost(*a.model, tokens_in,
                                                  message.metadata["tokens"].get<int64_t>());
      }
      if (keep_messages) {
        auto copy = message;
        copy.metadata["example"] = static_cast<int64_t>(i);
        out.messages[i].push_back(std::move(copy));
      }
    }
  }
  const double seconds = inputs.empty()
                             ? 0.0
                             : std::chrono::duration<double>(Clock::now() - start).count() /
                                   static_cast<double>(inputs.size());
  // The selector's own arithmetic, as the router's decisions are counted.
  const auto selector = selectors_.find(arm.name);
  const double selector_flops = arm.kind == ArmKind::graph_select && selector != selectors_.end()
                                    ? selector->second->flops_per_decision()
                                    : 0.0;
  for (auto& c : out.costs) {
    c.seconds = seconds;
    c.flops += selector_flops;
  }
  return out;
}

nlohmann::json summarise_outcomes(const ArmSpec& arm,
                                  const std::vector<const nlohmann::json*>& outcomes) {
  const auto n = static_cast<double>(outcomes.size());
  switch (arm.kind) {
    case ArmKind::agent:
    case ArmKind::pipeline:
      return nullptr;
    case ArmKind::vote:
    case ArmKind::self_consistency: {
      int64_t ties = 0;
      double distinct = 0;
      for (const auto* o : outcomes) {
        ties += (*o)["tie_broken"].get<bool>() ? 1 : 0;
        distinct += (*o)["distinct_answers"].get<double>();
      }
      return {{"requests", outcomes.size()},
              {"ties_broken", ties},
              {"mean_distinct_answers", n > 0 ? distinct / n : 0.0}};
    }
    case ArmKind::negotiation: {
      int64_t with_conflict = 0, conflicts = 0;
      double rounds = 0;
      nlohmann::json resolutions = {{"consensus", 0}, {"judge", 0}, {"fallback_majority", 0}};
      for (const auto* o : outcomes) {
        const auto c = (*o)["conflicts"].get<int64_t>();
        conflicts += c;
        with_conflict += c > 0 ? 1 : 0;
        rounds += (*o)["rounds_used"].get<double>();
        const auto r = (*o)["resolution"].get<std::string>();
        resolutions[r] = resolutions[r].get<int64_t>() + 1;
      }
      return {{"requests", outcomes.size()},
              {"requests_with_conflict", with_conflict},
              {"conflicts", conflicts},
              {"mean_rounds", n > 0 ? rounds / n : 0.0},
              {"resolutions", resolutions}};
    }
    case ArmKind::consensus: {
      nlohmann::json fired = nlohmann::json::object();
      for (size_t r = 0; r < arm.rules.size(); ++r)
        fired[std::to_string(r) + ": " + arm.rules[r].when + " -> " + arm.rules[r].prefer] = 0;
      fired["none"] = 0;
      for (const auto* o : outcomes) {
        const auto r = (*o)["rule"].get<int64_t>();
        const std::string key = r < 0 ? "none"
                                      : std::to_string(r) + ": " +
                                            arm.rules[static_cast<size_t>(r)].when + " -> " +
                                            arm.rules[static_cast<size_t>(r)].prefer;
        fired[key] = fired[key].get<int64_t>() + 1;
      }
      return {{"requests", outcomes.size()}, {"fired", fired}};
    }
    case ArmKind::graph_select: {
      nlohmann::json chosen = nlohmann::json::object();
      for (const auto& a : arm.agents) chosen[a] = 0;
      double p_chosen = 0;
      for (const auto* o : outcomes) {
        const auto agent = (*o)["chosen"].get<std::string>();
        chosen[agent] = chosen[agent].get<int64_t>() + 1;
        p_chosen += (*o)["p_chosen"].get<double>();
      }
      return {{"requests", outcomes.size()},
              {"chosen", chosen},
              {"mean_p_chosen", n > 0 ? p_chosen / n : 0.0}};
    }
  }
  return nullptr;
}

}  // namespace chorus::train
