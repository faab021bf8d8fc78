#!/usr/bin/env bash
# The demo behind `make demo`: run inside scripts/with-s3.sh (a local SeaweedFS on loopback).
# Starts a sample whale tag (a real OpenSSH sshd on 127.0.0.1 whose `hostname` is a tag's and
# whose /data holds generated raw audio and sensor CSVs), runs `ceti ingest` against it, shows
# the bucket, a manifest and `ceti status`, reruns (nothing to do), cleans the tag, and stops
# the tag again. Needs root: the sample tag runs sshd as a user of its own.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CETI="${CETI_BIN:-$REPO/.build/release/ceti}"
AWS="$REPO/.venv/bin/aws"
PY="$REPO/.venv/bin/python"
BUCKET="${CETI_TEST_BUCKETS%%,*}"
TAG_NAME=wt-0d3e0a1b

[[ "$(id -u)" == 0 ]] || { echo "make demo needs root: the sample tag runs its own sshd and user (try: sudo make demo)" >&2; exit 2; }
mkdir -p "$REPO/.tmp"
WORK="$(mktemp -d "$REPO/.tmp/demo.XXXXXX")"
chmod 755 "$WORK"
TAG="$WORK/tag"
cleanup() {
    bash "$REPO/scripts/tag-sim.sh" stop "$TAG" >/dev/null 2>&1 || true
    rm -rf -- "$WORK"
}
trap cleanup EXIT
export CETI_LEDGER="$WORK/ledger.sqlite" XDG_CONFIG_HOME="$WORK/config" CETI_TAG_PASSWORD=ceticeti

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting a sample tag $TAG_NAME on 127.0.0.1 (OpenSSH sshd, its data at /data)"
bash "$REPO/scripts/tag-sim.sh" loopback "$TAG" "$TAG_NAME"
PORT="$(cat "$TAG/port")"

say "Generating its recordings: 3 raw hydrophone files (3 ch, 16-bit BE, 96 kHz) and sensor CSVs"
"$PY" - "$TAG/data" <<'PYEOF'
import math, os, random, sys, time
d = sys.argv[1]
rnd = random.Random(7)
for k in range(3):
    frames = 96_000 * 10  # 10 seconds (a tag writes 5-minute files of ~172 MB)
    noise = bytearray(os.urandom(frames * 6))
    # Quiet noise plus a "click" train: the low byte of every sample random, a few loud bursts.
    pcm = bytearray(frames * 6)
    pcm[1::2] = noise[1::2]
    for c in range(0, frames, 48_000):
        for i in range(c, min(frames, c + 400)):
            v = int(12000 * math.sin(i / 3.0)) & 0xFFFF
            pcm[i * 6:i * 6 + 2] = v.to_bytes(2, "big")
    open(f"{d}/{1700000000000 + k * 300_000}.raw", "wb").write(pcm)
for name, rows in [("data_battery.csv", 2_000), ("data_pressure_temperature.csv", 50_000), ("data_imu_acc_01.csv", 200_000)]:
    with open(f"{d}/{name}", "w") as f:
        f.write("timestamp,value\n")
        f.writelines(f"{1700000000000 + i * 10},{rnd.gauss(0, 1):.5f}\n" for i in range(rows))
open(f"{d}/data_tag_info_1700000000.yaml", "w").write("tag: wt-0d3e0a1b\nfirmware: 2.3\n")
old = time.time() - 600
for n in os.listdir(d):
    os.chmod(f"{d}/{n}", 0o644)
    os.utime(f"{d}/{n}", (old, old))
PYEOF
ls -l "$TAG/data" | sed 's/^/  /'

ingest() {
    "$CETI" ingest -t "127.0.0.1:$PORT" --user cetitag --staging "$WORK/staging" --backup "$WORK/backup" \
        --endpoint-url "$CETI_TEST_ENDPOINT" --bucket "$BUCKET" "$@"
}

say "ceti ingest -t 127.0.0.1:$PORT --backup ... (pull → FLAC/gzip → S3 → backup → manifest)"
ingest

say "What S3 holds now (listed with the AWS CLI, an independent client)"
"$AWS" --endpoint-url "$CETI_TEST_ENDPOINT" s3 ls --recursive "s3://$BUCKET/"

MANIFEST="$("$AWS" --endpoint-url "$CETI_TEST_ENDPOINT" s3 ls --recursive "s3://$BUCKET/" | awk '/manifest.json$/ { print $4 }')"
say "The start of s3://$BUCKET/$MANIFEST"
{ "$AWS" --endpoint-url "$CETI_TEST_ENDPOINT" s3 cp "s3://$BUCKET/$MANIFEST" - || true; } | head -n 24

say "ceti status (from the ledger)"
"$CETI" status

say "A second run: everything is already ingested, nothing is sent"
ingest

say "ceti ingest --clean: the tag is wiped of what is proven in S3, nothing else"
ingest --clean
echo "left on the tag: $(ls -A "$TAG/data" | wc -l) file(s)"
say "Demo finished"
