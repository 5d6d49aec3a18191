"""Builds a tiny two-agent team and its task, offline and deterministically, for the experiment
engine's end-to-end test.

    make_tiny_team.py OUTDIR

OUTDIR/task/     train.jsonl, valid.jsonl, test.jsonl (and test.jsonl.gz, the same rows gzipped):
                 a synthetic question-answering task over made-up facts ("what colour is the
                 apple ?" -> "red"). Each row has the fields question, context, answer, answers
                 (the answer and a synonym) and kind ("colour" or "shape").
OUTDIR/t5/       a tiny T5 v1.1 (gated-GELU, untied head) with a SentencePiece unigram tokenizer
                 trained here (spiece.model: pad 0, eos 1, unk 2, no bos; 8 sentinels; the
                 model has more rows than the tokenizer has ids, as flan-t5 does).
OUTDIR/bart/     a tiny BART with a byte-level BPE tokenizer trained here (vocab.json +
                 merges.txt: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> last).
OUTDIR/manifest.json  paths (relative to OUTDIR), vocabulary sizes, and each model's exact-match
                 accuracy on test.jsonl under transformers' greedy generate (max_new_tokens 8),
                 overall and per kind, the answers themselves (test_predictions), and the
                 oracle's score (a test row counts when either model answers it).

Both models are trained briefly on train.jsonl (question -> answer), the T5 on the colour
questions only and the BART on the shape questions only, so each alone answers about half of
the test set and a team that picks the right agent per question can answer most of it.
"""
import gzip
import io
import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (BartConfig, BartForConditionalGeneration, BartTokenizer, T5Config,
                          T5ForConditionalGeneration, T5Tokenizer)
from transformers.utils import logging

logging.set_verbosity_error()
torch.set_num_threads(1)

SEED = 20240611

OBJECTS = ["apple", "banana", "lemon", "plum", "cherry", "grape", "melon", "pear", "kiwi", "mango",
           "carrot", "onion", "tomato", "pepper", "potato", "bean", "ball", "box", "coin", "kite",
           "ring", "brick", "stone", "leaf", "shell", "drum", "cup", "book", "clock", "lamp",
           "table", "bottle"]
COLOURS = {"red": "crimson", "green": "emerald", "yellow": "golden", "blue": "azure", "purple": "violet",
           "orange": "amber", "brown": "tan", "white": "ivory"}
SHAPES = {"round": "circular", "square": "boxy", "long": "elongated", "flat": "level", "oval": "egg-shaped",
          "pointed": "sharp"}
TEMPLATES = {
    "colour": ["what is the colour of the {o} ?", "what colour is the {o} ?", "which colour does the {o} have ?",
               "tell me the colour of the {o} .", "the {o} has which colour ?"],
    "shape": ["what is the shape of the {o} ?", "what shape is the {o} ?", "which shape does the {o} have ?",
              "tell me the shape of the {o} .", "the {o} has which shape ?"],
}
N_TEST = 40
N_VALID = 40

T5_PIECES = 96         # SentencePiece vocabulary (this corpus allows at most ~108 pieces)
T5_EXTRA_IDS = 8       # sentinels <extra_id_0..7> after the pieces
T5_ROWS = 128          # embedding rows: more than the tokenizer's 104 ids (flan-t5: 32100 ids, 32128 rows)
BART_VOCAB = 320       # byte-level BPE ids including <mask>, == config vocab_size

MAX_NEW_TOKENS = 8
STEPS = 200            # Adam steps per model


def make_task(rng):
    """Facts, then rows: every (object, kind, template); each fact keeps at least 3 rows in train."""
    colours, shapes = sorted(COLOURS), sorted(SHAPES)
    facts = {o: {"colour": rng.choice(colours), "shape": rng.choice(shapes)} for o in OBJECTS}

    def context(o):
        other = rng.choice([x for x in OBJECTS if x != o])
        sentences = [f"the {x} is {facts[x]['colour']} and {facts[x]['shape']} ." for x in (o, other)]
        rng.shuffle(sentences)
        return " ".join(sentences)

    def row(o, kind, template):
        answer = facts[o][kind]
        synonym = (COLOURS if kind == "colour" else SHAPES)[answer]
        return {"question": template.format(o=o), "context": context(o), "answer": answer,
                "answers": [answer, synonym], "kind": kind}

    per_fact = []
    for o in OBJECTS:
        for kind in ("colour", "shape"):
            templates = list(TEMPLATES[kind])
            rng.shuffle(templates)
            per_fact.append([row(o, kind, t) for t in templates])
    rng.shuffle(per_fact)
    # The first N_TEST facts give one row to test, the next N_VALID (wrapping) one row to valid.
    test, valid, train = [], [], []
    n = len(per_fact)
    for i in range(N_TEST):
        test.append(per_fact[i].pop())
    for i in range(N_TEST, N_TEST + N_VALID):
        valid.append(per_fact[i % n].pop())
    for rows in per_fact:
        train.extend(rows)
    for rows in (train, valid, test):
        rng.shuffle(rows)
    return facts, {"train": train, "valid": valid, "test": test}


