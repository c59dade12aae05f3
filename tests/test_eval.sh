#!/bin/sh
# test_eval.sh - diffuse eval stats / eval fid end to end with synthetic Inception weights: the
# statistics file holds the pool3 and spatial statistics and the pool3 features, and eval fid
# reports FID, sFID, the Inception Score, KID and precision/recall from one pass, or says which
# metrics a reference without features cannot give.
# usage: test_eval.sh path/to/diffuse path/to/make_synthetic_inception
bin="$1"
fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$2" "$tmp/inc.safetensors" || exit 1
export DIFFUSE_INCEPTION="$tmp/inc.safetensors"
. "$(dirname "$0")/expect.sh" # expect CODE PATTERN ARGS...
# images: a tiny model trained for a few steps on generated shapes, 8 + 6 samples of it as PNGs
cp "$(dirname "$0")/tiny_model.json" "$tmp/tiny.json" # a tiny U-Net: 4 training steps on generated shapes
"$bin" train --config "$tmp/tiny.json" --out "$tmp/run" > /dev/null 2>&1 || { echo "FAIL: training the tiny model"; exit 1; }
"$bin" sample --ckpt "$tmp/run/ckpt.safetensors" --steps 5 --n 8 --outdir "$tmp/real" > /dev/null 2>&1 &&
  "$bin" sample --ckpt "$tmp/run/ckpt.safetensors" --steps 5 --n 6 --seed 1 --outdir "$tmp/fake" > /dev/null 2>&1 ||
  { echo "FAIL: sampling the tiny model"; exit 1; }
few="--allow-few-images --batch 5"
expect 0 "statistics of 8 images written .*pool3 and spatial statistics, pool3 features" \
  eval stats --images "$tmp/real" --out "$tmp/ref.npz" $few
expect 0 "statistics of 8 images written .*(pool3 and spatial statistics;" \
  eval stats --images "$tmp/real" --out "$tmp/ref_nofeat.npz" --no-features $few
[ "$(wc -c < "$tmp/ref_nofeat.npz")" -lt "$(wc -c < "$tmp/ref.npz")" ] || { echo "FAIL: --no-features wrote the features"; fail=1; }
"$bin" eval fid --ref "$tmp/ref.npz" --images "$tmp/fake" $few > "$tmp/fid.txt" 2> "$tmp/fid.err" || { echo "FAIL: eval fid"; fail=1; }
cat "$tmp/fid.txt" "$tmp/fid.err"
grep -q "^FID [0-9.]*  sFID [0-9.]*  IS [0-9.]* +- [0-9.]* (6 splits)" "$tmp/fid.txt" || { echo "FAIL: no FID/sFID/IS line"; fail=1; }
grep -q "^KID -*[0-9.]* +- [0-9.]* (100 subsets of 6)  precision [01].[0-9]*  recall [01].[0-9]* (k = 3, 8 reference images)" \
  "$tmp/fid.txt" || { echo "FAIL: no KID/precision/recall line"; fail=1; }
grep -q "KID subsets of 6 images" "$tmp/fid.err" || { echo "FAIL: no note on the KID subset size"; fail=1; }
# the same images as the reference: the Frechet distances vanish, every image is inside the other set's balls
"$bin" eval fid --ref "$tmp/ref.npz" --images "$tmp/real" $few > "$tmp/self.txt" 2>&1 || { echo "FAIL: eval fid (self)"; fail=1; }
grep -q "^FID 0.0000.*sFID 0.0000" "$tmp/self.txt" || { echo "FAIL: FID/sFID of a set against itself"; cat "$tmp/self.txt"; fail=1; }
grep -q "precision 1.0000  recall 1.0000" "$tmp/self.txt" || { echo "FAIL: precision/recall of a set against itself"; cat "$tmp/self.txt"; fail=1; }
"$bin" eval fid --ref "$tmp/ref_nofeat.npz" --images "$tmp/fake" $few > "$tmp/nofeat.txt" 2> "$tmp/nofeat.err" ||
  { echo "FAIL: eval fid against a reference without features"; fail=1; }
grep -q "has no pool3 features (made with --no-features" "$tmp/nofeat.err" || { echo "FAIL: no note on missing features"; fail=1; }
grep -q "^FID [0-9.]*  sFID" "$tmp/nofeat.txt" || { echo "FAIL: no FID line without reference features"; fail=1; }
grep -q "KID" "$tmp/nofeat.txt" && { echo "FAIL: KID without reference features"; fail=1; }
exit $fail
