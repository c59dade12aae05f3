#!/bin/sh
# test_report.sh - report.html: diffuse train writes it at log and sample steps (charts as inline SVG, the
# grids as data: URIs, the config), diffuse report remakes it byte for byte from the run directory alone,
# and bad run directories are refused with exit code 1 naming the file, leaving the old report as it was.
# usage: test_report.sh path/to/diffuse
bin="$1"
fail=0
. "$(dirname "$0")/expect.sh" # expect CODE PATTERN ARGS...
has() { # has FILE PATTERN WHAT: FILE contains the fixed string PATTERN
  grep -qF -- "$2" "$1" || { echo "FAIL: $1 lacks $3 ('$2')"; fail=1; }
}
count() { grep -oF -- "$2" "$1" | wc -l | tr -d ' '; }

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the tiny model of tests/tiny_model.json, 6 steps with a grid every 3
sed 's/"steps": 4/"steps": 6/; s/"sample_every": 0/"sample_every": 3/' "$(dirname "$0")/tiny_model.json" > "$tmp/tiny.json" &&
  grep -q "\"steps\": 6," "$tmp/tiny.json" || { echo "FAIL: tests/tiny_model.json changed: fix this test's sed"; exit 1; }
run="$tmp/run"
expect 0 "" train --config "$tmp/tiny.json" --out "$run" --quiet
html="$run/report.html"
[ -f "$html" ] && [ ! -L "$html" ] || { echo "FAIL: diffuse train wrote no report.html"; exit 1; }

# the charts: four inline SVGs against the step, the loss raw and smoothed (and which smoothing, said)
[ "$(count "$html" '<svg ')" = 4 ] || { echo "FAIL: expected 4 SVG charts, found $(count "$html" '<svg ')"; fail=1; }
for t in '>Loss<' '>Gradient norm<' '>Learning rate<' '>Throughput<' '>step<' '<polyline' '>raw<' 'EMA, span' \
         'exponential moving average'; do
  has "$html" "$t" "a chart part"
