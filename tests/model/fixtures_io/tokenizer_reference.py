"""Reference side of the tokenizer parity tests: Hugging Face transformers/tokenizers.

  tokenizer_reference.py OUT_DIR SPIECE_MODEL BPE_TRAIN_FILE DATA_FILE...
  tokenizer_reference.py --t5-fast OUT_DIR SPIECE_MODEL DATA_FILE...

Builds, under OUT_DIR:
  t5/             a T5 tokenizer folder (T5Tokenizer(vocab_file=SPIECE_MODEL).save_pretrained)
  bpe/            vocab.json + merges.txt of a byte-level BPE trained on BPE_TRAIN_FILE
  bpe_json/       the same tokenizer saved by BartTokenizerFast.save_pretrained, without vocab.json/merges.txt
  t5.jsonl        {"text", "ids"} per line from T5Tokenizer (the slow one: the fast one needs protobuf to
                  convert a SentencePiece model), plus "decoded" and "decoded_special" on sampled lines
  bpe.jsonl       {"text", "ids", "decoded", "pieces"}: BartTokenizerFast ids and decode, the GPT-2
                  pattern's pieces from the `regex` module, and "slow_ids" (BartTokenizer) on sampled lines
for every line of every DATA_FILE (.gz or plain), plus EDGE_CASES.

The slow tokenizers' decode takes ~10 ms a line, so it runs on the edge cases and every
DECODE_STRIDE-th line only; the rest of the lines check encoding.

With --t5-fast it writes, under OUT_DIR, the same t5/ folder, versions.json (the versions of
sentencepiece, tokenizers and transformers) and t5_fast.jsonl: {"source", "text", "ids",
"decoded", "decoded_special"} for every line from T5TokenizerFast (tokenizers' Rust
implementation, converted from the t5/ folder's spiece.model), "source" naming the DATA_FILE
("edge" for EDGE_CASES). Converting a SentencePiece model needs protobuf; without it the script
exits with status NO_PROTOBUF_STATUS and says so.
"""
import gzip
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import regex  # noqa: E402
from tokenizers import ByteLevelBPETokenizer  # noqa: E402
from transformers import BartTokenizer, BartTokenizerFast, T5Tokenizer  # noqa: E402
from transformers.utils import logging  # noqa: E402

logging.set_verbosity_error()

GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

# Lines that exercise the special-token and whitespace rules beyond what the corpora hold.
EDGE_CASES = [
    "",
    " ",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\n and  double  spaces",
    "Translate: <extra_id_0> the <extra_id_1>  cat <extra_id_99>",
    "ends with eos</s>",
    "<pad> padded <unk> unknown </s> eos",
    "a <mask> word and <mask>",
    "<s>wrapped</s>",
    "don't you'll we're I've she'd it's I'm 'quoted' O'Neil",
    "numbers 1,234.56 and ½ ⅔ ²³ Ⅻ",
    "Ünïcödé çàfé naïve Straße œuvre",
    "emoji 🤖🎉 and CJK 漢字 かな 한국어",
    "non\u00a0breaking\u2009thin\u3000ideographic",
    "mixed123abc___---!!!???",
    "   ",
    "\u2028line separator\u0085next line",
    "extra_id_0 <extra_id_0><extra_id_1>",
    "<extra_id_100> is not a sentinel",
]


DECODE_STRIDE = 25


def sampled(index):
    return index < len(EDGE_CASES) or index % DECODE_STRIDE == 0


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


NO_PROTOBUF_STATUS = 3


