#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the C op and optimizer tests.

Writes two safetensors files (float32, little-endian, C-contiguous):

  tests/fixtures/ops.safetensors    forward (and, where differentiable, backward)
                                    reference for every op case
  tests/fixtures/optim.safetensors  AdamW + grad-norm clipping + EMA, 10 steps

Layout of ops.safetensors: each case has a unique name (e.g. "conv2d_k3_s1_p1");
its tensors are "<case>.<role>" with roles
  x, x2, x3         inputs
  w, b, mean, var   parameters
  y                 output
  gy                upstream gradient (backward cases only)
  gx, gx2, gx3, gw, gb
                    d(sum(y * gy)) / d(tensor), from autograd
and __metadata__["<case>"] is a JSON string with "op", "backward" and the op's
attributes. optim.safetensors keeps its hyperparameters in
__metadata__["config"].

The safetensors writer is self-contained (no `safetensors` package). Every
case seeds torch's RNG from a stable hash of its own name, so cases do not
depend on each other and repeated runs produce identical bytes.

Run with Debian's python3-torch (not a pyenv interpreter):

  /usr/bin/python3 scripts/gen_op_fixtures.py [--out-dir DIR]
"""

import argparse
import json
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn.functional as F

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(SCRIPT_DIR)
DEFAULT_OUT_DIR = os.path.join(REPO_ROOT, "tests", "fixtures")


# ---------------------------------------------------------------------------
# safetensors writer / checker
# ---------------------------------------------------------------------------

class Writer:
    """Collects float32 tensors and string metadata, writes one safetensors file."""

    def __init__(self):
        self.tensors = []      # list of (name, shape, bytes), in write order
        self.names = set()
        self.metadata = {}

    def add(self, name, t):
        if name in self.names:
            raise ValueError(f"duplicate tensor name {name!r}")
        t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
        shape = list(t.shape) if t.dim() > 0 else [1]   # scalars stored as [1]
        data = t.reshape(-1).numpy().astype("<f4").tobytes()
        self.tensors.append((name, shape, data))
        self.names.add(name)

    def meta(self, key, value):
        if key in self.metadata:
            raise ValueError(f"duplicate metadata key {key!r}")
        self.metadata[key] = value if isinstance(value, str) else json.dumps(value)

    def write(self, path):
        header = {"__metadata__": self.metadata}
        offset = 0
        for name, shape, data in self.tensors:
            header[name] = {"dtype": "F32", "shape": shape,
                            "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
        hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
        hjson += b" " * ((-len(hjson)) % 8)   # data section starts 8-aligned
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(hjson)))
            f.write(hjson)
            for _, _, data in self.tensors:
                f.write(data)


def check_file(path):
    """Parse a safetensors file back; check header, offsets and packing."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert (8 + n) % 8 == 0, "data section not 8-byte aligned"
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data_len = len(blob) - 8 - n
    meta = header.pop("__metadata__", {})
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    spans = []
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        assert 0 <= begin <= end <= data_len, f"{name}: offsets out of bounds"
        assert end - begin == 4 * math.prod(info["shape"]), f"{name}: size mismatch"
        spans.append((begin, end))
    spans.sort()
    pos = 0
    for begin, end in spans:
        assert begin == pos, "tensors not packed contiguously"
        pos = end
    assert pos == data_len, "trailing bytes after last tensor"
    return meta, header


# ---------------------------------------------------------------------------
# case helper
# ---------------------------------------------------------------------------

def seed_for(name):
    torch.manual_seed(zlib.crc32(name.encode("utf-8")))


def add_case(wr, name, attrs, fn, inputs, params=None, backward=True,
             no_grad=(), gy=None):
    """Run fn(**inputs, **params), store inputs/params/y and, if backward,
    gy and the gradient of every input/param not listed in no_grad.

    inputs/params: dicts role -> tensor (ordered); fn receives them as kwargs.
    """
    params = params or {}
    leaves = {}
    for role, t in list(inputs.items()) + list(params.items()):
        t = t.detach().to(torch.float32).clone()
        if backward and role not in no_grad:
            t.requires_grad_(True)
        leaves[role] = t

    y = fn(**leaves)
    for role, t in leaves.items():
        wr.add(f"{name}.{role}", t)
    wr.add(f"{name}.y", y)

    if backward:
        if gy is None:
            gy = torch.randn(y.shape)
        y.backward(gy)
        wr.add(f"{name}.gy", gy)
        for role, t in leaves.items():
            if role not in no_grad:
                wr.add(f"{name}.g{role}", t.grad)

    meta = {"op": attrs.pop("op"), "backward": backward}
    meta.update(attrs)
    wr.meta(name, meta)


