// FusionTeam: the anchor's encoder with a fusion head reading N other agents' states.
#include "collab/fusion_team.h"

#include <torch/torch.h>

#include "common/error.h"

namespace chorus::collab {
namespace {

// A short description of an agent's vocabulary for error messages.
std::string vocabulary_of(const Agent& agent) {
  const auto& c = agent.model->config();
  return std::to_string(agent.tokenizer->vocab_size()) + " tokenizer ids, " +
         std::to_string(c.vocab_size) + " embedding rows";
}

// Whether two agents map ids to the same tokens (the vocabulary bridge reads one's output
// distribution through the other's embedding, id for id).
bool same_vocabulary(const Agent& a, const Agent& b) {
  if (a.model->config().vocab_size != b.model->config().vocab_size) return false;
  const auto n = a.tokenizer->vocab_size();
  if (n != b.tokenizer->vocab_size()) return false;
  for (int64_t id = 0; id < n; ++id) {
    if (a.tokenizer->token(id) != b.tokenizer->token(id)) return false;
  }
  return true;
}

int64_t tokens_of(const Agent& agent, const std::string& text) {
  return static_cast<int64_t>(agent.tokenizer->encode(text).size());
}

}  // namespace

std::string to_string(StatesSource source) {
  return source == StatesSource::encoder ? "encoder" : "decoder";
}

std::vector<std::vector<int64_t>> generated_tokens(const torch::Tensor& sequences, int64_t eos) {
  const auto rows = sequences.to(torch::kCPU).contiguous();
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < rows.size(0); ++i) {
    const auto row = rows[i];
    const int64_t* ids = row.data_ptr<int64_t>();
    std::vector<int64_t> generated;
    for (int64_t t = 1; t < row.numel(); ++t) {  // position 0 is the decoder start token
      generated.push_back(ids[t]);
      if (ids[t] == eos) break;
    }
    out.push_back(std::move(generated));
  }
  return out;
}

FusionTeam::FusionTeam(std::string name, Agent anchor, std::vector<Agent> augmenting,
                       FusionTeamOptions options)
    : name_(std::move(name)),
      anchor_(std::move(anchor)),
      augmenting_(std::move(augmenting)),
      options_(options) {
  CHORUS_CHECK(!augmenting_.empty(), "fusion team '", name_,
               "': expected at least one augmenting agent");
  const auto& a = anchor_.model->config();
  CHORUS_CHECK(options_.query_layer >= 0 && options_.query_layer <= a.encoder_layers &&
                   options_.inject_layer >= 0 && options_.inject_layer <= a.encoder_layers,
               "fusion team '", name_, "': query_layer ", options_.query_layer, " / inject_layer ",
               options_.inject_layer, " beyond the anchor '", anchor_.name, "''s ",
               a.encoder_layers, " encoder layers (0 = embeddings)");
  const bool bridge = options_.head.value_source == ValueSource::bridge;
  CHORUS_CHECK(!(bridge && options_.states == StatesSource::encoder), "fusion team '", name_,
               "': value_source bridge maps the other agent's output distribution, which only its "
               "decoder has; "
               "use augmenting_states: decoder (or value_source: hidden)");
  auto& head = options_.head;
  head.anchor_width = a.d_model;
  head.augmenting_widths.clear();
  for (const auto& other : augmenting_) {
    CHORUS_CHECK(other.name != anchor_.name, "fusion team '", name_, "': the anchor '",
                 anchor_.name, "' cannot also be an augmenting agent");
    if (bridge && !same_vocabulary(anchor_, other)) {
      throw Error("fusion team '" + name_ + "': value_source bridge reads '" + other.name +
                  "''s output distribution through '" + anchor_.name +
                  "''s input embedding, id for id, which needs one shared vocabulary; '" +
                  other.name + "' has " + vocabulary_of(other) + " and '" + anchor_.name +
                  "' has " + vocabulary_of(anchor_) +
                  " with other tokens (use value_source: hidden, which projects hidden states and "
                  "works across "
                  "vocabularies)");
    }
    head.augmenting_widths.push_back(other.model->config().d_model);
  }
  head_ = CrossAgentFusion(head);
}

