// Cooperative mechanisms on scripted responders whose outcome is known in advance: voting, MBR,
// negotiation, consensus rules, pipelines, their configuration errors and their transcripts; and an
// agent responder over a tiny untrained T5.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include "collab/consensus_rules.h"
#include "collab/message.h"
#include "collab/negotiation.h"
#include "collab/pipeline.h"
#include "collab/responder.h"
#include "collab/voting.h"
#include "common/config.h"
#include "common/error.h"
#include "model/t5/t5_init.h"
#include "model/tokenizers/word_level_tokenizer.h"
#include "tests/foundation/test_paths.h"

namespace chorus::collab {
namespace {

using chorus::testing::TemporaryFolder;

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_CONTAINS(action, text) EXPECT_NE(error_of([&] { action; }).find(text), std::string::npos) \
    << error_of([&] { action; })

std::shared_ptr<ScriptedResponder> fixed(const std::string& name, const std::string& text, double log_prob = 0.0) {
  return std::make_shared<ScriptedResponder>(name, Response{text, log_prob, 0});
}

Candidate cand(const std::string& who, const std::string& text, double log_prob = 0.0) {
  return Candidate{who, Response{text, log_prob, 0}};
}

Transcript round_trip(const Transcript& transcript, const TemporaryFolder& folder) {
  const auto path = folder / "transcript.jsonl";
  transcript.save_jsonl(path);
  return Transcript::load_jsonl(path);
}

// --- Messages and transcripts ------------------------------------------------------------------

TEST(Transcript, SavesAndReadsBackTextAndLatentMessages) {
  TemporaryFolder folder;
  Transcript t;
  t.append(Message::text_message("debate", 1, "a", {"b", "c"}, "seven {others}", {{"example", 3}}));
  t.append(Message::latent_message("share", 0, "b", {}, LatentContent{{2, 3}, {1, 2, 3, 4, 5, 6.5f}}));
  const auto back = round_trip(t, folder);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back.messages()[0].channel, "debate");
  EXPECT_EQ(back.messages()[0].round, 1);
  EXPECT_EQ(back.messages()[0].receivers, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(back.messages()[0].text, "seven {others}");
  EXPECT_EQ(back.messages()[0].metadata["example"], 3);
  EXPECT_EQ(back.messages()[1].kind, MessageKind::latent);
  EXPECT_EQ(back.messages()[1].latent.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back.messages()[1].latent.values[5], 6.5f);
  EXPECT_EQ(back.channel("share").size(), 1u);
}

TEST(Transcript, BadLinesNameTheFileAndLine) {
  TemporaryFolder folder;
  const auto path = folder / "bad.jsonl";
  Transcript t;
  t.append(Message::text_message("c", 0, "a", {}, "x"));
  t.save_jsonl(path);
  {
    std::ofstream out(path, std::ios::app);
    out << "\n{\"channel\": \"c\", \"round\": 0, \"sender\": \"a\", \"receivers\": [], \"kind\": \"latent\", "
           "\"content\": {\"shape\": [2], \"values\": [1]}}\n";
  }
  EXPECT_ERROR_CONTAINS(Transcript::load_jsonl(path), "bad.jsonl:3");
  EXPECT_ERROR_CONTAINS(Transcript::load_jsonl(path), "needs 2 values but has 1");
  {
    std::ofstream out(path);
    out << "{\"channel\": \"c\"}\n";
  }
  EXPECT_ERROR_CONTAINS(Transcript::load_jsonl(path), "lacks the field 'round'");
  {
    std::ofstream out(path);
    out << "not json\n";
  }
  EXPECT_ERROR_CONTAINS(Transcript::load_jsonl(path), "bad.jsonl:1: not valid JSON");
  EXPECT_ERROR_CONTAINS(Message::latent_message("c", 0, "a", {}, LatentContent{{3}, {1}}), "needs 3 values");
}

// --- Responders and templates ------------------------------------------------------------------

TEST(Responder, ScriptedAnswersAndCostsAreCounted) {
  ScriptedResponder r("s", std::map<std::string, Response>{{"two words", Response{"one two three", -1.5, 0}}});
  const auto out = r.respond({"two words", "two words"});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].text, "one two three");
  EXPECT_EQ(out[0].tokens, 3);
  EXPECT_EQ(r.cost().calls, 2);
  EXPECT_EQ(r.cost().prompt_tokens, 4);
  EXPECT_EQ(r.cost().generated_tokens, 6);
  EXPECT_ERROR_CONTAINS(r.respond({"unknown"}), "no answer for the prompt 'unknown'");
}

