#!/usr/bin/env bash
# tag.sh [CETI INGEST OPTIONS...]
# The boat's one-shot tag pipeline: `ceti ingest` with the operator's usual flags, everything it
# prints also appended to tag-<epoch>.log. The exit status is ceti's (0 done, 1 something
# failed and is listed, 2 usage or configuration error); rerun it after any interruption.
#
# Usual flags, each overridable by the environment:
#   --staging "$CETI_STAGING"   (default $HOME/ceti-staging) where pulled files wait
#   --backup  "$CETI_BACKUP"    (default /data-backup; set CETI_BACKUP= to keep no backup)
# Anything else goes on the command line, e.g. `tag.sh --clean` or `tag.sh -t wt-1a2b3c4d`.
# CETI_BIN (default: ceti on PATH) and CETI_LOG_DIR (default: the current directory) pick the
# binary and where the log goes. The bucket, credentials and tag password come from ceti's
# usual places (CETI_BUCKET, ~/.aws, CETI_TAG_PASSWORD, the config file).
set -uo pipefail

CETI="${CETI_BIN:-ceti}"
LOG="${CETI_LOG_DIR:-.}/tag-$(date +%s).log"
flags=(--staging "${CETI_STAGING:-$HOME/ceti-staging}")
backup="${CETI_BACKUP-/data-backup}"
[[ -n "$backup" ]] && flags+=(--backup "$backup")

mkdir -p -- "$(dirname -- "$LOG")" || exit 2
printf '# %s  %s ingest %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$CETI" "${flags[*]} $*" >>"$LOG" || exit 2
# stdout and stderr each keep their stream on the terminal; both land in the log.
"$CETI" ingest "${flags[@]}" "$@" > >(tee -a -- "$LOG") 2> >(tee -a -- "$LOG" >&2)
status=$?
wait
printf '# exit status %d\n' "$status" >>"$LOG"
exit "$status"