done
# self-contained: no script, nothing fetched (the SVG namespace is a name, not a fetch)
if grep -qiE '<script|<link|@import|(src|href)="?(https?:)?//' "$html"; then echo "FAIL: report.html loads something"; fail=1; fi
# the grids (steps 3 and 6), in order, each labelled, as data: URIs holding the PNGs' exact bytes
[ "$(count "$html" 'src="data:image/png;base64,')" = 2 ] || { echo "FAIL: expected 2 embedded grids"; fail=1; }
[ "$(grep -o '<figcaption>step [0-9]*' "$html" | tr '\n' ' ')" = "<figcaption>step 3 <figcaption>step 6 " ] ||
  { echo "FAIL: grid captions not 'step 3', 'step 6' in order"; fail=1; }
grep -o 'alt="sample grid at step 3" src="data:image/png;base64,[A-Za-z0-9+/=]*' "$html" | sed 's/.*base64,//' |
  base64 -d > "$tmp/grid3.png" 2>/dev/null
cmp -s "$tmp/grid3.png" "$run/samples/step_0000003.png" || { echo "FAIL: the embedded grid is not samples/step_0000003.png"; fail=1; }
# the resolved config, the progress and the throughput
has "$html" '<caption>train</caption>' "the config's train section"
has "$html" '<td>sample_every</td><td>3</td>' "a config value"
has "$html" 'procedural:32' "the data path"
has "$html" '6 / 6' "the step of train.steps"
has "$html" 'finished' "the finished state"
has "$html" 'img/s' "the throughput"

# diffuse report remakes it from the files alone: the same bytes as the trainer's last refresh
cp "$html" "$tmp/trained.html"
rm "$html"
expect 0 "3 log lines, 2 of 2 sample grids" report "$run"
cmp -s "$html" "$tmp/trained.html" || { echo "FAIL: diffuse report differs from the trainer's report"; fail=1; }
expect 0 "usage: diffuse report RUN_DIR" report --help

# a run in progress: step of train.steps and an ETA instead of "finished"
cp -r "$run" "$tmp/part"
sed 's/"steps":[[:space:]]*6,/"steps": 100,/' "$run/config.json" > "$tmp/part/config.json"
expect 0 "" report "$tmp/part"
has "$tmp/part/report.html" '6 / 100' "a run's progress"
grep -q '>finished<' "$tmp/part/report.html" && { echo "FAIL: an unfinished run is reported finished"; fail=1; }
# a killed trainer's cut-short last line is left out, and said; a resumed run that went back replaces the lines
printf '{"step": 8, "loss": 0.' >> "$tmp/part/log.jsonl"
expect 0 "3 log lines, 2 of 2 sample grids; the cut-short last log line is left out" report "$tmp/part"
has "$tmp/part/report.html" "was cut short" "the note on the cut-short line"
grep -v '"step": 8,' "$run/log.jsonl" > "$tmp/part/log.jsonl"
sed -n '2,3p' "$run/log.jsonl" >> "$tmp/part/log.jsonl"
expect 0 "3 log lines" report "$tmp/part"
has "$tmp/part/report.html" "resumed from an earlier checkpoint 1 time" "the note on a resume"
# an empty log (a run that has not reached its first log step) is a report without charts, not an error
: > "$tmp/part/log.jsonl"
expect 0 "0 log lines" report "$tmp/part"
[ "$(count "$tmp/part/report.html" '<svg ')" = 0 ] || { echo "FAIL: charts drawn from an empty log"; fail=1; }

# bad input: exit 1 naming the file and what to do; usage errors exit 2; the old report is kept, no temporary left
expect 1 "$tmp/none: no such directory: give the --out directory of a diffuse train run" report "$tmp/none"
expect 1 "tiny.json: not a directory" report "$tmp/tiny.json"
expect 2 "give one run directory" report
expect 2 "give one run directory" report "$run" "$run"
expect 2 "unknown option '--bogus'" report --bogus
bad="$tmp/bad"
cp -r "$run" "$bad"
{ sed -n 1p "$run/log.jsonl"; echo '{"step": 4, "loss": 0.5, "lr"'; sed -n '3p' "$run/log.jsonl"; } > "$bad/log.jsonl"
expect 1 "bad/log.jsonl:2: malformed log line (not one JSON object): the log is damaged; repair or delete line 2" report "$bad"
{ cat "$run/log.jsonl"; echo '{"step": 8, "loss": 0.5}'; } > "$bad/log.jsonl"
expect 1 'log.jsonl:4: malformed log line (no number "lr")' report "$bad"
printf '[1, 2]\n' > "$bad/log.jsonl"
expect 1 "log.jsonl:1: malformed log line (not a JSON object)" report "$bad"
{ sed -n 1p "$run/log.jsonl"; sed -n 1p "$run/log.jsonl" | tr -d '\n'; sed -n 2p "$run/log.jsonl"; } > "$bad/log.jsonl"
expect 1 "log.jsonl:2: malformed log line" report "$bad" # a cut-short line followed by a later run's line
rm "$bad/log.jsonl"
expect 1 "bad/log.jsonl: cannot open: No such file or directory (is $bad the --out directory" report "$bad"
mkdir "$bad/log.jsonl"
expect 1 "log.jsonl: is a directory, expected a file" report "$bad"
rmdir "$bad/log.jsonl"
cp "$run/log.jsonl" "$bad/"
echo '{"model": {' > "$bad/config.json"
expect 1 "bad/config.json:2: invalid JSON (diffuse train writes config.json when a run starts" report "$bad"
echo '{"train": {"batch": 4}}' > "$bad/config.json"
expect 1 "config.json: no train.steps and train.batch" report "$bad"
rm "$bad/config.json"
expect 1 "bad/config.json: cannot open" report "$bad"
cmp -s "$bad/report.html" "$tmp/trained.html" || { echo "FAIL: a refused report changed report.html"; fail=1; }
ls "$bad" | grep -q 'tmp' && { echo "FAIL: a refused report left a temporary: $(ls "$bad")"; fail=1; }
# a grid that is not a PNG is named in its caption, not embedded
cp "$run/config.json" "$bad/"
echo "not a png" > "$bad/samples/step_0000009.png"
expect 0 "2 of 3 sample grids" report "$bad"
has "$bad/report.html" "step_0000009.png: not a PNG file" "the unreadable grid's note"

# report.html is replaced, never written through a planted symlink
echo keep > "$tmp/target"
rm "$bad/report.html" && ln -s "$tmp/target" "$bad/report.html"
expect 0 "" report "$bad"
[ "$(cat "$tmp/target")" = keep ] || { echo "FAIL: diffuse report wrote through a symlink"; fail=1; }
[ -f "$bad/report.html" ] && [ ! -L "$bad/report.html" ] || { echo "FAIL: report.html is not a regular file"; fail=1; }

# a refresh that fails during training warns once and the run goes on to the end; the next run's start removes
# a stale temporary of the report, and --force the old report
rm -rf "$tmp/busy" && mkdir -p "$tmp/busy/report.html/x"
out=$("$bin" train --config "$tmp/tiny.json" --out "$tmp/busy" --quiet 2>&1); got=$?
[ $got = 0 ] || { echo "FAIL: a failing report refresh stopped training ($got): $out"; fail=1; }
[ "$(printf '%s\n' "$out" | grep -c "warning: the run's report was not refreshed")" = 1 ] ||
  { echo "FAIL: a failing refresh did not warn exactly once: $out"; fail=1; }
[ -f "$tmp/busy/ckpt.safetensors" ] || { echo "FAIL: no checkpoint after a failing refresh"; fail=1; }
touch "$run/report.html.tmp.AbC123"
expect 0 "" train --config "$tmp/tiny.json" --out "$run" --resume "$run/ckpt.safetensors" --steps 8 --quiet
[ -e "$run/report.html.tmp.AbC123" ] && { echo "FAIL: a stale report temporary survived a run's start"; fail=1; }
has "$html" '8 / 8' "the resumed run's progress"
expect 0 "" train --config "$tmp/tiny.json" --out "$run" --force --steps 1 --set train.log_every=5 --quiet
has "$html" '1 / 1' "the new run's report (--force)"

[ $fail = 0 ] && echo "report: all checks passed"
exit $fail
