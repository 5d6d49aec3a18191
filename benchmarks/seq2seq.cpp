// Seq2seq speed: Chorus's T5 (load_seq2seq_model + generate) against Hugging Face
// transformers (PyTorch) and CTranslate2 (fp32) on one random-weight model with
// t5-small's shape, in the same run.
//
// The model (T5 v1.0: d_model 512, d_ff 2048, 6+6 layers, 8 heads, d_kv 64,
// vocab 32128, seeded random weights) is made once by
// benchmarks/seq2seq_reference.py under $CHORUS_PYTHON: save_pretrained into
// MODEL_DIR/hf, converted by CTranslate2's TransformersConverter from that folder
// into MODEL_DIR/ct2. Chorus reads MODEL_DIR/hf. Each rival runs in one child
// Python process (all cases, in order), with the same thread count
// (torch.set_num_threads / intra_threads) and the same pseudo-random token ids.
//
// Cases: the encoder on 16 x 64 tokens (tokens/s = source tokens read), greedy
// decoding at batch 1 and 16 and beam 4 at batch 1 from 32-token sources, 32 new
// tokens with min = max new tokens so every system generates the same count
// (tokens/s = new tokens per returned sequence / generate() seconds, encoding
// included). Each case runs once untimed, then --reps times; tokens/s counters
// use the median run. Chorus rows carry the ratios Chorus / rival of tokens/s.
// peak_rss_MiB is the peak resident set of the measuring process so far
// (getrusage): the Chorus benchmark process for Chorus rows (the rivals run in
// child processes, which it does not count), each Python process for its rows.
// CTranslate2's Translator has no encoder-only call: its encoder row times
// encoding plus one decoding step.
//
// gemm_floor rows time only the matrix products each case must do (see BM_Floor), with
// LibTorch's matmul at the same thread count: an upper bound on tokens/s for any fp32
// implementation of the model on that GEMM. The table's of_floor column is Chorus's
// tokens/s over the floor's; a rival's ratio to Chorus cannot exceed its ratio to the floor.
//
// All three systems run their threads on libgomp, whose barriers spin: with other
// load on the same cores, multi-threaded figures collapse (by up to 10x, and
// unevenly between systems). Run on an otherwise idle machine; the load average
// is printed in the header for that reason.
//
// --rounds=N repeats the whole comparison N times in turn (rivals, Chorus, floor, then again) and
// takes medians over all N x reps runs, so that drift in the machine's speed reaches every system
// alike (see run_rounds).
//
// --cases=greedy_b1,greedy_b16 and --systems=chorus,floor (of transformers, ctranslate2, chorus,
// floor) time only those; the others' rows stay empty.
//
//   build/benchmarks/seq2seq [--threads=N] [--reps=N] [--rounds=N] [--model_dir=DIR]
//                            [--cases=A,B] [--systems=A,B] [benchmark flags]
//
// Without $CHORUS_PYTHON the rival rows are skipped (and Chorus runs only if
// MODEL_DIR already holds the model).
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/heap.h"
#include "model/generation/generate.h"
#include "model/packed_linear.h"
#include "model/seq2seq_model.h"

