// Votes over normalised answers and minimum Bayes risk selection.
#include "collab/voting.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace chorus::collab {
namespace {

bool trailing_punctuation(char c) {
  return c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?';
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

std::string normalise_answer(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  while (!out.empty() && (trailing_punctuation(out.back()) || out.back() == ' ')) out.pop_back();
  return out;
}

double exact_match_utility(const std::string& hypothesis, const std::string& reference) {
  return normalise_answer(hypothesis) == normalise_answer(reference) ? 1.0 : 0.0;
}

double token_f1_utility(const std::string& hypothesis, const std::string& reference) {
  const auto h = words(normalise_answer(hypothesis));
  const auto r = words(normalise_answer(reference));
  if (h.empty() || r.empty()) return h.empty() && r.empty() ? 1.0 : 0.0;
  std::map<std::string, int64_t> counts;
  for (const auto& w : r) ++counts[w];
  int64_t common = 0;
  for (const auto& w : h) {
    auto it = counts.find(w);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++common;
    }
  }
  if (common == 0) return 0.0;
  const double precision = static_cast<double>(common) / static_cast<double>(h.size());
  const double recall = static_cast<double>(common) / static_cast<double>(r.size());
  return 2.0 * precision * recall / (precision + recall);
}

Utility utility_by_name(const std::string& name) {
  if (name == "exact_match") return exact_match_utility;
  if (name == "token_f1") return token_f1_utility;
  throw Error(detail::concat("unknown utility '", name, "' (expected exact_match or token_f1)"));
}

std::string to_string(VoteRule rule) {
  switch (rule) {
    case VoteRule::majority: return "majority";
    case VoteRule::log_prob_weighted: return "log_prob";
    case VoteRule::learned_weights: return "weights";
    case VoteRule::minimum_bayes_risk: return "mbr";
  }
  return "?";
}

VoteRule vote_rule_from_string(const std::string& name) {
  for (auto rule : {VoteRule::majority, VoteRule::log_prob_weighted, VoteRule::learned_weights,
                    VoteRule::minimum_bayes_risk}) {
    if (to_string(rule) == name) return rule;
  }
  throw Error(detail::concat("unknown vote rule '", name, "' (expected majority, log_prob, weights or mbr)"));
}

void check_voting_options(const VotingOptions& options, const std::vector<std::string>& responder_names) {
  for (const auto& [name, weight] : options.weights) {
    CHORUS_CHECK(std::find(responder_names.begin(), responder_names.end(), name) != responder_names.end(),
                 "voting: a weight is given for unknown responder '", name, "'");
    CHORUS_CHECK(std::isfinite(weight) && weight >= 0.0, "voting: the weight of '", name, "' is ", weight,
                 " (expected a finite number >= 0)");
  }
  if (options.rule == VoteRule::learned_weights) {
    for (const auto& name : responder_names) {
      CHORUS_CHECK(options.weights.count(name) == 1, "voting: rule 'weights' needs a weight for responder '", name,
                   "'");
    }
  }
  if (options.rule == VoteRule::minimum_bayes_risk && !options.custom_utility) utility_by_name(options.utility);
}

VoteOutcome vote(const std::vector<Candidate>& candidates, const VotingOptions& options) {
  CHORUS_CHECK(!candidates.empty(), "vote (", to_string(options.rule), "): no candidates to vote over (expected at least one answer)");
  const size_t n = candidates.size();
  std::vector<std::string> norm(n);
  for (size_t i = 0; i < n; ++i) norm[i] = normalise_answer(candidates[i].response.text);
  auto weight_of = [&](size_t i) {
    const auto it = options.weights.find(candidates[i].responder);
    if (it != options.weights.end()) return it->second;
    CHORUS_CHECK(options.rule != VoteRule::learned_weights, "vote (weights): no weight for responder '",
                 candidates[i].responder, "'");
    return 1.0;
  };

  // Score per candidate, then per group (normalised answer).
  std::vector<double> score(n, 0.0);
  if (options.rule == VoteRule::minimum_bayes_risk) {
    const Utility utility = options.custom_utility ? options.custom_utility : utility_by_name(options.utility);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (j != i) score[i] += weight_of(j) * utility(candidates[i].response.text, candidates[j].response.text);
      }
    }
  } else if (options.rule == VoteRule::log_prob_weighted) {
    // exp(log_prob) relative to the best candidate: the same ranking, without underflow to zero.
    double top = -std::numeric_limits<double>::infinity();
    for (const auto& c : candidates) top = std::max(top, c.response.log_prob);
    for (size_t i = 0; i < n; ++i) {
      score[i] = std::isfinite(top) ? std::exp(candidates[i].response.log_prob - top) : 1.0;
    }
  } else {
    for (size_t i = 0; i < n; ++i) score[i] = options.rule == VoteRule::majority ? 1.0 : weight_of(i);
  }

  struct Group {
    size_t first;
    double score = 0.0;
    double log_prob = 0.0;
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> group_of;
  for (size_t i = 0; i < n; ++i) {
    auto [it, fresh] = group_of.emplace(norm[i], groups.size());
    if (fresh) groups.push_back(Group{i});
    Group& g = groups[it->second];
    if (options.rule == VoteRule::minimum_bayes_risk) {
      g.score = fresh ? score[i] : std::max(g.score, score[i]);
    } else {
      g.score += score[i];
    }
    g.log_prob += candidates[i].response.log_prob;
  }

  VoteOutcome outcome;
  size_t best = 0;
  for (size_t k = 1; k < groups.size(); ++k) {
    const auto& g = groups[k];
    const auto& b = groups[best];
    if (g.score > b.score || (g.score == b.score && g.log_prob > b.log_prob)) best = k;
  }
  for (size_t k = 0; k < groups.size(); ++k) {
    if (k != best && groups[k].score == groups[best].score) outcome.tie_broken = true;
  }
  outcome.winner = groups[best].first;
  if (options.rule == VoteRule::minimum_bayes_risk) {
    // Within the winning group, the candidate with the best own score (the first on ties).
    for (size_t i = 0; i < n; ++i) {
      if (norm[i] == norm[outcome.winner] && score[i] > score[outcome.winner]) outcome.winner = i;
    }
  }
  outcome.answer = candidates[outcome.winner].response.text;
  outcome.normalised = norm[outcome.winner];
  for (const auto& [text, k] : group_of) outcome.tally[text] = groups[k].score;
  return outcome;
}

