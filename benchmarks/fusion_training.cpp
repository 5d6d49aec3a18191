// Fusion-head training throughput: optimizer steps per second of the quickstart's two teams
// (`fusion`, `calm`) in Chorus, against the same head written in Python PyTorch over the same
// frozen Hugging Face models, in the same run, with the same thread count.
//
// The two agents (`kv`, `math`) get the quickstart's sizes (experiments/quickstart.yaml) and a
// fresh T5 initialisation with their fixed seeds (model::make_untrained_t5): nothing is trained.
// Throughput does not depend on what the weights learnt, only on how much work a step does; the
// one data-dependent part, the length of the augmenting agent's greedy answer, is made equal on
// both sides by giving both the very same weights and batches, rather than by forcing a length:
// the agents are saved as Hugging Face folders (config.json + model.safetensors), and the head's
// initial parameters and every batch's token ids (input_ids, attention_mask, labels) go into one
// safetensors file per team, with the head's settings in a JSON file beside it.
//
// One step = TeamTrainingProblem::loss(step, 0) (the augmenting agent decodes its answer
// greedily, a teacher-forced pass gives its logits and decoder states, the anchor's encoder runs
// without grad for the queries when query_layer != inject_layer and with the head injected, then
// the anchor's decoder is teacher-forced and the mean token cross-entropy is taken), backward,
// the trainer's gradient-norm clip, an AdamW step and zero_grad. The learning rate is the team's
// peak rate held constant (no warm-up). benchmarks/fusion_training_reference.py does the same
// with transformers.T5ForConditionalGeneration (generate(), forward hooks) and
// torch.optim.AdamW. Each side runs --warmup untimed steps, then --reps timed ones, on the same
// batch sequence; steps_per_s comes from the median step.
//
// Guard: both sides compute the same function of the same weights and batches, so their losses
// must agree at every step (warm-up included). The head's gate starts at zero, so the first
// step's loss is the anchor's alone; the later steps check the head's whole computation and
// its gradients. A relative difference above 1e-3 at any step fails the Chorus row.
//
//   build/benchmarks/fusion_training [--threads=N] [--reps=N] [--warmup=N] [--config=YAML]
//                                    [--work_dir=DIR] [benchmark flags]
//
// $CHORUS_PYTHON names the Python that has torch and transformers; without it the PyTorch rows
// are skipped and the Chorus rows carry no ratio. libgomp's spinning barriers make
// multi-threaded figures collapse under other load: measure on an otherwise idle machine.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "collab/agent.h"
#include "common/config.h"
#include "common/heap.h"
#include "model/io/safetensors.h"
#include "model/io/weight_map.h"
#include "model/t5/t5_init.h"
#include "tasks/key_value_arithmetic.h"
#include "train/kv_agents.h"
#include "train/kv_team.h"
#include "train/seq2seq_training.h"
#include "train/trainer.h"

namespace {

namespace fs = std::filesystem;
using namespace chorus;

constexpr double kLossTolerance = 1e-3;  // relative, per step

struct Settings {
  int threads = 2;
  int reps = 10;
  int warmup = 2;
  fs::path config;
  fs::path work_dir;
  std::string python;  // empty: no reference
  fs::path script;
};
Settings g_settings;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command, collecting its stdout; false when it fails or prints nothing.
bool run_command(const std::string& command, std::string& output) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::array<char, 4096> buffer;
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  return pclose(pipe) == 0 && !output.empty();
}

std::string to_string(train::StatesSource s) { return s == train::StatesSource::encoder ? "encoder" : "decoder"; }

// One team: its head over the shared frozen agents, and its training problem.
struct Team {
  train::TeamSpec spec;
  std::unique_ptr<train::FusedTeam> team;
  std::unique_ptr<train::TeamTrainingProblem> problem;
};

// The quickstart's world, agents and teams, built once; their files written for the reference.
struct Setup {
  std::string error;
  uint64_t seed = 0;
  std::unique_ptr<tasks::KeyValueArithmetic> world;
  std::map<std::string, collab::Agent> agents;
  std::map<std::string, Team> teams;
};

void save_agent(const model::Seq2SeqModel& model, const nlohmann::json& config, const fs::path& folder) {
  fs::create_directories(folder);
  std::ofstream(folder / "config.json") << config.dump(2) << "\n";
  model::save_safetensors(folder / "model.safetensors", model::model_weights(model), {{"format", "pt"}});
}