TEST(Responder, TemplatesFillInOnePassAndNameMissingSlots) {
  EXPECT_EQ(template_slots("{input} then {a-1} and {input}, not { x} or {}"), (std::vector<std::string>{"input", "a-1"}));
  EXPECT_EQ(fill_template("Q: {input} | {x}", {{"input", "{x}"}, {"x", "y"}}, "t"), "Q: {x} | y");
  EXPECT_ERROR_CONTAINS(fill_template("{nope}", {}, "where"), "where: the template refers to '{nope}'");
}

// --- Voting ------------------------------------------------------------------------------------

TEST(Voting, NormalisesAnswersTheSquadWay) {
  EXPECT_EQ(normalise_answer("  The   Answer is 42. "), "the answer is 42");
  EXPECT_EQ(normalise_answer("Paris!?"), "paris");
  EXPECT_EQ(normalise_answer("..."), "");
  EXPECT_NEAR(token_f1_utility("the cat sat", "the cat"), 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(exact_match_utility("Cat.", "cat"), 1.0);
}

TEST(Voting, MajorityOverNormalisedAnswersWithDeterministicTies) {
  auto outcome = vote({cand("a", "Paris"), cand("b", "paris."), cand("c", "Lyon")}, {});
  EXPECT_EQ(outcome.answer, "Paris");
  EXPECT_EQ(outcome.winner, 0u);
  EXPECT_DOUBLE_EQ(outcome.tally["paris"], 2.0);
  EXPECT_FALSE(outcome.tie_broken);
  // One vote each: the larger log-probability wins...
  outcome = vote({cand("a", "x", -3.0), cand("b", "y", -1.0)}, {});
  EXPECT_EQ(outcome.answer, "y");
  EXPECT_TRUE(outcome.tie_broken);
  // ...and with equal log-probabilities, the first responder.
  EXPECT_EQ(vote({cand("a", "x"), cand("b", "y")}, {}).answer, "x");
}

TEST(Voting, WeightsByLogProbOrByLearnedWeights) {
  const std::vector<Candidate> c{cand("a", "4", -5.0), cand("b", "4", -5.0), cand("c", "5", -0.1)};
  EXPECT_EQ(vote(c, {}).answer, "4");
  VotingOptions by_prob;
  by_prob.rule = VoteRule::log_prob_weighted;
  EXPECT_EQ(vote(c, by_prob).answer, "5");  // exp(-0.1) > 2 exp(-5)
  VotingOptions learned;
  learned.rule = VoteRule::learned_weights;
  learned.weights = {{"a", 0.2}, {"b", 0.2}, {"c", 0.5}};
  EXPECT_EQ(vote(c, learned).answer, "5");
  learned.weights["a"] = 0.4;
  EXPECT_EQ(vote(c, learned).answer, "4");
  EXPECT_NEAR(vote(c, learned).tally["4"], 0.6, 1e-12);
}

TEST(Voting, MinimumBayesRiskPicksTheConsensusLikeCandidate) {
  // No two answers are equal, so majority falls back to the first; MBR finds the one closest to all.
  const std::vector<Candidate> c{cand("a", "red fox"), cand("b", "the quick brown fox"), cand("c", "quick brown fox"),
                                 cand("d", "quick brown dog")};
  EXPECT_EQ(vote(c, {}).answer, "red fox");
  VotingOptions mbr;
  mbr.rule = VoteRule::minimum_bayes_risk;
  EXPECT_EQ(vote(c, mbr).answer, "quick brown fox");
  mbr.utility = "exact_match";  // every utility is 0: tie, first candidate
  EXPECT_EQ(vote(c, mbr).answer, "red fox");
  mbr.custom_utility = [](const std::string& h, const std::string&) { return h.size() > 15 ? 1.0 : 0.0; };
  EXPECT_EQ(vote(c, mbr).answer, "the quick brown fox");
}

TEST(Voting, RunsOverRespondersAndRecordsTheTranscript) {
  TemporaryFolder folder;
  Voting voting({fixed("a", "blue"), fixed("b", "Blue."), fixed("c", "green")}, {});
  Transcript transcript;
  const auto outcomes = voting.run({"sky?", "sea?"}, &transcript);
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[1].answer, "blue");
  const auto back = round_trip(transcript, folder);
  ASSERT_EQ(back.size(), 8u);  // 3 answers per input, then one decision per input
  EXPECT_EQ(back.messages()[4].sender, "b");
  EXPECT_EQ(back.messages()[4].text, "Blue.");
  EXPECT_EQ(back.messages()[4].metadata["prompt"], "sea?");
  const auto& decision = back.messages()[7];
  EXPECT_EQ(decision.sender, "vote");
  EXPECT_EQ(decision.metadata["example"], 1);
  EXPECT_EQ(decision.text, "blue");
  EXPECT_EQ(decision.metadata["winner"], "a");
  EXPECT_EQ(decision.metadata["tally"]["blue"], 2.0);
}