Voting::Voting(std::vector<ResponderPtr> responders, VotingOptions options)
    : responders_(std::move(responders)), options_(std::move(options)) {
  check_responders(responders_, "voting");
  std::vector<std::string> names;
  for (const auto& r : responders_) names.push_back(r->name());
  check_voting_options(options_, names);
}

std::vector<VoteOutcome> Voting::run(const std::vector<std::string>& inputs, Transcript* transcript) {
  const auto answers = ask_all(responders_, inputs, "vote", 0, transcript);
  std::vector<VoteOutcome> outcomes;
  outcomes.reserve(inputs.size());
  for (size_t e = 0; e < inputs.size(); ++e) {
    std::vector<Candidate> candidates;
    for (size_t r = 0; r < responders_.size(); ++r) candidates.push_back({responders_[r]->name(), answers[e][r]});
    auto outcome = vote(candidates, options_);
    if (transcript != nullptr) {
      transcript->append(Message::text_message("vote", 0, "vote", {}, outcome.answer,
                                               {{"example", static_cast<int64_t>(e)},
                                                {"rule", to_string(options_.rule)},
                                                {"tally", outcome.tally},
                                                {"winner", candidates[outcome.winner].responder},
                                                {"tie_broken", outcome.tie_broken}}));
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

}  // namespace chorus::collab