def versions():
    import sentencepiece
    import tokenizers
    import transformers
    return {"sentencepiece": sentencepiece.__version__, "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__}


def t5_fast_main(out_dir, spiece_model, data_files):
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        print("protobuf is not installed: T5TokenizerFast cannot convert spiece.model")
        return NO_PROTOBUF_STATUS
    from transformers import T5TokenizerFast

    folder = os.path.join(out_dir, "t5")
    T5Tokenizer(vocab_file=spiece_model, legacy=True).save_pretrained(folder)
    # from_pretrained reads add_prefix_space=True from the folder's tokenizer_config.json.
    # T5TokenizerFast(vocab_file=...) alone converts with add_prefix_space=None, i.e. without
    # SentencePiece's dummy prefix (Metaspace prepend_scheme "never"), and then differs from
    # spiece.model on every line that does not start with whitespace.
    fast = T5TokenizerFast.from_pretrained(folder)
    if fast.backend_tokenizer.pre_tokenizer.prepend_scheme != "always":
        print("T5TokenizerFast converted without the dummy prefix: "
              f"{fast.backend_tokenizer.pre_tokenizer}")
        return 1
    sources = [("edge", line) for line in EDGE_CASES]
    for path in data_files:
        sources.extend((os.path.basename(path), line) for line in read_lines(path))
    lines = [line for _, line in sources]
    all_ids = fast(lines).input_ids
    decoded = fast.batch_decode(all_ids, skip_special_tokens=True)
    decoded_special = fast.batch_decode(all_ids, skip_special_tokens=False)
    with open(os.path.join(out_dir, "t5_fast.jsonl"), "w", encoding="utf-8") as out:
        for (source, line), ids, text, special in zip(sources, all_ids, decoded, decoded_special):
            out.write(json.dumps({"source": source, "text": line, "ids": ids, "decoded": text,
                                  "decoded_special": special}) + "\n")
    with open(os.path.join(out_dir, "versions.json"), "w", encoding="utf-8") as out:
        json.dump(versions(), out)
    return 0


def main():
    if sys.argv[1] == "--t5-fast":
        return t5_fast_main(sys.argv[2], sys.argv[3], sys.argv[4:])
    out_dir, spiece_model, train_file, data_files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    lines = list(EDGE_CASES)
    for path in data_files:
        lines.extend(read_lines(path))

    # T5: the real SentencePiece model wrapped as transformers saves a T5 tokenizer.
    t5 = T5Tokenizer(vocab_file=spiece_model, legacy=True)
    t5.save_pretrained(os.path.join(out_dir, "t5"))
    with open(os.path.join(out_dir, "t5.jsonl"), "w", encoding="utf-8") as out:
        for index, (line, ids) in enumerate(zip(lines, t5(lines).input_ids)):
            record = {"text": line, "ids": ids}
            if sampled(index):
                record["decoded"] = t5.decode(ids, skip_special_tokens=True)
                record["decoded_special"] = t5.decode(ids, skip_special_tokens=False)
            out.write(json.dumps(record) + "\n")
    with open(os.path.join(out_dir, "versions.json"), "w", encoding="utf-8") as out:
        json.dump(versions(), out)

    # BART-style byte-level BPE trained on local text.
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(read_lines(train_file), vocab_size=3000, min_frequency=2,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe_dir = os.path.join(out_dir, "bpe")
    os.makedirs(bpe_dir, exist_ok=True)
    trainer.save_model(bpe_dir)
    vocab, merges = os.path.join(bpe_dir, "vocab.json"), os.path.join(bpe_dir, "merges.txt")
    slow = BartTokenizer(vocab_file=vocab, merges_file=merges)
    fast = BartTokenizerFast(vocab_file=vocab, merges_file=merges)
    json_dir = os.path.join(out_dir, "bpe_json")
    fast.save_pretrained(json_dir)
    for name in ("vocab.json", "merges.txt"):
        path = os.path.join(json_dir, name)
        if os.path.exists(path):
            os.remove(path)
    all_ids = fast(lines).input_ids
    decoded = fast.batch_decode(all_ids, skip_special_tokens=True)
    with open(os.path.join(out_dir, "bpe.jsonl"), "w", encoding="utf-8") as out:
        for index, (line, ids, text) in enumerate(zip(lines, all_ids, decoded)):
            record = {"text": line, "ids": ids, "decoded": text, "pieces": GPT2_PATTERN.findall(line)}
            if sampled(index):
                record["slow_ids"] = slow(line).input_ids
                record["slow_decoded"] = slow.decode(ids, skip_special_tokens=True)
            out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
