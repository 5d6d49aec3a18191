// T5 v1.0 and v1.1 / flan-t5 as a Seq2SeqModel, built from Hugging Face weights.
#pragma once

#include <memory>

#include "model/io/weight_map.h"
#include "model/seq2seq_model.h"

namespace chorus::model {

// T5: pre-norm blocks with T5's scale-only layer norm, relative position bias
// shared from each stack's first layer (bidirectional buckets in the encoder,
// causal ones in the decoder), no attention scaling, ReLU (v1.0) or gated
// GELU (v1.1) feed-forward, and with tied embeddings the d_model^-0.5 rescale
// before the LM head. Weights are taken from `weights` (reference names) and
// converted to `dtype`; missing/unexpected tensors are one error.
std::shared_ptr<Seq2SeqModel> make_t5_model(const Seq2SeqConfig& config, const WeightMap& weights,
                                            torch::Dtype dtype);

}  // namespace chorus::model