namespace {

namespace fs = std::filesystem;
using chorus::model::GenerationOptions;

// Mirrored in seq2seq_reference.py (token_id, FIRST_ORDINARY_ID, SEED).
constexpr uint64_t kSeed = 1234;
constexpr int64_t kFirstOrdinaryId = 3;
constexpr int64_t kVocab = 32128;

int64_t token_id(uint64_t seed, uint64_t row, uint64_t col) {
  uint64_t x = (seed << 40) ^ (row << 20) ^ col;
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return kFirstOrdinaryId + static_cast<int64_t>(x % static_cast<uint64_t>(kVocab - kFirstOrdinaryId));
}

struct Case {
  std::string name;
  bool encoder_only;
  int64_t batch, source_len, new_tokens, beams;
  std::string spec() const {
    return name + ":" + (encoder_only ? "encoder" : "generate") + ":" + std::to_string(batch) + ":" +
           std::to_string(source_len) + ":" + std::to_string(new_tokens) + ":" + std::to_string(beams);
  }
  int64_t tokens() const { return encoder_only ? batch * source_len : batch * new_tokens; }
};

const std::vector<Case>& all_cases() {
  static const std::vector<Case> c = {
      {"encoder_b16_s64", true, 16, 64, 0, 1},
      {"greedy_b1", false, 1, 32, 32, 1},
      {"greedy_b16", false, 16, 32, 32, 1},
      {"beam4_b1", false, 1, 32, 32, 4},
  };
  return c;
}

struct Settings {
  std::vector<std::string> cases;    // --cases: names to run; empty: all
  std::vector<std::string> systems;  // --systems: of transformers, ctranslate2, chorus, floor; empty: all
  int threads = 0;
  int reps = 3;
  int rounds = 1;  // every system timed this many times in turn (see run_rounds)
  fs::path model_dir;
  std::string python;  // empty: no rivals
  fs::path script;
};
Settings g_settings;

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

// The cases --cases selects, in their fixed order.
const std::vector<Case>& cases() {
  static const std::vector<Case> selected = [] {
    std::vector<Case> out;
    for (const Case& c : all_cases()) {
      if (listed(g_settings.cases, c.name)) out.push_back(c);
    }
    return out;
  }();
  return selected;
}

bool system_selected(const std::string& system) { return listed(g_settings.systems, system); }

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
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

// The model folder, made by the Python script when it can be; error text otherwise.
const std::string& model_error() {
  static const std::string error = []() -> std::string {
    const Settings& s = g_settings;
    if (!s.python.empty()) {
      std::string output;
      const std::string command = quote(s.python) + " " + quote(s.script.string()) + " prepare " +
                                  quote(s.model_dir.string());
      if (!run_command(command, output)) return "making the random model failed: " + command;
    }
    if (!fs::exists(s.model_dir / "hf" / "config.json")) {
      return "no model in " + s.model_dir.string() +
             "/hf: it is made by benchmarks/seq2seq_reference.py, which needs CHORUS_PYTHON";
    }
    return {};
  }();
  return error;
}

struct CaseResult {
  std::vector<double> seconds;
  int64_t tokens = 0;
  double peak_rss_mib = 0;
  double tokens_per_s() const { return seconds.empty() ? 0.0 : static_cast<double>(tokens) / median(seconds); }
};

struct RivalRun {
  std::string error;
  double load_seconds = 0;
  std::map<std::string, CaseResult> cases;
};

std::map<std::string, RivalRun> g_rivals;  // filled by the rival rows

// One round of a rival: its Python process times every case --reps times; the runs are appended to
// what earlier rounds gave. A failure is kept as the rival's error.
void run_rival_round(const std::string& system) {
  RivalRun& run = g_rivals[system];
  if (!run.error.empty()) return;
  const Settings& s = g_settings;
  if (s.python.empty()) {
    run.error = "CHORUS_PYTHON is not set: no " + system + " to time";
    return;
  }
  if (!model_error().empty()) {
    run.error = model_error();
    return;
  }
  std::string command = quote(s.python) + " " + quote(s.script.string()) + " run " + system + " " +
                        quote(s.model_dir.string()) + " " + std::to_string(s.threads) + " " + std::to_string(s.reps);
  for (const Case& c : cases()) command += " " + c.spec();
  std::string output;
  if (!run_command(command, output)) {
    run.error = system + " run failed: " + command;
    return;
  }
  try {
    const auto json = nlohmann::json::parse(output);
    run.load_seconds = json.at("load_seconds").get<double>();
    for (const auto& [name, value] : json.at("cases").items()) {
      CaseResult& r = run.cases[name];
      for (const double t : value.at("seconds").get<std::vector<double>>()) r.seconds.push_back(t);
      r.tokens = value.at("tokens").get<int64_t>();
      r.peak_rss_mib = std::max(r.peak_rss_mib, value.at("peak_rss_mib").get<double>());
    }
  } catch (const std::exception& e) {
    run.error = system + " printed unreadable results (" + e.what() + "): " + output.substr(0, 200);
  }
}

void run_rounds();

// A rival's result for one case when its rows ran (never starts Python).
const CaseResult* rival_result(const std::string& system, const std::string& name) {
  const auto run = g_rivals.find(system);
  if (run == g_rivals.end() || !run->second.error.empty()) return nullptr;
  const auto found = run->second.cases.find(name);
  return found == run->second.cases.end() ? nullptr : &found->second;
}

void BM_Rival(benchmark::State& state, const std::string& system, const Case& c) {
  run_rounds();
  const RivalRun& run = g_rivals[system];
  if (!run.error.empty()) return state.SkipWithError(run.error.c_str());
  const auto found = run.cases.find(c.name);
  if (found == run.cases.end() || found->second.tokens != c.tokens() ||
      found->second.seconds.size() != static_cast<size_t>(g_settings.reps * g_settings.rounds)) {
    return state.SkipWithError((system + " returned no (or mismatching) results for " + c.name).c_str());
  }
  const CaseResult& r = found->second;
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(r.seconds[i++ % r.seconds.size()]);
  state.counters["tokens_per_s"] = r.tokens_per_s();
  state.counters["peak_rss_MiB"] = r.peak_rss_mib;
  state.counters["threads"] = g_settings.threads;
}

double g_rss_before_load_mib = 0;  // the Chorus process before it loads the model

std::shared_ptr<const chorus::model::Seq2SeqModel> chorus_model(double& load_seconds) {
  static double seconds = 0;
  static const std::shared_ptr<const chorus::model::Seq2SeqModel> model = [] {
    g_rss_before_load_mib = peak_rss_mib();
    const auto start = std::chrono::steady_clock::now();
    auto m = chorus::model::load_seq2seq_model(g_settings.model_dir / "hf");
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::shared_ptr<const chorus::model::Seq2SeqModel>(std::move(m));
  }();
  load_seconds = seconds;
  return model;
}

torch::Tensor make_inputs(int64_t batch, int64_t length) {
  auto ids = torch::empty({batch, length}, torch::kInt64);
  auto a = ids.accessor<int64_t, 2>();
  for (int64_t r = 0; r < batch; ++r) {
    for (int64_t c = 0; c < length; ++c) a[r][c] = token_id(kSeed, static_cast<uint64_t>(r), static_cast<uint64_t>(c));
  }
  return ids;
}

std::map<std::string, CaseResult> g_chorus;  // for the closing table

std::map<std::string, std::string> g_chorus_errors;  // per case, when Chorus failed it

// One round of Chorus on case `c`: one untimed run, then --reps timed runs appended to g_chorus.
void time_chorus_round(const Case& c) {
  if (g_chorus_errors.count(c.name) == 1) return;
  if (!model_error().empty()) {
    g_chorus_errors[c.name] = model_error();
    return;
  }
  double load_seconds = 0;
  const auto model = chorus_model(load_seconds);
  const auto ids = make_inputs(c.batch, c.source_len);
  const auto mask = torch::ones_like(ids);
  GenerationOptions options;
  options.max_new_tokens = c.new_tokens;
  options.min_new_tokens = c.new_tokens;
  options.num_beams = c.beams;

  auto once = [&]() -> bool {
    if (c.encoder_only) {
      torch::NoGradGuard no_grad;
      const auto out = model->encode(ids, mask);
      return out.last_hidden_state.size(0) == c.batch && out.last_hidden_state.size(1) == c.source_len;
    }
    const auto result = chorus::model::generate(*model, ids, mask, options);
    return result.sequences.size(0) == c.batch && result.sequences.size(1) == c.new_tokens + 1;
  };
  CaseResult& r = g_chorus[c.name];
  r.tokens = c.tokens();
  for (int rep = -1; rep < g_settings.reps; ++rep) {  // rep -1: warm-up
    const auto start = std::chrono::steady_clock::now();
    const bool ok = once();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!ok) {
      g_chorus_errors[c.name] = "unexpected output shape in " + c.name;
      return;
    }
    if (rep >= 0) r.seconds.push_back(seconds);
  }
  r.peak_rss_mib = peak_rss_mib();
}