TEST(Voting, ConfigurationErrorsComeBeforeAnyWork) {
  auto a = fixed("a", "x");
  EXPECT_ERROR_CONTAINS(vote({}, {}), "no candidates to vote over");
  EXPECT_ERROR_CONTAINS(Voting({}, {}), "needs at least one responder");
  EXPECT_ERROR_CONTAINS(Voting({a, fixed("a", "y")}, {}), "two responders are called 'a'");
  VotingOptions o;
  o.rule = VoteRule::learned_weights;
  EXPECT_ERROR_CONTAINS(Voting({a}, o), "needs a weight for responder 'a'");
  o.weights = {{"a", 1.0}, {"ghost", 1.0}};
  EXPECT_ERROR_CONTAINS(Voting({a}, o), "unknown responder 'ghost'");
  o.weights = {{"a", -1.0}};
  EXPECT_ERROR_CONTAINS(Voting({a}, o), "expected a finite number >= 0");
  VotingOptions m;
  m.rule = VoteRule::minimum_bayes_risk;
  m.utility = "bleu";
  EXPECT_ERROR_CONTAINS(Voting({a}, m), "unknown utility 'bleu'");
  EXPECT_ERROR_CONTAINS(vote_rule_from_string("plurality"), "expected majority, log_prob, weights or mbr");
  EXPECT_EQ(a->cost().calls, 0);
}

// --- Negotiation -------------------------------------------------------------------------------

// Answers `first` at round 0; once it sees `convinced_by` among the others' answers, answers that.
std::shared_ptr<ScriptedResponder> persuadable(const std::string& name, const std::string& first,
                                               const std::string& convinced_by) {
  return std::make_shared<ScriptedResponder>(name, [=](const std::string& prompt) {
    const bool revising = prompt.find("Other answers:") != std::string::npos;
    return Response{revising && prompt.find(convinced_by) != std::string::npos ? convinced_by : first, 0.0, 0};
  });
}

// Answers `first`, then from round `k` on answers `later` (counting its own calls per input).
std::shared_ptr<ScriptedResponder> changes_at(const std::string& name, const std::string& first, const std::string& later,
                                              int64_t k) {
  auto calls = std::make_shared<std::map<std::string, int64_t>>();
  return std::make_shared<ScriptedResponder>(name, [=](const std::string& prompt) {
    const std::string input = prompt.substr(0, prompt.find('\n'));
    return Response{(*calls)[input]++ >= k ? later : first, 0.0, 0};
  });
}

