#!/usr/bin/env python3
"""A held-out sample-quality proxy for CIFAR-10 models: a small classifier trained here with Debian's
PyTorch, and the Frechet distance of its penultimate-layer features between samples and the test set.

This is NOT FID: the feature network is a ~0.3M-parameter CNN trained for a few epochs on CIFAR-10
(its test accuracy is printed and stored), not the Inception-v3 of the FID standard, so its numbers
only rank models and solvers against each other. Label it "proxy FD" wherever it is reported.

  train     fit the classifier on the CIFAR-10 train images (a folder with one sub-folder per class)
            and save it with its test accuracy (--test: the test folder)
  score     proxy FD to the test set's features and the entropy of the classifier's mean label
            distribution (log 10 = 2.303 for balanced classes) for samples: diffuse sample
            --save-tensor files (tensor x, [N, 3, 32, 32] in [-1, 1], quantised as a PNG would be)
            or image folders, one table row each; with --classes C1,C2,... (diffuse sample's --class
            list: grid row r of ceil(sqrt(N)) columns is class C_(r mod k)) also the share of samples
            the classifier labels as their requested class (classes numbered as the sorted folder names)

Run: /usr/bin/python3 scripts/proxy_quality.py train --data DIR/train --test DIR/test --out clf.pt [--epochs 6]
     /usr/bin/python3 scripts/proxy_quality.py score --clf clf.pt --test DIR/test [--classes 0,1,...] SAMPLES...
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
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fid_fixtures import frechet_distance  # noqa: E402  (pytorch-fid's formula)
from compare_samples import load_x  # noqa: E402  (tensor x of a --save-tensor file)


def load_folder(path, limit=None):
    """Images of a class-per-sub-folder tree as uint8 (N, 32, 32, 3) and integer labels."""
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    xs, ys = [], []
    for k, c in enumerate(classes):
        names = sorted(os.listdir(os.path.join(path, c)))
        for n in names[:limit]:
            xs.append(np.asarray(Image.open(os.path.join(path, c, n)).convert("RGB").resize((32, 32))))
            ys.append(k)
    if not classes:  # a flat folder of samples
        for n in sorted(os.listdir(path))[:limit]:
            if n.lower().endswith((".png", ".jpg", ".jpeg")):
                xs.append(np.asarray(Image.open(os.path.join(path, n)).convert("RGB").resize((32, 32))))
                ys.append(-1)
    return np.stack(xs), np.array(ys)


def load_tensor(path):
    """Tensor "x" of a safetensors file (float32 [N, 3, 32, 32] in [-1, 1]) as uint8 NHWC, as a PNG would hold it."""
    x = np.clip(np.rint((load_x(path) + 1) * 127.5), 0, 255).astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def to_input(x):
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(127.5).sub(1)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.fc = nn.Linear(128, 10)

    def features(self, x):
        return self.body(x).mean(dim=(2, 3))  # (N, 128)

    def forward(self, x):
        return self.fc(self.features(x))


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (model(to_input(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]).sum()
    return correct / len(x)


def train(args):
    torch.manual_seed(0)
    x, y = load_folder(args.data)
    xt, yt = load_folder(args.test) if args.test else (None, None)
    model = Classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    rng = np.random.default_rng(0)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = rng.permutation(len(x))
        for i in range(len(x) // args.batch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = x[idx]
            flip = rng.random(len(idx)) < 0.5
            xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
            loss = F.cross_entropy(model(to_input(np.ascontiguousarray(xb))), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = evaluate(model, xt, yt) if xt is not None else float("nan")
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, test accuracy {acc:.4f}, {time.time() - t0:.0f}s")
    torch.save({"state": model.state_dict(), "test_accuracy": float(acc)}, args.out)
    print(f"wrote {args.out}")


def feature_stats(model, x, batch=500):
    model.eval()
    feats, probs = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            h = model.features(to_input(x[i:i + batch]))
            feats.append(h.double().numpy())
            probs.append(F.softmax(model.fc(h), dim=1).double().numpy())
    f = np.concatenate(feats)
    return f.mean(0), np.cov(f, rowvar=False), np.concatenate(probs)


def score(args):
    ck = torch.load(args.clf)
    model = Classifier()
    model.load_state_dict(ck["state"])
    xt, _ = load_folder(args.test)
    mu_t, s_t, _ = feature_stats(model, xt)
    print(f"# proxy FD: Frechet distance of a {sum(p.numel() for p in model.parameters())}-parameter CIFAR-10 "
          f"classifier's features (test accuracy {ck['test_accuracy']:.4f}) to {len(xt)} test images; not FID")
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    print("| samples | n | proxy FD | class entropy (nats) |" + (" requested class |" if classes else ""))
    print("|---|---|---|---|" + ("---|" if classes else ""))
    for path in args.samples:
        x = load_tensor(path) if os.path.isfile(path) else load_folder(path)[0]
        mu, s, p = feature_stats(model, x)
        marginal = p.mean(0)
        ent = float(-(marginal * np.log(marginal + 1e-12)).sum())
        row = f"| {os.path.basename(path)} | {len(x)} | {float(frechet_distance(mu, s, mu_t, s_t)):.3f} | {ent:.3f} |"
        if classes:
            cols = math.ceil(math.sqrt(len(x)))
            want = np.array([classes[(i // cols) % len(classes)] for i in range(len(x))])
            row += f" {float((p.argmax(1) == want).mean()):.3f} |"
        print(row)
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--test")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch", type=int, default=128)
    s = sub.add_parser("score")
    s.add_argument("--clf", required=True)
    s.add_argument("--test", required=True)
    s.add_argument("--classes", help="the --class list the samples were drawn with")
    s.add_argument("samples", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("PROXY_THREADS", "2")))
    {"train": train, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()