void BM_Chorus(benchmark::State& state, const Case& c) {
  run_rounds();
  if (const auto error = g_chorus_errors.find(c.name); error != g_chorus_errors.end()) {
    return state.SkipWithError(error->second.c_str());
  }
  double load_seconds = 0;
  chorus_model(load_seconds);
  const CaseResult& r = g_chorus[c.name];
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(r.seconds[i++ % r.seconds.size()]);
  state.counters["tokens_per_s"] = r.tokens_per_s();
  state.counters["peak_rss_MiB"] = r.peak_rss_mib;
  state.counters["threads"] = g_settings.threads;
  state.counters["load_s"] = load_seconds;
  state.counters["rss_before_load_MiB"] = g_rss_before_load_mib;
  for (const std::string system : {"transformers", "ctranslate2"}) {
    const CaseResult* other = rival_result(system, c.name);
    if (other != nullptr && other->tokens_per_s() > 0) {
      state.counters["vs_" + system] = r.tokens_per_s() / other->tokens_per_s();
    }
  }
}

// The floor: the matrix products a case cannot avoid, and nothing else, timed with LibTorch's
// matmul (MKL) at the same thread count over weights of the model's shapes, one distinct tensor
// per layer and projection as in the model (so they stream from memory as the model's do), into
// preallocated outputs (through weights packed where Chorus packs them, decoding over at least
// model::kPackedLinearMinRows rows, and packed once as the model's packing is kept). Encoder: per layer the q/k/v, output and feed-forward products over all
// B x S source rows. Decoder: the cross-attention keys and values of the source once per layer,
// then per step and layer, over B x beams rows, the self-attention q/k/v and output, the
// cross-attention query and output, the feed-forward products, and the vocabulary projection.
// Attention itself (a few kFLOPs per row here), norms, activations, embeddings, the search and
// every dispatch are left out, so no implementation of the same model in fp32 on this library's
// GEMM can decode faster: tokens/s of the floor is an upper bound.
struct FloorLayer {
  torch::Tensor qkv, o, cross_q, cross_kv, cross_o, wi, wo;
};

