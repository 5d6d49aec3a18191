// Text agents: data, SentencePiece vocabulary, a fresh T5 trained on bucketed batches, BLEU, publishing.
#include "train/text_agents.h"

#include <torch/torch.h>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <numeric>
#include <unordered_map>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/metrics/bleu.h"
#include "model/generation/generate.h"
#include "model/io/model_checkpoint.h"
#include "model/tokenizers/tokenizer.h"
#include "train/run_folder.h"
#include "train/seq2seq_training.h"
#include "train/trainer_config.h"

namespace chorus::train {
namespace {

// Feeds the trainer from memory (no temporary corpus file).
class VectorSentences final : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentences(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};

std::string format_number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

// FNV-1a 64 of a file's bytes (hex), or "missing".
std::string content_hash(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "missing";
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buffer[static_cast<size_t>(i)])) * 1099511628211ULL;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

// A data file as the fingerprint sees it: its name, size and content, not its folder or time
// stamp, so the same data in another checkout (or provisioned again) finds the same agent.
nlohmann::json describe(const TextPairSource& s) {
  const auto file_facts = [](const std::filesystem::path& p) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(p, ec);
    return nlohmann::json{p.filename().string(), ec ? -1 : static_cast<int64_t>(size), content_hash(p)};
  };
  nlohmann::json j = {{"format", to_string(s.format)}};
  if (s.format == TextPairFormat::text) {
    j["source"] = file_facts(s.source_file);
    j["target"] = file_facts(s.target_file);
  } else if (s.format == TextPairFormat::lm) {
    j["file"] = file_facts(s.file);
    j["chunks"] = {s.chunk_words, s.prompt};
  } else {
    j["file"] = file_facts(s.file);
    j["fields"] = {s.source_field, s.target_field, s.header, s.source_column, s.target_column};
  }
  return j;
}

TokenizedPairs tokenize_pairs(const model::Tokenizer& tokenizer, const std::vector<TextPair>& pairs) {
  TokenizedPairs out;
  out.sources.reserve(pairs.size());
  out.targets.reserve(pairs.size());
  for (const auto& p : pairs) {
    out.sources.push_back(tokenizer.encode(p.source));
    out.targets.push_back(tokenizer.encode(p.target));
  }
  return out;
}

std::vector<double> read_losses(const std::filesystem::path& metrics_file) {
  std::vector<double> losses;
  std::ifstream in(metrics_file);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.value("split", "") == "train" && j.contains("loss") && j["loss"].is_number()) {
      losses.push_back(j["loss"].get<double>());
    }
  }
  return losses;
}

}  // namespace

void train_sentencepiece(const std::vector<std::string>& sentences, const SentencePieceOptions& options,
                         const std::filesystem::path& model_file) {
  CHORUS_CHECK(!sentences.empty(), "no sentences to train the SentencePiece model '", model_file.string(), "' on");
  CHORUS_CHECK(options.model_type == "unigram" || options.model_type == "bpe", "tokenizer type '", options.model_type,
               "': expected unigram or bpe");
  CHORUS_CHECK(options.vocab_size >= 8, "tokenizer vocab_size ", options.vocab_size, ": expected at least 8");
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(options.seed & 0xFFFFFFFFu));
  // No model_prefix: the trainer returns the model as a serialized proto, written atomically below.
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"hard_vocab_limit", "false"},
      {"character_coverage", format_number(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", "1"},  // one thread: the same pieces on every machine
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"unk_id", "2"},
      {"bos_id", "-1"},
      {"minloglevel", "1"}};
  VectorSentences iterator(sentences);
  std::string proto;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &iterator, &proto);
  CHORUS_CHECK(status.ok(), "training the SentencePiece model '", model_file.string(), "' failed: ", status.ToString());
  write_file_atomically(model_file, proto);
}

std::string TextAgentSpec::fingerprint() const {
  const nlohmann::json j = {
      {"format", 2},
      {"train", describe(train_data)},
      {"valid", describe(valid_data)},
      {"load", {load.max_examples, load.skip_empty, load.strip}},
      {"length", {max_length, over_length == OverLength::truncate ? "truncate" : "drop"}},
      {"tokenizer", {tokenizer.model_type, tokenizer.vocab_size, tokenizer.character_coverage, tokenizer.max_sentences}},
      {"shape", {shape.d_model, shape.num_layers, shape.num_decoder_layers, shape.num_heads, shape.d_kv, shape.d_ff,
                 shape.feed_forward_proj}},
      {"train_options", {trainer.steps, trainer.optimizer.learning_rate, trainer.optimizer.weight_decay,
                         trainer.schedule.warmup_steps, static_cast<int>(trainer.schedule.kind),
                         trainer.schedule.min_lr_ratio, trainer.clip_norm, trainer.accumulation, trainer.eval_every,
                         trainer.early_stopping_patience}},
      {"batching", {batching.batch_size, batching.max_tokens, batching.pool_batches}},
      {"eval", {eval_examples, eval_max_new_tokens}},
      {"seed", seed}};
  // FNV-1a 64 of the canonical JSON, as the key-value agents' fingerprint.
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : j.dump()) h = (h ^ ch) * 1099511628211ULL;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