TEST(Negotiation, ReachesUnanimityInTheScriptedRound) {
  TemporaryFolder folder;
  NegotiationOptions o;
  o.rounds = 5;
  auto a = fixed("a", "12");
  auto b = changes_at("b", "13", "12", 2);
  Negotiation debate({a, b}, o);
  Transcript transcript;
  const auto out = debate.run({"7 + 5"}, &transcript);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].answer, "12");
  EXPECT_EQ(out[0].rounds_used, 3);
  EXPECT_TRUE(out[0].consensus);
  EXPECT_EQ(out[0].conflicts, 2);
  EXPECT_EQ(out[0].resolution, Resolution::consensus);
  EXPECT_EQ(out[0].answers[1], (std::vector<std::string>{"12", "13"}));
  EXPECT_EQ(a->cost().calls, 3);
  // b saw a's answer (and only a's) in round 1.
  EXPECT_EQ(b->prompts_seen()[1], "7 + 5\nOther answers: a: 12\nAnswer:");

  const auto back = round_trip(transcript, folder);
  ASSERT_EQ(back.size(), 7u);  // 2 answers x 3 rounds + the outcome
  EXPECT_EQ(back.messages()[3].round, 1);
  EXPECT_EQ(back.messages()[3].sender, "b");
  EXPECT_EQ(back.messages()[3].receivers, (std::vector<std::string>{"a"}));
  EXPECT_EQ(back.messages()[3].text, "13");
  const auto& last = back.messages()[6];
  EXPECT_EQ(last.sender, "negotiation");
  EXPECT_EQ(last.text, "12");
  EXPECT_EQ(last.metadata["resolution"], "consensus");
  EXPECT_EQ(last.metadata["conflicts"], 2);
  EXPECT_EQ(last.metadata["rounds_used"], 3);
}

TEST(Negotiation, AgentsPersuadedByOthersAnswers) {
  NegotiationOptions o;
  o.rounds = 3;
  // b adopts "paris" once it sees it; a never changes.
  const auto out = Negotiation({fixed("a", "Paris"), persuadable("b", "Lyon", "Paris")}, o).run({"capital?", "again?"});
  for (const auto& r : out) {
    EXPECT_EQ(r.rounds_used, 2);
    EXPECT_EQ(r.conflicts, 1);
    EXPECT_EQ(r.answer, "Paris");
  }
}

TEST(Negotiation, MajorityRuleStopsAtAStrictMajority) {
  NegotiationOptions o;
  o.rule = AgreementRule::majority;
  auto c = fixed("c", "no");
  const auto out = Negotiation({fixed("a", "yes"), fixed("b", "Yes"), c}, o).run({"q"});
  EXPECT_EQ(out[0].answer, "yes");
  EXPECT_EQ(out[0].rounds_used, 1);
  EXPECT_TRUE(out[0].consensus);
  EXPECT_EQ(out[0].conflicts, 1);
  EXPECT_EQ(c->cost().calls, 1);
  // Two against two is no majority: the round limit decides by majority vote (first on ties).
  o.rounds = 2;
  const auto split = Negotiation({fixed("a", "yes"), fixed("b", "no"), fixed("c", "no", -1.0), fixed("d", "yes")}, o)
                         .run({"q"});
  EXPECT_EQ(split[0].rounds_used, 2);
  EXPECT_FALSE(split[0].consensus);
  EXPECT_EQ(split[0].resolution, Resolution::fallback_majority);
  EXPECT_EQ(split[0].answer, "yes");  // equal counts; "no" has the lower summed log-probability
}

TEST(Negotiation, RoundLimitFallsBackToMajority) {
  NegotiationOptions o;
  o.rounds = 2;
  const auto out = Negotiation({fixed("a", "3"), fixed("b", "4"), fixed("c", "4")}, o).run({"q"});
  EXPECT_EQ(out[0].answer, "4");
  EXPECT_EQ(out[0].rounds_used, 2);
  EXPECT_EQ(out[0].conflicts, 2);
  EXPECT_FALSE(out[0].consensus);
  EXPECT_EQ(out[0].resolution, Resolution::fallback_majority);
}

