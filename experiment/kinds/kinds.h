// The built-in system kinds, registered by the registry on first use.
#pragma once

namespace chorus::experiment {

// agent, vote, self_consistency, negotiation, consensus_rules, pipeline
void register_mechanism_kinds();
// fusion (trained through the trainer)
void register_fusion_kind();
// graph_select (a trained selector over agents' answers)
void register_graph_select_kind();
// router (a policy over other systems, trained by reinforcement learning)
void register_router_kind();

}  // namespace chorus::experiment
