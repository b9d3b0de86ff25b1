#!/usr/bin/env python3
"""Markdown rows of the accuracy table in docs/benchmarks.md from `freekv eval --json` outputs.

Usage: scripts/eval_table.py [--answer] RUN.json [RUN.json ...]
Cells of the same task, length and policy from several runs (a grid split with `freekv eval --items`) are merged: their
prompts are pooled, and a prompt number seen twice is an error, since it would count one prompt twice; so are runs of
another model, prompt style, system turn or seed in one cell, since their prompts are other prompts, and runs with
another retrieval budget or prefill mode, since they measure something else.
Columns: task, length, policy, exact (prompts whose answer holds every expected string), found (mean share found),
top-1 agreement and mean KL against full attention, corrected (freekv's share of checked KV-head steps re-selected).
With --answer, agreement and KL are taken over the steps that predict the reference's answer, to its end, pooled over
the cell's answer steps (runs from before eval recorded them are an error); without it, over every decode step,
averaged over prompts, so they depend on how many steps ran past the answer.
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
            # Runs from before eval recorded its prefill mode prefilled densely.
            setup = (run["model"], run.get("prompt"), run.get("system", ""), run.get("seed"),
                     json.dumps(run.get("budget"), sort_keys=True), run.get("prefill", "dense"))
            c = cells.setdefault(key, {"items": [], "checked": 0, "corrected": 0, "recall": [], "setup": setup})
            if c["setup"] != setup:
                sys.exit("{}: {} {} {} was run with another model, prompt, system turn, seed, budget or prefill mode "
                         "({} against {})".format(
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


def answer_span(items, key):
    """(agreement, mean KL) over the answer steps of `items`: 1 and 0 where no answer took a decode step."""
    missing = [i["index"] + 1 for i in items if "answer_steps" not in i]
    if missing:
        sys.exit("{} {} {}: prompts {} were run before eval recorded answer steps; run them again or leave out "
                 "--answer".format(*key, missing))
    steps = sum(i["answer_steps"] for i in items)
    if steps == 0:
        return 1.0, 0.0
    return (sum(i["answer_agreement"] * i["answer_steps"] for i in items) / steps,
            sum(i["answer_mean_kl"] * i["answer_steps"] for i in items) / steps)


def rows(runs, answer=False):
    for key, c in merged_cells(runs).items():
        items = c["items"]
        n = len(items)
        exact = sum(1 for i in items if i["correct"])
        rate = "-" if c["checked"] == 0 else "{:.1%}".format(c["corrected"] / c["checked"])
        if answer:
            agreement, kl = answer_span(items, key)
        else:
            agreement, kl = sum(i["agreement"] for i in items) / n, sum(i["mean_kl"] for i in items) / n
        yield "| {} | {} | {} | {}/{} | {:.2f} | {:.3f} | {:.4f} | {} |".format(
            *key, exact, n, sum(c["recall"]) / n, agreement, kl, rate)


def main(args):
    answer = "--answer" in args
    paths = [a for a in args if a != "--answer"]
    if not paths:
        sys.exit(__doc__)
    runs = load_runs(paths)
    table = list(rows(runs, answer))
    over = " over the answer" if answer else ""
    print("| task | length | policy | exact | found | top-1 agreement{0} | mean KL{0} (nats) | corrected |".format(over))
    print("|---|---|---|---|---|---|---|---|")
    for r in table:
        print(r)
    machines = {}
    for _, run in runs:
        key = "{}, {} threads".format(run["isa"], run["threads"]) if "isa" in run else "unrecorded"
        machines[key] = machines.get(key, 0) + 1
    if list(machines) != ["unrecorded"]:
        print("\nRuns by kernels and threads: " + "; ".join("{}: {}".format(k, n) for k, n in sorted(machines.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
