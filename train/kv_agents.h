// Agents of the key-value arithmetic world, trained from scratch by Chorus (`chorus pretrain`, and
// the first phase of the quickstart): a small T5 per agent, its task and its training recipe.
#pragma once

#include <filesystem>
#include <string>

#include "common/config.h"
#include "model/t5/t5_init.h"
#include "tasks/key_value_arithmetic.h"
#include "train/trainer.h"

namespace chorus::train {

struct KvAgentSpec {
  std::string name;
  std::string role;
  tasks::ArithmeticTask task = tasks::ArithmeticTask::kv_subs;
  tasks::ArithmeticSampling sampling;
  model::T5Shape shape;        // vocab_size comes from the world
  TrainerOptions trainer;
  int64_t batch_size = 128;
  double noise_std = 0.0;      // input smoothing: Gaussian noise on operand embeddings
  double mixup_fraction = 0.0; // input smoothing: rows whose one operand embedding is mixed with another number
  int64_t eval_examples = 500;
  uint64_t seed = 0;
  // A stable digest of everything above and the world: the cache key of the trained agent.
  std::string fingerprint(const tasks::KeyValueArithmeticOptions& world) const;
};

// Reads agents.<name> (keys: role, task, sampling{single_fraction, mixed_fraction}, model{d_model,
// layers, decoder_layers, heads, d_kv, d_ff, feed_forward_proj}, train{...}, smoothing{noise_std,
// mixup_fraction}, eval_examples).
KvAgentSpec read_kv_agent(const ConfigView& view, const std::string& name, uint64_t seed);

struct PretrainResult {
  std::filesystem::path folder;  // model.h5 + word_vocab.txt + pretrain.json
  double seconds = 0;            // training time (0 when taken from the cache)
  bool cached = false;
  double exact_match = 0;        // on the agent's own task, held-out draw
};

// Trains the agent into `work_folder` (resumable: the trainer's run folder), then publishes
// model.h5, word_vocab.txt and pretrain.json into `folder` atomically (a rename). When `folder`
// already holds an agent with the same fingerprint, returns it without training.
PretrainResult pretrain_kv_agent(const tasks::KeyValueArithmetic& world, const KvAgentSpec& spec, const std::filesystem::path& folder,
                                 const std::filesystem::path& work_folder, bool resume);

// Exact match of `agent` (a model + the world's tokenizer) on `examples` (greedy decoding).
double kv_exact_match(const model::Seq2SeqModel& model, const tasks::KeyValueArithmetic& world,
                      const std::vector<tasks::ArithmeticExample>& examples, int64_t batch_size = 250);

// The default place of cached agents: $CHORUS_CACHE_DIR, else $XDG_CACHE_HOME/chorus, else ~/.cache/chorus;
// agents live in its agents/ subfolder.
std::filesystem::path default_agent_cache();

}  // namespace chorus::train