struct FloorModel {
  std::vector<FloorLayer> encoder, decoder;
  torch::Tensor lm_head;
};

const FloorModel& floor_model(const chorus::model::Seq2SeqConfig& c) {
  static const FloorModel m = [&c] {
    torch::manual_seed(0);
    const int64_t inner = c.encoder_heads * c.head_dim, d = c.d_model;
    const int64_t ffn_rows = (c.gated_ffn ? 2 : 1) * c.encoder_ffn_dim;  // gated: wi_0 and wi_1
    auto w = [](int64_t rows, int64_t cols) { return torch::randn({rows, cols}) * 0.02; };
    FloorModel f;
    for (int64_t i = 0; i < c.encoder_layers; ++i)
      f.encoder.push_back({w(3 * inner, d), w(d, inner), {}, {}, {}, w(ffn_rows, d), w(d, c.encoder_ffn_dim)});
    for (int64_t i = 0; i < c.decoder_layers; ++i) {
      f.decoder.push_back({w(3 * inner, d), w(d, inner), w(inner, d), w(2 * inner, d), w(d, inner),
                           w((c.gated_ffn ? 2 : 1) * c.decoder_ffn_dim, d), w(d, c.decoder_ffn_dim)});
    }
    f.lm_head = w(c.vocab_size, d);
    return f;
  }();
  return m;
}

// y = x W^T into a buffer of its own (one per shape), as torch::linear without a bias does.
class FloorProducts {
 public:
  void operator()(const torch::Tensor& x, const torch::Tensor& weight) {
    auto& out = buffers_[{x.size(0), weight.size(0)}];
    if (!out.defined()) out = torch::empty({x.size(0), weight.size(0)});
    at::mm_out(out, x, weight.t());
  }

 private:
  std::map<std::pair<int64_t, int64_t>, torch::Tensor> buffers_;
};

// The decoder's step weights packed for `rows` rows when Chorus would pack them
// (model/packed_linear.h), so the floor stays an upper bound; null otherwise. Kept across runs as
// the model keeps its last packing (PackedWeightsCache), so the floor's timed runs after the
// warm-up pack nothing, like Chorus's.
std::shared_ptr<const chorus::model::PackedWeights> floor_packing(const FloorModel& m, int64_t rows) {
  if (!chorus::model::packing_pays(rows, torch::kFloat32)) return nullptr;
  std::vector<torch::Tensor> weights;
  for (const auto& l : m.decoder) {
    for (const auto& w : {l.qkv, l.o, l.cross_q, l.cross_o, l.wi, l.wo}) weights.push_back(w);
  }
  weights.push_back(m.lm_head);
  static chorus::model::PackedWeightsCache cache;
  return cache.get(weights, rows);
}

