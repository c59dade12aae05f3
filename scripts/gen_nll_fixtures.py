#!/usr/bin/env python3
"""Reference DDPM variational bound (bits/dim) for tests/test_nll.c.

The model is the small synthetic-weight U-Net of gen_unet_fixtures.py (16x16, ch 16) used as an
eps-prediction network of a DDPM with the cosine schedule and T = 20. The bound follows
improved-diffusion's gaussian_diffusion.py (normal_kl, approx_standard_normal_cdf,
discretized_gaussian_log_likelihood, _vb_terms_bpd with clip_denoised=True, calc_bpd_loop,
_prior_bpd), written here in float64 around the float32 network:
  fixed_small: model log variance = posterior_log_variance_clipped
  fixed_large: log(append(posterior_variance[1], betas[1:]))
Each term t uses x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z_t with the stored noise z_t.

Writes tests/fixtures/nll_vlb.safetensors:
  x0            (2, 3, 16, 16) data on the 255-bin grid of [-1, 1]
  z             (T, 2, 3, 16, 16) the noise of x_t at index t
  small.terms   (T + 1, 2) bits/dim: decoder (t = 0), KL terms (t = 1..T-1), prior (index T)
  large.terms   (T + 1, 2) the same with fixed_large
Run: /usr/bin/python3 scripts/gen_nll_fixtures.py [--out-dir DIR]
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_diffusion_fixtures import cosine_alphas_cumprod  # noqa: E402
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402
from gen_unet_fixtures import SMALL, build_model  # noqa: E402

T = 20


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + ((mean1 - mean2) ** 2) * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered_x + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered_x - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


def mean_flat(t):
    return t.mean(dim=list(range(1, t.dim())))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    torch.manual_seed(5)
    model = build_model(SMALL)
    abar = cosine_alphas_cumprod(T)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    betas = 1 - abar / abar_prev
    post_var = betas * (1 - abar_prev) / (1 - abar)
    post_lv_clipped = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
    large_lv = torch.log(torch.cat([post_var[1:2], betas[1:]]))
    c0 = betas * torch.sqrt(abar_prev) / (1 - abar)
    ct = (1 - abar_prev) * torch.sqrt(1 - betas) / (1 - abar)

    res = SMALL["resolution"]
    shape = (2, SMALL["in_channels"], res, res)
    x0 = (torch.randint(0, 256, shape).double() / 127.5 - 1.0)
    z = torch.randn((T,) + shape, dtype=torch.float64)
    w = Writer()
    w.add("x0", x0)
    w.add("z", z)
    for name, model_lv in (("small", post_lv_clipped), ("large", large_lv)):
        terms = torch.zeros(T + 1, 2, dtype=torch.float64)
        for t in range(T):
            xt = torch.sqrt(abar[t]) * x0 + torch.sqrt(1 - abar[t]) * z[t]
            with torch.no_grad():
                eps = model(xt.float(), torch.full((2,), float(t))).double()
            pred_x0 = (torch.sqrt(1.0 / abar[t]) * xt - torch.sqrt(1.0 / abar[t] - 1) * eps).clamp(-1, 1)
            model_mean = c0[t] * pred_x0 + ct[t] * xt
            true_mean = c0[t] * x0 + ct[t] * xt
            if t == 0:
                nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_lv[t])
                terms[t] = mean_flat(nll) / math.log(2.0)
            else:
                kl = normal_kl(true_mean, post_lv_clipped[t], model_mean, model_lv[t])
                terms[t] = mean_flat(kl) / math.log(2.0)
        qt_mean = torch.sqrt(abar[-1]) * x0
        terms[T] = mean_flat(normal_kl(qt_mean, torch.log(1 - abar[-1]), torch.tensor(0.0, dtype=torch.float64),
                                       torch.tensor(0.0, dtype=torch.float64))) / math.log(2.0)
        w.add(f"{name}.terms", terms)
        print(name, "bpd", terms.sum(0).numpy())
    w.write(os.path.join(args.out_dir, "nll_vlb.safetensors"))


if __name__ == "__main__":
    main()
