// Pipelines of roles: validation, topological order, batched execution.
#include "collab/pipeline.h"

#include <algorithm>
#include <map>
#include <memory>
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

PipelineConfig pipeline_config_from_config(const ConfigView& pipeline, const std::vector<std::string>& other_keys) {
  std::vector<std::string> allowed = {"output", "roles"};
  allowed.insert(allowed.end(), other_keys.begin(), other_keys.end());
  pipeline.check_keys(allowed, "of a pipeline");
  PipelineConfig config;
  std::map<std::string, std::string> named;  // role name -> the key path that named it
  const auto roles = pipeline.list("roles");
  if (roles.empty()) throw pipeline.error("roles", "expected at least one role {name, responder, prompt}");
  for (const auto& item : roles) {
    item.check_keys({"name", "prompt", "responder"}, "of a pipeline role");
    PipelineRole role;
    role.name = item.get<std::string>("name");
    if (role.name.empty() || role.name == "input") {
      throw item.error("name", "expected a role name other than 'input' (the task input), got '" + role.name + "'");
    }
    const auto [first, unique] = named.emplace(role.name, item.key_path("name"));
    if (!unique) throw item.error("name", "a second role called '" + role.name + "' (the first is " + first->second + ")");
    role.responder = item.get<std::string>("responder");
    if (role.responder.empty()) throw item.error("responder", "expected a responder's name, got ''");
    role.prompt_template = item.get<std::string>("prompt", role.prompt_template);
    config.roles.push_back(std::move(role));
  }
  for (size_t i = 0; i < roles.size(); ++i) {
    for (const auto& ref : references(config.roles[i])) {
      if (named.count(ref) == 0) {
        throw roles[i].error("prompt", "refers to '{" + ref + "}', which is neither {input} nor a role");
      }
    }
  }
  config.output_role = pipeline.get<std::string>("output", "");
  if (pipeline.has("output") && named.count(config.output_role) == 0) {
    throw pipeline.error("output", "'" + config.output_role + "' is not one of the roles");
  }
  // The order (and so a cycle) through the graph itself, with stand-ins for the responders.
  std::vector<ResponderPtr> stand_ins;
  std::set<std::string> responders;
  for (const auto& role : config.roles) {
    if (responders.insert(role.responder).second) {
      stand_ins.push_back(std::make_shared<ScriptedResponder>(role.responder, Response{}));
    }
  }
  try {
    Pipeline check(config, stand_ins);
  } catch (const Error& e) {
    throw pipeline.error("roles", e.what());
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