nlohmann::json team_json(const Team& t) {
  const auto& f = t.spec.fusion;
  const auto& o = t.spec.trainer.optimizer;
  return {{"anchor", t.spec.anchor},
          {"augmenting", t.spec.augmenting},
          {"value_source", collab::to_string(f.value_source)},
          {"augmenting_states", to_string(t.spec.states)},
          {"heads", f.heads},
          {"head_dim", f.head_dim},
          {"bridge_temperature", f.bridge_temperature},
          {"gate", collab::to_string(f.gate)},
          {"residual", collab::to_string(f.residual)},
          {"null_slot", f.null_slot},
          {"position_bias", f.position_bias},
          {"query_layer", t.spec.query_layer},
          {"inject_layer", t.spec.inject_layer},
          {"batch_size", t.spec.batch_size},
          {"learning_rate", o.learning_rate},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"epsilon", o.epsilon},
          {"weight_decay", o.weight_decay},
          {"clip_norm", t.spec.trainer.clip_norm}};
}

Setup& setup() {
  static Setup s = [] {
    Setup out;
    try {
      const Settings& g = g_settings;
      const auto config = Config::load(g.config);
      const auto root = config.root();
      out.seed = static_cast<uint64_t>(root.get_int("seed", 0, 0));
      out.world = std::make_unique<tasks::KeyValueArithmetic>(tasks::read_key_value_world(root.child_or_empty("world"), out.seed));
      const auto tokenizer = std::make_shared<model::WordLevelTokenizer>(out.world->tokenizer());
      fs::create_directories(g.work_dir);
      nlohmann::json manifest = {{"agents", nlohmann::json::object()}, {"teams", nlohmann::json::object()},
                                 {"warmup", g.warmup}, {"reps", g.reps}};
      const auto agents = root.child("agents");
      for (const auto& name : agents.keys()) {
        auto spec = train::read_kv_agent(agents.child(name), name, out.seed);
        auto shape = spec.shape;
        shape.vocab_size = out.world->tokenizer().vocab_size();
        const auto config_json = model::make_t5_config(shape);
        // The seed the agent's own pretraining starts from (train/kv_agents.cpp).
        auto model = model::make_untrained_t5(config_json, spec.seed * 7919 + 1);
        model->freeze();
        const auto folder = g.work_dir / "agents" / name;
        save_agent(*model, config_json, folder);
        manifest["agents"][name] = folder.string();
        collab::Agent agent;
        agent.name = name;
        agent.role = spec.role;
        agent.model = std::move(model);
        agent.tokenizer = tokenizer;
        out.agents.emplace(name, std::move(agent));
      }
      const auto teams = root.child("teams");
      int64_t index = 0;
      for (const auto& name : teams.keys()) {
        Team& t = out.teams[name];
        t.spec = train::read_team(teams.child(name), name, out.seed);
        // The reference averages the loss over rows: that is fixed weighting with equal task weights.
        bool plain_mean = t.spec.loss_weighting == train::LossWeighting::fixed;
        for (const auto& task : t.spec.tasks) plain_mean = plain_mean && task.weight == t.spec.tasks.front().weight;
        if (!plain_mean) {
          out.error = "team '" + name + "': the PyTorch reference implements fixed, equal task loss weights only";
          return out;
        }
        // The head's initial parameters, seeded as the experiment seeds them (train/kv_experiment.cpp).
        torch::manual_seed(train::stream_seed(out.seed, index++, 0x7EA));
        t.team = std::make_unique<train::FusedTeam>(t.spec, out.agents);
        t.problem = std::make_unique<train::TeamTrainingProblem>(*t.team, t.spec, *out.world, out.seed);
        model::WeightMap tensors;
        for (const auto& [pname, p] : t.problem->parameters()) tensors.insert("head." + pname, p.detach().clone());
        const auto& anchor = out.agents.at(t.spec.anchor);
        for (int64_t step = 0; step < g.warmup + g.reps; ++step) {
          // The rows TeamTrainingProblem::loss(step, 0) trains on.
          const auto rows = t.problem->batch(step, 0);
          const auto batch = anchor.tokenize(rows.inputs, rows.targets);
          const auto prefix = "step." + std::to_string(step) + ".";
          tensors.insert(prefix + "input_ids", batch.input_ids);
          tensors.insert(prefix + "attention_mask", batch.attention_mask);
          tensors.insert(prefix + "labels", batch.labels);
        }
        const auto file = g.work_dir / (name + ".safetensors");
        model::save_safetensors(file, tensors);
        auto entry = team_json(t);
        entry["tensors"] = file.string();
        manifest["teams"][name] = entry;
      }
      std::ofstream(g.work_dir / "manifest.json") << manifest.dump(2) << "\n";
    } catch (const std::exception& e) {
      out.error = std::string("setting up the quickstart's agents and teams failed: ") + e.what();
    }
    return out;
  }();
  return s;
}

struct RunResult {
  std::vector<double> seconds;  // timed steps
  std::vector<double> losses;   // every step, warm-up included
  double steps_per_s() const { return seconds.empty() ? 0.0 : 1.0 / median(seconds); }
};