std::vector<AugmentingStates> FusionTeam::augmenting_states(
    const std::vector<std::vector<std::string>>& other_texts) const {
  CHORUS_CHECK(other_texts.size() == augmenting_.size(), "fusion team '", name_,
               "': ", other_texts.size(), " input lists for ", augmenting_.size(),
               " augmenting agents");
  torch::NoGradGuard no_grad;
  std::vector<AugmentingStates> out;
  for (size_t i = 0; i < augmenting_.size(); ++i) {
    const auto& other = augmenting_[i];
    const auto batch = model::tokenize_batch(*other.tokenizer, other_texts[i]);
    const auto& model = *other.model;
    AugmentingStates s;
    auto encoded = model.encode(batch.input_ids, batch.attention_mask);
    if (options_.states == StatesSource::encoder) {
      s.key_states = encoded.last_hidden_state;
      s.value_states = encoded.last_hidden_state;
      s.mask = batch.attention_mask;
      s.token_ids = batch.input_ids;
      out.push_back(std::move(s));
      continue;
    }
    // The other agent decodes its own answer greedily; its decoder states (and logits, for the
    // bridge) at each of its steps are what the head reads.
    model::GenerationOptions generation;
    generation.max_new_tokens = options_.augmenting_max_new_tokens > 0
                                    ? options_.augmenting_max_new_tokens
                                    : batch.input_ids.size(1) + 1;
    const auto generated = model::generate_from_encoder(model, encoded, generation);
    const auto sequences = generated.sequences;  // [B, 1 + T], starting with the start token
    const int64_t steps = sequences.size(1) - 1;
    auto cache = model.start_decoding(encoded);
    auto decoded =
        model.decode_step(sequences.narrow(1, 0, steps), cache, /*output_hidden_states=*/true);
    s.key_states = decoded.hidden_states.back();
    s.value_states = s.key_states;
    s.logits = decoded.logits;
    // Positions up to and including the first end-of-sequence token are real.
    const auto produced = sequences.narrow(1, 1, steps);
    const auto eos = (produced == model.config().eos_token_id).to(torch::kInt64);
    s.mask = ((eos.cumsum(1) - eos) == 0).to(torch::kInt64);
    s.token_ids = produced;
    out.push_back(std::move(s));
  }
  return out;
}

model::EncoderOutput FusionTeam::encode(const std::vector<std::string>& anchor_texts,
                                        const std::vector<std::vector<std::string>>& other_texts,
                                        torch::Tensor* attention, const torch::Tensor& tasks) {
  const auto batch = model::tokenize_batch(*anchor_.tokenizer, anchor_texts);
  const auto states = augmenting_states(other_texts);
  torch::Tensor query_states;
  if (options_.query_layer != options_.inject_layer) {
    torch::NoGradGuard no_grad;
    auto plain = anchor_.model->encode(batch.input_ids, batch.attention_mask, true);
    query_states = plain.hidden_states.at(static_cast<size_t>(options_.query_layer));
  }
  const auto embedding = anchor_.model->token_embedding();
  model::StateHook hook = [&](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    if (layer != options_.inject_layer) return x;
    return head_->forward(query_states.defined() ? query_states : x, x, states, embedding, {},
                          attention, tasks);
  };
  return anchor_.model->encode(batch.input_ids, batch.attention_mask, false, hook);
}

model::GenerationResult FusionTeam::generate(
    const std::vector<std::string>& anchor_texts,
    const std::vector<std::vector<std::string>>& other_texts,
    const model::GenerationOptions& options, const torch::Tensor& tasks) {
  torch::NoGradGuard no_grad;
  return model::generate_from_encoder(*anchor_.model,
                                      encode(anchor_texts, other_texts, nullptr, tasks), options);
}

std::vector<std::pair<std::string, int64_t>> FusionTeam::answer(
    const std::vector<std::string>& anchor_texts,
    const std::vector<std::vector<std::string>>& other_texts,
    const model::GenerationOptions& options, const torch::Tensor& tasks) {
  const auto result = generate(anchor_texts, other_texts, options, tasks);
  std::vector<std::pair<std::string, int64_t>> out;
  const auto rows = generated_tokens(result.sequences, anchor_.tokenizer->eos_id());
  const int64_t per_input = options.num_return_sequences;
  for (size_t i = 0; i < anchor_texts.size(); ++i) {
    const auto& ids = rows[i * static_cast<size_t>(per_input)];
    out.emplace_back(anchor_.tokenizer->decode(ids, true), static_cast<int64_t>(ids.size()));
  }
  return out;
}

