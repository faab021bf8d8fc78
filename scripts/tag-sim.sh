#!/usr/bin/env bash
# Simulated whale tags for the whaletag tests (DESIGN.md §1 and §6). Run as root.
#
#   tag-sim.sh loopback DIR [HOSTNAME]
#                             one real OpenSSH sshd on 127.0.0.1 at a free port in 2222..2299
#                             (written to DIR/port), own ed25519 host key DIR/host_key, client
#                             key DIR/client_key (in DIR/authorized_keys), log DIR/sshd.log,
#                             pid DIR/sshd.pid; the tag's data dir is DIR/data (mode 777).
#                             Tests pass `--remote-dir DIR/data` (the host's /data is not ours).
#                             With HOSTNAME, sshd runs in UTS and mount namespaces of its own
#                             where `hostname` answers HOSTNAME (e.g. wt-0a1b2c3d) and DIR/data
#                             is also bind-mounted on /data: a tag on loopback, whose files are
#                             at /data as on a real tag (created on the host when missing).
#   tag-sim.sh rekey DIR      (loopback) new host key, sshd restarted on the same port
#   tag-sim.sh systemd DIR    (loopback) give the tag a fake `sudo` (runs its arguments as the
#                             tag user), `systemctl` and `systemd-run` (first on the tag user's
#                             PATH, for this tag only; sshd restarted on the same port). State in
#                             DIR/systemd (owned by the tag user): UNIT.state (active/inactive;
#                             ceti-tag-data-capture starts active), timers/NAME.pid (armed
#                             transient timers: a background sleep that runs the command after
#                             --on-active unless `systemctl stop NAME.timer` cancels it),
#                             events.log (one line per action: `EPOCH start|stop UNIT [by timer
#                             NAME]`, `EPOCH arm NAME SECONDS`, `EPOCH cancel NAME`, `EPOCH
#                             fire NAME`).
#   tag-sim.sh lan DIR N      a LAN in network namespaces: hub `ceti-hub` (bridge br0,
#                             10.77.0.1/24); tags `ceti-tag1..N` at 10.77.0.(10+i) with sshd
#                             on port 22, hostnames wt-1a2b3c4d, wt-b827eb1a2b3c, ... and
#                             their own /data (DIR/tagI/data bind-mounted in a private mount
#                             namespace); `ceti-host9` 10.77.0.9 (sshd, hostname
#                             laptop-backup: SSH but not a tag); `ceti-web8` 10.77.0.8 (a
#                             non-SSH TCP service on port 22). Summary in DIR/lan.json.
#                             Creates /data on the host when missing (the mount point).
#   tag-sim.sh hub-exec CMD...  run CMD inside the hub namespace (environment preserved).
#                             The host namespace never talks to 10.77.0.x: use this.
#   tag-sim.sh stop DIR       stop everything started from DIR (sshd and their sessions, the
#                             web service), delete the namespaces it created. Idempotent.
#   tag-sim.sh available      exit 0 when root and network namespaces (with a bridge, a veth
#                             pair and unshare) really work; else exit 1 with the reason.
#
# Every sshd logs in user `cetitag` (home /home/cetitag, password `ceticeti`, shell
# /bin/bash; created idempotently) by password or with DIR/client_key. sshd reads
# DIR/authorized_keys and the user writes DIR/data, so every parent of DIR must be
# traversable by others (pytest's 0700 tmp dirs are not: `loopback`/`lan` refuse them;
# DIR itself is given o+x).
# A `lan` first deletes stale namespaces of the same names (a killed earlier run).
# Startup is bounded (CETI_TAG_SIM_TIMEOUT seconds, default 10).
set -euo pipefail

SSHD=/usr/sbin/sshd
TAG_USER=cetitag
TAG_PASSWORD=ceticeti
TAG_HOME=/home/cetitag
PORT_MIN=2222
PORT_MAX=2299
START_TIMEOUT="${CETI_TAG_SIM_TIMEOUT:-10}"
STOP_GRACE=5
HUB=ceti-hub
NET=10.77.0
HUB_ADDR="$NET.1"
HOST9_NS=ceti-host9
HOST9_ADDR="$NET.9"
HOST9_NAME=laptop-backup
WEB8_NS=ceti-web8
WEB8_ADDR="$NET.8"
MAX_TAGS=50
LOCK=/run/lock/ceti-tag-sim.lock
OWNERS=/run/ceti-tag-sim   # OWNERS/NS holds the DIR that created namespace NS
if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY=python3; fi

die() { printf 'tag-sim: %s\n' "$*" >&2; exit 1; }
note() { printf 'tag-sim: %s\n' "$*" >&2; }