struct Reference {
  std::string error;
  std::string torch_version, transformers_version;
  std::map<std::string, RunResult> teams;
};

std::unique_ptr<Reference> g_reference;  // filled by the first PyTorch row

// The PyTorch reference's results for every team, running its Python process on first use.
const Reference& reference() {
  if (!g_reference) g_reference = std::make_unique<Reference>([] {
    Reference out;
    const Settings& g = g_settings;
    if (g.python.empty()) {
      out.error = "CHORUS_PYTHON is not set: no PyTorch reference to time";
      return out;
    }
    if (!setup().error.empty()) {
      out.error = setup().error;
      return out;
    }
    const std::string command = quote(g.python) + " " + quote(g.script.string()) + " " +
                                quote((g.work_dir / "manifest.json").string()) + " " + std::to_string(g.threads);
    std::string output;
    if (!run_command(command, output)) {
      out.error = "the PyTorch reference failed: " + command;
      return out;
    }
    try {
      const auto json = nlohmann::json::parse(output);
      out.torch_version = json.at("torch").get<std::string>();
      out.transformers_version = json.at("transformers").get<std::string>();
      for (const auto& [name, value] : json.at("teams").items()) {
        out.teams[name].seconds = value.at("seconds").get<std::vector<double>>();
        out.teams[name].losses = value.at("losses").get<std::vector<double>>();
      }
    } catch (const std::exception& e) {
      out.error = std::string("the PyTorch reference printed unreadable results (") + e.what() + "): " +
                  output.substr(0, 200);
    }
    return out;
  }());
  return *g_reference;
}

// The reference's result for a team when its rows ran (never starts Python).
const RunResult* reference_result(const std::string& name) {
  if (!g_reference || !g_reference->error.empty()) return nullptr;
  const auto found = g_reference->teams.find(name);
  return found == g_reference->teams.end() || found->second.seconds.empty() ? nullptr : &found->second;
}

std::map<std::string, RunResult> g_chorus;  // for the closing table

void set_common_counters(benchmark::State& state, const RunResult& r, int64_t batch) {
  state.counters["steps_per_s"] = r.steps_per_s();
  state.counters["examples_per_s"] = r.steps_per_s() * static_cast<double>(batch);
  state.counters["loss_first"] = r.losses.empty() ? 0.0 : r.losses.front();
  state.counters["loss_last"] = r.losses.empty() ? 0.0 : r.losses.back();
  state.counters["threads"] = g_settings.threads;
}

void BM_PyTorch(benchmark::State& state, const std::string& name) {
  const Reference& ref = reference();
  if (!ref.error.empty()) return state.SkipWithError(ref.error.c_str());
  const auto found = ref.teams.find(name);
  const auto expected_losses = static_cast<size_t>(g_settings.warmup + g_settings.reps);
  if (found == ref.teams.end() || found->second.seconds.size() != static_cast<size_t>(g_settings.reps) ||
      found->second.losses.size() != expected_losses) {
    return state.SkipWithError(("the PyTorch reference returned no (or mismatching) results for " + name).c_str());
  }
  const RunResult& r = found->second;
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(r.seconds[i++ % r.seconds.size()]);
  set_common_counters(state, r, setup().teams.at(name).spec.batch_size);
  state.SetLabel("torch " + ref.torch_version + ", transformers " + ref.transformers_version);
}

void BM_Chorus(benchmark::State& state, const std::string& name) {
  Setup& s = setup();
  if (!s.error.empty()) return state.SkipWithError(s.error.c_str());
  Team& t = s.teams.at(name);
  std::vector<torch::Tensor> tensors;
  for (const auto& [pname, p] : t.problem->parameters()) tensors.push_back(p);
  const auto& o = t.spec.trainer.optimizer;
  torch::optim::AdamW optimizer(tensors, torch::optim::AdamWOptions(o.learning_rate)
                                             .betas({o.beta1, o.beta2})
                                             .eps(o.epsilon)
                                             .weight_decay(o.weight_decay));
  RunResult& r = g_chorus[name];
  r = {};
  int64_t step = 0;
  auto once = [&] {
    optimizer.zero_grad();
    auto batch = t.problem->loss(step++, 0);
    batch.loss.backward();
    train::clip_gradient_norm(tensors, t.spec.trainer.clip_norm);
    optimizer.step();
    r.losses.push_back(batch.loss.item<double>());
  };
  for (int i = 0; i < g_settings.warmup; ++i) once();
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    once();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.SetIterationTime(seconds);
    r.seconds.push_back(seconds);
  }
  set_common_counters(state, r, t.spec.batch_size);
  state.counters["head_parameters"] = static_cast<double>(t.team->head()->parameter_count());

  const RunResult* other = reference_result(name);
  if (other == nullptr) return;
  const RunResult& py = *other;
  if (py.losses.size() != r.losses.size()) {
    return state.SkipWithError(("the PyTorch reference ran " + std::to_string(py.losses.size()) + " steps, Chorus " +
                                std::to_string(r.losses.size()))
                                   .c_str());
  }
  double worst = 0;
  size_t worst_step = 0;
  for (size_t i = 0; i < r.losses.size(); ++i) {
    const double rel = std::abs(r.losses[i] - py.losses[i]) / std::max(std::abs(py.losses[i]), 1e-12);
    if (!(rel <= worst)) {
      worst = rel;
      worst_step = i;
    }
  }
  state.counters["loss_max_rel_diff"] = worst;
  if (!(worst <= kLossTolerance)) {
    char message[256];
    std::snprintf(message, sizeof(message),
                  "losses part at step %zu: chorus %.6f, pytorch %.6f (relative %.2e > %.0e): the two sides do not "
                  "compute the same step",
                  worst_step, r.losses[worst_step], py.losses[worst_step], worst, kLossTolerance);
    return state.SkipWithError(message);
  }
  state.counters["vs_pytorch"] = r.steps_per_s() / py.steps_per_s();
}

