#!/usr/bin/env python3
"""gen_image.py - image files and what torchvision would make of them, for test_parity_image.

For each case: an image file <case>.png|.jpg|.pgm of a random size and content (drawn from
the case's seed), and <case>.ref.safetensors holding "want", the (C, H, W) tensor that
torchvision's pipeline gives for it: the decoded samples / maxval, alpha dropped, Grayscale
(0.2989 R + 0.587 G + 0.114 B, torchvision's rgb_to_grayscale) or grey copied to RGB, then
Resize((H, W)) on the tensor with antialias=True, which is
torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)
(torchvision itself is not installed here; this is the code it runs). Metadata: the image
file name, the channels, the size and the tolerance.

PNG files are decoded here by PIL, exactly (every decoder gives the same samples). A JPEG's
decoded samples depend on the decoder's IDCT and upsampling (stb_image and libjpeg differ by
a few levels), so JPEG cases compare with atol 0.06 (15 of 255 levels) where PNG and PGM cases
compare at float32 precision (atol 1e-5).
"""
import io
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import case_seed, generator_args, report, write_case  # noqa: E402

# name: (format, PIL mode or pgm kind, want channels)
CASES = {
    "img_png_grey_down": ("png", "L", 1),
    "img_png_rgb_to_grey": ("png", "RGB", 1),
    "img_png_rgba_rgb": ("png", "RGBA", 3),
    "img_png_la_grey": ("png", "LA", 1),
    "img_png_grey_to_rgb": ("png", "L", 3),
    "img_png_grey16": ("png", "I;16", 1),
    "img_png_up": ("png", "RGB", 3),
    "img_png_same_size": ("png", "L", 1),
    "img_jpg_rgb_grey": ("jpg", "RGB", 1),
    "img_jpg_grey": ("jpg", "L", 1),
    "img_pgm_p5_8": ("pgm", "P5", 1),
    "img_pgm_p5_16": ("pgm", "P5-16", 1),
    "img_pgm_p2": ("pgm", "P2", 3),
}


def smooth_image(g, h, w, c):
    """A smooth random picture (JPEG keeps it well) with some noise, in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    planes = []
    for _ in range(c):
        a, b, p = torch.rand(3, generator=g) * 6
        planes.append(0.5 + 0.35 * torch.sin(a * xx + b * yy + p) + 0.05 * torch.rand(h, w, generator=g))
    return torch.stack(planes, -1).clamp(0, 1)  # (h, w, c)


def main():
    args = generator_args(__doc__)
    count = 0
    for name, (fmt, mode, C) in CASES.items():
        if not args.wanted(name):
            continue
        g = torch.Generator().manual_seed(case_seed(args.seed, name))
        h, w = (int(v) for v in torch.randint(5, 90, (2,), generator=g))
        H, W = (int(v) for v in torch.randint(4, 40, (2,), generator=g))
        if name == "img_png_up":
            H, W = h + 17, w + 9
        if name == "img_png_same_size":
            H, W = h, w
        if name == "img_pgm_p2":
            h, w = min(h, 20), min(w, 20)
        channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 1)
        x = smooth_image(g, h, w, channels)
        maxval = 65535 if mode in ("I;16", "P5-16") else 255
        q = (x * maxval).round().to(torch.int64).numpy()  # (h, w, c) integer samples
        path = os.path.join(args.out, name + "." + fmt)
        if fmt == "pgm":
            if mode == "P2":
                body = " ".join(str(v) for v in q[:, :, 0].ravel())
                data = f"P2\n# a comment\n{w} {h}\n{maxval}\n{body}\n".encode()
            else:
                dt = ">u2" if maxval > 255 else "u1"
                data = f"P5 {w} {h} {maxval}\n".encode() + q[:, :, 0].astype(dt).tobytes()
            open(path, "wb").write(data)
            samples = torch.from_numpy(q.astype(np.float64)).float() / maxval
        else:
            if mode == "I;16":
                pil = Image.fromarray(q[:, :, 0].astype(np.uint16))
            else:
                arr = q.astype(np.uint8)
                pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)
            buf = io.BytesIO()
            pil.save(buf, "PNG" if fmt == "png" else "JPEG", **({"quality": 95} if fmt == "jpg" else {}))
            open(path, "wb").write(buf.getvalue())
            back = np.asarray(Image.open(path))
            back = back.reshape(back.shape[0], back.shape[1], -1).astype(np.float64)
            samples = torch.from_numpy(back).float() / maxval  # (h, w, c) as decoded
        planes = samples.permute(2, 0, 1)  # (c, h, w)
        if planes.shape[0] in (2, 4):
            planes = planes[:-1]  # alpha dropped
        if C == 1 and planes.shape[0] == 3:
            r, gr, b = planes
            planes = (0.2989 * r + 0.587 * gr + 0.114 * b).unsqueeze(0)
        elif C == 3 and planes.shape[0] == 1:
            planes = planes.expand(3, -1, -1)
        want = planes
        if (H, W) != (h, w):
            want = F.interpolate(planes.unsqueeze(0), size=(H, W), mode="bilinear", align_corners=False,
                                 antialias=True)[0]
        atol = 0.06 if fmt == "jpg" else 1e-5
        meta = {"image": name + "." + fmt, "channels": C, "height": H, "width": W, "atol": atol,
                "stored": f"{w}x{h}"}
        write_case(args.out, name, {"want": want.contiguous()}, meta)
        count += 1
    report(args, "gen_image.py", count)


if __name__ == "__main__":
    main()
