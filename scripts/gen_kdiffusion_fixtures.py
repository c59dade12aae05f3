#!/usr/bin/env python3
"""Reference trajectories of the k-diffusion-family samplers for tests/test_samplers.c.

The model is the small synthetic-weight U-Net of gen_unet_fixtures.py as the eps-prediction network
of a VP SDE (beta 0.1..20, t in [1e-5, 1], network time label 999 t), seen as k-diffusion's
denoiser: with s = sigma / alpha, x = y / sqrt(1 + s^2), t(s) from log(1 + s^2) = t^2 (b1 - b0) / 2 + t b0,
D(y; s) = y - s eps(x, 999 t(s)) (k_diffusion.external's eps wrapper). The samplers are restated
from k-diffusion's sampling.py (sample_euler_ancestral, sample_heun, sample_dpmpp_2s_ancestral,
sample_dpmpp_2m, sample_dpmpp_2m_sde with solver_type 'midpoint', sample_dpmpp_3m_sde) and diffusers'
UniPCMultistepScheduler (bh2, order 2, predict_x0, lower_order_final), written independently of the
C code, on k-diffusion's Karras grid (rho 7) from s(1e-5) to s(1) plus a final 0. Every noise draw
is stored in order of use, and the C test injects them; the network's input at every call and the
final sample are compared.

Writes tests/fixtures/sampler_kdiffusion.safetensors:
  x_T                     (1, 3, 16, 16) prior noise in x (std 1); y starts at x_T sqrt(1 + s_max^2)
  <sampler>.z             (draws, 1, 3, 16, 16) the noise, in order of use (absent without noise)
  <sampler>.in.<k>        the network input x at call k
  <sampler>.out           the sample
metadata: steps per sampler, eta, heun's churn settings.
Run: /usr/bin/python3 scripts/gen_kdiffusion_fixtures.py [--out-dir DIR]
"""

import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402
from gen_unet_fixtures import SMALL, build_model  # noqa: E402

B0, B1, T_EPS = 0.1, 20.0, 1e-5
STEPS = 8
HEUN = {"s_churn": 10.0, "s_tmin": 0.05, "s_tmax": 10.0, "s_noise": 1.0}


def s_of_t(t):
    return math.sqrt(math.expm1(0.5 * t * t * (B1 - B0) + t * B0))


def t_of_s(s):
    L = math.log1p(s * s)
    return (-B0 + math.sqrt(B0 * B0 + 2.0 * (B1 - B0) * L)) / (B1 - B0)


def karras(n, s_min, s_max, rho=7.0):
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    sig = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return [float(v) for v in sig] + [0.0]


def ancestral_step(s, sn, eta):
    if not eta:
        return sn, 0.0
    up = min(sn, eta * math.sqrt(sn * sn * (s * s - sn * sn) / (s * s)))
    return math.sqrt(sn * sn - up * up), up


class Run:
    """The denoiser and the noise of one sampler run, recording what the C test compares."""

    def __init__(self, model, shape):
        self.model, self.shape, self.inputs, self.noise = model, shape, [], []

    def D(self, y, s):
        t = t_of_s(s)
        x = y / math.sqrt(1.0 + s * s)
        self.inputs.append(x.clone())
        with torch.no_grad():
            eps = self.model(x.float(), torch.tensor([999.0 * t])).double()
        return y - s * eps

    def randn(self):
        z = torch.randn(self.shape, dtype=torch.float64)
        self.noise.append(z)
        return z


def euler_ancestral(run, y, sig, eta=1.0):
    for i in range(len(sig) - 1):
        d_ = run.D(y, sig[i])
        down, up = ancestral_step(sig[i], sig[i + 1], eta)
        y = y + (y - d_) / sig[i] * (down - sig[i])
        if up > 0:
            y = y + run.randn() * up
    return y


def heun(run, y, sig, s_churn, s_tmin, s_tmax, s_noise):
    n = len(sig) - 1
    for i in range(n):
        gamma = min(s_churn / n, 2 ** 0.5 - 1) if s_tmin <= sig[i] <= s_tmax else 0.0
        s_hat = sig[i] * (gamma + 1)
        if gamma > 0:
            y = y + run.randn() * s_noise * math.sqrt(s_hat ** 2 - sig[i] ** 2)
        d = (y - run.D(y, s_hat)) / s_hat
        dt = sig[i + 1] - s_hat
        if sig[i + 1] == 0:
            y = y + d * dt
        else:
            y2 = y + d * dt
            d2 = (y2 - run.D(y2, sig[i + 1])) / sig[i + 1]
            y = y + (d + d2) / 2 * dt
    return y


def dpmpp_2s_ancestral(run, y, sig, eta=1.0):
    for i in range(len(sig) - 1):
        den = run.D(y, sig[i])
        down, up = ancestral_step(sig[i], sig[i + 1], eta)
        if down == 0:
            y = y + (y - den) / sig[i] * (down - sig[i])
        else:
            t, tn = -math.log(sig[i]), -math.log(down)
            h = tn - t
            s = t + 0.5 * h
            y2 = (math.exp(-s) / math.exp(-t)) * y - math.expm1(-0.5 * h) * den
            den2 = run.D(y2, math.exp(-s))
            y = (math.exp(-tn) / math.exp(-t)) * y - math.expm1(-h) * den2
        if sig[i + 1] > 0:
            y = y + run.randn() * up
    return y


