// Fusion teams of the key-value world: the anchor's encoder with a fusion head reading other agents.
#include "train/kv_team.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"
#include "model/generation/generate.h"
#include "train/kv_agents.h"
#include "train/seq2seq_training.h"
#include "train/trainer_config.h"

namespace chorus::train {

TeamSpec read_team(const ConfigView& v, const std::string& name, uint64_t seed) {
  TeamSpec t;
  t.name = name;
  t.anchor = v.get<std::string>("anchor");
  t.augmenting = v.get<std::vector<std::string>>("augmenting");
  CHORUS_CHECK(!t.augmenting.empty(), v.path(), ".augmenting: expected at least one agent");
  auto& f = t.fusion;
  f.value_source = v.get_choice("value_source", {"bridge", "hidden"}, std::string("bridge")) == "bridge"
                       ? collab::ValueSource::bridge
                       : collab::ValueSource::hidden;
  t.states = v.get_choice("augmenting_states", {"decoder", "encoder"}, std::string("decoder")) == "decoder"
                 ? StatesSource::decoder
                 : StatesSource::encoder;
  CHORUS_CHECK(!(f.value_source == collab::ValueSource::bridge && t.states == StatesSource::encoder), v.path(),
               ": value_source 'bridge' maps the other agent's output distribution, which only its decoder has; "
               "use augmenting_states: decoder (or value_source: hidden)");
  f.heads = v.get_int("heads", 1, 1);
  f.head_dim = v.get_int("head_dim", 64, 1);
  f.bridge_temperature = v.get_double("bridge_temperature", 1.0, 1e-6);
  f.gate = v.get_choice("gate", {"per_position", "scalar"}, std::string("per_position")) == "scalar"
               ? collab::GateKind::scalar
               : collab::GateKind::per_position;
  f.residual = v.get_choice("residual", {"add", "interpolate"}, std::string("add")) == "add"
                   ? collab::Residual::add
                   : collab::Residual::interpolate;
  f.null_slot = v.get<bool>("null_slot", true);
  f.position_bias = v.get_int("position_bias", 8, 0);
  f.diagonal_prior = v.get_double("diagonal_prior", 0.0);
  CHORUS_CHECK(f.diagonal_prior == 0.0 || f.position_bias > 0, v.path(),
               ".diagonal_prior: needs a position-pair bias (position_bias > 0)");
  t.query_layer = v.get_int("query_layer", 0, 0);
  t.inject_layer = v.get_int("inject_layer", 0, 0);
  const auto train = v.child("train");
  t.trainer = read_trainer_options(train, "team-" + name, seed);
  t.batch_size = train.get_int("batch_size", 128, 1);
  for (const auto& task : v.list("tasks")) {
    TeamTask tt;
    tt.task = tasks::parse_arithmetic_task(task.get_choice("task", {"kv_math", "num_math", "kv_subs"}), task.path());
    const auto keys = task.get_choice("keys", {"train", "all", "heldout"}, std::string("train"));
    tt.sampling.keys = keys == "train" ? tasks::KeySet::train : keys == "all" ? tasks::KeySet::all : tasks::KeySet::heldout;
    CHORUS_CHECK(tt.task == tasks::ArithmeticTask::num_math || tt.sampling.keys != tasks::KeySet::heldout, task.path(),
                 ".keys: held-out keys are for evaluation only; train on 'train' keys");
    tt.sampling.mixed_fraction = task.get_double("mixed_fraction", 0.0, 0.0, 1.0);
    tt.sampling.single_fraction = task.get_double("single_fraction", 0.0, 0.0, 1.0);
    tt.weight = task.get_double("weight", 1.0, 1e-9);
    t.tasks.push_back(tt);
  }
  CHORUS_CHECK(!t.tasks.empty(), v.path(), ".tasks: expected at least one task");
  // Task conditioning: one learned query embedding and gate bias per entry of `tasks`.
  if (v.get_choice("task_conditioning", {"none", "embedding"}, std::string("none")) == "embedding")
    f.tasks = static_cast<int64_t>(t.tasks.size());
  const auto sampling = v.child_or_empty("task_sampling");
  t.task_sampling = parse_task_sampling(
      sampling.get_choice("strategy", {"proportional", "temperature", "round_robin"}, std::string("proportional")),
      sampling.path());
  t.sampling_temperature = sampling.get_double("temperature", 1.0, 1e-6);
  t.loss_weighting = parse_loss_weighting(v.get_choice("loss_weighting", {"fixed", "uncertainty"}, std::string("fixed")),
                                          v.path());
  t.eval_examples = v.get_int("eval_examples", 300, 1);
  t.trainer.best_metric = "kv_math_train";
  return t;
}

FusedTeam::FusedTeam(const TeamSpec& spec, const std::map<std::string, collab::Agent>& agents) : spec_(spec) {
    anchor_ = &agents.at(spec.anchor);
    auto options = spec.fusion;
    options.anchor_width = anchor_->model->config().d_model;
    for (const auto& name : spec.augmenting) {
      others_.push_back(&agents.at(name));
      options.augmenting_widths.push_back(others_.back()->model->config().d_model);
    }
    const auto layers = anchor_->model->config().encoder_layers;
    CHORUS_CHECK(spec.query_layer <= layers && spec.inject_layer <= layers, "teams.", spec.name,
                 ": query_layer ", spec.query_layer, " / inject_layer ", spec.inject_layer, " beyond the anchor's ",
                 layers, " encoder layers");
    head_ = collab::CrossAgentFusion(options);
  }

int64_t FusedTeam::task_index(tasks::ArithmeticTask task) const {
  if (spec_.fusion.tasks == 0) return -1;
  for (size_t t = 0; t < spec_.tasks.size(); ++t) {
    if (spec_.tasks[t].task == task) return static_cast<int64_t>(t);
  }
  return -1;
}

torch::Tensor FusedTeam::task_ids(const std::vector<int64_t>& tasks, size_t rows) const {
  if (spec_.fusion.tasks == 0 || tasks.empty()) return {};
  CHORUS_CHECK(tasks.size() == rows, "teams.", spec_.name, ": ", tasks.size(), " task ids for ", rows, " inputs");
  if (std::any_of(tasks.begin(), tasks.end(), [](int64_t t) { return t < 0; })) return {};  // unconditioned
  return torch::tensor(tasks, torch::kInt64);
}

model::EncoderOutput FusedTeam::encode(const std::vector<std::string>& inputs, torch::Tensor* attention,
                                       const std::vector<int64_t>& tasks) {
    const auto batch = anchor_->tokenize(inputs);
    const auto task_tensor = task_ids(tasks, inputs.size());
    std::vector<collab::AugmentingStates> states;
    {
      torch::NoGradGuard no_grad;
      for (const auto* other : others_) states.push_back(augmenting_states(*other, inputs));
    }
    torch::Tensor query_states;
    if (spec_.query_layer != spec_.inject_layer) {
      torch::NoGradGuard no_grad;
      auto plain = anchor_->model->encode(batch.input_ids, batch.attention_mask, true);
      query_states = plain.hidden_states.at(static_cast<size_t>(spec_.query_layer));
    }
    const auto embedding = anchor_->model->token_embedding();
    model::StateHook hook = [&](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
      if (layer != spec_.inject_layer) return x;
      return head_->forward(query_states.defined() ? query_states : x, x, states, embedding, {}, attention, task_tensor);
    };
    return anchor_->model->encode(batch.input_ids, batch.attention_mask, false, hook);
  }

torch::Tensor FusedTeam::loss(const std::vector<std::string>& inputs, const std::vector<std::string>& targets,
                              bool per_row, const std::vector<int64_t>& tasks) {
    const auto encoded = encode(inputs, nullptr, tasks);
    const auto labels = model::tokenize_batch(*anchor_->tokenizer, inputs, targets).labels;
    const auto& model = *anchor_->model;
    auto cache = model.start_decoding(encoded);
    const auto& c = model.config();
    auto decoded = model.decode_step(shift_right(labels, c.decoder_start_token_id, c.pad_token_id), cache);
    return token_cross_entropy(decoded.logits, labels, per_row);
  }

std::vector<std::string> FusedTeam::answer(const std::vector<std::string>& inputs, int64_t task) {
    torch::NoGradGuard no_grad;
    model::GenerationOptions options;
    options.max_new_tokens = 8;
    const std::vector<int64_t> tasks(task >= 0 ? inputs.size() : 0, task);
    const auto result = model::generate_from_encoder(*anchor_->model, encode(inputs, nullptr, tasks), options);
    std::vector<std::string> out;
    for (int64_t i = 0; i < result.sequences.size(0); ++i) {
      auto row = result.sequences[i].contiguous();
      out.push_back(anchor_->tokenizer->decode(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel())));
    }
    return out;
  }

