// Responders: cost accounting, scripted answers, agents answering through generation; templates.
#include "collab/responder.h"

#include <torch/torch.h>

#include <cctype>
#include <set>
#include <sstream>

#include "common/error.h"
#include "model/generation/generate.h"

namespace chorus::collab {

Responder::Responder(std::string name) : name_(std::move(name)) {
  CHORUS_CHECK(!name_.empty(), "a responder needs a non-empty name");
}

std::vector<Response> Responder::respond(const std::vector<std::string>& prompts) {
  if (prompts.empty()) return {};
  auto responses = answer(prompts);
  CHORUS_CHECK(responses.size() == prompts.size(), "responder '", name_, "' returned ", responses.size(),
               " responses for ", prompts.size(), " prompts");
  cost_.calls += static_cast<int64_t>(prompts.size());
  for (const auto& p : prompts) cost_.prompt_tokens += count_prompt_tokens(p);
  for (const auto& r : responses) cost_.generated_tokens += r.tokens;
  return responses;
}

int64_t count_words(const std::string& text) {
  std::istringstream in(text);
  int64_t n = 0;
  for (std::string word; in >> word;) ++n;
  return n;
}

// --- Scripted ----------------------------------------------------------------------------------

ScriptedResponder::ScriptedResponder(std::string name, std::map<std::string, Response> answers,
                                     std::optional<Response> otherwise)
    : Responder(std::move(name)) {
  script_ = [answers = std::move(answers), otherwise = std::move(otherwise),
             who = this->name()](const std::string& prompt) {
    const auto it = answers.find(prompt);
    if (it != answers.end()) return it->second;
    CHORUS_CHECK(otherwise.has_value(), "scripted responder '", who, "' has no answer for the prompt '", prompt,
                 "' (expected one of its ", answers.size(), " scripted prompts)");
    return *otherwise;
  };
}

ScriptedResponder::ScriptedResponder(std::string name, Script script)
    : Responder(std::move(name)), script_(std::move(script)) {
  CHORUS_CHECK(static_cast<bool>(script_), "scripted responder '", this->name(), "' needs a script");
}

ScriptedResponder::ScriptedResponder(std::string name, Response always)
    : ScriptedResponder(std::move(name), [always](const std::string&) { return always; }) {}

std::vector<Response> ScriptedResponder::answer(const std::vector<std::string>& prompts) {
  std::vector<Response> out;
  out.reserve(prompts.size());
  for (const auto& prompt : prompts) {
    prompts_seen_.push_back(prompt);
    Response r = script_(prompt);
    if (r.tokens == 0) r.tokens = count_words(r.text);
    out.push_back(std::move(r));
  }
  return out;
}

// --- Agent -------------------------------------------------------------------------------------

AgentResponder::AgentResponder(Agent agent, model::GenerationOptions options, PromptRenderer renderer)
    : Responder(agent.name), agent_(std::move(agent)), options_(std::move(options)), renderer_(std::move(renderer)) {
  CHORUS_CHECK(agent_.model != nullptr && agent_.tokenizer != nullptr, "agent '", name(),
               "' needs a model and a tokenizer to answer");
  CHORUS_CHECK(options_.num_return_sequences == 1, "agent '", name(),
               "': a responder returns one answer per prompt (num_return_sequences = 1, got ",
               options_.num_return_sequences, ")");
  model::check_generation_options(options_, agent_.model->config());
}

model::GenerationOptions greedy_generation(int64_t max_new_tokens) {
  model::GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  return options;
}

std::string AgentResponder::render(const std::string& prompt) const {
  return renderer_ ? renderer_(prompt) : agent_.prompt(prompt);
}

int64_t AgentResponder::count_prompt_tokens(const std::string& prompt) const {
  return static_cast<int64_t>(agent_.tokenizer->encode(render(prompt)).size());
}

std::vector<Response> AgentResponder::answer(const std::vector<std::string>& prompts) {
  std::vector<std::string> texts;
  texts.reserve(prompts.size());
  for (const auto& p : prompts) texts.push_back(render(p));
  const auto batch = model::tokenize_batch(*agent_.tokenizer, texts);
  const auto result = model::generate(*agent_.model, batch.input_ids, batch.attention_mask, options_);
  const auto sequences = result.sequences.to(torch::kCPU).contiguous();
  const auto scores = result.sequence_scores.to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t eos = agent_.tokenizer->eos_id();
  std::vector<Response> out;
  out.reserve(prompts.size());
  for (int64_t i = 0; i < static_cast<int64_t>(prompts.size()); ++i) {
    const auto row = sequences[i];
    const int64_t* ids = row.data_ptr<int64_t>();
    std::vector<int64_t> generated;
    for (int64_t t = 1; t < row.numel(); ++t) {  // position 0 is the decoder start token
      generated.push_back(ids[t]);
      if (ids[t] == eos) break;
    }
    Response r;
    r.text = agent_.tokenizer->decode(generated, /*skip_special_tokens=*/true);
    r.log_prob = scores[i].item<double>();
    r.tokens = static_cast<int64_t>(generated.size());
    out.push_back(std::move(r));
  }
  return out;
}

// --- Templates and shared steps ----------------------------------------------------------------

namespace {

bool slot_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool slot_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }

// Length of the slot name starting at text[at] (just after '{') when a well-formed "{name}" follows; else 0.
size_t slot_length(const std::string& text, size_t at) {
  if (at >= text.size() || !slot_start(text[at])) return 0;
  size_t end = at + 1;
  while (end < text.size() && slot_char(text[end])) ++end;
  return end < text.size() && text[end] == '}' ? end - at : 0;
}

}  // namespace