void floor_once(const FloorModel& m, const chorus::model::Seq2SeqConfig& c, const Case& k,
                FloorProducts& mm) {
  const int64_t inner = c.encoder_heads * c.head_dim;
  const auto source = torch::randn({k.batch * k.source_len, c.d_model});
  const auto source_inner = torch::randn({k.batch * k.source_len, inner});
  const auto source_ffn = torch::randn({k.batch * k.source_len, c.encoder_ffn_dim});
  for (const auto& l : m.encoder) {
    mm(source, l.qkv);
    mm(source_inner, l.o);
    mm(source, l.wi);
    mm(source_ffn, l.wo);
  }
  if (k.encoder_only) return;
  for (const auto& l : m.decoder) mm(source, l.cross_kv);
  const int64_t rows = k.batch * k.beams;
  // Packed as a generation packs them: once, in the first (untimed) run of a row count.
  const auto packed = floor_packing(m, rows);
  const auto product = [&](const torch::Tensor& in, const torch::Tensor& weight) {
    if (packed) {
      chorus::model::linear(in, weight, packed.get());
    } else {
      mm(in, weight);
    }
  };
  const auto x = torch::randn({rows, c.d_model});
  const auto x_inner = torch::randn({rows, inner});
  const auto x_ffn = torch::randn({rows, c.decoder_ffn_dim});
  for (int64_t step = 0; step < k.new_tokens; ++step) {
    for (const auto& l : m.decoder) {
      product(x, l.qkv);
      product(x_inner, l.o);
      product(x, l.cross_q);
      product(x_inner, l.cross_o);
      product(x, l.wi);
      product(x_ffn, l.wo);
    }
    product(x, m.lm_head);
  }
}

std::map<std::string, CaseResult> g_floor;  // for the closing table

// One round of the floor on case `c`: one untimed run (which also makes the output buffers), then
// --reps timed runs appended to g_floor.
void time_floor_round(const Case& c) {
  if (!model_error().empty()) return;
  double load_seconds = 0;
  const auto& config = chorus_model(load_seconds)->config();
  const FloorModel& m = floor_model(config);
  torch::NoGradGuard no_grad;
  FloorProducts mm;
  CaseResult& r = g_floor[c.name];
  r.tokens = c.tokens();
  for (int rep = -1; rep < g_settings.reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    floor_once(m, config, c, mm);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rep >= 0) r.seconds.push_back(seconds);
  }
}

// Every measurement, made once before the first row is reported: --rounds times in turn, the
// rivals' processes (each timing every case), then Chorus on every case, then the floor on every
// case. Medians are over all rounds' runs, so a machine whose speed drifts over minutes (other
// jobs, neighbours on the host) slows every system alike instead of whichever ran at the time.
// Every selected system is measured whatever --benchmark_filter selects (--systems and --cases
// choose what runs; unsetting CHORUS_PYTHON also leaves the rivals out).
void run_rounds() {
  static bool done = false;
  if (done) return;
  done = true;
  for (int round = 0; round < g_settings.rounds; ++round) {
    for (const std::string system : {"transformers", "ctranslate2"}) {
      if (system_selected(system)) run_rival_round(system);
    }
    if (system_selected("chorus")) {
      for (const Case& c : cases()) time_chorus_round(c);
    }
    if (system_selected("floor")) {
      for (const Case& c : cases()) time_floor_round(c);
    }
  }
}

void BM_Floor(benchmark::State& state, const Case& c) {
  run_rounds();
  if (!model_error().empty()) return state.SkipWithError(model_error().c_str());
  const CaseResult& r = g_floor[c.name];
  size_t i = 0;
  for (auto _ : state) state.SetIterationTime(r.seconds[i++ % r.seconds.size()]);
  state.counters["tokens_per_s"] = r.tokens_per_s();
  state.counters["threads"] = g_settings.threads;
  const auto mine = g_chorus.find(c.name);
  if (mine != g_chorus.end() && !mine->second.seconds.empty()) {
    state.counters["chorus_of_floor"] = mine->second.tokens_per_s() / r.tokens_per_s();
  }
}

