// Responder: the participant every cooperative mechanism talks to (an agent, or a scripted stand-in),
// with cost accounting; prompt templates and the shared "ask everyone" step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "collab/message.h"
#include "model/generation/generation_options.h"

namespace chorus::collab {

// One answer: its text, its sequence log-probability (sum of token log-probabilities) and the
// number of generated tokens.
struct Response {
  std::string text;
  double log_prob = 0.0;
  int64_t tokens = 0;
};

// What a responder has cost so far: prompts answered, tokens read and tokens generated.
struct Cost {
  int64_t calls = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
};

class Responder {
 public:
  explicit Responder(std::string name);
  virtual ~Responder() = default;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  const std::string& name() const { return name_; }
  // One response per prompt, in order; the cost is counted here.
  std::vector<Response> respond(const std::vector<std::string>& prompts);
  const Cost& cost() const { return cost_; }
  void reset_cost() { cost_ = Cost{}; }

 protected:
  virtual std::vector<Response> answer(const std::vector<std::string>& prompts) = 0;
  // Tokens `prompt` costs to read.
  virtual int64_t count_prompt_tokens(const std::string& prompt) const = 0;

 private:
  std::string name_;
  Cost cost_;
};

using ResponderPtr = std::shared_ptr<Responder>;

// Whitespace-separated words of `text` (the token count of scripted responders).
int64_t count_words(const std::string& text);

// A responder with fixed answers: by exact prompt (with an optional answer for any other prompt),
// or from a function of the prompt. Tokens are counted as words; a scripted Response whose
// `tokens` is 0 gets the word count of its text.
class ScriptedResponder final : public Responder {
 public:
  using Script = std::function<Response(const std::string& prompt)>;
  ScriptedResponder(std::string name, std::map<std::string, Response> answers,
                    std::optional<Response> otherwise = std::nullopt);
  ScriptedResponder(std::string name, Script script);
  // Always the same answer.
  ScriptedResponder(std::string name, Response always);

  // The prompts received so far, in order (tests check what a mechanism asked).
  const std::vector<std::string>& prompts_seen() const { return prompts_seen_; }

 protected:
  std::vector<Response> answer(const std::vector<std::string>& prompts) override;
  int64_t count_prompt_tokens(const std::string& prompt) const override { return count_words(prompt); }

 private:
  Script script_;
  std::vector<std::string> prompts_seen_;
};

// An agent answering through model::generate (greedy unless the options say otherwise). The agent's
// own prompt template wraps each prompt. log_prob is GenerationResult::sequence_scores (the sum of
// the token log-probabilities; with beam search, the length-penalised beam score); tokens counts
// generated tokens up to and including the first end-of-sequence token. greedy_generation: greedy
// search with at most `max_new_tokens` new tokens, other options the reference's defaults.
model::GenerationOptions greedy_generation(int64_t max_new_tokens = 32);

class AgentResponder final : public Responder {
 public:
  // Turns a prompt as a mechanism asks it into the text the agent reads. Without one, the agent's
  // own prompt template wraps the prompt.
  using PromptRenderer = std::function<std::string(const std::string& prompt)>;

  explicit AgentResponder(Agent agent, model::GenerationOptions options = greedy_generation(),
                          PromptRenderer renderer = nullptr);
  const Agent& agent() const { return agent_; }
  const model::GenerationOptions& options() const { return options_; }
  // The text the agent reads for `prompt`.
  std::string render(const std::string& prompt) const;
  // Tokens the agent reads for `prompt` (special tokens included).
  int64_t prompt_tokens(const std::string& prompt) const { return count_prompt_tokens(prompt); }

 protected:
  std::vector<Response> answer(const std::vector<std::string>& prompts) override;
  int64_t count_prompt_tokens(const std::string& prompt) const override;

 private:
  Agent agent_;
  model::GenerationOptions options_;
  PromptRenderer renderer_;
};

// Names of `{slot}` references in `text` (slot: a letter or '_' then letters, digits, '_' or '-'),
// in order of first appearance. Other braces are left alone.
std::vector<std::string> template_slots(const std::string& text);
// `text` with each `{slot}` of `values` replaced in one pass (replacements are not scanned again);
// a referenced slot missing from `values` is a chorus::Error naming `where`.
std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                          const std::string& where);

// Checks that `responders` is non-empty, without null entries and with unique names; `what`
// names the mechanism in errors.
void check_responders(const std::vector<ResponderPtr>& responders, const std::string& what);
// The responder called `name`, or a chorus::Error listing the known names.
ResponderPtr find_responder(const std::vector<ResponderPtr>& responders, const std::string& name,
                            const std::string& what);

// Asks responder r the prompts prompts[r] (one batch per responder, one prompt per example) and
// records each answer as a text message on `channel` in `round`, addressed to the other responders
// when `address_others` (else broadcast), with metadata {example, log_prob, tokens, prompt}.
// `example_ids` (default 0..n-1) label the examples in the metadata. Returns
// answers[example][responder], responders in the given order.
std::vector<std::vector<Response>> ask_each(const std::vector<ResponderPtr>& responders,
                                            const std::vector<std::vector<std::string>>& prompts,
                                            const std::string& channel, int64_t round, bool address_others,
                                            Transcript* transcript, const std::vector<int64_t>& example_ids = {});
// The same with one prompt list shared by every responder, answers broadcast.
std::vector<std::vector<Response>> ask_all(const std::vector<ResponderPtr>& responders,
                                           const std::vector<std::string>& prompts, const std::string& channel,
                                           int64_t round, Transcript* transcript);

}  // namespace chorus::collab
