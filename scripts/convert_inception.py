#!/usr/bin/env python3
"""Convert pytorch-fid's FID Inception weights (.pth) to safetensors for diffuse.

FID and the Inception Score are defined with TensorFlow's "inception-2015-12-05"
graph; pytorch-fid ports it to PyTorch and publishes the weights as a state
dict. diffuse (src/nn/inception.c) reads them from safetensors under the same
key names ("Conv2d_1a_3x3.conv.weight", "Mixed_5b.branch1x1.bn.running_var",
..., "fc.weight", "fc.bias"), folding the BatchNorms itself at load time.

Usage:

  wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
  /usr/bin/python3 scripts/convert_inception.py pt_inception-2015-12-05-6726825d.pth inception.safetensors

The state dict is loaded with torch.load(map_location="cpu"); a checkpoint
that wraps it under "state_dict" is unwrapped. "*.num_batches_tracked" entries
are dropped, every other tensor is written as float32 with its key unchanged
(gen_op_fixtures.Writer; no `safetensors` package needed). The script checks
that the result has the FID Inception's 472 tensors and 1008 classes, and
writes to a temporary file renamed into place at the end.

Needs Debian's python3-torch (any PyTorch that can read the .pth).
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import Writer, check_file  # noqa: E402

EXPECTED_TENSORS = 472      # 94 BasicConv2d x 5 (conv weight, bn weight/bias/mean/var) + fc
EXPECTED_FC_SHAPE = (1008, 2048)


def convert(src, dst):
    try:
        sd = torch.load(src, map_location="cpu")
    except Exception as e:   # a missing file, a safetensors or otherwise non-PyTorch file
        raise SystemExit(f"{src}: cannot be read by torch.load: {e}")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise SystemExit(f"{src}: not a state dict (got {type(sd).__name__})")
    wr = Writer()
    dropped = 0
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            dropped += 1
            continue
        if not torch.is_tensor(value):
            raise SystemExit(f"{src}: entry {key!r} is a {type(value).__name__}, not a tensor")
        wr.add(key, value.float())
    n = len(wr.tensors)
    fc = sd.get("fc.weight")
    if n != EXPECTED_TENSORS or fc is None or tuple(fc.shape) != EXPECTED_FC_SHAPE:
        raise SystemExit(f"{src}: {n} tensors, fc.weight {None if fc is None else tuple(fc.shape)}; "
                         f"the FID Inception has {EXPECTED_TENSORS} tensors and fc.weight "
                         f"{EXPECTED_FC_SHAPE} (is this pt_inception-2015-12-05-6726825d.pth?)")
    wr.meta("source", os.path.basename(src))
    dst = os.path.abspath(dst)
    tmp = f"{dst}.tmp.{os.getpid()}"
    wr.write(tmp)
    check_file(tmp)
    os.replace(tmp, dst)
    print(f"{dst}: {n} tensors ({dropped} num_batches_tracked dropped), "
          f"{os.path.getsize(dst)} bytes")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="pytorch-fid state dict, pt_inception-2015-12-05-6726825d.pth")
    ap.add_argument("dst", help="output .safetensors")
    args = ap.parse_args(argv)
    convert(args.src, args.dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
