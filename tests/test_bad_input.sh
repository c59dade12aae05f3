#!/bin/sh
# test_bad_input.sh - hostile and careless input, one case per reliability finding: each command must
# exit with the stated code and message, within a time limit (no hang), and a failing command must
# leave every file under the work directory as it was (nothing written half-way, nothing appears).
# usage: test_bad_input.sh path/to/diffuse path/to/tests
bin=$(realpath "$1")
tests=$(realpath "$2")
corpus="$tests/fuzz/corpus_image"
fail=0
# one thread: these tests are about files, exit codes and signals, and must not slow down several-fold
# on a loaded machine (spinning OpenMP threads)
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'kill $bg 2>/dev/null; rm -rf "$tmp"' EXIT
w="$tmp/w" # everything the commands may touch lives here
mkdir -p "$w"
cd "$w" || exit 1

snapshot() { find "$w" -printf '%y %p %s %l\n' | sort; find "$w" -type f -exec md5sum {} + | sort; }

# expect CODE PATTERN ARGS...: exit code, message, at most 60 s; a non-zero exit must change no file.
expect() {
  code="$1"; pattern="$2"; shift 2
  [ "$code" = 0 ] || snapshot > "$tmp/before"
  t0=$(date +%s.%N); out=$(timeout 60 "$bin" "$@" 2>&1); got=$?; [ -n "$TIMING" ] && echo "$(echo "$(date +%s.%N) - $t0" | bc) $*" >&2
  if [ "$got" != "$code" ]; then echo "FAIL: diffuse $* exited $got, expected $code"; echo "$out" | head -5; fail=1; fi
  if ! printf '%s' "$out" | grep -q -- "$pattern"; then
    echo "FAIL: diffuse $*: output lacks '$pattern'"; echo "$out" | head -5; fail=1
  fi
  if [ "$code" != 0 ]; then
    snapshot > "$tmp/after"
    if ! cmp -s "$tmp/before" "$tmp/after"; then
      echo "FAIL: diffuse $* (exit $got) changed files:"; diff "$tmp/before" "$tmp/after" | head -10; fail=1
    fi
  fi
}

# edit_header IN OUT PERL-SUBSTITUTION...: the safetensors file with its JSON header edited (and its length
# prefix rewritten), data untouched
edit_header() {
  in="$1"; out="$2"; shift 2
  perl -e 'open(F, "<", shift) or die; binmode F; local $/; my $d = <F>; my $n = unpack("Q<", substr($d, 0, 8));
    my $h = substr($d, 8, $n); for my $e (@ARGV) { eval "\$h =~ $e" or die "no match: $e" }
    binmode STDOUT; print pack("Q<", length $h) . $h . substr($d, 8 + $n)' "$in" "$@" > "$out"
}
set_step() { edit_header "$1" "$3" "s/\"step\":\"\\d+\"/\"step\":\"$2\"/"; }
# wait_started LOG: until the background trainer writing stderr to LOG printed its banner (it then holds
# the lock and has its signal handlers)
wait_started() {
  for i in $(seq 1 100); do grep -q " steps " "$1" 2>/dev/null && return; sleep 0.1; done
  echo "FAIL: the background trainer did not start"; fail=1
}

cat > tiny.json <<'JSON'
{"model": {"resolution": 8, "in_channels": 3, "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
           "attn_resolutions": [4], "dropout": 0.0, "groups": 4},
 "diffusion": {"type": "ddpm", "T": 100},
 "train": {"steps": 40, "batch": 4, "log_every": 10, "sample_every": 0, "ckpt_every": 10, "sample_n": 4, "sample_steps": 5},
 "data": {"path": "procedural:32"}}
JSON
expect 0 "done, 40 steps" train --config tiny.json --out A --quiet
ck=A/ckpt.safetensors

# ---- 1. a fresh train into an existing run directory; a failing run writes nothing ----
expect 1 "already holds a run (config.json)" train --config tiny.json --out A --steps 2
expect 1 "/nonexistent: cannot open" train --config tiny.json --out B --data /nonexistent
[ -e B ] && { echo "FAIL: a failed train created its --out"; fail=1; }
expect 1 "/nonexistent: cannot open" train --config tiny.json --out A --force --data /nonexistent
expect 2 "give one of them" train --config tiny.json --out A --force --resume "$ck"
cp -r A F
expect 0 "steps 0 -> 2" train --config tiny.json --out F --force --steps 2 --quiet
grep -q '"step": 40' F/log.jsonl && { echo "FAIL: --force kept the old run's log"; fail=1; }

