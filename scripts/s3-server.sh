#!/usr/bin/env bash
# A throwaway SeaweedFS S3 server for the integration tests (DESIGN.md §6).
#
#   s3-server.sh start DIR   start `weed mini` with its data, log, pid and s3.json in DIR,
#                            wait until S3 answers on 127.0.0.1:8333, create the buckets
#                            named by CETI_TEST_BUCKETS (comma/space separated,
#                            default "ceti-test")
#   s3-server.sh env DIR     print `export` lines for the server started in DIR
#   s3-server.sh stop DIR    stop it (process group, then any stray weed using DIR)
#
# The S3 port is fixed (8333), and weed opens about a dozen more loopback ports
# (8888 9333 9340 18888 19333 19340 18333 7333 8181 9101 23646 33646; when one of
# those is busy weed silently takes the next free one), so only one server can run
# per network namespace: `start` refuses to run when 8333 is taken. weed's unix
# sockets /tmp/seaweedfs-*-PORT.sock are kept private (DIR/tmp bind-mounted on /tmp
# in a mount namespace of its own, wherever DIR is, /tmp included) where unshare is
# allowed, i.e. as root.
# CETI_S3_STOP_GRACE: seconds from SIGTERM to SIGKILL in `stop` (default 5).
# Needs scripts/deps.sh to have run (uses $REPO/.venv/bin/weed and the venv's boto3).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
WEED="${CETI_WEED:-$VENV/bin/weed}"
PY="$VENV/bin/python"
HOST=127.0.0.1
S3_PORT=8333
ENDPOINT="http://$HOST:$S3_PORT"
REGION=us-east-1
START_TIMEOUT=30
STOP_GRACE="${CETI_S3_STOP_GRACE:-5}"   # seconds between SIGTERM and SIGKILL
OTHER_PORTS=(8888 9333 9340 18888 19333 19340 18333 7333 8181 9101 23646 33646)
TMP_REAL="$(realpath -m /tmp)"

# Run in a fresh mount namespace as  sh -c "$ISOLATE" SCRATCH TMP PRIVATE KEEP... -- CMD...
# (all real paths): binds the dir PRIVATE on TMP (/tmp) and execs CMD. Covering /tmp hides
# everything below it, so each KEEP path (file or dir) below TMP -- DIR and the weed binary
# when the checkout is under /tmp -- is first bound into a tmpfs on SCRATCH (an empty dir
# outside /tmp) and, once /tmp is covered, bound back at its own path (a mount point made
# inside PRIVATE). Nothing outlives the namespace; SCRATCH is left empty.
ISOLATE='set -e
s=$0 t=$1; shift
mount -t tmpfs -o mode=0700,size=64k ceti-s3 "$s"
n=0
for p; do
    [ "$p" = -- ] && break
    n=$((n + 1))
    if [ -d "$p" ]; then mkdir "$s/$n"; else : >"$s/$n"; fi
    mount --bind "$p" "$s/$n"
done
mount --bind "$s/1" "$t"
umount "$s/1"
shift
i=2
while [ "$1" != -- ]; do
    case "$1/" in "$t"/*)
        if [ -d "$s/$i" ]; then mkdir -p "$1"; else mkdir -p "${1%/*}"; : >>"$1"; fi
        mount --bind "$s/$i" "$1" ;;
    esac
    umount "$s/$i"
    i=$((i + 1))
    shift
done
shift
umount "$s"
exec "$@"'

die() { printf 's3-server: %s\n' "$*" >&2; exit 1; }
note() { printf 's3-server: %s\n' "$*" >&2; }

usage() {
    sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

need_venv() {
    [[ -x "$WEED" ]] || die "$WEED not found: run scripts/deps.sh (make deps) first"
    [[ -x "$PY" ]] || die "$PY not found: run scripts/deps.sh (make deps) first"
}

# Absolute path of DIR without requiring it to exist.
abspath() { realpath -m -- "$1"; }

# True when nobody can bind HOST:PORT (someone listens there).
port_taken() {
    "$PY" - "$HOST" "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

who_listens() {  # best effort description of the listener on a port
    if command -v ss >/dev/null 2>&1; then
        ss -Hltnp "sport = :$1" 2>/dev/null | sed 's/^/    /' || true
    fi
}

alive() {  # pid exists and is not a zombie
    local st
    [[ -r "/proc/$1/stat" ]] || return 1
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# pids of weed processes whose arguments contain -dir=DIR/data
weed_pids_for() {
    local want="-dir=$1/data" p f arg0 found
    for f in /proc/[0-9]*/cmdline; do
        p="${f#/proc/}"; p="${p%/cmdline}"
        [[ "$p" == "$$" ]] && continue
        found=0; arg0=""
        while IFS= read -r -d '' a; do
            [[ -z "$arg0" ]] && arg0="$a"
            [[ "$a" == "$want" ]] && found=1
        done <"$f" 2>/dev/null || true
        if ((found)) && [[ "${arg0##*/}" == weed ]]; then echo "$p"; fi
    done
}

