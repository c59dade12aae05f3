#!/bin/sh
# test_mpi.sh - data parallelism: the same job on 2 ranks (mpirun) and in 1 process.
# usage: test_mpi.sh MPIRUN DIFFUSE COMPARE_CHECKPOINTS MAKE_SYNTHETIC_INCEPTION
#
# Training: 2 ranks of 2 images equal 1 process with train.micro_batch 2 (the same split of each
# step's batch of 4, the same draws per image), not bitwise: one process accumulates the second
# half's gradient onto the first half's inside each kernel, the ranks sum two separate halves, so
# the gradients differ in the last bits. After one step the weights agree to 1e-6 of each tensor's
# scale (test_util.h's measure; measured 1.3e-7, 278 of 280 tensors bit-equal). Adam then amplifies
# such differences where its first moment nearly cancels (m = b1 m + (1 - b1) g with g against m):
# measured up to 3.7e-4 at step 2 falling to 2.9e-5 at step 20 (8e-5 with 1-image micro-batches,
# 9.5e-7 after the 2 -> 1 rank resume; printed below), so 20 steps are held to 1e-3; a
# wrong split of the batch (other images, noise or masks) shows as O(1) differences and a different
# logged loss, which must match to its 6 printed digits. The attention key biases are left out:
# their gradient is zero in exact arithmetic (softmax ignores a shift shared by all keys), so it is
# rounding noise that Adam scales up to full-size steps. Sampling and evaluation split whole
# batches, so they must equal one process's bit for bit.
mpirun="$1" bin="$2" compare="$3" make_inception="$4"
fail=0
two() { "$mpirun" --oversubscribe --allow-run-as-root --bind-to none -np 2 "$@"; }
check() { # check WHAT COMMAND...: the command must succeed
  what="$1"; shift
  if ! "$@" > "$tmp/out.txt" 2>&1; then echo "FAIL: $what"; cat "$tmp/out.txt"; fail=1; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/tiny.json" <<'JSON'
{"model": {"resolution": 8, "in_channels": 3, "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
           "attn_resolutions": [4], "dropout": 0.1, "groups": 4},
 "diffusion": {"type": "ddpm", "T": 100},
 "train": {"steps": 20, "batch": 4, "lr": 0.001, "warmup": 2, "log_every": 5, "sample_every": 0, "ckpt_every": 0,
           "sample_n": 4, "sample_steps": 5},
 "data": {"path": "procedural:64"}}
JSON
t="$tmp/tiny.json"

# 1. the same training run: one step, then twenty
check "1 process, 1 step" "$bin" train --config "$t" --out "$tmp/one1" --quiet --steps 1 --set train.micro_batch=2
check "2 ranks, 1 step" two "$bin" train --config "$t" --out "$tmp/two1" --quiet --steps 1
check "one step: 2 ranks vs 1 process" "$compare" "$tmp/one1/ckpt.safetensors" "$tmp/two1/ckpt.safetensors" 1e-6 to_k.bias
cat "$tmp/out.txt"
check "1 process" "$bin" train --config "$t" --out "$tmp/one" --quiet --set train.micro_batch=2
check "2 ranks" two "$bin" train --config "$t" --out "$tmp/two" --quiet
check "2 ranks vs 1 process" "$compare" "$tmp/one/ckpt.safetensors" "$tmp/two/ckpt.safetensors" 1e-3 to_k.bias
cat "$tmp/out.txt"
cut -d, -f1-2 "$tmp/one/log.jsonl" > "$tmp/l1"; cut -d, -f1-2 "$tmp/two/log.jsonl" > "$tmp/l2"
cmp -s "$tmp/l1" "$tmp/l2" || { echo "FAIL: the logged losses differ"; diff "$tmp/l1" "$tmp/l2"; fail=1; }
[ -e "$tmp/two/samples/step_0000020.png" ] || { echo "FAIL: rank 0 wrote no sample grid"; fail=1; }
# the same job on the same number of ranks again: the same bits (the all-reduce's order is fixed for N)
check "2 ranks again" two "$bin" train --config "$t" --out "$tmp/two_again" --quiet
cmp -s "$tmp/two/ckpt.safetensors" "$tmp/two_again/ckpt.safetensors" ||
  { echo "FAIL: two runs on 2 ranks differ"; fail=1; }
# micro-batches per rank: 2 ranks x 2 micro-batches of 1 image, against 1 process of 4 micro-batches
check "1 process, micro 1" "$bin" train --config "$t" --out "$tmp/one_m1" --quiet --set train.micro_batch=1
check "2 ranks, micro 1" two "$bin" train --config "$t" --out "$tmp/two_m1" --quiet --set train.micro_batch=1
check "micro-batches on ranks" "$compare" "$tmp/one_m1/ckpt.safetensors" "$tmp/two_m1/ckpt.safetensors" 1e-3 to_k.bias
cat "$tmp/out.txt"

# 2. resume with another number of ranks: 10 steps on 2 ranks, then 10 more in 1 process
check "2 ranks, 10 steps" two "$bin" train --config "$t" --out "$tmp/half" --quiet --steps 10
check "resume in 1 process" "$bin" train --resume "$tmp/half/ckpt.safetensors" --out "$tmp/half" --quiet --steps 20 \
  --set train.micro_batch=2
check "2 -> 1 ranks vs 2 ranks" "$compare" "$tmp/half/ckpt.safetensors" "$tmp/two/ckpt.safetensors" 1e-3 to_k.bias
cat "$tmp/out.txt"

# 3. refusals: a batch that does not split, configs that differ between ranks
two "$bin" train --config "$t" --out "$tmp/odd" --batch 5 > "$tmp/out.txt" 2>&1; rc=$?
{ [ $rc = 1 ] && grep -q "does not split evenly across 2 ranks" "$tmp/out.txt"; } ||
  { echo "FAIL: batch 5 on 2 ranks: exit $rc"; cat "$tmp/out.txt"; fail=1; }
sed 's/"ch": 8/"ch": 16/' "$t" > "$tmp/other.json"
"$mpirun" --oversubscribe --allow-run-as-root --bind-to none -np 1 "$bin" train --config "$t" --out "$tmp/mixed" : \
  -np 1 "$bin" train --config "$tmp/other.json" --out "$tmp/mixed" > "$tmp/out.txt" 2>&1; rc=$?
{ [ $rc = 1 ] && grep -q "resolved different configs" "$tmp/out.txt"; } ||
  { echo "FAIL: different configs per rank: exit $rc"; cat "$tmp/out.txt"; fail=1; }
[ -e "$tmp/mixed/ckpt.safetensors" ] && { echo "FAIL: a refused job wrote a checkpoint"; fail=1; }

# 4. a rank killed mid-run: the job ends (no hang) with a failure code, the last checkpoint intact
two "$bin" train --config "$t" --out "$tmp/kill" --quiet --steps 1000000 --set train.ckpt_every=50 > "$tmp/kill.txt" 2>&1 &
job=$!
i=0; while [ ! -e "$tmp/kill/ckpt.safetensors" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
victim=$(pgrep -f "train --config $t --out $tmp/kill" | sort -n | tail -1)
[ -n "$victim" ] && kill -9 "$victim"
i=0; while kill -0 $job 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $job 2>/dev/null; then
  echo "FAIL: the job still runs 30 s after a rank was killed"; kill -9 $job; fail=1
else
  wait $job; rc=$?
  [ $rc != 0 ] || { echo "FAIL: a job with a killed rank exited 0"; fail=1; }
  echo "a killed rank: mpirun exited $rc"
fi
check "the checkpoint after a kill loads" "$bin" info --ckpt "$tmp/kill/ckpt.safetensors"
ls -a "$tmp/kill" | grep -q "tmp" && { echo "FAIL: temporaries left after the kill"; ls -a "$tmp/kill"; fail=1; }

# 5. sampling: 2 ranks write what 1 process writes (5 images in batches of 2: 3 batches over 2 ranks)
ck="$tmp/two/ckpt.safetensors"
check "sample, 1 process" "$bin" sample --ckpt "$ck" --n 5 --batch 2 --steps 5 --save-tensor "$tmp/s1.st" --out "$tmp/g1.png"
check "sample, 2 ranks" two "$bin" sample --ckpt "$ck" --n 5 --batch 2 --steps 5 --save-tensor "$tmp/s2.st" --out "$tmp/g2.png"
cmp -s "$tmp/s1.st" "$tmp/s2.st" || { echo "FAIL: 2-rank samples differ from 1 process's"; fail=1; }
cmp -s "$tmp/g1.png" "$tmp/g2.png" || { echo "FAIL: 2-rank grid differs from 1 process's"; fail=1; }
check "sample --outdir, 2 ranks" two "$bin" sample --ckpt "$ck" --n 5 --batch 2 --steps 5 --outdir "$tmp/pngs"
[ -s "$tmp/pngs/000004.png" ] || { echo "FAIL: 2-rank --outdir wrote no fifth image"; fail=1; }

# 6. evaluation: the statistics of 2 ranks are 1 process's, bit for bit (synthetic Inception weights)
check "synthetic Inception weights" "$make_inception" "$tmp/inception.safetensors"
inc="--inception $tmp/inception.safetensors --allow-few-images --batch 2"
check "eval stats, 1 process" "$bin" eval stats --images "$tmp/pngs" --out "$tmp/st1.npz" $inc
check "eval stats, 2 ranks" two "$bin" eval stats --images "$tmp/pngs" --out "$tmp/st2.npz" $inc
cmp -s "$tmp/st1.npz" "$tmp/st2.npz" || { echo "FAIL: 2-rank statistics differ from 1 process's"; fail=1; }
# the FID's matrix square root (OpenBLAS) rounds differently with another thread count: one thread in both
OMP_NUM_THREADS=1 "$bin" eval fid --ref "$tmp/st1.npz" --ckpt "$ck" --n 5 --steps 5 $inc > "$tmp/f1.txt" 2>&1 || fail=1
OMP_NUM_THREADS=1 two "$bin" eval fid --ref "$tmp/st1.npz" --ckpt "$ck" --n 5 --steps 5 $inc > "$tmp/f2.txt" 2>&1 || fail=1
# every metric line (FID, sFID, IS; KID, precision, recall) without the timing
f1=$(grep -E "^(FID|KID)" "$tmp/f1.txt" | sed 's/, [0-9.]*s, [0-9.]* images\/s//'); f2=$(grep -E "^(FID|KID)" "$tmp/f2.txt" | sed 's/, [0-9.]*s, [0-9.]* images\/s//')
{ [ -n "$f1" ] && [ "$f1" = "$f2" ] && printf '%s' "$f1" | grep -q "^KID"; } || { echo "FAIL: eval fid: '$f1' (1 process) vs '$f2' (2 ranks)"; cat "$tmp/f2.txt"; fail=1; }
echo "eval fid of generated images: $f1 (1 process) = $f2 (2 ranks)"

# 7. commands that run as one process say so under mpirun
two "$bin" info --ckpt "$ck" > "$tmp/out.txt" 2>&1; rc=$?
{ [ $rc = 2 ] && grep -q "runs as one process" "$tmp/out.txt"; } || { echo "FAIL: info under 2 ranks: exit $rc"; fail=1; }

[ $fail = 0 ] && echo "mpi: all checks passed"
exit $fail
