#!/bin/sh
# test_report_chromium.sh - a trained run's report.html in headless Chromium: the page parses into the four
# SVG charts and the grid images, renders to a non-empty PNG screenshot, and logs no console message (no
# script error, no failed load). Skipped (exit 77) where Chromium is not installed (apt-get install chromium).
# usage: test_report_chromium.sh path/to/diffuse
bin="$1"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
[ -n "$chrome" ] || { echo "report_chromium: skipped: no chromium on PATH (apt-get install chromium)"; exit 77; }
fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the tiny model of tests/tiny_model.json, 12 steps with a grid every 4
sed 's/"steps": 4/"steps": 12/; s/"sample_every": 0/"sample_every": 4/' "$(dirname "$0")/tiny_model.json" > "$tmp/tiny.json" &&
  grep -q "\"steps\": 12," "$tmp/tiny.json" || { echo "FAIL: tests/tiny_model.json changed: fix this test's sed"; exit 1; }
"$bin" train --config "$tmp/tiny.json" --out "$tmp/run" --quiet 2> "$tmp/train.log" ||
  { echo "FAIL: diffuse train: $(cat "$tmp/train.log")"; exit 1; }
url="file://$tmp/run/report.html"
# its own profile and home: nothing of the user's is read or written
browse() { HOME="$tmp" timeout 120 "$chrome" --headless --disable-gpu --no-sandbox --no-first-run \
  --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0 "$@" "$url"; }

browse --dump-dom > "$tmp/dom.html" 2> "$tmp/dom.err" || { echo "FAIL: chromium --dump-dom failed: $(tail -5 "$tmp/dom.err")"; fail=1; }
svgs=$(grep -o '<svg ' "$tmp/dom.html" | wc -l)
imgs=$(grep -o '<img [^>]*src="data:image/png;base64,' "$tmp/dom.html" | wc -l)
[ "$svgs" = 4 ] || { echo "FAIL: the parsed page has $svgs SVG charts, expected 4"; fail=1; }
[ "$imgs" = 3 ] || { echo "FAIL: the parsed page has $imgs grid images, expected 3 (steps 4, 8, 12)"; fail=1; }
grep -q '</main>' "$tmp/dom.html" || { echo "FAIL: the parsed page ends early"; fail=1; }

browse --screenshot="$tmp/out.png" --window-size=1200,2000 > /dev/null 2> "$tmp/shot.err" ||
  { echo "FAIL: chromium --screenshot failed: $(tail -5 "$tmp/shot.err")"; fail=1; }
[ "$(head -c 8 "$tmp/out.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
  { echo "FAIL: no PNG screenshot"; fail=1; }
# a blank 1200x2000 page compresses to a few KB; charts, text and grids make far more
size=$(wc -c < "$tmp/out.png" 2>/dev/null || echo 0)
[ "$size" -gt 50000 ] || { echo "FAIL: the screenshot is only $size bytes (a blank page?)"; fail=1; }
# a console message is a script error, a failed load or a CSP report; the page should make none
if grep -hE 'CONSOLE|Uncaught|Failed to load resource|Refused to' "$tmp/dom.err" "$tmp/shot.err"; then
  echo "FAIL: chromium logged console messages for report.html (above)"; fail=1
fi
[ -n "$REPORT_SCREENSHOT" ] && cp "$tmp/out.png" "$REPORT_SCREENSHOT" # to look at it: REPORT_SCREENSHOT=/tmp/r.png
[ $fail = 0 ] && echo "report_chromium: all checks passed ($size-byte screenshot)"
exit $fail