TextAgentSpec read_text_agent(const ConfigView& root) {
  TextAgentSpec s;
  s.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
  s.name = root.get<std::string>("name", s.name);

  const auto data = root.child("data");
  const auto format_name = data.get_choice("format", {"text", "jsonl", "tsv", "lm"});
  const auto format = format_name == "text"    ? TextPairFormat::text
                      : format_name == "jsonl" ? TextPairFormat::jsonl
                      : format_name == "tsv"   ? TextPairFormat::tsv
                                               : TextPairFormat::lm;
  s.train_data = read_text_pair_source(data.child("train"), format);
  s.valid_data = read_text_pair_source(data.child("valid"), format);
  if (format == TextPairFormat::lm) {
    const auto chunk_words = data.get_int("chunk_words", 64, 1);
    const auto prompt = data.get<std::string>("prompt", std::string());
    for (auto* split : {&s.train_data, &s.valid_data}) {
      split->chunk_words = chunk_words;
      split->prompt = prompt;
    }
  }
  s.load.max_examples = data.get_int("max_examples", 0, 0);
  s.load.skip_empty = data.get<bool>("skip_empty", true);
  s.load.strip = data.get<bool>("strip", true);
  s.max_length = data.get_int("max_length", 128, 2);
  s.over_length = data.get_choice("over_length", {"truncate", "drop"}, std::string("truncate")) == "truncate"
                      ? OverLength::truncate
                      : OverLength::drop;

  const auto tok = root.child_or_empty("tokenizer");
  s.tokenizer.model_type = tok.get_choice("type", {"unigram", "bpe"}, std::string("unigram"));
  s.tokenizer.vocab_size = tok.get_int("vocab_size", 8000, 8);
  s.tokenizer.character_coverage = tok.get_double("character_coverage", 1.0, 0.9, 1.0);
  s.tokenizer.max_sentences = tok.get_int("max_sentences", 2000000, 1);
  s.tokenizer.seed = s.seed;

  const auto agent = root.child("agent");
  const auto m = agent.child("model");
  s.shape.d_model = m.get_int("d_model", 256, 1);
  s.shape.num_layers = m.get_int("layers", 3, 1);
  s.shape.num_decoder_layers = m.get_int("decoder_layers", s.shape.num_layers, 1);
  s.shape.num_heads = m.get_int("heads", 4, 1);
  s.shape.d_kv = m.get_int("d_kv", s.shape.d_model / s.shape.num_heads, 1);
  s.shape.d_ff = m.get_int("d_ff", 4 * s.shape.d_model, 1);
  s.shape.feed_forward_proj = m.get_choice("feed_forward_proj", {"relu", "gated-gelu", "gated-silu"}, std::string("relu"));

  const auto t = agent.child("train");
  s.trainer = read_trainer_options(t, "pretrain " + s.name, s.seed);
  s.trainer.best_metric = s.language_model() ? "ppl" : "bleu";
  s.trainer.higher_is_better = !s.language_model();
  s.batching.batch_size = t.get_int("batch_size", 0, 0);
  s.batching.max_tokens = t.get_int("max_tokens", 0, 0);
  s.batching.pool_batches = t.get_int("pool_batches", 100, 1);
  if (s.batching.batch_size == 0 && s.batching.max_tokens == 0) s.batching.batch_size = 64;
  CHORUS_CHECK(s.batching.max_tokens == 0 || s.batching.max_tokens >= s.max_length, t.origin("max_tokens"), ": ",
               t.key_path("max_tokens"), " = ", s.batching.max_tokens, " is below data.max_length = ", s.max_length,
               " (expected room for at least one example of the longest kept length)");

  s.eval_examples = agent.get_int("eval_examples", 500, 1);
  s.eval_batch_size = agent.get_int("eval_batch_size", 64, 1);
  s.eval_max_new_tokens = agent.get_int("eval_max_new_tokens", 0, 0);
  return s;
}

