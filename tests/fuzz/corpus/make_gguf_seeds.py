#!/usr/bin/env python3
"""Writes the small GGUF seed files in corpus/gguf/ for fuzz_gguf (written by hand from the GGUF format spec).

Each seed is valid, so the fuzzer starts from inputs that reach the deep parts of the reader (arrays, alignment,
tensor extents) instead of having to discover the format. Run from anywhere: python3 make_gguf_seeds.py
"""
import pathlib
import struct

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR_FORMAT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
                 U64: "<Q", I64: "<q", F64: "<d"}


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    return struct.pack(SCALAR_FORMAT[vtype], v)


def array(elem, items):
    return struct.pack("<IQ", elem, len(items)) + b"".join(value(elem, x) for x in items)


def gguf(kv, tensors=(), alignment=32):
    """kv: (key, type, payload bytes); tensors: (name, dims, ggml type, data bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, vtype, payload in kv:
        out += gguf_string(key) + struct.pack("<I", vtype) + payload
    offset = 0
    for name, dims, ttype, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ttype, offset)
        offset += -(-len(data) // alignment) * alignment
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    return out


def main():
    here = pathlib.Path(__file__).resolve().parent / "gguf"
    here.mkdir(exist_ok=True)
    vocab = [("tokenizer.ggml.model", STRING, value(STRING, "llama")),
             ("tokenizer.ggml.tokens", ARRAY, array(STRING, ["<unk>", "<s>", "</s>", "\u2581a"])),
             ("tokenizer.ggml.scores", ARRAY, array(F32, [0.0, 0.0, 0.0, -1.5])),
             ("tokenizer.ggml.token_type", ARRAY, array(I32, [2, 3, 3, 1])),
             ("tokenizer.ggml.bos_token_id", U32, value(U32, 1))]
    (here / "vocab.gguf").write_bytes(gguf(vocab))

    scalars = [("s.u8", U8, 7), ("s.i8", I8, -7), ("s.u16", U16, 700), ("s.i16", I16, -700), ("s.u32", U32, 7 << 20),
               ("s.i32", I32, -(7 << 20)), ("s.f32", F32, 0.5), ("s.bool", BOOL, True), ("s.u64", U64, 7 << 40),
               ("s.i64", I64, -(7 << 40)), ("s.f64", F64, 1e-3), ("s.string", STRING, "text")]
    kv = [(k, t, value(t, v)) for k, t, v in scalars]
    kv += [("a.u16", ARRAY, array(U16, [1, 2, 3])), ("a.f64", ARRAY, array(F64, [1.0, 2.0])),
           ("a.bool", ARRAY, array(BOOL, [True, False]))]
    (here / "scalars.gguf").write_bytes(gguf(kv))

    model_kv = [("general.architecture", STRING, value(STRING, "llama")), ("general.alignment", U32, value(U32, 64)),
                ("llama.block_count", U32, value(U32, 1))]
    tensors = [("token_embd.weight", [32, 2], 8, bytes(range(68))),        # Q8_0: 2 blocks of 34 bytes
               ("output_norm.weight", [4], 0, struct.pack("<4f", 1, 1, 1, 1)),  # F32
               ("blk.0.ffn_up.weight", [256, 1], 12, bytes(144))]          # Q4_K: 1 block of 144 bytes
    (here / "model.gguf").write_bytes(gguf(model_kv, tensors, alignment=64))


if __name__ == "__main__":
    main()