TEST(Negotiation, JudgeResolvesTheLastConflict) {
  TemporaryFolder folder;
  NegotiationOptions o;
  o.rounds = 2;
  o.rule = AgreementRule::judge;
  o.judge = "judge";
  auto judge = std::make_shared<ScriptedResponder>("judge", [](const std::string& prompt) {
    // Picks the answer of b, whatever it is, quoting it in another case.
    const auto at = prompt.find("b: ");
    std::string pick = prompt.substr(at + 3, prompt.find_first_of(";\n", at) - at - 3);
    for (auto& ch : pick) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return Response{pick, -0.5, 0};
  });
  Transcript transcript;
  const auto out = Negotiation({fixed("a", "rome"), fixed("b", "milan"), fixed("c", "rome")}, o, judge)
                       .run({"city?"}, &transcript);
  EXPECT_EQ(out[0].answer, "milan");
  EXPECT_EQ(out[0].resolution, Resolution::judge);
  EXPECT_FALSE(out[0].consensus);
  EXPECT_EQ(out[0].conflicts, 2);
  EXPECT_EQ(judge->prompts_seen().at(0), "city?\nCandidate answers: a: rome; b: milan; c: rome\nBest answer:");
  const auto back = round_trip(transcript, folder);
  ASSERT_EQ(back.size(), 8u);  // 3 x 2 answers, the verdict, the outcome
  EXPECT_EQ(back.messages()[6].sender, "judge");
  EXPECT_EQ(back.messages()[6].text, "MILAN");
  EXPECT_EQ(back.messages()[6].metadata["matched"], true);
  EXPECT_EQ(back.messages()[7].metadata["resolution"], "judge");

  // A verdict matching no answer falls back to the majority.
  const auto unmatched = Negotiation({fixed("a", "rome"), fixed("b", "milan"), fixed("c", "rome")}, o,
                                     fixed("judge", "naples"))
                             .run({"city?"});
  EXPECT_EQ(unmatched[0].answer, "rome");
  EXPECT_EQ(unmatched[0].resolution, Resolution::fallback_majority);
}

TEST(Negotiation, ConfigurationErrorsComeBeforeAnyWork) {
  auto a = fixed("a", "x");
  NegotiationOptions o;
  o.rounds = 0;
  EXPECT_ERROR_CONTAINS(Negotiation({a}, o), "rounds is 0 (expected at least 1)");
  o.rounds = 2;
  o.revise_template = "{input} {their_answers}";
  EXPECT_ERROR_CONTAINS(Negotiation({a}, o), "revise_template refers to '{their_answers}'");
  o.revise_template = "{input} {others}";
  o.rule = AgreementRule::judge;
  EXPECT_ERROR_CONTAINS(Negotiation({a}, o), "needs the judge's name");
  o.judge = "j";
  EXPECT_ERROR_CONTAINS(Negotiation({a}, o), "no judge responder was given");
  EXPECT_ERROR_CONTAINS(Negotiation({a}, o, fixed("k", "x")), "the judge given is 'k'");
  EXPECT_ERROR_CONTAINS(agreement_rule_from_string("vote"), "expected unanimity, majority or judge");
  EXPECT_EQ(a->cost().calls, 0);
}

// --- Consensus rules ---------------------------------------------------------------------------

