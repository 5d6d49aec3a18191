// Multi-source translation: two text agents trained on Multi30k, frozen, joined by a fusion head.
#include "train/multisource_mt.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "collab/cost.h"
#include "collab/graph_selection.h"
#include "collab/voting.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "eval/metrics/bleu.h"
#include "eval/metrics/chrf.h"
#include "eval/metrics/significance.h"
#include "model/generation/generate.h"
#include "train/checkpoint.h"
#include "train/data/batching.h"
#include "train/data/text_pairs.h"
#include "train/kv_agents.h"
#include "train/kv_router_arms.h"
#include "train/parallel_jobs.h"
#include "train/run_folder.h"
#include "train/seq2seq_training.h"
#include "train/task_completion_config.h"
#include "train/text_agents.h"
#include "train/trainer.h"
#include "train/trainer_config.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct AgentEntry {
  std::string name;
  std::string role;
  std::string language;  // the source language this agent reads
  fs::path config_file;
  std::vector<std::string> overrides;
  std::string resolved_config;  // the agent config as run (saved into the run folder)
  TextAgentSpec spec;
};

// A mechanism evaluated beside the agents and the team (evaluation.mechanisms.<name>): none but
// graph_select trains anything, and graph_select trains only its small selector, on captions
// outside the test split.
struct MechanismSpec {
  std::string name;
  std::string kind;                 // mbr, vote, self_consistency, best_single_agent, graph_select
  std::vector<std::string> agents;  // all kinds but self_consistency: the agents taking part (default: all)
  std::string agent;                // self_consistency: the agent sampled
  int64_t samples = 8;              // self_consistency: N
  double temperature = 0.7;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  int64_t valid_examples = 200;  // best_single_agent: validation captions the choice is made on
  // vote: collab::Voting's rule over the agents' greedy translations (log_prob: the translation its
  // agent finds most probable; majority: the most frequent normalised translation, ties by
  // log-probability), each translation's log-probability taken as the sum of its token
  // log-probabilities (score: sum) or their mean (score: mean, which does not favour short ones).
  std::string rule = "log_prob";
  std::string score = "mean";
  // graph_select: a learned selector (collab::GraphSelector) over `agents` with this graph, trained
  // on `train_examples` captions labelled by which agent's translation has the higher sentence chrF.
  // train_split: valid, train, or auto (the validation split when it has train_examples complete
  // captions, else the training split).
  collab::GraphAttentionSpec graph;
  collab::GraphSelectorTrainingOptions selector_training;
  int64_t train_examples = 2000;
  std::string train_split = "auto";
};

struct Plan {
  uint64_t seed = 0;
  int threads = 0;
  bool parallel = true;
  fs::path cache;
  fs::path data_folder;
  std::string target_language;
  std::string train_split, valid_split, test_split;
  int64_t max_train_examples = 0;
  int64_t max_length = 48;
  std::vector<AgentEntry> agents;  // the anchor first, then the augmenting agents in config order
  MultiSourceFusion fusion;
  TrainerOptions trainer;
  BucketingOptions batching;
  int64_t valid_examples = 256;  // validation sentences decoded for the best checkpoint (BLEU)
  int64_t test_examples = 0;     // 0: the whole test split
  int64_t eval_batch_size = 64;
  int64_t max_new_tokens = 48;
  int64_t bootstrap_resamples = 1000;
  int64_t transcript_examples = 20;
  std::map<std::string, eval::TaskCompletionSpec> completion;  // the test split's success predicate, if declared
  std::vector<MechanismSpec> mechanisms;
};

