// BART as a Seq2SeqModel, built from Hugging Face weights.
#pragma once

#include <memory>

#include "model/io/weight_map.h"
#include "model/seq2seq_model.h"

namespace chorus::model {

// BART: learned positions (offset 2), embeddings scaled by sqrt(d_model) when
// scale_embedding, layernorm_embedding, post-norm blocks with biased
// projections, GELU feed-forward, LM head tied to the embedding (unless
// tie_word_embeddings is false) plus final_logits_bias. Weights are taken from
// `weights` (reference names, "model." prefix) and converted to `dtype`.
std::shared_ptr<Seq2SeqModel> make_bart_model(const Seq2SeqConfig& config, const WeightMap& weights,
                                              torch::Dtype dtype);

}  // namespace chorus::model
