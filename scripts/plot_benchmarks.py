#!/usr/bin/env python3
"""Renders the benchmark plots of docs/benchmarks.md from the JSON under docs/benchmarks/.

    python3 scripts/plot_benchmarks.py [--data docs/benchmarks] [--out docs/images]

Each JSON file holds one table of docs/benchmarks.md with its machine, date and command; each plot carries them in
its footer, so a picture never travels without what it measured. The PNGs are written without a time stamp, so the
same data gives the same files. Needs matplotlib (pip install matplotlib, or apt install python3-matplotlib); the
tests do not.
"""
import argparse
import json
import sys
from pathlib import Path

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    sys.exit("plot_benchmarks.py needs matplotlib: pip install matplotlib (or apt install python3-matplotlib)")

ROOT = Path(__file__).resolve().parent.parent
POLICY_COLOURS = {"full": "#6c757d", "streaming": "#adb5bd", "quest": "#457b9d", "arkvale": "#a8dadc",
                  "freekv": "#e76f51", "freekv@0.8": "#f4a261", "freekv@0.9": "#e76f51", "freekv@0.95": "#9d0208"}
DPI = 110


def load(data_dir, name, required=("table", "machine", "date")):
    path = data_dir / name
    with open(path, encoding="utf-8") as f:
        table = json.load(f)
    for key in required:
        if key not in table:
            sys.exit(f"{path}: expected a '{key}' field, found none")
    return table


def footer(fig, table, machine, command=None):
    """Machine, date and command under the plot."""
    cmd = command or table.get("command", "")
    lines = [f"{machine['description']}; {table['date']}", f"$ {cmd}" if cmd else ""]
    fig.text(0.01, 0.01, "\n".join(l for l in lines if l), fontsize=6.5, family="monospace", va="bottom", wrap=True)


def save(fig, out_dir, name):
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def plot_spine(table, machine, out_dir):
    models = list(dict.fromkeys(r["model"] for r in table["rows"]))
    fig, axes = plt.subplots(1, len(models), figsize=(9, 3.4))
    for ax, model in zip(axes, models):
        rows = [r for r in table["rows"] if r["model"] == model]
        labels = [r["measure"] for r in rows]
        ax.barh(labels, [r["tokens_per_s"] for r in rows], xerr=[r["sd"] for r in rows], color="#457b9d", capsize=3)
        ax.invert_yaxis()
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("tokens/s (2 threads)")
        for y, r in enumerate(rows):
            ax.text(r["tokens_per_s"] + r["sd"], y, f"  {r['tokens_per_s']:.1f}", va="center", fontsize=7)
        ax.set_xlim(0, 1.2 * max(r["tokens_per_s"] + r["sd"] for r in rows))
    fig.suptitle("CPU engine: prefill and decode speed", fontsize=10)
    fig.subplots_adjust(left=0.19, right=0.97, wspace=0.85, bottom=0.3, top=0.84)
    footer(fig, table, machine, "freekv bench (-m MODEL | --synthetic tinyllama-q8_0) --prompt-tokens 512 "
                                "[--context N] --decode-tokens 64 -t 2 --repeat 3 --json")
    save(fig, out_dir, "bench_spine.png")


