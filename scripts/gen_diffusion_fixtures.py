#!/usr/bin/env python3
"""Reference values of the diffusion noise processes for tests/test_diffusion.c.

Writes tests/fixtures/diffusion.safetensors with, computed in float64 by PyTorch following the
reference implementations:
  ddpm_linear.alphas_cumprod   Ho et al. 2020: betas = linspace(1e-4, 0.02, 1000)
  ddpm_cosine.alphas_cumprod   Nichol & Dhariwal 2021 (improved-diffusion betas_for_alpha_bar,
                               s = 0.008, max_beta = 0.999)
  ncsn.sigmas                  Song & Ermon 2019 / score_sde: exp(linspace(log 50, log 0.01, 232)),
                               stored in increasing order
  sde.t                        times at which the SDE marginals are evaluated
  vpsde.alpha, vpsde.sigma     score_sde VPSDE.marginal_prob (beta_min 0.1, beta_max 20)
  subvpsde.alpha, subvpsde.sigma   score_sde subVPSDE.marginal_prob
  vesde.sigma                  score_sde VESDE.marginal_prob (sigma_min 0.01, sigma_max 50)

Run: /usr/bin/python3 scripts/gen_diffusion_fixtures.py [--out-dir DIR]
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402


def cosine_alphas_cumprod(T, s=0.008, max_beta=0.999):
    f = lambda t: math.cos((t + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)]
    return torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    w = Writer()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    w.add("ddpm_linear.alphas_cumprod", torch.cumprod(1 - betas, 0))
    w.add("ddpm_cosine.alphas_cumprod", cosine_alphas_cumprod(1000))
    w.add("ncsn.sigmas", torch.exp(torch.linspace(math.log(50.0), math.log(0.01), 232, dtype=torch.float64)).flip(0))
    t = torch.tensor([1e-5, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], dtype=torch.float64)
    w.add("sde.t", t)
    b0, b1 = 0.1, 20.0
    log_mean = -0.25 * t ** 2 * (b1 - b0) - 0.5 * t * b0
    w.add("vpsde.alpha", torch.exp(log_mean))
    w.add("vpsde.sigma", torch.sqrt(1.0 - torch.exp(2.0 * log_mean)))
    w.add("subvpsde.alpha", torch.exp(log_mean))
    w.add("subvpsde.sigma", 1.0 - torch.exp(2.0 * log_mean))
    w.add("vesde.sigma", 0.01 * (50.0 / 0.01) ** t)
    os.makedirs(args.out_dir, exist_ok=True)
    w.write(os.path.join(args.out_dir, "diffusion.safetensors"))


if __name__ == "__main__":
    main()