# ---------------------------------------------------------------------------
# op families
# ---------------------------------------------------------------------------

def gen_conv2d(wr):
    # name, B, Cin, Cout, H, W, kh, kw, sh, sw, (top, bottom, left, right), bias
    cases = [
        ("conv2d_k3_s1_p1",         2, 3, 4, 8, 8, 3, 3, 1, 1, (1, 1, 1, 1), True),
        ("conv2d_k3_s2_same",       2, 4, 5, 8, 8, 3, 3, 2, 2, (0, 1, 0, 1), True),
        ("conv2d_k1_s1_p0_nobias",  2, 6, 3, 5, 7, 1, 1, 1, 1, (0, 0, 0, 0), False),
        ("conv2d_k1x7_p3",          1, 3, 4, 6, 9, 1, 7, 1, 1, (0, 0, 3, 3), True),
        ("conv2d_k7x1_p3_nobias",   1, 3, 2, 9, 6, 7, 1, 1, 1, (3, 3, 0, 0), False),
        ("conv2d_k5_s1_p2",         2, 2, 3, 7, 7, 5, 5, 1, 1, (2, 2, 2, 2), True),
        ("conv2d_k3_s2_p0",         2, 3, 4, 11, 11, 3, 3, 2, 2, (0, 0, 0, 0), True),
        ("conv2d_k3_s2_p1_odd",     2, 2, 3, 9, 7, 3, 3, 2, 2, (1, 1, 1, 1), True),
        # 33x33 images: one per backward GEMM (several chunks), 8 per forward GEMM (two chunks)
        ("conv2d_k3_s1_p1_chunks",  9, 2, 3, 33, 33, 3, 3, 1, 1, (1, 1, 1, 1), True),
        ("conv2d_k1_chunks",        9, 2, 3, 33, 33, 1, 1, 1, 1, (0, 0, 0, 0), True),
        ("conv2d_k3_s2_chunks",     3, 2, 3, 66, 65, 3, 3, 2, 2, (0, 1, 0, 1), False),
    ]
    for name, B, cin, cout, H, W, kh, kw, sh, sw, pad, bias in cases:
        seed_for(name)
        top, bottom, left, right = pad
        x = torch.randn(B, cin, H, W)
        params = {"w": torch.randn(cout, cin, kh, kw) * 0.2}
        if bias:
            params["b"] = torch.randn(cout) * 0.2

        def fn(x, w, b=None, sh=sh, sw=sw, pad=(left, right, top, bottom)):
            return F.conv2d(F.pad(x, pad), w, b, stride=(sh, sw))

        attrs = {"op": "conv2d", "stride_h": sh, "stride_w": sw,
                 "pad_top": top, "pad_bottom": bottom,
                 "pad_left": left, "pad_right": right, "has_bias": bias}
        add_case(wr, name, attrs, fn, {"x": x}, params)


def gen_linear(wr):
    for name, n, fin, fout, bias in [("linear_bias", 4, 6, 5, True),
                                     ("linear_nobias", 3, 8, 2, False)]:
        seed_for(name)
        x = torch.randn(n, fin)
        params = {"w": torch.randn(fout, fin) * 0.3}
        if bias:
            params["b"] = torch.randn(fout) * 0.2

        def fn(x, w, b=None):
            return F.linear(x, w, b)

        add_case(wr, name, {"op": "linear", "has_bias": bias}, fn, {"x": x}, params)


def gen_group_norm(wr):
    # name, B, C, H, W, groups, eps
    for name, B, C, H, W, G, eps in [
        ("group_norm_c8_g4", 2, 8, 4, 4, 4, 1e-5),
        ("group_norm_c64_g32", 2, 64, 3, 3, 32, 1e-6),
        ("group_norm_c6_g1", 1, 6, 2, 5, 1, 1e-5),
    ]:
        seed_for(name)
        x = torch.randn(B, C, H, W) * 2 + 1
        params = {"w": 1 + torch.randn(C) * 0.2, "b": torch.randn(C) * 0.2}

        def fn(x, w, b, G=G, eps=eps):
            return F.group_norm(x, G, w, b, eps)

        add_case(wr, name, {"op": "group_norm", "groups": G, "eps": eps},
                 fn, {"x": x}, params)


def gen_activations(wr):
    seed_for("silu")
    add_case(wr, "silu", {"op": "silu"}, lambda x: F.silu(x),
             {"x": torch.randn(2, 3, 4, 5) * 2})



