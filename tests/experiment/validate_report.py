"""Validates a run folder's report.json against docs/report.schema.json, then checks what a schema
cannot: names that refer to each other, intervals around their values, one metric entry per
(task, metric) for every system.

    validate_report.py SCHEMA REPORT

Exits 0 when valid; otherwise prints every problem and exits 1.
"""
import json
import sys

import jsonschema


def main(schema_path, report_path):
    with open(schema_path) as f:
        schema = json.load(f)
    with open(report_path) as f:
        report = json.load(f)
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in jsonschema.Draft202012Validator(schema).iter_errors(report)]
    systems = {s["name"]: s for s in report.get("systems", [])}
    agents = {a["name"] for a in report.get("agents", [])}
    expected = [f"{t['name']}/{m}" for t in report.get("tasks", []) for m in t["metrics"]]
    for key in expected:
        if key not in report.get("metric_definitions", {}):
            problems.append(f"metric_definitions: no definition of {key}")
    for name, s in systems.items():
        for a in s["agents"]:
            if a not in agents:
                problems.append(f"systems.{name}.agents: unknown agent {a}")
        for key in expected:
            if key not in s["metrics"]:
                problems.append(f"systems.{name}.metrics: {key} missing")
        for key, m in s["metrics"].items():
            if m["answered_by"] != name:
                problems.append(f"systems.{name}.metrics.{key}.answered_by is {m['answered_by']}")
            if "ci95" in m and not (m["ci95"][0] - 1e-9 <= m["value"] <= m["ci95"][1] + 1e-9):
                problems.append(f"systems.{name}.metrics.{key}: value {m['value']} outside its ci95 {m['ci95']}")
    for c in report.get("comparisons", []):
        for role in ("system", "baseline"):
            if c[role] not in systems:
                problems.append(f"comparisons: unknown {role} {c[role]}")
        if c["metric"] not in expected:
            problems.append(f"comparisons: unknown metric {c['metric']}")
    for b in report.get("best_single_agent", []):
        if b["system"] not in systems or systems[b["system"]]["kind"] != "agent":
            problems.append(f"best_single_agent: {b['system']} is not an agent alone")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
