#!/bin/sh
# test_kill.sh - SIGKILL a trainer that checkpoints every step, 30 times at random moments once it has
# started training: after each kill the checkpoint must load and the next --resume must start from it
# and clear the stale temporary files; a last resume runs to the end, leaving no temporary file.
# usage: test_kill.sh path/to/diffuse
bin=$(realpath "$1")
fail=0
# one thread: these tests are about files, exit codes and signals, and must not slow down several-fold
# on a loaded machine (spinning OpenMP threads)
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
cat > kill.json <<'JSON'
{"model": {"resolution": 8, "in_channels": 3, "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1,
           "attn_resolutions": [4], "dropout": 0.0, "groups": 4},
 "diffusion": {"type": "ddpm", "T": 100},
 "train": {"steps": 1000000, "batch": 2, "log_every": 1, "sample_every": 0, "ckpt_every": 1, "sample_n": 4, "sample_steps": 5},
 "data": {"path": "procedural:32"}}
JSON
"$bin" train --config kill.json --out run --steps 3 --quiet 2>/dev/null || { echo "FAIL: the first run failed"; exit 1; }
ck=run/ckpt.safetensors
step=3
stale=""
mid_write=0
for i in $(seq 1 30); do
  "$bin" train --config kill.json --out run --resume $ck --quiet 2> err &
  pid=$!
  for t in $(seq 1 1200); do grep -q " -> " err && break; sleep 0.05; done # started (slow under ASan, on a loaded machine)
  sleep "$(awk -v s="$i$$" 'BEGIN { srand(s); printf "%.3f", 0.05 + 0.45 * rand() }')"
  kill -9 $pid
  wait $pid 2>/dev/null
  if ! grep -q "steps $step -> " err; then
    echo "FAIL: kill $i: the resume did not start from step $step:"; head -3 err; fail=1
  fi
  for f in $stale; do [ -e "run/$f" ] && { echo "FAIL: kill $i: stale $f survived a resume"; fail=1; }; done
  stale=$(ls run run/samples | grep '\.tmp\.')
  [ -n "$stale" ] && mid_write=$((mid_write + 1))
  info=$("$bin" info --ckpt $ck 2>&1) || { echo "FAIL: kill $i: the checkpoint does not load: $info"; fail=1; break; }
  step=$(perl -e 'open(F, "<", $ARGV[0]); binmode F; read(F, my $l, 8); read(F, my $h, unpack("Q<", $l));
    print $h =~ /"step":"(\d+)"/ ? $1 : "?"' $ck)
done
"$bin" train --config kill.json --out run --resume $ck --steps $((step + 2)) --quiet 2> err ||
  { echo "FAIL: the final resume failed:"; cat err; fail=1; }
left=$(ls -a run run/samples | grep '\.tmp\.')
[ -z "$left" ] || { echo "FAIL: temporary files left after the final resume: $left"; fail=1; }
[ $fail = 0 ] && echo "kill: 30 SIGKILLs ($mid_write during a checkpoint write), every checkpoint loaded and resumed (last at step $step)"
exit $fail