const std::vector<std::string> kMechanismKinds = {"mbr", "vote", "self_consistency", "best_single_agent",
                                                  "graph_select"};

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// evaluation.mechanisms: name -> {kind, ...}; the kind defaults to the name when that is a kind.
std::vector<MechanismSpec> read_mechanisms(const ConfigView& evaluation, const std::vector<std::string>& agent_names) {
  std::vector<MechanismSpec> out;
  if (!evaluation.has("mechanisms")) return out;
  const auto mechanisms = evaluation.child("mechanisms");
  for (const auto& name : mechanisms.keys()) {
    const auto view = mechanisms.child(name);
    MechanismSpec m;
    m.name = name;
    const bool named_as_kind = std::find(kMechanismKinds.begin(), kMechanismKinds.end(), name) != kMechanismKinds.end();
    m.kind = named_as_kind ? view.get_choice("kind", kMechanismKinds, name) : view.get_choice("kind", kMechanismKinds);
    auto check_agent = [&](const std::string& key, const std::string& agent) {
      CHORUS_CHECK(std::find(agent_names.begin(), agent_names.end(), agent) != agent_names.end(), view.origin(key),
                   ": ", view.key_path(key), ": no agent '", agent, "' in this experiment (agents: ",
                   joined(agent_names), ")");
    };
    if (m.kind == "self_consistency") {
      m.agent = view.get<std::string>("agent", agent_names.front());
      check_agent("agent", m.agent);
      m.samples = view.get_int("samples", 8, 2, 256);
      m.temperature = view.get_double("temperature", 0.7, 1e-6);
      m.top_k = view.get_int("top_k", 0, 0);
      m.top_p = view.get_double("top_p", 1.0, 1e-6, 1.0);
      m.seed = static_cast<uint64_t>(view.get_int("seed", 0, 0));
    } else {
      m.agents = view.get<std::vector<std::string>>("agents", agent_names);
      CHORUS_CHECK(m.agents.size() >= 2, view.origin("agents"), ": ", view.key_path("agents"),
                   ": expected at least two agents to choose among, got ", m.agents.size());
      for (const auto& a : m.agents) {
        check_agent("agents", a);
        CHORUS_CHECK(std::count(m.agents.begin(), m.agents.end(), a) == 1, view.origin("agents"), ": ",
                     view.key_path("agents"), ": agent '", a, "' listed twice");
      }
      if (m.kind == "best_single_agent") m.valid_examples = view.get_int("valid_examples", 200, 1);
      if (m.kind == "vote") {
        m.rule = view.get_choice("rule", {"log_prob", "majority"}, std::string("log_prob"));
        m.score = view.get_choice("score", {"sum", "mean"}, std::string("mean"));
      }
      if (m.kind == "graph_select") {
        m.graph = read_graph_block(view, m.agents, "a mechanism of kind graph_select");
        const auto train = view.child_or_empty("train");
        m.selector_training = read_selector_training(train);
        m.train_examples = train.get_int("examples", m.train_examples, 1);
        m.train_split = train.get_choice("split", {"auto", "valid", "train"}, m.train_split);
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

fs::path split_file(const Plan& p, const std::string& split, const std::string& language) {
  const auto gz = p.data_folder / (split + "." + language + ".gz");
  return fs::exists(gz) ? gz : p.data_folder / (split + "." + language);
}

Plan read_plan(const Config& config) {
  const auto root = config.root();
  root.get_choice("experiment", {"multisource_mt"});
  Plan p;
  p.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
  p.threads = static_cast<int>(root.get_int("threads", 0, 0, 1024));
  p.parallel = root.get<bool>("parallel", true);
  const auto cache_dir = root.get<std::string>("cache_dir", std::string());
  p.cache = cache_dir.empty() ? default_agent_cache() : root.get_path("cache_dir", false) / "agents";

  const auto data = root.child("data");
  p.data_folder = data.get_path("folder", true);
  p.target_language = data.get<std::string>("target");
  p.train_split = data.get<std::string>("train", std::string("train"));
  p.valid_split = data.get<std::string>("valid", std::string("val"));
  p.test_split = data.get<std::string>("test", std::string("test_2016_flickr"));
  p.max_train_examples = data.get_int("max_train_examples", 0, 0);
  p.max_length = data.get_int("max_length", 48, 2);

  const auto team = root.child("team");
  const auto anchor = team.get<std::string>("anchor");
  const auto augmenting = team.get<std::vector<std::string>>("augmenting");
  CHORUS_CHECK(!augmenting.empty(), team.origin("augmenting"), ": team.augmenting: expected at least one agent");
  const auto agents = root.child("agents");
  const auto names = agents.keys();
  std::vector<std::string> order = {anchor};
  order.insert(order.end(), augmenting.begin(), augmenting.end());
  for (const auto& name : order) {
    CHORUS_CHECK(std::find(names.begin(), names.end(), name) != names.end(), team.origin("anchor"),
                 ": team names agent '", name, "', which agents{} does not define (defined: ",
                 [&] {
                   std::string s;
                   for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
                   return s;
                 }(),
                 ")");
    CHORUS_CHECK(std::count(order.begin(), order.end(), name) == 1, team.origin("augmenting"), ": agent '", name,
                 "' appears twice in the team");
  }
  for (const auto& name : names) {
    CHORUS_CHECK(std::find(order.begin(), order.end(), name) != order.end(), agents.origin(name), ": agent '", name,
                 "' is in no team (anchor '", anchor, "', augmenting agents listed in team.augmenting)");
  }
  for (const auto& name : order) {
    const auto view = agents.child(name);
    AgentEntry a;
    a.name = name;
    a.role = view.get<std::string>("role", std::string());
    a.language = view.get<std::string>("source");
    CHORUS_CHECK(a.language != p.target_language, view.origin("source"), ": ", view.key_path("source"),
                 ": the agent reads '", a.language, "', the target language itself");
    a.config_file = view.get_path("config", true);
    a.overrides = view.get<std::vector<std::string>>("overrides", {});
    const auto agent_config = Config::load(a.config_file, a.overrides);
    a.spec = read_text_agent(agent_config.root());
    agent_config.check_all_keys_used();
    a.resolved_config = agent_config.to_yaml();
    p.agents.push_back(std::move(a));
  }
  for (const auto& a : p.agents) {
    for (const auto& split : {p.train_split, p.valid_split, p.test_split}) {
      for (const auto& language : {a.language, p.target_language}) {
        const auto file = split_file(p, split, language);
        CHORUS_CHECK(fs::is_regular_file(file), data.origin("folder"), ": data.folder: '", p.data_folder.string(),
                     "' has no ", split, ".", language, "[.gz] (agent '", a.name, "' reads ", language, ")");
      }
    }
  }

  auto& f = p.fusion.fusion;
  f.value_source = collab::ValueSource::hidden;  // the agents' vocabularies differ: no bridge
  f.heads = team.get_int("heads", 4, 1);
  f.head_dim = team.get_int("head_dim", 64, 1);
  f.gate = team.get_choice("gate", {"per_position", "scalar"}, std::string("per_position")) == "scalar"
               ? collab::GateKind::scalar
               : collab::GateKind::per_position;
  f.residual = team.get_choice("residual", {"add", "interpolate"}, std::string("add")) == "add"
                   ? collab::Residual::add
                   : collab::Residual::interpolate;
  f.null_slot = team.get<bool>("null_slot", true);
  f.position_bias = team.get_int("position_bias", 0, 0);
  f.diagonal_prior = team.get_double("diagonal_prior", 0.0);
  CHORUS_CHECK(f.diagonal_prior == 0.0 || f.position_bias > 0, team.origin("diagonal_prior"),
               ": team.diagonal_prior: needs a position-pair bias (position_bias > 0)");
  p.fusion.query_layer = team.get_int("query_layer", 0, 0);
  p.fusion.inject_layer = team.get_int("inject_layer", 0, 0);
  const auto layers = p.agents.front().spec.shape.num_layers;
  CHORUS_CHECK(p.fusion.query_layer <= layers && p.fusion.inject_layer <= layers, team.origin("inject_layer"),
               ": team.query_layer ", p.fusion.query_layer, " / inject_layer ", p.fusion.inject_layer,
               " beyond the anchor's ", layers, " encoder layers");
  const auto train = team.child("train");
  p.trainer = read_trainer_options(train, "team-fusion", p.seed);
  p.trainer.best_metric = "bleu";
  p.batching.batch_size = train.get_int("batch_size", 0, 0);
  p.batching.max_tokens = train.get_int("max_tokens", 0, 0);
  if (p.batching.batch_size == 0 && p.batching.max_tokens == 0) p.batching.batch_size = 64;
  CHORUS_CHECK(p.batching.max_tokens == 0 || p.batching.max_tokens >= p.max_length, train.origin("max_tokens"),
               ": team.train.max_tokens = ", p.batching.max_tokens, " is below data.max_length = ", p.max_length);
  p.valid_examples = team.get_int("valid_examples", 256, 1);

  const auto evaluation = root.child_or_empty("evaluation");
  p.test_examples = evaluation.get_int("test_examples", 0, 0);
  p.eval_batch_size = evaluation.get_int("batch_size", 64, 1);
  p.max_new_tokens = evaluation.get_int("max_new_tokens", 48, 1);
  p.bootstrap_resamples = evaluation.get_int("bootstrap_resamples", 1000, 10);
  p.transcript_examples = evaluation.get_int("transcript_examples", 20, 0);
  p.completion = read_task_completion(config, evaluation, {p.test_split});
  std::vector<std::string> agent_names;
  for (const auto& a : p.agents) agent_names.push_back(a.name);
  p.mechanisms = read_mechanisms(evaluation, agent_names);
  config.check_all_keys_used();
  return p;
}

// One split in the agents' order, lines stripped; rows where any side is empty are dropped.
MultiSourceSplit load_split(const Plan& p, const std::string& split, int64_t max_examples) {
  std::vector<std::vector<std::string>> columns;
  std::vector<fs::path> files;
  for (const auto& a : p.agents) files.push_back(split_file(p, split, a.language));
  files.push_back(split_file(p, split, p.target_language));
  for (const auto& file : files) {
    columns.push_back(read_text_lines(file));
    CHORUS_CHECK(columns.back().size() == columns.front().size(), "'", file.string(), "' has ", columns.back().size(),
                 " lines but '", files.front().string(), "' has ", columns.front().size(),
                 ": the files of a split must be line-aligned");
  }
  auto strip = [](const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
  };
  MultiSourceSplit out;
  out.sources.resize(p.agents.size());
  for (size_t i = 0; i < columns.front().size(); ++i) {
    if (max_examples > 0 && static_cast<int64_t>(out.size()) >= max_examples) break;
    std::vector<std::string> row;
    for (const auto& column : columns) row.push_back(strip(column[i]));
    if (std::any_of(row.begin(), row.end(), [](const std::string& s) { return s.empty(); })) continue;
    for (size_t a = 0; a < p.agents.size(); ++a) out.sources[a].push_back(row[a]);
    out.targets.push_back(row.back());
  }
  CHORUS_CHECK(out.size() > 0, "split '", split, "' in '", p.data_folder.string(), "' has no complete rows");
  return out;
}

// Rows [begin, end) of `split`'s sources, one list per agent.
std::vector<std::vector<std::string>> rows_of(const MultiSourceSplit& split, const std::vector<int64_t>& rows) {
  std::vector<std::vector<std::string>> out(split.sources.size());
  for (size_t a = 0; a < split.sources.size(); ++a) {
    for (const auto r : rows) out[a].push_back(split.sources[a][static_cast<size_t>(r)]);
  }
  return out;
}

// Translates every row of `split` in batches of similar length with `translate(rows)`.
std::vector<std::string> translate_all(const MultiSourceSplit& split, int64_t batch_size,
                                       const std::function<std::vector<std::string>(const std::vector<int64_t>&)>& translate) {
  std::vector<int64_t> order(split.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return split.sources[0][static_cast<size_t>(a)].size() < split.sources[0][static_cast<size_t>(b)].size();
  });
  std::vector<std::string> out(split.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    const std::vector<int64_t> rows(order.begin() + static_cast<std::ptrdiff_t>(start),
                                    order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + static_cast<size_t>(batch_size))));
    const auto part = translate(rows);
    for (size_t k = 0; k < rows.size(); ++k) out[static_cast<size_t>(rows[k])] = part[k];
  }
  return out;
}

double corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  return eval::BleuScorer().corpus_score(hypotheses, {references}).score;
}

