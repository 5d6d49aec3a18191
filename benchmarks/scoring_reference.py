"""The Python side of benchmarks/scoring.cpp: corpus BLEU and chrF with
sacrebleu, ROUGE-1/2/L with rouge-score, on one hypothesis file and one
reference file. Prints a JSON object with the scores and the seconds spent
scoring (file reading and imports excluded)."""
import json
import sys
import time

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        hyps = f.read().split("\n")[:-1]
    with open(sys.argv[2], encoding="utf-8") as f:
        refs = f.read().split("\n")[:-1]
    start = time.perf_counter()
    bleu = BLEU().corpus_score(hyps, [refs]).score
    chrf = CHRF().corpus_score(hyps, [refs]).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hyps, refs):
        for key, score in scorer.score(ref, hyp).items():
            sums[key] += score.fmeasure
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "bleu": bleu, "chrf": chrf}
    out.update({k: 100.0 * v / len(hyps) for k, v in sums.items()})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
