#!/usr/bin/env python3
"""Reference training losses of every diffusion objective for tests/test_objective.c.

For the small synthetic U-Net of gen_unet_fixtures.py (same weights, bit-exact in C), a fixed
batch x0 and noise (synthetic tensors "objective.x0" / "objective.noise"), and per case a pair of
noise levels tau, computes in PyTorch exactly what the objective defines:

  alpha, sigma = marginal(tau)            (float64 reference formulas, then float32)
  x_tau        = alpha * x0 + sigma * noise
  label        = the network's time input: t (ddpm), 999 i/(L-1) (ncsn), 999 t (SDEs, flow)
  loss         = mean((net(x_tau, label) - target)^2),  target = noise | x0 | alpha noise - sigma x0
                 | noise - x0 (flow, x_t = (1 - t) x0 + t noise)
  EDM          = EDMLoss of Karras et al.'s code: D = c_skip x + c_out net(c_in x, ln(sigma) / 4),
                 loss = mean(lambda(sigma) (D - x0)^2), lambda = (sigma^2 + sd^2) / (sigma sd)^2
  min_snr      = per-sample weight min(SNR, gamma) / SNR (eps), min(SNR, gamma) / (SNR + 1) (v)
                 (Hang et al. 2023) on the per-sample MSE
  likelihood   = the VP SDE's g^2 / sigma^2 importance-sampled: with t ~ p(t) = (g^2 / sigma^2) / Z the
                 weight is Z / (1 - t_eps), Z = [log(e^B(t) - 1)] from t_eps to 1, B(t) = -2 log alpha(t)

  learned variance = improved-diffusion's training_losses (Nichol & Dhariwal 2021) restated in float64 on
                 the U-Net with 6 output channels (mean F, variance v): x0_hat from F per prediction, the
                 posterior mean, log variance frac log beta + (1 - frac) log beta_tilde_clipped with
                 frac = (v + 1) / 2, vb = the KL (t > 0) or the discretised decoder NLL (t = 0) in bits/dim;
                 hybrid: loss = mean(mse + vb T / 1000) with the mean detached in vb (RESCALED_MSE);
                 vlb: loss = mean(vb T) (use_kl, uniform t: weight 1 / (T p_t) = 1). These cases also store
                 the gradients of conv_in.weight and conv_out.weight, so the test checks the stop-gradient.

Writes tests/fixtures/objective.safetensors: x0, noise, and per case <case>.tau and <case>.loss;
__metadata__[<case>] is {"diffusion": the config section the C test builds the process from,
"weighting": none | min_snr | likelihood, "gamma": the min-SNR gamma, "loss": simple | hybrid | vlb};
learned-variance cases add <case>.grad.conv_in.weight and <case>.grad.conv_out.weight.

Run: /usr/bin/python3 scripts/gen_objective_fixtures.py [--out-dir DIR]
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_nll_fixtures import discretized_gaussian_log_likelihood, normal_kl  # noqa: E402  (improved-diffusion's)
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402
from gen_unet_fixtures import SMALL, build_model, synthetic_tensor  # noqa: E402

CASES = {
    "ddpm_linear_eps": ({"type": "ddpm", "beta_schedule": "linear", "prediction": "eps"}, [3.0, 517.0]),
    "ddpm_linear_x0": ({"type": "ddpm", "beta_schedule": "linear", "prediction": "x0"}, [40.0, 999.0]),
    "ddpm_cosine_v": ({"type": "ddpm", "beta_schedule": "cosine", "prediction": "v"}, [0.0, 700.0]),
    "ncsn_eps": ({"type": "ncsn", "sigma_min": 0.01, "sigma_max": 50.0, "num_scales": 232}, [5.0, 200.0]),
    "vpsde_eps": ({"type": "vpsde", "beta_min": 0.1, "beta_max": 20.0}, [0.01, 0.6]),
    "subvpsde_eps": ({"type": "subvpsde", "beta_min": 0.1, "beta_max": 20.0}, [0.2, 0.95]),
    "vesde_eps": ({"type": "vesde", "sigma_min": 0.01, "sigma_max": 50.0}, [0.05, 0.9]),
    "edm": ({"type": "edm", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.5}, [0.05, 3.0]),
    "flow": ({"type": "flow"}, [0.1, 0.85]),
    "ddpm_linear_eps_min_snr": ({"type": "ddpm", "beta_schedule": "linear", "prediction": "eps"}, [3.0, 517.0]),
    "ddpm_cosine_v_min_snr": ({"type": "ddpm", "beta_schedule": "cosine", "prediction": "v"}, [100.0, 700.0]),
    "vpsde_likelihood": ({"type": "vpsde", "beta_min": 0.1, "beta_max": 20.0, "t_eps": 1e-5}, [0.01, 0.6]),
}
LEARNED = {  # name: (diffusion section, taus, train.loss)
    "ddpm_learned_hybrid_eps": ({"type": "ddpm", "beta_schedule": "linear", "prediction": "eps", "learn_sigma": True},
                                [0.0, 517.0], "hybrid"),
    "ddpm_learned_hybrid_x0": ({"type": "ddpm", "beta_schedule": "cosine", "prediction": "x0", "learn_sigma": True},
                               [3.0, 999.0], "hybrid"),
    "ddpm_learned_vlb_v": ({"type": "ddpm", "beta_schedule": "cosine", "prediction": "v", "learn_sigma": True},
                           [0.0, 40.0], "vlb"),
    "ddpm_learned_vlb_eps": ({"type": "ddpm", "beta_schedule": "linear", "prediction": "eps", "learn_sigma": True},
                             [1.0, 300.0], "vlb"),
}
WEIGHTING = {"ddpm_linear_eps_min_snr": "min_snr", "ddpm_cosine_v_min_snr": "min_snr", "vpsde_likelihood": "likelihood"}
GAMMA = 5.0


def vp_likelihood_weight(cfg):
    """Z / (1 - t_eps) with Z the integral of g^2 / sigma^2 = beta / (1 - e^-B) = d/dt log(e^B - 1)."""
    b0, b1, eps = cfg["beta_min"], cfg["beta_max"], cfg["t_eps"]
    B = lambda t: t * b0 + 0.5 * t * t * (b1 - b0)  # noqa: E731
    Z = math.log(math.expm1(B(1.0))) - math.log(math.expm1(B(eps)))
    return Z / (1.0 - eps)


def ddpm_betas(schedule, T=1000):
    if schedule == "linear":
        return torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    # Nichol & Dhariwal 2021, s = 0.008, max_beta = 0.999
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=torch.float64)


def ddpm_alphas_cumprod(schedule, T=1000):
    return torch.cumprod(1 - ddpm_betas(schedule, T), 0)


def learned_variance_loss(model, cfg, taus, loss_kind, x0, noise):
    """improved-diffusion's training_losses for learn_sigma (LEARNED_RANGE), float64 after the network."""
    T = 1000
    betas = ddpm_betas(cfg["beta_schedule"], T)
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    post_var = betas * (1 - ab_prev) / (1 - ab)
    post_lv_clipped = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
    coef1 = betas * ab_prev.sqrt() / (1 - ab)
    coef2 = (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab)
    t = torch.tensor([int(v) for v in taus])
    ex = lambda a: a[t].view(-1, 1, 1, 1)  # noqa: E731
    sa, s1 = ex(ab).sqrt(), ex(1 - ab).sqrt()
    xt = (sa.float() * x0 + s1.float() * noise)
    out = model(xt, t.float()).double()
    C = x0.shape[1]
    F, v = out[:, :C], out[:, C:]
    x0d, xtd = x0.double(), xt.double()
    pred = cfg["prediction"]
    target = {"eps": noise.double(), "x0": x0d, "v": sa * noise.double() - s1 * x0d}[pred]
    mse = torch.mean((F - target) ** 2, dim=(1, 2, 3))

    def bound(F):
        x0_hat = {"eps": (xtd - s1 * F) / sa, "x0": F, "v": sa * xtd - s1 * F}[pred]
        model_mean = ex(coef1) * x0_hat + ex(coef2) * xtd
        min_log, max_log = ex(post_lv_clipped), ex(torch.log(betas))
        frac = (v + 1) / 2
        model_lv = frac * max_log + (1 - frac) * min_log
        true_mean = ex(coef1) * x0d + ex(coef2) * xtd
        kl = torch.mean(normal_kl(true_mean, min_log, model_mean, model_lv), dim=(1, 2, 3)) / math.log(2.0)
        nll = -torch.mean(discretized_gaussian_log_likelihood(x0d, model_mean, 0.5 * model_lv), dim=(1, 2, 3))
        return torch.where(t == 0, nll / math.log(2.0), kl)

    if loss_kind == "hybrid":
        return torch.mean(mse + bound(F.detach()) * T / 1000.0)
    return torch.mean(bound(F) * T)