std::vector<TeamInspection> FusedTeam::inspect(const std::vector<std::string>& inputs, int64_t task) {
  torch::NoGradGuard no_grad;
  const auto batch = anchor_->tokenize(inputs);
  const auto task_tensor = task_ids(std::vector<int64_t>(task >= 0 ? inputs.size() : 0, task), inputs.size());
  std::vector<collab::AugmentingStates> states;
  for (const auto* other : others_) states.push_back(augmenting_states(*other, inputs));
  auto plain = anchor_->model->encode(batch.input_ids, batch.attention_mask, true);
  const auto& at_injection = plain.hidden_states.at(static_cast<size_t>(spec_.inject_layer));
  const auto& queries = plain.hidden_states.at(static_cast<size_t>(spec_.query_layer));
  torch::Tensor probabilities;
  const auto message = head_->message(queries, states, anchor_->model->token_embedding(), {}, &probabilities, task_tensor);
  const auto gate = head_->gate(at_injection, task_tensor).expand({batch.input_ids.size(0), batch.input_ids.size(1), 1}).squeeze(-1);
  const auto change = head_->options().residual == collab::Residual::interpolate ? message - at_injection : message;
  const auto gated_norm = (gate.unsqueeze(-1) * change).norm(2, -1);
  const auto state_norm = at_injection.norm(2, -1);
  std::vector<TeamInspection> out;
  for (int64_t b = 0; b < batch.input_ids.size(0); ++b) {
    TeamInspection r;
    std::vector<int64_t> key_columns;
    int64_t column = 0;
    if (head_->options().null_slot) {
      r.key_tokens.push_back("<null>");
      key_columns.push_back(column++);
    }
    for (size_t a = 0; a < others_.size(); ++a) {
      const auto& ids = states[a].token_ids[b];
      const auto mask = states[a].mask[b];
      for (int64_t k = 0; k < ids.size(0); ++k, ++column) {
        if (mask[k].item<int64_t>() == 0) continue;
        const auto token = others_[a]->tokenizer->token(ids[k].item<int64_t>());
        r.key_tokens.push_back(others_.size() > 1 ? spec_.augmenting[a] + ":" + token : token);
        key_columns.push_back(column);
      }
    }
    std::vector<int64_t> query_rows;
    for (int64_t q = 0; q < batch.input_ids.size(1); ++q) {
      if (batch.attention_mask[b][q].item<int64_t>() == 0) continue;
      query_rows.push_back(q);
      r.query_tokens.push_back(anchor_->tokenizer->token(batch.input_ids[b][q].item<int64_t>()));
      r.gate.push_back(gate[b][q].item<double>());
      r.state_norm.push_back(state_norm[b][q].item<double>());
      r.message_norm.push_back(gated_norm[b][q].item<double>());
    }
    r.attention = probabilities[b]
                      .index_select(1, torch::tensor(query_rows, torch::kInt64))
                      .index_select(2, torch::tensor(key_columns, torch::kInt64))
                      .contiguous();
    out.push_back(std::move(r));
  }
  return out;
}

