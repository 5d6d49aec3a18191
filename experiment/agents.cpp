// Agents from folders, checkpoints or the pretrained-agent cache.
#include "experiment/agents.h"

#include <chrono>
#include <fstream>
#include <iostream>

#include "common/error.h"
#include "experiment/generation_config.h"
#include "model/generation/generation_options.h"
#include "model/seq2seq_model.h"
#include "model/tokenizers/tokenizer.h"

namespace chorus::experiment {
namespace {

collab::Agent load(const AgentSpec& a, const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path))
    return collab::load_agent(a.name, path, a.role, a.prompt_template);
  // A Chorus checkpoint file carrying its tokenizer (chorus convert).
  collab::Agent agent;
  agent.name = a.name;
  agent.role = a.role;
  agent.prompt_template = a.prompt_template;
  agent.model = model::load_seq2seq_model(path);
  agent.tokenizer = model::load_tokenizer(path);
  CHORUS_CHECK(agent.tokenizer->vocab_size() <= agent.model->vocab_size(), "agent '", a.name,
               "': the tokenizer in '", path.string(), "' has ", agent.tokenizer->vocab_size(),
               " ids but the model's vocabulary has only ", agent.model->vocab_size());
  return agent;
}

}  // namespace

BuiltAgents build_agents(const ExperimentSpec& spec, const std::filesystem::path& run_folder,
                         bool resume, bool quiet) {
  BuiltAgents out;
  for (const auto& a : spec.agents) {
    const auto start = std::chrono::steady_clock::now();
    std::filesystem::path path = a.model;
    nlohmann::json entry = {{"name", a.name}, {"role", a.role}, {"device", a.device}};
    if (a.pretrain) {
      path = spec.cache / ("text-" + a.name + "-" + a.pretrain->fingerprint());
      const bool cached = std::filesystem::is_regular_file(path / "pretrain.json");
      if (!cached) {
        if (!quiet)
          std::cerr << "pretraining agent " << a.name << " into " << path.string() << "\n";
        auto pretrain = *a.pretrain;
        pretrain.trainer.show_progress = !quiet;
        train::pretrain_text_agent(pretrain, path, run_folder / "pretrain" / a.name, resume);
      }
      std::ifstream in(path / "pretrain.json");
      entry["source"] = "pretrained";
      entry["cached"] = cached;
      entry["pretrain"] = nlohmann::json::parse(in, nullptr, false);
    } else if (a.pretrain_arithmetic) {
      path = spec.cache / (a.name + "-" + a.pretrain_arithmetic->fingerprint(a.arithmetic_world));
      auto pretrain = *a.pretrain_arithmetic;
      pretrain.trainer.show_progress = !quiet;
      const tasks::KeyValueArithmetic world(a.arithmetic_world);
      const auto result =
          train::pretrain_kv_agent(world, pretrain, path, run_folder / "pretrain" / a.name, resume);
      entry["source"] = "pretrained";
      entry["cached"] = result.cached;
      entry["pretrain"] = {{"exact_match", result.exact_match}, {"seconds", result.seconds}};
    } else {
      entry["source"] = std::filesystem::is_directory(path) ? "folder" : "checkpoint";
    }
    entry["path"] = path.string();
    auto member = std::make_shared<collab::Member>();
    member->agent = load(a, path);
    member->prompts = a.prompts;
    auto generation = model::load_generation_defaults(path, member->agent.model->config());
    if (a.generation) generation = read_generation(*a.generation, generation);
    try {
      model::check_generation_options(generation, member->agent.model->config());
    } catch (const Error& e) {
      throw Error("agents." + a.name + ".generation: " + e.what());
    }
    member->generation = generation;
    const auto& c = member->agent.model->config();
    int64_t parameters = 0;
    for (const auto& p : member->agent.model->parameters()) parameters += p.numel();
    entry["family"] = model::to_string(c.family);
    entry["parameters"] = parameters;
    entry["d_model"] = c.d_model;
    entry["vocab_size"] = c.vocab_size;
    entry["tokenizer_ids"] = member->agent.tokenizer->vocab_size();
    entry["seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out.members.emplace(a.name, std::move(member));
    out.report.push_back(std::move(entry));
  }
  return out;
}

}  // namespace chorus::experiment
