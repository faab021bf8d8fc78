#!/usr/bin/env bash
# no-warnings.sh CMD [ARGS...]
# Runs CMD (a `swift build`), showing its output as it goes. Exits with CMD's status when
# CMD fails; when it succeeds, exits 1 if its output holds a compiler warning about a file
# in this package's Sources/, listing each one once. SwiftPM reports warnings only for the
# files it compiles, so an incremental build checks only what changed; CI builds from
# scratch and so checks everything.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if (($# == 0)); then
    sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi

log="$(mktemp "${TMPDIR:-/tmp}/ceti-build.XXXXXX")"
trap 'rm -f -- "$log"' EXIT

set +e
"$@" 2>&1 | tee -- "$log"
status=${PIPESTATUS[0]}
set -e
((status == 0)) || exit "$status"

# Diagnostics start "/abs/path/file:line:col: warning: ..."; the compiler may name the
# package by its real path, and repeats a warning once per job that sees the file.
warnings="$(awk -v a="$REPO/Sources/" -v b="$(realpath -- "$REPO")/Sources/" \
    '(index($0, a) == 1 || index($0, b) == 1) && /:[0-9]+:[0-9]+: warning: /' "$log" | sort -u)"
if [[ -n "$warnings" ]]; then
    n="$(wc -l <<<"$warnings")"
    printf '\nno-warnings: %s compiler warning(s) in Sources/ (fix them; CI fails on any):\n' "$n" >&2
    printf '    %s\n' "$warnings" >&2
    exit 1
fi
