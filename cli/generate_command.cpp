// `chorus generate`: text in, generated text out, with a seq2seq model folder or checkpoint.
#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "model/generation/generate.h"
#include "model/seq2seq_model.h"
#include "model/tokenizers/tokenizer.h"

namespace chorus::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string input_file;
  int64_t max_new_tokens = 0;
  int64_t num_beams = 1;
  double length_penalty = 1.0;
  bool sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t batch_size = 16;
};

std::vector<std::string> read_inputs(const GenerateArgs& args) {
  std::vector<std::string> inputs = args.inputs;
  if (!args.input_file.empty()) {
    std::ifstream in(args.input_file);
    CHORUS_CHECK(in.good(), args.input_file, ": cannot open the input file");
    for (std::string line; std::getline(in, line);) inputs.push_back(line);
  }
  CHORUS_CHECK(!inputs.empty(), "nothing to generate from: give --input TEXT or --input-file FILE");
  return inputs;
}

// Right-padded ids and mask of a batch of texts, as the reference tokenizer pads.
std::pair<torch::Tensor, torch::Tensor> encode_batch(const model::Tokenizer& tokenizer,
                                                     const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> ids;
  size_t longest = 1;
  for (const auto& text : texts) {
    ids.push_back(tokenizer.encode(text));
    longest = std::max(longest, ids.back().size());
  }
  auto input = torch::full({static_cast<int64_t>(texts.size()), static_cast<int64_t>(longest)}, tokenizer.pad_id(),
                           torch::kInt64);
  auto mask = torch::zeros_like(input);
  for (size_t row = 0; row < ids.size(); ++row) {
    for (size_t t = 0; t < ids[row].size(); ++t) {
      input[row][t] = ids[row][t];
      mask[row][t] = 1;
    }
  }
  return {input, mask};
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text with a seq2seq model (greedy, beam search or sampling)");
  cmd->add_option("--model", args->model, "Hugging Face model folder or Chorus HDF5 checkpoint")->required();
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer folder (default: the model folder)");
  cmd->add_option("--input", args->inputs, "input text (repeatable)");
  cmd->add_option("--input-file", args->input_file, "file with one input per line");
  auto* max_new = cmd->add_option("--max-new-tokens", args->max_new_tokens, "tokens to generate at most")
                      ->check(CLI::PositiveNumber);
  auto* beams = cmd->add_option("--num-beams", args->num_beams, "beam search width (1: greedy)")
                    ->check(CLI::PositiveNumber);
  auto* penalty = cmd->add_option("--length-penalty", args->length_penalty, "beam search length penalty");
  cmd->add_flag("--sample", args->sample, "sample instead of searching");
  auto* temperature = cmd->add_option("--temperature", args->temperature, "sampling temperature");
  auto* top_k = cmd->add_option("--top-k", args->top_k, "sample from the k most likely tokens (0: all)");
  auto* top_p = cmd->add_option("--top-p", args->top_p, "sample from the smallest set of probability >= p");
  cmd->add_option("--seed", args->seed, "sampling seed");
  cmd->add_option("--batch-size", args->batch_size, "inputs per batch")->check(CLI::PositiveNumber);
  cmd->callback([=] {
    const auto inputs = read_inputs(*args);
    const auto model = model::load_seq2seq_model(args->model);
    const auto tokenizer_folder = args->tokenizer.empty() ? args->model : args->tokenizer;
    const auto tokenizer = model::load_tokenizer(tokenizer_folder);
    // The model's own generation defaults, overridden by the flags given.
    auto options = model::load_generation_defaults(args->model, model->config());
    if (max_new->count() > 0) options.max_new_tokens = args->max_new_tokens;
    if (beams->count() > 0) options.num_beams = args->num_beams;
    if (penalty->count() > 0) options.length_penalty = args->length_penalty;
    if (args->sample) {
      options.do_sample = true;
      options.num_beams = 1;
    }
    if (temperature->count() > 0) options.temperature = args->temperature;
    if (top_k->count() > 0) options.top_k = args->top_k;
    if (top_p->count() > 0) options.top_p = args->top_p;
    options.seed = args->seed;
    for (size_t start = 0; start < inputs.size(); start += static_cast<size_t>(args->batch_size)) {
      const auto end = std::min(inputs.size(), start + static_cast<size_t>(args->batch_size));
      const std::vector<std::string> batch(inputs.begin() + static_cast<std::ptrdiff_t>(start),
                                           inputs.begin() + static_cast<std::ptrdiff_t>(end));
      const auto [ids, mask] = encode_batch(*tokenizer, batch);
      const auto result = model::generate(*model, ids, mask, options);
      for (int64_t row = 0; row < result.sequences.size(0); ++row) {
        const auto sequence = result.sequences[row].contiguous();
        const std::vector<int64_t> tokens(sequence.data_ptr<int64_t>(),
                                          sequence.data_ptr<int64_t>() + sequence.numel());
        std::cout << tokenizer->decode(tokens, /*skip_special_tokens=*/true) << "\n";
      }
    }
  });
}

}  // namespace chorus::cli
