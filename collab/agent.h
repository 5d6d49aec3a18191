// Agent: a frozen seq2seq model with its tokenizer, a role and a prompt template.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "model/generation/generate.h"
#include "model/seq2seq_model.h"
#include "model/tokenizers/token_batch.h"
#include "model/tokenizers/tokenizer.h"

namespace chorus::collab {

// A team member. The model is frozen and may be shared read-only by several agents.
struct Agent {
  std::string name;
  std::string role;  // free text shown in reports ("knows keys", "does arithmetic")
  std::shared_ptr<const model::Seq2SeqModel> model;
  std::shared_ptr<const model::Tokenizer> tokenizer;
  std::string prompt_template = "{input}";  // "{input}" is replaced by the task input

  // The prompt for `input` (every "{input}" replaced).
  std::string prompt(const std::string& input) const;
  // The prompts of `inputs` tokenized as one padded batch.
  model::TokenBatch tokenize(const std::vector<std::string>& inputs, const std::vector<std::string>& targets = {}) const;
  // Generates for each input and decodes the first returned sequence of each (special tokens skipped).
  std::vector<std::string> generate_text(const std::vector<std::string>& inputs,
                                         const model::GenerationOptions& options) const;
};

// Loads an agent from `path`: a folder holding a Hugging Face model (config.json + weights) or a
// Chorus checkpoint `model.h5`, and the tokenizer files load_tokenizer understands. The model is
// frozen. Errors name the folder and what it lacks.
Agent load_agent(const std::string& name, const std::filesystem::path& path, const std::string& role = "",
                 const std::string& prompt_template = "{input}");

}  // namespace chorus::collab
