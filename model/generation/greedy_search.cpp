// Greedy decoding and sampling, step for step like the reference's _sample loop.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "model/generation/search_strategies.h"

namespace chorus::model {

// Per step this loop runs the decoder, processes the scores in place, and reads one max (and
// its index) and one sum of exponentials per row; the token, its score and the finished flags
// are kept in plain arrays. A profile of greedy decoding at batch 1 had found a full
// log_softmax, a copy of the logits and a dozen tiny tensor ops per step besides the model.
GenerationResult greedy_or_sample_search(const Seq2SeqModel& model, const EncoderOutput& encoder,
                                         const GenerationOptions& options, const SearchSetup& setup) {
  auto cache = model.start_decoding(encoder);
  cache.repeat_interleave(options.num_return_sequences);
  const int64_t rows = cache.batch_size();
  const int64_t max_length = setup.max_length;
  // At least one step runs, whatever max_length says (as in the reference's loop).
  const int64_t width = std::max<int64_t>(max_length, 2);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const auto is_eos = [&](int64_t token) {
    return std::find(setup.eos_token_ids.begin(), setup.eos_token_ids.end(), token) !=
           setup.eos_token_ids.end();
  };

  GenerationResult result;
  // The whole sequence buffer up front, pad-filled; the loop writes one column per step.
  auto sequences = torch::full({rows, width}, setup.pad_token_id, torch::kInt64);
  sequences.select(1, 0).fill_(setup.decoder_start_token_id);
  auto token_scores = torch::zeros({rows, width - 1}, torch::kFloat32);
  auto* const tokens = sequences.data_ptr<int64_t>();
  auto* const chosen_scores = token_scores.data_ptr<float>();
  std::vector<char> unfinished(rows, 1);
  torch::Tensor exponentials;  // reused: exp(scores - max), one row per sequence
  int64_t length = 1;
  for (int64_t cur_len = 1;; ++cur_len) {
    auto step = model.decode_step(sequences.narrow(1, cur_len - 1, 1), cache, options.output_hidden_states);
    if (options.output_hidden_states) result.decoder_hidden_states.push_back(std::move(step.hidden_states));
    auto scores = step.logits.select(1, -1).to(torch::kFloat32).contiguous();
    process_logits_in_place(scores, sequences.narrow(1, 0, cur_len), setup.processing);
    // max() gives the first index of the row maximum, as argmax does.
    auto [maxima, next] = scores.max(1);
    if (options.do_sample) {
      next = torch::multinomial(torch::softmax(scores, -1), 1, /*replacement=*/false, generator).squeeze(1);
    }
    // log_softmax(scores)[next] = scores[next] - max - log(sum(exp(scores - max))).
    if (!exponentials.defined()) exponentials = torch::empty_like(scores);
    torch::sub_out(exponentials, scores, maxima.unsqueeze(1)).exp_();
    const auto sums = exponentials.sum(1).contiguous();
    const auto picked = scores.gather(1, next.unsqueeze(1)).squeeze(1).contiguous();
    next = next.contiguous();
    const auto* next_ids = next.data_ptr<int64_t>();
    const auto* max_data = maxima.contiguous().data_ptr<float>();
    const auto* sum_data = sums.data_ptr<float>();
    const auto* picked_data = picked.data_ptr<float>();
    bool any_unfinished = false;
    for (int64_t row = 0; row < rows; ++row) {
      if (!unfinished[row]) continue;  // ended rows keep emitting pad, with score 0, as in the reference
      const int64_t token = next_ids[row];
      tokens[row * width + cur_len] = token;
      chosen_scores[row * (width - 1) + cur_len - 1] =
          picked_data[row] - max_data[row] - std::log(sum_data[row]);
      unfinished[row] = !is_eos(token);
      any_unfinished = any_unfinished || unfinished[row];
    }
    length = cur_len + 1;
    if (cur_len + 1 >= max_length || !any_unfinished) break;
  }
  result.sequences = sequences.narrow(1, 0, length).contiguous();
  result.token_scores = token_scores.narrow(1, 0, length - 1).contiguous();
  result.sequence_scores = result.token_scores.sum(1);
  return result;
}

}  // namespace chorus::model
