// System: anything that answers a task's examples (an agent alone, a mechanism over agents, a
// trained team, a router over other systems), with what each answer cost; and Member, an agent as
// an experiment uses it (a prompt template per task, generation options).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "collab/cost.h"
#include "collab/message.h"
#include "collab/responder.h"
#include "model/generation/generation_options.h"
#include "tasks/task.h"

namespace chorus::collab {

// An agent as a team member: its prompt per task and its generation options.
struct Member {
  Agent agent;
  // Per task, a template over the example's fields: "{input}", "summarize: {input}",
  // "question: {question} context: {context}". Tasks without one read "{input}" through the
  // agent's own prompt_template.
  std::map<std::string, std::string> prompts;
  model::GenerationOptions generation;

  // The text the agent reads for `example` of `task`.
  std::string prompt_for(const std::string& task, const tasks::Example& example) const;
};
using MemberPtr = std::shared_ptr<const Member>;

// The examples a system answers in one call, and the task they come from.
struct Batch {
  std::string task;
  std::vector<const tasks::Example*> examples;
  // The examples' "input" fields: what mechanisms pass around as the input.
  std::vector<std::string> inputs() const;
};

struct SystemAnswer {
  std::string text;
  ComputeCost cost;  // answering this example
  nlohmann::json details =
      nlohmann::json::object();  // the mechanism's decision (winner, rounds, ...)
};

class System {
 public:
  explicit System(std::string name) : name_(std::move(name)) {}
  virtual ~System() = default;
  System(const System&) = delete;
  System& operator=(const System&) = delete;

  const std::string& name() const { return name_; }
  virtual std::string kind() const = 0;
  // One line for reports ("majority vote of t5, bart").
  virtual std::string description() const = 0;
  // The agents this system calls, directly or through other systems (for cost and reports).
  virtual std::vector<std::string> agents() const = 0;
  // One answer per example, in order; messages go to `transcript` when given (metadata.example is
  // the index in the batch).
  virtual std::vector<SystemAnswer> answer(const Batch& batch, Transcript* transcript) = 0;
  // A summary of what the mechanism decided over many answers (counts of winners, rounds, ...);
  // null when it has nothing to add.
  virtual nlohmann::json summarise(const std::vector<SystemAnswer>& answers) const {
    (void)answers;
    return nullptr;
  }

 private:
  std::string name_;
};
using SystemPtr = std::shared_ptr<System>;

// A responder over a member for one batch: a prompt equal to an example's input is rendered with
// the member's template for the task and that example's fields (so each agent reads its own fields,
// e.g. its own source language); any other prompt (a debate's revision prompt, a pipeline role's
// prompt) is read through the agent's own prompt_template. `name` defaults to the agent's.
std::shared_ptr<AgentResponder> member_responder(const Member& member, const Batch& batch,
                                                 const model::GenerationOptions& options,
                                                 std::string name = "");

// Per-example costs from a transcript: every message whose sender is one of `responders` and whose
// metadata has {example, prompt, tokens} is one call of that responder's agent on that prompt.
std::vector<ComputeCost> costs_from_transcript(
    const Transcript& transcript, const std::vector<std::shared_ptr<AgentResponder>>& responders,
    size_t examples);

}  // namespace chorus::collab
