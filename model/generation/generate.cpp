// generate(): resolves the options, encodes, and hands over to a search strategy.
#include "model/generation/generate.h"

#include <torch/torch.h>

#include "common/error.h"
#include "model/generation/search_strategies.h"

namespace chorus::model {

GenerationResult generate_from_encoder(const Seq2SeqModel& model, const EncoderOutput& encoder,
                                       const GenerationOptions& options) {
  const auto& config = model.config();
  check_generation_options(options, config);
  torch::NoGradGuard no_grad;
  SearchSetup setup;
  setup.eos_token_ids = options.eos_token_ids.empty() ? std::vector<int64_t>{config.eos_token_id} : options.eos_token_ids;
  // Like the reference: no pad token means the first EOS pads.
  setup.pad_token_id = options.pad_token_id.value_or(config.pad_token_id);
  setup.decoder_start_token_id = options.decoder_start_token_id.value_or(config.decoder_start_token_id);
  setup.max_length = options.max_new_tokens >= 0 ? options.max_new_tokens + 1 : options.max_length;
  auto& p = setup.processing;
  p.max_length = setup.max_length;
  p.min_length = options.min_length;
  p.min_new_tokens = options.min_new_tokens;
  p.prompt_length = 1;
  p.repetition_penalty = options.repetition_penalty;
  p.no_repeat_ngram_size = options.no_repeat_ngram_size;
  p.forced_bos_token_id = options.forced_bos_token_id.value_or(-1);
  p.forced_eos_token_id = options.forced_eos_token_id.value_or(-1);
  p.eos_token_ids = setup.eos_token_ids;
  p.sample = options.do_sample;
  p.temperature = options.temperature;
  p.top_k = options.top_k;
  p.top_p = options.top_p;
  // Beam sampling keeps one token more than there are EOS ids, so a beam can always go on.
  p.min_tokens_to_keep = options.num_beams > 1 ? 1 + static_cast<int64_t>(setup.eos_token_ids.size()) : 1;
  if (options.num_beams > 1) return beam_search(model, encoder, options, setup);
  return greedy_or_sample_search(model, encoder, options, setup);
}

GenerationResult generate(const Seq2SeqModel& model, const torch::Tensor& input_ids,
                          const torch::Tensor& attention_mask, const GenerationOptions& options) {
  check_generation_options(options, model.config());
  torch::NoGradGuard no_grad;
  const auto encoder = model.encode(input_ids, attention_mask, /*output_hidden_states=*/false);
  return generate_from_encoder(model, encoder, options);
}

}  // namespace chorus::model
