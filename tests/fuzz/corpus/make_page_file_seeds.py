#!/usr/bin/env python3
"""Writes the small KV page-file seeds in corpus/page_file/ for fuzz_page_file, from docs/kv-format.md alone.

It is a second, independent encoder of the format (checksum included): test_page_file reads every seed back with the
engine's reader, so the document and the implementation cannot drift apart unnoticed. Each seed is valid and under
64 KiB, so the fuzzer starts deep inside the reader. Run from anywhere: python3 make_page_file_seeds.py
"""
import pathlib
import struct

M = (1 << 64) - 1
K1, K2, K3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
K4, K5 = 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD
F32, F16, BF16 = 0, 1, 30


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def step(acc, w):
    return rotl((acc + w * K1) & M, 29) * K2 & M


def fold(h, v):
    return (rotl(h ^ step(0, v), 27) * K3 + K4) & M


def checksum64(b, seed=0):
    n = len(b)
    lanes = [(seed + k) & M for k in (K2, K3, K4, K5)]
    i = 0
    while i + 32 <= n:
        for j in range(4):
            lanes[j] = step(lanes[j], struct.unpack_from("<Q", b, i + 8 * j)[0])
        i += 32
    if n >= 32:
        a, bb, c, d = lanes
        h = (rotl(a, 1) + rotl(bb, 7) + rotl(c, 13) + rotl(d, 19)) & M
        for lane in lanes:
            h = fold(h, lane)
    else:
        h = (seed + K5) & M
    h = (h + n) & M
    while n - i >= 8:
        h = fold(h, struct.unpack_from("<Q", b, i)[0])
        i += 8
    if n - i >= 4:
        h = (rotl(h ^ (struct.unpack_from("<I", b, i)[0] * K1 & M), 23) * K2 + K5) & M
        i += 4
    while i < n:
        h = rotl(h ^ (b[i] * K5 & M), 11) * K1 & M
        i += 1
    h ^= h >> 31
    h = h * K3 & M
    h ^= h >> 29
    h = h * K2 & M
    h ^= h >> 32
    return h


def align(x):
    return -(-x // 4096) * 4096


def pseudo_bytes(n, seed):
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 6364136223846793005 + 1442695040888963407) & M
        out += struct.pack("<Q", x)
    return bytes(out[:n])


def finite(b, elem):
    """Clears the top exponent bit of each little-endian element, so none is an infinity or a NaN (the format's rule)."""
    out = bytearray(b)
    for i in range(elem - 1, len(out), elem):
        out[i] &= 0xBF
    return bytes(out)


def record(n_kv_heads, page_size, head_dim, elem, rows, seed):
    """K then V, each (n_kv_heads, page_size, head_dim) finite elements; rows past `rows` are zero."""
    block = bytearray()
    for kv in range(2):
        for h in range(n_kv_heads):
            used = finite(pseudo_bytes(rows * head_dim * elem, seed * 131 + kv * 17 + h), elem)
            block += used + bytes((page_size - rows) * head_dim * elem)
    return bytes(block)


def padded(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b + bytes(64 - len(b))


def page_file(n_layers, n_kv_heads, head_dim, page_size, dtype, n_tokens, first_page=0, base=0,
              model="0123456789abcdef0123456789abcdef", tok_hash=0x5EED, prompt="gemma3"):
    elem = 4 if dtype == F32 else 2
    n_total = -(-n_tokens // page_size)
    n_pages = n_total - first_page
    record_bytes = 2 * n_kv_heads * page_size * head_dim * elem
    stride = align(record_bytes)
    records_offset = align(512 + 8 * n_layers * n_pages)
    summaries_offset = records_offset + n_layers * n_pages * stride
    summary_bytes = n_layers * n_pages * n_kv_heads * 2 * head_dim * 4

    records, table = [], b""
    for l in range(n_layers):
        for p in range(first_page, n_total):
            rows = min(page_size, n_tokens - p * page_size)
            r = record(n_kv_heads, page_size, head_dim, elem, rows, l * 1000 + p)
            records.append(r + bytes(stride - record_bytes))
            table += struct.pack("<Q", checksum64(r))
    summaries = b"".join(struct.pack("<f", (i % 7) - 3.0) for i in range(summary_bytes // 4))
    n_full = n_tokens // page_size
    section = summaries + b"".join(struct.pack("<I", n_full) for _ in range(n_layers))
    file_size = summaries_offset + len(section)

    header = bytearray(512)
    header[0:8] = b"FKVPAGES"
    struct.pack_into("<II", header, 8, 1, 512)
    struct.pack_into("<QQ", header, 24, tok_hash, base)
    struct.pack_into("<IIIIII", header, 40, n_layers, n_kv_heads, head_dim, page_size, dtype, 1)
    struct.pack_into("<QQQQQQQQQQQQ", header, 64, n_tokens, first_page, n_pages, record_bytes, stride, 512,
                     checksum64(table), records_offset, summaries_offset, len(section), checksum64(section), file_size)
    header[160:228] = padded(model)
    header[228:296] = padded(prompt)
    struct.pack_into("<Q", header, 16, checksum64(bytes(header)))

    out = bytes(header) + table
    out += bytes(records_offset - len(out)) + b"".join(records) + section
    assert len(out) == file_size and file_size < 64 * 1024
    return out


def main():
    here = pathlib.Path(__file__).resolve().parent / "page_file"
    here.mkdir(exist_ok=True)
    seeds = {
        "partial_page_f16.fkvp": page_file(1, 1, 4, 4, F16, 5),
        "two_layers_f32.fkvp": page_file(2, 2, 8, 4, F32, 8),
        "extension_bf16.fkvp": page_file(1, 2, 4, 4, BF16, 6, first_page=1, base=0x0123456789ABCDEF, prompt=""),
        "empty_context.fkvp": page_file(3, 1, 2, 32, F16, 0, model="m"),
    }
    for name, data in seeds.items():
        (here / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
