#!/usr/bin/env python3
"""craft_safetensors.py - a copy of a safetensors file with changed metadata or values, for
the tests of what brick refuses to read back (tests/test_cli.sh). Plain Python 3, no torch.

    craft_safetensors.py IN OUT EDIT...

EDIT is one of
    KEY=VALUE     set the metadata KEY to the string VALUE (added if absent)
    -KEY          remove the metadata KEY
    nan:NAME      make the first element of the F32 tensor NAME a NaN
    inf:NAME      ... an infinity
The tensors' bytes are kept; only the header (and its length) is rewritten.
"""
import json
import math
import struct
import sys


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    src, dst, edits = argv[1], argv[2], argv[3:]
    with open(src, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = bytearray(blob[8 + n:])
    meta = header.setdefault("__metadata__", {})
    for e in edits:
        if e.startswith("nan:") or e.startswith("inf:"):
            name = e[4:]
            if name not in header:
                sys.stderr.write("craft_safetensors: no tensor %r in %s\n" % (name, src))
                return 1
            start = header[name]["data_offsets"][0]
            value = math.nan if e.startswith("nan:") else math.inf
            data[start:start + 4] = struct.pack("<f", value)
        elif e.startswith("-"):
            meta.pop(e[1:], None)
        elif "=" in e:
            key, value = e.split("=", 1)
            meta[key] = value
        else:
            sys.stderr.write("craft_safetensors: bad edit %r\n" % e)
            return 2
    text = json.dumps(header, separators=(",", ":")).encode()
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
