#!/usr/bin/env python3
"""Writes the small PDF seeds in corpus/pdf/ for fuzz_pdf, each written here by hand (no third-party files).

Each seed is valid and a few hundred bytes, so the fuzzer starts inside poppler's page and text code rather than at
the header: plain text, several pages with a blank one, a title, a Flate-compressed stream, TJ arrays with kerning
and hex strings, overlapping runs, and a file whose xref table is wrong (poppler rebuilds it).

    python3 make_pdf_seeds.py                      # the seeds
    python3 make_pdf_seeds.py --many-runs N OUT    # one page of N overlapping runs (340000 make a 43 KB file)
"""
import pathlib
import sys
import zlib

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf(contents, title=None, flate=False, xref=True):
    """One page per content stream; objects 1 catalog, 2 pages, 3 font, 4 info, then page and contents pairs."""
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(contents)} >>".encode(), FONT,
               b"<< /Title (" + title.encode() + b") >>" if title else b"<< /Producer (seed) >>"]
    for i, content in enumerate(contents):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       b"/Resources << /Font << /F1 3 0 R >> >> /Contents " + f"{6 + 2 * i} 0 R >>".encode())
        data = zlib.compress(content, 9) if flate else content
        extra = b" /Filter /FlateDecode" if flate else b""
        objects.append(f"<< /Length {len(data)}".encode() + extra + b" >>\nstream\n" + data + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects):
        offsets.append(len(out))
        out += f"{i + 1} 0 obj\n".encode() + body + b"\nendobj\n"
    start = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off if xref else off + 7:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{start}\n%%EOF\n".encode()
    return bytes(out)


def lines(*texts):
    body = b" 0 -20 Td ".join(b"(" + t.encode() + b") Tj" for t in texts)
    return b"BT /F1 14 Tf 72 720 Td " + body + b" ET"


def many_runs(n, words=(b"alpha", b"beta", b"gamma")):
    return b"".join(b"BT /F1 12 Tf 72 720 Td (" + words[i % len(words)] + b") Tj ET\n" for i in range(n))


SEEDS = {
    "one_page.pdf": pdf([lines("A single page of plain text")]),
    "three_pages.pdf": pdf([lines("First page", "second line"), b"", lines("Third page")], title="Seed Report"),
    "flate.pdf": pdf([lines("Compressed content stream", "with two lines")], flate=True),
    "tj_kerning.pdf": pdf([b"BT /F1 12 Tf 72 700 Td [(Ker) -120 (ning) 40 <20486578> ( string)] TJ "
                           b"0 -16 Td 2 Tc (spaced) Tj T* (next) ' ET"]),
    "overlap.pdf": pdf([many_runs(200)], flate=True),
    "bad_xref.pdf": pdf([lines("The xref offsets are wrong")], xref=False),
}


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--many-runs":
        data = pdf([many_runs(int(sys.argv[2]))], flate=True)
        pathlib.Path(sys.argv[3]).write_bytes(data)
        print(f"{sys.argv[3]}: {len(data)} bytes, {sys.argv[2]} runs")
        return
    here = pathlib.Path(__file__).resolve().parent / "pdf"
    here.mkdir(exist_ok=True)
    for name, data in SEEDS.items():
        (here / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
