// Fusion teams of the key-value world: an anchor agent whose encoder attends, through a
// cross-agent fusion head, to what other (frozen) agents make of the same input.
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "collab/cross_agent_fusion.h"
#include "common/config.h"
#include "model/seq2seq_model.h"
#include "tasks/key_value_arithmetic.h"
#include "train/multitask.h"
#include "train/trainer.h"

namespace chorus::train {

// Which states of an augmenting agent the head reads: its encoder's output, or its decoder's final
// states while it decodes its own answer greedily (needed for bridge values).
enum class StatesSource { encoder, decoder };

// One task of a team's training mix.
struct TeamTask {
  tasks::ArithmeticTask task = tasks::ArithmeticTask::kv_math;
  tasks::ArithmeticSampling sampling;  // keys (train/all/heldout), single and mixed fractions
  double weight = 1.0;  // relative size for sampling, and the loss weight under fixed weighting
};

struct TeamSpec {
  std::string name;  // the system is "team-<name>"
  std::string anchor;
  std::vector<std::string> augmenting;
  collab::FusionOptions fusion;  // widths filled once the agents are known
  StatesSource states = StatesSource::decoder;
  int64_t query_layer = 0;   // anchor encoder layer the queries come from (0 = embeddings)
  int64_t inject_layer = 0;  // anchor encoder layer the message is added after (0 = embeddings)
  TrainerOptions trainer;
  int64_t batch_size = 128;
  // The training mix: KV-MATH over the training keys teaches the composition, NUM-MATH keeps the
  // anchor's own skill. Rows are drawn per task_sampling; per-task mean losses are combined per
  // loss_weighting.
  std::vector<TeamTask> tasks;
  TaskSampling task_sampling = TaskSampling::proportional;
  double sampling_temperature = 1.0;
  LossWeighting loss_weighting = LossWeighting::fixed;
  int64_t eval_examples = 300;    // KV-MATH over training keys, for the best checkpoint
};

// Reads teams.<name>: anchor, augmenting, value_source, augmenting_states, heads, head_dim,
// bridge_temperature, gate, residual, null_slot, position_bias, diagonal_prior, query_layer, inject_layer, train{...},
// tasks[{task, keys, mixed_fraction, single_fraction, weight}], task_sampling{strategy, temperature},
// loss_weighting, task_conditioning (none | embedding), eval_examples.
TeamSpec read_team(const ConfigView& view, const std::string& name, uint64_t seed);

// What the head does on one example, for reports and diagnosis.
struct TeamInspection {
  std::vector<std::string> query_tokens;  // the anchor's input tokens (padding dropped)
  std::vector<std::string> key_tokens;    // "<null>" (when the head has a null slot), then each other
                                          // agent's tokens ("agent:token" when there are several)
  torch::Tensor attention;                // [heads, queries, keys] probabilities
  std::vector<double> gate;               // the gate at each query position
  std::vector<double> state_norm;         // |anchor state| where the message is added
  std::vector<double> message_norm;       // |what the head adds| there
};

class FusedTeam {
 public:
  FusedTeam(const TeamSpec& spec, const std::map<std::string, collab::Agent>& agents);

  collab::CrossAgentFusion& head() { return head_; }
  const collab::Agent& anchor() const { return *anchor_; }

  // The anchor's encoder output for `inputs` with the fusion applied; `attention` (optional)
  // receives the head's attention probabilities.
  // `tasks` (optional, one per input): each input's index into TeamSpec::tasks, read by a
  // task-conditioned head (task_conditioning: embedding); empty or any -1: unconditioned.
  model::EncoderOutput encode(const std::vector<std::string>& inputs, torch::Tensor* attention = nullptr,
                              const std::vector<int64_t>& tasks = {});
  // Teacher-forced mean token cross-entropy of the anchor's decoder on `targets` (per row [B] when
  // `per_row`).
  torch::Tensor loss(const std::vector<std::string>& inputs, const std::vector<std::string>& targets,
                     bool per_row = false, const std::vector<int64_t>& tasks = {});
  // Greedy answers; `task` (an index into TeamSpec::tasks, -1: none) for a task-conditioned head.
  std::vector<std::string> answer(const std::vector<std::string>& inputs, int64_t task = -1);
  // Attention, gate and norms of the head on each input.
  std::vector<TeamInspection> inspect(const std::vector<std::string>& inputs, int64_t task = -1);
  // The first entry of TeamSpec::tasks training `task`, for a task-conditioned head; -1 when the head
  // is not conditioned or never trained on that task (it then answers unconditioned).
  int64_t task_index(tasks::ArithmeticTask task) const;

 private:
  collab::AugmentingStates augmenting_states(const collab::Agent& other, const std::vector<std::string>& inputs) const;
  torch::Tensor task_ids(const std::vector<int64_t>& tasks, size_t rows) const;

  TeamSpec spec_;
  const collab::Agent* anchor_ = nullptr;
  std::vector<const collab::Agent*> others_;
  collab::CrossAgentFusion head_{nullptr};
};

std::vector<std::string> inputs_of(const std::vector<tasks::ArithmeticExample>& examples, size_t start, size_t end);
double exact_match(const std::vector<std::string>& outputs, const std::vector<tasks::ArithmeticExample>& examples);

// Trains a team's head: rows of KV-MATH over the training keys and NUM-MATH, per TeamSpec.
class TeamTrainingProblem final : public TrainingProblem {
 public:
  TeamTrainingProblem(FusedTeam& team, const TeamSpec& spec, const tasks::KeyValueArithmetic& world, uint64_t seed);
  std::vector<std::pair<std::string, torch::Tensor>> parameters() override;
  MicroBatchLoss loss(int64_t step, int64_t micro) override;
  std::map<std::string, double> evaluate(int64_t step) override;

  // The rows of micro-batch `micro` of step `step`: a pure function of (seed, step, micro).
  struct Batch {
    std::vector<std::string> inputs, targets;
    std::vector<int64_t> tasks;  // index into TeamSpec::tasks per row
  };
  Batch batch(int64_t step, int64_t micro) const;

 private:
  FusedTeam& team_;
  const TeamSpec& spec_;
  const tasks::KeyValueArithmetic& world_;
  uint64_t seed_;
  TaskSampler sampler_;
  TaskLossWeights weights_{nullptr};
  std::vector<tasks::ArithmeticExample> eval_;
};

}  // namespace chorus::train
