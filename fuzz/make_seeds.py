#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpus fuzz/corpus/<target>/ (small files, committed).

    python3 fuzz/make_seeds.py

Rewrites every seed it knows (files it does not know are left alone). Standard library
only. The seeds are valid inputs of each kind plus a few near misses, so that the fuzzer
starts deep inside each format rather than at its first check.
"""
import gzip
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------

def safetensors(tensors, meta=None, pad=True):
    """tensors: list of (name, shape, floats). Laid out in order, as brick writes."""
    header, data, off = {}, b"", 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def raw_header(text, data_len):
    h = text.encode()
    return struct.pack("<Q", len(h)) + h + b"\0" * data_len


def mlp_state(prefix=""):
    """The state dict of the fuzz target's Linear(4, 3) -> ReLU -> Linear(3, 2)."""
    shapes = [("0.weight", [3, 4]), ("0.bias", [3]), ("2.weight", [2, 3]), ("2.bias", [2])]
    out = []
    for k, (name, shape) in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        out.append((prefix + name, shape, [0.25 * (k + 1) * (i - n / 2) for i in range(n)]))
    return out


def adam_state():
    out = []
    for name, shape, values in mlp_state():
        out.append(("optim." + name + ".step", [], [3.0]))
        for slot in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            out.append(("optim." + name + "." + slot, shape, [abs(v) * 0.01 for v in values]))
    return out


put("safetensors", "empty", safetensors([]))
put("safetensors", "metadata_only", safetensors([], {"format": "pt", "brick.arch": "mlp"}))
put("safetensors", "one_tensor", safetensors([("a", [2], [1.0, -2.0])]))
put("safetensors", "scalar_and_empty",
    safetensors([("s", [], [3.5]), ("z", [0, 3], []), ("y", [3, 0], [])]))
put("safetensors", "mlp_state", safetensors(mlp_state(), {"format": "pt"}))
put("safetensors", "mlp_adam_checkpoint",
    safetensors(mlp_state() + adam_state(), {"brick.format": "brick-checkpoint-1"}))
put("safetensors", "escapes",
    raw_header('{"caf\\u00e9 \\ud83d\\ude00\\/":{"shape":[],"dtype":"F32","data_offsets":[0,4]},'
               ' "__metadata__" : { "k\\n" : "v\\"" } }  ', 4))
