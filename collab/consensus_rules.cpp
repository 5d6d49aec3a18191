// Declared consensus rules: validation, evaluation in order, and the mechanism that runs them.
#include "collab/consensus_rules.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/error.h"

namespace chorus::collab {

bool parses_as_number(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return false;
  const auto last = text.find_last_not_of(" \t\r\n");
  const std::string s = text.substr(first, last - first + 1);
  size_t i = 0;
  if (s[i] == '+' || s[i] == '-') ++i;
  bool digits = false, dot = false;
  for (; i < s.size(); ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      digits = true;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  return digits;
}

namespace {

bool known_responder(const std::string& prefer, const std::vector<std::string>& names) {
  return prefer == "majority" || std::find(names.begin(), names.end(), prefer) != names.end();
}

}  // namespace

ConsensusRules::Compiled ConsensusRules::compile(const std::string& when, const std::string& where) {
  Compiled c{Compiled::Kind::any, {}};
  if (when == "number") {
    c.kind = Compiled::Kind::number;
  } else if (when == "any") {
    c.kind = Compiled::Kind::any;
  } else if (when.rfind("regex:", 0) == 0) {
    c.kind = Compiled::Kind::regex;
    try {
      c.pattern = std::regex(when.substr(6), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw Error(detail::concat(where, ": bad regular expression: ", e.what()));
    }
  } else {
    throw Error(detail::concat(where, ": unknown predicate '", when, "' (expected number, any or regex:<pattern>)"));
  }
  return c;
}

ConsensusRules::ConsensusRules(std::vector<ConsensusRule> rules, std::vector<std::string> responder_names)
    : rules_(std::move(rules)), responder_names_(std::move(responder_names)) {
  CHORUS_CHECK(!rules_.empty(), "consensus rules: no rules declared (expected at least one {when, prefer})");
  for (size_t i = 0; i < rules_.size(); ++i) {
    const auto& rule = rules_[i];
    const std::string where = detail::concat("consensus rule ", i, " (when '", rule.when, "', prefer '", rule.prefer, "')");
    compiled_.push_back(compile(rule.when, where));
    CHORUS_CHECK(known_responder(rule.prefer, responder_names_), where, ": prefers unknown responder '", rule.prefer,
                 "' (expected majority or a responder's name)");
  }
}

ConsensusRules ConsensusRules::from_config(const ConfigView& view, const std::string& key,
                                           std::vector<std::string> responder_names) {
  const auto items = view.list(key);
  if (items.empty()) throw view.error(key, "expected at least one rule {when, prefer}");
  std::string names = "majority";
  for (const auto& n : responder_names) names += ", " + n;
  std::vector<ConsensusRule> rules;
  for (const auto& item : items) {
    item.check_keys({"prefer", "when"}, "of a consensus rule");
    ConsensusRule rule{item.get<std::string>("when"), item.get<std::string>("prefer")};
    compile(rule.when, item.origin("when") + ": " + item.key_path("when"));
    if (!known_responder(rule.prefer, responder_names)) {
      throw item.error("prefer", "unknown responder '" + rule.prefer + "' (expected one of " + names + ")");
    }
    rules.push_back(std::move(rule));
  }
  return ConsensusRules(std::move(rules), std::move(responder_names));
}

RuleDecision ConsensusRules::decide(const std::vector<Candidate>& candidates) const {
  CHORUS_CHECK(!candidates.empty(), "consensus rules: no answers to decide among (expected one per responder)");
  const std::string majority = vote(candidates, VotingOptions{}).answer;
  for (size_t i = 0; i < rules_.size(); ++i) {
    const auto& rule = rules_[i];
    std::string answer;
    if (rule.prefer == "majority") {
      answer = majority;
    } else {
      const auto it = std::find_if(candidates.begin(), candidates.end(),
                                   [&](const Candidate& c) { return c.responder == rule.prefer; });
      CHORUS_CHECK(it != candidates.end(), "consensus rule ", i, ": responder '", rule.prefer,
                   "' gave no answer to decide with");
      answer = it->response.text;
    }
    bool fires = true;
    switch (compiled_[i].kind) {
      case Compiled::Kind::number: fires = parses_as_number(answer); break;
      case Compiled::Kind::regex: fires = std::regex_match(normalise_answer(answer), compiled_[i].pattern); break;
      case Compiled::Kind::any: fires = true; break;
    }
    if (fires) return RuleDecision{answer, static_cast<int64_t>(i), rule.prefer};
  }
  return RuleDecision{majority, -1, "majority"};
}

std::vector<std::string> RuleBasedConsensus::names_of(const std::vector<ResponderPtr>& responders) {
  check_responders(responders, "rule-based consensus");
  std::vector<std::string> names;
  for (const auto& r : responders) names.push_back(r->name());
  return names;
}

RuleBasedConsensus::RuleBasedConsensus(std::vector<ResponderPtr> responders, const std::vector<ConsensusRule>& rules)
    : responders_(std::move(responders)), rules_(rules, names_of(responders_)) {}

std::vector<RuleDecision> RuleBasedConsensus::run(const std::vector<std::string>& inputs, Transcript* transcript) {
  const auto answers = ask_all(responders_, inputs, "rules", 0, transcript);
  std::vector<RuleDecision> decisions;
  for (size_t e = 0; e < inputs.size(); ++e) {
    std::vector<Candidate> candidates;
    for (size_t r = 0; r < responders_.size(); ++r) candidates.push_back({responders_[r]->name(), answers[e][r]});
    auto decision = rules_.decide(candidates);
    if (transcript != nullptr) {
      transcript->append(Message::text_message(
          "rules", 0, "rules", {}, decision.answer,
          {{"example", static_cast<int64_t>(e)}, {"rule", decision.rule}, {"preferred", decision.preferred}}));
    }
    decisions.push_back(std::move(decision));
  }
  return decisions;
}

}  // namespace chorus::collab
