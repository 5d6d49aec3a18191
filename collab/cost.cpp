// Compute cost accounting and the FLOP estimate of a seq2seq call.
#include "collab/cost.h"

#include "common/error.h"

namespace chorus::collab {

ComputeCost& ComputeCost::operator+=(const ComputeCost& other) {
  agent_calls += other.agent_calls;
  tokens_in += other.tokens_in;
  tokens_out += other.tokens_out;
  flops += other.flops;
  seconds += other.seconds;
  return *this;
}

ComputeCost operator+(ComputeCost a, const ComputeCost& b) { return a += b; }

ComputeCost ComputeCost::per_example(double examples) const {
  CHORUS_CHECK(examples > 0,
               "ComputeCost::per_example: expected a positive number of examples, got ", examples);
  return {agent_calls / examples, tokens_in / examples, tokens_out / examples, flops / examples,
          seconds / examples};
}

double ComputeCost::measure(const std::string& name) const {
  if (name == "agent_calls") return agent_calls;
  if (name == "tokens") return tokens_in + tokens_out;
  if (name == "flops") return flops;
  if (name == "seconds") return seconds;
  throw Error("unknown cost measure '" + name +
              "' (expected agent_calls, tokens, flops or seconds)");
}

nlohmann::json to_json(const ComputeCost& c) {
  return {{"agent_calls", c.agent_calls},
          {"tokens_in", c.tokens_in},
          {"tokens_out", c.tokens_out},
          {"flops", c.flops},
          {"seconds", c.seconds}};
}

namespace {

// A feed-forward block over `tokens` positions: 2 or 3 (gated) matrices of d x ff.
double feed_forward_flops(const model::Seq2SeqConfig& c, int64_t ff, double tokens) {
  return (c.gated_ffn ? 3.0 : 2.0) * 2.0 * tokens * static_cast<double>(c.d_model) *
         static_cast<double>(ff);
}

}  // namespace

double seq2seq_call_flops(const model::Seq2SeqConfig& c, int64_t tokens_in, int64_t tokens_out) {
  CHORUS_CHECK(tokens_in >= 0 && tokens_out >= 0,
               "seq2seq_call_flops: token counts must be >= 0, got ", tokens_in, " in and ",
               tokens_out, " out");
  const double d = static_cast<double>(c.d_model);
  const double head = static_cast<double>(c.head_dim);
  const double enc_inner = static_cast<double>(c.encoder_heads) * head;
  const double dec_inner = static_cast<double>(c.decoder_heads) * head;
  const double s = static_cast<double>(tokens_in);
  const double t = static_cast<double>(tokens_out);

  const double encoder_layer = 8.0 * s * d * enc_inner + 4.0 * enc_inner * s * s +
                               feed_forward_flops(c, c.encoder_ffn_dim, s);
  // Summed over steps 1..T: projections grow with T, self-attention with 1 + 2 + .. + T keys.
  const double cached_keys = t * (t + 1.0) / 2.0;
  const double decoder_layer =
      8.0 * t * d * dec_inner + 4.0 * dec_inner * cached_keys +  // self-attention
      4.0 * t * d * dec_inner + 4.0 * dec_inner * t * s +        // cross-attention
      (t > 0 ? 4.0 * s * d * dec_inner : 0.0) +                  // cross K, V once
      feed_forward_flops(c, c.decoder_ffn_dim, t);
  const double output_projection = 2.0 * t * d * static_cast<double>(c.vocab_size);
  return static_cast<double>(c.encoder_layers) * encoder_layer +
         static_cast<double>(c.decoder_layers) * decoder_layer + output_projection;
}

ComputeCost seq2seq_call_cost(const model::Seq2SeqConfig& config, int64_t tokens_in,
                              int64_t tokens_out) {
  ComputeCost cost;
  cost.agent_calls = 1;
  cost.tokens_in = static_cast<double>(tokens_in);
  cost.tokens_out = static_cast<double>(tokens_out);
  cost.flops = seq2seq_call_flops(config, tokens_in, tokens_out);
  return cost;
}

}  // namespace chorus::collab
