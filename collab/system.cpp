// Members' prompts, responders over a batch and per-example costs read from transcripts.
#include "collab/system.h"

#include "common/error.h"

namespace chorus::collab {

std::string Member::prompt_for(const std::string& task, const tasks::Example& example) const {
  const auto it = prompts.find(task);
  if (it == prompts.end()) return agent.prompt(example.field("input"));
  return fill_template(it->second, example.fields,
                       "agent '" + agent.name + "', prompt for task '" + task + "'");
}

std::vector<std::string> Batch::inputs() const {
  std::vector<std::string> out;
  out.reserve(examples.size());
  for (const auto* ex : examples) out.push_back(ex->field("input"));
  return out;
}

std::shared_ptr<AgentResponder> member_responder(const Member& member, const Batch& batch,
                                                 const model::GenerationOptions& options,
                                                 std::string name) {
  std::map<std::string, std::string> rendered;  // an example's input -> the member's prompt for it
  for (const auto* ex : batch.examples)
    rendered.emplace(ex->field("input"), member.prompt_for(batch.task, *ex));
  Agent agent = member.agent;
  if (!name.empty()) agent.name = std::move(name);
  auto renderer = [rendered = std::move(rendered),
                   agent = member.agent](const std::string& prompt) {
    const auto it = rendered.find(prompt);
    return it != rendered.end() ? it->second : agent.prompt(prompt);
  };
  return std::make_shared<AgentResponder>(std::move(agent), options, std::move(renderer));
}

std::vector<ComputeCost> costs_from_transcript(
    const Transcript& transcript, const std::vector<std::shared_ptr<AgentResponder>>& responders,
    size_t examples) {
  std::map<std::string, const AgentResponder*> by_name;
  for (const auto& r : responders) by_name[r->name()] = r.get();
  std::vector<ComputeCost> out(examples);
  for (const auto& message : transcript.messages()) {
    const auto example = message.metadata.value("example", int64_t{-1});
    if (example < 0 || static_cast<size_t>(example) >= examples) continue;
    const auto it = by_name.find(message.sender);
    if (it == by_name.end() || !message.metadata.contains("prompt") ||
        !message.metadata.contains("tokens"))
      continue;
    const auto& responder = *it->second;
    const auto tokens_in = responder.prompt_tokens(message.metadata["prompt"].get<std::string>());
    out[static_cast<size_t>(example)] += seq2seq_call_cost(
        *responder.agent().model, tokens_in, message.metadata["tokens"].get<int64_t>());
  }
  return out;
}

}  // namespace chorus::collab
