// Greedy decoding and sampling, step for step like the reference's _sample loop.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "model/generation/search_strategies.h"

namespace chorus::model {

GenerationResult greedy_or_sample_search(const Seq2SeqModel& model, const EncoderOutput& encoder,
                                         const GenerationOptions& options, const SearchSetup& setup) {
  auto cache = model.start_decoding(encoder);
  cache.repeat_interleave(options.num_return_sequences);
  const int64_t rows = cache.batch_size();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto eos = torch::tensor(setup.eos_token_ids, torch::kInt64);

  GenerationResult result;
  std::vector<torch::Tensor> tokens = {torch::full({rows, 1}, setup.decoder_start_token_id, torch::kInt64)};
  std::vector<torch::Tensor> token_scores;
  auto sequences = tokens.front();
  auto unfinished = torch::ones({rows}, torch::kBool);
  for (int64_t cur_len = 1;; ++cur_len) {
    auto step = model.decode_step(sequences.narrow(1, cur_len - 1, 1), cache, options.output_hidden_states);
    if (options.output_hidden_states) result.decoder_hidden_states.push_back(std::move(step.hidden_states));
    auto logits = step.logits.select(1, -1).to(torch::kFloat32);
    auto scores = process_logits(logits, sequences, setup.processing);
    torch::Tensor next;
    if (options.do_sample) {
      next = torch::multinomial(torch::softmax(scores, -1), 1, /*replacement=*/false, generator).squeeze(1);
    } else {
      next = scores.argmax(-1);
    }
    // Rows that already ended keep emitting pad, as in the reference.
    next = torch::where(unfinished, next, torch::full_like(next, setup.pad_token_id));
    auto chosen = torch::log_softmax(scores, -1).gather(1, next.unsqueeze(1)).squeeze(1);
    token_scores.push_back(torch::where(unfinished, chosen, torch::zeros_like(chosen)));
    sequences = torch::cat({sequences, next.unsqueeze(1)}, 1);
    unfinished = unfinished & ~torch::isin(next, eos);
    if (cur_len + 1 >= setup.max_length || !unfinished.any().item<bool>()) break;
  }
  result.sequences = sequences;
  result.token_scores = torch::stack(token_scores, 1);
  result.sequence_scores = result.token_scores.sum(1);
  return result;
}

}  // namespace chorus::model
