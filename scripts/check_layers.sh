#!/bin/sh
# check_layers.sh - the layering rules, run by .ci/run. Prints each violation; exits 1 if there is any.
#
# 1. Headers point one way, down the layers:
#      core, io <- ops, backend <- autograd <- nn <- diffusion <- {samplers, train, eval} <- cli
#    A header (include/<layer>/*.h or src/<layer>/*.h) includes headers of its own layer or below.
# 2. The backend seam (core/tensor.h, backend/backend.h): only src/ops/ (the CPU kernels) and
#    src/backend/ (the backends) touch tensor memory. Above the seam:
#    a. no ops/ header is included (kernels are reached through the backend's op table), except
#       ops/gemm.h in src/eval/fid.c, kid.c and precision_recall.c: the evaluation metrics' GEMMs on
#       host arrays of Inception features (never tensor memory);
#    b. no cast to or from BackendMem, and no cast of a tensor's or parameter buffer's address
#       (->data, ->grad, .ema, ...): BackendMem is incomplete so it cannot be dereferenced, and these
#       casts are the only ways around that;
#    c. no libc memory or I/O call (memcpy, memset, fwrite, ...) is handed such an address (a void *
#       parameter would take it without a cast).
#    The same rule is enforced at run time by the tests run with DIFFUSE_CPU_OPAQUE=1 (tests/CMakeLists.txt).
cd "$(dirname "$0")/.." || exit 1
rank() {
  case "$1" in
    core | io) echo 0 ;; ops | backend) echo 1 ;; autograd) echo 2 ;; nn) echo 3 ;; diffusion) echo 4 ;;
    samplers | train | eval) echo 5 ;; cli) echo 6 ;; *) echo "unknown layer '$1'" >&2; echo 99 ;;
  esac
}
bad=0
for h in include/*/*.h src/*/*.h; do
  layer=$(basename "$(dirname "$h")")
  mine=$(rank "$layer")
  for dep in $(sed -n 's/^#include "\([a-z_]*\)\/[a-z_0-9]*\.h".*/\1/p' "$h"); do
    if [ "$(rank "$dep")" -gt "$mine" ]; then
      echo "layering: $h ($layer) includes a header of $dep, a layer above it"
      bad=1
    fi
  done
done
[ $bad = 0 ] && echo "layering: every header includes only its own layer or those below"

above=$(ls src/autograd/* src/nn/* src/diffusion/* src/samplers/* src/train/* src/eval/* src/cli/* \
  include/autograd/* include/nn/* include/diffusion/* include/samplers/* include/train/* include/eval/*)
seam=0
for f in $above; do
  grep -n '^#include "ops/' "$f" | while IFS= read -r line; do
    case "$f:$line" in
      src/eval/fid.c:*'"ops/gemm.h"'* | src/eval/kid.c:*'"ops/gemm.h"'* | src/eval/precision_recall.c:*'"ops/gemm.h"'*) ;;
      *) echo "seam: $f:$line: above the backend seam, kernels are called through the backend's op table" ;;
    esac
  done
  grep -nE '\((const )?BackendMem \*\)' "$f" | sed "s|^|seam: $f:|; s|$|  (a cast to BackendMem)|"
  grep -nE '\((const )?[a-z_0-9 ]+\*\)\s*\(?[A-Za-z_][A-Za-z0-9_.>()-]*(->|\.)(data|grad|ema|adam_m|adam_v)\b' "$f" |
    sed "s|^|seam: $f:|; s|$|  (a cast of tensor memory)|"
  grep -nE '(^|[^>_a-z])(memcpy|memmove|memset|memcmp|fwrite|fread)\s*\(.*(->|\.)(data|grad|ema|adam_m|adam_v)\s*[,)+]' "$f" |
    sed "s|^|seam: $f:|; s|$|  (libc reading or writing tensor memory)|"
done > /tmp/check_layers.$$
if [ -s /tmp/check_layers.$$ ]; then
  cat /tmp/check_layers.$$
  seam=1
else
  echo "seam: above the backend seam no code reads or writes tensor memory directly"
fi
rm -f /tmp/check_layers.$$
[ $bad = 0 ] && [ $seam = 0 ]