put("safetensors", "python_layout",
    raw_header('{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],'
               '"data_offsets":[8,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 12))
put("safetensors", "near_miss_overlap",
    raw_header('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', 12))
put("safetensors", "near_miss_dtype",
    raw_header('{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', 2))
# the dtypes read by conversion (PyTorch's state dicts): F64, F16, BF16, I64, I32
put("safetensors", "converted_dtypes",
    raw_header('{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},'
               '"h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},'
               '"b":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]},'
               '"l":{"dtype":"I64","shape":[],"data_offsets":[16,24]},'
               '"i":{"dtype":"I32","shape":[1],"data_offsets":[24,28]}}', 28))

# ---- images: [channels byte][height byte][width byte][the file] ---------------------------

def png(w, h, colour_type, samples):
    """A PNG of 8-bit samples (rows of w * channels bytes), written with zlib."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    per = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type] * w
    rows = b"".join(b"\0" + bytes(samples[y * per:(y + 1) * per]) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


put("image", "pgm_p5", b"\x00\x08\x08" + b"P5 4 4 255\n" + bytes(range(0, 256, 16)))
put("image", "pgm_p5_16", b"\x01\x03\x05" + b"P5 2 2 65535\n" + bytes(range(8)))
put("image", "pgm_p2", b"\x00\x02\x02" + b"P2\n# c\n3 2\n9\n0 1 2 3 4 9\n")
put("image", "png_grey", b"\x00\x05\x05" + png(4, 3, 0, range(12)))
put("image", "png_rgba", b"\x01\x02\x07" + png(3, 2, 6, range(0, 240, 10)))
put("image", "jpeg_grey", b"\x00\x04\x04" + bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a18161618"
    "3123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffc000"
    "0b080004000401011100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400"
    "b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c1"
    "1552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a63"
    "6465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6"
    "b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008"
    "010100003f00dab4f0c697e42fee2bffd9"))

# ---- IDX: [n_classes - 1][images length, u16 LE][images][labels] --------------------------

def idx(dims, values):
    head = bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(values)


def idx_input(n_classes, images, labels):
    return bytes([n_classes - 1]) + struct.pack("<H", len(images)) + images + labels


images = idx([2, 3, 3], [i * 28 % 256 for i in range(18)])
labels = idx([2], [0, 7])
put("idx", "plain", idx_input(10, images, labels))
put("idx", "gzip", idx_input(10, gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)))
put("idx", "gzip_images_plain_labels", idx_input(10, gzip.compress(images, mtime=0), labels))
put("idx", "one_28x28", idx_input(10, idx([1, 28, 28], [i % 256 for i in range(784)]), idx([1], [9])))
put("idx", "near_miss_label", idx_input(7, images, labels))  # label 7 is not below 7
put("idx", "near_miss_short", idx_input(10, images[:-1], labels))

# ---- csv: task byte, target byte (0: last column, else "y"), u16 training length, files -----

def csv_input(task, named, train, test):
    train, test = train.encode(), test.encode()
    return bytes([task, named]) + struct.pack("<H", len(train)) + train + test


CSV_TRAIN = "a,b,y\n1,2,0\n3.5,-4e2,1\n5,6,0\n"
put("csv", "classes", csv_input(0, 0, CSV_TRAIN, "a,b,y\r\n7,8,1\r\n"))
put("csv", "regression_named", csv_input(2, 1, "y,x\n1.5,2\n2.5,3\n", "y,x\n0.25,1\n"))
put("csv", "quoted", csv_input(1, 0, '"a ""1""", b ,y\n 1 , "2" ,3\n', '"a ""1""", b ,y\n1,2,3\n\n'))
put("csv", "near_miss_ragged", csv_input(0, 0, CSV_TRAIN, "a,b,y\n1,2\n"))
put("csv", "near_miss_class", csv_input(1, 0, CSV_TRAIN, "a,b,y\n1,2,2\n"))
put("csv", "near_miss_nan", csv_input(0, 0, CSV_TRAIN, "a,b,y\n1,nan,0\n"))


# ---- model specs: spec, in_shape, n_classes, canonical buffer size (one per line) ---------

for name, text in [
    ("mlp", "mlp"),
    ("mlp_hidden", "mlp:hidden=8\n1,4,4\n3\n"),
    ("softmax", "softmax\n2,3\n4"),
    ("lenet", "lenet\n1,12,12\n10"),
    ("resnet", "resnet:width=2\n1,8,8\n3"),
    ("googlenet", "googlenet\n1,4,4\n5"),
    ("canonical_tiny_buffer", "mlp:hidden=7\n1,2,2\n2\n5"),
    ("repeated_key", "mlp:hidden=3,hidden=4\n3\n2"),
    ("near_miss_key", "mlp:width=4"),
    ("near_miss_value", "resnet:width=0x10"),
    ("near_miss_name", "lenet5:"),
]:
    put("model_spec", name, text)

# ---- the command line: one argument per line ------------------------------------------

for name, args in [
    ("train", ["train", "--model", "mlp:hidden=16", "--epochs", "3", "--batch-size=64",
               "--lr", "0.05", "--optimizer", "sgd", "--momentum", "0.9", "--seed", "7"]),
    ("train_adamw", ["train", "--optimizer=adamw", "--weight-decay", "0.01", "--out",
                     "m.safetensors", "--threads", "2"]),
    ("train_resume", ["train", "--resume", "m.ckpt.safetensors", "--epochs", "12"]),
    ("eval", ["eval", "m.safetensors", "--data", "data", "--batch-size", "500"]),
    ("summary_model", ["summary", "--model", "lenet", "--in-shape", "1,28,28", "--classes", "10"]),
    ("summary_file", ["summary", "m.safetensors"]),
    ("predict_idx", ["predict", "m.safetensors", "--idx", "t10k-images", "--labels", "t10k-labels",
                     "--index", "5", "--count", "3", "--top", "2"]),
    ("predict_pgm", ["predict", "m.safetensors", "a.pgm", "b.pgm", "--", "-c.pgm"]),
    ("help", ["help", "train"]),
    ("version", ["--version"]),
    ("near_miss_value", ["train", "--lr", "1e999"]),
    ("near_miss_option", ["eval", "--batch-size"]),
]:
    put("cli", name, "\n".join(args))

# ---- checkpoint metadata as `brick train --resume` reads it: one edit per line ----------
# ("key=value" sets, "-key" removes; fuzz_ckpt.c applies them to a valid checkpoint)

for name, edits in [
    ("unchanged", []),
    ("cosine", ["brick.lr_schedule=cosine", "brick.lr_t_max=3", "brick.lr_min=0.001"]),
    ("step", ["brick.lr_schedule=step", "brick.lr_step_size=1", "brick.lr_gamma=0.5"]),
    ("mid_epoch", ["brick.epoch=0", "brick.batch=1", "brick.epoch_loss_sum=0x1.2p+3",
                   "brick.epoch_correct=1", "brick.epoch_seen=4", "brick.epoch_seconds=0.5"]),
    ("adam", ["brick.optimizer=adam", "brick.weight_decay=0"]),
    ("batch_2p61", ["brick.batch_size=2305843009213693952"]),
    ("lr_word", ["brick.lr=fast"]),
    ("t_max_2p32", ["brick.lr_schedule=cosine", "brick.lr_t_max=4294967297", "brick.lr_min=0"]),
    ("even_rng", ["brick.loader_rng=9a4aa19c3b8f0cac:000000000000006c"]),
    ("no_arch", ["-brick.arch"]),
    ("bigger_model", ["brick.arch=mlp:hidden=4"]),
    ("history", ["brick.history=1,2.5,0.1,2.4,0.2,0.01\n"]),
]:
    put("ckpt", name, "\n".join(edits))

# ---- names as they are printed: byte 0 = output buffer size (0: large), then the name -----

for name, size, text in [
    ("plain", 0, b"1.weight"),
    ("newline_forgery", 0, b"x\nbrick eval: all good, accuracy 1.0000"),
    ("esc_sequences", 0, b"\x1b[31mred\x1b[0m \x1b]0;title\x07"),
    ("c1_and_bidi", 0, "c1 \u009b2J bidi \u202eevil \u2066".encode()),
    ("invalid_utf8", 0, b"bad \xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x82"),
    ("utf8_text", 0, "caf\u00e9 \u20ac \U0001F600".encode()),
    ("cut_small", 9, b"abc\x1b\xc3\xa9xyz"),
    ("cut_tiny", 3, b"\x1b\x1b\x1b"),
    ("empty", 0, b""),
]:
    put("escape", name, bytes([size]) + text)

# ---- CIFAR-10: [crop | flip << 3 | no names << 4][batch length, u16 LE][test_batch.bin][names]

def cifar_records(labels):
    return b"".join(bytes([lab]) + bytes((i * 7 + k) % 256 for k in range(3072)) for i, lab in enumerate(labels))


TEN_NAMES = b"\n".join(b"c%d" % i for i in range(10)) + b"\n\n"
two = cifar_records([3, 9])
put("cifar", "two_records_crop_flip", bytes([4 | 8]) + struct.pack("<H", len(two)) + two + TEN_NAMES)
put("cifar", "one_record_no_names", bytes([16]) + struct.pack("<H", 3073) + cifar_records([0]))
put("cifar", "bad_label", bytes([16]) + struct.pack("<H", 3073) + cifar_records([10]))
put("cifar", "short_record", bytes([16]) + struct.pack("<H", 3000) + cifar_records([1])[:3000])
put("cifar", "nine_names", bytes([0]) + struct.pack("<H", 3073) + cifar_records([2]) + b"a\nb\nc\nd\ne\nf\ng\nh\ni\n")

# ---- image folders: [settings][a/1.pgm length, u16 LE][a/1.pgm][2.png] -------------------

pgm = b"P5 4 3 255\n" + bytes(range(0, 240, 20))
rgb = png(3, 2, 2, range(0, 180, 10))
put("image_folder", "two_classes", bytes([0]) + struct.pack("<H", len(pgm)) + pgm + rgb)
put("image_folder", "rgb_size5_one_class", bytes([2 | 5 << 2 | 32]) + struct.pack("<H", len(pgm)) + pgm + rgb)
put("image_folder", "given_classes_grey", bytes([1 | 3 << 2 | 128]) + struct.pack("<H", len(pgm)) + pgm + rgb)
put("image_folder", "empty_class", bytes([64]) + struct.pack("<H", len(pgm)) + pgm + rgb)
put("image_folder", "not_an_image", bytes([0]) + struct.pack("<H", len(pgm)) + pgm + b"garbage")