TEST(ConsensusRules, PreferTheDeclaredResponderWhenItsAnswerFits) {
  TemporaryFolder folder;
  const Config config = Config::parse(R"(rules:
  - {when: number, prefer: math}
  - {when: "regex:^[a-z]+$", prefer: kv}
  - {when: any, prefer: majority}
)",
                                      "rules.yaml");
  std::map<std::string, Response> math{{"k1 + 2", {"9", 0, 0}}, {"what is k1", {"unknown key", 0, 0}},
                                       {"hello", {"42 greetings", 0, 0}}};
  std::map<std::string, Response> kv{{"k1 + 2", {"k1 plus 2", 0, 0}}, {"what is k1", {"Seven", 0, 0}},
                                     {"hello", {"hi there", 0, 0}}};
  std::map<std::string, Response> other{{"k1 + 2", {"k1 plus 2", 0, 0}}, {"what is k1", {"7", 0, 0}},
                                        {"hello", {"hi there!", 0, 0}}};
  std::vector<ResponderPtr> team{std::make_shared<ScriptedResponder>("math", math),
                                 std::make_shared<ScriptedResponder>("kv", kv),
                                 std::make_shared<ScriptedResponder>("other", other)};
  const auto declared = ConsensusRules::from_config(config.root(), "rules", {"math", "kv", "other"}).rules();
  ASSERT_EQ(declared.size(), 3u);
  EXPECT_EQ(declared[1].when, "regex:^[a-z]+$");
  EXPECT_NO_THROW(config.check_all_keys_used());
  RuleBasedConsensus consensus(team, declared);
  Transcript transcript;
  const auto out = consensus.run({"k1 + 2", "what is k1", "hello"}, &transcript);
  EXPECT_EQ(out[0].answer, "9");
  EXPECT_EQ(out[0].rule, 0);
  EXPECT_EQ(out[1].answer, "Seven");  // math's answer is not a number; kv's is one lowercase word
  EXPECT_EQ(out[1].rule, 1);
  EXPECT_EQ(out[2].answer, "hi there");  // neither fits the first two rules; the majority
  EXPECT_EQ(out[2].preferred, "majority");
  const auto back = round_trip(transcript, folder);
  ASSERT_EQ(back.size(), 12u);  // 3 answers per input, then one decision per input
  EXPECT_EQ(back.messages()[4].sender, "kv");
  EXPECT_EQ(back.messages()[4].text, "Seven");
  EXPECT_EQ(back.messages()[4].metadata["example"], 1);
  EXPECT_EQ(back.messages()[10].sender, "rules");
  EXPECT_EQ(back.messages()[10].text, "Seven");
  EXPECT_EQ(back.messages()[10].metadata["example"], 1);
  EXPECT_EQ(back.messages()[10].metadata["rule"], 1);
  EXPECT_EQ(back.messages()[10].metadata["preferred"], "kv");

  // Without a catch-all rule, no match means the majority answer, reported as rule -1.
  const ConsensusRules only_numbers({{"number", "math"}}, {"math", "kv"});
  const auto d = only_numbers.decide({cand("math", "none"), cand("kv", "k")});
  EXPECT_EQ(d.rule, -1);
  EXPECT_EQ(d.answer, "none");
  EXPECT_TRUE(parses_as_number(" -3.25 "));
  EXPECT_FALSE(parses_as_number("3.2.1"));
  EXPECT_FALSE(parses_as_number("-"));
}

TEST(ConsensusRules, ConfigurationErrorsComeBeforeAnyWork) {
  const std::vector<std::string> names{"math", "kv"};
  EXPECT_ERROR_CONTAINS(ConsensusRules({{"prime", "math"}}, names), "unknown predicate");
  EXPECT_ERROR_CONTAINS(ConsensusRules({{"number", "physics"}}, names), "prefers unknown responder 'physics'");
  EXPECT_ERROR_CONTAINS(ConsensusRules({{"regex:([a-z", "kv"}}, names), "bad regular expression");
  EXPECT_ERROR_CONTAINS(ConsensusRules({}, names), "no rules declared");
  // From a config, each error at its key's line.
  const auto from_config = [&](const std::string& yaml) {
    return ConsensusRules::from_config(Config::parse(yaml, "rules.yaml").root(), "rules", names);
  };
  EXPECT_ERROR_CONTAINS(from_config("rules:\n  - {when: any}\n"), "rules.yaml:2: missing required key 'rules[0].prefer' (a string)");
  EXPECT_ERROR_CONTAINS(from_config("rules:\n  - {when: any, prefer: kv}\n  - {when: any, prefer: kv, x: y}\n"),
                        "rules.yaml:3: rules[1].x: unknown key of a consensus rule (expected one of prefer, when)");
  EXPECT_ERROR_CONTAINS(from_config("rules:\n  - when: prime\n    prefer: kv\n"),
                        "rules.yaml:2: rules[0].when: unknown predicate 'prime' (expected number, any or regex:<pattern>)");
  EXPECT_ERROR_CONTAINS(from_config("rules:\n  - when: 'regex:([a-z'\n    prefer: kv\n"),
                        "rules.yaml:2: rules[0].when: bad regular expression");
  EXPECT_ERROR_CONTAINS(from_config("rules:\n  - when: number\n    prefer: physics\n"),
                        "rules.yaml:3: rules[0].prefer: unknown responder 'physics' (expected one of majority, math, kv)");
  EXPECT_ERROR_CONTAINS(from_config("rules: []\n"), "rules.yaml:1: rules: expected at least one rule {when, prefer}");
  EXPECT_ERROR_CONTAINS(from_config("rules: {when: any}\n"), "rules.yaml:1: rules: expected a list of maps, got a map");
  auto math = fixed("math", "1");
  EXPECT_ERROR_CONTAINS(RuleBasedConsensus({math}, {{"any", "kv"}}), "prefers unknown responder 'kv'");
  EXPECT_EQ(math->cost().calls, 0);
}