def gen_softmax(wr):
    for name, shape in [("softmax_6x10", (6, 10)), ("softmax_3x257", (3, 257))]:
        seed_for(name)
        add_case(wr, name, {"op": "softmax"}, lambda x: torch.softmax(x, dim=-1),
                 {"x": torch.randn(*shape) * 3})


def attention_ref(x, x2, x3):
    """Single-head self-attention over spatial positions, q=x, k=x2, v=x3."""
    B, C, H, W = x.shape
    q = x.reshape(B, C, H * W)
    k = x2.reshape(B, C, H * W)
    v = x3.reshape(B, C, H * W)
    s = torch.bmm(q.transpose(1, 2), k) / math.sqrt(C)     # (B, N_i, N_j)
    p = torch.softmax(s, dim=-1)
    y = torch.bmm(v, p.transpose(1, 2))                     # (B, C, N_i)
    return y.reshape(B, C, H, W)


def gen_attention(wr):
    for name, B, C, H, W in [("attention_b2_c8_4x4", 2, 8, 4, 4),
                             ("attention_b1_c16_3x5", 1, 16, 3, 5)]:
        seed_for(name)
        inputs = {r: torch.randn(B, C, H, W) for r in ("x", "x2", "x3")}
        add_case(wr, name, {"op": "attention"}, attention_ref, inputs)


def gen_upsample(wr):
    name = "upsample_nearest2x"
    seed_for(name)
    add_case(wr, name, {"op": "upsample_nearest2x"},
             lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
             {"x": torch.randn(2, 3, 3, 4)})


def gen_pools(wr):
    for name, k, s, p, cip in [
        ("avg_pool2d_k3_s1_p1_excl", 3, 1, 1, False),
        ("avg_pool2d_k3_s1_p1_incl", 3, 1, 1, True),
        ("avg_pool2d_k2_s2_p0", 2, 2, 0, True),
    ]:
        seed_for(name)

        def fn(x, k=k, s=s, p=p, cip=cip):
            return F.avg_pool2d(x, k, s, p, count_include_pad=cip)

        attrs = {"op": "avg_pool2d", "kernel": k, "stride": s, "pad": p,
                 "count_include_pad": cip}
        add_case(wr, name, attrs, fn, {"x": torch.randn(2, 3, 6, 7)})

    for name, k, s, p, shape in [
        ("max_pool2d_k3_s2_p0", 3, 2, 0, (2, 3, 9, 9)),
        ("max_pool2d_k3_s1_p1", 3, 1, 1, (2, 3, 5, 6)),
    ]:
        seed_for(name)
        n = math.prod(shape)
        # distinct values (no ties), spread over roughly [-2, 2)
        x = (torch.randperm(n).to(torch.float32) / n * 4 - 2).reshape(shape)

        def fn(x, k=k, s=s, p=p):
            return F.max_pool2d(x, k, s, p)

        attrs = {"op": "max_pool2d", "kernel": k, "stride": s, "pad": p}
        add_case(wr, name, attrs, fn, {"x": x})

    name = "global_avg_pool"
    seed_for(name)
    add_case(wr, name, {"op": "global_avg_pool"},
             lambda x: x.mean(dim=(2, 3), keepdim=True),
             {"x": torch.randn(2, 5, 3, 4)})


def gen_elementwise(wr):
    seed_for("concat")
    add_case(wr, "concat", {"op": "concat"},
             lambda x, x2: torch.cat([x, x2], dim=1),
             {"x": torch.randn(2, 3, 4, 4), "x2": torch.randn(2, 5, 4, 4)})

    seed_for("add")
    add_case(wr, "add", {"op": "add"}, lambda x, x2: x + x2,
             {"x": torch.randn(2, 3, 4, 5), "x2": torch.randn(2, 3, 4, 5)})

    seed_for("mul")
    add_case(wr, "mul", {"op": "mul"}, lambda x, x2: x * x2,
             {"x": torch.randn(2, 3, 4, 5), "x2": torch.randn(2, 3, 4, 5)})

    alpha = -0.75
    seed_for("scale")
    add_case(wr, "scale", {"op": "scale", "alpha": alpha}, lambda x: alpha * x,
             {"x": torch.randn(2, 3, 4, 5)})

    seed_for("add_channel")
    add_case(wr, "add_channel", {"op": "add_channel"},
             lambda x, x2: x + x2[:, :, None, None],
             {"x": torch.randn(2, 4, 3, 3), "x2": torch.randn(2, 4)})


