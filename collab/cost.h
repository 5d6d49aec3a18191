// Compute cost of collaboration: agent calls, tokens read and generated, estimated FLOPs and time.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "model/seq2seq_model.h"

namespace chorus::collab {

// What answering costs, summed over calls (or, after `per_example`, a mean per example). Named
// apart from responder.h's Cost, which counts what one responder was asked.
struct ComputeCost {
  double agent_calls = 0;  // one per prompt an agent answers (a batch of n prompts is n calls)
  double tokens_in = 0;    // prompt tokens read, special tokens included, padding excluded
  double tokens_out = 0;   // tokens generated, up to and including the first end-of-sequence token
  double flops = 0;        // seq2seq_call_flops of every call (plus any router's own)
  double seconds = 0;      // wall-clock time measured around the calls

  ComputeCost& operator+=(const ComputeCost& other);
  // This cost divided by `examples` (> 0): the mean per example.
  ComputeCost per_example(double examples) const;
  // The field called `measure`: "agent_calls", "tokens" (in + out), "flops" or "seconds";
  // anything else is a chorus::Error naming it.
  double measure(const std::string& measure) const;
};
ComputeCost operator+(ComputeCost a, const ComputeCost& b);

// {"agent_calls": .., "tokens_in": .., "tokens_out": .., "flops": .., "seconds": ..}
nlohmann::json to_json(const ComputeCost& cost);

// Estimated FLOPs of one seq2seq call on one prompt: the encoder over `tokens_in` tokens, then
// `tokens_out` decoder steps with a KV cache (step t reads t cached self-attention keys).
//
// Convention: a multiply-add is 2 FLOPs, so a [m,k]x[k,n] product is 2mkn; attention follows the
// project's convention (forward 4·H·Nq·Nk·D per sequence, scores and values alike). Counted:
//   encoder, per layer: Q, K, V, O projections 8·S·d·(H·D); self-attention 4·H·S·S·D;
//     feed-forward 2·S·d·ff per matrix (2 matrices, 3 when gated);
//   decoder, per layer and step t = 1..T: self-attention projections 8·d·(H·D) and 4·H·t·D;
//     cross-attention Q and O projections 4·d·(H·D) and 4·H·S·D, plus the cross-attention K and V
//     projections of the S encoder states once per call (when T > 0), 4·S·d·(H·D); the feed-forward
//     as above;
//   the output projection to the vocabulary, 2·d·V per step.
// Not counted: embedding lookups, norms, softmax, activations, position biases and the search
// itself (elementwise work, small next to the products above; not measured here). Costs are per
// prompt without padding: a padded batch does more arithmetic than the sum of its rows, and that
// excess is a batching choice, not a cost of the mechanism.
double seq2seq_call_flops(const model::Seq2SeqConfig& config, int64_t tokens_in,
                          int64_t tokens_out);

// One call's cost (agent_calls 1, seconds 0: time is measured around batches, not estimated).
ComputeCost seq2seq_call_cost(const model::Seq2SeqConfig& config, int64_t tokens_in,
                              int64_t tokens_out);
inline ComputeCost seq2seq_call_cost(const model::Seq2SeqModel& model, int64_t tokens_in,
                                     int64_t tokens_out) {
  return seq2seq_call_cost(model.config(), tokens_in, tokens_out);
}

}  // namespace chorus::collab
