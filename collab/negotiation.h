// Negotiation (debate): agents answer, see each other's latest answers, and answer again until a
// consensus rule is met or the round limit is reached.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "collab/message.h"
#include "collab/responder.h"

namespace chorus::collab {

enum class AgreementRule {
  unanimity,  // stop when every normalised answer is the same
  majority,   // stop when one normalised answer is held by more than half of the responders
  judge       // stop on unanimity; at the round limit a judge picks among the answers
};
std::string to_string(AgreementRule rule);
// "unanimity", "majority", "judge".
AgreementRule agreement_rule_from_string(const std::string& name);

enum class Resolution {
  consensus,         // the agreement rule was met (also when there was never a disagreement)
  judge,             // the judge's reply matched one of the answers
  fallback_majority  // round limit reached (or the judge matched nothing): majority vote
};
std::string to_string(Resolution resolution);

struct NegotiationOptions {
  int64_t rounds = 3;  // at most this many rounds (round 0 included), >= 1
  AgreementRule rule = AgreementRule::unanimity;
  std::string judge;   // rule == judge: the judge responder's name (it need not be a participant)
  // Round r > 0 prompt; {input} is the input, {others} the other responders' latest answers.
  std::string revise_template = "{input}\nOther answers: {others}\nAnswer:";
  // The judge's prompt; {input} is the input, {answers} every responder's latest answer.
  std::string judge_template = "{input}\nCandidate answers: {answers}\nBest answer:";
  // How one answer is listed in {others} / {answers} ({name}, {answer}), and the separator.
  std::string answer_format = "{name}: {answer}";
  std::string separator = "; ";
};

struct NegotiationOutcome {
  std::string answer;
  int64_t rounds_used = 0;
  bool consensus = false;  // the agreement rule was met
  int64_t conflicts = 0;   // rounds whose answers were not unanimous
  Resolution resolution = Resolution::consensus;
  std::vector<std::vector<std::string>> answers;  // answers[round][responder]
};

class Negotiation {
 public:
  // `judge` is required when options.rule == judge and must be named options.judge; errors
  // (no responders, rounds < 1, templates referring to unknown slots, a missing judge) come here.
  Negotiation(std::vector<ResponderPtr> responders, NegotiationOptions options, ResponderPtr judge = nullptr);
  // Runs every input; inputs still negotiating are asked together, one batch per responder and
  // round. Transcript (channel "negotiation"): each answer (round r, to the other responders,
  // metadata {example, log_prob, tokens, prompt}); the judge's reply (metadata {example, matched});
  // the outcome, from "negotiation" (metadata {example, rounds_used, consensus, conflicts, resolution}).
  std::vector<NegotiationOutcome> run(const std::vector<std::string>& inputs, Transcript* transcript = nullptr);

 private:
  std::string listing(const std::vector<std::string>& answers, int64_t skip) const;

  std::vector<ResponderPtr> responders_;
  NegotiationOptions options_;
  ResponderPtr judge_;
};

}  // namespace chorus::collab
