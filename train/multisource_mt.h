// Multi-source translation (Zoph and Knight 2016, here with frozen agents): an English->German
// agent whose encoder attends, through a cross-agent fusion head, to a French->German agent's
// encoding of the same sentence in French. Both agents are trained from scratch on Multi30k
// (cached), frozen, and only the head trains. Every system is scored with sacrebleu's BLEU and chrF
// on the test set, with bootstrap intervals and paired tests.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "collab/cross_agent_fusion.h"
#include "common/config.h"
#include "model/seq2seq_model.h"
#include "train/kv_experiment.h"

namespace chorus::train {

// Line-aligned sentences of one split: sources[a][i] is sentence i in the language agent a reads
// (the experiment's agent order), targets[i] its reference translation.
struct MultiSourceSplit {
  std::vector<std::vector<std::string>> sources;
  std::vector<std::string> targets;
  size_t size() const { return targets.size(); }
};

// How the fusion head joins the agents' encoders (the anchor's encoder reads its own language).
struct MultiSourceFusion {
  collab::FusionOptions fusion;  // widths are filled from the agents
  int64_t query_layer = 0;       // anchor encoder layer the queries come from (0 = embeddings)
  int64_t inject_layer = 0;      // anchor encoder layer the message is added after
  // Keys and values come from each other agent's encoder output (its last layer, after the norm).
};

// The anchor agent with a fusion head reading the other agents' encodings of their own sources.
class MultiSourceTeam {
 public:
  MultiSourceTeam(const MultiSourceFusion& spec, const collab::Agent& anchor,
                  std::vector<const collab::Agent*> others);

  collab::CrossAgentFusion& head() { return head_; }

  // sources[0]: the anchor's inputs; sources[1 + j]: other agent j's inputs (one per row).
  model::EncoderOutput encode(const std::vector<std::vector<std::string>>& sources, torch::Tensor* attention = nullptr);
  // Teacher-forced mean token cross-entropy of the anchor's decoder on `targets`.
  torch::Tensor loss(const std::vector<std::vector<std::string>>& sources, const std::vector<std::string>& targets);
  // Greedy translations.
  std::vector<std::string> translate(const std::vector<std::vector<std::string>>& sources, int64_t max_new_tokens);

 private:
  MultiSourceFusion spec_;
  const collab::Agent* anchor_ = nullptr;
  std::vector<const collab::Agent*> others_;
  collab::CrossAgentFusion head_{nullptr};
};

// Reads and checks the whole config (data files, agent configs, team), then pretrains the agents
// (cached by fingerprint), trains the head and writes report.json into run.folder. Returns its path.
std::filesystem::path run_multisource_mt_experiment(const Config& config, const ExperimentRun& run);

}  // namespace chorus::train
