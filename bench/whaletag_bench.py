#!/usr/bin/env python3
"""ceti whaletag against OpenSSH `sftp` and `scp`, all pulling from the same local sshd.

Needs root (scripts/tag-sim.sh creates the `cetitag` user and starts a real OpenSSH sshd on
127.0.0.1); no S3 server. Normally run via `make bench`, or directly:

    .venv/bin/python bench/whaletag_bench.py [--quick] [--reps N] [--cases ...] [--tools ...]

Cases (the same files for every tool):
  lo-500      one 500 MB file, straight to the sshd on loopback
  lo-2g       a 2 GB tag folder (11 x 172 MB raw audio + 36 CSVs, 108 MB) on loopback
  rtt-500     the 500 MB file through Tests/integration/tcpproxy.py holding each chunk
              10 ms in each direction (~20 ms added RTT)
  rtt-2g      the tag folder, same relay
  relay0-500  (calibration) the 500 MB file through the same relay without delay: shows
              what the Python relay itself can carry, compared with lo-500

Tools:
  ceti        ceti whaletag -t 127.0.0.1 (password login), with the tag-side sha256sum check
  ceti-nv     the same with --no-remote-verify (transfer only, comparable to sftp/scp)
  sftp        sftp -b BATCH (`get DIR/* OUT/`), key login, OpenSSH defaults otherwise
  scp         scp DIR/* OUT/ (OpenSSH >= 9 scp speaks SFTP by default)
  scp-O       scp -O (the legacy scp/rcp protocol)
  sftp-ctr    (diagnostic, loopback cases) sftp forced to ceti's cipher and MAC (aes128-ctr,
              hmac-sha2-256); not counted as "best OpenSSH"

Each run is one child process measured with wait4 through a tiny C launcher (from
benchlib.py): wall seconds, user+sys CPU seconds, peak RSS. wait4's rusage includes
reaped descendants, so sftp's and scp's numbers include their `ssh` child (which does the
crypto). The sshd's CPU over the run is read from /proc (the listener's own plus its reaped
sessions', the tag-side sha256sum included); the relay's CPU is this process's own CPU over
the run (the relay runs in threads here while the main thread only waits). Every run writes
into a fresh output directory; afterwards, outside the timed region, the output must hold
exactly the source's file names and sizes, and two files' SHA-256 must match the source's.
The output is deleted (and the disk synced) before the next run.

Data sets are generated once under $REPO/.tmp/bench-data/tag/ and reused (random bytes,
CSV-like text; mtimes set well in the past, since whaletag skips files modified in the last
minute). All source data is in the page cache during the runs.

Prints a Markdown table; appends a dated section to $REPO/BENCHMARKS.md (not with --quick
unless --record; never with --no-record). Raw results go to bench/out/.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    MiB, REPO, DataSet, FileSpec, Measured, build_launcher, ceti_source, dataset_ok, ensure_dataset,
    bench_args, ceti_bin, failure_lines, install_signal_handlers, log, machine_info, run_measured, sh,
)

sys.path.insert(0, str(REPO / "Tests/integration"))
from tcpproxy import start_tcp_proxy  # noqa: E402
from tagsim import run as tag_sim, world_traversable, workdir as tagsim_workdir  # noqa: E402

TAG_USER = "cetitag"
TAG_PASSWORD = "ceticeti"
MB = 1_000_000
TARGET_RATIO = 0.9        # ceti throughput >= 0.9x the best OpenSSH tool's
RELAY_DELAY = 0.010       # seconds each way: ~20 ms more RTT
DATA_MTIME = 1726531200   # 2024-09-17 00:00 UTC: far from "still being written"

ALL_CASES = ["lo-500", "lo-2g", "rtt-500", "rtt-2g", "relay0-500"]
ALL_TOOLS = ["ceti", "ceti-nv", "sftp", "scp", "scp-O", "sftp-ctr"]
OPENSSH_TOOLS = ("sftp", "scp", "scp-O")
CEti_TOOLS = ("ceti", "ceti-nv")
RELAY0_TOOLS = ("ceti-nv", "sftp")  # the calibration case needs only one tool of each kind
# Diagnostic: sftp with the cipher and MAC ceti's libssh2 1.10 negotiates; loopback cases only,
# not counted as "best OpenSSH" (the target compares with OpenSSH's defaults).
CTR_OPTS = ["-c", "aes128-ctr", "-o", "MACs=hmac-sha2-256"]
TOOL_NAMES = {"ceti-nv": "ceti --no-remote-verify", "scp-O": "scp -O",
              "sftp-ctr": "sftp -c aes128-ctr -o MACs=hmac-sha2-256 (diagnostic)"}


@dataclass
class Case:
    key: str
    title: str
    dataset: str
    delay: float | None   # None: straight to sshd; else through the relay with this delay


# ---- data sets ------------------------------------------------------------------------
def dataset_specs(quick: bool) -> dict[str, list[FileSpec]]:
    if quick:
        one, n_raw, raw, n_csv, csv_total = 20 * MB, 4, 8 * MB, 6, 3 * MB
    else:
        one, n_raw, raw, n_csv, csv_total = 500 * MB, 11, 172 * MB, 36, 108 * MB
    rng = random.Random(20240917)
    weights = [rng.uniform(1.5, 4.5) for _ in range(n_csv)]
    sizes = [int(csv_total * w / sum(weights)) for w in weights]
    sizes[-1] += csv_total - sum(sizes)
    tree = [FileSpec(f"sound_{i:03d}.raw", raw, "random") for i in range(n_raw)]
    kinds = ["sensors", "gps", "battery", "depth"]
    tree += [FileSpec(f"{kinds[i % len(kinds)]}_{i:03d}.csv", s, "csv") for i, s in enumerate(sizes)]
    return {"one": [FileSpec("recording_000.raw", one, "random")], "tree": tree}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def ensure_tag_dataset(base: Path, name: str, files: list[FileSpec]) -> DataSet:
    """benchlib.ensure_dataset, made readable by the tag user, with old mtimes and the SHA-256 of
    the files checked after every run."""
    manifest = base / f"{name}.sha256.json"
    if not dataset_ok(base / name, files):
        manifest.unlink(missing_ok=True)  # about to be regenerated: the cached hashes are stale
    root = ensure_dataset(base, name, files, size_text=lambda n: f"{n / MB:,.0f} MB").root
    # Readable by the tag user through every parent; mtimes far in the past.
    for d in [root, *root.parents]:
        if d == REPO / ".tmp":
            break
        d.chmod(0o755)
    if not world_traversable(root):
        sys.exit(f"bench: {root} is not traversable by other users (the tag user `{TAG_USER}` reads it)")
    for spec in files:
        p = root / spec.rel
        p.chmod(0o644)
        os.utime(p, (DATA_MTIME, DATA_MTIME))
    # The files hashed after every run: the first and the last by name (the sha256 is cached).
    names = sorted(f.rel for f in files)
    picked = sorted({names[0], names[-1]})
    cached = {}
    try:
        cached = json.loads(manifest.read_text())
    except (OSError, ValueError):
        pass
    check = {}
    for n in picked:
        st = (root / n).stat()
        key = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
        if cached.get(n, {}).get("key") == key:
            check[n] = cached[n]["sha256"]
        else:
            check[n] = sha256_file(root / n)
            cached[n] = {"key": key, "sha256": check[n]}
    manifest.write_text(json.dumps(cached, indent=1))
    return DataSet(name, root, files, check)


def warm_page_cache(sets: list[DataSet]) -> float:
    t0 = time.monotonic()
    buf = bytearray(4 * MiB)
    for ds in sets:
        for spec in ds.files:
            with open(ds.root / spec.rel, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass
    return time.monotonic() - t0


# ---- the server's CPU (the client is measured by benchlib.run_measured and its launcher) ------
class ServerCpu:
    """CPU seconds of the sshd and everything it forks, from a cgroup of its own.

    /proc is not enough: after login, sshd's privileged monitor exits without reaping the
    session process (which does the crypto and internal-sftp), so that CPU never reaches the
    listener's cutime. A cgroup counts every task in it, exited ones included. We create one
    (cgroup v2 if mounted, else v1 cpuacct), move the listener into it (its future sessions
    inherit it) and remove it after the sshd is stopped. None when that is not possible."""

    def __init__(self, pid: int | None):
        self.dir: Path | None = None
        self.kind = ""
        if pid is None:
            return
        for kind, base, counter in self._hierarchies():
            d = base / f"ceti-whaletag-bench-{os.getpid()}"
            try:
                d.mkdir()
            except OSError:
                continue
            try:
                (d / "cgroup.procs").write_text(f"{pid}\n")
                self.dir, self.kind, self.counter = d, kind, counter
                if self.read() is None:
                    raise OSError("no counter")
                return
            except OSError as e:
                log(f"warning: cannot use cgroup {d} for sshd CPU accounting: {e}")
                self.dir = None
                try:
                    d.rmdir()
                except OSError:
                    pass

    @staticmethod
    def _hierarchies() -> list[tuple[str, Path, str]]:
        out = []
        try:
            for line in Path("/proc/mounts").read_text().splitlines():
                f = line.split()
                if len(f) >= 4 and f[2] == "cgroup2":
                    out.append(("cgroup v2", Path(f[1]), "cpu.stat"))
            for line in Path("/proc/mounts").read_text().splitlines():
                f = line.split()
                if len(f) >= 4 and f[2] == "cgroup" and "cpuacct" in f[3].split(","):
                    out.append(("cgroup v1 cpuacct", Path(f[1]), "cpuacct.usage"))
        except OSError:
            pass
        return out

    def read(self) -> float | None:
        if self.dir is None:
            return None
        try:
            text = (self.dir / self.counter).read_text()
        except OSError:
            return None
        if self.counter == "cpu.stat":
            m = re.search(r"^usage_usec (\d+)", text, re.M)
            return int(m.group(1)) / 1e6 if m else None
        return int(text.strip()) / 1e9

    def remove(self) -> None:
        if self.dir is None:
            return
        deadline = time.monotonic() + 10
        while True:
            try:
                self.dir.rmdir()
                return
            except OSError as e:
                if time.monotonic() > deadline:
                    log(f"warning: cannot remove cgroup {self.dir}: {e}")
                    return
                time.sleep(0.2)


def sessions_of(listener: int | None) -> list[int]:
    """The listener's live, non-zombie children (one per SSH connection)."""
    kids = []
    if listener is None:
        return kids
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            fields = Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(listener) and fields[0] not in ("Z", "X"):
            kids.append(int(e))
    return kids