void print_table() {
  std::printf("\nfusion head training, batch per team as configured, %d threads, median of %d steps (after %d "
              "warm-up steps): steps/s\n",
              g_settings.threads, g_settings.reps, g_settings.warmup);
  std::printf("%-8s %12s %12s %10s %14s %14s\n", "team", "chorus", "pytorch", "ratio", "loss0 chorus",
              "loss0 pytorch");
  for (const auto& [name, mine] : g_chorus) {
    const RunResult* other = reference_result(name);
    char py[32] = "-", ratio[32] = "-", py_loss[32] = "-";
    if (other != nullptr && !mine.seconds.empty()) {
      std::snprintf(py, sizeof(py), "%.2f", other->steps_per_s());
      std::snprintf(ratio, sizeof(ratio), "%.2fx", mine.steps_per_s() / other->steps_per_s());
      std::snprintf(py_loss, sizeof(py_loss), "%.6f", other->losses.front());
    }
    std::printf("%-8s %12.2f %12s %10s %14.6f %14s\n", name.c_str(), mine.steps_per_s(), py, ratio,
                mine.losses.empty() ? 0.0 : mine.losses.front(), py_loss);
  }
}

// Takes --name=value out of argv (before Google Benchmark sees it).
bool take_flag(int& argc, char** argv, const char* name, std::string& value) {
  const std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      value = argv[i] + prefix.size();
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      return true;
    }
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // The heap as the chorus program sets it up (common/heap.h); the rivals run in their own
  // processes with their defaults.
  std::fprintf(stderr, "heap: %s\n", chorus::configure_heap_for_tensor_work().c_str());
  Settings& s = g_settings;
  const fs::path here = fs::path(__FILE__).parent_path();
  s.config = here / ".." / "experiments" / "quickstart.yaml";
  if (!fs::exists(s.config)) s.config = "experiments/quickstart.yaml";
  s.script = here / "fusion_training_reference.py";
  if (!fs::exists(s.script)) s.script = "benchmarks/fusion_training_reference.py";
  s.work_dir = fs::temp_directory_path() / "chorus_fusion_training_bench";
  std::string value;
  if (take_flag(argc, argv, "threads", value)) s.threads = std::max(1, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "reps", value)) s.reps = std::max(1, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "warmup", value)) s.warmup = std::max(0, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "config", value)) s.config = value;
  if (take_flag(argc, argv, "work_dir", value)) s.work_dir = value;
  const char* python = std::getenv("CHORUS_PYTHON");
  s.python = python == nullptr ? "" : python;
  if (s.python.empty()) {
    std::fprintf(stderr,
                 "CHORUS_PYTHON is not set: the PyTorch rows are skipped (set it to a Python with torch and "
                 "transformers to measure them)\n");
  }
  torch::set_num_threads(s.threads);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The teams are the config's (the quickstart's: fusion, calm); setting up is quick (fresh models).
  if (!setup().error.empty()) {
    std::fprintf(stderr, "%s\n", setup().error.c_str());
    return 1;
  }
  std::vector<std::string> teams;
  for (const auto& entry : setup().teams) teams.push_back(entry.first);
  for (const auto& name : teams) {
    benchmark::RegisterBenchmark(("pytorch/" + name).c_str(), [name](benchmark::State& st) { BM_PyTorch(st, name); })
        ->Iterations(s.reps)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const auto& name : teams) {
    benchmark::RegisterBenchmark(("chorus/" + name).c_str(), [name](benchmark::State& st) { BM_Chorus(st, name); })
        ->Iterations(s.reps)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  print_table();
  benchmark::Shutdown();
  return 0;
}
