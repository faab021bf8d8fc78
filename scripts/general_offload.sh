#!/usr/bin/env bash
# general_offload.sh SOURCE DEVICE_ID
#   Offloads a drone/GoPro/mooring card with `ceti general_offload` into a fresh staging folder,
#   uploads that folder with `ceti s3upload`, and removes the staging folder only when the upload
#   exited 0 (the dated backup under DATA_DIR/backup/ always stays). Run it, or source it and call
#   `general_offload SOURCE DEVICE_ID`.
#   Environment: CETI (the ceti binary, default `ceti`), CETI_DATA_DIR (default ./data), and the
#   usual S3 settings (CETI_BUCKET, AWS_ENDPOINT_URL, AWS_* credentials) or the config file.

general_offload() (
    set -euo pipefail
    if [ "$#" -ne 2 ]; then
        echo "usage: general_offload.sh SOURCE DEVICE_ID" >&2
        exit 2
    fi
    local source="$1" device="$2"
    local ceti="${CETI:-ceti}" data="${CETI_DATA_DIR:-./data}"
    mkdir -p -- "$data"
    local staging
    staging="$(mktemp -d "$data/staging.XXXXXX")"
    "$ceti" general_offload --data-dir "$data" -- "$source" "$device" "$staging"
    local status=0
    "$ceti" s3upload -- "$staging" || status=$?
    if [ "$status" -eq 0 ]; then
        rm -rf -- "$staging"
        echo "uploaded; staging folder removed (backup kept under $data/backup/)"
    else
        echo "upload failed (exit $status): staging kept in $staging; rerun: $ceti s3upload '$staging'" >&2
        exit "$status"
    fi
)

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    general_offload "$@"
fi
