// Training the key-value world's agents from scratch, with a content-addressed cache.
#include "train/kv_agents.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "model/generation/generate.h"
#include "model/io/model_checkpoint.h"
#include "train/run_folder.h"
#include "train/seq2seq_training.h"
#include "train/trainer_config.h"

namespace chorus::train {

KvAgentSpec read_kv_agent(const ConfigView& v, const std::string& name, uint64_t seed) {
  KvAgentSpec s;
  s.name = name;
  s.seed = seed;
  s.role = v.get<std::string>("role", std::string());
  s.task = tasks::parse_arithmetic_task(v.get_choice("task", {"kv_subs", "num_math"}), v.path());
  const auto sampling = v.child_or_empty("sampling");
  s.sampling.single_fraction = sampling.get_double("single_fraction", 0.0, 0.0, 1.0);
  s.sampling.mixed_fraction = sampling.get_double("mixed_fraction", 0.0, 0.0, 1.0);
  const auto m = v.child("model");
  s.shape.d_model = m.get_int("d_model", 128, 1);
  s.shape.num_layers = m.get_int("layers", 2, 1);
  s.shape.num_decoder_layers = m.get_int("decoder_layers", s.shape.num_layers, 1);
  s.shape.num_heads = m.get_int("heads", 4, 1);
  s.shape.d_kv = m.get_int("d_kv", s.shape.d_model / s.shape.num_heads, 1);
  s.shape.d_ff = m.get_int("d_ff", 4 * s.shape.d_model, 1);
  s.shape.feed_forward_proj = m.get_choice("feed_forward_proj", {"relu", "gated-gelu", "gated-silu"}, std::string("relu"));
  s.shape.tie_word_embeddings = m.get<bool>("tie_word_embeddings", true);
  const auto t = v.child("train");
  s.trainer = read_trainer_options(t, "pretrain " + name, seed);
  s.batch_size = t.get_int("batch_size", 128, 1);
  s.eval_examples = v.get_int("eval_examples", 500, 1);
  const auto smoothing = v.child_or_empty("smoothing");
  s.noise_std = smoothing.get_double("noise_std", 0.0, 0.0);
  s.mixup_fraction = smoothing.get_double("mixup_fraction", 0.0, 0.0, 1.0);
  CHORUS_CHECK(s.mixup_fraction == 0.0 || s.task == tasks::ArithmeticTask::num_math, v.path(),
               ".smoothing.mixup_fraction: embedding mixup mixes two numbers, so it applies to num_math agents only");
  s.trainer.best_metric = "exact_match";
  return s;
}

std::string KvAgentSpec::fingerprint(const tasks::KeyValueArithmeticOptions& world) const {
  const nlohmann::json j = {
      {"format", 1},
      {"world", {world.keys, world.max_value, world.train_keys, world.seed}},
      {"task", to_string(task)},
      {"sampling", {sampling.single_fraction, sampling.mixed_fraction}},
      {"shape", {shape.d_model, shape.num_layers, shape.num_decoder_layers, shape.num_heads, shape.d_kv, shape.d_ff,
                 shape.feed_forward_proj, shape.tie_word_embeddings}},
      {"train", {trainer.steps, batch_size, trainer.optimizer.learning_rate, trainer.optimizer.weight_decay,
                 trainer.schedule.warmup_steps, static_cast<int>(trainer.schedule.kind), trainer.schedule.min_lr_ratio,
                 trainer.clip_norm, trainer.accumulation, trainer.eval_every, trainer.early_stopping_patience}},
      {"smoothing", {noise_std, mixup_fraction}},
      {"eval_examples", eval_examples},
      {"seed", seed}};
  // FNV-1a 64 of the canonical JSON: stable across runs and machines.
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char ch : j.dump()) h = (h ^ ch) * 1099511628211ULL;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

double kv_exact_match(const model::Seq2SeqModel& model, const tasks::KeyValueArithmetic& world,
                      const std::vector<tasks::ArithmeticExample>& examples, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  model::GenerationOptions options;
  options.max_new_tokens = 8;
  for (size_t start = 0; start < examples.size(); start += static_cast<size_t>(batch_size)) {
    const auto end = std::min(examples.size(), start + static_cast<size_t>(batch_size));
    std::vector<std::string> inputs;
    for (size_t i = start; i < end; ++i) inputs.push_back(examples[i].input);
    const auto batch = model::tokenize_batch(world.tokenizer(), inputs);
    const auto result = model::generate(model, batch.input_ids, batch.attention_mask, options);
    for (size_t i = start; i < end; ++i) {
      auto row = result.sequences[static_cast<int64_t>(i - start)].contiguous();
      std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
      correct += world.tokenizer().decode(ids) == examples[i].target ? 1 : 0;
    }
  }
  return examples.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(examples.size());
}

std::filesystem::path default_agent_cache() {
  if (const char* dir = std::getenv("CHORUS_CACHE_DIR"); dir != nullptr && *dir != '\0') {
    return std::filesystem::path(dir) / "agents";
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::filesystem::path(xdg) / "chorus" / "agents";
  }
  const char* home = std::getenv("HOME");
  CHORUS_CHECK(home != nullptr && *home != '\0', "no cache folder for agents: set CHORUS_CACHE_DIR or HOME");
  return std::filesystem::path(home) / ".cache" / "chorus" / "agents";
}

namespace {

// The batch of (step, micro): examples, operand noise positions and number mixup.
Seq2SeqBatch make_batch(const tasks::KeyValueArithmetic& world, const KvAgentSpec& spec, int64_t step, int64_t micro) {
  std::mt19937_64 rng(stream_seed(spec.seed ^ 0xA5A5A5A5ULL, step, micro));
  std::vector<std::string> inputs, targets, mix_targets;
  std::vector<tasks::ArithmeticExample> examples;
  for (int64_t i = 0; i < spec.batch_size; ++i) {
    examples.push_back(world.sample(spec.task, spec.sampling, rng));
    inputs.push_back(examples.back().input);
    targets.push_back(examples.back().target);
  }
  Seq2SeqBatch batch;
  batch.tokens = model::tokenize_batch(world.tokenizer(), inputs, targets);
  const auto shape = batch.tokens.input_ids.sizes();
  if (spec.noise_std > 0) {
    batch.noise_mask = torch::zeros(shape, torch::kBool);
    for (size_t i = 0; i < examples.size(); ++i) {
      for (auto p : examples[i].operand_positions) batch.noise_mask.index_put_({static_cast<int64_t>(i), p}, true);
    }
  }
  if (spec.mixup_fraction > 0) {
    batch.mix_ids = torch::full(shape, -1, torch::kInt64);
    batch.mix_lambda = torch::ones({spec.batch_size});
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::uniform_int_distribution<int64_t> number(0, world.options().max_value);
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& ex = examples[i];
      std::string mix_target = ex.target;
      if (unit(rng) < spec.mixup_fraction) {
        const size_t which = ex.operand_values.size() == 1 ? 0 : static_cast<size_t>(rng() % 2);
        auto values = ex.operand_values;
        values[which] = number(rng);
        const auto position = ex.operand_positions[which];
        const auto alt_id = world.tokenizer().encode(std::to_string(values[which]), false).at(0);
        batch.mix_ids.index_put_({static_cast<int64_t>(i), position}, alt_id);
        batch.mix_lambda.index_put_({static_cast<int64_t>(i)}, unit(rng));
        mix_target = values.size() == 1 ? std::to_string(values[0])
                                        : std::to_string(tasks::KeyValueArithmetic::apply(values[0], ex.op, values[1]));
      }
      mix_targets.push_back(mix_target);
    }
    batch.mix_labels = model::tokenize_batch(world.tokenizer(), inputs, mix_targets).labels;
    CHORUS_CHECK(batch.mix_labels.sizes() == batch.tokens.labels.sizes(), "mixup targets and targets differ in shape");
  }
  return batch;
}

}  // namespace

