#!/usr/bin/env python3
"""Side-by-side speed of diffuse and PyTorch on the same machine, same model, batch and threads.

For each case (config, batch, mode) the script runs `diffuse bench` and an equivalent PyTorch
worker (the DDPM U-Net of scripts/gen_unet_fixtures.py, diffusers layout, built from the config's
"model" section) as separate processes, alternately, --rounds times, and prints a table of the
medians with the ratio diffuse / PyTorch in images/s and both peak RSS values.

  train   forward + MSE loss + backward + gradient clipping + AdamW + EMA (PyTorch), the same
          step diffuse trains with (diffuse bench times the trainer's own step, on procedural images)
  sample  one grad-free forward (torch.no_grad), the unit every sampler repeats
  sample-bf16  the same in bf16: diffuse --precision bf16 (AMX tiles, fp32 sums) against the PyTorch
          model cast to bf16 with its time embedding (torch 1.13's CPU autocast fails on GroupNorm);
          in the default modes where the CPU has AMX-BF16

and the FID Inception's feature extraction (`inception:BATCH` cases, default batch 50 as pytorch-fid):
diffuse bench --mode inception against pytorch-fid's InceptionV3 forward as scripts/gen_inception_fixtures.py
restates it (torchvision's Inception3 with the FID blocks; ToTensor, bilinear resize of the 32x32 uint8
images to 299, 2x - 1, blocks to pool3, then fc), both with the synthetic weights of
tests/make_synthetic_inception (the speed does not depend on the values), written to a temporary file.

Default cases: configs/cifar10_ddpm.json at batch 8 and configs/quickstart.json at batch 16, both
modes, 2 threads. Run with Debian's PyTorch after building diffuse:

  /usr/bin/python3 scripts/bench_vs_pytorch.py [--diffuse build/diffuse] [--threads 2] [--steps 5]

--device cuda runs both on the GPU (fp32, TF32 off in diffuse's cuBLAS; the RSS columns then hold
PyTorch's peak device memory); scripts/cuda_check.sh calls it so.

It also prints the machine's sgemm rate (diffuse bench --mode gemm, with the kernels diffuse runs)
and, per config, the conv2d forward/backward GFLOP/s of a profiled training step as a share of an
sgemm run made just before it (medians over the rounds).
The peer runs at its best: OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when it loads, and
either can pin it to an older kernel family than the CPU supports (one development VM set Haswell on an
AVX-512 CPU), so both are removed from PyTorch's environment unless --torch-openblas inherit.
--openblas-coretype sets diffuse's (inherit: as the environment has it; auto: unset; or a core name),
which only matters on CPUs without AVX-512, where diffuse runs OpenBLAS (ops/gemm.h). The header
names the kernels each program ran: diffuse's GEMM, PyTorch's convolution engine (oneDNN when
torch.backends.mkldnn is on) and the OpenBLAS core its process loaded.
"""

import argparse
import json
import os
import resource
import statistics
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [("configs/cifar10_ddpm.json", 8), ("configs/quickstart.json", 16), ("inception", 50)]


def torch_worker(config, batch, mode, steps, warmup, threads, device="cpu"):
    import torch
    sys.path.insert(0, HERE)
    from gen_unet_fixtures import UNet

    torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with open(config) as f:
        cfg = json.load(f)["model"]
    full = {"resolution": 32, "in_channels": 3, "ch": 128, "ch_mult": [1, 2, 2, 2], "num_res_blocks": 2,
            "attn_resolutions": [16], "dropout": 0.1, "groups": 32, "norm_eps": 1e-6, "num_classes": 0}
    full.update(cfg)
    model = UNet(full).to(dev)
    res, c = full["resolution"], full["in_channels"]
    x = (torch.rand(batch, c, res, res) * 2 - 1).to(dev)
    if mode == "sample-bf16":
        model, x = model.to(torch.bfloat16), x.to(torch.bfloat16)
    t = torch.randint(0, 1000, (batch,)).float().to(dev)
    times = []
    if mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
        ema = [p.detach().clone() for p in model.parameters()]
        for s in range(warmup + steps):
            t0 = time.perf_counter()
            noise = torch.randn_like(x)
            loss = torch.nn.functional.mse_loss(model(x + noise, t), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                for e, p in zip(ema, model.parameters()):
                    e.lerp_(p, 1 - 0.9999)
            sync()
            if s >= warmup:
                times.append(time.perf_counter() - t0)
    else:
        model.eval()
        with torch.no_grad():
            for s in range(warmup + steps):
                t0 = time.perf_counter()
                model(x, t)
                sync()
                if s >= warmup:
                    times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if dev.type == "cuda":  # the device's peak instead (what bounds the batch there)
        rss = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps({"ms_per_step": ms, "img_per_s": batch / (ms / 1e3), "peak_rss_mib": rss,
                      "kernels": torch_kernels()}))


