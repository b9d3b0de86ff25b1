#!/usr/bin/env python3
"""The peer side of scripts/bench_peer.sh: llama.cpp, driven through llama-cpp-python's low-level API.

  peer_llamacpp.py info
  peer_llamacpp.py bench -m MODEL [-t N] [--prompt-tokens P] [--context C] [--decode-tokens M] [--repeat R] [--json]
  peer_llamacpp.py perplexity -m MODEL -f FILE [-c N] [-t N] [--json]

bench mirrors `freekv bench`: prefill = P random tokens evaluated from an empty cache; decode = C random tokens
evaluated first (not timed), then M tokens evaluated one at a time. Times are wall clock around llama_decode, as
llama-bench takes them. perplexity follows llama.cpp's perplexity tool (see perplexity() below), one chunk at a time.
"""
import argparse
import ctypes
import json
import math
import random
import statistics
import sys
import time

import numpy as np
import llama_cpp as L

FLASH_ATTN = {"on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED, "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED,
              "auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO}


@L.llama_log_callback
def _drop_log(level, text, user_data):
    pass


class Runner:
    """One model and one context; tokens go in through a reusable batch."""

    def __init__(self, args, n_ctx):
        L.llama_log_set(_drop_log, ctypes.c_void_p())
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        mparams.use_extra_bufts = not args.no_extra_bufts
        self.model = L.llama_model_load_from_file(args.model.encode(), mparams)
        if not self.model:
            sys.exit(f"peer_llamacpp: cannot load '{args.model}'")
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = args.batch
        cparams.n_ubatch = min(args.ubatch, args.batch)
        cparams.n_threads = args.threads
        cparams.n_threads_batch = args.threads
        cparams.flash_attn_type = FLASH_ATTN[args.flash_attn]
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            sys.exit(f"peer_llamacpp: cannot create a context of {n_ctx} tokens")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_batch = args.batch
        self.batch = L.llama_batch_init(self.n_batch, 0, 1)

    def clear(self):
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, tokens, n_past, all_logits=False):
        """Evaluates tokens at positions n_past.. in one llama_decode; returns its wall time in seconds."""
        b = self.batch
        b.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = n_past + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = all_logits
        b.logits[len(tokens) - 1] = True
        start = time.perf_counter()
        rc = L.llama_decode(self.ctx, b)
        L.llama_synchronize(self.ctx)
        elapsed = time.perf_counter() - start
        if rc != 0:
            sys.exit(f"peer_llamacpp: llama_decode returned {rc}")
        return elapsed

    def evaluate(self, tokens, n_past=0):
        """Evaluates tokens in batches of n_batch; returns the total wall time."""
        return sum(self.decode(tokens[i:i + self.n_batch], n_past + i) for i in range(0, len(tokens), self.n_batch))

    def logits(self, n_rows):
        """The logits of the last decode's n_rows tokens (all flagged), as float64 (n_rows, n_vocab)."""
        ptr = L.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ptr, shape=(n_rows, self.n_vocab)).astype(np.float64)

    def tokenize(self, text):
        data = text.encode()
        cap = len(data) + 16
        buf = (L.llama_token * cap)()
        # add_special=True: BOS/EOS only where the vocabulary asks for them, as llama.cpp's common_tokenize does.
        n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, True, False)
        if n < 0:
            sys.exit("peer_llamacpp: tokenize buffer too small")
        return list(buf[:n])


def random_tokens(n, n_vocab, rng):
    return [rng.randrange(n_vocab) for _ in range(n)]


