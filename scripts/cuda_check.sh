#!/bin/sh
# cuda_check.sh - every check the CUDA backend needs a GPU for, in one run (about 10 minutes on an
# H200 machine with 16 cores). Run from the repository root on the GPU machine:
#
#   OUT=/some/dir sh scripts/cuda_check.sh
#
# It writes $OUT/cuda_check.log (everything) and $OUT/numbers.txt (the results to report):
#   1. the machine: GPU, driver, CUDA toolkit, where cuBLAS comes from;
#   2. a -DDIFFUSE_CUDA=ON build (ninja, all cores) into build-cuda/, or the carried build-cuda/ when
#      the machine cannot build (missing -dev packages);
#   3. ctest, with backend_ops_cuda: every op fixture case and generated case on the GPU vs the
#      fixture and the CPU backend (tests/test_backend_ops.c), then under compute-sanitizer memcheck;
#   4. parity: 300 steps of configs/cifar10_small.json from one seed on the CPU and on the GPU (loss
#      curves side by side), then DDIM-50 from the CPU run's checkpoint on both (mean |diff|);
#   5. speed: diffuse bench on the GPU (CIFAR-10 DDPM, training batch 128, forward batch 256, peak
#      device memory from nvidia-smi), and PyTorch on the same cases (scripts/bench_vs_pytorch.py
#      --device cuda).
# Each step has a time limit, so one hang does not eat the session's GPU time.
set -u
OUT=${OUT:-/tmp/cuda_check}
mkdir -p "$OUT"
log="$OUT/cuda_check.log"
numbers="$OUT/numbers.txt"
: > "$numbers"
step() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }
note() { printf '%s\n' "$*" | tee -a "$numbers"; }
PY=$(command -v python3 || echo /usr/bin/python3)
{
step "1. machine"
nvidia-smi || echo "nvidia-smi failed"
nproc
ls -d /usr/local/cuda* 2>/dev/null
command -v nvcc && nvcc --version | tail -1
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' || true
$PY -c 'import nvidia, os; print("nvidia wheels:", os.path.dirname(nvidia.__path__[0]))' 2>/dev/null || true

step "2. build"
if command -v cmake >/dev/null && command -v nvcc >/dev/null; then
  gen=""; command -v ninja >/dev/null && gen="-G Ninja"
  timeout 300 cmake -S . -B build-cuda $gen -DDIFFUSE_CUDA=ON -DCMAKE_BUILD_TYPE=Release &&
    timeout 420 cmake --build build-cuda -j "$(nproc)" || echo "BUILD FAILED"
else
  echo "no cmake or nvcc here: using the carried build-cuda/"
fi
bin=build-cuda/diffuse
[ -x "$bin" ] || { note "no $bin: nothing to check"; exit 1; }
ldd "$bin" | grep -E "cublas|cudart|not found" || true
"$bin" --version
"$bin" info --devices | tee -a "$numbers"

step "3. tests"
(cd build-cuda && timeout 600 ctest --output-on-failure -j 8 2>&1 | tail -40)
DIFFUSE_REQUIRE_BACKEND=cuda timeout 120 build-cuda/tests/test_backend_ops 2>&1 | tail -30 | tee -a "$numbers"
if command -v compute-sanitizer >/dev/null; then
  DIFFUSE_REQUIRE_BACKEND=cuda timeout 300 compute-sanitizer --tool memcheck --print-limit 20 \
    build-cuda/tests/test_backend_ops 2>&1 | tail -25
fi

step "4. parity CPU vs GPU"
for dev in cpu cuda; do
  rm -rf "$OUT/parity_$dev"
  timeout 400 "$bin" train --config configs/cifar10_small.json --data procedural:4096 --steps 300 --quiet \
    --set train.log_every=25 --set train.sample_every=0 --set train.ckpt_every=0 --device "$dev" \
    --out "$OUT/parity_$dev" 2>&1 | tail -2
done
$PY - "$OUT" <<'PY' | tee -a "$numbers"
import json, sys
out = sys.argv[1]
curves = {}
for dev in ("cpu", "cuda"):
    try:
        curves[dev] = [json.loads(l) for l in open(f"{out}/parity_{dev}/log.jsonl")]
    except OSError as e:
        print(f"parity: no {dev} log ({e})")
if len(curves) == 2:
    print("parity: step  loss_cpu  loss_cuda  (300 steps of cifar10_small, seed 0, procedural data)")
    for a, b in zip(curves["cpu"], curves["cuda"]):
        print(f"parity: {a['step']:5d}  {a['loss']:.5f}  {b['loss']:.5f}")
PY
ck="$OUT/parity_cpu/ckpt.safetensors"
for dev in cpu cuda; do
  timeout 300 "$bin" sample --ckpt "$ck" --sampler ddim --steps 50 --n 16 --batch 16 --device "$dev" \
    --save-tensor "$OUT/ddim_$dev.safetensors" 2>&1 | tail -1
done
$PY - "$OUT" <<'PY' | tee -a "$numbers"
import json, struct, sys, array
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    t = h["x"]
    a = array.array("f")
    a.frombytes(b[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]])
    return a
try:
    c, g = load(sys.argv[1] + "/ddim_cpu.safetensors"), load(sys.argv[1] + "/ddim_cuda.safetensors")
    d = sum(abs(x - y) for x, y in zip(c, g)) / len(c)
    print(f"ddim50: mean |cpu - cuda| = {d:.3g} over {len(c)} values (target < 1e-3)")
except Exception as e:
    print(f"ddim50: comparison failed: {e}")
PY

step "5. speed"
for spec in "train 128" "sample 256"; do
  set -- $spec
  (nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/mem_$1.txt" &
   echo $! > "$OUT/mem.pid")
  timeout 300 "$bin" bench --config configs/cifar10_ddpm.json --device cuda --mode "$1" --batch "$2" --steps 10 \
    --warmup 3 2>&1 | tail -1 | tee -a "$numbers"
  kill "$(cat "$OUT/mem.pid")" 2>/dev/null
  note "peak device memory ($1, batch $2): $(sort -n "$OUT/mem_$1.txt" | tail -1) MiB (nvidia-smi, whole GPU)"
done
timeout 500 $PY scripts/bench_vs_pytorch.py --diffuse "$bin" --device cuda --threads "$(nproc)" --rounds 2 \
  --case configs/cifar10_ddpm.json:128 2>&1 | tail -8 | tee -a "$numbers"
step "done"
} 2>&1 | tee "$log"