std::vector<FusionInspection> FusionTeam::inspect(
    const std::vector<std::string>& anchor_texts,
    const std::vector<std::vector<std::string>>& other_texts, const torch::Tensor& tasks) {
  torch::NoGradGuard no_grad;
  const auto batch = model::tokenize_batch(*anchor_.tokenizer, anchor_texts);
  const auto states = augmenting_states(other_texts);
  auto plain = anchor_.model->encode(batch.input_ids, batch.attention_mask, true);
  const auto& at_injection = plain.hidden_states.at(static_cast<size_t>(options_.inject_layer));
  const auto& queries = plain.hidden_states.at(static_cast<size_t>(options_.query_layer));
  torch::Tensor probabilities;
  const auto message =
      head_->message(queries, states, anchor_.model->token_embedding(), {}, &probabilities, tasks);
  const auto gate = head_->gate(at_injection, tasks)
                        .expand({batch.input_ids.size(0), batch.input_ids.size(1), 1})
                        .squeeze(-1);
  const auto change =
      head_->options().residual == Residual::interpolate ? message - at_injection : message;
  const auto gated_norm = (gate.unsqueeze(-1) * change).norm(2, -1);
  const auto state_norm = at_injection.norm(2, -1);
  std::vector<FusionInspection> out;
  for (int64_t b = 0; b < batch.input_ids.size(0); ++b) {
    FusionInspection r;
    std::vector<int64_t> key_columns;
    int64_t column = 0;
    if (head_->options().null_slot) {
      r.key_tokens.push_back("<null>");
      key_columns.push_back(column++);
    }
    for (size_t a = 0; a < augmenting_.size(); ++a) {
      const auto ids = states[a].token_ids[b];
      const auto mask = states[a].mask[b];
      for (int64_t k = 0; k < ids.size(0); ++k, ++column) {
        if (mask[k].item<int64_t>() == 0) continue;
        const auto token = augmenting_[a].tokenizer->token(ids[k].item<int64_t>());
        r.key_tokens.push_back(augmenting_.size() > 1 ? augmenting_[a].name + ":" + token : token);
        key_columns.push_back(column);
      }
    }
    std::vector<int64_t> query_rows;
    for (int64_t q = 0; q < batch.input_ids.size(1); ++q) {
      if (batch.attention_mask[b][q].item<int64_t>() == 0) continue;
      query_rows.push_back(q);
      r.query_tokens.push_back(anchor_.tokenizer->token(batch.input_ids[b][q].item<int64_t>()));
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

ComputeCost FusionTeam::call_cost(const std::string& anchor_text,
                                  const std::vector<std::string>& other_texts,
                                  int64_t anchor_output_tokens,
                                  const std::vector<int64_t>& other_output_tokens) const {
  const auto& a = anchor_.model->config();
  const auto nq_tokens = tokens_of(anchor_, anchor_text);
  ComputeCost cost = seq2seq_call_cost(*anchor_.model, nq_tokens, anchor_output_tokens);
  const double nq = static_cast<double>(nq_tokens);
  const auto& f = head_->options();
  const double inner = static_cast<double>(f.heads * f.head_dim);
  double head = 2 * nq * static_cast<double>(a.d_model) * inner;  // queries
  double keys = f.null_slot ? 1 : 0;
  for (size_t i = 0; i < augmenting_.size(); ++i) {
    const auto& o = augmenting_[i].model->config();
    const bool decodes = options_.states == StatesSource::decoder;
    const auto read = tokens_of(augmenting_[i], other_texts[i]);
    const auto produced = decodes ? other_output_tokens[i] : 0;
    cost += seq2seq_call_cost(*augmenting_[i].model, read, produced);
    const double nk = static_cast<double>(decodes ? produced : read);
    keys += nk;
    head += 2 * nk * static_cast<double>(o.d_model) * inner;  // keys
    head += f.value_source == ValueSource::bridge
                ? 2 * nk * static_cast<double>(o.vocab_size * a.d_model)
                : 2 * nk * static_cast<double>(o.d_model * a.d_model);  // values
  }
  head += 2 * 2 * nq * keys *
          (inner + static_cast<double>(a.d_model));  // scores (H.D wide), weighted values
  if (options_.query_layer != options_.inject_layer) head += seq2seq_call_flops(a, nq_tokens, 0);
  cost.flops += head;
  return cost;
}

}  // namespace chorus::collab
