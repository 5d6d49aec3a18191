"""The Python side of benchmarks/fusion_training: the quickstart's fusion heads written in
PyTorch over the same frozen agents loaded with Hugging Face transformers, trained for the same
steps on the same batches, timed.

    fusion_training_reference.py MANIFEST THREADS

MANIFEST is the JSON file the C++ benchmark writes: the agents' Hugging Face folders, and per
team the head's settings, its optimizer settings and a safetensors file holding the head's
initial parameters ("head.<name>", the names of collab/cross_agent_fusion.cpp) and the token ids
of every step's batch ("step.<i>.input_ids", ".attention_mask", ".labels"). For each team it
runs `warmup` untimed steps, then `reps` timed ones, and prints one JSON object: per team the
seconds of each timed step and the loss of every step.

A step does what train::TeamTrainingProblem does in Chorus:
  1. the augmenting agent encodes the input and decodes its answer greedily (generate(), at most
     input length + 1 new tokens), then a teacher-forced pass over that answer gives its logits
     and final decoder states (decoder states) -- or only its encoder's output (encoder states);
     no grad;
  2. the anchor's encoder runs without grad for the query states when query_layer differs from
     inject_layer (hidden_states[query_layer]);
  3. the anchor's encoder runs again with the head applied by a forward hook at inject_layer (0:
     the token embedding's output, l: block l-1's output), so the head trains through it;
  4. the anchor's decoder is teacher-forced on the labels (mean token cross-entropy);
  5. backward, gradient-norm clip, AdamW step, zero_grad.
The head: queries W_q LN(query states); keys W_k LN(augmenting states) after a learned null
key; values softmax(logits / T) . E_anchor (bridge) or W_v LN(states) (hidden), zeros for the
null slot; a learned bias per (query position, key position) pair and head; padding masked;
scaled dot-product attention; added through the per-position gate w . LN(x) + b. LayerNorms
have no affine parameters and the projections no bias, as in Chorus.
"""
import json
import math
import sys
import time


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    manifest_path, threads = argv[1], int(argv[2])

    import torch
    import torch.nn.functional as F
    import transformers
    from safetensors.torch import load_file
    from transformers import T5ForConditionalGeneration
    from transformers.modeling_outputs import BaseModelOutput
    from transformers.utils import logging
    logging.set_verbosity_error()
    torch.set_num_threads(threads)

    with open(manifest_path) as f:
        manifest = json.load(f)
    warmup, reps = manifest["warmup"], manifest["reps"]

    agents = {}
    for name, folder in manifest["agents"].items():
        model = T5ForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        agents[name] = model

    class FusionHead(torch.nn.Module):
        def __init__(self, spec, anchor_width, augmenting_widths):
            super().__init__()
            self.spec = spec
            heads, head_dim = spec["heads"], spec["head_dim"]
            self.heads, self.head_dim, self.anchor_width = heads, head_dim, anchor_width
            inner = heads * head_dim
            self.hidden = spec["value_source"] == "hidden"
            self.query = torch.nn.Linear(anchor_width, inner, bias=False)
            for a, width in enumerate(augmenting_widths):
                setattr(self, "key_%d" % a, torch.nn.Linear(width, inner, bias=False))
                if self.hidden:
                    setattr(self, "value_%d" % a, torch.nn.Linear(width, anchor_width, bias=False))
            if spec["null_slot"]:
                self.null_key = torch.nn.Parameter(torch.zeros(heads, 1, head_dim))
                self.null_bias = torch.nn.Parameter(torch.zeros(heads))
            if spec["position_bias"] > 0:
                P = spec["position_bias"]
                self.position_table = torch.nn.Parameter(torch.zeros(heads, P, P))
            if spec["gate"] == "per_position":
                self.gate_weight = torch.nn.Parameter(torch.zeros(anchor_width))
            self.gate_bias = torch.nn.Parameter(torch.zeros(1))

        def gate(self, states):
            if self.spec["gate"] == "scalar":
                return self.gate_bias.view(1, 1, 1)
            return (F.layer_norm(states, (self.anchor_width,)) @ self.gate_weight).unsqueeze(-1) + self.gate_bias

        def message(self, query_states, others, anchor_embedding):
            B, nq, _ = query_states.shape
            H, dv = self.heads, self.anchor_width // self.heads

            def split(x, width):
                return x.view(B, x.size(1), H, width).transpose(1, 2)

            q = split(self.query(F.layer_norm(query_states, (self.anchor_width,))), self.head_dim)
            P = self.spec["position_bias"]
            qpos = torch.arange(nq).clamp_max(max(P - 1, 0))
            keys, values, biases, masks = [], [], [], []
            if self.spec["null_slot"]:
                keys.append(self.null_key.unsqueeze(0).expand(B, H, 1, self.head_dim))
                values.append(query_states.new_zeros(B, H, 1, dv))
                biases.append(self.null_bias.view(1, H, 1, 1).expand(B, H, nq, 1))
                masks.append(torch.ones(B, 1, dtype=torch.bool))
            for a, other in enumerate(others):
                ks = other["key_states"]
                nk = ks.size(1)
                keys.append(split(getattr(self, "key_%d" % a)(F.layer_norm(ks, (ks.size(-1),))), self.head_dim))
                if self.hidden:
                    vs = other.get("value_states", ks)
                    v = getattr(self, "value_%d" % a)(F.layer_norm(vs, (vs.size(-1),)))
                else:
                    v = torch.softmax(other["logits"] / self.spec["bridge_temperature"], -1) @ anchor_embedding.detach()
                values.append(split(v, dv))
                if P > 0:
                    kpos = torch.arange(nk).clamp_max(P - 1)
                    biases.append(self.position_table[:, qpos][:, :, kpos].unsqueeze(0).expand(B, H, nq, nk))
                else:
                    biases.append(query_states.new_zeros(B, H, nq, nk))
                masks.append(other["mask"].to(torch.bool))
            k, v = torch.cat(keys, 2), torch.cat(values, 2)
            mask = torch.cat(masks, 1).view(B, 1, 1, -1)
            bias = torch.cat(biases, 3).masked_fill(~mask, torch.finfo(query_states.dtype).min)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            return out.transpose(1, 2).reshape(B, nq, self.anchor_width)

        def forward(self, query_states, states, others, anchor_embedding):
            message = self.message(query_states, others, anchor_embedding)
            if self.spec["residual"] == "interpolate":
                return states + self.gate(states) * (message - states)
            return states + self.gate(states) * message

    def augmenting_states(model, source, ids, mask):
        with torch.no_grad():
            encoded = model.encoder(input_ids=ids, attention_mask=mask)
            if source == "encoder":
                return {"key_states": encoded.last_hidden_state, "mask": mask}
            sequences = model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=encoded.last_hidden_state),
                                       attention_mask=mask, max_new_tokens=ids.size(1) + 1, do_sample=False,
                                       num_beams=1)
            steps = sequences.size(1) - 1
            out = model(encoder_outputs=(encoded.last_hidden_state,), attention_mask=mask,
                        decoder_input_ids=sequences[:, :steps], output_hidden_states=True)
            produced = sequences[:, 1:]
            eos = (produced == model.config.eos_token_id).long()
            return {"key_states": out.decoder_hidden_states[-1], "logits": out.logits,
                    "mask": ((eos.cumsum(1) - eos) == 0).long()}

    report = {"torch": torch.__version__, "transformers": transformers.__version__, "threads": threads, "teams": {}}
    for name, spec in manifest["teams"].items():
        tensors = load_file(spec["tensors"])
        anchor = agents[spec["anchor"]]
        others = [agents[a] for a in spec["augmenting"]]
        head = FusionHead(spec, anchor.config.d_model, [m.config.d_model for m in others])
        initial = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
        missing, unexpected = head.load_state_dict(initial, strict=True)
        assert not missing and not unexpected, (missing, unexpected)
        params = list(head.parameters())
        optimizer = torch.optim.AdamW(params, lr=spec["learning_rate"], betas=(spec["beta1"], spec["beta2"]),
                                      eps=spec["epsilon"], weight_decay=spec["weight_decay"])
        embedding = anchor.get_input_embeddings().weight
        query_layer, inject_layer = spec["query_layer"], spec["inject_layer"]
        injected_at = anchor.encoder.embed_tokens if inject_layer == 0 else anchor.encoder.block[inject_layer - 1]

        def loss_of(step):
            ids = tensors["step.%d.input_ids" % step]
            mask = tensors["step.%d.attention_mask" % step]
            labels = tensors["step.%d.labels" % step]
            states = [augmenting_states(m, spec["augmenting_states"], ids, mask) for m in others]
            query_states = None
            if query_layer != inject_layer:
                with torch.no_grad():
                    plain = anchor.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                    query_states = plain.hidden_states[query_layer]

            def hook(module, inputs, output):
                x = output if inject_layer == 0 else output[0]
                fused = head(query_states if query_states is not None else x, x, states, embedding)
                return fused if inject_layer == 0 else (fused,) + tuple(output[1:])

            # The embedding is shared with the decoder: the hook lives only while the encoder runs.
            handle = injected_at.register_forward_hook(hook)
            try:
                encoded = anchor.encoder(input_ids=ids, attention_mask=mask)
            finally:
                handle.remove()
            return anchor(encoder_outputs=encoded, attention_mask=mask, labels=labels).loss

        losses, seconds = [], []
        for step in range(warmup + reps):
            t0 = time.perf_counter()
            optimizer.zero_grad()
            loss = loss_of(step)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, spec["clip_norm"])
            optimizer.step()
            losses.append(loss.item())
            if step >= warmup:
                seconds.append(time.perf_counter() - t0)
        if not all(math.isfinite(x) for x in losses):
            raise SystemExit("team %s: a loss is not finite: %s" % (name, losses))
        report["teams"][name] = {"seconds": seconds, "losses": losses}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv)
