#!/usr/bin/env bash
# with-s3.sh CMD [ARGS...]
# Starts a throwaway SeaweedFS (scripts/s3-server.sh) in a fresh directory under
# $REPO/.tmp/, exports AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# AWS_DEFAULT_REGION, CETI_TEST_ENDPOINT and CETI_TEST_BUCKETS, runs CMD, and always
# stops the server again. Exits with CMD's status.
#
# The directory is removed afterwards; when CMD fails its weed.log is kept (the path
# is printed). CETI_KEEP_S3_DIR=1 keeps the whole directory.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVER="$REPO/scripts/s3-server.sh"

if (($# == 0)); then
    sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi

mkdir -p "$REPO/.tmp"
DIR="$(mktemp -d "$REPO/.tmp/s3.XXXXXX")"
status=1

cleanup() {
    trap - EXIT INT TERM
    bash "$SERVER" stop "$DIR" || true
    if [[ "${CETI_KEEP_S3_DIR:-}" == 1 ]]; then
        printf 'with-s3: kept %s\n' "$DIR" >&2
    elif ((status != 0)) && [[ -s "$DIR/weed.log" ]]; then
        rm -rf -- "$DIR/data"
        printf 'with-s3: server log kept in %s/weed.log\n' "$DIR" >&2
    else
        rm -rf -- "$DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM

bash "$SERVER" start "$DIR"
eval "$(bash "$SERVER" env "$DIR")"

set +e
"$@"
status=$?
set -e
exit "$status"
