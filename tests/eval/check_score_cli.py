"""Checks `chorus score --json` end to end against sacrebleu and rouge-score on
Multi30k validation files (German hypotheses, English and French references).
Usage: python check_score_cli.py CHORUS_BINARY. Exits 77 (skip) without data."""
import gzip
import json
import os
import subprocess
import sys
import tempfile

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from shared_data import data_root


def main():
    root = data_root()
    files = {lang: os.path.join(root or "", "multi30k", f"val.{lang}.gz") for lang in ("de", "en", "fr")}
    if root is None or not all(os.path.exists(p) for p in files.values()):
        print("skipped: multi30k/val.{de,en,fr}.gz not found under the data root (set CHORUS_DATA)")
        return 77
    lines = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for lang, path in files.items():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines[lang] = f.read().split("\n")[:-1]
            paths[lang] = os.path.join(tmp, f"{lang}.txt")
            # CRLF line ends on one file: they must not change any score.
            with open(paths[lang], "w", encoding="utf-8", newline="\r\n" if lang == "fr" else "\n") as f:
                f.write("\n".join(lines[lang]) + "\n")
        metrics = "bleu,chrf,chrf++,rouge1,rouge2,rougeL,rougeLsum"
        out = subprocess.run([sys.argv[1], "score", "--metrics", metrics, "--refs", paths["en"], "--refs", paths["fr"],
                              "--hyps", paths["de"], "--json", "--allow-empty-lines"],
                             capture_output=True, text=True, check=True).stdout
    ours = json.loads(out)
    hyps, refs = lines["de"], [lines["en"], lines["fr"]]
    expected = {}
    for key, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("chrf++", CHRF(word_order=2))):
        expected[key] = (metric.corpus_score(hyps, refs).score, str(metric.get_signature()))
    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(types)
    sums = dict.fromkeys(types, 0.0)
    for i, hyp in enumerate(hyps):
        scores = scorer.score_multi([refs[0][i], refs[1][i]], hyp)
        for t in types:
            sums[t] += scores[t].fmeasure
    for t in types:
        expected[t] = (100.0 * sums[t] / len(hyps), None)

    failures = 0
    for key, (score, signature) in expected.items():
        tolerance = 0.01  # 0.01 for BLEU/chrF; 1e-4 of ROUGE F on the 0..100 scale
        ok = abs(ours[key]["score"] - score) <= tolerance and (signature is None or ours[key]["signature"] == signature)
        print(f"{key}: chorus {ours[key]['score']:.6f} {ours[key]['signature']} | reference {score:.6f} {signature or ''}"
              f" {'ok' if ok else 'MISMATCH'}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