def wait_sessions_gone(listener: int | None, timeout: float = 10) -> None:
    """Until the server side of the run has ended (its CPU is then all counted)."""
    deadline = time.monotonic() + timeout
    while sessions_of(listener) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


# ---- the simulated tag -------------------------------------------------------------------
def negotiated_cipher(ssh_opts: list[str], port: int, env: dict[str, str]) -> str:
    """What OpenSSH's client negotiates with this sshd by default (from `ssh -v`)."""
    try:
        r = subprocess.run(["ssh", "-v", "-p", str(port), *ssh_opts, f"{TAG_USER}@127.0.0.1", "true"],
                           capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"
    m = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", r.stderr)
    return f"{m.group(1)} (MAC {m.group(2)})" if m else "?"


def read_name_lists(payload: bytes) -> list[list[str]]:
    """The ten name-lists of an SSH_MSG_KEXINIT payload (RFC 4253 §7.1)."""
    if not payload or payload[0] != 20:
        raise ValueError("not a KEXINIT")
    pos, lists = 17, []
    for _ in range(10):
        n = int.from_bytes(payload[pos:pos + 4], "big")
        lists.append(payload[pos + 4:pos + 4 + n].decode().split(","))
        pos += 4 + n
    return lists


def ceti_cipher(ceti: str, env: dict[str, str], scratch: Path, sshd_config: Path) -> str:
    """What ceti (libssh2) negotiates with this sshd: ceti's KEXINIT, caught by a fake server that
    hangs up after reading it, against the sshd's own lists (`sshd -T`). First client choice the
    server supports wins (RFC 4253 §7.1)."""
    import socket
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(15)
    port = lsock.getsockname()[1]
    got: dict[str, list[list[str]]] = {}

    def serve() -> None:
        try:
            conn, _ = lsock.accept()
            conn.settimeout(10)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 bench-probe\r\n")
            buf = b""
            while b"\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            buf = buf.split(b"\r\n", 1)[1]
            while len(buf) < 5 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            length, pad = int.from_bytes(buf[:4], "big"), buf[4]
            got["client"] = read_name_lists(buf[5:4 + length - pad])
            conn.close()
        except (OSError, ValueError):
            pass
        finally:
            lsock.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    probe_env = dict(env, CETI_TAG_PASSWORD=TAG_PASSWORD, XDG_CONFIG_HOME=str(scratch / "probe/config"),
                     XDG_DATA_HOME=str(scratch / "probe/data"))
    try:
        subprocess.run([ceti, "whaletag", "-t", "127.0.0.1", "--port", str(port), "--user", TAG_USER,
                        "--remote-dir", "/nonexistent", "--data-dir", str(scratch / "probe/out"),
                        "--ledger", str(scratch / "probe/ledger.sqlite"), "--quiet"],
                       env=probe_env, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        pass
    t.join(20)
    if "client" not in got:
        return "?"
    try:
        cfg = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(sshd_config)], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    server = {l.split()[0]: l.split()[1].split(",") for l in cfg.splitlines() if len(l.split()) == 2}
    client = got["client"]
    cipher = next((c for c in client[3] if c in server.get("ciphers", [])), "?")
    if "gcm" in cipher or "chacha20" in cipher:
        return f"{cipher} (MAC <implicit>)"
    mac = next((m for m in client[5] if m in server.get("macs", [])), "?")
    return f"{cipher} (MAC {mac})"


def output_problems(out: Path, ds: DataSet) -> list[str]:
    """Every source name with its size somewhere under out (ceti adds a <host>/ level), nothing
    else except empty dirs; the checked files' SHA-256 equal the source's."""
    found: dict[str, Path] = {}
    extra: list[str] = []
    for dirpath, _dirs, names in os.walk(out):
        for n in names:
            p = Path(dirpath) / n
            if n in found:
                extra.append(f"{n} twice")
            found[n] = p
    want = {f.rel: f.size for f in ds.files}
    problems = []
    missing = sorted(set(want) - set(found))
    extra += sorted(set(found) - set(want))
    if missing:
        problems.append(f"{len(missing)} files missing (e.g. {missing[0]})")
    if extra:
        problems.append(f"unexpected files: {', '.join(extra[:3])}")
    wrong = [n for n in want if n in found and found[n].stat().st_size != want[n]]
    if wrong:
        problems.append(f"{len(wrong)} files with the wrong size (e.g. {wrong[0]})")
    for n, digest in ds.check.items():
        if n in found and n not in wrong and sha256_file(found[n]) != digest:
            problems.append(f"{n}: SHA-256 differs from the source")
    return problems


# ---- the benchmark ------------------------------------------------------------------------
@dataclass
class Run:
    case: str
    tool: str
    rep: int
    bytes: int
    m: Measured | None = None
    ok: bool = False
    problem: str = ""
    relay_down: int | None = None
    cmd: list[str] = field(default_factory=list)


@dataclass
class Row:
    case: str
    tool: str
    n: int
    ok: bool
    wall_med: float
    wall_min: float
    mbps: float
    cpu_med: float
    server_med: float | None
    relay_med: float | None
    other_med: float | None
    rss_max_mib: float
    ratio: float | None = None
    verdict: str = ""


def other_cpu(m: Measured) -> float | None:
    """Machine-wide busy CPU over the run not accounted to client, server or relay (other work
    on the machine, kernel threads such as writeback): clamped at 0."""
    if m.server_cpu is None or m.cpu != m.cpu:
        return None
    return max(0.0, m.machine_cpu - m.cpu - m.server_cpu - (m.relay_cpu or 0.0))


def summarize(runs: list[Run], cases: list[Case], tools: list[str]) -> list[Row]:
    rows: list[Row] = []
    for case in cases:
        by: dict[str, Row] = {}
        for tool in tools:
            rs = [r for r in runs if r.case == case.key and r.tool == tool and r.m is not None]
            if not rs:
                continue
            walls = [r.m.wall for r in rs]
            wmed = statistics.median(walls)
            srv = [r.m.server_cpu for r in rs if r.m.server_cpu is not None]
            rel = [r.m.relay_cpu for r in rs if r.m.relay_cpu is not None]
            oth = [other_cpu(r.m) for r in rs if other_cpu(r.m) is not None]
            by[tool] = Row(case.key, tool, len(rs), all(r.ok for r in rs), wmed, min(walls),
                           rs[0].bytes / MB / wmed, statistics.median(r.m.cpu for r in rs),
                           statistics.median(srv) if srv else None, statistics.median(rel) if rel else None,
                           statistics.median(oth) if oth else None,
                           max(r.m.maxrss_kib for r in rs) / 1024)
        openssh = [by[t] for t in OPENSSH_TOOLS if t in by and by[t].ok]
        best = max(openssh, key=lambda r: r.mbps) if openssh else None
        for t in CEti_TOOLS:
            c = by.get(t)
            if not c or not best:
                continue
            c.ratio = c.mbps / best.mbps
            if not c.ok:
                c.verdict = "invalid (failed run)"
            elif case.key == "relay0-500":
                c.verdict = "(calibration)"
            else:
                c.verdict = f"yes (vs {best.tool})" if c.ratio >= TARGET_RATIO else f"no (vs {best.tool})"
        rows += [by[t] for t in tools if t in by]
    return rows


def markdown_table(rows: list[Row], titles: dict[str, str]) -> str:
    head = ("| case | tool | runs | wall s (median) | wall s (min) | MB/s | client CPU s | server CPU s | "
            "relay CPU s | other CPU s | peak RSS MiB | × best OpenSSH | target met (≥ 0.9×) |")
    lines = [head, "|" + "|".join(["---"] * 2 + ["--:"] * 10 + ["---"]) + "|"]

    def f(x: float | None, d: int = 2) -> str:
        return "—" if x is None else f"{x:.{d}f}"

    for r in rows:
        name = titles[r.case] + ("" if r.ok else " **(FAILED)**")
        tool = TOOL_NAMES.get(r.tool, r.tool)
        lines.append(f"| {name} | {tool} | {r.n} | {f(r.wall_med)} | {f(r.wall_min)} | {f(r.mbps, 1)} | "
                     f"{f(r.cpu_med)} | {f(r.server_med)} | {f(r.relay_med) if r.relay_med is not None else ''} | "
                     f"{f(r.other_med)} | "
                     f"{f(r.rss_max_mib, 1)} | {f(r.ratio) if r.ratio is not None else ''} | {r.verdict} |")
    return "\n".join(lines)


def main() -> int:
    ap = bench_args(__doc__)
    ap.add_argument("--budget-min", type=float, default=12.0,
                    help="skip further rounds when they would end later than this many minutes after "
                         "the start (default 12)")
    ap.add_argument("--cases", default=",".join(ALL_CASES), help=f"comma list (default {','.join(ALL_CASES)})")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"comma list (default {','.join(ALL_TOOLS)})")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a run is killed")
    ap.add_argument("--record", action="store_true", help="append to BENCHMARKS.md even with --quick")
    args = ap.parse_args()
    case_keys = [c for c in args.cases.split(",") if c]
    tools = [t for t in args.tools.split(",") if t]
    for c in case_keys:
        if c not in ALL_CASES:
            ap.error(f"unknown case {c}")
    for t in tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t}")
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (scripts/tag-sim.sh creates a user and starts sshd)")

    started = time.monotonic()
    ceti_src = ceti_bin()
    for exe in (ceti_src, shutil.which("sftp"), shutil.which("scp"), shutil.which("ssh")):
        if not exe or not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe or 'sftp/scp/ssh'} is not executable")

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    scratch = REPO / ".tmp/bench-work" / f"whaletag-{stamp}"
    logs = scratch / "logs"
    logs.mkdir(parents=True)
    out_dir = REPO / "bench/out"
    out_dir.mkdir(parents=True, exist_ok=True)
    # A private copy of the binary: a rebuild elsewhere during the bench cannot swap it.
    ceti = str(scratch / "ceti")
    shutil.copy2(ceti_src, ceti)

    data_base = REPO / ".tmp/bench-data/tag" / ("quick" if args.quick else "full")
    specs = dataset_specs(args.quick)
    t_gen = time.monotonic()
    sets = {"one": ensure_tag_dataset(data_base, "one", specs["one"]),
            "tree": ensure_tag_dataset(data_base, "tree", specs["tree"])}
    os.sync()
    warm = warm_page_cache(list(sets.values()))
    gen_seconds = time.monotonic() - t_gen
    log(f"data ready in {gen_seconds:.1f} s (page-cache warm-up read {warm:.1f} s)")

    one_mb, tree = sets["one"].total / MB, sets["tree"]
    raws = [f for f in tree.files if f.kind == "random"]
    titles = {
        "lo-500": f"{one_mb:,.0f} MB file, loopback",
        "lo-2g": f"{tree.total / MB:,.0f} MB tag tree ({len(raws)} × {raws[0].size / MB:.0f} MB + "
                 f"{tree.count - len(raws)} CSV), loopback",
        "rtt-500": f"{one_mb:,.0f} MB file, relay +20 ms RTT",
        "rtt-2g": f"{tree.total / MB:,.0f} MB tag tree, relay +20 ms RTT",
        "relay0-500": f"{one_mb:,.0f} MB file, relay without delay (calibration)",
    }
    all_cases = {
        "lo-500": Case("lo-500", titles["lo-500"], "one", None),
        "lo-2g": Case("lo-2g", titles["lo-2g"], "tree", None),
        "rtt-500": Case("rtt-500", titles["rtt-500"], "one", RELAY_DELAY),
        "rtt-2g": Case("rtt-2g", titles["rtt-2g"], "tree", RELAY_DELAY),
        "relay0-500": Case("relay0-500", titles["relay0-500"], "one", 0.0),
    }
    cases = [all_cases[k] for k in ALL_CASES if k in case_keys]

    launcher, launcher_desc = build_launcher(scratch, required=True)
    machine = machine_info()
    versions = {
        "ceti": sh([ceti, "--version"]) + ceti_source(ceti_src),
        "ssh": sh(["ssh", "-V"], both=True),
        "libssh2": sh(["bash", "-c", "dpkg -s libssh2-1 | grep '^Version'"]).removeprefix("Version: "),
    }
    log(f"machine: {machine}")
    log(f"versions: {versions}")

    workdir = tagsim_workdir("bench")
    server = ServerCpu(None)
    proxies = []
    runs: list[Run] = []
    skipped = ""
    reps_done = 0
    cipher = cipher_ceti = "?"
    failures: list[Run] = []
    try:
        tag_sim("loopback", workdir, timeout=120)
        port = int((workdir / "port").read_text())
        listener_txt = (workdir / "sshd.pid").read_text().strip() if (workdir / "sshd.pid").exists() else ""
        listener = int(listener_txt) if listener_txt.isdigit() else None
        key = workdir / "client_key"
        server = ServerCpu(listener)
        log(f"sshd on 127.0.0.1:{port} (pid {listener}), dir {workdir}; server CPU from "
            f"{server.kind + ' ' + str(server.dir) if server.dir else 'nowhere (no usable cgroup)'}")

        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("CETI_") and k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID")}
        ssh_opts = ["-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        cipher = negotiated_cipher(ssh_opts, port, base_env)
        cipher_ceti = ceti_cipher(ceti, base_env, scratch, workdir / "sshd_config")
        log(f"OpenSSH negotiates {cipher}; ceti (libssh2) negotiates {cipher_ceti}")

        def one_run(case: Case, tool: str, rep: int, target_port: int, proxy) -> Run:
            ds = sets[case.dataset]
            r = Run(case.key, tool, rep, ds.total)
            tag = f"{case.key}-{tool}-r{rep}"
            out = scratch / "out" / tag
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            env = dict(base_env)
            if tool.startswith("ceti"):
                env.update({"CETI_TAG_PASSWORD": TAG_PASSWORD,
                            "XDG_CONFIG_HOME": str(scratch / "xdg" / tag / "config"),
                            "XDG_DATA_HOME": str(scratch / "xdg" / tag / "data")})
                cmd = [ceti, "whaletag", "-t", "127.0.0.1", "--port", str(target_port), "--user", TAG_USER,
                       "--remote-dir", str(ds.root), "--data-dir", str(out),
                       "--ledger", str(scratch / "xdg" / tag / "ledger.sqlite")]
                if tool == "ceti-nv":
                    cmd.append("--no-remote-verify")
            elif tool in ("sftp", "sftp-ctr"):
                batch = scratch / f"sftp-{tag}.batch"
                batch.write_text(f"get {ds.root}/* {out}/\n")
                cmd = ["sftp", "-q", *(CTR_OPTS if tool == "sftp-ctr" else []), "-b", str(batch),
                       "-P", str(target_port), *ssh_opts, f"{TAG_USER}@127.0.0.1"]
            else:
                cmd = ["scp", "-q", *(["-O"] if tool == "scp-O" else []), "-P", str(target_port), *ssh_opts,
                       f"{TAG_USER}@127.0.0.1:{ds.root}/*", f"{out}/"]
            r.cmd = cmd
            down0 = proxy.down if proxy else 0
            log(f"run {tag}: {' '.join(cmd)}")
            m = run_measured(cmd, env, logs / tag, args.timeout, launcher, server_cpu=server.read,
                             settle=lambda: wait_sessions_gone(listener), relay=proxy is not None)
            r.m = m
            if proxy:
                r.relay_down = proxy.down - down0
            # ---- verification, outside the timed region
            problems = []
            if m.timed_out:
                problems.append(f"killed after {args.timeout:.0f} s")
            if m.rc != 0:
                problems.append(f"exit status {m.rc}")
            problems += output_problems(out, ds)
            r.ok = not problems
            r.problem = "; ".join(problems)
            srv = f", server cpu {m.server_cpu:.2f} s" if m.server_cpu is not None else ""
            oth = other_cpu(m)
            srv += f", other cpu {oth:.2f} s" if oth is not None else ""
            rel = f", relay cpu {m.relay_cpu:.2f} s" if m.relay_cpu is not None else ""
            log(f"     wall {m.wall:.2f} s ({ds.total / MB / m.wall:.1f} MB/s), cpu {m.cpu:.2f} s "
                f"(user {m.user:.2f} sys {m.sys:.2f}){srv}{rel}, peak RSS {m.maxrss_kib / 1024:.1f} MiB; "
                f"{'ok' if r.ok else 'PROBLEM: ' + r.problem}")
            if not r.ok and m.stderr.strip():
                log("     stderr (last lines):\n" + "\n".join(m.stderr.strip().splitlines()[-15:]))
            shutil.rmtree(out, ignore_errors=True)
            os.sync()
            time.sleep(1)
            return r

        deadline = started + args.budget_min * 60
        round_seconds: list[float] = []
        for rep in range(1, args.reps + 1):
            if rep > 1 and time.monotonic() + max(round_seconds) > deadline:
                skipped = (f"rounds {rep}..{args.reps} skipped: one more round (~{max(round_seconds):.0f} s) "
                           f"would exceed the {args.budget_min:g} min budget")
                log(skipped)
                break
            t_round = time.monotonic()
            for case in cases:
                case_tools = [t for t in tools if (case.key != "relay0-500" or t in RELAY0_TOOLS)
                              and (t != "sftp-ctr" or case.delay is None)]
                shift = (rep - 1) % len(case_tools)  # rotate who goes first
                order = case_tools[shift:] + case_tools[:shift]
                proxy = None
                if case.delay is not None:
                    proxy = start_tcp_proxy("127.0.0.1", port, delay=case.delay)
                    proxies.append(proxy)
                try:
                    for tool in order:
                        runs.append(one_run(case, tool, rep, proxy.port if proxy else port, proxy))
                finally:
                    if proxy:
                        proxy.stop()
            round_seconds.append(time.monotonic() - t_round)
            reps_done = rep
    finally:
        for p in proxies:
            p.stop()
        try:
            tag_sim("stop", workdir, timeout=120)
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            log(f"warning: stopping the simulated tag failed: {e}")
        server.remove()
        for f in ("sshd.log", "sshd_config"):
            if (workdir / f).is_file():
                shutil.copyfile(workdir / f, logs / f)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(scratch / "out", ignore_errors=True)

    total_seconds = time.monotonic() - started
    rows = summarize(runs, cases, tools)
    table = markdown_table(rows, titles)
    settings = (
        f"`ceti whaletag -t 127.0.0.1 --port P --user {TAG_USER} --remote-dir DIR --data-dir OUT --ledger L` "
        f"(password login via CETI_TAG_PASSWORD; fresh XDG_CONFIG_HOME, XDG_DATA_HOME and ledger per run; "
        f"with and without `--no-remote-verify`); `sftp -q -b BATCH` with `get DIR/* OUT/`; "
        f"`scp -q [-O] cetitag@127.0.0.1:DIR/* OUT/` (OpenSSH 9's scp uses the SFTP protocol unless -O); "
        f"OpenSSH tools log in with an ed25519 key, `-F /dev/null` (OpenSSH defaults); negotiated cipher: "
        f"OpenSSH {cipher}, ceti/libssh2 {cipher_ceti}; "
        f"server: OpenSSH sshd from scripts/tag-sim.sh on 127.0.0.1 (internal-sftp); "
        f"relay cases: Tests/integration/tcpproxy.py in the bench process, each chunk held "
        f"{RELAY_DELAY * 1000:.0f} ms per direction; {reps_done} timed run(s) per case and tool, tool "
        f"order rotated per round, fresh output dir per run (deleted and synced between runs, outside "
        f"timing), output checked after every run (names, sizes, SHA-256 of two files); "
        f"all source data in the page cache (read once before the runs, no cache dropping); "
        f"rusage by {launcher_desc}."
    )
    print()
    print(table)
    print()
    print(f"Settings: {settings}")
    failures = [r for r in runs if not r.ok]
    for r in failures:
        print(f"PROBLEM {r.case}/{r.tool}/r{r.rep}: {r.problem}\n  command: {' '.join(r.cmd)}")
    print(f"\nTotal bench time {total_seconds:.0f} s (data preparation {gen_seconds:.0f} s). Logs: {logs}")
    if skipped:
        print(skipped)

    raw = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(), "quick": args.quick, "machine": machine,
        "versions": versions, "cipher_openssh": cipher, "cipher_ceti": cipher_ceti, "settings": settings, "total_seconds": total_seconds,
        "runs": [{"case": r.case, "tool": r.tool, "rep": r.rep, "ok": r.ok, "problem": r.problem,
                  "bytes": r.bytes, "relay_down": r.relay_down, "cmd": r.cmd,
                  **({"rc": r.m.rc, "wall": r.m.wall, "cpu": r.m.cpu, "user": r.m.user, "sys": r.m.sys,
                      "maxrss_kib": r.m.maxrss_kib, "server_cpu": r.m.server_cpu, "relay_cpu": r.m.relay_cpu,
                      "machine_cpu": r.m.machine_cpu}
                     if r.m else {})}
                 for r in runs],
    }
    raw_path = out_dir / f"whaletag-{stamp}{'-quick' if args.quick else ''}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    print(f"Raw results: {raw_path}")

    if not args.no_record and (not args.quick or args.record):
        section = benchmarks_section(machine, versions, settings, table, runs, args, total_seconds, skipped)
        path = REPO / "BENCHMARKS.md"
        with open(path, "a") as f:
            f.write("\n" + section)
        print(f"Appended to {path}")
    return 1 if failures else 0