def torch_inception_worker(batch, steps, warmup, threads, device="cpu"):
    import torch
    sys.path.insert(0, HERE)
    from gen_inception_fixtures import synthetic_model, preprocess, features

    torch.set_num_threads(threads)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = synthetic_model()[0].float().eval().to(dev)
    images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8).to(dev)
    times = []
    with torch.no_grad():
        for s in range(warmup + steps):
            t0 = time.perf_counter()
            features(model, preprocess(images))
            sync()
            if s >= warmup:
                times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if dev.type == "cuda":
        rss = torch.cuda.max_memory_allocated(dev) / 2**20
    print(json.dumps({"ms_per_step": ms, "img_per_s": batch / (ms / 1e3), "peak_rss_mib": rss,
                      "kernels": torch_kernels()}))


def torch_kernels():
    """PyTorch's convolution engine and the OpenBLAS core its process loaded (read from OpenBLAS itself)."""
    import ctypes
    import torch
    conv = "oneDNN" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled else "native"
    blas = "none loaded"
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "libopenblas" in line})
    if libs:
        lib = ctypes.CDLL(libs[0])
        lib.openblas_get_corename.restype = ctypes.c_char_p
        blas = "OpenBLAS " + lib.openblas_get_corename().decode()
    return f"convolutions {conv}, BLAS {blas}"


