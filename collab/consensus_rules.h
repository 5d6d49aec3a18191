// Rule-based consensus: declared rules, tried in order, that say whose answer to prefer.
#pragma once

#include <regex>
#include <string>
#include <vector>

#include "collab/message.h"
#include "collab/responder.h"
#include "collab/voting.h"
#include "common/config.h"

namespace chorus::collab {

// "when <predicate>, prefer <responder>". Predicates: "number" (the answer parses as a number,
// e.g. "-12", "3.5"), "regex:<ECMAScript pattern>" (the whole normalised answer matches), "any".
// prefer: a responder's name, or "majority" (the majority answer of every responder). A rule fires
// when the preferred answer satisfies the predicate.
struct ConsensusRule {
  std::string when;
  std::string prefer;
};

// What the rules decided for one input.
struct RuleDecision {
  std::string answer;
  int64_t rule = -1;       // index of the rule that fired; -1: none did, the majority answer was taken
  std::string preferred;   // the rule's `prefer`, or "majority" when none fired
};

// True when `text` (trimmed) parses completely as a decimal number.
bool parses_as_number(const std::string& text);

class ConsensusRules {
 public:
  // Checks every rule against `responder_names` (unknown predicate, bad regex, unknown responder:
  // a chorus::Error naming the rule) before any work.
  ConsensusRules(std::vector<ConsensusRule> rules, std::vector<std::string> responder_names);
  // The list of maps {when, prefer} at `key` of a config map (common/config.h), e.g. a router arm's
  //   rules: [{when: number, prefer: math}, {when: any, prefer: majority}]
  // checked as above, each error naming where the rule's key was set, its key path and what was
  // expected ("exp.yaml:9: router.arms.c.rules[1].prefer: unknown responder 'physics' (...)").
  static ConsensusRules from_config(const ConfigView& view, const std::string& key,
                                    std::vector<std::string> responder_names);

  // Applies the rules to one answer per responder (responders in any order, all named).
  RuleDecision decide(const std::vector<Candidate>& candidates) const;
  const std::vector<ConsensusRule>& rules() const { return rules_; }

 private:
  struct Compiled {
    enum class Kind { number, regex, any } kind;
    std::regex pattern;
  };
  // The predicate `when`, or an Error "<where>: <what is wrong>".
  static Compiled compile(const std::string& when, const std::string& where);
  std::vector<ConsensusRule> rules_;
  std::vector<Compiled> compiled_;
  std::vector<std::string> responder_names_;
};

// The mechanism: every responder answers (channel "rules", round 0), the rules decide, and the
// decision is recorded as a message from "rules" with metadata {example, rule, preferred}.
class RuleBasedConsensus {
 public:
  RuleBasedConsensus(std::vector<ResponderPtr> responders, const std::vector<ConsensusRule>& rules);
  std::vector<RuleDecision> run(const std::vector<std::string>& inputs, Transcript* transcript = nullptr);

 private:
  static std::vector<std::string> names_of(const std::vector<ResponderPtr>& responders);
  std::vector<ResponderPtr> responders_;
  ConsensusRules rules_;
};

}  // namespace chorus::collab
