// Pipeline: division of labour as a small graph of roles (e.g. rewrite -> answer), each a responder
// with a prompt template that refers to the input and to earlier roles' outputs.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "collab/message.h"
#include "collab/responder.h"
#include "common/config.h"

namespace chorus::collab {

// One node: `responder` answers the prompt `prompt_template`, in which {input} is the task input
// and {<role>} is the output of another role (an edge from that role to this one).
struct PipelineRole {
  std::string name;
  std::string responder;
  std::string prompt_template = "{input}";
};

struct PipelineConfig {
  std::vector<PipelineRole> roles;
  std::string output_role;  // whose outputs the pipeline returns; empty: the last declared role
};

// From a config map (common/config.h):
//   {roles: [{name: rewrite, responder: rw}, {name: answer, responder: gen, prompt: "Q: {rewrite}"}], output: answer}
// (prompt defaults to "{input}", output to the last role). Checks everything but the responders
// (which Pipeline checks when built): unknown keys, role names (unique, not "input"), prompts that
// refer to no role, cycles, an unknown output role; each error names where the key was set (file:line
// or the override), its key path and what was expected.
// `other_keys` are keys of the same map that the caller reads (e.g. a system's `kind`).
PipelineConfig pipeline_config_from_config(const ConfigView& pipeline, const std::vector<std::string>& other_keys = {});

struct PipelineResult {
  std::vector<std::string> outputs;                            // the output role's, one per input
  std::map<std::string, std::vector<std::string>> role_outputs;  // every role's
};

class Pipeline {
 public:
  // Validates the graph before any work: roles named uniquely (not "input"), known responders,
  // known role references, no cycle (the error names the roles on it), a known output role.
  Pipeline(PipelineConfig config, const std::vector<ResponderPtr>& responders);
  // Role names in the order they run (a topological order; declaration order among ready roles).
  const std::vector<std::string>& order() const { return order_; }
  // Runs each role over the whole batch in order. Transcript (channel "pipeline", round = step):
  // each output, from the role's responder to the responders of the roles that read it, metadata
  // {example, role, log_prob, tokens, prompt}.
  PipelineResult run(const std::vector<std::string>& inputs, Transcript* transcript = nullptr);

 private:
  PipelineConfig config_;
  std::map<std::string, ResponderPtr> responder_of_;  // role -> responder
  std::vector<std::string> order_;
};

}  // namespace chorus::collab