PretrainResult pretrain_kv_agent(const tasks::KeyValueArithmetic& world, const KvAgentSpec& spec, const std::filesystem::path& folder,
                                 const std::filesystem::path& work_folder, bool resume) {
  namespace fs = std::filesystem;
  const auto fingerprint = spec.fingerprint(world.options());
  PretrainResult result;
  result.folder = folder;
  const auto info_file = folder / "pretrain.json";
  if (fs::is_regular_file(info_file)) {
    std::ifstream in(info_file);
    const auto info = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (info.is_object() && info.value("fingerprint", "") == fingerprint && fs::is_regular_file(folder / "model.h5")) {
      result.cached = true;
      result.exact_match = info.value("exact_match", 0.0);
      return result;
    }
    throw Error("agent folder '" + folder.string() + "' holds a different agent (fingerprint " +
                info.value("fingerprint", std::string("?")) + ", expected " + fingerprint + "); remove it to retrain");
  }

  // The training run: resumable when an earlier attempt of the same agent was interrupted.
  const auto stamp = work_folder / "fingerprint.txt";
  bool can_resume = false;
  if (fs::is_regular_file(latest_checkpoint_path(work_folder)) && fs::is_regular_file(stamp)) {
    std::ifstream in(stamp);
    std::string previous;
    in >> previous;
    can_resume = previous == fingerprint;
  }
  prepare_run_folder(work_folder, can_resume && resume ? RunMode::resume : RunMode::overwrite);
  write_file_atomically(stamp, fingerprint + "\n");

  const auto config_json = [&] {
    auto shape = spec.shape;
    shape.vocab_size = world.tokenizer().vocab_size();
    return model::make_t5_config(shape);
  }();
  std::shared_ptr<model::Seq2SeqModel> model = model::make_untrained_t5(config_json, spec.seed * 7919 + 1);
  const auto eval_set = tasks::arithmetic_examples(world, spec.task, spec.sampling, spec.eval_examples, spec.seed * 31 + 977);
  Seq2SeqTrainingProblem problem(
      model, [&](int64_t step, int64_t micro) { return make_batch(world, spec, step, micro); },
      InputSmoothing{spec.noise_std},
      [&](const model::Seq2SeqModel& m) {
        return std::map<std::string, double>{{"exact_match", kv_exact_match(m, world, eval_set)}};
      },
      spec.seed);
  const auto started = std::chrono::steady_clock::now();
  const auto trained = train(problem, spec.trainer, work_folder, can_resume && resume);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (fs::is_regular_file(best_checkpoint_path(work_folder))) {
    load_parameters(best_checkpoint_path(work_folder), problem.parameters());
  }
  model->freeze();
  result.exact_match = kv_exact_match(*model, world, eval_set);

  // Publish: build the folder next to its final place, then rename it in.
  const auto staging = fs::path(folder.string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  fs::create_directories(staging);
  model::save_model_checkpoint(staging / "model.h5", model::ModelFiles{config_json, model::model_weights(*model)});
  world.tokenizer().save(staging);
  const nlohmann::json info = {{"fingerprint", fingerprint},
                               {"name", spec.name},
                               {"task", to_string(spec.task)},
                               {"exact_match", result.exact_match},
                               {"steps", trained.steps_done},
                               {"best_step", trained.best_step},
                               {"train_seconds", result.seconds}};
  write_file_atomically(staging / "pretrain.json", info.dump(2) + "\n");
  fs::create_directories(folder.parent_path());
  fs::rename(staging, folder);
  return result;
}

}  // namespace chorus::train