int64_t token_count(const collab::Agent& agent, const std::string& text) {
  return static_cast<int64_t>(agent.tokenizer->encode(agent.prompt(text)).size());
}

class MultiSourceProblem final : public TrainingProblem {
 public:
  MultiSourceProblem(MultiSourceTeam& team, const MultiSourceSplit& train, std::vector<int64_t> lengths,
                     const MultiSourceSplit& valid, const Plan& plan)
      : team_(team),
        train_(train),
        batches_(std::move(lengths), plan.batching, plan.seed ^ 0x3A17C0DEULL),
        valid_(valid),
        plan_(plan) {}

  std::vector<std::pair<std::string, torch::Tensor>> parameters() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : team_.head()->named_parameters()) out.emplace_back("head." + item.key(), item.value());
    return out;
  }

  MicroBatchLoss loss(int64_t step, int64_t micro) override {
    const auto batch = batches_.batch(step * plan_.trainer.accumulation + micro);
    std::vector<std::string> targets;
    for (const auto r : batch.examples) targets.push_back(train_.targets[static_cast<size_t>(r)]);
    MicroBatchLoss out;
    out.loss = team_.loss(rows_of(train_, batch.examples), targets);
    out.tokens = static_cast<int64_t>(batch.examples.size());
    return out;
  }

  std::map<std::string, double> evaluate(int64_t) override {
    const auto outputs = translate_all(valid_, plan_.eval_batch_size, [&](const std::vector<int64_t>& rows) {
      return team_.translate(rows_of(valid_, rows), plan_.max_new_tokens);
    });
    return {{"bleu", corpus_bleu(outputs, valid_.targets)}};
  }

 private:
  MultiSourceTeam& team_;
  const MultiSourceSplit& train_;
  EpochBatches batches_;
  const MultiSourceSplit& valid_;
  const Plan& plan_;
};

struct SystemOutputs {
  std::string name;
  std::string description;
  int64_t source = -1;  // the agent whose source it translates; -1: every agent's (the team)
  std::vector<std::string> outputs;
  // Agents alone: each translation's sum of token log-probabilities and its generated tokens
  // (end-of-sequence included), from the greedy search that produced it.
  std::vector<double> log_probs;
  std::vector<int64_t> generated_tokens;
  collab::ComputeCost cost;  // summed over the test rows
  bool mechanism = false;
  nlohmann::json details = nlohmann::json::object();  // what the mechanism chose (best_single_agent)
  // Per row, for mechanisms that vote: the candidates ({from, text}) and the winner's index.
  std::vector<nlohmann::json> candidates;
  std::vector<size_t> winners;
};

// Greedy translations with what the search scored them: the same texts as Agent::generate_text,
// each with the sum of its token log-probabilities and its generated tokens (end-of-sequence
// included).
struct ScoredTranslations {
  std::vector<std::string> texts;
  std::vector<double> log_probs;
  std::vector<int64_t> tokens;
};

ScoredTranslations translate_scored(const collab::Agent& agent, const std::vector<std::string>& inputs,
                                    const model::GenerationOptions& options) {
  const auto batch = agent.tokenize(inputs);
  const auto result = model::generate(*agent.model, batch.input_ids, batch.attention_mask, options);
  const int64_t per_input = result.sequences.size(0) / static_cast<int64_t>(inputs.size());
  const int64_t eos = agent.model->config().eos_token_id;
  ScoredTranslations out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const int64_t row_index = static_cast<int64_t>(i) * per_input;
    auto row = result.sequences[row_index].contiguous();
    std::vector<int64_t> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
    out.texts.push_back(agent.tokenizer->decode(ids, /*skip_special_tokens=*/true));
    out.log_probs.push_back(result.sequence_scores[row_index].item<double>());
    int64_t generated = 0;
    for (size_t t = 1; t < ids.size(); ++t) {  // ids[0] is the decoder start token
      ++generated;
      if (ids[t] == eos) break;
    }
    out.tokens.push_back(generated);
  }
  return out;
}

// MBR with sentence-level chrF as the utility among `texts` (the candidates of one row).
collab::VoteOutcome mbr_chrf(const std::vector<std::string>& from, const std::vector<std::string>& texts,
                             const eval::ChrfScorer& chrf) {
  std::vector<collab::Candidate> candidates;
  for (size_t i = 0; i < texts.size(); ++i) candidates.push_back({from[i], collab::Response{texts[i], 0.0, 0}});
  collab::VotingOptions options;
  options.rule = collab::VoteRule::minimum_bayes_risk;
  options.custom_utility = [&](const std::string& hypothesis, const std::string& reference) {
    return chrf.sentence_score(hypothesis, {reference}).score;
  };
  return collab::vote(candidates, options);
}

// Every node's greedy answer and node feature (collab::ask_nodes) for every row of `split`, each
// agent reading its own source; in translate_all's batches, so the answers are the agents' own
// translations of the same rows.
struct SplitNodeAnswers {
  std::vector<std::vector<collab::Response>> answers;  // [row][node]
  std::vector<torch::Tensor> features;                 // per node [rows, width]
};

std::vector<std::vector<std::string>> node_inputs(const MultiSourceSplit& split, const std::vector<size_t>& members,
                                                  const std::vector<int64_t>& rows) {
  std::vector<std::vector<std::string>> out(members.size());
  for (size_t k = 0; k < members.size(); ++k) {
    for (const auto r : rows) out[k].push_back(split.sources[members[k]][static_cast<size_t>(r)]);
  }
  return out;
}

SplitNodeAnswers ask_nodes_on_split(const std::vector<collab::Agent>& nodes, const std::vector<size_t>& members,
                                    const MultiSourceSplit& split, const model::GenerationOptions& greedy,
                                    int64_t batch_size) {
  SplitNodeAnswers out;
  out.answers.resize(split.size());
  for (const auto& node : nodes) {
    out.features.push_back(torch::zeros({static_cast<int64_t>(split.size()), collab::node_feature_width(node)}));
  }
  translate_all(split, batch_size, [&](const std::vector<int64_t>& rows) {
    const auto asked = collab::ask_nodes(nodes, node_inputs(split, members, rows), greedy, "graph_select", nullptr);
    const auto index = torch::tensor(rows, torch::kInt64);
    for (size_t k = 0; k < nodes.size(); ++k) out.features[k].index_copy_(0, index, asked.features[k]);
    for (size_t i = 0; i < rows.size(); ++i) out.answers[static_cast<size_t>(rows[i])] = asked.answers[i];
    return std::vector<std::string>(rows.size());
  });
  return out;
}

// Per candidate, its sentence chrF against `reference`; best: the first with the highest.
std::vector<double> sentence_chrf(const std::vector<collab::Response>& candidates, const std::string& reference,
                                  const eval::ChrfScorer& chrf, size_t* best) {
  std::vector<double> out;
  for (const auto& c : candidates) out.push_back(chrf.sentence_score(c.text, {reference}).score);
  *best = static_cast<size_t>(std::max_element(out.begin(), out.end()) - out.begin());
  return out;
}

bool all_texts_equal(const std::vector<collab::Response>& candidates) {
  return std::all_of(candidates.begin(), candidates.end(),
                     [&](const collab::Response& c) { return c.text == candidates.front().text; });
}

}  // namespace

MultiSourceTeam::MultiSourceTeam(const MultiSourceFusion& spec, const collab::Agent& anchor,
                                 std::vector<const collab::Agent*> others)
    : spec_(spec), anchor_(&anchor), others_(std::move(others)) {
  auto options = spec.fusion;
  options.anchor_width = anchor.model->config().d_model;
  options.augmenting_widths.clear();
  for (const auto* other : others_) options.augmenting_widths.push_back(other->model->config().d_model);
  head_ = collab::CrossAgentFusion(options);
}

