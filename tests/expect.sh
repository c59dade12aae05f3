# expect.sh - sourced by the CLI test scripts (needs $bin, sets fail=1 on a mismatch):
#   expect CODE PATTERN ARGS...   run diffuse ARGS; its exit code must be CODE and its output (stdout
#                                 and stderr) must match the grep pattern PATTERN; shows the output if not
expect() {
  code="$1"; pattern="$2"; shift 2
  out=$("$bin" "$@" 2>&1); got=$?
  if [ "$got" != "$code" ]; then echo "FAIL: diffuse $* exited $got, expected $code"; printf '%s\n' "$out" | head -20; fail=1; fi
  if ! printf '%s' "$out" | grep -q -- "$pattern"; then
    echo "FAIL: diffuse $*: output lacks '$pattern'"; printf '%s\n' "$out" | head -20; fail=1
  fi
}