# Send SIG to the targets (pids, or -pgid), then wait up to T seconds for PIDS to end.
signal_and_wait() {  # SIG T "targets..." -- pids...
    local sig="$1" t="$2"; shift 2
    local targets=()
    while (($#)) && [[ "$1" != -- ]]; do targets+=("$1"); shift; done
    shift || true
    kill "-$sig" -- "${targets[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + t)) p any
    while :; do
        any=0
        for p in "$@"; do alive "$p" && any=1; done
        ((any)) || return 0
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

cmd_stop() {
    local dir; dir="$(abspath "$1")"
    local pidfile="$dir/weed.pid" pid=""
    [[ -f "$pidfile" ]] && pid="$(tr -dc 0-9 <"$pidfile")"
    if [[ -n "$pid" ]] && alive "$pid"; then
        local targets=("$pid") pgid
        pgid="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f3)" || pgid=""
        # weed was started with setsid, so it leads its own group: kill the group.
        if [[ "$pgid" == "$pid" ]]; then targets=("-$pid"); fi
        # After large uploads weed's volume server can hang in its graceful HTTP
        # shutdown for a minute; the data is throwaway, so don't wait long for it.
        if ! signal_and_wait TERM "$STOP_GRACE" "${targets[@]}" -- "$pid"; then
            note "weed (pid $pid) still running ${STOP_GRACE}s after SIGTERM; sending SIGKILL"
            signal_and_wait KILL 5 "${targets[@]}" -- "$pid" || note "pid $pid did not die"
        fi
    fi
    local strays
    strays="$(weed_pids_for "$dir" | tr '\n' ' ')"
    if [[ -n "${strays// /}" ]]; then
        note "stopping stray weed processes for $dir: $strays"
        # shellcheck disable=SC2086
        signal_and_wait TERM 10 $strays -- $strays || signal_and_wait KILL 5 $strays -- $strays || true
    fi
    rm -f -- "$pidfile"
}

cmd_env() {
    local dir; dir="$(abspath "$1")"
    [[ -f "$dir/s3.json" ]] || die "no $dir/s3.json: was the server started with '$0 start $dir'?"
    need_venv
    local keys ak sk buckets
    keys="$("$PY" -c 'import json,sys; c=json.load(open(sys.argv[1]))["identities"][0]["credentials"][0]; print(c["accessKey"], c["secretKey"])' "$dir/s3.json")"
    read -r ak sk <<<"$keys"
    buckets="$(cat "$dir/buckets" 2>/dev/null || true)"
    printf 'export AWS_ACCESS_KEY_ID=%q\n' "$ak"
    printf 'export AWS_SECRET_ACCESS_KEY=%q\n' "$sk"
    printf 'export AWS_REGION=%q\n' "$REGION"
    printf 'export AWS_DEFAULT_REGION=%q\n' "$REGION"
    printf 'export CETI_TEST_ENDPOINT=%q\n' "$ENDPOINT"
    printf 'export CETI_TEST_BUCKETS=%q\n' "$buckets"
}

cmd_start() {
    need_venv
    local dir; dir="$(abspath "$1")"
    mkdir -p -- "$dir/data"
    local pidfile="$dir/weed.pid"
    if [[ -f "$pidfile" ]]; then
        local old; old="$(tr -dc 0-9 <"$pidfile")"
        if [[ -n "$old" ]] && alive "$old"; then
            die "a server from $dir is already running (pid $old); '$0 stop $dir' first"
        fi
        rm -f -- "$pidfile"
    fi
    if port_taken "$S3_PORT"; then
        note "port $S3_PORT on $HOST is already in use by another process:"
        who_listens "$S3_PORT" >&2
        die "refusing to start: stop that server first (another SeaweedFS?); tests need $S3_PORT"
    fi
    local p taken=()
    for p in "${OTHER_PORTS[@]}"; do port_taken "$p" && taken+=("$p"); done
    if ((${#taken[@]})); then
        note "note: SeaweedFS ports already in use: ${taken[*]} (weed picks other ports for those)"
    fi

    # Fresh credentials for identity "tester".
    (umask 077 && "$PY" - "$dir/s3.json" <<'EOF'
import json, secrets, string, sys
def rnd(alphabet, n=40):
    return "".join(secrets.choice(alphabet) for _ in range(n))
cfg = {"identities": [{
    "name": "tester",
    "credentials": [{
        "accessKey": rnd(string.ascii_uppercase + string.digits),
        "secretKey": rnd(string.ascii_letters + string.digits),
    }],
    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
}]}
with open(sys.argv[1], "w") as f:
    json.dump(cfg, f)
EOF
    )

    local buckets="${CETI_TEST_BUCKETS-ceti-test}"
    buckets="$(tr ', ' '\n\n' <<<"$buckets" | sed '/^$/d' | paste -sd, -)"
    printf '%s\n' "$buckets" >"$dir/buckets"

    : >>"$dir/weed.log"
    mkdir -p -- "$dir/tmp"
    # weed talks to itself over unix sockets /tmp/seaweedfs-<component>-<port>.sock
    # (hard-wired, named by port only): two servers sharing /tmp, e.g. in two network
    # namespaces, delete and hijack each other's sockets. So, where we may, weed gets
    # a private mount namespace with DIR/tmp bind-mounted on /tmp (see ISOLATE).
    local isolate=() scratch=""
    scratch="$(mktemp -d /run/ceti-s3.XXXXXX 2>/dev/null || mktemp -d /var/tmp/ceti-s3.XXXXXX 2>/dev/null)" || scratch=""
    # shellcheck disable=SC2064  # expand now: the trap outlives this function's locals
    [[ -n "$scratch" ]] && trap "rmdir -- '$scratch' 2>/dev/null || true" EXIT
    isolate=(unshare --mount --propagation private sh -c "$ISOLATE" "$scratch" "$TMP_REAL" "$dir/tmp"
             "$dir" "$(realpath -e -- "$WEED")" --)
    if [[ -z "$scratch" ]] || ! "${isolate[@]}" true >/dev/null 2>&1; then
        isolate=()
        note "note: cannot unshare a mount namespace (not root?): weed uses the shared /tmp"
    fi
    # setsid: weed leads its own process group (stop kills the whole group) and gets
    # no terminal signals; the first sh records the pid weed keeps through the execs.
    # TMPDIR and -webdav.cacheDir keep glog files and the WebDAV cache in DIR/tmp.
    (cd "$dir" && export TMPDIR="$dir/tmp" && exec setsid sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
        "${isolate[@]}" \
        "$WEED" mini -dir="$dir/data" -ip="$HOST" -ip.bind="$HOST" \
        -s3.config="$dir/s3.json" -admin.ui=false -master.telemetry=false \
        -webdav.cacheDir="$dir/tmp" \
        </dev/null >>"$dir/weed.log" 2>&1) &

    local deadline=$((SECONDS + START_TIMEOUT)) pid=""
    fail() {
        note "$1"
        note "last lines of $dir/weed.log:"
        tail -n 30 "$dir/weed.log" | sed 's/^/    /' >&2 || true
        cmd_stop "$dir"
        exit 1
    }
    while :; do
        [[ -z "$pid" && -s "$pidfile" ]] && pid="$(tr -dc 0-9 <"$pidfile")"
        if [[ -n "$pid" ]] && ! alive "$pid"; then fail "weed exited during startup"; fi
        if [[ -n "$pid" ]] && "$PY" - "$HOST" "$S3_PORT" <<'EOF'
import http.client, sys
try:
    c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=2)
    c.request("GET", "/")
    c.getresponse().read()
except Exception:
    sys.exit(1)
EOF
        then break; fi
        ((SECONDS >= deadline)) && fail "S3 did not answer on $ENDPOINT within ${START_TIMEOUT}s"
        sleep 0.2
    done
    # weed quietly moves to another port when one is busy: make sure the server on
    # 8333 is ours (a concurrent start could have taken it).
    if command -v ss >/dev/null 2>&1; then
        local owner; owner="$(ss -Hltnp "sport = :$S3_PORT" 2>/dev/null || true)"
        if [[ "$owner" == *"pid="* && "$owner" != *"pid=$pid,"* ]]; then
            fail "port $S3_PORT is served by another process, not by our weed (pid $pid): $owner"
        fi
    fi

    eval "$(cmd_env "$dir")"
    if ! "$PY" - "$ENDPOINT" "$REGION" "$buckets" <<'EOF'
import sys, time
import boto3
from botocore.config import Config
endpoint, region, names = sys.argv[1], sys.argv[2], [n for n in sys.argv[3].split(",") if n]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
deadline = time.monotonic() + 20
while True:  # our credentials work: this is our server, and it is ready
    try:
        s3.list_buckets()
        break
    except Exception as e:
        if time.monotonic() > deadline:
            sys.exit(f"list_buckets with the fresh credentials failed: {e}")
        time.sleep(0.3)
for name in names:
    while True:
        try:
            s3.create_bucket(Bucket=name)
            break
        except s3.exceptions.BucketAlreadyOwnedByYou:
            break
        except Exception as e:  # the filer may still be coming up
            if time.monotonic() > deadline:
                sys.exit(f"cannot create bucket {name!r}: {e}")
            time.sleep(0.3)
EOF
    then fail "the server does not accept our credentials, or bucket creation failed"; fi
    note "S3 ready at $ENDPOINT (pid $pid, dir $dir, buckets: ${buckets:-none})"
}

(($# == 2)) || usage
case "$1" in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    env) cmd_env "$2" ;;
    *) usage ;;
esac
