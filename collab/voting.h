// Voting: majority, log-probability-weighted and learned-weight votes over normalised answers, and
// minimum Bayes risk decoding with a utility.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "collab/message.h"
#include "collab/responder.h"

namespace chorus::collab {

// The answer normalisation of SQuAD-style scoring, as Chorus applies it before comparing answers:
// lowercase (ASCII), trim, collapse runs of whitespace to one space, strip trailing punctuation
// (. , ; : ! ?) and the spaces before it.
std::string normalise_answer(std::string_view text);

// A utility of `hypothesis` given `reference`, higher is better (MBR maximises its expectation).
using Utility = std::function<double(const std::string& hypothesis, const std::string& reference)>;
// 1 when the normalised answers are equal, else 0.
double exact_match_utility(const std::string& hypothesis, const std::string& reference);
// Bag-of-words F1 between the normalised answers' whitespace tokens (1 when both are empty).
double token_f1_utility(const std::string& hypothesis, const std::string& reference);
// "exact_match" or "token_f1"; anything else is a chorus::Error listing both.
Utility utility_by_name(const std::string& name);

// One answer in a vote: who gave it and what they said.
struct Candidate {
  std::string responder;
  Response response;
};

enum class VoteRule {
  majority,           // one vote per candidate
  log_prob_weighted,  // each candidate weighs exp(log_prob)
  learned_weights,    // each candidate weighs its responder's given weight
  minimum_bayes_risk  // the candidate with the largest summed utility against the others
};
std::string to_string(VoteRule rule);
// "majority", "log_prob", "weights", "mbr".
VoteRule vote_rule_from_string(const std::string& name);

struct VotingOptions {
  VoteRule rule = VoteRule::majority;
  // Per-responder weights: required for every responder under learned_weights; under
  // minimum_bayes_risk, optional weights of the references (default 1).
  std::map<std::string, double> weights;
  std::string utility = "token_f1";  // minimum_bayes_risk: a utility_by_name name...
  Utility custom_utility;            // ...or this callable, which wins when set
};

// The outcome of one vote. Answers are grouped by normalised text; `answer` is the text of the
// first candidate (in responder order) of the winning group.
struct VoteOutcome {
  std::string answer;
  std::string normalised;
  size_t winner = 0;                    // index of that candidate
  std::map<std::string, double> tally;  // normalised answer -> score (MBR: best summed utility per answer)
  bool tie_broken = false;              // the top score was shared and the tie-break decided
};

// Votes among `candidates` with `options`. Ties in score are broken by the larger summed
// log-probability of the group, then by the earliest candidate. Zero candidates, or a responder
// without a weight under learned_weights, is a chorus::Error.
VoteOutcome vote(const std::vector<Candidate>& candidates, const VotingOptions& options);

// Checks `options` against the responders' names before any work (weights of unknown responders,
// missing or negative weights, unknown utility).
void check_voting_options(const VotingOptions& options, const std::vector<std::string>& responder_names);

// The voting mechanism: every responder answers every input (round 0 on channel "vote"), then one
// vote per input, recorded as a message from "vote" with metadata {example, rule, tally, winner,
// tie_broken}.
class Voting {
 public:
  Voting(std::vector<ResponderPtr> responders, VotingOptions options);
  std::vector<VoteOutcome> run(const std::vector<std::string>& inputs, Transcript* transcript = nullptr);

 private:
  std::vector<ResponderPtr> responders_;
  VotingOptions options_;
};

}  // namespace chorus::collab
