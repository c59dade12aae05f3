#!/usr/bin/env python3
"""Generate PyTorch reference fixtures for the C U-Net (forward and backward).

The DDPM U-Net (Ho et al. 2020) is re-implemented here in plain PyTorch with
parameter names equal to the state-dict keys of diffusers' `UNet2DModel`
configured as for google/ddpm-cifar10-32 (positional time embedding with
flip_sin_to_cos=False and freq_shift=1, single-head attention with the new
`to_q/to_k/to_v/to_out.0` names, TF-"SAME" stride-2 downsampling, i.e.
downsample_padding=0). The module registration order follows diffusers, so
`named_parameters()` lists the keys in diffusers' state-dict order.

Every parameter, the input and the upstream gradient are "synthetic": a pure
function of the tensor name that tests/synthetic.c reproduces bit-exactly,

  fnv1a64(s)      FNV-1a 64-bit over the UTF-8 bytes of s
  mix64(z)        splitmix64 finaliser (with its 0x9E3779B97F4A7C15 increment)
  unit(stream, i) ((mix64(stream + i) >> 40) * 2^-24) * 2 - 1, exact, in [-1, 1)

and a parameter N of shape S with n elements gets v[i] = unit(fnv1a64(N), i)
scaled to v / sqrt(n / S[0]) (ndim >= 2), 1 + 0.1 v (1-D "*.weight") or
0.1 v (other 1-D), computed in float64 and rounded once to float32.
The input is x = unit(fnv1a64("input.x"), .), the upstream gradient
gy = unit(fnv1a64("input.gy"), .), and the loss is L = sum(y * gy).

Writes four safetensors files (float32, written by gen_op_fixtures.Writer):

  tests/fixtures/unet_small.safetensors
      16x16, ch 32, ch_mult [1, 2], one res block, attention at 8, batch 2:
      x, t, gy, y, grad.input and grad.<name> for every parameter
  tests/fixtures/unet_small_cond.safetensors
      the same with 10 classes and labels [3, 7]:
      x, t, gy, y, grad.class_embedding.weight, grad.conv_in.weight
  tests/fixtures/unet_classifier.safetensors
      the noise-conditional classifier (ADM's EncoderUNetModel, attention pool) of SMALL with
      ch_mult [1, 8] (two 64-channel heads) and 5 classes: x, t, gy, y (the logits), grad.input and
      grad.<name> of the head and conv_in
  tests/fixtures/unet_cifar10.safetensors
      the DDPM CIFAR-10 model (35,746,307 parameters), batch 1:
      x, t, gy, y and, per parameter, the scalars
        gradnorm.<name>  L2 norm of the float32 gradient, summed in float64
        graddot.<name>   sum_i grad[i] * unit(fnv1a64("probe." + name), i),
                         in float64

__metadata__ holds "config" (JSON, the keys of the "model" section of a run
config), "timesteps" (JSON list), "param_count" and, for the conditional
fixture, "class_labels" (JSON list).

Run with Debian's python3-torch (not a pyenv interpreter):

  /usr/bin/python3 scripts/gen_unet_fixtures.py [--out-dir DIR] [--only NAME]
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer, check_file  # noqa: E402


# ---------------------------------------------------------------------------
# synthetic values (mirrored by tests/synthetic.c)
# ---------------------------------------------------------------------------

def fnv1a64(s):
    """FNV-1a 64-bit hash of the UTF-8 bytes of s."""
    h = 0xCBF29CE484222325
    for byte in s.encode("utf-8"):
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def mix64(z):
    """splitmix64 over a uint64 array (numpy arithmetic wraps mod 2^64)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def unit(stream, n):
    """float64 array of unit(stream, i) for i = 0..n-1, values in [-1, 1)."""
    z = np.arange(n, dtype=np.uint64) + np.uint64(stream)   # wraps mod 2^64
    return (mix64(z) >> np.uint64(40)).astype(np.float64) * 2.0 ** -24 * 2.0 - 1.0


def synthetic_tensor(name, shape):
    """unit(fnv1a64(name), .) reshaped to shape, as a float32 tensor."""
    v = unit(fnv1a64(name), math.prod(shape))
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def synthetic_param(name, shape):
    """The synthetic value of parameter `name` (see module docstring)."""
    n = math.prod(shape)
    v = unit(fnv1a64(name), n)
    if len(shape) >= 2:
        v = v * (1.0 / math.sqrt(n / shape[0]))
    elif name.endswith(".weight"):
        v = 1.0 + 0.1 * v
    else:
        v = 0.1 * v
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


