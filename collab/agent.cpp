// Agents: loading, prompting, tokenizing and generating text.
#include "collab/agent.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"

namespace chorus::collab {

std::string Agent::prompt(const std::string& input) const {
  std::string text = prompt_template;
  static const std::string slot = "{input}";
  for (auto at = text.find(slot); at != std::string::npos; at = text.find(slot, at + input.size())) {
    text.replace(at, slot.size(), input);
  }
  return text;
}

model::TokenBatch Agent::tokenize(const std::vector<std::string>& inputs, const std::vector<std::string>& targets) const {
  std::vector<std::string> prompts;
  prompts.reserve(inputs.size());
  for (const auto& input : inputs) prompts.push_back(prompt(input));
  return model::tokenize_batch(*tokenizer, prompts, targets);
}

std::vector<std::string> Agent::generate_text(const std::vector<std::string>& inputs,
                                              const model::GenerationOptions& options) const {
  const auto batch = tokenize(inputs);
  const auto result = model::generate(*model, batch.input_ids, batch.attention_mask, options);
  const int64_t per_input = result.sequences.size(0) / static_cast<int64_t>(inputs.size());
  std::vector<std::string> texts;
  texts.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto row = result.sequences[static_cast<int64_t>(i) * per_input].contiguous();
    std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    texts.push_back(tokenizer->decode(ids, /*skip_special_tokens=*/true));
  }
  return texts;
}

Agent load_agent(const std::string& name, const std::filesystem::path& path, const std::string& role,
                 const std::string& prompt_template) {
  CHORUS_CHECK(std::filesystem::is_directory(path), "agent '", name, "': '", path.string(),
               "' is not a folder (expected a Hugging Face model folder or a folder with model.h5 and tokenizer files)");
  const auto checkpoint = path / "model.h5";
  const bool has_checkpoint = std::filesystem::is_regular_file(checkpoint);
  CHORUS_CHECK(has_checkpoint || std::filesystem::is_regular_file(path / "config.json"), "agent '", name, "': '",
               path.string(), "' holds neither model.h5 nor config.json");
  Agent agent;
  agent.name = name;
  agent.role = role;
  agent.prompt_template = prompt_template;
  agent.model = model::load_seq2seq_model(has_checkpoint ? checkpoint : path);
  agent.tokenizer = model::load_tokenizer(path);
  CHORUS_CHECK(agent.tokenizer->vocab_size() <= agent.model->vocab_size(), "agent '", name, "': the tokenizer in '",
               path.string(), "' has ", agent.tokenizer->vocab_size(), " ids but the model's vocabulary has only ",
               agent.model->vocab_size());
  return agent;
}

}  // namespace chorus::collab