def write_task(folder, splits):
    os.makedirs(folder, exist_ok=True)
    for name, rows in splits.items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        with open(os.path.join(folder, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            f.write(text)
        if name == "test":
            # mtime 0 and no file name: the same bytes on every run.
            with open(os.path.join(folder, f"{name}.jsonl.gz"), "wb") as raw:
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                    f.write(text.encode("utf-8"))


def corpus_lines(splits):
    """Every text a tokenizer must cover: questions, contexts, answers and synonyms."""
    lines = []
    for rows in splits.values():
        for r in rows:
            lines += [r["question"], r["context"], " ".join(r["answers"])]
    return lines


def make_t5_tokenizer(lines, folder, scratch):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=T5_PIECES,
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", num_threads=1, minloglevel=2)
    vocab_file = os.path.join(scratch, "spiece.model")
    with open(vocab_file, "wb") as f:
        f.write(model.getvalue())
    tokenizer = T5Tokenizer(vocab_file=vocab_file, extra_ids=T5_EXTRA_IDS, legacy=True)
    tokenizer.save_pretrained(folder)
    return T5Tokenizer.from_pretrained(folder)


def make_bart_tokenizer(lines, folder, scratch):
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    # <mask> is added after training so that it takes the last id, as in BART's own vocabulary.
    bpe.train_from_iterator(lines, vocab_size=BART_VOCAB - 1, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False)
    bpe.save_model(scratch)
    vocab_file, merges_file = os.path.join(scratch, "vocab.json"), os.path.join(scratch, "merges.txt")
    with open(vocab_file, encoding="utf-8") as f:
        vocab = json.load(f)
    if len(vocab) != BART_VOCAB - 1:
        raise SystemExit(f"byte-level BPE: trained {len(vocab)} tokens, expected {BART_VOCAB - 1}")
    vocab["<mask>"] = len(vocab)
    with open(vocab_file, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(vocab.items(), key=lambda kv: kv[1])), f, ensure_ascii=False)
    BartTokenizer(vocab_file=vocab_file, merges_file=merges_file).save_pretrained(folder)
    return BartTokenizer.from_pretrained(folder)


def make_t5(tokenizer_ids):
    model = T5ForConditionalGeneration(T5Config(
        vocab_size=T5_ROWS, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False, dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    # The rows past the tokenizer's ids stay zero (their logit is 0, below a trained model's best), so
    # greedy decoding never picks an id the tokenizer cannot decode.
    with torch.no_grad():
        for weight in (model.shared.weight, model.lm_head.weight):
            weight[tokenizer_ids:] = 0.0

    def keep_padding_rows_zero(grad):
        grad = grad.clone()
        grad[tokenizer_ids:] = 0.0
        return grad

    for weight in (model.shared.weight, model.lm_head.weight):
        weight.register_hook(keep_padding_rows_zero)
    return model


def make_bart(tokenizer):
    model = BartForConditionalGeneration(BartConfig(
        vocab_size=BART_VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id))
    # bart-large-cnn's generation setting, set where transformers keeps it.
    model.generation_config.forced_bos_token_id = tokenizer.bos_token_id
    return model


def train(model, tokenizer, rows, steps, lr, seed, batch_size=32):
    """Adam on question -> answer in shuffled batches; labels are the tokenizer's ids of the
    answer, padding ignored. The rows are tokenized once, padded to the longest."""
    inputs = tokenizer([r["question"] for r in rows], padding=True, return_tensors="pt")
    labels = tokenizer(text_target=[r["answer"] for r in rows], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(rows), generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        loss = model(input_ids=inputs.input_ids[batch], attention_mask=inputs.attention_mask[batch],
                     labels=labels[batch]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def greedy(model, tokenizer, texts, batch_size=64):
    """Greedy generate on `texts`, right-padded in batches: the generated ids, one list per text."""
    ids = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[start:start + batch_size], padding=True, return_tensors="pt")
            out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, num_beams=1, do_sample=False)
            ids += out.tolist()
    return ids


def check_decodable(model, tokenizer, texts, name):
    """Greedy decoding of every task text (and of question + context prompts) stays within the
    tokenizer's ids: the model's extra rows are never chosen."""
    for row in greedy(model, tokenizer, texts, batch_size=len(texts)):
        if max(row) >= len(tokenizer):
            raise SystemExit(f"{name}: greedy decoding chose id {max(row)}, past the tokenizer's {len(tokenizer)} ids")


def greedy_answers(model, tokenizer, questions):
    return [t.strip() for t in tokenizer.batch_decode(greedy(model, tokenizer, questions), skip_special_tokens=True)]


def exact_match(predictions, rows):
    """Exact match of the predictions against each row's answer, overall and per kind."""
    hits = [p == r["answer"] for p, r in zip(predictions, rows)]
    result = {"exact_match": sum(hits) / len(rows)}
    for kind in ("colour", "shape"):
        kind_hits = [h for h, r in zip(hits, rows) if r["kind"] == kind]
        result[f"exact_match_{kind}"] = sum(kind_hits) / len(kind_hits)
    return result


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    _, splits = make_task(rng)
    write_task(os.path.join(out_dir, "task"), splits)
    lines = corpus_lines(splits)

    t5_dir, bart_dir = os.path.join(out_dir, "t5"), os.path.join(out_dir, "bart")
    for folder in (t5_dir, bart_dir):
        shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        os.makedirs(os.path.join(scratch, "t5"))
        os.makedirs(os.path.join(scratch, "bart"))
        t5_tok = make_t5_tokenizer(lines, t5_dir, os.path.join(scratch, "t5"))
        bart_tok = make_bart_tokenizer(lines, bart_dir, os.path.join(scratch, "bart"))

    for tok, name in ((t5_tok, "t5"), (bart_tok, "bart")):
        for line in lines:
            if tok.unk_token_id in tok(line).input_ids:
                raise SystemExit(f"{name} tokenizer: '{line}' has an unknown token")

    colour_rows = [r for r in splits["train"] if r["kind"] == "colour"]
    shape_rows = [r for r in splits["train"] if r["kind"] == "shape"]
    torch.manual_seed(SEED + 1)
    t5 = make_t5(len(t5_tok))
    t5_loss = train(t5, t5_tok, colour_rows, steps=STEPS, lr=5e-3, seed=SEED + 3)
    torch.manual_seed(SEED + 2)
    bart = make_bart(bart_tok)
    bart_loss = train(bart, bart_tok, shape_rows, steps=STEPS, lr=5e-3, seed=SEED + 4)

    every_text = [text for rows in splits.values() for r in rows
                  for text in (r["question"], r["context"], f"question: {r['question']} context: {r['context']}")]
    check_decodable(t5, t5_tok, every_text, "t5")
    check_decodable(bart, bart_tok, every_text, "bart")

    t5.save_pretrained(t5_dir, safe_serialization=True)
    bart.save_pretrained(bart_dir, safe_serialization=True)

    test = splits["test"]
    questions = [r["question"] for r in test]
    t5_answers, bart_answers = greedy_answers(t5, t5_tok, questions), greedy_answers(bart, bart_tok, questions)
    either = [a == r["answer"] or b == r["answer"] for a, b, r in zip(t5_answers, bart_answers, test)]
    manifest = {
        "task": {"folder": "task", "train": "task/train.jsonl", "valid": "task/valid.jsonl",
                 "test": "task/test.jsonl", "test_gz": "task/test.jsonl.gz",
                 "rows": {k: len(v) for k, v in splits.items()},
                 "fields": ["question", "context", "answer", "answers", "kind"]},
        "generation": {"strategy": "greedy", "max_new_tokens": MAX_NEW_TOKENS, "input": "question"},
        "models": {
            "t5": {"path": "t5", "family": "t5", "trained_on": "colour", "tokenizer": "sentencepiece",
                   "tokenizer_ids": len(t5_tok), "model_vocab_size": t5.config.vocab_size,
                   "final_train_loss": round(t5_loss, 4), "test": exact_match(t5_answers, test),
                   "test_predictions": t5_answers},
            "bart": {"path": "bart", "family": "bart", "trained_on": "shape", "tokenizer": "byte_level_bpe",
                     "tokenizer_ids": len(bart_tok), "model_vocab_size": bart.config.vocab_size,
                     "final_train_loss": round(bart_loss, 4), "test": exact_match(bart_answers, test),
                     "test_predictions": bart_answers},
        },
        # A row counts when either model answers it: what a perfect per-question choice would score.
        "test_oracle_exact_match": sum(either) / len(test),
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_tiny_team.py OUTDIR")
    main(sys.argv[1])
