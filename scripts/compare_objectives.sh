#!/bin/sh
# Compare the training objectives on real CIFAR-10 at one model size, equal steps and batch:
# DDPM v-prediction (configs/cifar10_small.json), EDM and flow matching (cifar10_small_edm.json,
# cifar10_small_flow.json), then for each the held-out loss in its own parameterisation, a sample
# grid, and for one model a quality-vs-NFE table per solver, judged by scripts/proxy_quality.py's
# classifier-feature Frechet distance (a proxy, not FID).
#
# usage: scripts/compare_objectives.sh CIFAR_DIR OUT_DIR [STEPS] [N_SAMPLES]
#   CIFAR_DIR holds train/ and test/ with one sub-folder per class (../shared's cifar10-jpg archive)
#   STEPS training steps per model (default 2000, batch 32), N_SAMPLES images per NFE-table cell (400)
# Needs build/diffuse and, for the table, Debian's python3-torch, python3-torchvision, python3-scipy.
set -eu
data=$1 out=$2 steps=${3:-2000} n=${4:-400}
bin=$(dirname "$0")/../build/diffuse
cfgdir=$(dirname "$0")/../configs
mkdir -p "$out"
for obj in ddpm edm flow; do
  cfg=$cfgdir/cifar10_small.json
  [ $obj = edm ] && cfg=$cfgdir/cifar10_small_edm.json
  [ $obj = flow ] && cfg=$cfgdir/cifar10_small_flow.json
  [ -s "$out/$obj/ckpt.safetensors" ] ||
    "$bin" train --config "$cfg" --out "$out/$obj" --steps "$steps" --set data.path="$data/train" --force > "$out/$obj.train.txt" 2>&1
done
for obj in ddpm edm flow; do
  "$bin" eval loss --ckpt "$out/$obj/ckpt.safetensors" --data "$data/test" --n 1000 --repeats 4 | tee "$out/$obj.loss.txt"
done
"$bin" sample --ckpt "$out/ddpm/ckpt.safetensors" --sampler ddim --steps 50 --n 64 --out "$out/ddpm_ddim50.png"
"$bin" sample --ckpt "$out/edm/ckpt.safetensors" --sampler heun --steps 18 --n 64 --out "$out/edm_heun18.png"
"$bin" sample --ckpt "$out/flow/ckpt.safetensors" --sampler ode --method euler --steps 50 --n 64 --out "$out/flow_euler50.png"
# quality vs NFE on the EDM model: steps chosen so each solver makes about 10 / 20 / 50 evaluations
[ -s "$out/clf.pt" ] ||
  /usr/bin/python3 "$(dirname "$0")/proxy_quality.py" train --data "$data/train" --test "$data/test" --out "$out/clf.pt" --epochs 3
set --
for spec in "heun 6" "heun 10" "heun 25" "dpmpp 10" "dpmpp 20" "dpmpp 50" "unipc 10" "unipc 20" "unipc 50" \
  "euler_ancestral 10" "euler_ancestral 20" "euler_ancestral 50"; do
  s=${spec% *} k=${spec#* }
  f="$out/nfe_${s}_$k.st"
  [ -s "$f" ] || "$bin" sample --ckpt "$out/edm/ckpt.safetensors" --sampler "$s" --steps "$k" --n "$n" --batch 50 --save-tensor "$f" \
    --out "$out/nfe_${s}_$k.png" | tee -a "$out/nfe_sampling.txt"
  set -- "$@" "$f"
done
/usr/bin/python3 "$(dirname "$0")/proxy_quality.py" score --clf "$out/clf.pt" --test "$data/test" "$@" | tee "$out/nfe_table.md"