std::vector<std::string> template_slots(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '{') continue;
    const size_t n = slot_length(text, i + 1);
    if (n == 0) continue;
    std::string name = text.substr(i + 1, n);
    bool seen = false;
    for (const auto& s : out) seen = seen || s == name;
    if (!seen) out.push_back(std::move(name));
    i += n + 1;
  }
  return out;
}

std::string fill_template(const std::string& text, const std::map<std::string, std::string>& values,
                          const std::string& where) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const size_t n = text[i] == '{' ? slot_length(text, i + 1) : 0;
    if (n == 0) {
      out += text[i];
      continue;
    }
    const std::string name = text.substr(i + 1, n);
    const auto it = values.find(name);
    CHORUS_CHECK(it != values.end(), where, ": the template refers to '{", name, "}', which is not available here");
    out += it->second;
    i += n + 1;
  }
  return out;
}

void check_responders(const std::vector<ResponderPtr>& responders, const std::string& what) {
  CHORUS_CHECK(!responders.empty(), what, ": needs at least one responder, got none");
  std::set<std::string> names;
  for (size_t i = 0; i < responders.size(); ++i) {
    CHORUS_CHECK(responders[i] != nullptr, what, ": responder ", i, " is null");
    CHORUS_CHECK(names.insert(responders[i]->name()).second, what, ": two responders are called '",
                 responders[i]->name(), "' (names must be unique)");
  }
}

ResponderPtr find_responder(const std::vector<ResponderPtr>& responders, const std::string& name,
                            const std::string& what) {
  std::string known;
  for (const auto& r : responders) {
    if (r != nullptr && r->name() == name) return r;
    if (r != nullptr) known += (known.empty() ? "" : ", ") + r->name();
  }
  throw Error(detail::concat(what, ": unknown responder '", name, "' (known: ", known.empty() ? "none" : known, ")"));
}

std::vector<std::vector<Response>> ask_each(const std::vector<ResponderPtr>& responders,
                                            const std::vector<std::vector<std::string>>& prompts,
                                            const std::string& channel, int64_t round, bool address_others,
                                            Transcript* transcript, const std::vector<int64_t>& example_ids) {
  CHORUS_CHECK(prompts.size() == responders.size(), channel, ": ", prompts.size(), " prompt lists for ",
               responders.size(), " responders");
  const size_t examples = prompts.empty() ? 0 : prompts[0].size();
  CHORUS_CHECK(example_ids.empty() || example_ids.size() == examples, channel, ": ", example_ids.size(),
               " example ids for ", examples, " examples");
  std::vector<std::vector<Response>> answers(examples, std::vector<Response>(responders.size()));
  for (size_t r = 0; r < responders.size(); ++r) {
    CHORUS_CHECK(prompts[r].size() == examples, channel, ": responder '", responders[r]->name(), "' got ",
                 prompts[r].size(), " prompts, the others ", examples);
    const auto responses = responders[r]->respond(prompts[r]);
    for (size_t e = 0; e < examples; ++e) answers[e][r] = responses[e];
  }
  if (transcript != nullptr) {
    for (size_t e = 0; e < examples; ++e) {
      for (size_t r = 0; r < responders.size(); ++r) {
        std::vector<std::string> receivers;
        if (address_others) {
          for (size_t o = 0; o < responders.size(); ++o) {
            if (o != r) receivers.push_back(responders[o]->name());
          }
        }
        const auto& a = answers[e][r];
        transcript->append(Message::text_message(
            channel, round, responders[r]->name(), std::move(receivers), a.text,
            {{"example", example_ids.empty() ? static_cast<int64_t>(e) : example_ids[e]},
             {"log_prob", a.log_prob},
             {"tokens", a.tokens},
             {"prompt", prompts[r][e]}}));
      }
    }
  }
  return answers;
}

std::vector<std::vector<Response>> ask_all(const std::vector<ResponderPtr>& responders,
                                           const std::vector<std::string>& prompts, const std::string& channel,
                                           int64_t round, Transcript* transcript) {
  return ask_each(responders, std::vector<std::vector<std::string>>(responders.size(), prompts), channel, round,
                  /*address_others=*/false, transcript);
}

}  // namespace chorus::collab
