#!/usr/bin/env python3
"""Max and mean |a - b| of the tensor x of two `diffuse sample --save-tensor` files (e.g. the same
checkpoint, seed and sampler in --precision fp32 and bf16), and a side-by-side PNG (a | b | 8 |a - b|)
with --png. Needs only NumPy (and Pillow for --png).

  scripts/compare_samples.py fp32.safetensors bf16.safetensors [--png side_by_side.png]
"""
import argparse
import json
import struct

import numpy as np


def load_x(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header["x"]
    if meta["dtype"] != "F32":
        raise SystemExit(f"{path}: tensor x is {meta['dtype']}, want F32")
    lo, hi = meta["data_offsets"]
    return np.frombuffer(data[lo:hi], dtype="<f4").reshape(meta["shape"])


def grid(x):
    """(N, C, H, W) in [-1, 1] -> one row of N images, uint8 HWC."""
    x = np.clip((x + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    n, c, h, w = x.shape
    row = x.transpose(2, 0, 3, 1).reshape(h, n * w, c)
    return row if c == 3 else np.repeat(row, 3, axis=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--png", help="write rows a, b and 8 |a - b| (first 16 images)")
    args = ap.parse_args()
    a, b = load_x(args.a), load_x(args.b)
    if a.shape != b.shape:
        raise SystemExit(f"shapes differ: {a.shape} vs {b.shape}")
    d = np.abs(a.astype(np.float64) - b)
    per_image = d.reshape(d.shape[0], -1).max(axis=1)
    print(f"{a.shape[0]} images {tuple(a.shape[1:])}: max |a - b| {d.max():.4g}, mean {d.mean():.4g}; "
          f"in 8-bit levels: max {d.max() * 127.5:.2f}, mean {d.mean() * 127.5:.3f}; "
          f"worst image {int(per_image.argmax())} (max {per_image.max():.4g}), median image max {np.median(per_image):.4g}")
    if args.png:
        from PIL import Image
        k = min(16, a.shape[0])
        rows = [grid(a[:k]), grid(b[:k]), grid(8 * d[:k] - 1)]  # 8 |a - b| in 8-bit levels, black = equal
        Image.fromarray(np.concatenate(rows, axis=0)).resize((rows[0].shape[1] * 2, 3 * rows[0].shape[0] * 2),
                                                           Image.NEAREST).save(args.png)
        print(f"rows: a, b, 8 |a - b| -> {args.png}")


if __name__ == "__main__":
    main()
