// The multi-source translation experiment end to end on a tiny synthetic three-language corpus:
// agents pretrained and cached, the head trained, report.json and transcripts written; a head at
// its zero-initialised gate leaves the anchor's translations unchanged; config mistakes fail first.
#include <gtest/gtest.h>
#include <gmock/gmock.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "collab/agent.h"
#include "collab/voting.h"
#include "common/config.h"
#include "common/error.h"
#include "eval/metrics/chrf.h"
#include "train/multisource_mt.h"
#include "train/run_folder.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Each language spells the same twelve concepts its own way; German is the target.
const std::vector<std::map<std::string, std::string>> kLexicon = {
    {{"en", "red"}, {"fr", "rouge"}, {"de", "rot"}},       {{"en", "green"}, {"fr", "vert"}, {"de", "grün"}},
    {{"en", "blue"}, {"fr", "bleu"}, {"de", "blau"}},      {{"en", "dog"}, {"fr", "chien"}, {"de", "Hund"}},
    {{"en", "cat"}, {"fr", "chat"}, {"de", "Katze"}},      {{"en", "bird"}, {"fr", "oiseau"}, {"de", "Vogel"}},
    {{"en", "runs"}, {"fr", "court"}, {"de", "läuft"}},    {{"en", "sleeps"}, {"fr", "dort"}, {"de", "schläft"}},
    {{"en", "small"}, {"fr", "petit"}, {"de", "klein"}},   {{"en", "big"}, {"fr", "grand"}, {"de", "groß"}},
    {{"en", "the"}, {"fr", "le"}, {"de", "der"}},          {{"en", "a"}, {"fr", "un"}, {"de", "ein"}}};

std::string agent_config(const std::string& source) {
  return "name: tiny_" + source + "_de\nseed: 3\n"
         "data:\n  format: text\n"
         "  train: {source: data/train." + source + ", target: data/train.de}\n"
         "  valid: {source: data/val." + source + ", target: data/val.de}\n"
         "  max_length: 16\n"
         "tokenizer: {type: unigram, vocab_size: 80}\n"
         "agent:\n  model: {d_model: 32, layers: 1, heads: 2, d_kv: 16, d_ff: 64}\n"
         "  train: {steps: 30, learning_rate: 0.01, warmup_steps: 3, max_tokens: 256, log_every: 5, checkpoint_every: 30}\n"
         "  eval_examples: 8\n  eval_max_new_tokens: 10\n";
}

const char* kExperiment = R"(experiment: multisource_mt
seed: 1
threads: 1
parallel: false
cache_dir: cache
data: {folder: data, target: de, train: train, valid: val, test: test, max_length: 16}
agents:
  en_de: {source: en, config: en_de.yaml, role: anchor}
  fr_de: {source: fr, config: fr_de.yaml}
team:
  anchor: en_de
  augmenting: [fr_de]
  query_layer: 1
  inject_layer: 1
  heads: 2
  head_dim: 8
  train: {steps: 20, batch_size: 16, learning_rate: 0.01, warmup_steps: 2, eval_every: 10, checkpoint_every: 10, log_every: 2}
  valid_examples: 8
evaluation: {test_examples: 12, batch_size: 5, max_new_tokens: 10, bootstrap_resamples: 50, transcript_examples: 3}
)";

class MultiSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("chorus-multisource-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    std::mt19937 rng(11);
    for (const auto& [split, rows] : std::vector<std::pair<std::string, int>>{{"train", 300}, {"val", 20}, {"test", 20}}) {
      std::map<std::string, std::ofstream> out;
      for (const char* language : {"en", "fr", "de"}) out[language].open(dir_ / "data" / (split + "." + language));
      for (int i = 0; i < rows; ++i) {
        const int n = 2 + static_cast<int>(rng() % 4);
        std::vector<size_t> words;
        for (int k = 0; k < n; ++k) words.push_back(rng() % kLexicon.size());
        for (auto& [language, stream] : out) {
          for (size_t k = 0; k < words.size(); ++k) stream << (k ? " " : "") << kLexicon[words[k]].at(language);
          stream << "\n";
        }
      }
    }
    std::ofstream(dir_ / "en_de.yaml") << agent_config("en");
    std::ofstream(dir_ / "fr_de.yaml") << agent_config("fr");
    std::ofstream(dir_ / "experiment.yaml") << kExperiment;
    torch::set_num_threads(1);
  }
  void TearDown() override { fs::remove_all(dir_); }

  nlohmann::json read_json(const fs::path& file) {
    std::ifstream in(file);
    return nlohmann::json::parse(in);
  }

  fs::path dir_;
};

TEST_F(MultiSourceTest, RunsEndToEndAndReusesCachedAgents) {
  ExperimentRun run;
  run.folder = dir_ / "run";
  run.quiet = true;
  const auto report_path = run_multisource_mt_experiment(Config::load(dir_ / "experiment.yaml"), run);
  ASSERT_EQ(report_path, run.folder / "report.json");
  const auto report = read_json(report_path);
  EXPECT_EQ(report["experiment"], "multisource_mt");
  ASSERT_EQ(report["systems"].size(), 3u);
  const std::vector<std::string> names = {"agent-en_de", "agent-fr_de", "team-fusion"};
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& system = report["systems"][i];
    EXPECT_EQ(system["name"], names[i]);
    for (const char* metric : {"bleu_test", "chrf_test"}) {
      const auto& m = system["metrics"][metric];
      const double value = m["value"];
      EXPECT_GE(value, 0.0) << names[i] << " " << metric;
      EXPECT_LE(value, 100.0) << names[i] << " " << metric;
      EXPECT_LE(m["ci95"][0].get<double>(), value + 1e-9);
      EXPECT_GE(m["ci95"][1].get<double>(), value - 1e-9);
      EXPECT_EQ(m["n"], 12);
    }
  }
  // The team runs the anchor and the other agent's encoder: it costs more than the anchor alone.
  EXPECT_GT(report["systems"][2]["cost"]["flops"].get<double>(), report["systems"][0]["cost"]["flops"].get<double>());
  EXPECT_EQ(report["systems"][2]["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_EQ(report["comparisons"].size(), 4u);  // team vs each agent, BLEU and chrF
  EXPECT_FALSE(report["phases"]["pretrain_en_de"]["cached"].get<bool>());
  EXPECT_EQ(report["phases"]["team_fusion"]["steps"], 20);
  EXPECT_EQ(report["data"]["agents_read"]["fr_de"], "fr");
  // Provenance: the hash of the saved config.yaml, and the versions.
  std::ifstream saved(run.folder / "config.yaml", std::ios::binary);
  const std::string yaml((std::istreambuf_iterator<char>(saved)), std::istreambuf_iterator<char>());
  EXPECT_EQ(report["config_hash"], run_provenance(yaml).config_hash);
  EXPECT_EQ(report["config_hash"].get<std::string>().size(), 16u);
  EXPECT_EQ(report["versions"]["libtorch"], "2.11.0");

  // The head learned: its training loss went down.
  std::ifstream metrics(run.folder / "teams" / "fusion" / "metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
  }
  ASSERT_GE(losses.size(), 4u);
  EXPECT_LT(losses.back(), losses.front());

  std::ifstream transcripts(run.folder / "transcripts.jsonl");
  int lines = 0;
  for (std::string line; std::getline(transcripts, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("input") && j.contains("output") && j.contains("target"));
  }
  EXPECT_EQ(lines, 9);
  EXPECT_TRUE(fs::is_regular_file(run.folder / "agents" / "fr_de.yaml"));

  // A second run takes both agents from the cache.
  run.folder = dir_ / "run2";
  const auto second = read_json(run_multisource_mt_experiment(Config::load(dir_ / "experiment.yaml"), run));
  EXPECT_TRUE(second["phases"]["pretrain_en_de"]["cached"].get<bool>());
  EXPECT_TRUE(second["phases"]["pretrain_fr_de"]["cached"].get<bool>());
  EXPECT_EQ(second["systems"][0]["metrics"]["bleu_test"]["value"], report["systems"][0]["metrics"]["bleu_test"]["value"]);
  EXPECT_EQ(second["config_hash"], report["config_hash"]);  // the same resolved config
}

TEST_F(MultiSourceTest, AHeadAtItsZeroGateLeavesTheAnchorUnchanged) {
  ExperimentRun run;
  run.folder = dir_ / "run";
  run.quiet = true;
  // Pretrain the agents through a run with no head steps to speak of, then load them.
  run_multisource_mt_experiment(Config::load(dir_ / "experiment.yaml", {"team.train.steps=1"}), run);
  const auto report = read_json(run.folder / "report.json");
  const auto anchor = collab::load_agent("en_de", report["phases"]["pretrain_en_de"]["folder"].get<std::string>());
  const auto other = collab::load_agent("fr_de", report["phases"]["pretrain_fr_de"]["folder"].get<std::string>());
  MultiSourceFusion spec;
  spec.fusion.value_source = collab::ValueSource::hidden;
  spec.fusion.heads = 2;
  spec.fusion.head_dim = 8;
  spec.query_layer = 1;
  spec.inject_layer = 1;
  MultiSourceTeam team(spec, anchor, {&other});
  const std::vector<std::string> en = {"the red dog runs", "a small cat sleeps"};
  const std::vector<std::string> fr = {"le rouge chien court", "un petit chat dort"};
  model::GenerationOptions greedy;
  greedy.max_new_tokens = 10;
  EXPECT_EQ(team.translate({en, fr}, 10), anchor.generate_text(en, greedy));
  // The loss has a gradient on the head only.
  auto loss = team.loss({en, fr}, {"der rot Hund läuft", "ein klein Katze schläft"});
  loss.backward();
  int64_t with_grad = 0;
  for (const auto& p : team.head()->parameters()) with_grad += p.grad().defined() ? 1 : 0;
  EXPECT_GT(with_grad, 0);
  for (const auto& p : anchor.model->parameters()) EXPECT_FALSE(p.grad().defined());
  // A wrong number of source lists is an error naming what was expected.
  try {
    team.translate({en}, 10);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("expected 2 source lists"));
  }
}