# ---------------------------------------------------------------------------
# model (diffusers UNet2DModel names, DDPM settings)
# ---------------------------------------------------------------------------

def timestep_embedding(t, dim):
    """diffusers get_timestep_embedding(flip_sin_to_cos=False,
    downscale_freq_shift=1, scale=1, max_period=10000), float32."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - 1)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)


class TimestepEmbedding(nn.Module):
    def __init__(self, ch, temb_ch):
        super().__init__()
        self.linear_1 = nn.Linear(ch, temb_ch)
        self.linear_2 = nn.Linear(temb_ch, temb_ch)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb_ch, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_ch, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))   # dropout: off (eval / p = 0)
        shortcut = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return shortcut + h


class Attention(nn.Module):
    """Single-head spatial self-attention with a residual connection."""

    def __init__(self, c, groups, eps):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=eps)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c)])

    def forward(self, x):
        B, C, H, W = x.shape
        tokens = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)   # (B, N, C)
        q, k, v = self.to_q(tokens), self.to_k(tokens), self.to_v(tokens)
        attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(C), dim=-1)
        o = self.to_out[0](attn @ v)
        return x + o.transpose(1, 2).reshape(B, C, H, W)


class Downsample2D(nn.Module):
    """Stride-2 3x3 conv after TF-"SAME" padding (right and bottom by one)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample2D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Block(nn.Module):
    """A down or up level: resnets, optional attentions, optional resampler.

    As in diffusers, "attentions" is registered before "resnets"."""

    def __init__(self, resnets, attentions, resampler_name, resampler):
        super().__init__()
        if attentions:
            self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)
        if resampler is not None:
            setattr(self, resampler_name, nn.ModuleList([resampler]))

    def layers(self):
        attns = getattr(self, "attentions", None)
        for j, res in enumerate(self.resnets):
            yield res, (attns[j] if attns is not None else None)