model::EncoderOutput MultiSourceTeam::encode(const std::vector<std::vector<std::string>>& sources,
                                             torch::Tensor* attention) {
  CHORUS_CHECK(sources.size() == others_.size() + 1, "multi-source team: expected ", others_.size() + 1,
               " source lists (the anchor's, then each other agent's), got ", sources.size());
  const auto batch = anchor_->tokenize(sources[0]);
  std::vector<collab::AugmentingStates> states;
  {
    torch::NoGradGuard no_grad;
    for (size_t j = 0; j < others_.size(); ++j) {
      CHORUS_CHECK(sources[j + 1].size() == sources[0].size(), "multi-source team: agent '", others_[j]->name,
                   "' got ", sources[j + 1].size(), " inputs for ", sources[0].size(), " rows");
      const auto other = others_[j]->tokenize(sources[j + 1]);
      const auto encoded = others_[j]->model->encode(other.input_ids, other.attention_mask);
      collab::AugmentingStates s;
      s.key_states = encoded.last_hidden_state;
      s.value_states = encoded.last_hidden_state;
      s.mask = other.attention_mask;
      s.token_ids = other.input_ids;
      states.push_back(std::move(s));
    }
  }
  torch::Tensor query_states;
  if (spec_.query_layer != spec_.inject_layer) {
    torch::NoGradGuard no_grad;
    auto plain = anchor_->model->encode(batch.input_ids, batch.attention_mask, true);
    query_states = plain.hidden_states.at(static_cast<size_t>(spec_.query_layer));
  }
  model::StateHook hook = [&](int64_t layer, const torch::Tensor& x) -> torch::Tensor {
    if (layer != spec_.inject_layer) return x;
    return head_->forward(query_states.defined() ? query_states : x, x, states, {}, {}, attention);
  };
  return anchor_->model->encode(batch.input_ids, batch.attention_mask, false, hook);
}

torch::Tensor MultiSourceTeam::loss(const std::vector<std::vector<std::string>>& sources,
                                    const std::vector<std::string>& targets) {
  const auto encoded = encode(sources);
  const auto labels = model::tokenize_batch(*anchor_->tokenizer, sources[0], targets).labels;
  const auto& model = *anchor_->model;
  auto cache = model.start_decoding(encoded);
  const auto& c = model.config();
  auto decoded = model.decode_step(shift_right(labels, c.decoder_start_token_id, c.pad_token_id), cache);
  return token_cross_entropy(decoded.logits, labels);
}

std::vector<std::string> MultiSourceTeam::translate(const std::vector<std::vector<std::string>>& sources,
                                                    int64_t max_new_tokens) {
  torch::NoGradGuard no_grad;
  model::GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  const auto result = model::generate_from_encoder(*anchor_->model, encode(sources), options);
  std::vector<std::string> out;
  for (int64_t i = 0; i < result.sequences.size(0); ++i) {
    auto row = result.sequences[i].contiguous();
    out.push_back(anchor_->tokenizer->decode(
        std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel())));
  }
  return out;
}

