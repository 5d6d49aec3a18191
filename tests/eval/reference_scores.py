"""Reference scores from sacrebleu and rouge-score for the parity tests.

Reads a JSON file {"hyps": [...], "refs": [[stream 0], [stream 1], ...],
"sentence_indices": [...], "lsum_hyps": [...], "lsum_refs": [[...]],
"variants": ["bleu", "chrf_pp", ...], "rouge_stem_modes": [false, true], "stem_texts": [...] (optional), "baseline_hyps": [...] (optional)} and prints one JSON object with corpus
scores, signatures, sentence scores, per-segment ROUGE F, Porter stems and
SQuAD answer metrics, plus bootstrap intervals and paired-test p-values
when a baseline is given. Only the reference packages compute anything here;
the SQuAD normalisation is the official evaluation script's definition."""
import collections
import json
import re
import string
import sys

import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest


def squad_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction, gold):
    pred, ref = squad_normalize(prediction).split(), squad_normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(ref)
    return 2 * p * r / (p + r)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    hyps, refs = data["hyps"], data["refs"]
    out = {"sacrebleu_version": sacrebleu.__version__}

    bleu_variants = {
        "bleu": BLEU(),
        "bleu_lc": BLEU(lowercase=True),
        "bleu_floor": BLEU(smooth_method="floor"),
        "bleu_addk": BLEU(smooth_method="add-k"),
        "bleu_none": BLEU(smooth_method="none"),
        "bleu_eff": BLEU(effective_order=True),
        "chrf": CHRF(),
        "chrf_lc": CHRF(lowercase=True),
        "chrf_pp": CHRF(word_order=2),
        "chrf_ws": CHRF(whitespace=True),
        "chrf_eps": CHRF(eps_smoothing=True),
    }
    out["corpus"] = {}
    for name in data["variants"]:
        metric = bleu_variants[name]
        score = metric.corpus_score(hyps, refs)
        out["corpus"][name] = {"score": score.score, "signature": str(metric.get_signature())}

    sentence_bleu, sentence_chrf, sentence_chrfpp = BLEU(effective_order=True), CHRF(), CHRF(word_order=2)
    out["sentence"] = {"bleu": [], "chrf": [], "chrf_pp": []}
    for i in data["sentence_indices"]:
        seg_refs = [stream[i] for stream in refs]
        out["sentence"]["bleu"].append(sentence_bleu.sentence_score(hyps[i], seg_refs).score)
        out["sentence"]["chrf"].append(sentence_chrf.sentence_score(hyps[i], seg_refs).score)
        out["sentence"]["chrf_pp"].append(sentence_chrfpp.sentence_score(hyps[i], seg_refs).score)

    out["rouge"] = {}
    for stem in data["rouge_stem_modes"]:
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
        lsum = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=stem)
        per_type = {"rouge1": [], "rouge2": [], "rougeL": [], "rougeLsum": []}
        for i, hyp in enumerate(hyps):
            scores = scorer.score_multi([stream[i] for stream in refs], hyp)
            for key in ("rouge1", "rouge2", "rougeL"):
                per_type[key].append(scores[key].fmeasure)
            lscore = lsum.score_multi([stream[i] for stream in data["lsum_refs"]], data["lsum_hyps"][i])
            per_type["rougeLsum"].append(lscore["rougeLsum"].fmeasure)
        out["rouge"]["stem" if stem else "plain"] = per_type

    words = set()
    for text in hyps + [r for stream in refs for r in stream] + data.get("stem_texts", []):
        words.update(t for t in tokenize.tokenize(text, None) if len(t) > 3)
    stemmer = porter.PorterStemmer()
    out["stems"] = {w: stemmer.stem(w) for w in sorted(words)}

    out["squad"] = {"em": [], "f1": []}
    for i, hyp in enumerate(hyps):
        golds = [stream[i] for stream in refs]
        out["squad"]["em"].append(max(float(squad_normalize(hyp) == squad_normalize(g)) for g in golds))
        out["squad"]["f1"].append(max(squad_f1(hyp, g) for g in golds))

    if "baseline_hyps" in data:
        for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
            score = metric.corpus_score(hyps, refs, n_bootstrap=1000)
            out["corpus"][name]["ci_mean"] = float(score._mean)
            out["corpus"][name]["ci_half_width"] = float(score._ci)
        out["paired"] = {}
        for test_type in ("bs", "ar"):
            test = PairedTest([("baseline", data["baseline_hyps"]), ("system", hyps)],
                              {"BLEU": BLEU(), "chrF": CHRF()}, refs, test_type=test_type,
                              n_samples=1000)
            _, results = test()
            out["paired"][test_type] = {"bleu": float(results["BLEU"][1].p_value),
                                        "chrf": float(results["chrF2"][1].p_value)}

    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