TEST_F(MultiSourceTest, ConfigMistakesFailBeforeAnyWork) {
  ExperimentRun run;
  run.folder = dir_ / "run";
  run.quiet = true;
  auto fails_with = [&](const std::vector<std::string>& overrides, const std::string& text) {
    try {
      run_multisource_mt_experiment(Config::load(dir_ / "experiment.yaml", overrides), run);
      ADD_FAILURE() << "expected an error containing '" << text << "'";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(text));
    }
    EXPECT_FALSE(fs::exists(run.folder)) << "the run folder was created before the error";
  };
  fails_with({"team.augmenting=[es_de]"}, "which agents{} does not define (defined: en_de, fr_de)");
  fails_with({"data.test=test_2017"}, "has no test_2017.en[.gz]");
  fails_with({"agents.fr_de.source=de"}, "the target language itself");
  fails_with({"team.inject_layer=4"}, "beyond the anchor's 1 encoder layers");
  fails_with({"team.residual=replace"}, "team.residual");
  fails_with({"agents.fr_de.overrides=[agent.train.stesp=3]"}, "did you mean 'agent.train.steps'");
  fails_with({"team.heds=2"}, "did you mean 'team.heads'");
  // Mechanisms: each mistake names its key.
  fails_with({"evaluation.mechanisms={sc: {kind: self_consistency, agent: es_de}}"}, "evaluation.mechanisms.sc.agent");
  fails_with({"evaluation.mechanisms={sc: {kind: self_consistency, agent: es_de}}"}, "no agent 'es_de'");
  fails_with({"evaluation.mechanisms={sc: {kind: self_consistency, samples: 1}}"}, "evaluation.mechanisms.sc.samples");
  fails_with({"evaluation.mechanisms={m: {kind: debate}}"}, "evaluation.mechanisms.m.kind");
  fails_with({"evaluation.mechanisms={m: {agents: [en_de, fr_de]}}"}, "evaluation.mechanisms.m.kind");
  fails_with({"evaluation.mechanisms={mbr: {agents: [en_de]}}"}, "expected at least two agents");
  fails_with({"evaluation.mechanisms={mbr: {agents: [en_de, es_de]}}"}, "evaluation.mechanisms.mbr.agents");
  fails_with({"evaluation.mechanisms={mbr: {kind: mbr, samples: 3}}"}, "evaluation.mechanisms.mbr.samples");
  fails_with({"evaluation.mechanisms={v: {kind: vote, rule: mbr}}"}, "evaluation.mechanisms.v.rule");
  fails_with({"evaluation.mechanisms={v: {kind: vote, score: max}}"}, "evaluation.mechanisms.v.score");
  fails_with({"evaluation.mechanisms={vote: {agents: [en_de]}}"}, "expected at least two agents");
  // The learned selector: its graph block, its training block, its agents.
  const std::string graph = "graph: {dim: 8, heads: 2, adjacency: {en_de: [en_de, fr_de], fr_de: [en_de, fr_de]}}";
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select}}"},
             "evaluation.mechanisms.gs.graph: a mechanism of kind graph_select needs a graph block");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, agents: [en_de], " + graph + "}}"},
             "evaluation.mechanisms.gs.agents: expected at least two agents");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, graph: {dim: 8, adjacency: {en_de: [es_de]}}}}"},
             "evaluation.mechanisms.gs.graph.adjacency.en_de[0]: unknown node 'es_de' (nodes: en_de, fr_de)");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, graph: {dim: 8, adjacency: [[1, 1]]}}}"},
             "evaluation.mechanisms.gs.graph.adjacency: expected 2 rows (one per node), got 1");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, graph: {dim: 8, hops: 2, adjacency: {en_de: [en_de]}}}}"},
             "evaluation.mechanisms.gs.graph.hops: unknown key (expected one of adjacency, dim, head_dim, heads, seed, steps)");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, graph: {dim: 9, heads: 2, adjacency: {en_de: [en_de]}}}}"},
             "evaluation.mechanisms.gs.graph.heads: dim 9 is not divisible by heads 2; give head_dim");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, " + graph + ", train: {stesp: 3}}}"},
             "did you mean 'evaluation.mechanisms.gs.train.steps'");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, " + graph + ", train: {examples: 0}}}"},
             "evaluation.mechanisms.gs.train.examples");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, " + graph + ", train: {split: test}}}"},
             "evaluation.mechanisms.gs.train.split");
  fails_with({"evaluation.mechanisms={gs: {kind: graph_select, " + graph + ", samples: 3}}"},
             "evaluation.mechanisms.gs.samples");
}