// --- Pipelines ---------------------------------------------------------------------------------

TEST(Pipeline, RunsRolesInDependencyOrderAndRecordsEachStep) {
  TemporaryFolder folder;
  // The classifier says what kind of request it is; the rewriter upper-cases it; the generator
  // answers from both. Declared out of order on purpose.
  auto generator = std::make_shared<ScriptedResponder>(
      "gen", [](const std::string& p) { return Response{"answer(" + p + ")", -1.0, 0}; });
  auto rewriter = std::make_shared<ScriptedResponder>("rw", [](const std::string& p) {
    std::string up = p;
    for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return Response{up, -0.5, 0};
  });
  auto classifier = std::make_shared<ScriptedResponder>(
      "cls", [](const std::string& p) { return Response{p.find('+') != std::string::npos ? "math" : "lookup", 0, 0}; });
  const Config declared = Config::parse(R"(pipeline:
  roles:
    - {name: generate, responder: gen, prompt: "[{kind}] {rewrite}"}
    - {name: rewrite, responder: rw}
    - {name: kind, responder: cls, prompt: "classify: {input}"}
  output: generate
)",
                                        "pipeline.yaml");
  const auto config = pipeline_config_from_config(declared.root().child("pipeline"));
  EXPECT_NO_THROW(declared.check_all_keys_used());
  EXPECT_EQ(config.roles[1].prompt_template, "{input}");
  Pipeline pipeline(config, {generator, rewriter, classifier});
  EXPECT_EQ(pipeline.order(), (std::vector<std::string>{"rewrite", "kind", "generate"}));
  Transcript transcript;
  const auto result = pipeline.run({"k1 + 2", "what is k1"}, &transcript);
  EXPECT_EQ(result.outputs, (std::vector<std::string>{"answer([math] K1 + 2)", "answer([lookup] WHAT IS K1)"}));
  EXPECT_EQ(result.role_outputs.at("kind")[1], "lookup");
  EXPECT_EQ(generator->cost().calls, 2);
  EXPECT_EQ(classifier->prompts_seen()[0], "classify: k1 + 2");

  const auto back = round_trip(transcript, folder);
  ASSERT_EQ(back.size(), 6u);
  EXPECT_EQ(back.messages()[0].sender, "rw");
  EXPECT_EQ(back.messages()[0].receivers, (std::vector<std::string>{"gen"}));
  EXPECT_EQ(back.messages()[0].metadata["role"], "rewrite");
  EXPECT_EQ(back.messages()[5].round, 2);
  EXPECT_EQ(back.messages()[5].metadata["prompt"], "[lookup] WHAT IS K1");
  EXPECT_EQ(back.messages()[5].text, "answer([lookup] WHAT IS K1)");
  EXPECT_TRUE(back.messages()[5].receivers.empty());

  // Another output role returns that role's outputs.
  auto other = config;
  other.output_role = "kind";
  EXPECT_EQ(Pipeline(other, {generator, rewriter, classifier}).run({"1 + 1"}).outputs,
            (std::vector<std::string>{"math"}));
}