# ---- 2. temporary files and the log never follow planted symlinks ----
echo precious > victim
ln -s "$w/victim" A/ckpt.safetensors.tmp.123456
ln -s "$w/victim" A/config.json.tmp.654321
expect 0 "steps 40 -> 50" train --config tiny.json --out A --resume "$ck" --steps 50 --quiet
[ "$(cat victim)" = precious ] || { echo "FAIL: training wrote through a planted temp-file symlink"; fail=1; }
[ -L "$ck" ] && { echo "FAIL: the checkpoint became a symlink"; fail=1; }
ls A | grep -q '\.tmp\.' && { echo "FAIL: stale temp files left in A: $(ls A)"; fail=1; }
cp -r A L && mv L/log.jsonl L/log.old && ln -s "$w/victim" L/log.jsonl
expect 1 "log.jsonl: cannot open: it is a symbolic link" train --config tiny.json --out L --resume L/ckpt.safetensors --steps 60
[ "$(cat victim)" = precious ] || { echo "FAIL: the log was written through a symlink"; fail=1; }

# ---- 3. two trainers on one --out ----
"$bin" train --config tiny.json --out A --resume "$ck" --steps 1000000 --quiet --set train.ckpt_every=0 --set train.log_every=1000000 2>"$tmp/bg3" &
bg=$!
wait_started "$tmp/bg3"
expect 1 "in use by another diffuse train (pid $bg)" train --config tiny.json --out A --resume "$ck" --steps 1000001
kill -INT $bg; wait $bg; rc=$?
[ $rc = 130 ] || { echo "FAIL: SIGINT exit code $rc, expected 130"; fail=1; }

# ---- 4. very long paths are used whole ----
seg=$(printf 'x%.0s' $(seq 1 250))
long="$w/$seg/$seg/$seg/$seg/$seg/run"
expect 0 "done, 2 steps" train --config tiny.json --out "$long" --steps 2 --quiet
[ -s "$long/ckpt.safetensors" ] && [ -s "$long/config.json" ] && [ -s "$long/log.jsonl" ] ||
  { echo "FAIL: a ${#long}-character --out did not get its files"; fail=1; }

# ---- 5-7. images: only PNG/JPEG/BMP/TGA are decoded, sizes are limited, symlink loops end ----
mkdir imgs && cp "$corpus/png_rgb.png" imgs/good.png
for bad in regress_pgm16.png regress_hdr_truncated_rle.png regress_bomb_18000x18000.png; do
  mkdir "d_$bad" && cp "$corpus/png_rgb.png" "d_$bad/good.png" && cp "$corpus/$bad" "d_$bad/x.png"
done
expect 1 "x.png: cannot decode image (unsupported image format" train --config tiny.json --out I --data d_regress_pgm16.png
expect 1 "x.png: cannot decode image (unsupported image format" train --config tiny.json --out I --data d_regress_hdr_truncated_rle.png
expect 1 "18000x18000" train --config tiny.json --out I --data d_regress_bomb_18000x18000.png
expect 0 "skipped 1 unreadable" train --config tiny.json --out I --data d_regress_pgm16.png --skip-bad --steps 1 --quiet
ln -s . imgs/a && ln -s . imgs/b && ln -s "$w/imgs" imgs/c
expect 0 "diffuse train: 1 images" train --config tiny.json --out J --data imgs --steps 1 --quiet

# ---- 8. a directory where a file is expected ----
mkdir adir
expect 1 "adir: is a directory" sample --ckpt adir --out g.png
expect 1 "adir: is a directory" train --config tiny.json --resume adir --out A
expect 1 "adir: is a directory" train --config adir --out K
expect 1 "adir: is a directory" sample --ckpt "$ck" --init-noise adir --out g.png
expect 1 "adir: is a directory" eval stats --images imgs --out s.npz --inception adir
expect 1 "adir: is a directory" eval fid --ref adir --images imgs --inception adir
expect 1 "adir: is a directory" info --ckpt adir
expect 1 "adir: is a directory" eval nll --ckpt adir --data imgs

