// The chorus program's subcommands: each registers its options on the CLI11 app.
#pragma once

#include <CLI/CLI.hpp>

namespace chorus::cli {

// `chorus info`: version, LibTorch, CUDA, CPU ISA and threads.
void add_info_command(CLI::App& app);

// `chorus convert SRC DST`: Hugging Face folder <-> Chorus HDF5 checkpoint.
void add_convert_command(CLI::App& app);

// `chorus generate --model DIR --input TEXT`: greedy, beam search or sampling.
void add_generate_command(CLI::App& app);

// `chorus score`: BLEU, chrF, ROUGE, EM and F1 of a hypothesis file against references.
void add_score_command(CLI::App& app);

// `chorus train CONFIG [--out DIR] [--resume|--overwrite] [a.b.c=value ...]`: run an experiment.
void add_train_command(CLI::App& app);

// `chorus pretrain CONFIG --out DIR`: train a small agent from scratch.
void add_pretrain_command(CLI::App& app);

// `chorus eval RUN_FOLDER|CONFIG [--html-only]`: evaluate a run again and write report.html.
void add_eval_command(CLI::App& app);

}  // namespace chorus::cli
