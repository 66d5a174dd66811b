#!/usr/bin/env python3
"""make_subset.py - writes the small Fashion-MNIST subset that ships with brick.

    scripts/make_subset.py [--src DIR] [--out DIR] [--train N] [--test N]

Reads the full Fashion-MNIST (gzip-compressed IDX files, default
/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist package) and writes the
FIRST N training and the FIRST N test images and labels (defaults 6000 and 1000) to
--out (default data/fashion-mnist-subset) under the four standard file names, gzip
-compressed. Taking the first items (rather than a random sample) keeps the subset a
prefix of the real files, so anyone can check it against the originals.

The output is deterministic (the gzip header carries no time stamp or file name), so
rerunning the script on the same input gives byte-identical files. It prints each
split's size and class balance. Plain python3: no numpy.
"""
import argparse
import collections
import gzip
import os
import struct
import sys

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path, want_ndim):
    """Returns (dims, payload bytes) of a u8 IDX file (plain or .gz), checked."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4:
        sys.exit(f"{path}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or ndim != want_ndim:
        sys.exit(f"{path}: not a u8 IDX file with {want_ndim} dims")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    payload = raw[4 + 4 * ndim:]
    size = 1
    for d in dims:
        size *= d
    if len(payload) != size:
        sys.exit(f"{path}: header says {size} data bytes, file has {len(payload)}")
    return dims, payload


def find(src, name):
    for candidate in (os.path.join(src, name + ".gz"), os.path.join(src, name)):
        if os.path.exists(candidate):
            return candidate
    sys.exit(f"{src}: neither {name} nor {name}.gz exists")


def write_idx_gz(path, dims, payload):
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims)
    tmp = path + ".tmp"
    # mtime=0 and no file name in the header: reproducible bytes.
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               compresslevel=9, mtime=0) as f:
        f.write(header)
        f.write(payload)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "data", "fashion-mnist-subset"))
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--test", type=int, default=1000)
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)

    total = 0
    for split, count in (("train", args.train), ("t10k", args.test)):
        img_name, lab_name = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        (n, rows, cols), pixels = read_idx(find(args.src, img_name), 3)
        (n_lab,), labels = read_idx(find(args.src, lab_name), 1)
        if n != n_lab:
            sys.exit(f"{split}: {n} images but {n_lab} labels")
        if not 0 < count <= n:
            sys.exit(f"{split}: asked for {count} items, the source has {n}")
        write_idx_gz(os.path.join(out, img_name + ".gz"), (count, rows, cols),
                     pixels[:count * rows * cols])
        write_idx_gz(os.path.join(out, lab_name + ".gz"), (count,), labels[:count])

        size = sum(os.path.getsize(os.path.join(out, f + ".gz")) for f in (img_name, lab_name))
        total += size
        balance = collections.Counter(labels[:count])
        print(f"{split}: first {count} of {n} items ({rows}x{cols}), {size / 1e6:.2f} MB gzipped")
        for c in range(len(CLASSES)):
            print(f"  {c} {CLASSES[c]:<12} {balance[c]:5d}  ({100.0 * balance[c] / count:.1f}%)")
        print(f"  first labels: {list(labels[:12])}")
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