def bench(args):
    n_ctx = max(args.prompt_tokens, args.context + args.decode_tokens, 1)
    runner = Runner(args, n_ctx)
    rng = random.Random(args.seed)
    prefill, decode = [], []
    for _ in range(args.repeat):
        if args.prompt_tokens > 0:
            runner.clear()
            prefill.append(args.prompt_tokens / runner.evaluate(random_tokens(args.prompt_tokens, runner.n_vocab, rng)))
        if args.decode_tokens > 0:
            runner.clear()
            runner.evaluate(random_tokens(args.context, runner.n_vocab, rng))
            steps = random_tokens(args.decode_tokens, runner.n_vocab, rng)
            elapsed = sum(runner.decode([tok], args.context + i) for i, tok in enumerate(steps))
            decode.append(args.decode_tokens / elapsed)
    result = {"engine": "llama.cpp", "llama_cpp_python": L.__version__, "threads": args.threads, "n_ctx": n_ctx,
              "batch": args.batch, "ubatch": runner_ubatch(args), "flash_attn": args.flash_attn, "repeat": args.repeat,
              "prompt_tokens": args.prompt_tokens, "context_depth": args.context, "decode_tokens": args.decode_tokens,
              "prefill_tokens_per_s": mean(prefill), "prefill_tokens_per_s_stddev": stddev(prefill),
              "decode_tokens_per_s": mean(decode), "decode_tokens_per_s_stddev": stddev(decode)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def runner_ubatch(args):
    return min(args.ubatch, args.batch)


def mean(xs):
    return statistics.fmean(xs) if xs else None


def stddev(xs):
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def nll_of_next(logits, next_tokens):
    """-log softmax(logits)[next] per row, the max subtracted first (llama.cpp's log_softmax)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    return log_sum - shifted[np.arange(len(next_tokens)), next_tokens]


def perplexity(args):
    """llama.cpp's perplexity: chunks of n_ctx tokens, each from an empty cache (first token BOS where the vocabulary
    adds one); the logits of positions n_ctx/2 .. n_ctx-2 predict the next token; PPL = exp(mean NLL)."""
    n_ctx = args.ctx
    args.batch = min(args.batch, n_ctx)
    runner = Runner(args, n_ctx)
    with open(args.file, encoding="utf-8", errors="replace") as f:
        tokens = runner.tokenize(f.read())
    add_bos = L.llama_vocab_get_add_bos(runner.vocab)
    bos = L.llama_vocab_bos(runner.vocab)
    n_chunks = len(tokens) // n_ctx
    if args.chunks > 0:
        n_chunks = min(n_chunks, args.chunks)
    if n_chunks == 0:
        sys.exit(f"peer_llamacpp: {len(tokens)} tokens, fewer than one chunk of {n_ctx}")
    first = n_ctx // 2
    nlls = []
    start_time = time.perf_counter()
    for c in range(n_chunks):
        chunk = tokens[c * n_ctx:(c + 1) * n_ctx]
        runner.clear()
        # Scored batch by batch: a chunk's logits all at once would be n_ctx x n_vocab doubles (20 GB at 16k tokens
        # of a 152k vocabulary).
        for i in range(0, n_ctx, args.batch):
            piece = list(chunk[i:i + args.batch])
            if i == 0 and add_bos:
                piece[0] = bos
            lo, hi = max(i, first), min(i + len(piece), n_ctx - 1)  # positions scored in this batch: [lo, hi)
            runner.decode(piece, i, all_logits=lo < hi)
            if lo < hi:
                logits = runner.logits(len(piece))  # (len(piece), n_vocab)
                nlls.extend(nll_of_next(logits[lo - i:hi - i], np.array(chunk[lo + 1:hi + 1])))
    elapsed = time.perf_counter() - start_time
    nll = np.array(nlls)
    ppl = math.exp(nll.mean())
    # llama.cpp's uncertainty: the standard error of the mean NLL, carried to the PPL.
    var = (nll ** 2).mean() - nll.mean() ** 2
    ppl_err = math.sqrt(var / (len(nll) - 1)) * ppl if var > 0 else 0.0
    result = {"engine": "llama.cpp", "llama_cpp_python": L.__version__, "file": args.file, "n_tokens": len(tokens),
              "ctx": n_ctx, "chunks": n_chunks, "scored_tokens": len(nll), "add_bos": bool(add_bos),
              "perplexity": ppl, "perplexity_error": ppl_err, "threads": args.threads, "batch": args.batch,
              "seconds": elapsed}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(tokens)} tokens, {n_chunks} chunks of {n_ctx}, {len(nll)} scored")
        print(f"PPL = {ppl:.4f} +/- {ppl_err:.5f}")


def info(_args):
    L.llama_log_set(_drop_log, ctypes.c_void_p())
    print(json.dumps({"llama_cpp_python": L.__version__,
                      "system_info": L.llama_print_system_info().decode().strip()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="llama-cpp-python's version and llama.cpp's system info")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-m", "--model", required=True)
    common.add_argument("-t", "--threads", type=int, default=2)
    common.add_argument("--ubatch", type=int, default=512, help="physical batch (llama.cpp's n_ubatch; default 512)")
    common.add_argument("--flash-attn", choices=FLASH_ATTN, default="auto",
                        help="llama.cpp's flash attention (default auto, as its own tools choose)")
    common.add_argument("--no-extra-bufts", action="store_true",
                        help="weights in plain buffers: no repacked (or AMX) layouts, llama.cpp's --no-repack")
    common.add_argument("--json", action="store_true")
    b = sub.add_parser("bench", parents=[common], help="prefill and decode speed")
    b.add_argument("--prompt-tokens", type=int, default=512)
    b.add_argument("--context", type=int, default=0)
    b.add_argument("--decode-tokens", type=int, default=64)
    b.add_argument("--batch", type=int, default=2048, help="logical batch (llama.cpp's n_batch; default 2048)")
    b.add_argument("-r", "--repeat", type=int, default=1)
    b.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("perplexity", parents=[common], help="perplexity by llama.cpp's method")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-c", "--ctx", type=int, default=512)
    p.add_argument("--chunks", type=int, default=0, help="at most this many chunks (default: all)")
    p.add_argument("-b", "--batch", type=int, default=512)
    args = parser.parse_args()
    {"info": info, "bench": bench, "perplexity": perplexity}[args.command](args)


if __name__ == "__main__":
    main()