// The other agent reads the same task input and contributes its states (and, for the bridge, its
  // output distribution at each of its own decoding steps: it decodes its own output greedily).
collab::AugmentingStates FusedTeam::augmenting_states(const collab::Agent& other,
                                                     const std::vector<std::string>& inputs) const {
    const auto batch = other.tokenize(inputs);
    const auto& model = *other.model;
    collab::AugmentingStates s;
    auto encoded = model.encode(batch.input_ids, batch.attention_mask);
    if (spec_.states == StatesSource::encoder) {
      s.key_states = encoded.last_hidden_state;
      s.mask = batch.attention_mask;
      s.token_ids = batch.input_ids;
      return s;
    }
    model::GenerationOptions options;
    options.max_new_tokens = batch.input_ids.size(1) + 1;
    const auto generated = model::generate_from_encoder(model, encoded, options);
    const auto sequences = generated.sequences;  // [B, 1 + T], starting with the start token
    const int64_t steps = sequences.size(1) - 1;
    auto cache = model.start_decoding(encoded);
    auto decoded = model.decode_step(sequences.narrow(1, 0, steps), cache, /*output_hidden_states=*/true);
    s.key_states = decoded.hidden_states.back();
    s.logits = decoded.logits;
    // Positions up to and including the first end-of-sequence token are real.
    const auto produced = sequences.narrow(1, 1, steps);
    const auto eos = (produced == model.config().eos_token_id).to(torch::kInt64);
    s.mask = ((eos.cumsum(1) - eos) == 0).to(torch::kInt64);
    s.token_ids = produced;
    return s;
  }

