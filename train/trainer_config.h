// Reading a `train:` block of an experiment config into TrainerOptions.
#pragma once

#include "common/config.h"
#include "train/trainer.h"

namespace chorus::train {

// Keys (all optional, defaults in brackets): steps [1000], batch_size (read by the caller),
// learning_rate [1e-3], weight_decay [0.01], warmup_steps [0], schedule [cosine: constant|linear|cosine],
// min_lr_ratio [0], clip_norm [1.0], accumulation [1], eval_every [0], checkpoint_every [250],
// log_every [50], early_stopping_patience [0].
TrainerOptions read_trainer_options(const ConfigView& view, const std::string& name, uint64_t seed);

}  // namespace chorus::train
