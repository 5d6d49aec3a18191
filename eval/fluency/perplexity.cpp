// Perplexity: teacher-forced forward passes over length-sorted, right-padded batches.
#include "eval/fluency/perplexity.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace chorus::eval {
namespace {

std::string segment_name(const PerplexityOptions& options, size_t index) {
  return options.origin.empty() ? "segment " + std::to_string(index + 1)
                                : options.origin + ":" + std::to_string(index + 1);
}

// The model's own length limit: BART's learned positions end at max_position_embeddings.
int64_t length_limit(const model::Seq2SeqModel& model, const PerplexityOptions& options) {
  if (options.max_tokens > 0) return options.max_tokens;
  if (model.family() == model::ModelFamily::bart && model.config().max_position_embeddings > 0) {
    return model.config().max_position_embeddings;
  }
  return 0;
}

void check_sequence(const std::vector<int64_t>& ids, const char* side, int64_t limit, int64_t vocab,
                    const PerplexityOptions& options, size_t index) {
  if (limit > 0 && static_cast<int64_t>(ids.size()) > limit) {
    throw Error(segment_name(options, index) + ": the " + side + " has " + std::to_string(ids.size()) +
                " tokens, above the limit of " + std::to_string(limit) +
                (options.max_tokens > 0 ? " (max_tokens)" : " (the model's max_position_embeddings)") +
                "; perplexity does not truncate, so shorten or split the segment");
  }
  for (const auto id : ids) {
    CHORUS_CHECK(id >= 0 && id < vocab, segment_name(options, index), ": token id ", id, " in the ", side,
                 " is outside the model's vocabulary of ", vocab);
  }
}

// Right-pads `rows` (in the order `order[begin, end)`) with `fill`; the mask marks the tokens.
torch::Tensor pad_rows(const std::vector<std::vector<int64_t>>& rows, const std::vector<size_t>& order, size_t begin,
                       size_t end, int64_t fill, torch::Tensor* mask) {
  size_t width = 1;
  for (size_t k = begin; k < end; ++k) width = std::max(width, rows[order[k]].size());
  auto ids = torch::full({static_cast<int64_t>(end - begin), static_cast<int64_t>(width)}, fill, torch::kInt64);
  auto m = torch::zeros_like(ids);
  auto a = ids.accessor<int64_t, 2>();
  auto am = m.accessor<int64_t, 2>();
  for (size_t k = begin; k < end; ++k) {
    const auto& row = rows[order[k]];
    for (size_t t = 0; t < row.size(); ++t) {
      a[static_cast<int64_t>(k - begin)][static_cast<int64_t>(t)] = row[t];
      am[static_cast<int64_t>(k - begin)][static_cast<int64_t>(t)] = 1;
    }
  }
  if (mask != nullptr) *mask = m;
  return ids;
}

}  // namespace

PerplexityResult summarize_perplexity(std::vector<double> nll, std::vector<int64_t> tokens,
                                      const BootstrapParams& bootstrap) {
  CHORUS_CHECK(!nll.empty() && nll.size() == tokens.size(), "perplexity: ", nll.size(), " segment scores and ",
               tokens.size(), " token counts (expected the same, non-zero number)");
  PerplexityResult result;
  SegmentStatistics stats;
  stats.width = 2;
  for (size_t i = 0; i < nll.size(); ++i) {
    CHORUS_CHECK(tokens[i] > 0, "perplexity: segment ", i + 1, " has no tokens");
    result.total_nll += nll[i];
    result.total_tokens += tokens[i];
    stats.append({nll[i], static_cast<double>(tokens[i])});
  }
  result.perplexity = std::exp(result.total_nll / static_cast<double>(result.total_tokens));
  const ScoreFromTotals ratio = [](const std::vector<double>& t) { return std::exp(t[0] / t[1]); };
  result.interval = bootstrap_confidence_interval(stats, ratio, bootstrap);
  result.nll = std::move(nll);
  result.tokens = std::move(tokens);
  return result;
}

