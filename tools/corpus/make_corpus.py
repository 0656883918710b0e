#!/usr/bin/env python3
"""Writes the bad-input corpus: tests/corpus/*.bin and tests/corpus/cases.json.

Every case is one request to POST /v1/predict with the exact status and
error code the daemon must answer (tests/corpus.rs replays them through the
real daemon). Inputs found by fuzzing are added by hand to cases.json with
their file (fuzz-*.bin) and are kept when this script runs again.

Needs Pillow for the JPEG and WebP encodings (tools/models/.venv has it):
    tools/models/.venv/bin/python tools/corpus/make_corpus.py
"""

import io
import json
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "corpus"
PHOTOS = ROOT / "tests" / "fixtures" / "photos"

cases = []
files = {}


def add(name, data, status, code, why, query="x=1&y=1", content_type="image/jpeg", file=None):
    file = file or name + ".bin"
    if file in files and files[file] != data:
        raise SystemExit(f"two contents for {file}")
    files[file] = data
    cases.append({"name": name, "file": file, "content_type": content_type, "query": query,
                  "status": status, "code": code, "why": why})


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(w, h, rgb=(200, 30, 30), ihdr_size=None):
    iw, ih = ihdr_size or (w, h)
    raw = b"".join(b"\x00" + bytes(rgb) * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", iw, ih, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg_set_size(data, w, h):
    """Rewrites the width and height of the first SOF marker."""
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return data[:i + 5] + struct.pack(">HH", h, w) + data[i + 9:]
        i += 2 + length
    raise SystemExit("no SOF")


rng = random.Random(20261125)
photo = (PHOTOS / "skimage-coffee.jpg").read_bytes()  # 600x400
small = Image.open(PHOTOS / "skimage-coffee.jpg").convert("RGB").resize((60, 40))
png_small = encode(small, "PNG")
gif_small = encode(small.convert("P"), "GIF")
webp_small = encode(small, "WEBP", quality=80)
jpeg_small = encode(small, "JPEG", quality=85)

# Empty and truncated: a supported format that does not decode completely.
add("empty", b"", 422, "invalid_image", "an empty body is not an image")
add("jpeg-soi-only", photo[:2], 422, "invalid_image", "a JPEG start marker and nothing else")
add("jpeg-cut-in-header", photo[:300], 422, "invalid_image", "cut inside the header segments")
add("jpeg-cut-mid-scan", photo[: len(photo) // 2], 422, "invalid_image", "cut in the middle of the entropy-coded scan")
add("jpeg-cut-before-eoi", photo[:-2], 422, "invalid_image", "every scan byte but no end-of-image marker: still a cut upload")
add("png-cut-mid-idat", png_small[: len(png_small) // 2], 422, "invalid_image", "cut inside the IDAT chunk")
idat_end = png_small.index(b"IEND") - 4
add("png-no-iend", png_small[:idat_end], 422, "invalid_image", "all image data but no IEND chunk")
add("gif-cut", gif_small[: len(gif_small) // 2], 422, "invalid_image", "GIF cut in its image data")
add("webp-cut", webp_small[: len(webp_small) // 2], 422, "invalid_image", "WebP cut in its bitstream")

# Corrupt but complete.
bad_crc = bytearray(png_small)
bad_crc[29] ^= 0xFF  # inside the IHDR CRC
add("png-bad-ihdr-crc", bytes(bad_crc), 422, "invalid_image", "IHDR checksum does not match")
idat = png_small.index(b"IDAT") + 4
bad_zlib = bytearray(png_small)
for k in range(idat + 2, min(idat + 40, len(bad_zlib) - 16)):
    bad_zlib[k] = rng.randrange(256)
add("png-bad-zlib", bytes(bad_zlib), 422, "invalid_image", "IDAT holds a broken deflate stream")

# Headers that lie about the size: refused from the header, before decoding.
add("jpeg-claims-60000x60000", jpeg_set_size(photo, 60000, 60000), 413, "image_too_large",
    "SOF claims 3.6 billion pixels: refused from the header, nothing allocated")
add("png-claims-100000x100000", png(2, 2, ihdr_size=(100000, 100000)), 413, "image_too_large",
    "IHDR (valid CRC) claims 10 billion pixels over a tiny IDAT: a decompression bomb's header")
gif_huge = b"GIF89a" + struct.pack("<HH", 65535, 65535) + gif_small[10:]
add("gif-claims-65535x65535", gif_huge, 413, "image_too_large", "GIF logical screen of 4.3 billion pixels")
bmp_pixels = b"\x00\x00\xff" * 2 + b"\x00\x00"
bmp_huge = (b"BM" + struct.pack("<IHHI", 54 + 8, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, 100000, 100000, 1, 24, 0, 8, 2835, 2835, 0, 0) + bmp_pixels)
add("bmp-claims-100000x100000", bmp_huge, 413, "image_too_large", "BMP info header claims 10 billion pixels")
vp8x = struct.pack("<B3x", 0x10) + (16383).to_bytes(3, "little") + (16383).to_bytes(3, "little")
webp_huge_body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
webp_huge = b"RIFF" + struct.pack("<I", len(webp_huge_body)) + webp_huge_body
add("webp-claims-16384x16384", webp_huge, 413, "image_too_large", "WebP VP8X canvas of 268 million pixels")

# A JPEG whose SOF claims more rows than its scan holds, within limits.
add("jpeg-claims-more-rows", jpeg_set_size(jpeg_small, 60, 400), 422, "invalid_image",
    "SOF says 400 rows, the scan holds 40: the missing rows must not be served as grey")

# Other JPEG kinds must still be served; a lying progressive one is not.
coffee_img = Image.open(PHOTOS / "skimage-coffee.jpg").convert("RGB").resize((150, 100))
progressive = encode(coffee_img, "JPEG", progressive=True, quality=80)
add("jpeg-progressive", progressive, 200, "", "a progressive JPEG decodes whole", "x=10&y=10")
# Not here: a progressive JPEG whose frame claims more rows than its scans
# cover is still served with the missing rows padded (README, Not done yet).
add("jpeg-greyscale", encode(coffee_img.convert("L"), "JPEG", quality=80), 200, "",
    "one-channel JPEG, served as grey RGB", "x=10&y=10")
add("jpeg-444", encode(coffee_img, "JPEG", quality=80, subsampling=0), 200, "",
    "no chroma subsampling", "x=149&y=99")

# Tiny images: the only pixel is (0, 0).
one_png = png(1, 1)
one_jpeg = encode(Image.new("RGB", (1, 1), (20, 90, 200)), "JPEG")
for label, data, ct in (("png-1x1", one_png, "image/png"), ("jpeg-1x1", one_jpeg, "image/jpeg")):
    add(label + "-at-0-0", data, 200, "", "a 1x1 image is served at its only pixel", "x=0&y=0", ct)
    add(label + "-at-1-0", data, 422, "point_out_of_bounds", "x=1 is past the only column", "x=1&y=0", ct)
    add(label + "-at-0-1", data, 422, "point_out_of_bounds", "y=1 is past the only row", "x=0&y=1", ct)

# Points on a real photo (600x400).
for query, status, code, why in (
    ("x=0&y=0", 200, "", "top-left pixel"),
    ("x=599&y=399", 200, "", "bottom-right pixel"),
    ("x=600&y=0", 422, "point_out_of_bounds", "one past the right edge"),
    ("x=0&y=400", 422, "point_out_of_bounds", "one past the bottom edge"),
    ("x=-1&y=0", 422, "point_out_of_bounds", "left of the image"),
    ("x=10.5&y=20.9", 200, "", "fractions are floored to the pixel"),
    ("x=NaN&y=1", 400, "bad_request", "NaN is not a coordinate"),
    ("x=inf&y=1", 400, "bad_request", "infinity is not a coordinate"),
    ("x=1e400&y=1", 400, "bad_request", "overflows to infinity"),
    ("x=left&y=1", 400, "bad_request", "not a number"),
    ("y=1", 400, "bad_request", "x missing"),
    ("x=1&y=1&top=0", 400, "bad_request", "top below 1"),
    ("x=1&y=1&top=1001", 400, "bad_request", "top above 1000"),
    ("x=1&y=1&top=abc", 400, "bad_request", "top not a number"),
    ("x=1&y=1&models=", 400, "bad_request", "an empty model list"),
    ("x=1&y=1&models=weather", 404, "not_found", "no such model"),
    ("x=1&y=1&models=color,weather", 404, "not_found", "one unknown model fails the request"),
):
    add("photo " + query, photo, status, code, why, query, file="photo.bin")

# Not images, whatever the label says: the bytes decide.
add("text", b"hello, this is not an image\n", 415, "unsupported_media_type", "plain text")
add("text-labelled-png", b"hello, this is not an image\n", 415, "unsupported_media_type",
    "Content-Type says PNG, the bytes say text", content_type="image/png")
add("html", b"<!doctype html><html><body><img src=x></body></html>", 415, "unsupported_media_type", "HTML")
add("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 415,
    "unsupported_media_type", "SVG is not a supported format")
add("pdf", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", 415, "unsupported_media_type", "PDF")
add("elf", b"\x7fELF\x02\x01\x01" + bytes(57), 415, "unsupported_media_type", "an executable")
add("zip", b"PK\x03\x04" + bytes(26) + b"PK\x05\x06" + bytes(18), 415, "unsupported_media_type", "a zip archive")
tiff = b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 0) + bytes(4)
add("tiff", tiff, 415, "unsupported_media_type", "TIFF is not among the supported formats")
add("random", bytes(rng.randrange(256) for _ in range(4096)), 415, "unsupported_media_type", "random bytes")
add("jpeg-magic-only-then-text", b"\xff\xd8\xff" + b"not really a jpeg" * 4, 422, "invalid_image",
    "starts like a JPEG, so it is one that does not decode")

# Multipart forms.
B = "CorpusBoundary7MA4YWxk"


def form(parts, boundary=B, close=True):
    out = b""
    for name, value, filename in parts:
        out += f"--{boundary}\r\n".encode()
        if filename:
            out += (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n").encode()
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value + b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return out


mp = f"multipart/form-data; boundary={B}"
photo = (PHOTOS / "tuxpaint-pelican.jpg").read_bytes()  # small, for the forms
good = form([("x", b"100", None), ("y", b"100", None), ("image", photo, "coffee.jpg")])
add("form-good", good, 200, "", "a form as a browser sends it", "", mp)
add("form-boundary-mismatch", good, 400, "bad_request", "the header names another boundary", "",
    "multipart/form-data; boundary=SomethingElse")
add("form-no-boundary", good, 400, "bad_request", "multipart without a boundary parameter", "", "multipart/form-data")
add("form-no-image", form([("x", b"1", None), ("y", b"1", None)]), 400, "bad_request", "no file field named image", "", mp)
add("form-cut", good[: len(good) // 2], 400, "bad_request", "the form stops before its closing boundary", "", mp)
add("form-unclosed", form([("x", b"1", None), ("y", b"1", None), ("image", photo, "c.jpg")], close=False),
    400, "bad_request", "all parts but no closing boundary", "", mp)
add("form-no-x", form([("y", b"1", None), ("image", photo, "c.jpg")]), 400, "bad_request", "x missing", "", mp)
add("form-text-image", form([("x", b"1", None), ("y", b"1", None), ("image", b"plain text", "a.txt")]), 415,
    "unsupported_media_type", "the uploaded file is not an image", "", mp)
add("form-empty-image", form([("x", b"1", None), ("y", b"1", None), ("image", b"", "a.jpg")]), 422,
    "invalid_image", "an empty upload", "", mp)
add("form-garbage", b"this is not a multipart body at all", 400, "bad_request", "no boundary line anywhere", "", mp)

# JSON bodies that go wrong before any file is read.
add("json-broken", b'{"path": ', 400, "bad_request", "malformed JSON", "", "application/json")
add("json-not-object", b"[1, 2, 3]", 400, "bad_request", "JSON that is not an object", "", "application/json")
add("json-no-path", b'{"x": 1, "y": 1}', 400, "bad_request", "no path", "", "application/json")
add("json-path-off", b'{"path": "/etc/passwd", "x": 1, "y": 1}', 403, "forbidden",
    "image-roots is empty in the corpus daemon: path requests are off", "", "application/json")

# Keep cases found by fuzzing (added by hand) across regenerations.
manifest = OUT / "cases.json"
kept = []
if manifest.exists():
    kept = [c for c in json.loads(manifest.read_text()) if c["file"].startswith("fuzz-")]

OUT.mkdir(parents=True, exist_ok=True)
for old in OUT.glob("*.bin"):
    if not old.name.startswith("fuzz-"):
        old.unlink()
for name, data in files.items():
    (OUT / name).write_bytes(data)
manifest.write_text(json.dumps(cases + kept, indent=1) + "\n")
print(f"{len(cases) + len(kept)} cases, {len(files)} files, {sum(map(len, files.values()))} bytes")