class MidBlock(nn.Module):
    def __init__(self, c, temb_ch, groups, eps):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(c, groups, eps)])
        self.resnets = nn.ModuleList([ResnetBlock2D(c, c, temb_ch, groups, eps)
                                      for _ in range(2)])

    def forward(self, h, temb):
        h = self.resnets[0](h, temb)
        h = self.attentions[0](h)
        return self.resnets[1](h, temb)


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, mult, R = cfg["ch"], cfg["ch_mult"], cfg["num_res_blocks"]
        G, eps, L = cfg["groups"], cfg["norm_eps"], len(mult)
        temb_ch = 4 * ch
        self.ch = ch

        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch, temb_ch)
        self.class_embedding = (nn.Embedding(cfg["num_classes"], temb_ch)
                                if cfg["num_classes"] > 0 else None)

        self.down_blocks = nn.ModuleList()
        res, cin, skip_ch = cfg["resolution"], ch, [ch]
        for i in range(L):
            cout = ch * mult[i]
            resnets, attns = [], []
            for _ in range(R):
                resnets.append(ResnetBlock2D(cin, cout, temb_ch, G, eps))
                if res in cfg["attn_resolutions"]:
                    attns.append(Attention(cout, G, eps))
                cin = cout
                skip_ch.append(cout)
            down = Downsample2D(cout) if i < L - 1 else None
            if down is not None:
                skip_ch.append(cout)
                res //= 2
            self.down_blocks.append(Block(resnets, attns, "downsamplers", down))

        # diffusers assigns mid_block after creating up_blocks (state-dict order)
        self.up_blocks = nn.ModuleList()
        for u in range(L):
            cout = ch * mult[L - 1 - u]
            resnets, attns = [], []
            for _ in range(R + 1):
                resnets.append(ResnetBlock2D(cin + skip_ch.pop(), cout, temb_ch, G, eps))
                if res in cfg["attn_resolutions"]:
                    attns.append(Attention(cout, G, eps))
                cin = cout
            up = Upsample2D(cout) if u < L - 1 else None
            if up is not None:
                res *= 2
            self.up_blocks.append(Block(resnets, attns, "upsamplers", up))
        assert not skip_ch

        self.mid_block = MidBlock(ch * mult[-1], temb_ch, G, eps)
        self.conv_norm_out = nn.GroupNorm(G, ch, eps=eps)
        out = cfg["in_channels"] * (2 if cfg.get("learn_sigma") else 1)  # iDDPM: mean and variance outputs
        self.conv_out = nn.Conv2d(ch, out, 3, padding=1)

    def forward(self, x, t, labels=None):
        # the embedding is computed in float32, then cast (as diffusers does)
        emb = timestep_embedding(t, self.ch).to(self.conv_in.weight.dtype)
        temb = self.time_embedding(emb)
        if self.class_embedding is not None:
            temb = temb + self.class_embedding(labels)

        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            for res, attn in block.layers():
                h = res(h, temb)
                if attn is not None:
                    h = attn(h)
                skips.append(h)
            if hasattr(block, "downsamplers"):
                h = block.downsamplers[0](h)
                skips.append(h)

        h = self.mid_block(h, temb)

        for block in self.up_blocks:
            for res, attn in block.layers():
                h = res(torch.cat([h, skips.pop()], dim=1), temb)
                if attn is not None:
                    h = attn(h)
            if hasattr(block, "upsamplers"):
                h = block.upsamplers[0](h)

        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AttentionPool2d(nn.Module):
    """ADM's AttentionPool2d (guided_diffusion/unet.py) with QKVAttention; qkv_proj and c_proj are the
    kernel-1 conv1d layers as Linear layers over the channel axis (the same weights)."""

    def __init__(self, spatial, c, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.zeros(c, spatial * spatial + 1))
        self.qkv_proj = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, out)
        self.heads = heads

    def forward(self, x):
        b, c = x.shape[:2]
        x = x.reshape(b, c, -1)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1) + self.positional_embedding[None]
        qkv = self.qkv_proj(x.transpose(1, 2)).transpose(1, 2)          # (b, 3c, n)
        length, ch = qkv.shape[2], c // self.heads
        q, k, v = qkv.chunk(3, dim=1)
        scale = 1 / math.sqrt(math.sqrt(ch))
        w = torch.einsum("bct,bcs->bts", (q * scale).reshape(b * self.heads, ch, length),
                         (k * scale).reshape(b * self.heads, ch, length))
        w = torch.softmax(w, dim=-1)
        a = torch.einsum("bts,bcs->bct", w, v.reshape(b * self.heads, ch, length)).reshape(b, -1, length)
        return self.c_proj(a.transpose(1, 2)).transpose(1, 2)[:, :, 0]


class ClassifierHead(nn.Module):
    def __init__(self, spatial, c, groups, eps, heads, out):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=eps)
        self.attention_pool = AttentionPool2d(spatial, c, heads, out)

    def forward(self, h):
        return self.attention_pool(F.silu(self.norm(h)))


class Classifier(UNet):
    """ADM's EncoderUNetModel with pool="attention": the U-Net's time embedding, down path and middle
    block, then GroupNorm, SiLU and AttentionPool2d (64 channels per head) to the class logits."""

    def __init__(self, cfg):
        super().__init__(dict(cfg, num_classes=0))
        del self.up_blocks, self.conv_norm_out, self.conv_out
        c = cfg["ch"] * cfg["ch_mult"][-1]
        spatial = cfg["resolution"] >> (len(cfg["ch_mult"]) - 1)
        heads = c // 64 if c >= 64 and c % 64 == 0 else 1
        self.classifier_head = ClassifierHead(spatial, c, cfg["groups"], cfg["norm_eps"], heads, cfg["num_classes"])

    def forward(self, x, t, labels=None):
        temb = self.time_embedding(timestep_embedding(t, self.ch).to(self.conv_in.weight.dtype))
        h = self.conv_in(x)
        for block in self.down_blocks:
            for res, attn in block.layers():
                h = res(h, temb)
                if attn is not None:
                    h = attn(h)
            if hasattr(block, "downsamplers"):
                h = block.downsamplers[0](h)
        return self.classifier_head(self.mid_block(h, temb))


