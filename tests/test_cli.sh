#!/bin/sh
# test_cli.sh - exit codes and messages of the command line (0 ok, 2 usage / not implemented).
# usage: test_cli.sh path/to/diffuse
bin="$1"
fail=0
expect() { # expect CODE PATTERN ARGS...
  code="$1"; pattern="$2"; shift 2
  out=$("$bin" "$@" 2>&1); got=$?
  if [ "$got" != "$code" ]; then echo "FAIL: diffuse $* exited $got, expected $code"; fail=1; fi
  if ! printf '%s' "$out" | grep -q -- "$pattern"; then echo "FAIL: diffuse $*: output lacks '$pattern'"; fail=1; fi
}
expect 0 "usage: diffuse <command>" --help
expect 0 "^diffuse [0-9]" --version
expect 2 "usage: diffuse <command>"
expect 2 "unknown command 'frobnicate'" frobnicate
expect 2 "unknown option '--bogus'" --bogus
for cmd in train sample eval info; do
  expect 0 "usage: diffuse $cmd" "$cmd" --help
done
[ $fail = 0 ] && echo "cli: all checks passed"
exit $fail
