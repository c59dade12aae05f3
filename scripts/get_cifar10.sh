#!/usr/bin/env bash
# get_cifar10.sh - download and unpack the CIFAR-10 binary version (Krizhevsky 2009) for diffuse.
#
# Usage: scripts/get_cifar10.sh [DIR]      (default DIR: data/cifar10)
# Result: DIR/cifar-10-batches-bin/{data_batch_1..5.bin,test_batch.bin,batches.meta.txt}; the
# script prints that folder, the path to pass as --data (or data.path in a config).
# Needs curl or wget, md5sum and tar. An archive already in DIR is reused if its MD5 matches.
set -euo pipefail

URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5="c32a1d4ab5d03f1284b67883e8d87530"
DIR="${1:-data/cifar10}"
ARCHIVE="$DIR/cifar-10-binary.tar.gz"
OUT="$DIR/cifar-10-batches-bin"

die() {
  echo "get_cifar10.sh: $*" >&2
  exit 1
}

case "${1:-}" in
  -h | --help)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

for tool in md5sum tar; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (install coreutils / tar)"
done

have_all() {
  local f
  for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
    [ -s "$OUT/$f" ] || return 1
  done
}

if have_all; then
  echo "CIFAR-10 already present in $OUT"
  echo "$OUT"
  exit 0
fi

mkdir -p "$DIR" || die "cannot create $DIR"

md5_ok() {
  [ -f "$ARCHIVE" ] && [ "$(md5sum "$ARCHIVE" | cut -d' ' -f1)" = "$MD5" ]
}

if md5_ok; then
  echo "reusing $ARCHIVE (MD5 ok)"
else
  PART="$ARCHIVE.part"
  echo "downloading $URL (about 163 MB) to $ARCHIVE"
  if command -v curl >/dev/null 2>&1; then
    curl -fL --retry 3 -o "$PART" "$URL" ||
      { rm -f "$PART"; die "download failed (curl); check the network or fetch $URL by hand into $DIR"; }
  elif command -v wget >/dev/null 2>&1; then
    wget -O "$PART" "$URL" ||
      { rm -f "$PART"; die "download failed (wget); check the network or fetch $URL by hand into $DIR"; }
  else
    die "neither curl nor wget found: install one, or download $URL by hand into $DIR and re-run"
  fi
  mv -f "$PART" "$ARCHIVE"
  if ! md5_ok; then
    got="$(md5sum "$ARCHIVE" | cut -d' ' -f1)"
    mv -f "$ARCHIVE" "$ARCHIVE.bad"
    die "MD5 mismatch for $ARCHIVE: got $got, expected $MD5 (kept as $ARCHIVE.bad); download again"
  fi
  echo "MD5 ok"
fi

echo "extracting into $DIR"
tar -xzf "$ARCHIVE" -C "$DIR" || die "extracting $ARCHIVE failed"
have_all || die "$OUT is incomplete after extracting $ARCHIVE"

echo "CIFAR-10 ready. Train with:"
echo "  --data $OUT"
echo "$OUT"
