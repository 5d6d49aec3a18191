// generate(): greedy, beam search and sampling over a Seq2SeqModel, batched with padding.
#pragma once

#include <torch/types.h>

#include <vector>

#include "model/generation/generation_options.h"
#include "model/seq2seq_model.h"

namespace chorus::model {

struct GenerationResult {
  // [rows, T] int64, rows = batch * num_return_sequences (grouped by input),
  // starting with the decoder start token; rows that ended early are filled
  // as the reference fills them (pad, or EOS in beam search when pad is 0).
  torch::Tensor sequences;
  // [rows, T - 1] float: the processed log-probability of each generated token
  // (log_softmax of the processed scores; 0 after a row ended).
  torch::Tensor token_scores;
  // [rows] float: beam search's length-penalised score; else the sum of token_scores.
  torch::Tensor sequence_scores;
  // On request: for each step, the decoder's hidden states of that step
  // (num_layers + 1 tensors of [batch * num_beams, 1, d_model]; with beam
  // search, rows are the beams running at that step).
  std::vector<std::vector<torch::Tensor>> decoder_hidden_states;
};

// input_ids [B, S] int64 (padded), attention_mask [B, S] (0/1) or undefined.
// Runs without gradients. Options are checked (chorus::Error when invalid).
GenerationResult generate(const Seq2SeqModel& model, const torch::Tensor& input_ids,
                          const torch::Tensor& attention_mask, const GenerationOptions& options);

// The same from an encoder output already computed (e.g. shared by several heads).
GenerationResult generate_from_encoder(const Seq2SeqModel& model, const EncoderOutput& encoder,
                                       const GenerationOptions& options);

}  // namespace chorus::model