def dpmpp_2m_sde(run, y, sig, eta):
    old, h_last = None, None
    for i in range(len(sig) - 1):
        den = run.D(y, sig[i])
        if sig[i + 1] == 0:
            y = den
        else:
            t, s = -math.log(sig[i]), -math.log(sig[i + 1])
            h = s - t
            eh = eta * h
            y = sig[i + 1] / sig[i] * math.exp(-eh) * y + (-math.expm1(-h - eh)) * den
            if old is not None:
                r = h_last / h
                y = y + 0.5 * (-math.expm1(-h - eh)) * (1 / r) * (den - old)
            if eta:
                y = y + run.randn() * sig[i + 1] * math.sqrt(-math.expm1(-2 * eh))
            h_last = h
        old = den
    return y


def dpmpp_3m_sde(run, y, sig, eta):
    d1_, d2_, h1, h2 = None, None, None, None
    h = None
    for i in range(len(sig) - 1):
        den = run.D(y, sig[i])
        if sig[i + 1] == 0:
            y = den
        else:
            t, s = -math.log(sig[i]), -math.log(sig[i + 1])
            h = s - t
            he = h * (eta + 1)
            y = math.exp(-he) * y + (-math.expm1(-he)) * den
            if h2 is not None:
                r0, r1 = h1 / h, h2 / h
                d1_0 = (den - d1_) / r0
                d1_1 = (d1_ - d2_) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = math.expm1(-he) / he + 1
                phi_3 = phi_2 / he - 0.5
                y = y + phi_2 * d1 - phi_3 * d2
            elif h1 is not None:
                r = h1 / h
                phi_2 = math.expm1(-he) / he + 1
                y = y + phi_2 * (den - d1_) / r
            if eta:
                y = y + run.randn() * sig[i + 1] * math.sqrt(-math.expm1(-2 * h * eta))
        d1_, d2_ = den, d1_
        h1, h2 = h, h1
    return y


def unipc(run, y, sig):
    """diffusers' UniPCMultistepScheduler.step with solver_order 2, bh2, predict_x0, in s = sigma/alpha
    (alpha_t = 1, lambda = -log s); the last step (to s = 0) is first order: y = M."""
    n = len(sig) - 1
    lam = [-math.log(v) if v > 0 else math.inf for v in sig]
    outs, last, this_order, lower = [], None, 1, 0

    def coeffs(h, rks, order):
        hh = -h
        h_phi_1 = math.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        fac, B_h = 1, math.expm1(hh)
        R, b = [], []
        for i in range(1, order + 1):
            R.append([rk ** (i - 1) for rk in rks])
            b.append(h_phi_k * fac / B_h)
            fac *= i + 1
            h_phi_k = h_phi_k / hh - 1 / fac
        return torch.tensor(R, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), h_phi_1, B_h

    for i in range(n):
        m = run.D(y, sig[i])
        if i > 0:  # corrector with the previous predictor's order
            h = lam[i] - lam[i - 1]
            m0 = outs[-1]
            rks, D1s = [], []
            for k in range(1, this_order):
                rk = (lam[i - (k + 1)] - lam[i - 1]) / h
                rks.append(rk)
                D1s.append((outs[-(k + 1)] - m0) / rk)
            rks.append(1.0)
            R, b, h_phi_1, B_h = coeffs(h, rks, this_order)
            rhos = torch.tensor([0.5], dtype=torch.float64) if this_order == 1 else torch.linalg.solve(R, b)
            y_ = sig[i] / sig[i - 1] * last - h_phi_1 * m0
            corr = sum(float(rhos[k]) * D1s[k] for k in range(len(D1s))) if D1s else 0
            y = y_ - B_h * (corr + float(rhos[-1]) * (m - m0))
        outs = (outs + [m])[-2:]
        this_order = min(2, n - i, lower + 1)
        last = y
        if sig[i + 1] == 0:
            y = m
        else:
            h = lam[i + 1] - lam[i]
            m0 = outs[-1]
            y_ = sig[i + 1] / sig[i] * y - math.expm1(-h) * m0
            if this_order == 2:
                r1 = (lam[i - 1] - lam[i]) / h
                y = y_ - math.expm1(-h) * 0.5 * (outs[-2] - m0) / r1
            else:
                y = y_
        lower = min(lower + 1, 2)
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    torch.manual_seed(20261201)
    model = build_model(SMALL)
    res = SMALL["resolution"]
    shape = (1, SMALL["in_channels"], res, res)
    sig = karras(STEPS, s_of_t(T_EPS), s_of_t(1.0))
    w = Writer()
    w.meta("steps", str(STEPS))
    for k, v in HEUN.items():
        w.meta(k, repr(v))
    x_T = torch.randn(shape, dtype=torch.float64)
    w.add("x_T", x_T)
    y_T = x_T * math.sqrt(1.0 + sig[0] ** 2)
    cases = {
        "euler_ancestral": lambda r, y: euler_ancestral(r, y, sig, 1.0),
        "heun": lambda r, y: heun(r, y, sig, **HEUN),
        "dpmpp_2s": lambda r, y: dpmpp_2s_ancestral(r, y, sig, 1.0),
        "dpmpp": lambda r, y: dpmpp_2m_sde(r, y, sig, 0.0),
        "dpmpp_sde": lambda r, y: dpmpp_2m_sde(r, y, sig, 1.0),
        "dpmpp_3m": lambda r, y: dpmpp_3m_sde(r, y, sig, 1.0),
        "unipc": lambda r, y: unipc(r, y, sig),
    }
    for name, fn in cases.items():
        run = Run(model, shape)
        out = fn(run, y_T.clone())
        if run.noise:
            w.add(f"{name}.z", torch.stack(run.noise))
        for k, x in enumerate(run.inputs):
            w.add(f"{name}.in.{k}", x)
        w.add(f"{name}.out", out)
        print(f"{name}: {len(run.inputs)} network calls, {len(run.noise)} noise draws")
    path = os.path.join(args.out_dir, "sampler_kdiffusion.safetensors")
    w.write(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
