// Beam search and beam sampling, ported step for step from the reference's vectorised
// implementation so that sequences and scores agree exactly (same top-k and multinomial calls on
// the same float32 values).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <tuple>

#include "model/generation/search_strategies.h"

namespace chorus::model {
namespace {

// tensor [B, beams, ...] gathered along dim 1 by indices [B, k].
torch::Tensor gather_beams(const torch::Tensor& tensor, torch::Tensor indices) {
  while (indices.dim() < tensor.dim()) indices = indices.unsqueeze(-1);
  return torch::take_along_dim(tensor, indices, 1);
}

torch::Tensor flatten_beams(const torch::Tensor& t) { return t.flatten(0, 1); }

}  // namespace

GenerationResult beam_search(const Seq2SeqModel& model, const EncoderOutput& encoder,
                             const GenerationOptions& options, const SearchSetup& setup) {
  const int64_t num_beams = options.num_beams;
  const int64_t vocab = model.vocab_size();
  const int64_t max_length = setup.max_length;
  const double length_penalty = options.length_penalty;
  const auto early_stopping = options.early_stopping;
  constexpr int64_t prompt_length = 1;  // the decoder start token

  auto cache = model.start_decoding(encoder);
  const int64_t batch = cache.batch_size();
  cache.repeat_interleave(num_beams);
  // Seeded like the reference's torch.manual_seed(seed): the same stream of draws.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);

  const auto eos = torch::tensor(setup.eos_token_ids, torch::kInt64);
  const int64_t n_eos = static_cast<int64_t>(setup.eos_token_ids.size());
  // Keep enough candidates that num_beams survive even if the best all end.
  const int64_t beams_to_keep = std::max<int64_t>(2, 1 + n_eos) * num_beams;
  auto top_num_beam_mask = torch::cat({torch::ones({num_beams}, torch::kBool),
                                       torch::zeros({beams_to_keep - num_beams}, torch::kBool)});
  // The reference's `pad_token_id or eos_token_id[0]`: a pad id of 0 is falsy there.
  const int64_t fill = setup.pad_token_id != 0 ? setup.pad_token_id : setup.eos_token_ids.front();

  auto running_sequences = torch::full({batch, num_beams, max_length}, fill, torch::kInt64);
  running_sequences.narrow(2, 0, 1).fill_(setup.decoder_start_token_id);
  auto sequences = running_sequences.clone();
  auto running_beam_scores = torch::zeros({batch, num_beams}, torch::kFloat32);
  running_beam_scores.narrow(1, 1, num_beams - 1).fill_(-1e9);
  auto beam_scores = torch::full({batch, num_beams}, -1e9, torch::kFloat32);
  auto is_sent_finished = torch::zeros({batch, num_beams}, torch::kBool);
  auto is_early_stop_heuristic_unsatisfied = torch::ones({batch, 1}, torch::kBool);
  auto running_beam_indices = torch::full({batch, num_beams, max_length - prompt_length}, -1, torch::kInt32);
  auto beam_indices = running_beam_indices.clone();
  // Not in the reference's state: each token's own processed log-probability.
  auto running_token_scores = torch::zeros({batch, num_beams, max_length - prompt_length}, torch::kFloat32);
  auto token_scores = running_token_scores.clone();
  const auto batch_offset = torch::arange(batch, torch::kInt64).view({-1, 1}) * num_beams;

  GenerationResult result;
  int64_t cur_len = prompt_length;
  for (bool finished = false; !finished;) {
    auto flat_running = flatten_beams(running_sequences.narrow(2, 0, cur_len));
    auto step = model.decode_step(flat_running.narrow(1, cur_len - 1, 1), cache, options.output_hidden_states);
    if (options.output_hidden_states) result.decoder_hidden_states.push_back(std::move(step.hidden_states));
    auto logits = step.logits.select(1, -1).to(torch::kFloat32);
    auto log_probs = torch::log_softmax(logits, -1);
    process_logits_in_place(log_probs, flat_running, setup.processing);
    auto step_log_probs = log_probs.reshape({batch, num_beams * vocab});
    log_probs = (log_probs.view({batch, num_beams, vocab}) + running_beam_scores.unsqueeze(2))
                    .reshape({batch, num_beams * vocab});

    // c. The best beams_to_keep continuations over all beams, or (beam sampling) as many drawn
    // without replacement from the softmax of the accumulated scores.
    torch::Tensor topk_log_probs;
    torch::Tensor topk_indices;
    if (options.do_sample) {
      topk_indices = torch::multinomial(torch::softmax(log_probs, -1), beams_to_keep, /*replacement=*/false, generator);
      topk_log_probs = log_probs.gather(1, topk_indices);
    } else {
      std::tie(topk_log_probs, topk_indices) = torch::topk(log_probs, beams_to_keep);
    }
    auto topk_current_beam_indices = topk_indices.div(vocab, "floor");
    auto topk_running_beam_indices = gather_beams(running_beam_indices, topk_current_beam_indices);
    auto topk_running_sequences = gather_beams(running_sequences, topk_current_beam_indices);
    auto topk_running_token_scores = gather_beams(running_token_scores, topk_current_beam_indices);
    auto topk_ids = topk_indices.remainder(vocab);
    topk_running_sequences.select(2, cur_len).copy_(topk_ids);
    topk_running_beam_indices.select(2, cur_len - prompt_length)
        .copy_(topk_current_beam_indices + batch_offset);
    topk_running_token_scores.select(2, cur_len - prompt_length).copy_(step_log_probs.gather(1, topk_indices));

    // d. Which candidates end here (max length or EOS).
    auto hits = torch::isin(topk_ids, eos);
    if (cur_len + 1 >= max_length) hits = torch::ones_like(hits);

    // e. The best num_beams unfinished candidates keep running.
    auto topk_running_log_probs = topk_log_probs + hits.to(torch::kFloat32) * -1.0e9;
    auto next_topk_indices = std::get<1>(torch::topk(topk_running_log_probs, num_beams));
    running_sequences = gather_beams(topk_running_sequences, next_topk_indices);
    running_beam_scores = gather_beams(topk_running_log_probs, next_topk_indices);
    running_beam_indices = gather_beams(topk_running_beam_indices, next_topk_indices);
    running_token_scores = gather_beams(topk_running_token_scores, next_topk_indices);

    // f. Candidates among the top num_beams that ended join the finished set if good enough.
    auto did_top_num_beams_just_finish = hits & top_num_beam_mask.unsqueeze(0);
    auto finished_scores =
        topk_log_probs / std::pow(static_cast<double>(cur_len + 1 - prompt_length), length_penalty);
    auto beams_in_batch_are_full =
        is_sent_finished.all(-1, /*keepdim=*/true) & (early_stopping == EarlyStopping::when_full);
    finished_scores = finished_scores + beams_in_batch_are_full.to(torch::kFloat32) * -1.0e9;
    finished_scores = finished_scores + (~is_early_stop_heuristic_unsatisfied).to(torch::kFloat32) * -1.0e9;
    finished_scores = finished_scores + (~did_top_num_beams_just_finish).to(torch::kFloat32) * -1.0e9;
    auto merged_sequences = torch::cat({sequences, topk_running_sequences}, 1);
    auto merged_scores = torch::cat({beam_scores, finished_scores}, 1);
    auto merged_beam_indices = torch::cat({beam_indices, topk_running_beam_indices}, 1);
    auto merged_token_scores = torch::cat({token_scores, topk_running_token_scores}, 1);
    auto merged_finished = torch::cat({is_sent_finished, did_top_num_beams_just_finish}, 1);
    auto topk_merged_indices = std::get<1>(torch::topk(merged_scores, num_beams));
    sequences = gather_beams(merged_sequences, topk_merged_indices);
    beam_scores = gather_beams(merged_scores, topk_merged_indices);
    beam_indices = gather_beams(merged_beam_indices, topk_merged_indices);
    token_scores = gather_beams(merged_token_scores, topk_merged_indices);
    is_sent_finished = gather_beams(merged_finished, topk_merged_indices);

    // g. Follow the surviving beams in the cache; beams of one input share its encoder rows.
    auto rows = flatten_beams(running_beam_indices.select(2, cur_len - prompt_length)).to(torch::kInt64);
    cache.reorder(rows, /*same_source=*/true);
    cur_len += 1;

    const int64_t best_length = (early_stopping == EarlyStopping::never && length_penalty > 0.0)
                                    ? max_length - prompt_length
                                    : cur_len - prompt_length;
    auto best_possible_running_score =
        running_beam_scores.narrow(1, 0, 1) / std::pow(static_cast<double>(best_length), length_penalty);
    auto worst_finished_score =
        torch::where(is_sent_finished, std::get<0>(beam_scores.min(1, /*keepdim=*/true)), torch::full({}, -1.0e9));
    is_early_stop_heuristic_unsatisfied =
        is_early_stop_heuristic_unsatisfied &
        (best_possible_running_score > worst_finished_score).any(-1, /*keepdim=*/true);

    const bool improvement_possible = is_early_stop_heuristic_unsatisfied.any().item<bool>();
    const bool exists_open_beam =
        !(is_sent_finished.all().item<bool>() && early_stopping == EarlyStopping::when_full);
    const bool valid_continuations = !hits.all().item<bool>();
    finished = !(improvement_possible && exists_open_beam && valid_continuations);
  }

  const int64_t keep = options.num_return_sequences;
  auto out_sequences = flatten_beams(sequences.narrow(1, 0, keep));
  auto out_indices = flatten_beams(beam_indices.narrow(1, 0, keep));
  auto out_token_scores = flatten_beams(token_scores.narrow(1, 0, keep));
  const int64_t generated = (out_indices + 1).to(torch::kBool).sum(1).max().item<int64_t>();
  result.sequences = out_sequences.narrow(1, 0, prompt_length + generated).contiguous();
  result.token_scores = out_token_scores.narrow(1, 0, generated).contiguous();
  result.sequence_scores = flatten_beams(beam_scores.narrow(1, 0, keep)).contiguous();
  return result;
}

}  // namespace chorus::model