void print_table() {
  std::printf("\nseq2seq, %d threads, median of %d runs (%d rounds of %d): tokens/s (peak RSS MiB)\n",
              g_settings.threads, g_settings.reps * g_settings.rounds, g_settings.rounds, g_settings.reps);
  std::printf("%-18s %22s %22s %22s %10s %10s %12s %10s\n", "case", "chorus", "transformers", "ctranslate2",
              "vs_hf", "vs_ct2", "gemm_floor", "of_floor");
  for (const Case& c : cases()) {
    auto cell = [](const CaseResult* r) {
      char buf[64];
      if (r == nullptr || r->seconds.empty()) return std::string("-");
      std::snprintf(buf, sizeof(buf), "%.1f (%.0f)", r->tokens_per_s(), r->peak_rss_mib);
      return std::string(buf);
    };
    auto find = [&](const std::map<std::string, CaseResult>& m) -> const CaseResult* {
      const auto it = m.find(c.name);
      return it == m.end() ? nullptr : &it->second;
    };
    const CaseResult* mine = find(g_chorus);
    const CaseResult* hf = rival_result("transformers", c.name);
    const CaseResult* ct2 = rival_result("ctranslate2", c.name);
    auto ratio = [&](const CaseResult* other) {
      char buf[32];
      if (mine == nullptr || other == nullptr || mine->seconds.empty() || other->seconds.empty()) return std::string("-");
      std::snprintf(buf, sizeof(buf), "%.2fx", mine->tokens_per_s() / other->tokens_per_s());
      return std::string(buf);
    };
    const CaseResult* floor = find(g_floor);
    char floor_cell[32] = "-";
    if (floor != nullptr && !floor->seconds.empty()) std::snprintf(floor_cell, sizeof floor_cell, "%.1f", floor->tokens_per_s());
    std::printf("%-18s %22s %22s %22s %10s %10s %12s %10s\n", c.name.c_str(), cell(mine).c_str(), cell(hf).c_str(),
                cell(ct2).c_str(), ratio(hf).c_str(), ratio(ct2).c_str(), floor_cell, ratio(floor).c_str());
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
  s.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s.model_dir = fs::temp_directory_path() / "chorus_seq2seq_bench_t5_small";
  std::string value;
  if (take_flag(argc, argv, "threads", value)) s.threads = std::max(1, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "reps", value)) s.reps = std::max(1, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "rounds", value)) s.rounds = std::max(1, std::atoi(value.c_str()));
  if (take_flag(argc, argv, "model_dir", value)) s.model_dir = value;
  auto split = [](const std::string& list) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(',', start), list.size());
      if (end > start) out.push_back(list.substr(start, end - start));
      start = end + 1;
    }
    return out;
  };
  if (take_flag(argc, argv, "cases", value)) {
    s.cases = split(value);
    for (const auto& name : s.cases) {
      const bool known = std::any_of(all_cases().begin(), all_cases().end(), [&](const Case& c) { return c.name == name; });
      if (!known) {
        std::fprintf(stderr, "--cases: unknown case '%s' (expected a comma-separated list of", name.c_str());
        for (const Case& c : all_cases()) std::fprintf(stderr, " %s", c.name.c_str());
        std::fprintf(stderr, ")\n");
        return 2;
      }
    }
  }
  if (take_flag(argc, argv, "systems", value)) {
    s.systems = split(value);
    for (const auto& name : s.systems) {
      if (name != "transformers" && name != "ctranslate2" && name != "chorus" && name != "floor") {
        std::fprintf(stderr,
                     "--systems: unknown system '%s' (expected a comma-separated list of transformers, "
                     "ctranslate2, chorus, floor)\n",
                     name.c_str());
        return 2;
      }
    }
  }
  const char* python = std::getenv("CHORUS_PYTHON");
  s.python = python == nullptr ? "" : python;
  s.script = fs::path(__FILE__).parent_path() / "seq2seq_reference.py";
  if (!fs::exists(s.script)) s.script = "benchmarks/seq2seq_reference.py";
  if (s.python.empty()) {
    std::fprintf(stderr,
                 "CHORUS_PYTHON is not set: the transformers and CTranslate2 columns are skipped "
                 "(set it to the reference venv's python to measure them)\n");
  }
  torch::set_num_threads(s.threads);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (const std::string system : {"transformers", "ctranslate2"}) {
    if (!system_selected(system)) continue;
    for (const Case& c : cases()) {
      benchmark::RegisterBenchmark((system + "/" + c.name).c_str(),
                                   [system, &c](benchmark::State& st) { BM_Rival(st, system, c); })
          ->Iterations(s.reps * s.rounds)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (const Case& c : cases()) {
    if (!system_selected("chorus")) break;
    benchmark::RegisterBenchmark(("chorus/" + c.name).c_str(), [&c](benchmark::State& st) { BM_Chorus(st, c); })
        ->Iterations(s.reps * s.rounds)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const Case& c : cases()) {
    if (!system_selected("floor")) break;
    benchmark::RegisterBenchmark(("gemm_floor/" + c.name).c_str(), [&c](benchmark::State& st) { BM_Floor(st, c); })
        ->Iterations(s.reps * s.rounds)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RunSpecifiedBenchmarks();
  print_table();
  benchmark::Shutdown();
  return 0;
}