std::vector<std::string> inputs_of(const std::vector<tasks::ArithmeticExample>& examples, size_t start, size_t end) {
  std::vector<std::string> out;
  for (size_t i = start; i < end; ++i) out.push_back(examples[i].input);
  return out;
}

double exact_match(const std::vector<std::string>& outputs, const std::vector<tasks::ArithmeticExample>& examples) {
  int64_t correct = 0;
  for (size_t i = 0; i < outputs.size(); ++i) correct += outputs[i] == examples[i].target ? 1 : 0;
  return outputs.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(outputs.size());
}

TeamTrainingProblem::TeamTrainingProblem(FusedTeam& team, const TeamSpec& spec, const tasks::KeyValueArithmetic& world, uint64_t seed)
    : team_(team), spec_(spec), world_(world), seed_(seed), sampler_([&] {
        std::vector<double> sizes;
        for (const auto& t : spec.tasks) sizes.push_back(t.weight);
        return TaskSampler(sizes, spec.task_sampling, spec.sampling_temperature);
      }()) {
  std::vector<double> weights;
  for (const auto& t : spec.tasks) weights.push_back(t.weight);
  weights_ = TaskLossWeights(spec.loss_weighting, weights);
  eval_ = tasks::arithmetic_examples(world, tasks::ArithmeticTask::kv_math, tasks::ArithmeticSampling{0.0, 0.0, tasks::KeySet::train}, spec.eval_examples, seed * 131 + 5);
}

std::vector<std::pair<std::string, torch::Tensor>> TeamTrainingProblem::parameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : team_.head()->named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : weights_->named_parameters()) out.emplace_back("loss_weights." + item.key(), item.value());
  return out;
}

TeamTrainingProblem::Batch TeamTrainingProblem::batch(int64_t step, int64_t micro) const {
  std::mt19937_64 rng(stream_seed(seed_ ^ 0x5EEDULL, step, micro));
  Batch b;
  b.tasks = sampler_.draw(step, micro, spec_.trainer.accumulation, spec_.batch_size, rng);
  for (const auto t : b.tasks) {
    const auto& task = spec_.tasks[static_cast<size_t>(t)];
    const auto ex = world_.sample(task.task, task.sampling, rng);
    b.inputs.push_back(ex.input);
    b.targets.push_back(ex.target);
  }
  return b;
}

MicroBatchLoss TeamTrainingProblem::loss(int64_t step, int64_t micro) {
  const auto b = batch(step, micro);
  const auto rows = team_.loss(b.inputs, b.targets, /*per_row=*/true, b.tasks);
  std::vector<torch::Tensor> per_task(spec_.tasks.size());
  std::vector<int64_t> counts(spec_.tasks.size(), 0);
  for (const auto t : b.tasks) ++counts[static_cast<size_t>(t)];
  const auto task_of_row = torch::tensor(b.tasks, torch::kInt64);
  for (size_t t = 0; t < spec_.tasks.size(); ++t) {
    if (counts[t] > 0) {
      per_task[t] = (rows * (task_of_row == static_cast<int64_t>(t))).sum() / static_cast<double>(counts[t]);
    }
  }
  return {weights_->combine(per_task, counts), spec_.batch_size};
}

std::map<std::string, double> TeamTrainingProblem::evaluate(int64_t) {
  return {{"kv_math_train",
           exact_match(team_.answer(inputs_of(eval_, 0, eval_.size()), team_.task_index(tasks::ArithmeticTask::kv_math)), eval_)}};
}

}  // namespace chorus::train