def run_json(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--diffuse", default="build/diffuse")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    with open("/proc/cpuinfo") as f:
        amx = " amx_bf16 " in f.read().replace("\n", " ")
    ap.add_argument("--modes", default="sample,train,sample-bf16" if amx else "sample,train",
                    help="comma-separated: sample, train, sample-bf16 (default: all three where the CPU has AMX-BF16)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: both programs on the GPU (fp32; RSS columns "
                    "then show PyTorch's peak device memory)")
    ap.add_argument("--case", action="append", help="CONFIG:BATCH (repeatable; default: the two standard cases)")
    ap.add_argument("--openblas-coretype", default="inherit",
                    help="diffuse's OPENBLAS_CORETYPE: inherit (as the environment has it), auto (unset: OpenBLAS "
                         "detects the CPU) or a core name such as Haswell")
    ap.add_argument("--torch-openblas", default="best", choices=["best", "inherit"],
                    help="best (default): OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed for PyTorch; inherit: "
                         "PyTorch gets the environment's")
    ap.add_argument("--torch-worker", nargs=4, metavar=("CONFIG", "BATCH", "MODE", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        config, batch, mode, steps = args.torch_worker
        if mode == "inception":
            torch_inception_worker(int(batch), int(steps), args.warmup, args.threads, args.device)
        else:
            torch_worker(config, int(batch), mode, int(steps), args.warmup, args.threads, args.device)
        return
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.case] if args.case else CASES
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    torch_env = dict(env)
    if args.torch_openblas == "best":
        for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
            torch_env.pop(var, None)
    if args.openblas_coretype == "auto":
        env.pop("OPENBLAS_CORETYPE", None)
    elif args.openblas_coretype != "inherit":
        env["OPENBLAS_CORETYPE"] = args.openblas_coretype
    sgemm = run_json([args.diffuse, "bench", "--mode", "gemm", "--steps", "9", "--threads", str(args.threads),
                      "--device", args.device], env)
    def described(e):
        return ", ".join(f"{v}={e.get(v, 'unset')}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    print(f"diffuse kernels: GEMM {sgemm['blas']} ({described(env)}), "
          f"sgemm 2048^3: {sgemm['gflops']:.1f} GFLOP/s on {args.threads} threads")
    torch_kernels_seen, diffuse_kernels_seen = set(), set()
    weights = None
    if any(c == "inception" for c, _ in cases):
        tool = os.path.join(os.path.dirname(os.path.abspath(args.diffuse)), "tests", "make_synthetic_inception")
        weights = os.path.join(tempfile.mkdtemp(prefix="bench_inception_"), "inception.safetensors")
        subprocess.run([tool, weights], check=True)
    rows = []
    for config, batch in cases:
        for mode in (["inception"] if config == "inception" else args.modes.split(",")):
            ours, theirs = [], []
            for _ in range(args.rounds):  # alternate, so drifts in machine load hit both
                what = ["--inception", weights] if mode == "inception" else ["--config", config]
                precision = ["--mode", "sample", "--precision", "bf16"] if mode == "sample-bf16" else ["--mode", mode]
                ours.append(run_json([args.diffuse, "bench", *what, "--batch", str(batch), *precision,
                                      "--steps", str(args.steps), "--warmup", str(args.warmup),
                                      "--threads", str(args.threads), "--device", args.device], env))
                theirs.append(run_json([sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                                        "--warmup", str(args.warmup), "--device", args.device, "--torch-worker",
                                        config, str(batch), mode, str(args.steps)], torch_env))
                torch_kernels_seen.add(theirs[-1].get("kernels", "?"))
                diffuse_kernels_seen.add(ours[-1]["blas"])
            o = statistics.median(r["img_per_s"] for r in ours)
            p = statistics.median(r["img_per_s"] for r in theirs)
            rows.append((os.path.basename(config), batch, mode, o, p, o / p,
                         max(r["peak_rss_mib"] for r in ours), max(r["peak_rss_mib"] for r in theirs),
                         statistics.median(r["gflops"] for r in ours)))
    for config, batch in [c for c in cases if c[0] != "inception"] if args.device == "cpu" else []:
        # conv2d rates of a profiled training step
        fwd_share, bwd_share, fwd_rate, bwd_rate, sgemm_rate = [], [], [], [], []
        for _ in range(args.rounds):  # each next to an sgemm run: this VM's speed drifts by minutes
            g = run_json([args.diffuse, "bench", "--mode", "gemm", "--steps", "5", "--threads", str(args.threads)], env)
            prof = subprocess.run([args.diffuse, "bench", "--config", config, "--batch", str(batch), "--mode", "train",
                                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads",
                                   str(args.threads), "--profile"], capture_output=True, text=True, env=env,
                                  check=True).stderr
            conv = next(line.split() for line in prof.splitlines() if line.startswith("conv2d"))
            fwd, bwd = float(conv[-2]), float(conv[-1])
            fwd_rate.append(fwd), bwd_rate.append(bwd), sgemm_rate.append(g["gflops"])
            fwd_share.append(fwd / g["gflops"]), bwd_share.append(bwd / g["gflops"])
        med = statistics.median
        print(f"{os.path.basename(config)} batch {batch}: conv2d forward {med(fwd_rate):.1f} GFLOP/s "
              f"({100 * med(fwd_share):.0f}% of sgemm), backward {med(bwd_rate):.1f} ({100 * med(bwd_share):.0f}%); "
              f"sgemm next to them {med(sgemm_rate):.1f} GFLOP/s (medians of {args.rounds})")
    print(f"diffuse runs: {'; '.join(sorted(diffuse_kernels_seen))}")
    print(f"PyTorch {__import__('torch').__version__} kernels: {'; '.join(sorted(torch_kernels_seen))} "
          f"({described(torch_env)})")
    print(f"{'config':<20} {'batch':>5} {'mode':<11} {'diffuse img/s':>13} {'torch img/s':>11} {'ratio':>6} "
          f"{'diffuse RSS':>11} {'torch RSS':>9} {'diffuse GFLOP/s':>15}")
    if weights:
        shutil.rmtree(os.path.dirname(weights))
    for r in rows:
        print(f"{r[0]:<20} {r[1]:>5} {r[2]:<11} {r[3]:>13.2f} {r[4]:>11.2f} {r[5]:>6.2f} {r[6]:>9.0f}Mi {r[7]:>7.0f}Mi " +
              (f"{r[8]:>15.1f}" if r[8] else f"{'-':>15}"))


if __name__ == "__main__":
    main()
