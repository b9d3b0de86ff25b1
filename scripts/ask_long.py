#!/usr/bin/env python3
"""Questions about one long document through `freekv ask`, with accuracy and timings. Benchmark-only (not in CI).

The first question opens the document (prefill, then its KV is saved to the library); every later one reopens it from
the saved KV, as a desktop user reopening the document would. Each answer is checked against the question's accepted
pattern (a case-insensitive regular expression).

usage: scripts/ask_long.py --doc FILE --questions FILE.json [--model GGUF] [--library DB] [--threads N] [--out FILE]
                          [--timeline FILE]
       scripts/ask_long.py --passkey TOKENS [--depths 0.1,0.5,0.9] ...   (a generated pass-key document per depth)

questions file: a JSON list of {"q": "...", "accept": "regex", "where": "chapter or part"}.
"""
import argparse
import json
import os
import pathlib
import pty
import random
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "


def passkey_doc(n_tokens, depth, key, path):
    # The filler reads as about 21 tokens per sentence group of 89 characters in Qwen's tokenizer.
    reps = max(1, int(n_tokens * len(FILLER) / 21 / len(FILLER)))
    parts = [FILLER] * reps
    parts.insert(int(reps * depth), f"The pass key is {key}. Remember it. {key} is the pass key. ")
    pathlib.Path(path).write_text("".join(parts))


def run_with_timeline(cmd, timeline):
    """Runs cmd with its stderr on a pseudo-terminal, so freekv draws its prefill progress line, and writes one JSON
    line per progress update to the file timeline: seconds since start, tokens done, tokens in all. One pass over a
    long document then gives the time to reach every length, which is how prefill cost against length is tabled."""
    master, slave = pty.openpty()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    err = []
    out = open(timeline, "w")

    def pump():
        buf = ""
        while True:
            try:
                chunk = os.read(master, 4096).decode(errors="replace")
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            now = time.monotonic() - t0
            buf += chunk
            for m in re.finditer(r"prefill\s+[\d.]+% \((\d+) / (\d+)", buf):
                out.write(json.dumps({"s": round(now, 3), "done": int(m.group(1)), "total": int(m.group(2))}) + "\n")
            out.flush()
            err.append(buf)
            buf = buf[buf.rfind("\r") + 1:] if "\r" in buf else ""

    reader = threading.Thread(target=pump)
    reader.start()
    stdout = p.stdout.read()
    p.wait()
    reader.join()
    os.close(master)
    out.close()
    return p.returncode, stdout, "".join(err)


def ask(args, doc, question, timeline=None):
    cmd = [args.freekv, "ask", "--doc", doc, "-q", question, "--json", "--temp", "0", "-n", str(args.max_tokens),
           "-t", str(args.threads), "--library", args.library]
    if args.model:
        cmd += ["-m", args.model]
    t0 = time.monotonic()
    if timeline:
        rc, stdout, stderr = run_with_timeline(cmd, timeline)
    else:
        p = subprocess.run(cmd, capture_output=True, text=True)
        rc, stdout, stderr = p.returncode, p.stdout, p.stderr
    wall = time.monotonic() - t0
    if rc != 0:
        return {"error": stderr.strip() or stdout.strip(), "wall_s": wall}
    r = json.loads(stdout)
    r["wall_s"] = wall
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc")
    ap.add_argument("--questions")
    ap.add_argument("--passkey", type=int, help="generate pass-key documents of about this many tokens")
    ap.add_argument("--depths", default="0.1,0.5,0.9")
    ap.add_argument("--model", default="")
    ap.add_argument("--library", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--freekv", default=str(ROOT / "build/release/app/freekv"))
    ap.add_argument("--out", help="also write one JSON line per question here")
    ap.add_argument("--timeline", help="the first question's prefill progress, one JSON line per update, goes here")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ask-long-")
    if not args.library:
        args.library = os.path.join(tmp, "library.db")

    runs = []  # (doc, question, accept, where)
    if args.passkey:
        rng = random.Random(args.passkey)
        for d in [float(x) for x in args.depths.split(",")]:
            key = rng.randrange(10000, 99999)
            doc = os.path.join(tmp, f"passkey-{args.passkey}-{d}.txt")
            passkey_doc(args.passkey, d, key, doc)
            runs.append((doc, "What is the pass key? Answer with the number.", str(key), f"depth {d}"))
    else:
        if not args.doc or not args.questions:
            ap.error("--doc and --questions, or --passkey")
        for q in json.loads(pathlib.Path(args.questions).read_text()):
            runs.append((args.doc, q["q"], q["accept"], q.get("where", "")))

    out = open(args.out, "a") if args.out else None
    right = 0
    for i, (doc, q, accept, where) in enumerate(runs):
        r = ask(args, doc, q, args.timeline if i == 0 else None)
        answer = r.get("answer", r.get("text", "")) if "error" not in r else ""
        ok = "error" not in r and re.search(accept, answer, re.IGNORECASE) is not None
        right += ok
        d = r.get("document", {})
        line = {"where": where, "question": q, "accept": accept, "answer": answer, "right": ok,
                "n_tokens": d.get("n_tokens"), "kv_source": d.get("kv_source"), "prefill_s": d.get("prefill_s"),
                "load_s": d.get("load_s"), "first_token_s": r.get("first_token_s"), "wall_s": round(r["wall_s"], 2),
                "decode_tokens_per_s": r.get("decode_tokens_per_s"), "n_generated": r.get("n_generated"),
                "retrieval": r.get("retrieval"), "error": r.get("error")}
        print(json.dumps(line), flush=True)
        if out:
            out.write(json.dumps(line) + "\n")
    print(f"{right}/{len(runs)} right", file=sys.stderr)


if __name__ == "__main__":
    main()
