"""Builds tiny random-weight T5, T5 v1.1 and BART models offline and dumps what the
Hugging Face reference computes with them, for the C++ parity tests.

    make_reference.py OUTDIR

For each model OUTDIR/<name>/ holds the saved model (config.json,
generation_config.json, model.safetensors), reference.safetensors (inputs,
logits, encoder/decoder hidden states, generated sequences) and cases.json
(the generation cases and their options). OUTDIR/manifest.json lists the models.

LOW_PRECISION models are T5 v1.0, T5 v1.1 and BART saved with bf16 or fp16 storage
(model.to(dtype).save_pretrained); their reference runs in fp32 on the upcast weights, and
reference.safetensors also holds "stored.<name>", each tensor as the safetensors library reads it
from model.safetensors, and "upcast.<name>", its fp32 value. They run LOW_PRECISION_CASES only.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration
from transformers.utils import logging

logging.set_verbosity_error()
torch.set_num_threads(1)

VOCAB = 64

# Each model: a config exercising one corner (odd heads, d_kv != d_model / heads,
# few relative buckets / a short max_distance against longer inputs, v1.1
# gating, BART's embedding scale, unequal encoder/decoder heads, forced BOS).
MODELS = {
    "t5_v1_0": lambda: T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="relu",
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)),
    "t5_odd_heads_short_buckets": lambda: T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=20, d_kv=7, d_ff=36, num_layers=3, num_decoder_layers=2, num_heads=3,
        relative_attention_num_buckets=6, relative_attention_max_distance=5, feed_forward_proj="relu",
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)),
    "t5_v1_1": lambda: T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=24, d_kv=6, d_ff=40, num_layers=2, num_decoder_layers=2, num_heads=5,
        relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)),
    "bart": lambda: BartForConditionalGeneration(BartConfig(
        vocab_size=VOCAB, d_model=24, encoder_layers=2, decoder_layers=2, encoder_attention_heads=3,
        decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=28, max_position_embeddings=48,
        scale_embedding=True, activation_function="gelu", dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, init_std=0.25)),
    "bart_forced_bos_relu": lambda: BartForConditionalGeneration(BartConfig(
        vocab_size=VOCAB, d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=48,
        scale_embedding=False, activation_function="relu", forced_bos_token_id=0, tie_word_embeddings=False,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, init_std=0.25)),
}

# Low-precision storage: (name, the model of MODELS it stores, storage dtype).
LOW_PRECISION = [(f"{base}_{tag}", base, dtype)
                 for tag, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16))
                 for base in ("t5_v1_0", "t5_v1_1", "bart")]

# Generation cases: the options passed to generate() on top of the model's own defaults.
CASES = [
    {"name": "greedy", "options": {"max_new_tokens": 14}, "hidden_states": True},
    {"name": "greedy_min_new_no_repeat", "options": {"max_new_tokens": 12, "min_new_tokens": 6,
                                                     "no_repeat_ngram_size": 2}},
    {"name": "beam3", "options": {"max_new_tokens": 12, "num_beams": 3, "num_return_sequences": 2}},
    {"name": "beam4_full_lp2", "options": {"max_new_tokens": 10, "num_beams": 4, "length_penalty": 2.0,
                                           "early_stopping": True}},
    {"name": "beam2_never_lp05", "options": {"max_new_tokens": 9, "num_beams": 2, "length_penalty": 0.5,
                                             "early_stopping": "never", "min_length": 4}},
    {"name": "sample", "options": {"max_new_tokens": 12, "do_sample": True, "temperature": 0.8, "top_k": 20,
                                   "top_p": 0.9}, "seed": 1234},
    {"name": "greedy_rep13", "options": {"max_new_tokens": 14, "repetition_penalty": 1.3}},
    {"name": "greedy_no_repeat3", "options": {"max_new_tokens": 14, "no_repeat_ngram_size": 3}},
    {"name": "beam3_rep13", "options": {"max_new_tokens": 12, "num_beams": 3, "num_return_sequences": 2,
                                        "repetition_penalty": 1.3}},
    {"name": "beam3_no_repeat2", "options": {"max_new_tokens": 12, "num_beams": 3, "num_return_sequences": 3,
                                             "no_repeat_ngram_size": 2}},
    {"name": "beam4_no_repeat3_rep08", "options": {"max_new_tokens": 10, "num_beams": 4, "no_repeat_ngram_size": 3,
                                                   "repetition_penalty": 0.8}},
    {"name": "beam_sample3", "options": {"max_new_tokens": 12, "do_sample": True, "num_beams": 3,
                                         "num_return_sequences": 2, "temperature": 0.9, "top_k": 20, "top_p": 0.95},
     "seed": 99},
]

LOW_PRECISION_CASES = [case for case in CASES if case["name"] in ("greedy", "beam3")]

# `chorus generate` on a word-level tokenizer written into the T5 folders (its special tokens
# <pad> </s> <unk> are T5's ids 0, 1, 2): the input text, the flags, and the text of the
# reference's ids.
WORDS = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(3, VOCAB)]
CLI_INPUT = "w5 w17 w17 w40 w9 w33 w61 w12 w5 w28"
CLI_CASES = [
    {"name": "greedy", "flags": ["--max-new-tokens", "12"], "options": {"max_new_tokens": 12}},
    {"name": "beam", "flags": ["--max-new-tokens", "12", "--num-beams", "4"],
     "options": {"max_new_tokens": 12, "num_beams": 4}},
    {"name": "beam_no_repeat_rep", "flags": ["--max-new-tokens", "12", "--num-beams", "3",
                                             "--repetition-penalty", "1.3", "--no-repeat-ngram-size", "2"],
     "options": {"max_new_tokens": 12, "num_beams": 3, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2}},
]


def make_inputs(generator, eos, pad, bos, holes):
    """Three right-padded inputs of lengths 19, 13 and 6 (the longest beyond the short max_distance)."""
    lengths = [19, 13, 6]
    ids = torch.full((3, max(lengths)), pad, dtype=torch.long)
    mask = torch.zeros((3, max(lengths)), dtype=torch.long)
    for row, n in enumerate(lengths):
        body = torch.randint(3, VOCAB, (n,), generator=generator)
        if bos is not None:
            body[0] = bos
        body[-1] = eos
        ids[row, :n] = body
        mask[row, :n] = 1
    if holes:
        # A mask that is not a prefix (exercises padding folded into the additive bias).
        mask[0, 3] = 0
        mask[1, 0] = 0
    return ids, mask


def boost_eos(model, eos, family):
    """Random models rarely emit EOS; make it likely enough that beams end at varied lengths."""
    with torch.no_grad():
        if family == "bart":
            model.final_logits_bias[0, eos] += 1.0
        elif not model.config.tie_word_embeddings:
            model.lm_head.weight[eos] *= 2.5
        else:
            model.shared.weight[eos] *= 3.0


def write_cli_cases(model, folder):
    with open(os.path.join(folder, "word_vocab.txt"), "w") as f:
        f.write("".join(word + "\n" for word in WORDS))
    ids = torch.tensor([[WORDS.index(w) for w in CLI_INPUT.split()] + [model.config.eos_token_id]])
    cases = []
    for case in CLI_CASES:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **case["options"])
        tokens = out[0].tolist()
        text = " ".join(WORDS[t] for t in tokens if t >= 3)
        cases.append({"name": case["name"], "flags": case["flags"], "ids": tokens, "text": text})
    with open(os.path.join(folder, "cli_cases.json"), "w") as f:
        json.dump({"input": CLI_INPUT, "cases": cases}, f, indent=1)


def reference_outputs(model, index, family, cases):
    """Inputs, the forward pass and the generation cases of `model`, as tensors to save."""
    cfg = model.config
    generator = torch.Generator().manual_seed(7 + index)
    ids, mask = make_inputs(generator, cfg.eos_token_id, cfg.pad_token_id,
                            cfg.bos_token_id if family == "bart" else None, holes=(index == 1))
    decoder_ids = torch.randint(3, VOCAB, (3, 7), generator=generator)
    decoder_ids[:, 0] = cfg.decoder_start_token_id
    tensors = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, output_hidden_states=True)
    tensors["logits"] = out.logits
    for i, h in enumerate(out.encoder_hidden_states):
        tensors[f"encoder_hidden_states.{i}"] = h
    for i, h in enumerate(out.decoder_hidden_states):
        tensors[f"decoder_hidden_states.{i}"] = h

    # Holes in the mask are for the forward pass only; generation uses right padding.
    gen_mask = (ids != cfg.pad_token_id).long() if index == 1 else mask
    tensors["generation_attention_mask"] = gen_mask
    for case in cases:
        if "seed" in case:
            torch.manual_seed(case["seed"])
        with torch.no_grad():
            result = model.generate(input_ids=ids, attention_mask=gen_mask, return_dict_in_generate=True,
                                    output_scores=True, output_hidden_states=case.get("hidden_states", False),
                                    **case["options"])
        tensors[f"{case['name']}.sequences"] = result.sequences
        if getattr(result, "sequences_scores", None) is not None:
            tensors[f"{case['name']}.sequence_scores"] = result.sequences_scores
        if case.get("hidden_states"):
            for step, layers in enumerate(result.decoder_hidden_states):
                tensors[f"{case['name']}.hidden.{step}"] = layers[-1]
    return tensors


def save_reference(folder, tensors, cases):
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()},
              os.path.join(folder, "reference.safetensors"))
    with open(os.path.join(folder, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


def build_model(name):
    """MODELS[name] with its seed and EOS boost, in fp32."""
    index = list(MODELS).index(name)
    torch.manual_seed(1000 + index)
    model = MODELS[name]().eval()
    family = "bart" if "bart" in name else "t5"
    boost_eos(model, model.config.eos_token_id, family)
    return model, index, family


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    manifest = []
    for name in MODELS:
        model, index, family = build_model(name)
        folder = os.path.join(out_dir, name)
        model.save_pretrained(folder, safe_serialization=True)
        save_reference(folder, reference_outputs(model, index, family, CASES), CASES)
        if family == "t5":
            write_cli_cases(model, folder)
        manifest.append({"name": name, "family": family})
    for name, base, dtype in LOW_PRECISION:
        model, index, family = build_model(base)
        folder = os.path.join(out_dir, name)
        model.to(dtype).save_pretrained(folder, safe_serialization=True)
        stored = load_file(os.path.join(folder, "model.safetensors"))
        if any(t.dtype != dtype for t in stored.values()):
            raise SystemExit(f"{folder}/model.safetensors: expected every tensor in {dtype}")
        model.float()
        tensors = reference_outputs(model, index, family, LOW_PRECISION_CASES)
        for key, tensor in stored.items():
            tensors[f"stored.{key}"] = tensor
            tensors[f"upcast.{key}"] = tensor.float()
        save_reference(folder, tensors, LOW_PRECISION_CASES)
        manifest.append({"name": name, "family": family, "storage": str(dtype).replace("torch.", "")})
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