eval::PerplexityResult validation_perplexity(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                                             const std::vector<TextPair>& pairs, int64_t batch_size) {
  const auto data = tokenize_pairs(tokenizer, pairs);
  eval::PerplexityOptions options;
  options.batch_size = batch_size;
  options.origin = "validation example";
  return eval::sequence_perplexity(model, data.targets, data.sources, tokenizer.pad_id(), options);
}

double greedy_bleu(const model::Seq2SeqModel& model, const model::Tokenizer& tokenizer,
                   const std::vector<TextPair>& pairs, int64_t batch_size, int64_t max_new_tokens) {
  torch::NoGradGuard no_grad;
  if (pairs.empty()) return 0.0;
  // Similar lengths together: less padding, the same translations.
  std::vector<size_t> order(pairs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return pairs[a].source.size() < pairs[b].source.size(); });
  model::GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  std::vector<std::string> hypotheses(pairs.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const auto end = std::min(order.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::string> inputs;
    for (size_t k = start; k < end; ++k) inputs.push_back(pairs[order[k]].source);
    const auto batch = model::tokenize_batch(tokenizer, inputs);
    const auto result = model::generate(model, batch.input_ids, batch.attention_mask, options);
    for (size_t k = start; k < end; ++k) {
      auto row = result.sequences[static_cast<int64_t>(k - start)].contiguous();
      std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      hypotheses[order[k]] = tokenizer.decode(ids);
    }
  }
  std::vector<std::string> references;
  references.reserve(pairs.size());
  for (const auto& p : pairs) references.push_back(p.target);
  return eval::BleuScorer().corpus_score(hypotheses, {references}).score;
}