TEST(Pipeline, ConfigurationErrorsComeBeforeAnyWork) {
  auto a = fixed("a", "x");
  auto b = fixed("b", "y");
  const std::vector<ResponderPtr> team{a, b};
  auto config = [](std::vector<PipelineRole> roles, std::string output = "") {
    return PipelineConfig{std::move(roles), std::move(output)};
  };
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"one", "ghost", "{input}"}}), team), "unknown responder 'ghost'");
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"one", "a", "{input} {two}"}}), team), "refers to '{two}'");
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"one", "a", "{input} {three}"}, {"two", "b", "{one}"}, {"three", "a", "{two}"}}),
                                 team),
                        "cycle: one -> three -> two -> one");
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"self", "a", "{self}"}}), team), "cycle: self -> self");
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"one", "a", "{input}"}, {"one", "b", "{input}"}}), team),
                        "two roles are called 'one'");
  EXPECT_ERROR_CONTAINS(Pipeline(config({{"one", "a", "{input}"}}, "two"), team), "output role 'two'");
  EXPECT_ERROR_CONTAINS(Pipeline(config({}), team), "no roles declared");
  // From a config, each error at its key's line, before any responder is known.
  const auto from_config = [](const std::string& yaml) {
    return pipeline_config_from_config(Config::parse(yaml, "p.yaml").root());
  };
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x, agent: a}\n"),
                        "p.yaml:2: roles[0].agent: unknown key of a pipeline role (expected one of name, prompt, "
                        "responder)");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x}\n"), "p.yaml:2: missing required key 'roles[0].responder'");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: input, responder: a}\n"),
                        "p.yaml:2: roles[0].name: expected a role name other than 'input'");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x, responder: a}\n  - {name: x, responder: b}\n"),
                        "p.yaml:3: roles[1].name: a second role called 'x' (the first is roles[0].name)");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - name: x\n    responder: a\n    prompt: '{input} {y}'\n"),
                        "p.yaml:4: roles[0].prompt: refers to '{y}', which is neither {input} nor a role");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x, responder: a, prompt: '{y}'}\n  - {name: y, responder: b, "
                                    "prompt: '{x}'}\n"),
                        "p.yaml:1: roles: pipeline: the roles form a cycle: x -> y -> x");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x, responder: a}\noutput: z\n"),
                        "p.yaml:3: output: 'z' is not one of the roles");
  EXPECT_ERROR_CONTAINS(from_config("roles: []\n"), "p.yaml:1: roles: expected at least one role");
  EXPECT_ERROR_CONTAINS(from_config("roles:\n  - {name: x, responder: a}\nrole: y\n"),
                        "p.yaml:3: role: unknown key of a pipeline (expected one of output, roles; did you mean 'roles'?)");
  EXPECT_EQ(a->cost().calls + b->cost().calls, 0);
}

// --- An agent over a real (tiny, untrained) model ----------------------------------------------

TEST(AgentResponder, AnswersWithFiniteLogProbsAndCountsCost) {
  auto tokenizer = std::make_shared<model::WordLevelTokenizer>(
      model::WordLevelTokenizer::from_texts({"one two three four five six seven eight nine"}));
  model::T5Shape shape;
  shape.vocab_size = tokenizer->vocab_size();
  shape.d_model = 16;
  shape.num_layers = 1;
  shape.num_decoder_layers = 1;
  shape.num_heads = 2;
  shape.d_kv = 8;
  shape.d_ff = 32;
  auto model = model::make_untrained_t5(model::make_t5_config(shape), 3);
  model->freeze();
  Agent agent;
  agent.name = "tiny";
  agent.model = model;
  agent.tokenizer = tokenizer;
  agent.prompt_template = "one {input}";
  AgentResponder responder(agent, greedy_generation(4));
  const auto out = responder.respond({"two three", "four"});
  ASSERT_EQ(out.size(), 2u);
  int64_t generated = 0;
  for (const auto& r : out) {
    EXPECT_TRUE(std::isfinite(r.log_prob));
    EXPECT_LE(r.log_prob, 0.0);
    EXPECT_GE(r.tokens, 1);
    EXPECT_LE(r.tokens, 4);
    generated += r.tokens;
    for (const auto& word : {"<pad>", "</s>"}) EXPECT_EQ(r.text.find(word), std::string::npos) << r.text;
  }
  EXPECT_EQ(responder.cost().calls, 2);
  EXPECT_EQ(responder.cost().prompt_tokens, 4 + 3);  // "one two three </s>", "one four </s>"
  EXPECT_EQ(responder.cost().generated_tokens, generated);
  // Greedy answers are deterministic, batched or alone.
  EXPECT_EQ(responder.respond({"four"})[0].text, out[1].text);
  EXPECT_NEAR(responder.respond({"four"})[0].log_prob, out[1].log_prob, 1e-4);
}

}  // namespace
}  // namespace chorus::collab