def marginal(cfg, tau):
    """(alpha, sigma, label) in float64 for one native time tau."""
    kind = cfg["type"]
    if kind == "ddpm":
        ab = ddpm_alphas_cumprod(cfg["beta_schedule"])[int(tau)].item()
        return math.sqrt(ab), math.sqrt(1 - ab), tau
    if kind == "ncsn":
        L = cfg["num_scales"]
        s = cfg["sigma_min"] * (cfg["sigma_max"] / cfg["sigma_min"]) ** (tau / (L - 1))
        return 1.0, s, 999.0 * tau / (L - 1)
    if kind == "vesde":
        return 1.0, cfg["sigma_min"] * (cfg["sigma_max"] / cfg["sigma_min"]) ** tau, 999.0 * tau
    if kind == "edm":
        return 1.0, tau, math.log(tau) / 4
    if kind == "flow":
        return 1.0 - tau, tau, 999.0 * tau
    lm = -0.25 * tau ** 2 * (cfg["beta_max"] - cfg["beta_min"]) - 0.5 * tau * cfg["beta_min"]
    alpha = math.exp(lm)
    sigma = math.sqrt(1 - math.exp(2 * lm)) if kind == "vpsde" else 1 - math.exp(2 * lm)
    return alpha, sigma, 999.0 * tau


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = build_model(SMALL)
    shape = (2, SMALL["in_channels"], SMALL["resolution"], SMALL["resolution"])
    x0 = synthetic_tensor("objective.x0", shape)
    noise = synthetic_tensor("objective.noise", shape)
    w = Writer()
    w.add("x0", x0)
    w.add("noise", noise)
    w.meta("model", SMALL)
    with torch.no_grad():
        for name, (cfg, taus) in CASES.items():
            pred = cfg.get("prediction", "eps")
            coef = [marginal(cfg, t) for t in taus]
            a = torch.tensor([c[0] for c in coef], dtype=torch.float32).view(-1, 1, 1, 1)
            s = torch.tensor([c[1] for c in coef], dtype=torch.float32).view(-1, 1, 1, 1)
            labels = torch.tensor([c[2] for c in coef], dtype=torch.float32)
            xt = a * x0 + s * noise
            weighting = WEIGHTING.get(name, "none")
            if cfg["type"] == "edm":  # EDM's EDMPrecond + EDMLoss, float64 coefficients
                sd = cfg["sigma_data"]
                sig = torch.tensor(taus, dtype=torch.float64).view(-1, 1, 1, 1)
                c_skip = sd ** 2 / (sig ** 2 + sd ** 2)
                c_out = sig * sd / (sig ** 2 + sd ** 2).sqrt()
                c_in = 1 / (sd ** 2 + sig ** 2).sqrt()
                F = model((c_in * xt.double()).float(), labels).double()
                D = c_skip * xt.double() + c_out * F
                lam = (sig ** 2 + sd ** 2) / (sig * sd) ** 2
                loss = torch.mean(lam * (D - x0.double()) ** 2)
            else:
                target = {"eps": noise, "x0": x0, "v": a * noise - s * x0}[pred] if cfg["type"] != "flow" else noise - x0
                per_sample = torch.mean((model(xt, labels) - target).double() ** 2, dim=(1, 2, 3))
                snr = torch.tensor([(c[0] / c[1]) ** 2 for c in coef], dtype=torch.float64)
                if weighting == "min_snr":
                    wt = torch.clamp(snr, max=GAMMA) / (snr if pred == "eps" else snr + 1)
                elif weighting == "likelihood":
                    wt = torch.full_like(snr, vp_likelihood_weight(cfg))
                else:
                    wt = torch.ones_like(snr)
                loss = torch.mean(wt * per_sample)
            w.add(f"{name}.tau", torch.tensor(taus, dtype=torch.float64))
            w.add(f"{name}.loss", loss)
            w.meta(name, {"diffusion": cfg, "weighting": weighting, "gamma": GAMMA, "loss": "simple"})
    learned = build_model(dict(SMALL, learn_sigma=True))
    for name, (cfg, taus, loss_kind) in LEARNED.items():
        learned.zero_grad()
        loss = learned_variance_loss(learned, cfg, taus, loss_kind, x0, noise)
        loss.backward()
        w.add(f"{name}.tau", torch.tensor(taus, dtype=torch.float64))
        w.add(f"{name}.loss", loss.detach())
        w.add(f"{name}.grad.conv_in.weight", learned.conv_in.weight.grad)
        w.add(f"{name}.grad.conv_out.weight", learned.conv_out.weight.grad)
        w.meta(name, {"diffusion": cfg, "weighting": "none", "gamma": GAMMA, "loss": loss_kind})
    os.makedirs(args.out_dir, exist_ok=True)
    w.write(os.path.join(args.out_dir, "objective.safetensors"))


if __name__ == "__main__":
    main()