TextPretrainResult pretrain_text_agent(const TextAgentSpec& spec, const std::filesystem::path& folder,
                                       const std::filesystem::path& work_folder, bool resume) {
  namespace fs = std::filesystem;
  const auto started = std::chrono::steady_clock::now();
  CHORUS_CHECK(!fs::exists(folder), "agent folder '", folder.string(), "' already exists; remove it to retrain");
  TextPretrainResult result;
  result.folder = folder;
  const auto fingerprint = spec.fingerprint();

  // The run folder: resumed only when it belongs to the same spec and data.
  const auto stamp = work_folder / "fingerprint.txt";
  bool can_resume = false;
  if (resume && fs::is_regular_file(latest_checkpoint_path(work_folder)) && fs::is_regular_file(stamp)) {
    std::ifstream in(stamp);
    std::string previous;
    in >> previous;
    can_resume = previous == fingerprint;
  }
  prepare_run_folder(work_folder, can_resume ? RunMode::resume : RunMode::overwrite);
  write_file_atomically(stamp, fingerprint + "\n");

  auto train_pairs = load_text_pairs(spec.train_data, spec.load);
  CHORUS_CHECK(!train_pairs.empty(), "no training pairs in ", describe(spec.train_data).dump(),
               " (every line empty or skipped?)");
  auto valid_options = spec.load;
  valid_options.max_examples = spec.eval_examples;
  const auto valid_pairs = load_text_pairs(spec.valid_data, valid_options);
  CHORUS_CHECK(!valid_pairs.empty(), "no validation pairs in ", describe(spec.valid_data).dump());

  // One joint vocabulary for both sides; kept in the run folder so that a resumed run reuses it.
  const auto tokenizer_folder = work_folder / "tokenizer";
  if (!(can_resume && fs::is_regular_file(tokenizer_folder / "spiece.model"))) {
    fs::create_directories(tokenizer_folder);
    std::vector<std::string> sentences;
    sentences.reserve(2 * train_pairs.size());
    // A language model's sources are all one prompt: it is learnt once, not once per chunk.
    if (spec.language_model()) {
      if (!train_pairs.front().source.empty()) sentences.push_back(train_pairs.front().source);
    } else {
      for (const auto& p : train_pairs) sentences.push_back(p.source);
    }
    for (const auto& p : train_pairs) sentences.push_back(p.target);
    train_sentencepiece(sentences, spec.tokenizer, tokenizer_folder / "spiece.model");
  }
  const std::shared_ptr<const model::Tokenizer> tokenizer = model::load_tokenizer(tokenizer_folder);

  auto data = tokenize_pairs(*tokenizer, train_pairs);
  train_pairs.clear();
  result.length_limit = limit_lengths(data, spec.max_length, spec.over_length, tokenizer->eos_id());
  CHORUS_CHECK(data.size() > 0, "every training pair is longer than max_length = ", spec.max_length, " tokens");
  result.train_examples = static_cast<int64_t>(data.size());
  EpochBatches batches(data.lengths(), spec.batching, spec.seed ^ 0x7E47A6E5ULL);

  auto shape = spec.shape;
  shape.vocab_size = tokenizer->vocab_size();
  shape.pad_token_id = tokenizer->pad_id();
  shape.eos_token_id = tokenizer->eos_id();
  const auto config_json = model::make_t5_config(shape);
  std::shared_ptr<model::Seq2SeqModel> model = model::make_untrained_t5(config_json, spec.seed * 7919 + 1);
  const int64_t max_new_tokens = spec.eval_max_new_tokens > 0 ? spec.eval_max_new_tokens : spec.max_length;
  const int64_t accumulation = spec.trainer.accumulation;
  Seq2SeqTrainingProblem problem(
      model,
      [&](int64_t step, int64_t micro) {
        Seq2SeqBatch batch;
        batch.tokens = make_token_batch(data, batches.batch(step * accumulation + micro).examples, tokenizer->pad_id());
        return batch;
      },
      InputSmoothing{},
      [&](const model::Seq2SeqModel& m) {
        if (spec.language_model()) {
          return std::map<std::string, double>{
              {"ppl", validation_perplexity(m, *tokenizer, valid_pairs, spec.eval_batch_size).perplexity}};
        }
        return std::map<std::string, double>{
            {"bleu", greedy_bleu(m, *tokenizer, valid_pairs, spec.eval_batch_size, max_new_tokens)}};
      },
      spec.seed);
  const auto trained = train(problem, spec.trainer, work_folder, can_resume);
  result.steps = trained.steps_done;
  result.losses = trained.losses;
  if (fs::is_regular_file(best_checkpoint_path(work_folder))) {
    load_parameters(best_checkpoint_path(work_folder), problem.parameters());
  }
  model->freeze();
  if (spec.language_model()) {
    const auto ppl = validation_perplexity(*model, *tokenizer, valid_pairs, spec.eval_batch_size);
    result.perplexity = ppl.perplexity;
    result.eval_tokens = ppl.total_tokens;
  } else {
    result.bleu = greedy_bleu(*model, *tokenizer, valid_pairs, spec.eval_batch_size, max_new_tokens);
  }
  const auto losses = read_losses(work_folder / "metrics.jsonl");

  // Publish: build the folder next to its final place, then rename it in.
  const auto staging = fs::path(folder.string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  fs::create_directories(staging);
  model::save_model_checkpoint(staging / "model.h5", model::ModelFiles{config_json, model::model_weights(*model)});
  fs::copy_file(tokenizer_folder / "spiece.model", staging / "spiece.model");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  nlohmann::json info = {
      {"fingerprint", fingerprint},
      {"name", spec.name},
      {"kind", spec.language_model() ? "text_lm" : "text"},
      {"eval_examples", static_cast<int64_t>(valid_pairs.size())},
      {"steps", trained.steps_done},
      {"best_step", trained.best_step},
      {"train_examples", result.train_examples},
      {"truncated", result.length_limit.truncated},
      {"dropped", result.length_limit.dropped},
      {"vocab_size", tokenizer->vocab_size()},
      {"tokenizer", {{"type", spec.tokenizer.model_type}, {"vocab_size", spec.tokenizer.vocab_size}}},
      {"first_logged_loss", losses.empty() ? nlohmann::json() : nlohmann::json(losses.front())},
      {"last_logged_loss", losses.empty() ? nlohmann::json() : nlohmann::json(losses.back())},
      {"train_seconds", trained.seconds},
      {"seconds", result.seconds},
      {"data", {{"train", describe(spec.train_data)}, {"valid", describe(spec.valid_data)}}}};
  if (spec.language_model()) {
    info["ppl"] = result.perplexity;
    info["eval_tokens"] = result.eval_tokens;
    info["ppl_convention"] = "exp(mean token NLL), teacher forcing, </s> counted, source: the prompt";
  } else {
    info["bleu"] = result.bleu;
    info["bleu_signature"] = eval::BleuScorer().signature(1);
  }
  write_file_atomically(staging / "pretrain.json", info.dump(2) + "\n");
  if (!folder.parent_path().empty()) fs::create_directories(folder.parent_path());
  fs::rename(staging, folder);
  return result;
}

}  // namespace chorus::train
