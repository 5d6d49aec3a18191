"""Builds tiny random-weight T5, T5 v1.1 and BART models with tokenizers trained on a few
sentences, and dumps the negative log-likelihood Hugging Face computes for texts under them,
for the perplexity parity tests.

    fluency_reference.py OUTDIR

OUTDIR/<model>/ holds a loadable model folder (config.json, model.safetensors and spiece.model or
vocab.json + merges.txt); OUTDIR/reference.json holds, per model and case, the token ids and
`model(input_ids=..., labels=...).loss * len(labels)` of each text, one text per call (no padding).
"""
import json
import os
import sys

import sentencepiece as spm
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (BartConfig, BartForConditionalGeneration, BartTokenizer, T5Config,
                          T5ForConditionalGeneration, T5Tokenizer)
from transformers.utils import logging

logging.set_verbosity_error()
torch.set_num_threads(1)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
    "Two young children are playing in the sand near the water.",
    "The history of the valley goes back to the early medieval period.",
    "She said that the results were better than anyone had expected.",
    "In 1998 the band released its third album, which sold well in Europe.",
    "Rain fell on the city for three days and the river rose quickly.",
    "The committee will meet again next week to discuss the proposal.",
    "Numbers such as 42, 7 and 1000 appear in the text as well.",
    "Die Katze sitzt auf der Matte und schaut aus dem Fenster.",
]

# The texts scored: sentences of the corpus, unseen ones, a long one and the empty text.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Two children are playing near the river.",
    "the the the the",
    "",
    "The committee said that the album sold well in the city during three rainy weeks of 1998, "
    "and that the results were better than expected by anyone in Europe.",
    "Windows!",
]
SOURCES = [
    "A fox and a dog.",
    "Children play.",
    "",
    "Something about nothing.",
    "A long summary.",
    "Clean the windows.",
]


def train_sentencepiece(folder):
    path = os.path.join(folder, "spiece.model")
    with open(path, "wb") as out:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=out, vocab_size=90,
                                       model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                       character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
                                       minloglevel=2)
    return T5Tokenizer(vocab_file=path, legacy=True)


def train_byte_level_bpe(folder):
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=320, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(folder)
    return BartTokenizer(vocab_file=os.path.join(folder, "vocab.json"),
                         merges_file=os.path.join(folder, "merges.txt"))


def make_t5(tokenizer, gated):
    return T5ForConditionalGeneration(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu" if gated else "relu", tie_word_embeddings=not gated,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, dropout_rate=0.0))


def make_bart(tokenizer):
    return BartForConditionalGeneration(BartConfig(
        vocab_size=len(tokenizer), d_model=24, encoder_layers=2, decoder_layers=2, encoder_attention_heads=3,
        decoder_attention_heads=2, encoder_ffn_dim=40, decoder_ffn_dim=28, max_position_embeddings=128,
        scale_embedding=True, activation_function="gelu", dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, init_std=0.1))


def score(model, tokenizer, text, source):
    labels = tokenizer(text_target=text).input_ids
    input_ids = tokenizer(source).input_ids
    with torch.no_grad():
        out = model(input_ids=torch.tensor([input_ids]), labels=torch.tensor([labels]))
    return {"text": text, "source": source, "label_ids": labels, "source_ids": input_ids,
            "nll": out.loss.item() * len(labels), "tokens": len(labels)}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    reference = {}
    for index, name in enumerate(["t5", "t5_v1_1", "bart"]):
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        torch.manual_seed(1000 + index)
        if name.startswith("t5"):
            tokenizer = train_sentencepiece(folder)
            model = make_t5(tokenizer, gated=name == "t5_v1_1")
        else:
            tokenizer = train_byte_level_bpe(folder)
            model = make_bart(tokenizer)
        model.eval()
        model.save_pretrained(folder, safe_serialization=True)
        reference[name] = {
            "language_model": [score(model, tokenizer, text, "") for text in TEXTS],
            "conditioned": [score(model, tokenizer, text, source) for text, source in zip(TEXTS, SOURCES)],
        }
    with open(os.path.join(out_dir, "reference.json"), "w") as out:
        json.dump(reference, out, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