// MBR over the agents, self-consistency, the best single agent, the vote and the learned selector
// are systems beside the agents and the team, with their costs, paired tests and transcripts
// (candidates and the winner).
TEST_F(MultiSourceTest, MechanismsWithoutTrainingAreSystemsWithCostsAndTranscripts) {
  ExperimentRun run;
  run.folder = dir_ / "run";
  run.quiet = true;
  // The selectors: gs asks for more captions than the 20 of the validation split, so it trains on
  // training captions; gs_valid on 15 validation captions.
  const std::string graph = "graph: {dim: 8, heads: 2, steps: 2, seed: 0, adjacency: {en_de: [en_de, fr_de], "
                            "fr_de: [en_de, fr_de]}}";
  const auto report = read_json(run_multisource_mt_experiment(
      Config::load(dir_ / "experiment.yaml",
                   {"team.train.steps=1",
                    "evaluation.mechanisms={mbr: {}, sc: {kind: self_consistency, agent: fr_de, samples: 3, "
                    "temperature: 1.0, top_k: 5, seed: 4}, best_single_agent: {valid_examples: 10}, "
                    "vote: {rule: log_prob, score: mean}, gs: {kind: graph_select, agents: [en_de, fr_de], " +
                        graph + ", train: {examples: 40, steps: 30, batch_size: 8, learning_rate: 0.01, seed: 0}}, "
                        "gs_valid: {kind: graph_select, " + graph + ", train: {examples: 15, steps: 5}}}"}),
      run));
  const std::vector<std::string> names = {"agent-en_de",         "agent-fr_de",   "team-fusion",
                                          "mechanism-mbr",       "mechanism-sc",  "mechanism-best_single_agent",
                                          "mechanism-vote",      "mechanism-gs",  "mechanism-gs_valid"};
  ASSERT_EQ(report["systems"].size(), names.size());
  std::map<std::string, nlohmann::json> by_name;
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& system = report["systems"][i];
    EXPECT_EQ(system["name"], names[i]);
    by_name[names[i]] = system;
    for (const char* metric : {"bleu_test", "chrf_test"}) {
      const double value = system["metrics"][metric]["value"];
      EXPECT_GE(value, 0.0);
      EXPECT_LE(value, 100.0);
    }
  }
  const auto& mbr = by_name["mechanism-mbr"];
  const auto& sc = by_name["mechanism-sc"];
  const auto& best = by_name["mechanism-best_single_agent"];
  EXPECT_EQ(mbr["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_NEAR(mbr["cost"]["flops"].get<double>(),
              by_name["agent-en_de"]["cost"]["flops"].get<double>() + by_name["agent-fr_de"]["cost"]["flops"].get<double>(),
              1e-6 * mbr["cost"]["flops"].get<double>());
  EXPECT_EQ(sc["cost"]["agent_calls"].get<double>(), 3.0);
  EXPECT_EQ(sc["cost"]["tokens_in"].get<double>(), 3.0 * by_name["agent-fr_de"]["cost"]["tokens_in"].get<double>());
  EXPECT_EQ(sc["mechanism"]["samples"], 3);
  EXPECT_EQ(sc["mechanism"]["agent"], "fr_de");
  // The best single agent is the one with the higher validation BLEU, and is that agent on the test set.
  const auto& valid_bleu = best["mechanism"]["valid_bleu"];
  const std::string chosen = best["mechanism"]["chosen"];
  EXPECT_EQ(chosen, valid_bleu["en_de"].get<double>() >= valid_bleu["fr_de"].get<double>() ? "en_de" : "fr_de");
  EXPECT_EQ(best["mechanism"]["valid_examples"], 10);
  EXPECT_EQ(best["metrics"]["bleu_test"]["value"], by_name["agent-" + chosen]["metrics"]["bleu_test"]["value"]);
  EXPECT_EQ(best["cost"]["agent_calls"].get<double>(), 1.0);
  // The vote: both agents translate every row; every row is decided for one of them.
  const auto& vote = by_name["mechanism-vote"];
  EXPECT_EQ(vote["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_EQ(vote["mechanism"]["rule"], "log_prob");
  EXPECT_EQ(vote["mechanism"]["score"], "mean");
  EXPECT_EQ(vote["mechanism"]["chosen"]["en_de"].get<int64_t>() + vote["mechanism"]["chosen"]["fr_de"].get<int64_t>(),
            vote["metrics"]["bleu_test"]["n"].get<int64_t>());
  // The learned selector: both agents translate every row (their own translations), the selector
  // adds its FLOPs, and every row is decided for one agent.
  const auto& gs = by_name["mechanism-gs"];
  const auto& selected = gs["mechanism"];
  const double n = gs["metrics"]["bleu_test"]["n"].get<double>();
  EXPECT_EQ(gs["cost"]["agent_calls"].get<double>(), 2.0);
  EXPECT_GT(selected["flops_per_decision"].get<double>(), 0.0);
  EXPECT_NEAR(gs["cost"]["flops"].get<double>(),
              by_name["agent-en_de"]["cost"]["flops"].get<double>() + by_name["agent-fr_de"]["cost"]["flops"].get<double>() +
                  selected["flops_per_decision"].get<double>(),
              1e-6 * gs["cost"]["flops"].get<double>());
  EXPECT_EQ(selected["candidates_differing_from_agents_outputs"], 0);
  EXPECT_EQ(selected["chosen"]["en_de"].get<double>() + selected["chosen"]["fr_de"].get<double>(), n);
  EXPECT_EQ(selected["oracle_chosen"]["en_de"].get<double>() + selected["oracle_chosen"]["fr_de"].get<double>(), n);
  EXPECT_GE(selected["mean_p_chosen"].get<double>(), 0.5);  // the argmax of two
  EXPECT_LE(selected["mean_p_chosen"].get<double>(), 1.0);
  EXPECT_GE(selected["oracle_bleu"].get<double>(), 0.0);
  EXPECT_LE(selected["oracle_bleu"].get<double>(), 100.0);
  EXPECT_LE(selected["agrees_with_oracle"]["agreeing"].get<int64_t>(), selected["agrees_with_oracle"]["captions"].get<int64_t>());
  const auto& training = selected["training"];
  EXPECT_EQ(training["split"], "train");  // the validation split has 20 captions, 40 were asked for
  EXPECT_THAT(training["why"].get<std::string>(), HasSubstr("fewer than train.examples = 40"));
  EXPECT_EQ(training["captions"], 40);
  EXPECT_EQ(training["trained_on"].get<int64_t>() + training["identical_translations_skipped"].get<int64_t>(), 40);
  EXPECT_EQ(training["better"]["en_de"].get<int64_t>() + training["better"]["fr_de"].get<int64_t>() +
                training["ties"].get<int64_t>(),
            training["trained_on"].get<int64_t>());
  EXPECT_EQ(training["steps"], 30);
  EXPECT_GE(training["train_seconds"].get<double>(), 0.0);
  EXPECT_EQ(selected["graph"]["adjacency"]["fr_de"], nlohmann::json({"en_de", "fr_de"}));
  const auto& gs_valid = by_name["mechanism-gs_valid"]["mechanism"];
  EXPECT_EQ(gs_valid["training"]["split"], "val");
  EXPECT_EQ(gs_valid["training"]["captions"], 15);
  EXPECT_EQ(gs_valid["agents"], nlohmann::json({"en_de", "fr_de"}));  // all by default
  // Every non-agent system against each agent, BLEU and chrF.
  EXPECT_EQ(report["comparisons"].size(), 7u * 2u * 2u);
  // The best single agent against the agent it chose: the same outputs, reported as such (p = 1).
  size_t identical = 0;
  for (const auto& c : report["comparisons"]) {
    if (c["system"] != "mechanism-best_single_agent" || c["baseline"] != "agent-" + chosen) continue;
    EXPECT_EQ(c["test"], "identical outputs");
    EXPECT_EQ(c["p_value"].get<double>(), 1.0);
    EXPECT_EQ(c["difference"].get<double>(), 0.0);
    ++identical;
  }
  EXPECT_EQ(identical, 2u);

  // Transcripts: the voting mechanisms carry their candidates and the MBR winner under sentence chrF.
  const eval::ChrfScorer chrf;
  std::ifstream transcripts(run.folder / "transcripts.jsonl");
  std::map<std::string, int> lines;
  std::map<std::string, std::vector<std::string>> outputs;  // per system, its transcript rows' outputs
  for (std::string text; std::getline(transcripts, text);) {
    const auto line = nlohmann::json::parse(text);
    const std::string system = line["system"];
    ++lines[system];
    outputs[system].push_back(line["output"]);
    if (system == "mechanism-gs") {
      // Each candidate is its agent's own translation of the row with the selector's probability;
      // the output is the more probable one (ties: the first).
      const auto& candidates = line["candidates"];
      ASSERT_EQ(candidates.size(), 2u);
      const size_t row = outputs[system].size() - 1;
      EXPECT_EQ(candidates[0]["from"], "en_de");
      EXPECT_EQ(candidates[1]["from"], "fr_de");
      EXPECT_EQ(candidates[0]["text"], outputs["agent-en_de"].at(row));
      EXPECT_EQ(candidates[1]["text"], outputs["agent-fr_de"].at(row));
      const double p0 = candidates[0]["p"], p1 = candidates[1]["p"];
      EXPECT_NEAR(p0 + p1, 1.0, 1e-6);
      const size_t expected = p0 >= p1 ? 0 : 1;
      EXPECT_EQ(line["winner"].get<size_t>(), expected) << text;
      EXPECT_EQ(line["winner_from"], candidates[expected]["from"]);
      EXPECT_EQ(line["output"], candidates[expected]["text"]);
      continue;
    }
    if (system == "mechanism-vote") {
      // Each candidate is its agent's greedy translation with what the search scored it; the one
      // with the larger mean token log-probability wins (texts equal after normalisation form one
      // group, answered by its first member).
      const auto& candidates = line["candidates"];
      ASSERT_EQ(candidates.size(), 2u);
      EXPECT_EQ(candidates[0]["from"], "en_de");
      EXPECT_EQ(candidates[1]["from"], "fr_de");
      std::vector<double> mean;
      for (const auto& c : candidates) {
        EXPECT_LE(c["log_prob"].get<double>(), 0.0);
        EXPECT_GE(c["tokens"].get<int64_t>(), 1);
        mean.push_back(c["log_prob"].get<double>() / c["tokens"].get<double>());
      }
      const auto a = collab::normalise_answer(candidates[0]["text"].get<std::string>());
      const auto b = collab::normalise_answer(candidates[1]["text"].get<std::string>());
      const size_t expected = a == b || mean[0] >= mean[1] ? 0 : 1;
      EXPECT_EQ(line["winner"].get<size_t>(), expected) << text;
      EXPECT_EQ(line["output"], candidates[expected]["text"]);
      continue;
    }
    if (system != "mechanism-mbr" && system != "mechanism-sc") continue;
    const auto& candidates = line["candidates"];
    ASSERT_EQ(candidates.size(), system == "mechanism-mbr" ? 2u : 3u);
    const size_t winner = line["winner"];
    ASSERT_LT(winner, candidates.size());
    EXPECT_EQ(line["output"], candidates[winner]["text"]);
    EXPECT_EQ(line["winner_from"], candidates[winner]["from"]);
    std::vector<double> expected(candidates.size(), 0.0);
    for (size_t i = 0; i < candidates.size(); ++i) {
      for (size_t j = 0; j < candidates.size(); ++j) {
        if (i != j) expected[i] += chrf.sentence_score(candidates[i]["text"], {candidates[j]["text"]}).score;
      }
    }
    // vote() groups candidates by their normalised text and returns the first of the best group.
    double group_best = 0;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (collab::normalise_answer(candidates[i]["text"].get<std::string>()) ==
          collab::normalise_answer(candidates[winner]["text"].get<std::string>())) {
        group_best = std::max(group_best, expected[i]);
      }
    }
    EXPECT_GE(group_best + 1e-9, *std::max_element(expected.begin(), expected.end())) << text;
    if (system == "mechanism-mbr") {
      EXPECT_EQ(candidates[0]["from"], "en_de");
      EXPECT_EQ(candidates[1]["from"], "fr_de");
    }
  }
  EXPECT_EQ(lines.size(), names.size());
  for (const auto& name : names) EXPECT_EQ(lines[name], 3) << name;
}

}  // namespace
}  // namespace chorus::train