def benchmarks_section(machine, versions, settings, table, runs, args, total_seconds, skipped) -> str:
    date = sh(["date", "-u"])
    lines = [
        f"## {date} — whaletag (SFTP pull) vs OpenSSH sftp/scp"
        f"{' (quick smoke run: small data, not a measurement)' if args.quick else ''}",
        "",
        "`bench/whaletag_bench.py` (second line of `make bench`). Target: ceti ≥ 0.9× OpenSSH throughput "
        "in every case.",
        "",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, Linux {machine['kernel']}",
        f"- Versions: ceti {versions['ceti']}; {versions['ssh']} (client and sshd); libssh2 (ceti) "
        f"{versions['libssh2']}",
        f"- Settings: {settings}",
        f"- Total bench time: {total_seconds:.0f} s" + (f"; {skipped}" if skipped else ""),
        "- Columns: medians over the runs (peak RSS: the maximum); MB/s = decimal megabytes (10⁶ bytes) / "
        "median wall; client CPU s = user+sys of the pulling process from wait4, which includes reaped "
        "children (for sftp/scp: their `ssh`, which does the crypto); server CPU s = the sshd's user+sys "
        "over the run (sessions, internal-sftp, and for ceti without --no-remote-verify the tag-side "
        "`sha256sum`; counted in a cgroup of the sshd's own); relay CPU s = the Python relay's; other CPU s = "
        "machine-wide busy CPU over the run minus those three (other work on the shared machine, kernel "
        "writeback); × best OpenSSH = MB/s ÷ the fastest of "
        "sftp / scp / scp -O in that case.",
        "",
        table,
        "",
    ]
    lines += failure_lines(runs)
    return "\n".join(lines)


if __name__ == "__main__":
    install_signal_handlers()  # its SystemExit lets the finally blocks stop the sshd and the relay
    sys.exit(main())
