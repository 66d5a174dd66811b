#!/usr/bin/env python3
"""make_image_data.py - small generated image data sets for tests/test_image_data.sh.

    make_image_data.py folder DIR   an image folder: DIR/train/<class>/*.png|pgm and
                                    DIR/test/<class>/..., classes blue, green, red (each
                                    image mostly its class's colour, with noise), 12 x 12
                                    RGB PNGs plus some 16 x 16 ones (resized on reading)
                                    and a grey PGM per class
    make_image_data.py cifar DIR    CIFAR-10 binary batches: data_batch_1..5.bin (40
                                    records each), test_batch.bin (60), batches.meta.txt;
                                    labels 0..2, and label k is an image brighter in
                                    channel k
Seeded (the same files every run). Uses PIL for PNGs (python3-pil).
"""
import os
import random
import sys

from PIL import Image

CLASSES = ["blue", "green", "red"]
CHANNEL = {"red": 0, "green": 1, "blue": 2}


def coloured(rng, cls, size):
    """An RGB image mostly of colour `cls`: that channel 150..255, the others 0..90."""
    img = Image.new("RGB", (size, size))
    px = []
    for _ in range(size * size):
        rgb = [rng.randrange(0, 90) for _ in range(3)]
        rgb[CHANNEL[cls]] = rng.randrange(150, 256)
        px.append(tuple(rgb))
    img.putdata(px)
    return img


def write_pgm(path, rng, size):
    data = bytes(rng.randrange(0, 256) for _ in range(size * size))
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (size, size) + data)


def folder(root):
    rng = random.Random(1)
    for split, count in (("train", 20), ("test", 8)):
        for cls in CLASSES:
            d = os.path.join(root, split, cls)
            os.makedirs(d, exist_ok=True)
            for i in range(count):
                size = 16 if i % 5 == 4 else 12
                coloured(rng, cls, size).save(os.path.join(d, "img%03d.png" % i))
            if split == "train":
                write_pgm(os.path.join(d, "zgrey.pgm"), rng, 12)
            with open(os.path.join(d, "notes.txt"), "w") as f:  # not an image: skipped
                f.write("skipped\n")


def cifar_record(rng, label):
    planes = bytearray()
    for c in range(3):
        lo, hi = (150, 256) if c == label else (0, 90)
        planes += bytes(rng.randrange(lo, hi) for _ in range(1024))
    return bytes([label]) + bytes(planes)


def cifar(root):
    rng = random.Random(2)
    os.makedirs(root, exist_ok=True)
    names = ["batch%d" % i for i in range(1, 6)] + ["test"]
    for name in names:
        n = 60 if name == "test" else 40
        path = os.path.join(root, "test_batch.bin" if name == "test" else "data_batch_%s.bin" % name[5:])
        with open(path, "wb") as f:
            for i in range(n):
                f.write(cifar_record(rng, i % 3))
    with open(os.path.join(root, "batches.meta.txt"), "w") as f:
        f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                           "truck"]) + "\n\n")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("folder", "cifar"):
        sys.exit(__doc__)
    (folder if sys.argv[1] == "folder" else cifar)(sys.argv[2])