def plot_decode_context(table, machine, out_dir):
    contexts = sorted({r["context"] for r in table["rows"]})
    policies = list(dict.fromkeys(r["policy"] for r in table["rows"]))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        rows = {r["context"]: r for r in table["rows"] if r["policy"] == policy}
        xs = [c + (i - (len(policies) - 1) / 2) * width for c in range(len(contexts))]
        vals = [rows[c]["tokens_per_s"] for c in contexts]
        sds = [rows[c]["sd"] for c in contexts]
        ax.bar(xs, vals, width, yerr=sds, capsize=3, label=policy, color=POLICY_COLOURS.get(policy))
        for x, v, sd in zip(xs, vals, sds):
            ax.text(x, v + sd + 0.6, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.2 * max(r["tokens_per_s"] + r["sd"] for r in table["rows"]))
    ax.set_xticks(range(len(contexts)), [f"{c:,} tokens of context" for c in contexts])
    ax.set_ylabel("decode tokens/s")
    ax.set_title(f"{table['table']}\nbudget {table['budget']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.subplots_adjust(bottom=0.24, top=0.85)
    footer(fig, table, machine)
    save(fig, out_dir, "bench_decode_context.png")


def plot_correction_tau(table, machine, out_dir):
    rows = table["rows"]
    labels = [f"tau {r['tau']:g}" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(labels, [r["tokens_per_s"] for r in rows], yerr=[r["sd"] for r in rows], capsize=3, color="#e76f51")
    ax.set_ylabel("decode tokens/s")
    rate = ax.twinx()
    rate.plot(labels, [100 * r["correction_rate"] for r in rows], "o-", color="#1d3557")
    rate.set_ylabel("heads corrected (%)", color="#1d3557")
    rate.set_ylim(0, 105)
    ax.set_title(table["table"], fontsize=9)
    fig.subplots_adjust(bottom=0.24, top=0.9, right=0.88)
    footer(fig, table, machine)
    save(fig, out_dir, "bench_correction_tau.png")


def plot_fidelity(table, machine, out_dir, image="bench_fidelity.png"):
    tasks = list(dict.fromkeys(r["task"] for r in table["rows"]))
    policies = [p for p in dict.fromkeys(r["policy"] for r in table["rows"]) if p != "full"]
    fig, (agree_ax, kl_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        rows = {r["task"]: r for r in table["rows"] if r["policy"] == policy}
        xs = [t + (i - (len(policies) - 1) / 2) * width for t in range(len(tasks))]
        colour = POLICY_COLOURS.get(policy)
        agree_ax.bar(xs, [rows[t]["top1_agreement"] for t in tasks], width, label=policy, color=colour)
        kl_ax.bar(xs, [rows[t]["mean_kl_nats"] for t in tasks], width, label=policy, color=colour)
    agree_ax.set_ylim(0.88, 1.0)
    agree_ax.axhline(0.95, color="black", lw=0.8, ls="--")
    agree_ax.set_ylabel("top-1 agreement with full")
    kl_ax.axhline(0.05, color="black", lw=0.8, ls="--")
    kl_ax.set_ylabel("mean KL(full || policy), nats")
    for ax in (agree_ax, kl_ax):
        ax.set_xticks(range(len(tasks)), tasks)
    kl_ax.legend(fontsize=7, ncol=2)
    fig.suptitle(table["table"] + " (dashed: the targets)", fontsize=9)
    fig.subplots_adjust(bottom=0.24, top=0.9, wspace=0.3)
    footer(fig, table, machine)
    save(fig, out_dir, image)


def plot_reopen(table, machine, out_dir):
    paths = table["paths"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    labels = [f"{p['path']} path" for p in paths]
    vals = [p["first_token_s"] for p in paths]
    ax.barh(labels, vals, color=["#6c757d", "#e76f51"])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("seconds from opening the document to the first answer token (log scale)")
    for y, v in enumerate(vals):
        ax.text(v, y, f"  {v:.2f} s", va="center", fontsize=8)
    ax.set_xlim(0.1, 200)
    ax.set_title(table["table"], fontsize=9)
    fig.subplots_adjust(left=0.16, bottom=0.33, top=0.88)
    footer(fig, table, machine)
    save(fig, out_dir, "bench_reopen.png")


PLOTS = {"spine.json": plot_spine, "decode_context.json": plot_decode_context,
         "correction_tau.json": plot_correction_tau, "fidelity_gemma3_270m_8k.json": plot_fidelity,
         "reopen_16k.json": plot_reopen,
         "eval_qwen25_coder_05b_8k.json": lambda t, m, o: plot_fidelity(t, m, o, "bench_eval_qwen25_05b_8k.png")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if not (args.data / "machine.json").exists():
        sys.exit(f"{args.data}: expected machine.json (the machine the tables were measured on), found none")
    machine = load(args.data, "machine.json", required=("id", "description"))
    unknown = sorted(p.name for p in args.data.glob("*.json") if p.name not in PLOTS and p.name != "machine.json")
    if unknown:
        sys.exit(f"{args.data}: no plot is defined for {', '.join(unknown)} (add one to PLOTS)")
    for name, plot in PLOTS.items():
        table = load(args.data, name)
        if table["machine"] != machine["id"]:
            sys.exit(f"{name}: measured on '{table['machine']}', expected '{machine['id']}' (machine.json)")
        plot(table, machine, args.out)


if __name__ == "__main__":
    main()