def timestep_embedding_ref(t, dim, max_period=10000):
    """diffusers get_timestep_embedding(flip_sin_to_cos=False,
    downscale_freq_shift=1, scale=1), float32 throughout."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - 1)
    freqs = torch.exp(exponent)
    args = t[:, None].float() * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def gen_timestep_embedding(wr):
    t = torch.tensor([0.0, 1.0, 17.0, 500.0, 999.0], dtype=torch.float32)
    for dim in (32, 128):
        name = f"timestep_embedding_d{dim}"
        add_case(wr, name, {"op": "timestep_embedding", "dim": dim},
                 lambda x, dim=dim: timestep_embedding_ref(x, dim), {"x": t},
                 backward=False)


def gen_losses(wr):
    name = "mse"
    seed_for(name)
    add_case(wr, name, {"op": "mse"},
             lambda x, x2: ((x - x2) ** 2).mean().reshape(1),
             {"x": torch.randn(2, 3, 4, 4), "x2": torch.randn(2, 3, 4, 4)},
             gy=torch.tensor([1.7]))

    name = "weighted_mse"
    seed_for(name)
    B = 3

    def fn(x, x2, w):
        per_sample = ((x - x2) ** 2).mean(dim=(1, 2, 3))
        return (w * per_sample).mean().reshape(1)

    add_case(wr, name, {"op": "weighted_mse"}, fn,
             {"x": torch.randn(B, 2, 4, 4), "x2": torch.randn(B, 2, 4, 4)},
             {"w": torch.rand(B) + 0.5}, no_grad=("w",), gy=torch.tensor([1.3]))


def gen_bilinear_resize(wr):
    for name, shape, oh, ow in [
        ("bilinear_resize_32_to_299", (1, 1, 32, 32), 299, 299),
        ("bilinear_resize_8_to_13x11", (2, 3, 8, 8), 13, 11),
        ("bilinear_resize_16_to_7", (1, 2, 16, 16), 7, 7),
    ]:
        seed_for(name)

        def fn(x, oh=oh, ow=ow):
            return F.interpolate(x, size=(oh, ow), mode="bilinear",
                                 align_corners=False, antialias=False)

        add_case(wr, name, {"op": "bilinear_resize", "out_h": oh, "out_w": ow},
                 fn, {"x": torch.randn(*shape)}, backward=False)


OP_FAMILIES = [
    gen_conv2d, gen_linear, gen_group_norm, gen_activations,
    gen_softmax, gen_attention, gen_upsample, gen_pools, gen_elementwise,
    gen_timestep_embedding, gen_losses, gen_bilinear_resize,
]


# ---------------------------------------------------------------------------
# optimizer reference
# ---------------------------------------------------------------------------

def gen_optim(wr):
    cfg = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
           "weight_decay": 0.1, "max_norm": 1.0, "ema_decay": 0.9, "steps": 10}
    wr.meta("config", cfg)
    seed_for("optim")

    params = [torch.randn(5, 3).requires_grad_(True),
              torch.randn(7).requires_grad_(True)]
    for i, p in enumerate(params):
        wr.add(f"p{i}.init", p)
    ema = [p.detach().clone() for p in params]

    opt = torch.optim.AdamW(params, lr=cfg["lr"],
                            betas=(cfg["beta1"], cfg["beta2"]),
                            eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    decay = cfg["ema_decay"]
    for s in range(1, cfg["steps"] + 1):
        scale = 3.0 if s % 2 == 1 else 0.05   # odd steps clip, even steps don't
        for i, p in enumerate(params):
            g = torch.randn(p.shape) * scale
            wr.add(f"p{i}.grad.{s}", g)
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, cfg["max_norm"])
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for i, (p, e) in enumerate(zip(params, ema)):
            wr.add(f"p{i}.after.{s}", p)
            wr.add(f"p{i}.ema.{s}", e)
        wr.add(f"grad_norm.{s}", norm.reshape(1))


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                    help="output directory (default: %(default)s)")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    ops = Writer()
    for family in OP_FAMILIES:
        family(ops)
    ops_path = os.path.join(args.out_dir, "ops.safetensors")
    ops.write(ops_path)

    optim = Writer()
    gen_optim(optim)
    optim_path = os.path.join(args.out_dir, "optim.safetensors")
    optim.write(optim_path)

    for path in (ops_path, optim_path):
        meta, header = check_file(path)
        print(f"{path}: {os.path.getsize(path)} bytes, "
              f"{len(header)} tensors, {len(meta)} metadata entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
