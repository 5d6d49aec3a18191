// Multi-round negotiation with unanimity, majority or judge agreement.
#include "collab/negotiation.h"

#include <map>
#include <set>

#include "collab/voting.h"
#include "common/error.h"

namespace chorus::collab {
namespace {

void check_slots(const std::string& text, const std::set<std::string>& allowed, const std::string& what) {
  for (const auto& slot : template_slots(text)) {
    CHORUS_CHECK(allowed.count(slot) == 1, "negotiation: ", what, " refers to '{", slot, "}' (expected only ",
                 [&] {
                   std::string s;
                   for (const auto& a : allowed) s += (s.empty() ? "{" : ", {") + a + "}";
                   return s;
                 }(),
                 ")");
  }
}

// The normalised answer held by more than half of `answers`, or nullptr.
const std::string* strict_majority(const std::vector<std::string>& normalised) {
  std::map<std::string, size_t> counts;
  for (const auto& a : normalised) ++counts[a];
  for (const auto& a : normalised) {
    if (2 * counts[a] > normalised.size()) return &a;
  }
  return nullptr;
}

}  // namespace

std::string to_string(AgreementRule rule) {
  switch (rule) {
    case AgreementRule::unanimity: return "unanimity";
    case AgreementRule::majority: return "majority";
    case AgreementRule::judge: return "judge";
  }
  return "?";
}

AgreementRule agreement_rule_from_string(const std::string& name) {
  for (auto rule : {AgreementRule::unanimity, AgreementRule::majority, AgreementRule::judge}) {
    if (to_string(rule) == name) return rule;
  }
  throw Error(detail::concat("unknown consensus rule '", name, "' (expected unanimity, majority or judge)"));
}

std::string to_string(Resolution resolution) {
  switch (resolution) {
    case Resolution::consensus: return "consensus";
    case Resolution::judge: return "judge";
    case Resolution::fallback_majority: return "fallback_majority";
  }
  return "?";
}

Negotiation::Negotiation(std::vector<ResponderPtr> responders, NegotiationOptions options, ResponderPtr judge)
    : responders_(std::move(responders)), options_(std::move(options)), judge_(std::move(judge)) {
  check_responders(responders_, "negotiation");
  CHORUS_CHECK(options_.rounds >= 1, "negotiation: rounds is ", options_.rounds, " (expected at least 1)");
  check_slots(options_.revise_template, {"input", "others"}, "revise_template");
  check_slots(options_.judge_template, {"input", "answers"}, "judge_template");
  check_slots(options_.answer_format, {"name", "answer"}, "answer_format");
  if (options_.rule == AgreementRule::judge) {
    CHORUS_CHECK(!options_.judge.empty(), "negotiation: rule 'judge' needs the judge's name (option judge)");
    CHORUS_CHECK(judge_ != nullptr, "negotiation: rule 'judge' names judge '", options_.judge,
                 "' but no judge responder was given");
    CHORUS_CHECK(judge_->name() == options_.judge, "negotiation: the judge given is '", judge_->name(),
                 "' but the options name '", options_.judge, "'");
  } else {
    CHORUS_CHECK(judge_ == nullptr && options_.judge.empty(), "negotiation: a judge is given but the rule is '",
                 to_string(options_.rule), "' (a judge is used only with rule judge)");
  }
}

std::string Negotiation::listing(const std::vector<std::string>& answers, int64_t skip) const {
  std::string out;
  for (size_t r = 0; r < responders_.size(); ++r) {
    if (static_cast<int64_t>(r) == skip) continue;
    if (!out.empty()) out += options_.separator;
    out += fill_template(options_.answer_format, {{"name", responders_[r]->name()}, {"answer", answers[r]}},
                         "negotiation answer_format");
  }
  return out;
}

std::vector<NegotiationOutcome> Negotiation::run(const std::vector<std::string>& inputs, Transcript* transcript) {
  const size_t n = responders_.size();
  std::vector<NegotiationOutcome> outcomes(inputs.size());
  std::vector<std::vector<Response>> latest(inputs.size());
  std::vector<int64_t> open;  // examples still negotiating
  for (size_t e = 0; e < inputs.size(); ++e) open.push_back(static_cast<int64_t>(e));
  std::vector<std::string> participants;
  for (const auto& r : responders_) participants.push_back(r->name());

  auto finish = [&](int64_t e, std::string answer, bool consensus, Resolution resolution) {
    auto& o = outcomes[static_cast<size_t>(e)];
    o.answer = std::move(answer);
    o.consensus = consensus;
    o.resolution = resolution;
    o.rounds_used = static_cast<int64_t>(o.answers.size());
    if (transcript != nullptr) {
      transcript->append(Message::text_message("negotiation", o.rounds_used - 1, "negotiation", participants, o.answer,
                                               {{"example", e},
                                                {"rounds_used", o.rounds_used},
                                                {"consensus", o.consensus},
                                                {"conflicts", o.conflicts},
                                                {"resolution", to_string(o.resolution)}}));
    }
  };

  for (int64_t round = 0; round < options_.rounds && !open.empty(); ++round) {
    std::vector<std::vector<std::string>> prompts(n);
    for (size_t r = 0; r < n; ++r) {
      for (int64_t e : open) {
        const auto& input = inputs[static_cast<size_t>(e)];
        if (round == 0) {
          prompts[r].push_back(input);
        } else {
          std::vector<std::string> texts;
          for (const auto& a : latest[static_cast<size_t>(e)]) texts.push_back(a.text);
          prompts[r].push_back(fill_template(options_.revise_template,
                                             {{"input", input}, {"others", listing(texts, static_cast<int64_t>(r))}},
                                             "negotiation revise_template"));
        }
      }
    }
    const auto answers = ask_each(responders_, prompts, "negotiation", round, /*address_others=*/true, transcript, open);

    std::vector<int64_t> still_open;
    std::vector<int64_t> to_judge;
    for (size_t k = 0; k < open.size(); ++k) {
      const int64_t e = open[k];
      auto& o = outcomes[static_cast<size_t>(e)];
      latest[static_cast<size_t>(e)] = answers[k];
      std::vector<std::string> texts, normalised;
      for (const auto& a : answers[k]) {
        texts.push_back(a.text);
        normalised.push_back(normalise_answer(a.text));
      }
      o.answers.push_back(texts);
      bool unanimous = true;
      for (const auto& a : normalised) unanimous = unanimous && a == normalised[0];
      if (!unanimous) ++o.conflicts;
      const std::string* agreed = nullptr;
      if (unanimous) {
        agreed = &normalised[0];
      } else if (options_.rule == AgreementRule::majority) {
        agreed = strict_majority(normalised);
      }
      if (agreed != nullptr) {
        size_t first = 0;
        while (normalised[first] != *agreed) ++first;
        finish(e, texts[first], true, Resolution::consensus);
      } else if (round + 1 < options_.rounds) {
        still_open.push_back(e);
      } else if (options_.rule == AgreementRule::judge) {
        to_judge.push_back(e);
      } else {
        std::vector<Candidate> candidates;
        for (size_t r = 0; r < n; ++r) candidates.push_back({responders_[r]->name(), answers[k][r]});
        finish(e, vote(candidates, VotingOptions{}).answer, false, Resolution::fallback_majority);
      }
    }

    if (!to_judge.empty()) {
      std::vector<std::string> judge_prompts;
      for (int64_t e : to_judge) {
        judge_prompts.push_back(fill_template(
            options_.judge_template,
            {{"input", inputs[static_cast<size_t>(e)]}, {"answers", listing(outcomes[static_cast<size_t>(e)].answers.back(), -1)}},
            "negotiation judge_template"));
      }
      const auto verdicts = judge_->respond(judge_prompts);
      for (size_t k = 0; k < to_judge.size(); ++k) {
        const int64_t e = to_judge[k];
        const auto& texts = outcomes[static_cast<size_t>(e)].answers.back();
        const std::string verdict = normalise_answer(verdicts[k].text);
        int64_t matched = -1;
        for (size_t r = 0; r < n && matched < 0; ++r) {
          if (normalise_answer(texts[r]) == verdict) matched = static_cast<int64_t>(r);
        }
        if (transcript != nullptr) {
          transcript->append(Message::text_message("negotiation", round, judge_->name(), participants, verdicts[k].text,
                                                   {{"example", e},
                                                    {"matched", matched >= 0},
                                                    {"log_prob", verdicts[k].log_prob},
                                                    {"tokens", verdicts[k].tokens},
                                                    {"prompt", judge_prompts[k]}}));
        }
        if (matched >= 0) {
          finish(e, texts[static_cast<size_t>(matched)], false, Resolution::judge);
        } else {
          std::vector<Candidate> candidates;
          for (size_t r = 0; r < n; ++r) {
            candidates.push_back({responders_[r]->name(), latest[static_cast<size_t>(e)][r]});
          }
          finish(e, vote(candidates, VotingOptions{}).answer, false, Resolution::fallback_majority);
        }
      }
    }
    open = std::move(still_open);
  }
  return outcomes;
}

}  // namespace chorus::collab
