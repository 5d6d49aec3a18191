"""The Python side of benchmarks/seq2seq: makes the random-weight model every system
reads, and times Hugging Face transformers or CTranslate2 on it.

    seq2seq_reference.py prepare DIR
        Creates (once) a random-weight T5 v1.0 model with t5-small's shape, seeded,
        saved with save_pretrained into DIR/hf, and its CTranslate2 conversion (fp32)
        from that same folder into DIR/ct2. Does nothing when DIR/stamp.json already
        names this spec. Prints the stamp as JSON.

    seq2seq_reference.py run {transformers|ctranslate2} DIR THREADS REPS CASE...
        CASE is NAME:KIND:BATCH:SOURCE_LEN:NEW_TOKENS:BEAMS with KIND encoder or
        generate. Loads the model once, then for each case in order runs it once
        untimed and REPS times timed, and prints one JSON object: per case the
        seconds of each timed run, the tokens each run produces (encoder: source
        tokens read; generate: new tokens per returned sequence) and the peak RSS
        of this process so far (resource.getrusage, MiB).

Inputs are the same pseudo-random token ids the C++ benchmark builds (a splitmix64
hash of seed, row and column), with no padding. Generation uses min = max new
tokens so that every system produces the same number of tokens.
"""
import json
import os
import resource
import shutil
import sys
import tempfile
import time

SPEC_VERSION = 1
SEED = 1234
T5_SMALL_SHAPE = dict(
    vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="relu",
    tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0)
FIRST_ORDINARY_ID = 3  # 0 pad, 1 </s>, 2 <unk>
MASK64 = (1 << 64) - 1


def token_id(seed, row, col, vocab):
    """splitmix64 of (seed, row, col), mapped onto the ordinary ids (mirrored in seq2seq.cpp)."""
    x = ((seed << 40) ^ (row << 20) ^ col) & MASK64
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return FIRST_ORDINARY_ID + x % (vocab - FIRST_ORDINARY_ID)


def input_ids(batch, length, vocab):
    return [[token_id(SEED, r, c, vocab) for c in range(length)] for r in range(batch)]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def token_string(i):
    return {0: "<pad>", 1: "</s>", 2: "<unk>"}.get(i, "tok%d" % i)


class IdVocabulary:
    """A stand-in tokenizer for the converter: it only needs the vocabulary and the
    special tokens (the benchmark feeds token ids, never text)."""

    def __init__(self, size):
        self.size = size
        self.pad_token, self.eos_token, self.unk_token = "<pad>", "</s>", "<unk>"

    def get_vocab(self):
        return {token_string(i): i for i in range(self.size)}

    def convert_ids_to_tokens(self, i):
        return token_string(i)


def prepare(folder):
    stamp_path = os.path.join(folder, "stamp.json")
    stamp = {"spec_version": SPEC_VERSION, "seed": SEED, "config": T5_SMALL_SHAPE}
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if json.load(f) == stamp:
                print(json.dumps(stamp))
                return
    import torch
    import ctranslate2.converters
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.utils import logging
    logging.set_verbosity_error()

    os.makedirs(os.path.dirname(os.path.abspath(folder)) or ".", exist_ok=True)
    work = tempfile.mkdtemp(prefix=".seq2seq_bench_", dir=os.path.dirname(os.path.abspath(folder)))
    try:
        torch.manual_seed(SEED)
        model = T5ForConditionalGeneration(T5Config(**T5_SMALL_SHAPE)).eval()
        model.save_pretrained(os.path.join(work, "hf"))

        class Converter(ctranslate2.converters.TransformersConverter):
            def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
                return IdVocabulary(T5_SMALL_SHAPE["vocab_size"])

        Converter(os.path.join(work, "hf")).convert(os.path.join(work, "ct2"), quantization=None, force=True)
        with open(os.path.join(work, "stamp.json"), "w") as f:
            json.dump(stamp, f)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(work, folder)
    finally:
        if os.path.exists(work):
            shutil.rmtree(work)
    print(json.dumps(stamp))


def parse_case(text):
    name, kind, batch, source_len, new_tokens, beams = text.split(":")
    if kind not in ("encoder", "generate"):
        raise SystemExit("unknown case kind %r in %r" % (kind, text))
    return dict(name=name, kind=kind, batch=int(batch), source_len=int(source_len), new_tokens=int(new_tokens),
                beams=int(beams))


def transformers_runner(folder, threads):
    import torch
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging
    logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = T5ForConditionalGeneration.from_pretrained(os.path.join(folder, "hf"), dtype=torch.float32).eval()
    vocab = model.config.vocab_size

    def make(case):
        ids = torch.tensor(input_ids(case["batch"], case["source_len"], vocab), dtype=torch.long)
        mask = torch.ones_like(ids)
        if case["kind"] == "encoder":
            def run():
                with torch.no_grad():
                    out = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                assert out.shape == (case["batch"], case["source_len"], model.config.d_model)
                return case["batch"] * case["source_len"]
        else:
            def run():
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=case["new_tokens"],
                                     min_new_tokens=case["new_tokens"], num_beams=case["beams"], do_sample=False)
                assert out.shape == (case["batch"], case["new_tokens"] + 1), out.shape
                return case["batch"] * case["new_tokens"]
        return run
    return make


def ctranslate2_runner(folder, threads):
    import ctranslate2
    translator = ctranslate2.Translator(os.path.join(folder, "ct2"), device="cpu", compute_type="float32",
                                        intra_threads=threads, inter_threads=1)
    vocab = T5_SMALL_SHAPE["vocab_size"]

    def make(case):
        tokens = [[token_string(i) for i in row] for row in input_ids(case["batch"], case["source_len"], vocab)]
        if case["kind"] == "encoder":
            # The Translator has no encoder-only call: one decoding step is the least it
            # runs after encoding, so this slightly understates CTranslate2's encoder.
            def run():
                out = translator.translate_batch(tokens, beam_size=1, max_decoding_length=1, min_decoding_length=1,
                                                 max_batch_size=0)
                assert len(out) == case["batch"]
                return case["batch"] * case["source_len"]
        else:
            def run():
                out = translator.translate_batch(tokens, beam_size=case["beams"], max_decoding_length=case["new_tokens"],
                                                 min_decoding_length=case["new_tokens"], max_batch_size=0,
                                                 num_hypotheses=1)
                assert len(out) == case["batch"]
                for result in out:
                    assert len(result.hypotheses[0]) == case["new_tokens"], len(result.hypotheses[0])
                return case["batch"] * case["new_tokens"]
        return run
    return make


def run(system, folder, threads, reps, cases):
    baseline = peak_rss_mib()
    start = time.perf_counter()
    make = {"transformers": transformers_runner, "ctranslate2": ctranslate2_runner}[system](folder, threads)
    report = {"system": system, "threads": threads, "load_seconds": time.perf_counter() - start,
              "rss_before_load_mib": baseline, "cases": {}}
    for case in cases:
        fn = make(case)
        fn()  # untimed warm-up
        seconds = []
        tokens = 0
        for _ in range(reps):
            t0 = time.perf_counter()
            tokens = fn()
            seconds.append(time.perf_counter() - t0)
        report["cases"][case["name"]] = {"seconds": seconds, "tokens": tokens, "peak_rss_mib": peak_rss_mib()}
    print(json.dumps(report))


def main(argv):
    if len(argv) == 3 and argv[1] == "prepare":
        prepare(argv[2])
    elif len(argv) >= 7 and argv[1] == "run" and argv[2] in ("transformers", "ctranslate2"):
        run(argv[2], argv[3], int(argv[4]), int(argv[5]), [parse_case(c) for c in argv[6:]])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