# ---- 9. sizes that cannot fit are refused up front, with the key to change ----
expect 1 "lower model.ch" train --config tiny.json --out K --set model.resolution=1024 --set model.ch=2048 --set model.groups=32 --set 'model.attn_resolutions=[]' --set 'model.ch_mult=[1,2,2,2]'
sed 's/"ch": 8/"ch": 2048/; s/"groups": 4/"groups": 32/; s/"resolution": 8/"resolution": 1024/; s/\[4\]/[]/; s/\[1, 2\]/[1, 2, 2, 2]/' tiny.json > huge.json
expect 1 "lower model.ch" info --config huge.json
edit_header "$ck" huge.safetensors 's/\\"resolution\\":8,/\\"resolution\\":1024,/' 's/\\"ch\\":8,/\\"ch\\":2048,/' \
  's/\\"ch_mult\\":\[1,2\]/\\"ch_mult\\":[1,2,2,2]/' 's/\\"attn_resolutions\\":\[4\]/\\"attn_resolutions\\":[]/' \
  's/\\"groups\\":4,/\\"groups\\":32,/'
expect 1 "huge.safetensors: the model has .* lower model.ch" sample --ckpt huge.safetensors --out g.png
expect 1 "lower train.batch" train --config tiny.json --out K --batch 65536 --set model.resolution=64 --set 'model.attn_resolutions=[]'
expect 1 "lower --batch" sample --ckpt "$ck" --n 2000000000 --batch 2000000000 --outdir big
expect 1 "a grid holds at most 4096 images" sample --ckpt "$ck" --n 2000000000 --out g.png
expect 1 "at most 100000 time steps" sample --ckpt "$ck" --sampler ode --method euler --steps 2000000000 --out g.png
# --n 2e9 with --outdir streams: it starts writing PNGs at once instead of allocating every sample
mkdir many
timeout -s INT 3 "$bin" sample --ckpt "$ck" --n 2000000000 --steps 2 --batch 4 --outdir many/o >/dev/null 2>&1
[ -s many/o/000003.png ] || { echo "FAIL: sample --n 2e9 --outdir wrote nothing within 3 s"; fail=1; }
rm -rf many
# an IDX file of 20M 1x1 images: the cache limit applies to IDX as well
printf '\000\000\010\003\001\061\055\000\000\000\000\001\000\000\000\001' > idx-images-idx3-ubyte
head -c 20000000 /dev/zero >> idx-images-idx3-ubyte
expect 1 "data.max_images" train --config tiny.json --out K --data idx-images-idx3-ubyte --set model.resolution=32 --set 'model.attn_resolutions=[]'
rm idx-images-idx3-ubyte

# ---- 10. tolerances beyond float32 ----
expect 1 "must be in \[1e-07, 1\]" sample --ckpt "$ck" --sampler ode --rtol 1e-30 --atol 1e-30 --out g.png
expect 1 "must be in \[1e-07, 1\]" eval nll --ckpt "$ck" --data imgs --method ode --rtol 1e-30 --atol 1e-30

# ---- 11. non-finite weights are refused at load ----
cp "$ck" nan.safetensors
hlen=$(od -An -t u4 -N 4 nan.safetensors | tr -d ' ')
printf '\000\000\300\177' | dd of=nan.safetensors bs=1 seek=$((8 + hlen)) conv=notrunc 2>/dev/null
expect 1 "non-finite value (nan at index 0)" sample --ckpt nan.safetensors --out g.png
expect 1 "non-finite value" eval nll --ckpt nan.safetensors --data imgs
expect 1 "non-finite value" train --config tiny.json --out A --resume nan.safetensors --steps 100

# ---- 12. no hang on absurd counts ----
expect 1 "--threads in \[0," bench --config tiny.json --threads 100000

