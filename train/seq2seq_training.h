// Training a seq2seq agent from scratch (or fine-tuning one): cross-entropy on target tokens, with
// optional input smoothing (embedding noise and embedding mixup with soft targets) that makes the
// agent's input space reachable by gradients of collaboration heads trained later.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>

#include "collab/agent.h"
#include "common/seeds.h"
#include "model/seq2seq_model.h"
#include "train/trainer.h"

namespace chorus::train {

// One training batch. Mixup rows replace the embedding at one position by
// lambda * E[id] + (1 - lambda) * E[mix_ids] and learn lambda * CE(labels) + (1 - lambda) * CE(mix_labels).
struct Seq2SeqBatch {
  model::TokenBatch tokens;
  torch::Tensor noise_mask;  // optional bool [B, S]: positions whose embeddings get Gaussian noise
  torch::Tensor mix_ids;     // optional int64 [B, S]: the other token of a mixed position, -1 elsewhere
  torch::Tensor mix_lambda;  // [B] float, 1 for rows without mixup
  torch::Tensor mix_labels;  // [B, T] the targets of the other token (labels where not mixed)
};

struct InputSmoothing {
  double noise_std = 0.0;  // per dimension, on noise_mask positions
};

// Draws the batch of micro-batch `micro` of step `step`; must be a pure function of its arguments.
using BatchSource = std::function<Seq2SeqBatch(int64_t step, int64_t micro)>;
// Held-out metrics of the model being trained (e.g. exact match).
using Evaluator = std::function<std::map<std::string, double>(const model::Seq2SeqModel& model)>;

class Seq2SeqTrainingProblem final : public TrainingProblem {
 public:
  Seq2SeqTrainingProblem(std::shared_ptr<model::Seq2SeqModel> model, BatchSource batches, InputSmoothing smoothing,
                         Evaluator evaluator, uint64_t seed);
  std::vector<std::pair<std::string, torch::Tensor>> parameters() override;
  MicroBatchLoss loss(int64_t step, int64_t micro) override;
  std::map<std::string, double> evaluate(int64_t step) override;

 private:
  std::shared_ptr<model::Seq2SeqModel> model_;
  BatchSource batches_;
  InputSmoothing smoothing_;
  Evaluator evaluator_;
  uint64_t seed_;
};

// Decoder inputs for teacher forcing: the start token, then labels shifted right (-100 -> pad).
torch::Tensor shift_right(const torch::Tensor& labels, int64_t decoder_start_token_id, int64_t pad_token_id);
// Mean token cross-entropy of logits [B, T, V] against labels [B, T] (-100 ignored), per row [B]
// (each row's mean over its tokens) when `per_row`, else over all tokens.
torch::Tensor token_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, bool per_row = false);

// A generator for (seed, step, micro): independent streams per micro-batch, reproducible on resume.
using chorus::stream_seed;  // common/seeds.h

}  // namespace chorus::train
