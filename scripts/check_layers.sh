#!/bin/sh
# check_layers.sh - the headers point one way, down the layers:
#   core, io <- ops <- autograd <- nn <- diffusion <- {samplers, train, eval} <- cli
# A header (include/<layer>/*.h or src/<layer>/*.h) may include headers of its own layer or below,
# never one from a layer above. Prints each violation; exits 1 if there is any. Run by .ci/run.
cd "$(dirname "$0")/.." || exit 1
rank() {
  case "$1" in
    core | io) echo 0 ;; ops) echo 1 ;; autograd) echo 2 ;; nn) echo 3 ;; diffusion) echo 4 ;;
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
exit $bad
