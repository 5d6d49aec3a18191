// Pipelines of roles: validation, topological order, batched execution.
#include "collab/pipeline.h"

#include <algorithm>
#include <set>

#include "common/error.h"

namespace chorus::collab {
namespace {

const PipelineRole& role_named(const PipelineConfig& config, const std::string& name) {
  for (const auto& r : config.roles) {
    if (r.name == name) return r;
  }
  throw Error(detail::concat("pipeline: no role '", name, "'"));
}

// The role references of a template ({input} excluded).
std::vector<std::string> references(const PipelineRole& role) {
  auto slots = template_slots(role.prompt_template);
  slots.erase(std::remove(slots.begin(), slots.end(), std::string("input")), slots.end());
  return slots;
}

}  // namespace

PipelineConfig pipeline_config_from_json(const nlohmann::json& json) {
  CHORUS_CHECK(json.is_object(), "pipeline: expected an object {roles, output}, got ", json.type_name());
  for (const auto& [key, value] : json.items()) {
    CHORUS_CHECK(key == "roles" || key == "output", "pipeline: unknown key '", key, "' (expected roles and output)");
  }
  CHORUS_CHECK(json.contains("roles") && json["roles"].is_array(), "pipeline: 'roles' must be a list of roles");
  PipelineConfig config;
  for (size_t i = 0; i < json["roles"].size(); ++i) {
    const auto& item = json["roles"][i];
    CHORUS_CHECK(item.is_object(), "pipeline role ", i, ": expected an object {name, responder, prompt}");
    PipelineRole role;
    for (const auto& [key, value] : item.items()) {
      CHORUS_CHECK(value.is_string(), "pipeline role ", i, ": '", key, "' must be a string, got ", value.type_name());
      if (key == "name") {
        role.name = value.get<std::string>();
      } else if (key == "responder") {
        role.responder = value.get<std::string>();
      } else if (key == "prompt") {
        role.prompt_template = value.get<std::string>();
      } else {
        throw Error(detail::concat("pipeline role ", i, ": unknown key '", key, "' (expected name, responder, prompt)"));
      }
    }
    config.roles.push_back(std::move(role));
  }
  if (json.contains("output")) {
    CHORUS_CHECK(json["output"].is_string(), "pipeline: 'output' must be a role name");
    config.output_role = json["output"].get<std::string>();
  }
  return config;
}

Pipeline::Pipeline(PipelineConfig config, const std::vector<ResponderPtr>& responders) : config_(std::move(config)) {
  check_responders(responders, "pipeline");
  CHORUS_CHECK(!config_.roles.empty(), "pipeline: no roles declared (expected at least one)");
  std::set<std::string> names;
  for (size_t i = 0; i < config_.roles.size(); ++i) {
    const auto& role = config_.roles[i];
    CHORUS_CHECK(!role.name.empty(), "pipeline role ", i, ": needs a name");
    CHORUS_CHECK(role.name != "input", "pipeline role ", i, ": 'input' is reserved for the task input");
    CHORUS_CHECK(names.insert(role.name).second, "pipeline: two roles are called '", role.name, "'");
    responder_of_[role.name] = find_responder(responders, role.responder, "pipeline role '" + role.name + "'");
  }
  for (const auto& role : config_.roles) {
    for (const auto& ref : references(role)) {
      CHORUS_CHECK(names.count(ref) == 1, "pipeline role '", role.name, "': its prompt refers to '{", ref,
                   "}', which is neither {input} nor a role");
    }
  }
  if (config_.output_role.empty()) config_.output_role = config_.roles.back().name;
  CHORUS_CHECK(names.count(config_.output_role) == 1, "pipeline: output role '", config_.output_role,
               "' is not a declared role");

  // Kahn's algorithm, taking ready roles in declaration order.
  std::set<std::string> done;
  while (order_.size() < config_.roles.size()) {
    bool progressed = false;
    for (const auto& role : config_.roles) {
      if (done.count(role.name) == 1) continue;
      const auto refs = references(role);
      if (std::all_of(refs.begin(), refs.end(), [&](const std::string& r) { return done.count(r) == 1; })) {
        order_.push_back(role.name);
        done.insert(role.name);
        progressed = true;
        break;
      }
    }
    if (progressed) continue;
    // Every remaining role waits on another: walk from one of them until a role repeats.
    std::vector<std::string> path;
    std::string at;
    for (const auto& role : config_.roles) {
      if (done.count(role.name) == 0) {
        at = role.name;
        break;
      }
    }
    while (std::find(path.begin(), path.end(), at) == path.end()) {
      path.push_back(at);
      for (const auto& ref : references(role_named(config_, at))) {
        if (done.count(ref) == 0) {
          at = ref;
          break;
        }
      }
    }
    std::string cycle;
    for (auto it = std::find(path.begin(), path.end(), at); it != path.end(); ++it) cycle += *it + " -> ";
    throw Error(detail::concat("pipeline: the roles form a cycle: ", cycle, at,
                               " (each role may refer only to roles that do not refer back to it)"));
  }
}

PipelineResult Pipeline::run(const std::vector<std::string>& inputs, Transcript* transcript) {
  PipelineResult result;
  for (size_t step = 0; step < order_.size(); ++step) {
    const auto& role = role_named(config_, order_[step]);
    std::vector<std::string> prompts;
    prompts.reserve(inputs.size());
    for (size_t e = 0; e < inputs.size(); ++e) {
      std::map<std::string, std::string> values{{"input", inputs[e]}};
      for (const auto& ref : references(role)) values[ref] = result.role_outputs.at(ref)[e];
      prompts.push_back(fill_template(role.prompt_template, values, "pipeline role '" + role.name + "'"));
    }
    auto& responder = *responder_of_.at(role.name);
    const auto responses = responder.respond(prompts);
    std::vector<std::string> readers;
    for (const auto& other : config_.roles) {
      const auto refs = references(other);
      const auto& reader = responder_of_.at(other.name)->name();
      if (std::find(refs.begin(), refs.end(), role.name) != refs.end() &&
          std::find(readers.begin(), readers.end(), reader) == readers.end()) {
        readers.push_back(reader);
      }
    }
    auto& outputs = result.role_outputs[role.name];
    for (size_t e = 0; e < inputs.size(); ++e) {
      outputs.push_back(responses[e].text);
      if (transcript != nullptr) {
        transcript->append(Message::text_message("pipeline", static_cast<int64_t>(step), responder.name(), readers,
                                                 responses[e].text,
                                                 {{"example", static_cast<int64_t>(e)},
                                                  {"role", role.name},
                                                  {"log_prob", responses[e].log_prob},
                                                  {"tokens", responses[e].tokens},
                                                  {"prompt", prompts[e]}}));
      }
    }
  }
  result.outputs = result.role_outputs.at(config_.output_role);
  return result;
}

}  // namespace chorus::collab
