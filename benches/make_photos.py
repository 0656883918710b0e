#!/usr/bin/env python3
"""Writes the large photos benches/compare.sh sends: 12-16 MP JPEGs in the
size, quality and detail of phone camera pictures.

    make_photos.py OUT_DIR

No camera photos of that size ship with the repository (tens of megabytes),
so they are made from the fixture photos: upscaled to camera resolutions
(4032x3024, 4000x3000, 4608x3456, 4624x3468), with sensor-like noise so that
the entropy-coded data is as large as a real photo's (3-6 MB at quality 92),
4:2:0 chroma, one of them with an EXIF orientation tag, as phones write
them. Deterministic: the same files every run.
"""

import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTOS = os.path.join(HERE, "..", "tests", "fixtures", "photos")

SOURCES = [
    ("sklearn-china.jpg", (4032, 3024), 1),
    ("skimage-coffee.jpg", (4000, 3000), 1),
    ("skimage-motorcycle.jpg", (4608, 3456), 1),
    ("sklearn-flower.jpg", (4624, 3468), 6),  # stored rotated, EXIF says so
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2018)
    for name, size, orientation in SOURCES:
        target = os.path.join(out, f"camera-{size[0]}x{size[1]}-{name}")
        if os.path.exists(target):
            continue
        img = Image.open(os.path.join(PHOTOS, name)).convert("RGB").resize(size, Image.BICUBIC)
        pixels = np.asarray(img, dtype=np.int16)
        pixels = pixels + rng.normal(0, 6, pixels.shape).astype(np.int16)
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        exif = Image.Exif()
        if orientation != 1:
            # Orientation 6: the viewer turns it 90 degrees clockwise, so the
            # stored pixels are the displayed ones turned counter-clockwise.
            img = img.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = orientation
        img.save(target, "JPEG", quality=92, subsampling=2, exif=exif.tobytes())
        print(target, os.path.getsize(target), "bytes")


if __name__ == "__main__":
    main()
