#!/usr/bin/env python3
"""Markdown rows of the accuracy table in docs/benchmarks.md from `freekv eval --json` outputs.

Usage: scripts/eval_table.py RUN.json [RUN.json ...]
Columns: task, length, policy, exact (prompts whose answer holds every expected string), found (mean share found),
top-1 agreement and mean KL against full attention, corrected (freekv's share of checked KV-head steps re-selected).
"""
import json
import sys


def rows(path):
    with open(path) as f:
        run = json.load(f)
    for cell in run["results"]:
        items = cell["items"]
        exact = sum(1 for i in items if i["correct"])
        rate = cell.get("correction_rate")
        yield "| {} | {} | {} | {}/{} | {:.2f} | {:.3f} | {:.4f} | {} |".format(
            cell["task"], cell["length"], cell["policy"], exact, len(items), cell["answer_recall"],
            cell["agreement"], cell["mean_kl"], "-" if rate is None else "{:.1%}".format(rate))


def main(paths):
    if not paths:
        sys.exit(__doc__)
    print("| task | length | policy | exact | found | top-1 agreement | mean KL (nats) | corrected |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        for r in rows(p):
            print(r)


if __name__ == "__main__":
    main(sys.argv[1:])
