#!/usr/bin/env python3
"""Reference sampling trajectories for tests/test_samplers.c.

The model is the small synthetic-weight U-Net of gen_unet_fixtures.py (16x16, ch 16, mult [1, 2],
attention at 8; every weight a pure function of its name, reproduced by tests/synthetic.c), used
as a v-prediction network of a DDPM with the cosine schedule and T = 50 (so a full ancestral run
stays short). Written independently of the C code, following the reference implementations:

  ddim       ermongroup/ddim generalized_steps with eta = 0: seq = range(0, T, T // S),
             x0_t = (x - sqrt(1 - a_t) e_t) / sqrt(a_t), x_next = sqrt(a_next) x0_t + sqrt(1 - a_next) e_t
  ancestral  Ho et al. 2020 Algorithm 2 with sigma_t^2 = beta_tilde_t:
             x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z
with eps = sqrt(abar) v + sqrt(1 - abar) x converted from the v output (Salimans & Ho 2022).
The initial noise x_T and every step's noise z_t are stored, and the C test injects them.

Writes tests/fixtures/sampler_trajectories.safetensors:
  x_T                 (1, 3, 16, 16) initial noise
  ddim.x.<i>          x after DDIM step i (S = 10 steps; i = 0..9, the last is the sample)
  ancestral.z         (T, 1, 3, 16, 16) noise of step t at index t (z_0 unused)
  ancestral.x.<t>     x_{t-1} after the step at t, for t = 49, 39, 29, 19, 9, 0
Run: /usr/bin/python3 scripts/gen_sampler_fixtures.py [--out-dir DIR]
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_diffusion_fixtures import cosine_alphas_cumprod  # noqa: E402
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402
from gen_unet_fixtures import SMALL, build_model  # noqa: E402

T = 50
DDIM_STEPS = 10
ANCESTRAL_RECORD = [49, 39, 29, 19, 9, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    torch.manual_seed(20261127)
    model = build_model(SMALL)
    abar = cosine_alphas_cumprod(T)                      # float64
    betas = 1 - abar / torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    res = SMALL["resolution"]
    shape = (1, SMALL["in_channels"], res, res)

    def eps_of(x, t):
        with torch.no_grad():
            v = model(x.float(), torch.tensor([float(t)])).double()
        return math.sqrt(abar[t]) * v + math.sqrt(1 - abar[t]) * x

    w = Writer()
    w.meta("T", str(T))
    w.meta("schedule", "cosine")
    w.meta("prediction", "v")
    x_T = torch.randn(shape, dtype=torch.float64)
    w.add("x_T", x_T)

    x = x_T.clone()
    seq = list(range(0, T, T // DDIM_STEPS))
    for i, t in enumerate(reversed(seq)):
        nxt = seq[len(seq) - 2 - i] if i + 1 < len(seq) else -1
        a_t = abar[t]
        a_n = abar[nxt] if nxt >= 0 else torch.tensor(1.0, dtype=torch.float64)
        e = eps_of(x, t)
        x0 = (x - torch.sqrt(1 - a_t) * e) / torch.sqrt(a_t)
        x = torch.sqrt(a_n) * x0 + torch.sqrt(1 - a_n) * e
        w.add(f"ddim.x.{i}", x)

    z = torch.randn((T,) + shape, dtype=torch.float64)
    w.add("ancestral.z", z)
    x = x_T.clone()
    for t in range(T - 1, -1, -1):
        e = eps_of(x, t)
        mean = (x - betas[t] / torch.sqrt(1 - abar[t]) * e) / torch.sqrt(1 - betas[t])
        if t > 0:
            var = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
            x = mean + torch.sqrt(var) * z[t]
        else:
            x = mean
        if t in ANCESTRAL_RECORD:
            w.add(f"ancestral.x.{t}", x)
    path = os.path.join(args.out_dir, "sampler_trajectories.safetensors")
    w.write(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
