#!/usr/bin/env python3
"""Reference FID / Inception Score values and .npz statistics files for tests/test_fid.c.

Features are random float32 sets of dimension 64 (small stand-ins for Inception's 2048):
  a  300 samples, correlated Gaussian
  b  200 samples, shifted mean and a different covariance
  c   40 samples (fewer than the dimension: a singular covariance, the case pytorch-fid
      handles by adding eps to the diagonal when sqrtm fails)
Reference statistics are numpy's (np.mean, np.cov(rowvar=False)); the Frechet distance is
pytorch-fid's calculate_frechet_distance (scipy.linalg.sqrtm); the Inception Score follows the
original implementation (softmax, 10 consecutive splits, exp of the mean KL, mean and std).
KID: torch-fidelity's polynomial_mmd (degree 3, gamma 1/dim, coef0 1, unbiased mmd2) of a[:200] and b,
whole sets (one subset of every row; the estimator does not depend on the row order). Precision and
recall: guided-diffusion's ManifoldEstimator (k = 3, squared distances, the row itself counted as the
0th neighbour) with real = a, fake = b, and real = a, fake = c; in float64, and the script checks that
no distance lies within 1e-5 (relative) of a radius it is compared with (float32 distances of these
sets are good to about 1e-6), so they decide
every comparison the same way and the C test may compare the counts exactly.

Writes tests/fixtures/fid.safetensors (features.{a,b,c}, mu.a, sigma.a, fid.ab, fid.ac,
is.logits, is.mean, is.std) and, with numpy's own writers, tests/fixtures/fid_stats_a.npz
(np.savez) and tests/fixtures/fid_stats_b_compressed.npz (np.savez_compressed) holding mu and
sigma as float64.
Run: /usr/bin/python3 scripts/gen_fid_fixtures.py [--out-dir DIR]
"""

import argparse
import os
import sys

import numpy as np
from scipy import linalg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_op_fixtures import DEFAULT_OUT_DIR, Writer  # noqa: E402

DIM = 64


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3's calculate_frechet_distance."""
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def inception_score(logits, splits=10):
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part) - np.log(py))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return np.mean(scores), np.std(scores)


def polynomial_mmd(x, y):
    """torch-fidelity's metric_kid.polynomial_mmd + mmd2 (unbiased), in float64."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    kern = lambda u, v: (u @ v.T / u.shape[1] + 1.0) ** 3
    kxx, kyy, kxy = kern(x, x), kern(y, y), kern(x, y)
    m = len(x)
    return ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def squared_distances(u, v):
    return np.maximum((u * u).sum(1)[:, None] - 2 * u @ v.T + (v * v).sum(1)[None, :], 0.0)


def precision_recall(real, fake, k=3):
    """guided-diffusion's evaluator: radii = k-th entry of each sorted distance row (self included);
    precision = fraction of fake inside some real ball, recall = fraction of real inside some fake ball.
    Also the smallest relative gap between a compared distance and its radius."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    r_real = np.partition(squared_distances(real, real), k, axis=1)[:, k]
    r_fake = np.partition(squared_distances(fake, fake), k, axis=1)[:, k]
    d = squared_distances(fake, real)  # (fake, real)
    precision = np.mean(np.any(d <= r_real[None, :], axis=1))
    recall = np.mean(np.any(d <= r_fake[:, None], axis=0))
    gap = min(np.min(np.abs(d - r_real[None, :]) / r_real[None, :]), np.min(np.abs(d - r_fake[:, None]) / r_fake[:, None]))
    for f in (real, fake):  # the k-th neighbour must be unambiguous too
        srt = np.sort(squared_distances(f, f), axis=1)
        gap = min(gap, np.min((srt[:, k + 1] - srt[:, k]) / srt[:, k]), np.min((srt[:, k] - srt[:, k - 1]) / srt[:, k]))
    return precision, recall, gap


def stats(f):
    f = f.astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=DEFAULT_OUT_DIR)
    args = ap.parse_args()
    rng = np.random.default_rng(20261127)
    mix = rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    a = (rng.normal(size=(300, DIM)) @ mix + 0.5).astype(np.float32)
    b = (rng.normal(size=(200, DIM)) @ (mix + 0.3 * np.eye(DIM)) + 0.8).astype(np.float32)
    c = (rng.normal(size=(40, DIM)) @ mix + 0.4).astype(np.float32)
    mu_a, sig_a = stats(a)
    mu_b, sig_b = stats(b)
    mu_c, sig_c = stats(c)
    logits = (3.0 * rng.normal(size=(500, 20))).astype(np.float32)
    is_mean, is_std = inception_score(logits.astype(np.float64))

    kid_ab = polynomial_mmd(a[:200], b)
    pr_ab = precision_recall(a, b)
    pr_ac = precision_recall(a, c)
    for name, pr in (("ab", pr_ab), ("ac", pr_ac)):
        assert pr[2] > 1e-5, f"precision/recall {name}: a distance within {pr[2]:.2g} of its radius"
        print(f"precision/recall {name}: {pr[0]:.6f} {pr[1]:.6f} (closest distance to a radius: {pr[2]:.2g} relative)")

    w = Writer()
    w.add("features.a", a)
    w.add("features.b", b)
    w.add("features.c", c)
    w.add("mu.a", mu_a)
    w.add("sigma.a", sig_a)
    w.add("fid.ab", np.array([frechet_distance(mu_a, sig_a, mu_b, sig_b)]))
    w.add("fid.ac", np.array([frechet_distance(mu_a, sig_a, mu_c, sig_c)]))
    w.add("is.logits", logits)
    w.add("is.mean", np.array([is_mean]))
    w.add("is.std", np.array([is_std]))
    w.add("kid.ab", np.array([kid_ab]))
    w.add("pr.ab", np.array([pr_ab[0], pr_ab[1]]))
    w.add("pr.ac", np.array([pr_ac[0], pr_ac[1]]))
    w.meta("note", "float32 storage: fid.* and is.* are compared at 1e-3 relative; the exact float64 values are in the metadata")
    w.meta("fid.ab", repr(float(frechet_distance(mu_a, sig_a, mu_b, sig_b))))
    w.meta("fid.ac", repr(float(frechet_distance(mu_a, sig_a, mu_c, sig_c))))
    w.meta("kid.ab", repr(float(kid_ab)))
    w.write(os.path.join(args.out_dir, "fid.safetensors"))
    np.savez(os.path.join(args.out_dir, "fid_stats_a.npz"), mu=mu_a, sigma=sig_a)
    np.savez_compressed(os.path.join(args.out_dir, "fid_stats_b_compressed.npz"), mu=mu_b, sigma=sig_b)
    print("fid.ab", frechet_distance(mu_a, sig_a, mu_b, sig_b), "fid.ac", frechet_distance(mu_a, sig_a, mu_c, sig_c),
          "IS", is_mean, is_std, "KID a[:200] b", kid_ab)


if __name__ == "__main__":
    main()