std::filesystem::path run_multisource_mt_experiment(const Config& config, const ExperimentRun& run) {
  const auto total_start = Clock::now();
  const auto plan = read_plan(config);  // every config error surfaces here, before any work
  if (run.mode == RunMode::resume) {
    CHORUS_CHECK(fs::is_regular_file(config_path(run.folder)), "cannot resume: '", run.folder.string(),
                 "' holds no run (no config.yaml); start it without --resume");
  } else {
    prepare_run_folder(run.folder, run.mode);
  }
  save_resolved_config(run.folder, config.to_yaml(), run.evaluation_changed);
  const auto provenance = run_provenance(config.to_yaml());
  fs::create_directories(run.folder / "agents");
  for (const auto& a : plan.agents) {
    write_file_atomically(run.folder / "agents" / (a.name + ".yaml"), a.resolved_config);
  }
  if (plan.threads > 0) at::set_num_threads(plan.threads);
  auto say = [&](const std::string& line) {
    if (!run.quiet) std::cerr << line << std::endl;
  };
  const bool resume = run.mode == RunMode::resume;
  nlohmann::json phases = nlohmann::json::object();

  // 1. The agents, trained on their own language pair (cached by fingerprint).
  auto phase_start = Clock::now();
  std::vector<fs::path> folders(plan.agents.size());
  std::vector<nlohmann::json> pretrained(plan.agents.size());
  std::vector<std::function<void()>> jobs;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    jobs.push_back([&, i] {
      const auto& a = plan.agents[i];
      folders[i] = plan.cache / ("text-" + a.spec.name + "-" + a.spec.fingerprint());
      const auto start = Clock::now();
      bool cached = fs::is_regular_file(folders[i] / "pretrain.json");
      double bleu = 0;
      if (!cached) {
        auto spec = a.spec;
        spec.trainer.show_progress = !run.quiet;
        spec.trainer.plain_progress = plan.parallel;
        bleu = pretrain_text_agent(spec, folders[i], run.folder / "pretrain" / a.name, resume).bleu;
      } else {
        std::ifstream in(folders[i] / "pretrain.json");
        bleu = nlohmann::json::parse(in).value("bleu", 0.0);
      }
      pretrained[i] = {{"seconds", since(start)}, {"cached", cached}, {"valid_bleu", bleu},
                       {"folder", folders[i].string()}};
    });
  }
  say("pretraining " + std::to_string(plan.agents.size()) + " translation agents (cache: " + plan.cache.string() + ")");
  run_jobs(jobs, plan.parallel);
  std::map<std::string, collab::Agent> agents;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    const auto& a = plan.agents[i];
    say("  agent " + a.name + " (" + a.language + "->" + plan.target_language + "): " +
        (pretrained[i]["cached"].get<bool>() ? "from the cache" : "trained") + ", validation BLEU " +
        std::to_string(pretrained[i]["valid_bleu"].get<double>()));
    phases["pretrain_" + a.name] = pretrained[i];
    agents.emplace(a.name, collab::load_agent(a.name, folders[i], a.role));
  }
  phases["pretrain"] = {{"seconds", since(phase_start)}};

  // 2. Data for the head: every split line-aligned across the languages.
  const auto train_split = load_split(plan, plan.train_split, plan.max_train_examples);
  const auto valid_split = load_split(plan, plan.valid_split, plan.valid_examples);
  const auto test_split = load_split(plan, plan.test_split, plan.test_examples);
  const auto& anchor = agents.at(plan.agents.front().name);
  std::vector<const collab::Agent*> others;
  for (size_t i = 1; i < plan.agents.size(); ++i) others.push_back(&agents.at(plan.agents[i].name));

  // fairseq's token budget: a row costs its longest side; rows with a side over max_length are left out.
  MultiSourceSplit kept;
  kept.sources.resize(plan.agents.size());
  std::vector<int64_t> lengths;
  int64_t dropped = 0;
  for (size_t r = 0; r < train_split.size(); ++r) {
    int64_t longest = static_cast<int64_t>(anchor.tokenizer->encode(train_split.targets[r]).size());
    for (size_t a = 0; a < plan.agents.size(); ++a) {
      longest = std::max(longest, token_count(agents.at(plan.agents[a].name), train_split.sources[a][r]));
    }
    if (longest > plan.max_length) {
      ++dropped;
      continue;
    }
    for (size_t a = 0; a < plan.agents.size(); ++a) kept.sources[a].push_back(train_split.sources[a][r]);
    kept.targets.push_back(train_split.targets[r]);
    lengths.push_back(longest);
  }
  CHORUS_CHECK(kept.size() > 0, "every training row has a side longer than data.max_length = ", plan.max_length,
               " tokens");
  say("head training data: " + std::to_string(kept.size()) + " rows (" + std::to_string(dropped) +
      " over max_length left out), validation " + std::to_string(valid_split.size()) + ", test " +
      std::to_string(test_split.size()));

  // 3. The fusion head over the frozen agents.
  phase_start = Clock::now();
  torch::manual_seed(stream_seed(plan.seed, 0, 0x7EA));
  MultiSourceTeam team(plan.fusion, anchor, others);
  MultiSourceProblem problem(team, kept, lengths, valid_split, plan);
  {
    const auto folder = run.folder / "teams" / "fusion";
    const bool team_resume = resume && fs::is_regular_file(latest_checkpoint_path(folder));
    prepare_run_folder(folder, team_resume ? RunMode::resume : RunMode::overwrite);
    auto options = plan.trainer;
    options.show_progress = !run.quiet;
    say("training the fusion head (" + std::to_string(team.head()->parameter_count()) + " parameters)");
    const auto trained = train(problem, options, folder, team_resume);
    if (fs::is_regular_file(best_checkpoint_path(folder))) load_parameters(best_checkpoint_path(folder), problem.parameters());
    phases["team_fusion"] = {{"seconds", since(phase_start)},
                             {"parameters", team.head()->parameter_count()},
                             {"steps", trained.steps_done},
                             {"best_step", trained.best_step},
                             {"best_valid_bleu", trained.best_value}};
  }

  // 4. Every system on the test set.
  phase_start = Clock::now();
  torch::NoGradGuard no_grad;
  model::GenerationOptions greedy;
  greedy.max_new_tokens = plan.max_new_tokens;
  std::vector<SystemOutputs> systems;
  for (size_t i = 0; i < plan.agents.size(); ++i) {
    const auto& spec = plan.agents[i];
    const auto& agent = agents.at(spec.name);
    SystemOutputs s;
    s.name = "agent-" + spec.name;
    s.description = "agent '" + spec.name + "' alone, translating from " + spec.language;
    s.source = static_cast<int64_t>(i);
    const auto start = Clock::now();
    s.log_probs.assign(test_split.size(), 0.0);
    s.generated_tokens.assign(test_split.size(), 0);
    s.outputs = translate_all(test_split, plan.eval_batch_size, [&](const std::vector<int64_t>& rows) {
      std::vector<std::string> inputs;
      for (const auto r : rows) inputs.push_back(test_split.sources[i][static_cast<size_t>(r)]);
      auto scored = translate_scored(agent, inputs, greedy);
      for (size_t k = 0; k < rows.size(); ++k) {
        s.log_probs[static_cast<size_t>(rows[k])] = scored.log_probs[k];
        s.generated_tokens[static_cast<size_t>(rows[k])] = scored.tokens[k];
      }
      return scored.texts;
    });
    s.cost.seconds = since(start);
    for (size_t r = 0; r < test_split.size(); ++r) {
      s.cost += collab::seq2seq_call_cost(*agent.model, token_count(agent, test_split.sources[i][r]),
                                          static_cast<int64_t>(agent.tokenizer->encode(s.outputs[r]).size()));
    }
    systems.push_back(std::move(s));
  }
  {
    SystemOutputs s;
    s.name = "team-fusion";
    std::string languages;
    for (size_t i = 1; i < plan.agents.size(); ++i) languages += (i > 1 ? ", " : "") + plan.agents[i].name;
    s.description = "agent '" + plan.agents.front().name + "' attending to the encoding of " + languages +
                    " through a fusion head (multi-source)";
    const auto start = Clock::now();
    s.outputs = translate_all(test_split, plan.eval_batch_size, [&](const std::vector<int64_t>& rows) {
      return team.translate(rows_of(test_split, rows), plan.max_new_tokens);
    });
    s.cost.seconds = since(start);
    const auto& a = anchor.model->config();
    const double inner = static_cast<double>(plan.fusion.fusion.heads * plan.fusion.fusion.head_dim);
    for (size_t r = 0; r < test_split.size(); ++r) {
      const auto nq = token_count(anchor, test_split.sources[0][r]);
      s.cost += collab::seq2seq_call_cost(*anchor.model, nq,
                                          static_cast<int64_t>(anchor.tokenizer->encode(s.outputs[r]).size()));
      double head = 2.0 * static_cast<double>(nq) * static_cast<double>(a.d_model) * inner;  // queries
      double keys = plan.fusion.fusion.null_slot ? 1 : 0;
      for (size_t j = 0; j < others.size(); ++j) {
        const auto nk = token_count(*others[j], test_split.sources[j + 1][r]);
        auto encoder_only = collab::seq2seq_call_cost(*others[j]->model, nk, 0);  // encodes, never decodes
        s.cost += encoder_only;
        const auto& o = others[j]->model->config();
        keys += static_cast<double>(nk);
        head += 2.0 * static_cast<double>(nk) * static_cast<double>(o.d_model) * (inner + static_cast<double>(a.d_model));
      }
      head += 2.0 * 2.0 * static_cast<double>(nq) * keys * (inner + static_cast<double>(a.d_model));
      if (plan.fusion.query_layer != plan.fusion.inject_layer) head += collab::seq2seq_call_flops(a, nq, 0);
      s.cost.flops += head;
    }
    systems.push_back(std::move(s));
  }
  phases["evaluation"] = {{"seconds", since(phase_start)}};

  // 4b. Mechanisms over the frozen agents (graph_select trains its selector first), on the same test rows.
  const auto mechanisms_start = Clock::now();
  const eval::ChrfScorer chrf_utility;
  auto agent_index = [&](const std::string& name) {
    for (size_t i = 0; i < plan.agents.size(); ++i) {
      if (plan.agents[i].name == name) return i;
    }
    throw Error("no agent '" + name + "'");
  };
  for (const auto& m : plan.mechanisms) {
    const auto start = Clock::now();
    SystemOutputs s;
    s.name = "mechanism-" + m.name;
    s.mechanism = true;
    s.details = {{"kind", m.kind}};
    if (m.kind == "mbr") {
      s.description = "minimum Bayes risk (sentence chrF as the utility) over the greedy translations of " +
                      joined(m.agents) + ", each from its own source";
      s.details["agents"] = m.agents;
      std::vector<size_t> members;
      for (const auto& a : m.agents) members.push_back(agent_index(a));
      for (const auto i : members) {
        s.cost += systems[i].cost;  // every agent translates every row
      }
      for (size_t r = 0; r < test_split.size(); ++r) {
        std::vector<std::string> texts;
        for (const auto i : members) texts.push_back(systems[i].outputs[r]);
        const auto outcome = mbr_chrf(m.agents, texts, chrf_utility);
        s.outputs.push_back(texts[outcome.winner]);
        nlohmann::json c = nlohmann::json::array();
        for (size_t k = 0; k < texts.size(); ++k) c.push_back({{"from", m.agents[k]}, {"text", texts[k]}});
        s.candidates.push_back(std::move(c));
        s.winners.push_back(outcome.winner);
      }
      s.cost.seconds += since(start);
    } else if (m.kind == "vote") {
      s.description = std::string(m.rule == "log_prob"
                                      ? "the translation its agent finds most probable"
                                      : "majority vote over the normalised translations, ties to the most probable") +
                      " (log-probability: " + (m.score == "mean" ? "mean per generated token" : "sum over tokens") +
                      ") among the greedy translations of " + joined(m.agents) + ", each from its own source";
      s.details["agents"] = m.agents;
      s.details["rule"] = m.rule;
      s.details["score"] = m.score;
      std::vector<size_t> members;
      for (const auto& a : m.agents) members.push_back(agent_index(a));
      for (const auto i : members) s.cost += systems[i].cost;  // every agent translates every row
      collab::VotingOptions options;
      options.rule = collab::vote_rule_from_string(m.rule);
      nlohmann::json chosen = nlohmann::json::object();
      for (const auto& a : m.agents) chosen[a] = 0;
      int64_t ties = 0;
      for (size_t r = 0; r < test_split.size(); ++r) {
        std::vector<collab::Candidate> candidates;
        nlohmann::json c = nlohmann::json::array();
        for (size_t k = 0; k < members.size(); ++k) {
          const auto& agent_system = systems[members[k]];
          const double sum = agent_system.log_probs.at(r);
          const auto tokens = std::max<int64_t>(1, agent_system.generated_tokens.at(r));
          const double score = m.score == "mean" ? sum / static_cast<double>(tokens) : sum;
          candidates.push_back({m.agents[k], collab::Response{agent_system.outputs[r], score, tokens}});
          c.push_back({{"from", m.agents[k]}, {"text", agent_system.outputs[r]}, {"log_prob", sum}, {"tokens", tokens}});
        }
        const auto outcome = collab::vote(candidates, options);
        s.outputs.push_back(candidates[outcome.winner].response.text);
        chosen[m.agents[outcome.winner]] = chosen[m.agents[outcome.winner]].get<int64_t>() + 1;
        ties += outcome.tie_broken ? 1 : 0;
        s.candidates.push_back(std::move(c));
        s.winners.push_back(outcome.winner);
      }
      s.details["chosen"] = chosen;
      s.details["ties_broken"] = ties;
      s.cost.seconds += since(start);
    } else if (m.kind == "self_consistency") {
      const auto i = agent_index(m.agent);
      const auto& agent = agents.at(m.agent);
      s.description = "agent '" + m.agent + "' sampled " + std::to_string(m.samples) + " times (temperature " +
                      std::to_string(m.temperature) + ", top_k " + std::to_string(m.top_k) + ", top_p " +
                      std::to_string(m.top_p) + "), minimum Bayes risk with sentence chrF among the samples";
      s.details["agent"] = m.agent;
      s.details["samples"] = m.samples;
      s.details["temperature"] = m.temperature;
      s.details["top_k"] = m.top_k;
      s.details["top_p"] = m.top_p;
      s.details["seed"] = m.seed;
      std::vector<std::vector<std::string>> samples;
      for (int64_t k = 0; k < m.samples; ++k) {
        model::GenerationOptions sampling;
        sampling.max_new_tokens = plan.max_new_tokens;
        sampling.do_sample = true;
        sampling.temperature = m.temperature;
        sampling.top_k = m.top_k;
        sampling.top_p = m.top_p;
        sampling.seed = stream_seed(plan.seed + m.seed, k, 0x5C);
        samples.push_back(translate_all(test_split, plan.eval_batch_size, [&](const std::vector<int64_t>& rows) {
          std::vector<std::string> inputs;
          for (const auto r : rows) inputs.push_back(test_split.sources[i][static_cast<size_t>(r)]);
          return agent.generate_text(inputs, sampling);
        }));
        for (size_t r = 0; r < test_split.size(); ++r) {
          s.cost += collab::seq2seq_call_cost(*agent.model, token_count(agent, test_split.sources[i][r]),
                                              static_cast<int64_t>(agent.tokenizer->encode(samples.back()[r]).size()));
        }
      }
      std::vector<std::string> from;
      for (int64_t k = 0; k < m.samples; ++k) from.push_back(m.agent + "#" + std::to_string(k));
      for (size_t r = 0; r < test_split.size(); ++r) {
        std::vector<std::string> texts;
        for (const auto& sample : samples) texts.push_back(sample[r]);
        const auto outcome = mbr_chrf(from, texts, chrf_utility);
        s.outputs.push_back(texts[outcome.winner]);
        nlohmann::json c = nlohmann::json::array();
        for (size_t k = 0; k < texts.size(); ++k) c.push_back({{"from", from[k]}, {"text", texts[k]}});
        s.candidates.push_back(std::move(c));
        s.winners.push_back(outcome.winner);
      }
      s.cost.seconds = since(start);
    } else if (m.kind == "graph_select") {
      std::vector<collab::Agent> nodes;
      std::vector<size_t> members;
      for (const auto& a : m.agents) {
        nodes.push_back(agents.at(a));
        members.push_back(agent_index(a));
      }
      // Training captions: the validation split, or the training split when validation has too
      // few (train.split: auto); never the test split.
      auto training_rows = load_split(plan, plan.valid_split, m.train_examples);
      std::string training_split = plan.valid_split;
      const auto valid_captions = training_rows.size();  // all of them when fewer than asked for
      const bool valid_too_small = static_cast<int64_t>(valid_captions) < m.train_examples;
      if (m.train_split == "train" || (m.train_split == "auto" && valid_too_small)) {
        training_rows = load_split(plan, plan.train_split, m.train_examples);
        training_split = plan.train_split;
      }
      const auto asked = ask_nodes_on_split(nodes, members, training_rows, greedy, plan.eval_batch_size);
      const double answer_seconds = since(start);
      // Labels: the node whose translation has the higher sentence chrF against the reference is
      // right; equal scores make both right; rows whose translations are identical carry no choice.
      std::vector<int64_t> kept;
      std::vector<std::vector<bool>> right_rows;
      int64_t identical = 0, tied = 0;
      nlohmann::json better = nlohmann::json::object();
      for (const auto& a : m.agents) better[a] = 0;
      for (size_t r = 0; r < training_rows.size(); ++r) {
        const auto& candidates = asked.answers[r];
        if (all_texts_equal(candidates)) {
          ++identical;
          continue;
        }
        size_t best = 0;
        const auto scores = sentence_chrf(candidates, training_rows.targets[r], chrf_utility, &best);
        std::vector<bool> right;
        for (const auto score : scores) right.push_back(score == scores[best]);
        if (std::count(right.begin(), right.end(), true) > 1) {
          ++tied;
        } else {
          better[m.agents[best]] = better[m.agents[best]].get<int64_t>() + 1;
        }
        kept.push_back(static_cast<int64_t>(r));
        right_rows.push_back(std::move(right));
      }
      auto correct = torch::zeros({static_cast<int64_t>(kept.size()), static_cast<int64_t>(nodes.size())}, torch::kBool);
      for (size_t i = 0; i < kept.size(); ++i) {
        for (size_t k = 0; k < nodes.size(); ++k) {
          if (right_rows[i][k]) correct.index_put_({static_cast<int64_t>(i), static_cast<int64_t>(k)}, true);
        }
      }
      const auto kept_index = torch::tensor(kept, torch::kInt64);
      std::vector<torch::Tensor> features;
      for (const auto& f : asked.features) features.push_back(f.index_select(0, kept_index));
      collab::GraphSelectorFit fit;
      try {
        fit = collab::fit_graph_selector(nodes, m.graph, features, correct, m.selector_training);
      } catch (const Error& e) {
        throw Error("mechanism '" + m.name + "' (graph_select): " + e.what());
      }
      nlohmann::json chosen_in_training = nlohmann::json::object();
      for (const auto& a : m.agents) chosen_in_training[a] = 0;
      for (const auto c : fit.chosen) {
        const auto& a = m.agents[static_cast<size_t>(c)];
        chosen_in_training[a] = chosen_in_training[a].get<int64_t>() + 1;
      }
      const auto& losses = fit.log.losses;
      const auto tenth = std::max<size_t>(1, losses.size() / 10);
      auto mean_loss = [](auto begin, auto end) {
        return std::accumulate(begin, end, 0.0) / static_cast<double>(std::distance(begin, end));
      };

      // The test captions: both agents translate, the selector keeps one translation.
      const auto test_start = Clock::now();
      collab::GraphSelection selection(nodes, fit.selector, greedy);
      std::vector<collab::GraphSelectionOutcome> outcomes(test_split.size());
      translate_all(test_split, plan.eval_batch_size, [&](const std::vector<int64_t>& rows) {
        auto part = selection.run(node_inputs(test_split, members, rows));
        for (size_t i = 0; i < rows.size(); ++i) outcomes[static_cast<size_t>(rows[i])] = std::move(part[i]);
        return std::vector<std::string>(rows.size());
      });
      s.cost.seconds = since(test_start);
      const double selector_flops = fit.selector->flops_per_decision();
      nlohmann::json chosen = nlohmann::json::object(), oracle_chosen = nlohmann::json::object();
      for (const auto& a : m.agents) chosen[a] = 0, oracle_chosen[a] = 0;
      double p_chosen = 0;
      int64_t decided = 0, agreeing = 0, differing_from_agents = 0, identical_test = 0;
      std::vector<std::string> oracle_outputs;
      for (size_t r = 0; r < test_split.size(); ++r) {
        const auto& o = outcomes[r];
        const auto winner = static_cast<size_t>(o.chosen);
        s.outputs.push_back(o.answer);
        s.winners.push_back(winner);
        chosen[m.agents[winner]] = chosen[m.agents[winner]].get<int64_t>() + 1;
        p_chosen += o.probabilities[winner];
        nlohmann::json c = nlohmann::json::array();
        for (size_t k = 0; k < nodes.size(); ++k) {
          const auto& text = o.answers[k].text;
          c.push_back({{"from", m.agents[k]}, {"text", text}, {"p", o.probabilities[k]}});
          s.cost += collab::seq2seq_call_cost(*nodes[k].model, token_count(nodes[k], test_split.sources[members[k]][r]),
                                              static_cast<int64_t>(nodes[k].tokenizer->encode(text).size()));
          differing_from_agents += text != systems[members[k]].outputs[r] ? 1 : 0;
        }
        s.cost.flops += selector_flops;
        s.candidates.push_back(std::move(c));
        // The oracle: the candidate the training labels would call right (ties: the first).
        size_t best = 0;
        const auto scores = sentence_chrf(o.answers, test_split.targets[r], chrf_utility, &best);
        oracle_outputs.push_back(o.answers[best].text);
        oracle_chosen[m.agents[best]] = oracle_chosen[m.agents[best]].get<int64_t>() + 1;
        if (all_texts_equal(o.answers)) {
          ++identical_test;
        } else if (std::count(scores.begin(), scores.end(), scores[best]) == 1) {
          ++decided;
          agreeing += winner == best ? 1 : 0;
        }
      }
      s.description = "learned selector (graph attention over " + joined(m.agents) + ", dim " +
                      std::to_string(m.graph.options.dim) + ", " + std::to_string(m.graph.options.steps) +
                      " steps) keeping one of their greedy translations, each from its own source; trained on " +
                      std::to_string(kept.size()) + " " + training_split +
                      " captions labelled by the higher sentence chrF";
      const auto& g = m.graph.options;
      nlohmann::json adjacency = nlohmann::json::object();
      for (size_t i = 0; i < m.agents.size(); ++i) {
        nlohmann::json reads = nlohmann::json::array();
        for (size_t j = 0; j < m.agents.size(); ++j) {
          if (m.graph.adjacency[static_cast<int64_t>(i)][static_cast<int64_t>(j)].item<bool>()) reads.push_back(m.agents[j]);
        }
        adjacency[m.agents[i]] = reads;
      }
      s.details["agents"] = m.agents;
      s.details["graph"] = {{"dim", g.dim}, {"heads", g.heads}, {"head_dim", g.head_dim},
                            {"steps", g.steps}, {"seed", g.seed}, {"adjacency", adjacency}};
      s.details["parameters"] = fit.selector->parameter_count();
      s.details["flops_per_decision"] = selector_flops;
      s.details["training"] = {
          {"split", training_split},
          {"split_setting", m.train_split},
          {"why", training_split == plan.valid_split
                      ? "the validation split has the captions asked for"
                      : (m.train_split == "train" ? "train.split: train"
                                                  : "the validation split has " + std::to_string(valid_captions) +
                                                        " complete captions, fewer than train.examples = " +
                                                        std::to_string(m.train_examples))},
          {"captions", training_rows.size()},
          {"identical_translations_skipped", identical},
          {"trained_on", kept.size()},
          {"better", better},
          {"ties", tied},
          {"steps", m.selector_training.steps},
          {"batch_size", m.selector_training.batch_size},
          {"learning_rate", m.selector_training.learning_rate},
          {"seed", m.selector_training.seed},
          {"initial_loss", losses.empty() ? 0.0 : mean_loss(losses.begin(), losses.begin() + static_cast<std::ptrdiff_t>(tenth))},
          {"final_loss", losses.empty() ? 0.0 : mean_loss(losses.end() - static_cast<std::ptrdiff_t>(tenth), losses.end())},
          {"training_accuracy", fit.training_accuracy},
          {"chosen", chosen_in_training},
          {"answer_seconds", answer_seconds},
          {"train_seconds", fit.seconds}};
      s.details["chosen"] = chosen;
      s.details["mean_p_chosen"] = test_split.size() > 0 ? p_chosen / static_cast<double>(test_split.size()) : 0.0;
      s.details["agrees_with_oracle"] = {{"captions", decided},
                                         {"agreeing", agreeing},
                                         {"fraction", decided > 0 ? static_cast<double>(agreeing) / static_cast<double>(decided) : 0.0}};
      s.details["identical_translations"] = identical_test;
      s.details["candidates_differing_from_agents_outputs"] = differing_from_agents;
      s.details["oracle_bleu"] = corpus_bleu(oracle_outputs, test_split.targets);
      s.details["oracle_chrf"] = eval::ChrfScorer().corpus_score(oracle_outputs, {test_split.targets}).score;
      s.details["oracle_chosen"] = oracle_chosen;
      s.details["oracle"] =
          "an upper bound that knows the references: per test caption the translation with the higher sentence chrF "
          "against the reference (the selector's training label; ties to the first agent)";
    } else {  // best_single_agent
      const auto valid = load_split(plan, plan.valid_split, m.valid_examples);
      nlohmann::json scores = nlohmann::json::object();
      std::string best;
      double best_bleu = -1;
      for (const auto& name : m.agents) {
        const auto i = agent_index(name);
        const auto& agent = agents.at(name);
        const auto outputs = translate_all(valid, plan.eval_batch_size, [&](const std::vector<int64_t>& rows) {
          std::vector<std::string> inputs;
          for (const auto r : rows) inputs.push_back(valid.sources[i][static_cast<size_t>(r)]);
          return agent.generate_text(inputs, greedy);
        });
        const double b = corpus_bleu(outputs, valid.targets);
        scores[name] = b;
        if (b > best_bleu) best_bleu = b, best = name;  // ties: the earlier agent
      }
      const auto& chosen = systems[agent_index(best)];
      s.description = "the agent with the best validation BLEU among " + joined(m.agents) + " on " +
                      std::to_string(valid.size()) + " " + plan.valid_split + " captions: '" + best + "'";
      s.source = chosen.source;
      s.outputs = chosen.outputs;
      s.cost = chosen.cost;  // at test time only the chosen agent runs
      s.details["agents"] = m.agents;
      s.details["chosen"] = best;
      s.details["valid_split"] = plan.valid_split;
      s.details["valid_examples"] = valid.size();
      s.details["valid_bleu"] = scores;
      s.details["selection_seconds"] = since(start);
    }
    say("mechanism " + m.name + " (" + m.kind + "): " + std::to_string(since(start)) + " s");
    systems.push_back(std::move(s));
  }
  if (!plan.mechanisms.empty()) phases["mechanisms"] = {{"seconds", since(mechanisms_start)}};

  // 5. The report: BLEU and chrF with bootstrap intervals, paired tests of the team against each agent.
  const eval::BleuScorer bleu;
  const eval::ChrfScorer chrf;
  eval::BootstrapParams bootstrap;
  bootstrap.resamples = static_cast<int>(plan.bootstrap_resamples);
  bootstrap.seed = 12345 + plan.seed;
  const std::vector<std::vector<std::string>> references = {test_split.targets};
  const std::string bleu_metric = "bleu_" + plan.test_split, chrf_metric = "chrf_" + plan.test_split;
  std::map<std::string, std::map<std::string, eval::SegmentStatistics>> statistics;
  nlohmann::json report_systems = nlohmann::json::array();
  std::string transcripts;
  for (const auto& s : systems) {
    statistics[s.name][bleu_metric] = bleu.segment_statistics(s.outputs, references);
    statistics[s.name][chrf_metric] = chrf.segment_statistics(s.outputs, references);
    nlohmann::json metrics = nlohmann::json::object();
    for (const auto& [metric, score] : std::vector<std::pair<std::string, eval::ScoreFromTotals>>{
             {bleu_metric, bleu.score_function()}, {chrf_metric, chrf.score_function()}}) {
      const auto ci = eval::bootstrap_confidence_interval(statistics[s.name][metric], score, bootstrap);
      metrics[metric] = {{"value", ci.score},
                         {"ci95", {ci.low, ci.high}},
                         {"ci_half_width", ci.half_width},
                         {"n", test_split.size()}};
    }
    std::vector<eval::PredicateOutcome> outcomes;
    if (const auto predicate = plan.completion.find(plan.test_split); predicate != plan.completion.end()) {
      std::vector<std::vector<std::string>> targets;
      for (const auto& t : test_split.targets) targets.push_back({t});
      auto completion = score_task_completion(predicate->second, s.outputs, targets, bootstrap);
      metrics[completion_metric(plan.test_split)] = completion.metric;
      outcomes = std::move(completion.outcomes);
    }
    report_systems.push_back({{"name", s.name},
                              {"description", s.description},
                              {"metrics", metrics},
                              {"cost", collab::to_json(s.cost.per_example(static_cast<double>(test_split.size())))}});
    if (s.mechanism) {
      auto details = s.details;
      if (!s.winners.empty()) {
        size_t changed = 0;  // rows where the winner is not the first candidate
        for (const auto w : s.winners) changed += w != 0 ? 1 : 0;
        details["rows_won_by_other_than_first_candidate"] = changed;
      }
      report_systems.back()["mechanism"] = details;
    }
    for (int64_t r = 0; r < std::min<int64_t>(plan.transcript_examples, static_cast<int64_t>(test_split.size())); ++r) {
      const auto row = static_cast<size_t>(r);
      nlohmann::json line = {{"system", s.name}, {"set", plan.test_split}};
      nlohmann::json inputs = nlohmann::json::object();
      for (size_t a = 0; a < plan.agents.size(); ++a) inputs[plan.agents[a].language] = test_split.sources[a][row];
      line["input"] = s.source < 0 ? inputs.dump() : test_split.sources[static_cast<size_t>(s.source)][row];
      line["target"] = test_split.targets[row];
      line["output"] = s.outputs[row];
      if (!s.candidates.empty()) {
        line["candidates"] = s.candidates[row];
        line["winner"] = s.winners[row];
        line["winner_from"] = s.candidates[row][s.winners[row]]["from"];
      } else if (s.mechanism && s.details.contains("chosen")) {
        line["chosen_agent"] = s.details["chosen"];
      }
      if (!outcomes.empty()) {
        line["completed"] = outcomes[row].success;
        if (!outcomes[row].success) line["completion_failure"] = outcomes[row].reason;
      }
      transcripts += line.dump() + "\n";
    }
  }
  // Every system that is not a single agent (the team, each mechanism) against each single agent.
  nlohmann::json comparisons = nlohmann::json::array();
  for (size_t j = plan.agents.size(); j < systems.size(); ++j) {
    for (size_t i = 0; i < plan.agents.size(); ++i) {
      for (const auto& [metric, score] : std::vector<std::pair<std::string, eval::ScoreFromTotals>>{
               {bleu_metric, bleu.score_function()}, {chrf_metric, chrf.score_function()}}) {
        if (systems[j].outputs == systems[i].outputs) {
          // The same outputs (e.g. the best single agent is this agent): every resample differs by
          // exactly zero, and the bootstrap's p floor would read as a significant difference.
          comparisons.push_back({{"system", systems[j].name},
                                 {"baseline", systems[i].name},
                                 {"metric", metric},
                                 {"difference", 0.0},
                                 {"p_value", 1.0},
                                 {"test", "identical outputs"}});
          continue;
        }
        const auto test = eval::paired_bootstrap_test(statistics[systems[i].name][metric],
                                                      statistics[systems[j].name][metric], score, bootstrap);
        comparisons.push_back({{"system", systems[j].name},
                               {"baseline", systems[i].name},
                               {"metric", metric},
                               {"difference", test.system_score - test.baseline_score},
                               {"p_value", test.p_value},
                               {"test", "paired bootstrap"}});
      }
    }
  }
  phases["total"] = {{"seconds", since(total_start)}};
  nlohmann::json languages = nlohmann::json::object();
  for (const auto& a : plan.agents) languages[a.name] = a.language;
  nlohmann::json report = {
      {"experiment", "multisource_mt"},
      {"seed", plan.seed},
      {"config_hash", provenance.config_hash},
      {"versions", {{"chorus", provenance.chorus_version}, {"libtorch", provenance.libtorch_version},
                    {"cuda_kernels", provenance.cuda_kernels}}},
      {"data", {{"folder", plan.data_folder.string()},
                {"target", plan.target_language},
                {"agents_read", languages},
                {"train_rows", kept.size()},
                {"train_rows_over_max_length", dropped},
                {"test_split", plan.test_split}}},
      {"metric_definitions",
       {{bleu_metric, "corpus BLEU on " + plan.test_split + ", " + bleu.signature(1)},
        {chrf_metric, "corpus chrF on " + plan.test_split + ", " + chrf.signature(1)}}},
      {"cost_definition",
       "mean per test sentence; agent_calls counts translations and encodings, tokens as each agent "
       "tokenizes them, flops estimated from the models' shapes (collab/cost.h; the team adds the other "
       "agents' encoders and the head; a mechanism adds every call it makes: MBR all its agents' translations, "
       "self-consistency its N samples, the best single agent only the chosen agent at test time, its "
       "validation decoding recorded apart, the learned selector its agents' translations and its own FLOPs, "
       "its training recorded apart), seconds is wall time of batched decoding on this machine"},
      {"systems", report_systems},
      {"comparisons", comparisons},
      {"phases", phases},
      {"threads", at::get_num_threads()}};
  for (const auto& [set, spec] : plan.completion)
    report["metric_definitions"][completion_metric(set)] = "task completion on " + set + ": " + eval::describe(spec);
  write_file_atomically(run.folder / "transcripts.jsonl", transcripts);
  const auto report_path = run.folder / "report.json";
  write_file_atomically(report_path, report.dump(2) + "\n");

  if (!run.quiet) {
    char line[256];
    std::snprintf(line, sizeof line, "\n%-20s %22s %22s\n", "system", bleu_metric.c_str(), chrf_metric.c_str());
    std::cerr << line;
    for (const auto& s : report_systems) {
      const auto& m = s["metrics"];
      std::snprintf(line, sizeof line, "%-34s %8.2f [%5.2f,%5.2f] %8.2f [%5.2f,%5.2f]\n",
                    s["name"].get<std::string>().c_str(), m[bleu_metric]["value"].get<double>(),
                    m[bleu_metric]["ci95"][0].get<double>(), m[bleu_metric]["ci95"][1].get<double>(),
                    m[chrf_metric]["value"].get<double>(), m[chrf_metric]["ci95"][0].get<double>(),
                    m[chrf_metric]["ci95"][1].get<double>());
      std::cerr << line;
    }
    if (const auto predicate = plan.completion.find(plan.test_split); predicate != plan.completion.end()) {
      const auto metric = completion_metric(plan.test_split);
      std::cerr << "\ntask completion on " << plan.test_split << " (" << eval::describe(predicate->second) << ")\n";
      for (const auto& s : report_systems) {
        const auto& m = s["metrics"][metric];
        std::snprintf(line, sizeof line, "%-34s %8.3f [%5.3f,%5.3f]\n", s["name"].get<std::string>().c_str(),
                      m["value"].get<double>(), m["ci95"][0].get<double>(), m["ci95"][1].get<double>());
        std::cerr << line;
      }
    }
    std::snprintf(line, sizeof line, "total %.1f s\n", since(total_start));
    std::cerr << line;
  }
  return report_path;
}

}  // namespace chorus::train
