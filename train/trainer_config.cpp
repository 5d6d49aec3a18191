// TrainerOptions from a config view.
#include "train/trainer_config.h"

namespace chorus::train {

TrainerOptions read_trainer_options(const ConfigView& v, const std::string& name, uint64_t seed) {
  TrainerOptions o;
  o.name = name;
  o.seed = seed;
  o.steps = v.get_int("steps", 1000, 1);
  o.optimizer.learning_rate = v.get_double("learning_rate", 1e-3, 0.0);
  o.optimizer.weight_decay = v.get_double("weight_decay", 0.01, 0.0);
  o.schedule.warmup_steps = v.get_int("warmup_steps", 0, 0);
  const auto kind = v.get_choice("schedule", {"constant", "linear", "cosine"}, std::string("cosine"));
  o.schedule.kind = kind == "constant" ? Schedule::constant : kind == "linear" ? Schedule::linear : Schedule::cosine;
  o.schedule.min_lr_ratio = v.get_double("min_lr_ratio", 0.0, 0.0, 1.0);
  o.clip_norm = v.get_double("clip_norm", 1.0);
  o.accumulation = v.get_int("accumulation", 1, 1);
  o.eval_every = v.get_int("eval_every", 0, 0);
  o.checkpoint_every = v.get_int("checkpoint_every", 250, 1);
  o.log_every = v.get_int("log_every", 50, 1);
  o.early_stopping_patience = v.get_int("early_stopping_patience", 0, 0);
  return o;
}

}  // namespace chorus::train