# ---- 13. signals: checkpoint, then exit 128 + signal; a second signal stops at once ----
for sig in 15 1; do # SIGTERM, SIGHUP
  "$bin" train --config tiny.json --out A --resume "$ck" --steps 1000000 --quiet --set train.ckpt_every=0 --set train.log_every=1000000 2>"$tmp/bg$sig" &
  bg=$!
  wait_started "$tmp/bg$sig"
  kill -$sig $bg; wait $bg; rc=$?
  want=$((128 + sig))
  [ $rc = $want ] || { echo "FAIL: SIG$sig exit code $rc, expected $want"; fail=1; }
done
expect 0 "parameters" info --ckpt "$ck"
"$bin" train --config tiny.json --out A --resume "$ck" --steps 1000000 --quiet --set train.ckpt_every=0 --set train.log_every=1000000 2>"$tmp/two" &
bg=$!
wait_started "$tmp/two"
kill -INT $bg; kill -INT $bg; wait $bg; rc=$?
[ $rc = 130 ] || { echo "FAIL: two SIGINTs: exit code $rc, expected 130"; fail=1; }
expect 0 "parameters" info --ckpt "$ck"

# ---- 14. checkpoint metadata is validated on resume ----
expect 0 "" train --config tiny.json --out M --steps 10 --quiet
for bad in abc -3 1e23 ""; do
  set_step M/ckpt.safetensors "$bad" "step_$bad.safetensors"
  expect 1 "metadata step is \"$bad\", not an integer" train --config tiny.json --out M --resume "step_$bad.safetensors" --steps 20
done
set_step M/ckpt.safetensors 12 step_ok.safetensors
expect 0 "steps 12 -> 13" train --config tiny.json --out M --resume step_ok.safetensors --steps 13 --quiet
expect 1 "at step 13, so train.steps 13 leaves nothing to train" train --config tiny.json --out M --resume M/ckpt.safetensors --steps 13

# ---- 15. values that used to mean "not given" or were silently accepted ----
expect 1 "--steps must be >= 1" train --config tiny.json --out K --steps 0
expect 1 "--batch must be >= 1" train --config tiny.json --out K --batch 0
expect 1 "--seed must be >= 0" train --config tiny.json --out K --seed -5
expect 1 "--class needs a class-conditional model" sample --ckpt "$ck" --class -7 --out g.png
expect 1 "--corrector-steps must be in" sample --ckpt "$ck" --sampler pc --corrector-steps -5 --out g.png
expect 1 "--rtol nan: must be a finite number" sample --ckpt "$ck" --sampler ode --rtol nan --out g.png
expect 1 "--snr nan: must be a finite number" sample --ckpt "$ck" --sampler pc --snr nan --out g.png
expect 1 "train.steps: expected an integer" train --config tiny.json --out K --set 'train.steps=2 junk'
expect 1 "--n and --batch must be >= 1" sample --ckpt "$ck" --n 0 --out g.png
expect 2 "invalid value 'abc'" sample --ckpt "$ck" --n abc --out g.png
printf '{"train": {"steps": 4, "steps": 8}, "model": {"resolution": 8}}' > dupkey.json
expect 1 "train.steps: key given twice" train --config dupkey.json --out K
printf '{"train": {"steps": 4}, "train": {"steps": 8}}' > dupsec.json
expect 1 "train: section given twice" train --config dupsec.json --out K
expect 1 "attn_resolutions: 7 is not a resolution of this model" train --config tiny.json --out K --set 'model.attn_resolutions=[7]'

# ---- 16. messages ----
printf '{"train": []}' > trainlist.json
expect 1 "\"train\" section is not an object" train --config trainlist.json --out K --seed 3
key=$(printf 'k%.0s' $(seq 1 3000))
expect 1 "longer than 1023 characters (no such key)" train --config tiny.json --out K --set "train.$key=1"
expect 1 "the output directory name is empty" train --config tiny.json --out ""
expect 1 "output file name is empty" sample --ckpt "$ck" --out "" --n 2 --steps 2
printf '\037\213\010\000\000\000\000\000\000\003\001\002\003\004\005\006\007\010\011\012\013\014\015' > trunc-images-idx3-ubyte.gz
expect 1 "truncated" train --config tiny.json --out K --data trunc-images-idx3-ubyte.gz

[ $fail = 0 ] && echo "bad_input: all checks passed"
exit $fail
