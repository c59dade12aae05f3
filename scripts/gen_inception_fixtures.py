#!/usr/bin/env python3
"""Generate the PyTorch reference fixture for the C FID Inception-v3 (src/nn/inception.c).

The network is the one FID is defined with: TensorFlow's "inception-2015-12-05"
graph as ported by pytorch-fid (pytorch_fid.inception.fid_inception_v3, Heusel
et al. 2017 via Szegedy et al. 2016). If pytorch_fid is importable its
fid_inception_v3() is used; otherwise the same network is built here exactly as
pytorch-fid does: torchvision's Inception3(num_classes=1008, aux_logits=False,
transform_input=False, init_weights=False) with Mixed_5b..5d replaced by
FIDInceptionA, Mixed_6b..6e by FIDInceptionC, Mixed_7b by FIDInceptionE_1 and
Mixed_7c by FIDInceptionE_2 (TF's average pools exclude the padding; the last
block's pool branch is a max pool).

No weights are stored (the network has ~24M parameters): every state-dict entry
(parameters and BatchNorm buffers; num_batches_tracked is dropped) gets the
"synthetic" value of scripts/gen_unet_fixtures.py (a pure function of its name,
reproduced bit-exactly by tests/synthetic.c), with one extra rule for BatchNorm
running variances, which must be positive:

  name ending in ".running_var"   v = (1 + 0.5 |u|) / 8

(u = unit(fnv1a64(name), i), computed in float64, rounded once to float32).
The factor 1/8 makes the folded BatchNorm gain gamma / sqrt(var) about 2.5,
which offsets the 1/6 loss of second moment of a 1/sqrt(fan_in) uniform conv
followed by ReLU, so the signal of the input neither vanishes nor explodes
through the 94 conv layers (the script prints the statistics of pool3 and
how much pool3 differs between images, to show it depends on the input).

Inputs (test_images): three uint8 images (3, 3, 32, 32) -- uniform noise, smooth
colour ramps, dark noise -- and one non-square uint8 noise image (1, 3, 24, 40).
Preprocessing exactly as pytorch-fid's InceptionV3 (resize_input=True,
normalize_input=True) after torchvision's ToTensor: x = uint8 / 255 (float32),
F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False),
x = 2 x - 1. The network then runs in float64 (the reference is the exact
result, not PyTorch's float32 rounding).

Writes tests/fixtures/inception.safetensors (float32, gen_op_fixtures.Writer):

  images        (3, 3, 32, 32)  the uint8 values as floats 0..255
  pool3         (3, 2048)       global-average-pooled Mixed_7c ("pool_3")
  logits        (3, 1008)       fc(pool3), with the bias
  spatial       (3, 2023)       sFID features: Mixed_6d.branch1x1 (TF "mixed_6/conv"), channels 0..6, (H, W, C)
  images_rect   (1, 3, 24, 40), pool3_rect (1, 2048)   the non-square case

__metadata__: "param_count" (23,850,960 parameters, not counting the BatchNorm buffers),
"running_var_rule", "model" (which implementation built the reference) and
"state_dict": one line "<key> <d0>,<d1>,...\n" per state-dict tensor, in
state-dict order, without num_batches_tracked (the C test checks its parameter
table against it).

Run with Debian's python3-torch and python3-torchvision:

  /usr/bin/python3 scripts/gen_inception_fixtures.py [--out-dir DIR]
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer, check_file  # noqa: E402
import gen_unet_fixtures  # noqa: E402

RUNNING_VAR_SCALE = 1.0 / 8.0


def synthetic_param(name, shape):
    """gen_unet_fixtures.synthetic_param plus the running-variance rule
    (mirrored by tests/synthetic.c)."""
    if name.endswith(".running_var"):
        v = gen_unet_fixtures.unit(gen_unet_fixtures.fnv1a64(name), math.prod(shape))
        v = (1.0 + 0.5 * np.abs(v)) * RUNNING_VAR_SCALE
        return torch.from_numpy(v.astype(np.float32).reshape(shape))
    return gen_unet_fixtures.synthetic_param(name, shape)


# ---------------------------------------------------------------------------
# the FID Inception (pytorch-fid's blocks, re-implemented if it is missing)
# ---------------------------------------------------------------------------

def build_fid_inception():
    """pytorch_fid.inception.fid_inception_v3() without loading weights."""
    try:
        from pytorch_fid import inception as pf
    except ImportError:
        pf = None
    if pf is not None:
        # fid_inception_v3() minus its final download of the weights
        model = pf._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        model.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
        model.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
        model.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
        model.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
        model.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
        model.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
        model.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
        model.Mixed_7b = pf.FIDInceptionE_1(1280)
        model.Mixed_7c = pf.FIDInceptionE_2(2048)
        return model, "pytorch_fid.inception blocks"

    import torchvision.models.inception as tvi

    class FIDInceptionA(tvi.InceptionA):
        def forward(self, x):
            branch1x1 = self.branch1x1(x)
            branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
            branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            # TF's average pool does not count the zero padding
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1,
                                       count_include_pad=False)
            branch_pool = self.branch_pool(branch_pool)
            return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)

    class FIDInceptionC(tvi.InceptionC):
        def forward(self, x):
            branch1x1 = self.branch1x1(x)
            branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            branch7x7dbl = self.branch7x7dbl_1(x)
            branch7x7dbl = self.branch7x7dbl_2(branch7x7dbl)
            branch7x7dbl = self.branch7x7dbl_3(branch7x7dbl)
            branch7x7dbl = self.branch7x7dbl_4(branch7x7dbl)
            branch7x7dbl = self.branch7x7dbl_5(branch7x7dbl)
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1,
                                       count_include_pad=False)
            branch_pool = self.branch_pool(branch_pool)
            return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)

    class FIDInceptionE_1(tvi.InceptionE):
        def pool(self, x):
            return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

        def forward(self, x):
            branch1x1 = self.branch1x1(x)
            branch3x3 = self.branch3x3_1(x)
            branch3x3 = torch.cat([self.branch3x3_2a(branch3x3),
                                   self.branch3x3_2b(branch3x3)], 1)
            branch3x3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            branch3x3dbl = torch.cat([self.branch3x3dbl_3a(branch3x3dbl),
                                      self.branch3x3dbl_3b(branch3x3dbl)], 1)
            branch_pool = self.branch_pool(self.pool(x))
            return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)

    class FIDInceptionE_2(FIDInceptionE_1):
        def pool(self, x):
            # the TF graph has a bug here: a max pool where an average pool was meant
            return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)

    model = tvi.Inception3(num_classes=1008, aux_logits=False, transform_input=False,
                           init_weights=False)
    model.Mixed_5b = FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = FIDInceptionE_1(1280)
    model.Mixed_7c = FIDInceptionE_2(2048)
    return model, "torchvision Inception3 + FID blocks re-implemented"


def synthetic_model():
    model, origin = build_fid_inception()
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    new_sd = {k: synthetic_param(k, tuple(v.shape)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(new_sd, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
    return model.eval(), origin, sd


def test_images():
    """(3, 3, 32, 32) and (1, 3, 24, 40) uint8: images that differ in structure
    (noise, smooth ramps, dark noise), so their features differ clearly."""
    torch.manual_seed(0)
    noise = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    ramps = torch.stack([xx * 8, yy * 8, (xx + yy) * 4]).clamp(0, 255).to(torch.uint8)[None]
    dark = torch.randint(0, 60, (1, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(1)
    rect = torch.randint(0, 256, (1, 3, 24, 40), dtype=torch.uint8)
    return torch.cat([noise, ramps, dark]), rect


def preprocess(images_u8):
    """pytorch-fid: ToTensor (x / 255), bilinear resize to 299, 2x - 1; float32."""
    x = images_u8.to(torch.float32).div(255)
    if x.shape[2] != 299 or x.shape[3] != 299:
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return 2 * x - 1


def features(model, x, with_spatial=False):
    """pool3 (B, 2048) and logits (B, 1008), as pytorch-fid's InceptionV3 blocks; with_spatial also
    the sFID features of guided-diffusion's evaluator: TF's "mixed_6/conv" (Mixed_6d's 1x1 branch
    after its ReLU), first 7 channels, in TF's (H, W, C) order, flattened: (B, 2023)."""
    m = model
    spatial = None
    for layer in (m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3, m.maxpool1,
                  m.Conv2d_3b_1x1, m.Conv2d_4a_3x3, m.maxpool2,
                  m.Mixed_5b, m.Mixed_5c, m.Mixed_5d, m.Mixed_6a, m.Mixed_6b,
                  m.Mixed_6c, m.Mixed_6d, m.Mixed_6e, m.Mixed_7a, m.Mixed_7b, m.Mixed_7c):
        if with_spatial and layer is m.Mixed_6d:
            spatial = m.Mixed_6d.branch1x1(x)[:, :7].permute(0, 2, 3, 1).flatten(1)
        x = layer(x)
    pool3 = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
    if with_spatial:
        return pool3, m.fc(pool3), spatial
    return pool3, m.fc(pool3)


