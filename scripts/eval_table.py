#!/usr/bin/env python3
"""Markdown rows of the accuracy table in docs/benchmarks.md from `freekv eval --json` outputs.

Usage: scripts/eval_table.py RUN.json [RUN.json ...]
Cells of the same task, length and policy from several runs (a grid split with `freekv eval --items`) are merged: their
prompts are pooled, and a prompt number seen twice is an error, since it would count one prompt twice; so are runs of
another model, prompt style, system turn or seed in one cell, since their prompts are other prompts.
Columns: task, length, policy, exact (prompts whose answer holds every expected string), found (mean share found),
top-1 agreement and mean KL against full attention, corrected (freekv's share of checked KV-head steps re-selected).
A line under the table counts the runs by the CPU kernels and threads they record (runs before the fields: unrecorded).
"""
import json
import sys


def load_runs(paths):
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append((path, json.load(f)))
    return runs


def merged_cells(runs):
    cells = {}  # (task, length, policy) -> {"items": [...], "checked": n, "corrected": n, "recall": [...]}
    for path, run in runs:
        for cell in run["results"]:
            key = (cell["task"], cell["length"], cell["policy"])
            setup = (run["model"], run.get("prompt"), run.get("system", ""), run.get("seed"))
            c = cells.setdefault(key, {"items": [], "checked": 0, "corrected": 0, "recall": [], "setup": setup})
            if c["setup"] != setup:
                sys.exit("{}: {} {} {} was run with another model, prompt, system turn or seed ({} against {})".format(
                    path, *key, setup, c["setup"]))
            seen = {i["index"] for i in c["items"]}
            for item in cell["items"]:
                if item["index"] in seen:
                    sys.exit("{}: prompt {} of {} {} {} is in another run too".format(
                        path, item["index"] + 1, *key))
                expected = item.get("answers_expected")
                if expected is None:  # runs before the field: the cell's own mean holds for it alone
                    if len(cell["items"]) != 1 and len(runs) > 1:
                        sys.exit("{}: no answers_expected per prompt, so it cannot be merged".format(path))
                    c["recall"].append(cell["answer_recall"])
                else:
                    c["recall"].append(item["answers_found"] / max(1, expected))
                c["items"].append(item)
            c["checked"] += cell.get("heads_checked", 0)
            c["corrected"] += cell.get("heads_corrected", 0)
    return cells


def rows(runs):
    for (task, length, policy), c in merged_cells(runs).items():
        items = c["items"]
        n = len(items)
        exact = sum(1 for i in items if i["correct"])
        rate = "-" if c["checked"] == 0 else "{:.1%}".format(c["corrected"] / c["checked"])
        yield "| {} | {} | {} | {}/{} | {:.2f} | {:.3f} | {:.4f} | {} |".format(
            task, length, policy, exact, n, sum(c["recall"]) / n, sum(i["agreement"] for i in items) / n,
            sum(i["mean_kl"] for i in items) / n, rate)


def main(paths):
    if not paths:
        sys.exit(__doc__)
    print("| task | length | policy | exact | found | top-1 agreement | mean KL (nats) | corrected |")
    print("|---|---|---|---|---|---|---|---|")
    runs = load_runs(paths)
    for r in rows(runs):
        print(r)
    machines = {}
    for _, run in runs:
        key = "{}, {} threads".format(run["isa"], run["threads"]) if "isa" in run else "unrecorded"
        machines[key] = machines.get(key, 0) + 1
    if list(machines) != ["unrecorded"]:
        print("\nRuns by kernels and threads: " + "; ".join("{}: {}".format(k, n) for k, n in sorted(machines.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
