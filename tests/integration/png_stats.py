"""png_stats.py PNG — prints "WIDTH HEIGHT COLOURS INK": the image's size,
how many distinct colours it has, and the share of pixels (per mille) that
differ from its most common colour (the background).

A screenshot that is blank (a page that did not render) has one colour and
no ink. Pure Python (zlib and the PNG filters), since the tests may not
have an imaging library; 8-bit RGB or RGBA, not interlaced, as Chromium
writes them.
"""
import struct
import sys
import zlib
from collections import Counter


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = hdr
    assert depth == 8 and ctype in (2, 6) and not interlace, hdr
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def main():
    w, h, bpp, rows = read(sys.argv[1])
    colours = Counter()
    for r in rows[::2]:  # every other row and column: enough to judge
        for x in range(0, len(r), bpp * 2):
            colours[r[x:x + 3]] += 1
    total = sum(colours.values())
    ink = 1000 * (total - colours.most_common(1)[0][1]) // total
    print(w, h, len(colours), ink)


main()