PerplexityResult sequence_perplexity(const model::Seq2SeqModel& model,
                                     const std::vector<std::vector<int64_t>>& targets,
                                     const std::vector<std::vector<int64_t>>& sources, int64_t pad_id,
                                     const PerplexityOptions& options) {
  CHORUS_CHECK(!targets.empty(), "perplexity: no segments to score");
  CHORUS_CHECK(sources.size() == targets.size(), "perplexity: ", targets.size(), " segments but ",
               sources.size(), " sources (expected one source per segment)");
  CHORUS_CHECK(options.batch_size > 0, "perplexity: batch_size ", options.batch_size, " (expected at least 1)");
  const int64_t limit = length_limit(model, options);
  const int64_t vocab = model.vocab_size();
  for (size_t i = 0; i < targets.size(); ++i) {
    CHORUS_CHECK(!targets[i].empty(), segment_name(options, i), ": an empty token sequence has nothing to score");
    check_sequence(targets[i], "text", limit, vocab, options, i);
    CHORUS_CHECK(!sources[i].empty(), segment_name(options, i),
                 ": an empty source sequence (the empty text tokenises to at least </s>)");
    check_sequence(sources[i], "source", limit, vocab, options, i);
  }
  const auto& source_ids = sources;

  // Longest first, so the first batch shows at once whether memory suffices; similar lengths
  // together, so that little is padded.
  std::vector<size_t> order(targets.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return targets[a].size() + source_ids[a].size() > targets[b].size() + source_ids[b].size();
  });

  c10::InferenceMode inference;
  const auto device = model.token_embedding().device();
  const int64_t start_id = model.config().decoder_start_token_id;
  std::vector<double> nll(targets.size(), 0.0);
  std::vector<int64_t> counts(targets.size(), 0);
  const auto batch = static_cast<size_t>(options.batch_size);
  for (size_t begin = 0; begin < order.size(); begin += batch) {
    const size_t end = std::min(order.size(), begin + batch);
    torch::Tensor source_mask, label_mask;
    const auto input_ids = pad_rows(source_ids, order, begin, end, pad_id, &source_mask);
    const auto labels = pad_rows(targets, order, begin, end, pad_id, &label_mask);
    // Shifted right behind the start token, as the reference's shift_tokens_right; the padding
    // that follows a row's last token is never read by that row's earlier positions (causal).
    auto decoder_input = torch::full_like(labels, start_id);
    if (labels.size(1) > 1) decoder_input.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
    const auto output = model.forward(input_ids.to(device), source_mask.to(device), decoder_input.to(device));
    const auto log_probs = torch::log_softmax(output.logits.to(torch::kFloat32), -1);
    const auto picked = log_probs.gather(2, labels.to(device).unsqueeze(2)).squeeze(2).to(torch::kCPU);
    const auto masked = (picked.to(torch::kFloat64) * label_mask.to(torch::kFloat64)).sum(1).contiguous();
    const auto sums = masked.accessor<double, 1>();
    for (size_t k = begin; k < end; ++k) {
      nll[order[k]] = -sums[static_cast<int64_t>(k - begin)];
      counts[order[k]] = static_cast<int64_t>(targets[order[k]].size());
    }
  }
  return summarize_perplexity(std::move(nll), std::move(counts), options.bootstrap);
}

PerplexityResult text_perplexity(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                                 const std::vector<std::string>& texts, const std::vector<std::string>& sources,
                                 const PerplexityOptions& options) {
  CHORUS_CHECK(!texts.empty(), "perplexity: no segments to score");
  CHORUS_CHECK(sources.empty() || sources.size() == texts.size(), "perplexity: ", texts.size(), " segments but ",
               sources.size(), " sources (expected one source per segment, or none)");
  CHORUS_CHECK(tokenizer.vocab_size() <= model.vocab_size(), "perplexity: the tokenizer has ",
               tokenizer.vocab_size(), " ids but the model's vocabulary has only ", model.vocab_size());
  std::vector<std::vector<int64_t>> target_ids, source_ids;
  target_ids.reserve(texts.size());
  for (const auto& text : texts) target_ids.push_back(tokenizer.encode(text));
  // The empty source is tokenised too (T5: "</s>"; BART: "<s></s>"), as the reference tokenizer
  // turns "" into the encoder's input.
  source_ids.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) source_ids.push_back(tokenizer.encode(sources.empty() ? "" : sources[i]));
  return sequence_perplexity(model, target_ids, source_ids, tokenizer.pad_id(), options);
}

}  // namespace chorus::eval
