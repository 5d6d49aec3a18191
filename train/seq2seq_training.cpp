// Seq2seq training: teacher-forced cross-entropy with optional input smoothing.
#include "train/seq2seq_training.h"

#include <torch/torch.h>

#include "common/error.h"

namespace chorus::train {

torch::Tensor shift_right(const torch::Tensor& labels, int64_t decoder_start_token_id, int64_t pad_token_id) {
  auto shifted = torch::full_like(labels, decoder_start_token_id);
  if (labels.size(1) > 1) shifted.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return shifted.masked_fill(shifted == -100, pad_token_id);
}

torch::Tensor token_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, bool per_row) {
  CHORUS_CHECK(logits.dim() == 3 && labels.dim() == 2 && logits.size(0) == labels.size(0) &&
                   logits.size(1) == labels.size(1),
               "token_cross_entropy: logits ", logits.sizes(), " and labels ", labels.sizes(),
               " disagree; expected [B, T, V] and [B, T]");
  const auto log_probs = torch::log_softmax(logits.to(torch::kFloat32), -1);
  const auto valid = labels != -100;
  const auto picked = log_probs.gather(2, labels.clamp_min(0).unsqueeze(2)).squeeze(2) * valid;
  if (per_row) return -picked.sum(1) / valid.sum(1).clamp_min(1);
  return -picked.sum() / valid.sum().clamp_min(1);
}

Seq2SeqTrainingProblem::Seq2SeqTrainingProblem(std::shared_ptr<model::Seq2SeqModel> model, BatchSource batches,
                                               InputSmoothing smoothing, Evaluator evaluator, uint64_t seed)
    : model_(std::move(model)), batches_(std::move(batches)), smoothing_(smoothing), evaluator_(std::move(evaluator)),
      seed_(seed) {
  CHORUS_CHECK(model_ && !model_->frozen(), "a frozen model cannot be trained; load it with freeze = false");
}

std::vector<std::pair<std::string, torch::Tensor>> Seq2SeqTrainingProblem::parameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model_->named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

MicroBatchLoss Seq2SeqTrainingProblem::loss(int64_t step, int64_t micro) {
  const auto batch = batches_(step, micro);
  const auto& c = model_->config();
  const auto& t = batch.tokens;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(stream_seed(seed_, step, micro));
  const bool mix = batch.mix_ids.defined();
  const bool noise = smoothing_.noise_std > 0 && batch.noise_mask.defined();
  model::StateHook hook;
  if (mix || noise) {
    hook = [&](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
      if (layer != 0) return x;
      auto y = x;
      if (mix) {
        const auto embedding = model_->token_embedding();
        const auto other = torch::embedding(embedding, batch.mix_ids.clamp_min(0));
        const auto lambda = batch.mix_lambda.view({-1, 1, 1}).to(x.scalar_type());
        y = torch::where((batch.mix_ids >= 0).unsqueeze(2), lambda * y + (1 - lambda) * other, y);
      }
      if (noise) {
        const auto eps = at::normal(0.0, smoothing_.noise_std, y.sizes(), generator, y.options());
        y = y + eps * batch.noise_mask.unsqueeze(2).to(y.scalar_type());
      }
      return y;
    };
  }
  auto encoded = model_->encode(t.input_ids, t.attention_mask, false, hook);
  auto cache = model_->start_decoding(encoded);
  auto decoded = model_->decode_step(shift_right(t.labels, c.decoder_start_token_id, c.pad_token_id), cache);
  torch::Tensor loss;
  if (mix) {
    const auto lambda = batch.mix_lambda.to(torch::kFloat32);
    loss = (lambda * token_cross_entropy(decoded.logits, t.labels, true) +
            (1 - lambda) * token_cross_entropy(decoded.logits, batch.mix_labels, true))
               .mean();
  } else {
    loss = token_cross_entropy(decoded.logits, t.labels);
  }
  return {loss, (t.labels != -100).sum().item<int64_t>() + t.attention_mask.sum().item<int64_t>()};
}

std::map<std::string, double> Seq2SeqTrainingProblem::evaluate(int64_t) {
  if (!evaluator_) return {};
  return evaluator_(*model_);
}

}  // namespace chorus::train