def describe(name, t):
    t = t.double()
    print(f"  {name}: shape {tuple(t.shape)} mean {t.mean():.4g} std {t.std():.4g} "
          f"min {t.min():.4g} max {t.max():.4g}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                    help="output directory (default: %(default)s)")
    args = ap.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    start = time.time()

    model, origin, sd = synthetic_model()
    count = sum(p.numel() for p in model.parameters())
    print(f"model: {origin}; {count} parameters, {len(sd)} state-dict tensors "
          f"(num_batches_tracked dropped)")
    images, images_rect = test_images()

    with torch.no_grad():
        x = preprocess(images)
        logits32 = model(x)   # torchvision's own forward in float32 (eval: logits only)
        model.double()
        pool3, logits, spatial = features(model, x.double(), with_spatial=True)
        pool3_rect, _ = features(model, preprocess(images_rect).double())
    rel = ((logits32.double() - logits).abs().max() / logits.abs().max()).item()
    print(f"torchvision float32 forward vs float64 features(): max error {rel:.2e} "
          "of max |logit|")
    assert rel < 1e-5, "features() disagrees with the model's own forward"
    describe("pool3", pool3)
    describe("logits", logits)
    describe("pool3_rect", pool3_rect)
    describe("spatial", spatial)
    spread = (pool3 - pool3.mean(0, keepdim=True)).abs().mean() / pool3.abs().mean()
    print(f"  pool3 difference between images: {spread:.3g} of its mean magnitude "
          "(the features depend on the input)")
    assert 1e-2 < pool3.abs().mean() < 10, "pool3 vanished or exploded"
    assert spread > 0.1, "pool3 hardly depends on the input"

    wr = Writer()
    wr.meta("param_count", str(count))
    wr.meta("running_var_rule", f"(1 + 0.5 |u|) * {RUNNING_VAR_SCALE!r}")
    wr.meta("model", origin)
    wr.meta("state_dict", "".join(f"{k} {','.join(str(d) for d in v.shape)}\n"
                                  for k, v in sd.items()))
    wr.add("images", images.to(torch.float32))
    wr.add("pool3", pool3)
    wr.add("logits", logits)
    wr.add("spatial", spatial)
    wr.add("images_rect", images_rect.to(torch.float32))
    wr.add("pool3_rect", pool3_rect)
    path = os.path.join(args.out_dir, "inception.safetensors")
    wr.write(path)
    _, header = check_file(path)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(header)} tensors, "
          f"{time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