def build_model(cfg):
    model = Classifier(cfg) if cfg.get("classifier") else UNet(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(synthetic_param(name, tuple(p.shape)))
    return model.eval()


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

SMALL = {"resolution": 16, "in_channels": 3, "ch": 16, "ch_mult": [1, 2],
         "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.0,
         "groups": 8, "norm_eps": 1e-6, "num_classes": 0}
CIFAR10 = {"resolution": 32, "in_channels": 3, "ch": 128, "ch_mult": [1, 2, 2, 2],
           "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0,
           "groups": 32, "norm_eps": 1e-6, "num_classes": 0}
CIFAR10_PARAM_COUNT = 35_746_307
CLASSIFIER = dict(SMALL, ch_mult=[1, 8], num_classes=5, classifier=True)
TIMESTEPS = {1: [517], 2: [3, 517]}


def run_case(wr, cfg, batch, labels=None):
    """Build the synthetic model, run forward + backward of L = sum(y * gy),
    store x, t, gy, y and the common metadata; return (model, x)."""
    model = build_model(cfg)
    count = sum(p.numel() for p in model.parameters())
    res = cfg["resolution"]
    x = synthetic_tensor("input.x", (batch, cfg["in_channels"], res, res))
    x.requires_grad_(True)
    t = torch.tensor(TIMESTEPS[batch], dtype=torch.float32)
    lab = torch.tensor(labels, dtype=torch.long) if labels is not None else None

    y = model(x, t, lab)
    gy = synthetic_tensor("input.gy", tuple(y.shape))
    y.backward(gy)

    wr.meta("config", cfg)
    wr.meta("timesteps", TIMESTEPS[batch])
    wr.meta("param_count", str(count))
    if labels is not None:
        wr.meta("class_labels", labels)
    for name, v in (("x", x), ("t", t), ("gy", gy), ("y", y)):
        wr.add(name, v)
    return model, x


def gen_small(wr):
    model, x = run_case(wr, SMALL, batch=2)
    wr.add("grad.input", x.grad)
    for name, p in model.named_parameters():
        wr.add(f"grad.{name}", p.grad)
    return model


def gen_small_cond(wr):
    model, _ = run_case(wr, dict(SMALL, num_classes=10), batch=2, labels=[3, 7])
    params = dict(model.named_parameters())
    for name in ("class_embedding.weight", "conv_in.weight"):
        wr.add(f"grad.{name}", params[name].grad)
    return model


def gen_cifar10(wr):
    model, _ = run_case(wr, CIFAR10, batch=1)
    count = sum(p.numel() for p in model.parameters())
    assert count == CIFAR10_PARAM_COUNT, f"CIFAR-10 U-Net has {count} parameters"
    for name, p in model.named_parameters():
        g = p.grad.detach().reshape(-1).numpy().astype(np.float64)
        probe = unit(fnv1a64("probe." + name), g.size)
        wr.add(f"gradnorm.{name}", torch.tensor([math.sqrt(np.dot(g, g))], dtype=torch.float64))
        wr.add(f"graddot.{name}", torch.tensor([np.dot(g, probe)], dtype=torch.float64))
    return model


def gen_classifier(wr):
    """The noise-conditional classifier: 2 attention-pool heads (128 channels at the bottom), 5 classes."""
    model, x = run_case(wr, CLASSIFIER, batch=2)
    wr.add("grad.input", x.grad)
    for name, p in model.named_parameters():  # the head's and the first layer's (the file stays small)
        if name.startswith("classifier_head.") or name.startswith("conv_in."):
            wr.add(f"grad.{name}", p.grad)
    return model


FIXTURES = {
    "unet_classifier": gen_classifier,
    "unet_small": gen_small,
    "unet_small_cond": gen_small_cond,
    "unet_cifar10": gen_cifar10,
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                    help="output directory (default: %(default)s)")
    ap.add_argument("--only", choices=sorted(FIXTURES), action="append",
                    help="generate only this fixture (repeatable)")
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    for name in args.only or FIXTURES:
        start = time.time()
        wr = Writer()
        model = FIXTURES[name](wr)
        path = os.path.join(args.out_dir, f"{name}.safetensors")
        wr.write(path)
        meta, header = check_file(path)
        print(f"{path}: {os.path.getsize(path)} bytes, {len(header)} tensors, "
              f"{len(list(model.parameters()))} parameter tensors, "
              f"{meta['param_count']} parameters, {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