usage() {
    sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

abspath() { realpath -m -- "$1"; }

need_root() { [[ "$(id -u)" == 0 ]] || die "must run as root (creates a user, starts sshd${1:+, $1})"; }

alive() {  # pid exists and is not a zombie
    local st
    [[ -n "${1:-}" && -r "/proc/$1/stat" ]] || return 1
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# PID is alive and its arguments mention DIR/ (guards pid files against pid reuse).
ours() {  # PID DIR
    alive "$1" || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2/"
}

readpid() { [[ -f "$1" ]] && tr -dc 0-9 <"$1" || true; }

# All descendants of the given pids (children first seen through /proc/*/stat ppid).
descendants() {
    (($#)) || return 0
    "$PY" - "$@" <<'EOF'
import os, sys
kids = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        with open(f"/proc/{p}/stat") as f:
            ppid = f.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        continue
    kids.setdefault(ppid, []).append(p)
out, todo = [], list(sys.argv[1:])
while todo:
    for c in kids.get(todo.pop(), []):
        if c not in out:
            out.append(c); todo.append(c)
print(" ".join(out))
EOF
}

# TERM the pids, wait up to STOP_GRACE, then KILL what is left (and wait up to 5 s).
kill_pids() {
    local p live=()
    for p in "$@"; do alive "$p" && live+=("$p"); done
    ((${#live[@]})) || return 0
    kill -TERM "${live[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_GRACE)) any
    while :; do
        any=0
        for p in "${live[@]}"; do alive "$p" && any=1; done
        ((any)) || return 0
        ((SECONDS >= deadline)) && break
        sleep 0.1
    done
    note "still running ${STOP_GRACE}s after SIGTERM: ${live[*]}; sending SIGKILL"
    kill -KILL "${live[@]}" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while :; do
        any=0
        for p in "${live[@]}"; do alive "$p" && any=1; done
        ((any)) || return 0
        ((SECONDS >= deadline)) && { note "pids did not die: ${live[*]}"; return 1; }
        sleep 0.1
    done
}

# pids of processes whose arguments include a path inside DIR (our sshd's `-f DIR/...`,
# the web service's `DIR/...`); session children rename themselves, see descendants().
pids_using_dir() {
    "$PY" - "$1/" "$$" <<'EOF'
import os, sys
prefix, me = sys.argv[1], {sys.argv[2], str(os.getpid()), str(os.getppid())}
for p in os.listdir("/proc"):
    if not p.isdigit() or p in me:
        continue
    try:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        continue
    if any(a.decode(errors="replace").startswith(prefix) for a in args[1:]):
        print(p)
EOF
}

ns_exists() { [[ -e "/run/netns/$1" ]] || ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }

# Kill every process in namespace NS, then delete it.
ns_delete() {
    local ns="$1"
    ns_exists "$ns" || return 0
    local pids
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')" || pids=""
    # shellcheck disable=SC2086
    [[ -n "${pids// /}" ]] && kill_pids $pids
    ip netns del "$ns" 2>/dev/null || { sleep 0.2; ip netns del "$ns" 2>/dev/null; } \
        || note "could not delete namespace $ns"
    rm -f -- "$OWNERS/$ns"
}

# ---- the user and keys ------------------------------------------------------------
ensure_user() {
    mkdir -p /run/lock
    (
        flock -w 30 9 || die "could not lock $LOCK"
        if ! getent passwd "$TAG_USER" >/dev/null; then
            useradd --system --create-home --home-dir "$TAG_HOME" --shell /bin/bash \
                --comment "ceti simulated whale tag" "$TAG_USER" \
                || die "useradd $TAG_USER failed"
            note "created user $TAG_USER"
        fi
        local home shell
        home="$(getent passwd "$TAG_USER" | cut -d: -f6)"
        shell="$(getent passwd "$TAG_USER" | cut -d: -f7)"
        [[ "$home" == "$TAG_HOME" ]] || usermod --home "$TAG_HOME" "$TAG_USER"
        [[ "$shell" == /bin/bash ]] || usermod --shell /bin/bash "$TAG_USER"
        if [[ ! -d "$TAG_HOME" ]]; then
            mkdir -p "$TAG_HOME"
            cp -rT /etc/skel "$TAG_HOME" 2>/dev/null || true
            chown -R "$TAG_USER:" "$TAG_HOME"
        fi
        chmod 755 "$TAG_HOME"
        printf '%s:%s\n' "$TAG_USER" "$TAG_PASSWORD" | chpasswd || die "chpasswd failed"
        usermod --unlock "$TAG_USER" >/dev/null 2>&1 || true
        chage -E -1 -M -1 "$TAG_USER" >/dev/null 2>&1 || true
    ) 9>>"$LOCK"
}

prepare_run_sshd() {
    [[ -x "$SSHD" ]] || die "$SSHD not found: run scripts/deps.sh (openssh-server)"
    mkdir -p /run/sshd
    chmod 755 /run/sshd
}

new_host_key() {  # FILE
    rm -f -- "$1" "$1.pub"
    ssh-keygen -q -t ed25519 -N '' -C "ceti-tag-sim host key" -f "$1" </dev/null >/dev/null
}

fingerprint() { ssh-keygen -l -E sha256 -f "$1" | awk '{print $2}'; }

client_key() {  # DIR: client key pair and authorized_keys
    local dir="$1"
    if [[ ! -f "$dir/client_key" || ! -f "$dir/client_key.pub" ]]; then
        rm -f -- "$dir/client_key" "$dir/client_key.pub"
        ssh-keygen -q -t ed25519 -N '' -C "ceti-tag-sim client" -f "$dir/client_key" </dev/null >/dev/null
    fi
    cp -- "$dir/client_key.pub" "$dir/authorized_keys"
    chmod 644 "$dir/authorized_keys" "$dir/client_key.pub"
    chmod 600 "$dir/client_key"
}

# The tag user must read DIR/authorized_keys (sshd opens it as the user) and, for
# loopback, write DIR/data.
check_reachable() {  # DIR [DATA]
    local dir="$1" data="${2:-}"
    if ! runuser -u "$TAG_USER" -- test -r "$dir/authorized_keys"; then
        die "user $TAG_USER cannot read $dir/authorized_keys: a parent directory of $dir is not
    traversable by others (pytest's tmp dirs are 0700); use a dir under a world-traversable path"
    fi
    if [[ -n "$data" ]] && ! runuser -u "$TAG_USER" -- test -w "$data" -a -x "$data"; then
        die "user $TAG_USER cannot write $data"
    fi
}

sshd_supports() {  # OPTION=VALUE: does this sshd know the option?
    "$SSHD" -t -f /dev/null -o "$1" -h "$PROBE_KEY" >/dev/null 2>&1
}

write_sshd_config() {  # FILE LISTEN(addr:port) HOSTKEY PIDFILE AUTHKEYS
    local file="$1" listen="$2" hostkey="$3" pidfile="$4" authkeys="$5"
    cat >"$file" <<EOF
# generated by scripts/tag-sim.sh
ListenAddress $listen
HostKey $hostkey
PidFile $pidfile
AuthorizedKeysFile $authkeys
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
PermitEmptyPasswords no
Subsystem sftp internal-sftp
MaxStartups 100:30:200
MaxSessions 20
UseDNS no
PrintMotd no
PrintLastLog no
LoginGraceTime 30
X11Forwarding no
LogLevel VERBOSE
EOF
    # OpenSSH >= 9.8 throttles sources that fail to log in; tests log in wrongly on purpose.
    if [[ -n "${PROBE_KEY:-}" ]] && sshd_supports "PerSourcePenalties=no"; then
        echo "PerSourcePenalties no" >>"$file"
    fi
    # `tag-sim.sh systemd DIR` installed fake sudo/systemctl/systemd-run: first on the PATH.
    local bin; bin="$(dirname -- "$file")/bin"
    if [[ -x "$bin/systemctl" ]]; then
        echo "SetEnv PATH=$bin:/usr/local/bin:/usr/bin:/bin" >>"$file"
    fi
    "$SSHD" -t -f "$file" || die "sshd rejects $file"
}

make_probe_key() {  # a throwaway host key for `sshd -t` probes
    PROBE_KEY="$1/.probe_key"
    [[ -f "$PROBE_KEY" ]] || new_host_key "$PROBE_KEY"
}

# Start a daemon in the background, detached (own session), stdin from /dev/null,
# output appended to LOG. The pid (kept through the execs) goes to LAUNCHPID.
launch() {  # LAUNCHPID LOG CMD...
    local launchpid="$1" log="$2"; shift 2
    rm -f -- "$launchpid"
    : >>"$log"
    setsid sh -c 'echo $$ >"$0"; exec "$@"' "$launchpid" "$@" </dev/null >>"$log" 2>&1 &
}

# Wait until sshd wrote its PidFile (it does so after binding the listen sockets).
# Returns 1 when it died, 2 on timeout.
wait_sshd() {  # LAUNCHPID PIDFILE DEADLINE(SECONDS value)
    local launchpid="$1" pidfile="$2" deadline="$3" pid=""
    while :; do
        [[ -z "$pid" ]] && pid="$(readpid "$launchpid")"
        if [[ -n "$pid" ]]; then
            alive "$pid" || return 1
            [[ "$(readpid "$pidfile")" == "$pid" ]] && return 0
        fi
        ((SECONDS >= deadline)) && return 2
        sleep 0.05
    done
}

log_tail() { note "last lines of $1:"; tail -n 15 "$1" 2>/dev/null | sed 's/^/    /' >&2 || true; }

port_free() {  # PORT on 127.0.0.1
    "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

banner_ok() {  # HOST PORT: first bytes are an SSH banner
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    s.settimeout(2)
    sys.exit(0 if s.recv(64).startswith(b"SSH-") else 1)
except OSError:
    sys.exit(1)
EOF
}

# ---- loopback ---------------------------------------------------------------------
stop_loopback_sshd() {  # DIR
    local dir="$1" pid pids=()
    for f in "$dir/sshd.launch.pid" "$dir/sshd.pid"; do
        pid="$(readpid "$f")"
        ours "$pid" "$dir" && pids+=("$pid")
    done
    if ((${#pids[@]})); then
        local kids
        kids="$(descendants "${pids[@]}")"
        # the listener and its sessions (which run in sessions of their own)
        # shellcheck disable=SC2086
        kill_pids "${pids[@]}" $kids || true
    fi
    rm -f -- "$dir/sshd.launch.pid" "$dir/sshd.pid"
}

start_loopback_sshd() {  # DIR PORT -> 0 ok, 1 port taken, dies otherwise
    local dir="$1" port="$2" deadline=$((SECONDS + START_TIMEOUT)) rc=0
    write_sshd_config "$dir/sshd_config" "127.0.0.1:$port" "$dir/host_key" "$dir/sshd.pid" \
        "$dir/authorized_keys"
    local mark; mark="$( { wc -l <"$dir/sshd.log"; } 2>/dev/null || echo 0)"
    if [[ -s "$dir/hostname" ]]; then
        mkdir -p /data
        launch "$dir/sshd.launch.pid" "$dir/sshd.log" unshare --uts --mount --propagation private sh -c '
            set -e
            hostname "$1"
            mount --bind "$2" /data
            shift 2
            exec "$@"' sh "$(cat "$dir/hostname")" "$dir/data" "$SSHD" -D -e -f "$dir/sshd_config"
    else
        launch "$dir/sshd.launch.pid" "$dir/sshd.log" "$SSHD" -D -e -f "$dir/sshd_config"
    fi
    wait_sshd "$dir/sshd.launch.pid" "$dir/sshd.pid" "$deadline" || rc=$?
    if ((rc == 1)) && tail -n "+$((mark + 1))" "$dir/sshd.log" | grep -qiE 'address already in use|cannot bind'; then
        stop_loopback_sshd "$dir"
        return 1
    fi
    if ((rc != 0)); then
        log_tail "$dir/sshd.log"
        stop_loopback_sshd "$dir"
        ((rc == 2)) && die "sshd did not come up on 127.0.0.1:$port within ${START_TIMEOUT}s"
        die "sshd exited during startup"
    fi
    while ! banner_ok 127.0.0.1 "$port"; do
        if ((SECONDS >= deadline)); then
            log_tail "$dir/sshd.log"; stop_loopback_sshd "$dir"
            die "no SSH banner on 127.0.0.1:$port within ${START_TIMEOUT}s"
        fi
        sleep 0.05
    done
    return 0
}

cmd_loopback() {
    need_root
    local dir; dir="$(abspath "$1")"
    mkdir -p -- "$dir"
    if [[ -n "${2:-}" ]]; then
        [[ "$2" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "hostname '$2': lowercase letters, digits and '-' only"
        echo "$2" >"$dir/hostname"
    else
        rm -f -- "$dir/hostname"
    fi
    chmod o+x "$dir"   # the tag user traverses it (authorized_keys, data)
    stop_loopback_sshd "$dir"
    prepare_run_sshd
    ensure_user
    mkdir -p -- "$dir/data"
    chmod 777 "$dir/data"
    make_probe_key "$dir"
    [[ -f "$dir/host_key" ]] || new_host_key "$dir/host_key"
    client_key "$dir"
    check_reachable "$dir" "$dir/data"
    local port
    for ((port = PORT_MIN; port <= PORT_MAX; port++)); do
        port_free "$port" || continue
        if start_loopback_sshd "$dir" "$port"; then
            echo "$port" >"$dir/port"
            echo loopback >"$dir/mode"
            note "sshd ready on 127.0.0.1:$port (pid $(readpid "$dir/sshd.pid"), dir $dir," \
                "host key $(fingerprint "$dir/host_key.pub"))"
            return 0
        fi
    done
    die "no free port in $PORT_MIN..$PORT_MAX on 127.0.0.1"
}

cmd_rekey() {
    need_root
    local dir; dir="$(abspath "$1")"
    [[ "$(cat "$dir/mode" 2>/dev/null)" == loopback && -s "$dir/port" ]] \
        || die "$dir holds no loopback tag ('$0 loopback $dir' first)"
    local port; port="$(readpid "$dir/port")"
    local old; old="$(fingerprint "$dir/host_key.pub")"
    stop_loopback_sshd "$dir"
    prepare_run_sshd
    make_probe_key "$dir"
    new_host_key "$dir/host_key"
    local deadline=$((SECONDS + START_TIMEOUT))
    until start_loopback_sshd "$dir" "$port"; do   # the old sockets may linger briefly
        ((SECONDS >= deadline)) && die "port $port was taken while restarting sshd"
        sleep 0.2
    done
    note "sshd restarted on 127.0.0.1:$port with a new host key: $old -> $(fingerprint "$dir/host_key.pub")"
}

# ---- fake systemd for loopback tags ---------------------------------------------------
write_fake_systemd() {  # DIR: DIR/bin/{sudo,systemctl,systemd-run,.timer-fire}, state in DIR/systemd
    local dir="$1" bin="$1/bin" st="$1/systemd"
    mkdir -p -- "$bin" "$st/timers"
    cat >"$bin/sudo" <<'SUDO'
#!/bin/sh
# fake sudo of a simulated tag: runs its arguments as the tag user
while [ $# -gt 0 ]; do
    case "$1" in
        -n | -E | -H) shift ;;
        --) shift; break ;;
        -*) echo "sudo: option $1 not simulated" >&2; exit 1 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: sudo COMMAND..." >&2; exit 1; }
exec "$@"
SUDO
    {
        echo '#!/bin/bash'
        echo "# fake systemctl of a simulated tag (state in $st)"
        echo "ST=$(printf '%q' "$st")"
        cat <<'SYSTEMCTL'
log() { echo "$(date +%s.%N) $*" >>"$ST/events.log"; }
op="${1:-}"; shift || true
[[ $# -ge 1 ]] || { echo "systemctl: $op needs a unit" >&2; exit 1; }
rc=0
for unit in "$@"; do
    case "$op" in
        start)
            # Logged first: a test that sees the unit active then finds its start in the log.
            log "start $unit${CETI_FAKE_TIMER:+ by timer $CETI_FAKE_TIMER}"
            echo active >"$ST/$unit.state" ;;
        stop)
            if [[ "$unit" == *.timer ]]; then
                name="${unit%.timer}"
                pid="$(cat "$ST/timers/$name.pid" 2>/dev/null || true)"
                if [[ -z "$pid" ]]; then
                    echo "Failed to stop $unit: Unit $unit not loaded." >&2; rc=5; continue
                fi
                rm -f -- "$ST/timers/$name.pid"
                kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
                log "cancel $name"
            else
                log "stop $unit"
                echo inactive >"$ST/$unit.state"
            fi ;;
        is-active)
            state="$(cat "$ST/$unit.state" 2>/dev/null || echo inactive)"
            echo "$state"
            [[ "$state" == active ]] || rc=3 ;;
        *) echo "systemctl: $op not simulated" >&2; exit 1 ;;
    esac
done
exit $rc
SYSTEMCTL
    } >"$bin/systemctl"
    {
        echo '#!/bin/bash'
        echo "# fake systemd-run of a simulated tag: transient timers only (--on-active, --unit)"
        echo "ST=$(printf '%q' "$st")"
        echo "BIN=$(printf '%q' "$bin")"
        cat <<'SYSTEMDRUN'
log() { echo "$(date +%s.%N) $*" >>"$ST/events.log"; }
secs="" name=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --on-active=*) secs="${1#--on-active=}" ;;
        --unit=*) name="${1#--unit=}" ;;
        --timer-property=* | --quiet | -q | --collect | -G) ;;
        --) shift; break ;;
        -*) echo "systemd-run: option $1 not simulated" >&2; exit 1 ;;
        *) break ;;
    esac
    shift
done
secs="${secs%s}"
[[ "$secs" =~ ^[0-9]+$ && -n "$name" && $# -ge 1 ]] \
    || { echo "systemd-run: give --on-active=SECONDS --unit=NAME COMMAND..." >&2; exit 1; }
pidfile="$ST/timers/$name.pid"
if [[ -s "$pidfile" ]]; then
    echo "Failed to start transient timer unit: Unit $name.timer already exists." >&2; exit 1
fi
setsid bash "$BIN/.timer-fire" "$ST" "$name" "$secs" "$@" </dev/null >/dev/null 2>&1 &
for ((i = 0; i < 500; i++)); do [[ -s "$pidfile" ]] && break; sleep 0.01; done
[[ -s "$pidfile" ]] || { echo "systemd-run: the timer did not start" >&2; exit 1; }
log "arm $name $secs"
SYSTEMDRUN
    } >"$bin/systemd-run"
    cat >"$bin/.timer-fire" <<'FIRE'
# fake transient timer: ST NAME SECONDS COMMAND... (started by the fake systemd-run in a
# session of its own; `systemctl stop NAME.timer` kills the session)
ST="$1" name="$2" secs="$3"; shift 3
echo $$ >"$ST/timers/$name.pid"
sleep "$secs"
[[ "$(cat "$ST/timers/$name.pid" 2>/dev/null)" == "$$" ]] || exit 0
rm -f -- "$ST/timers/$name.pid"
echo "$(date +%s.%N) fire $name" >>"$ST/events.log"
CETI_FAKE_TIMER="$name" exec "$@"
FIRE
    chmod 755 "$bin/sudo" "$bin/systemctl" "$bin/systemd-run" "$bin/.timer-fire"
    [[ -f "$st/ceti-tag-data-capture.state" ]] || echo active >"$st/ceti-tag-data-capture.state"
    : >>"$st/events.log"
    chown -R "$TAG_USER:" "$st"
}

cmd_systemd() {
    need_root
    local dir; dir="$(abspath "$1")"
    [[ "$(cat "$dir/mode" 2>/dev/null)" == loopback && -s "$dir/port" ]] \
        || die "$dir holds no loopback tag ('$0 loopback $dir' first)"
    local port; port="$(readpid "$dir/port")"
    write_fake_systemd "$dir"
    stop_loopback_sshd "$dir"
    prepare_run_sshd
    make_probe_key "$dir"
    local deadline=$((SECONDS + START_TIMEOUT))
    until start_loopback_sshd "$dir" "$port"; do   # the old sockets may linger briefly
        ((SECONDS >= deadline)) && die "port $port was taken while restarting sshd"
        sleep 0.2
    done
    note "fake sudo/systemctl/systemd-run on the PATH of the tag on 127.0.0.1:$port (state in $dir/systemd)"
}

# ---- LAN in network namespaces ----------------------------------------------------
tag_hostname() {  # I -> wt-<hex>: 8 hex (CPU serial) for odd I, 12 hex (WiFi MAC) for even I
    local i="$1"
    if ((i == 1)); then echo wt-1a2b3c4d
    elif ((i == 2)); then echo wt-b827eb1a2b3c
    elif ((i % 2)); then printf 'wt-%08x\n' $((0x1a2b3c4d + i * 0x10101))
    else printf 'wt-b827eb%06x\n' $((0x1a2b3c + i * 0x101))
    fi
}

probe_netns() {  # prints the reason and returns 1 when namespaces don't work
    [[ "$(id -u)" == 0 ]] || { echo "not root"; return 1; }
    command -v ip >/dev/null 2>&1 || { echo "no 'ip' (iproute2)"; return 1; }
    command -v unshare >/dev/null 2>&1 || { echo "no 'unshare' (util-linux)"; return 1; }
    command -v hostname >/dev/null 2>&1 || { echo "no 'hostname'"; return 1; }
    [[ -x "$SSHD" ]] || { echo "no $SSHD (openssh-server)"; return 1; }
    local ns="ceti-probe-$$" out rc=0
    # (an && chain: `set -e` does not work inside a command substitution tested with ||)
    out="$(ip netns add "$ns" 2>&1 &&
        ip -n "$ns" link set lo up 2>&1 &&
        ip -n "$ns" link add ceti-pbr type bridge 2>&1 &&
        ip -n "$ns" link add ceti-pv0 type veth peer name ceti-pv1 2>&1 &&
        ip -n "$ns" link set ceti-pv0 master ceti-pbr 2>&1 &&
        ip netns exec "$ns" unshare --uts --mount sh -c 'hostname wt-probe && mount -t tmpfs none /mnt' 2>&1
    )" || rc=$?
    ip netns del "$ns" >/dev/null 2>&1 || true
    if ((rc != 0)); then
        echo "ip netns / bridge / veth / unshare failed: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
}

cmd_available() {
    local why
    if why="$(probe_netns)"; then return 0; fi
    printf '%s\n' "$why" >&2
    return 1
}

ns_record() {  # DIR NS: remember that DIR created NS (before creating it)
    grep -qx -- "$2" "$1/namespaces" 2>/dev/null || echo "$2" >>"$1/namespaces"
    mkdir -p "$OWNERS"
    printf '%s\n' "$1" >"$OWNERS/$2"
}

# Does namespace NS (of a fixed name) belong to DIR? A later `lan` from another DIR
# takes the names over; stopping the old DIR then must not touch them.
ns_owned_by() {  # NS DIR
    [[ "$(cat "$OWNERS/$1" 2>/dev/null)" == "$2" ]]
}

add_host_ns() {  # DIR NS ADDR HUBVETH
    local dir="$1" ns="$2" addr="$3" veth="$4"
    ns_record "$dir" "$ns"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Both ends are created directly in the hub and in NS: nothing in the host namespace.
    ip -n "$HUB" link add "$veth" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "$veth" master br0
    ip -n "$HUB" link set "$veth" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$HUB_ADDR"
}

# sshd on port 22 in NS with hostname NAME and (optionally) DATA bind-mounted on /data.
start_ns_sshd() {  # DIR SUB NS NAME [DATA]
    local dir="$1" sub="$1/$2" ns="$3" name="$4" data="${5:-}"
    mkdir -p -- "$sub"
    new_host_key "$sub/host_key"
    write_sshd_config "$sub/sshd_config" "0.0.0.0:22" "$sub/host_key" "$sub/sshd.pid" \
        "$dir/authorized_keys"
    echo "$name" >"$sub/hostname"
    # ip netns exec and unshare (no --fork) exec: the recorded pid is sshd's.
    launch "$sub/sshd.launch.pid" "$sub/sshd.log" ip netns exec "$ns" \
        unshare --uts --mount --propagation private sh -c '
            set -e
            hostname "$1"
            if [ -n "$2" ]; then mount --bind "$2" /data; fi
            shift 2
            exec "$@"' sh "$name" "$data" "$SSHD" -D -e -f "$sub/sshd_config"
}

WEB_SERVER='
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 22))
s.listen(64)
print("web: listening on :22 (not SSH)", flush=True)
while True:
    c, a = s.accept()
    try:
        c.settimeout(2)
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n")
    except OSError:
        pass
    finally:
        c.close()
'

stop_lan() {  # DIR
    local dir="$1" f pid pids=()
    for f in "$dir"/*/sshd.launch.pid "$dir"/*/sshd.pid "$dir"/*/web.pid; do
        [[ -f "$f" ]] || continue
        pid="$(readpid "$f")"
        ours "$pid" "$dir" && pids+=("$pid")
    done
    if ((${#pids[@]})); then
        local kids; kids="$(descendants "${pids[@]}")"
        # shellcheck disable=SC2086
        kill_pids "${pids[@]}" $kids || true
    fi
    rm -f -- "$dir"/*/sshd.launch.pid "$dir"/*/sshd.pid "$dir"/*/web.pid
    if [[ -f "$dir/namespaces" ]]; then
        local ns hub=0
        # tags first, the hub (holding the bridge and the veth ends) last
        while read -r ns; do
            [[ -z "$ns" ]] && continue
            if ! ns_owned_by "$ns" "$dir"; then
                ns_exists "$ns" && note "namespace $ns now belongs to $(cat "$OWNERS/$ns" 2>/dev/null || echo '?'): left alone"
                continue
            fi
            if [[ "$ns" == "$HUB" ]]; then hub=1; continue; fi
            ns_delete "$ns"
        done <"$dir/namespaces"
        ((hub)) && ns_delete "$HUB"
        rm -f -- "$dir/namespaces"
    fi
}

# Namespaces of our fixed names left by a run that was killed.
delete_stale_namespaces() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case "$ns" in
            "$HUB" | "$HOST9_NS" | "$WEB8_NS" | ceti-tag[0-9] | ceti-tag[0-9][0-9] | ceti-probe-*)
                note "deleting stale namespace $ns (and its processes)"
                ns_delete "$ns" ;;
        esac
    done
}

cmd_lan() {
    need_root "network namespaces"
    local dir n
    dir="$(abspath "$1")"; n="$2"
    [[ "$n" =~ ^[0-9]+$ ]] && ((n >= 1 && n <= MAX_TAGS)) || die "N must be 1..$MAX_TAGS, not '$n'"
    local why
    why="$(probe_netns)" || die "network namespaces unavailable: $why"
    mkdir -p -- "$dir"
    chmod o+x "$dir"   # the tag user traverses it (authorized_keys)
    LAN_DIR="$dir"
    trap 'note "startup failed: cleaning up"; stop_lan "$LAN_DIR" || true' EXIT
    stop_lan "$dir"
    rm -f -- "$dir/namespaces" "$dir/lan.json"
    delete_stale_namespaces
    prepare_run_sshd
    ensure_user
    make_probe_key "$dir"
    client_key "$dir"
    check_reachable "$dir"
    if [[ ! -d /data ]]; then
        mkdir -p /data
        note "created /data on the host (empty; the mount point for the tags' data dirs)"
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    ns_record "$dir" "$HUB"
    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 type bridge stp_state 0 forward_delay 0 2>/dev/null || true
    ip -n "$HUB" addr add "$HUB_ADDR/24" dev br0
    ip -n "$HUB" link set br0 up

    local i ns addr name
    for ((i = 1; i <= n; i++)); do
        ns="ceti-tag$i"; addr="$NET.$((10 + i))"; name="$(tag_hostname "$i")"
        add_host_ns "$dir" "$ns" "$addr" "vtag$i"
        mkdir -p -- "$dir/tag$i/data"
        chmod 777 "$dir/tag$i/data"
        start_ns_sshd "$dir" "tag$i" "$ns" "$name" "$dir/tag$i/data"
    done
    add_host_ns "$dir" "$HOST9_NS" "$HOST9_ADDR" vhost9
    start_ns_sshd "$dir" host9 "$HOST9_NS" "$HOST9_NAME"
    add_host_ns "$dir" "$WEB8_NS" "$WEB8_ADDR" vweb8
    mkdir -p -- "$dir/web8"
    launch "$dir/web8/web.pid" "$dir/web8/web.log" ip netns exec "$WEB8_NS" "$PY" -c "$WEB_SERVER" "$dir/web8"

    local sub rc
    for sub in $(seq -f 'tag%g' 1 "$n") host9; do
        rc=0
        wait_sshd "$dir/$sub/sshd.launch.pid" "$dir/$sub/sshd.pid" "$deadline" || rc=$?
        if ((rc)); then
            log_tail "$dir/$sub/sshd.log"
            ((rc == 2)) && die "sshd of $sub did not come up within ${START_TIMEOUT}s"
            die "sshd of $sub exited during startup"
        fi
    done

    # Check every host from the hub (never from the host namespace).
    local addrs=()
    for ((i = 1; i <= n; i++)); do addrs+=("$NET.$((10 + i))"); done
    local left=$((deadline - SECONDS)); ((left < 1)) && left=1
    if ! out="$(ip netns exec "$HUB" "$PY" - "$left" "$WEB8_ADDR" "$HOST9_ADDR" "${addrs[@]}" 2>&1 <<'EOF'
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
web, ssh_hosts = sys.argv[2], sys.argv[3:]
def first_bytes(addr):
    s = socket.create_connection((addr, 22), timeout=1)
    s.settimeout(1)
    try:
        return s.recv(64)
    finally:
        s.close()
pending = {a: None for a in ssh_hosts + [web]}
while pending:
    for a in list(pending):
        try:
            b = first_bytes(a)
        except OSError as e:
            pending[a] = repr(e)
            continue
        if a == web:
            if b.startswith(b"SSH-"):
                sys.exit(f"{a}:22 sends an SSH banner, expected a non-SSH service")
            if b:
                del pending[a]
        elif b.startswith(b"SSH-"):
            del pending[a]
        else:
            pending[a] = f"no SSH banner: {b!r}"
    if pending and time.monotonic() > deadline:
        sys.exit("not answering as expected: " + ", ".join(f"{a}: {r}" for a, r in pending.items()))
    if pending:
        time.sleep(0.1)
EOF
    )"; then
        for sub in $(seq -f 'tag%g' 1 "$n") host9 web8; do
            [[ -f "$dir/$sub/sshd.log" ]] && log_tail "$dir/$sub/sshd.log"
        done
        log_tail "$dir/web8/web.log"
        die "LAN check from $HUB failed: $out"
    fi

    # The summary.
    local rows=()
    for ((i = 1; i <= n; i++)); do
        rows+=("tag" "ceti-tag$i" "$NET.$((10 + i))" "$(tag_hostname "$i")" "$dir/tag$i/data" \
            "$(fingerprint "$dir/tag$i/host_key.pub")" "$dir/tag$i")
    done
    rows+=("ssh" "$HOST9_NS" "$HOST9_ADDR" "$HOST9_NAME" "" "$(fingerprint "$dir/host9/host_key.pub")" "$dir/host9")
    rows+=("web" "$WEB8_NS" "$WEB8_ADDR" "" "" "" "$dir/web8")
    "$PY" - "$dir" "$HUB" "$HUB_ADDR" "$TAG_USER" "$TAG_PASSWORD" "${rows[@]}" <<'EOF'
import json, sys
dir_, hub, hub_addr, user, password, *rows = sys.argv[1:]
hosts = []
for i in range(0, len(rows), 7):
    role, ns, addr, name, data, fp, sub = rows[i:i + 7]
    h = {"role": role, "namespace": ns, "address": addr, "port": 22, "dir": sub}
    if name: h["hostname"] = name
    if data: h["data"] = data
    if fp:
        h["host_key_fingerprint"] = fp
        h["host_key_pub"] = sub + "/host_key.pub"
    hosts.append(h)
summary = {
    "hub": {"namespace": hub, "address": hub_addr, "bridge": "br0", "subnet": hub_addr.rsplit(".", 1)[0] + ".0/24"},
    "user": user, "password": password,
    "client_key": dir_ + "/client_key",
    "tags": [h for h in hosts if h["role"] == "tag"],
    "non_tag_ssh": next(h for h in hosts if h["role"] == "ssh"),
    "non_ssh": next(h for h in hosts if h["role"] == "web"),
}
with open(dir_ + "/lan.json.tmp", "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
EOF
    mv -f -- "$dir/lan.json.tmp" "$dir/lan.json"
    echo lan >"$dir/mode"
    trap - EXIT
    note "LAN ready in $((START_TIMEOUT - (deadline - SECONDS)))s: $n tag(s), hub $HUB $HUB_ADDR/24, summary $dir/lan.json"
}

cmd_hub_exec() {
    need_root "network namespaces"
    (($#)) || die "hub-exec needs a command"
    ns_exists "$HUB" || die "namespace $HUB does not exist: start a LAN with '$0 lan DIR N' first"
    exec ip netns exec "$HUB" "$@"
}

cmd_stop() {
    local dir; dir="$(abspath "$1")"
    [[ -d "$dir" ]] || return 0
    if [[ "$(id -u)" != 0 ]]; then note "not root: may not be able to stop everything"; fi
    stop_loopback_sshd "$dir"
    stop_lan "$dir"
    # anything else still running with arguments inside DIR
    local strays
    strays="$(pids_using_dir "$dir" | tr '\n' ' ')"
    if [[ -n "${strays// /}" ]]; then
        note "stopping stray processes using $dir: $strays"
        # shellcheck disable=SC2086
        kill_pids $strays $(descendants $strays) || true
    fi
    rm -f -- "$dir/mode"
}

(($# >= 1)) || usage
case "$1" in
    loopback) (($# == 2 || $# == 3)) || usage; cmd_loopback "$2" "${3:-}" ;;
    rekey) (($# == 2)) || usage; cmd_rekey "$2" ;;
    systemd) (($# == 2)) || usage; cmd_systemd "$2" ;;
    lan) (($# == 3)) || usage; cmd_lan "$2" "$3" ;;
    hub-exec) shift; cmd_hub_exec "$@" ;;
    stop) (($# == 2)) || usage; cmd_stop "$2" ;;
    available) (($# == 1)) || usage; cmd_available ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
