#!/usr/bin/env python3
"""The boat, emulated (issue #13): `ceti ingest` over capped links against the link floor and the
sequential reference.

    bash scripts/with-s3.sh .venv/bin/python bench/boat_bench.py [--quick] [--reps N] [--record]

Needs root (scripts/tag-sim.sh starts the tags' sshd) and the S3 server of scripts/with-s3.sh.
Best run in a network namespace of its own (SeaweedFS listens on the fixed port 8333):

    unshare --net sh -c 'ip link set lo up && bash scripts/with-s3.sh .venv/bin/python bench/boat_bench.py'

The boat: two simulated tags (OpenSSH sshd on loopback, hostnames wt-0a1b2c3d and wt-b827eb0a0b0c,
files at /data), each with 3 x 172 MB `<epoch_ms>.flac` audio (random bytes: incompressible, and
ceti uploads tag-written FLAC as it is) and 200 MB of sensor CSV (compressible text) in four
files. Each tag sits behind its own Tests/integration/tcpproxy.py relay capping its link at
6 MB/s (MB = 10^6 B; per direction, shared by all of that tag's connections) with 5 ms delay each
way (the boat's WiFi); S3 (SeaweedFS) sits behind one relay capping the uplink at 3 MB/s with
50 ms delay each way that resets one connection after every 200 MB relayed (Starlink with drops).
Every option below changes one of these.

Runs, each with fresh relays (so both tools meet the same resets at the same byte counts):
  ceti       ceti ingest -t 127.0.0.1:TAG0PROXY -t 127.0.0.1:TAG1PROXY --endpoint-url S3PROXY
             (defaults otherwise: tags in parallel, tag-side sha256sum, gzip -6, its transfer window)
  reference  one step after the other, as tag.sh did: `sftp` of each tag (sshpass), `gzip -6`
             per CSV, `aws s3 sync` (the CLI's defaults), through the same relays.
Link floor = max(bytes of the busier tag / tag rate, bytes uploaded / uplink rate), from file and
object sizes (payload; each tool's own uploaded bytes). Target: ceti wall <= 1.05 x floor.

sshd CPU: the two tags' sshd listeners are moved into one cgroup (as whaletag_bench does), so
every session's CPU is counted (ceti's includes the tag-side sha256sum); reported per GB pulled.

Goodput at 300 ms RTT, separately: `ceti s3upload` (and, for comparison, `aws s3 sync`) through
a relay capping at 2 MB/s with 150 ms delay each way, no resets: (a) a tree of 200 x 100 KB,
(b) one 64 MB file. Goodput = payload / wall / cap (target >= 0.95); also "busy" goodput over the
span the relay carried upload bytes. A diagnostic ceti -j 16 row for (a).

During every run a sampler reads the relays' byte counters every 0.25 s; from it the report
shows when uploads started, when each tag's pull ended, and how long links sat below half their
cap while they had work left (idle spells). Objects are counted and one FLAC and one gzip object
compared with the tag's original afterwards, outside the timing. Raw results (with the
timelines) go to bench/out/boat-<stamp>.json; a section is appended to BENCHMARKS.md only with
--record.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchlib import (REPO, Measured, bench_args, build_launcher, tags_and_s3, ceti_bin, ceti_source, install_signal_handlers,  # noqa: E402
                      log, machine_info, record, run_measured, sh, write_random)
from whaletag_bench import ServerCpu, wait_sessions_gone  # noqa: E402

sys.path.insert(0, str(REPO / "Tests" / "integration"))
import tagsim  # noqa: E402
from tcpproxy import TcpProxy, start_tcp_proxy  # noqa: E402

MB = 1_000_000
TAGS = ("wt-0a1b2c3d", "wt-b827eb0a0b0c")
TAG_PASSWORD = "ceticeti"
SSH_OPTS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            "-o PubkeyAuthentication=no -o PreferredAuthentications=password")
DATA_MTIME = 1726531200  # 2024-09-17: far from "still being written"
CSV_SHARES = (("data_ecg_01.csv", 0.55), ("data_imu_accel_01.csv", 0.30),
              ("data_pressure_temperature.csv", 0.10), ("data_battery.csv", 0.05))
SAMPLE_PERIOD = 0.25
TARGET_FLOOR = 1.05
TARGET_GOODPUT = 0.95


# ---- data ---------------------------------------------------------------------------------
def write_csv(path: Path, size: int, seed: int) -> None:
    """Sensor-like CSV text of exactly `size` bytes: 10 ms timestamps and random-walk columns."""
    rng = random.Random(seed)
    a = b = c = 0.0
    pool = []
    for _ in range(20000):
        a += rng.gauss(0, 0.01)
        b += rng.gauss(0, 0.01)
        c += rng.gauss(0, 0.01)
        pool.append(f"{a:.4f},{b:.4f},{c:.4f},{rng.randint(0, 4095)}")
    ts = 1726531200000 + seed * 1000
    written = 0
    with open(path, "wb") as f:
        head = b"timestamp_ms,ax,ay,az,raw\n"
        f.write(head)
        written += len(head)
        i = 0
        while written < size:
            block = "".join(f"{ts + (i + k) * 10},{pool[(i + k) % len(pool)]}\n" for k in range(50000)).encode()
            i += 50000
            block = block[: size - written]
            f.write(block)
            written += len(block)
    if size > 0:
        with open(path, "r+b") as f:
            f.seek(size - 1)
            f.write(b"\n")


def make_tag_data(base: Path, index: int, audio_files: int, audio_bytes: int, csv_bytes: int) -> list[Path]:
    """One tag's files, cached across runs (regenerated when the sizes differ)."""
    base.mkdir(parents=True, exist_ok=True)
    want: dict[str, tuple[int, str]] = {}
    for k in range(audio_files):
        want[f"{1726531200000 + index * 10_000_000 + k * 300_000}.flac"] = (audio_bytes, "random")
    for name, share in CSV_SHARES:
        want[name] = (int(csv_bytes * share), "csv")
    for p in base.iterdir():
        if p.name not in want:
            p.unlink()
    out = []
    for n, (name, (size, kind)) in enumerate(sorted(want.items())):
        p = base / name
        if not p.exists() or p.stat().st_size != size:
            log(f"generating {p} ({size / MB:.0f} MB)")
            if kind == "random":
                write_random(p, size)
            else:
                write_csv(p, size, 1000 + index * 10 + n)
        os.utime(p, (DATA_MTIME, DATA_MTIME))
        out.append(p)
    return out


# ---- the timeline of the relays' counters ---------------------------------------------------
class Timeline:
    """Samples the relays' byte counters (and this process's clock) every SAMPLE_PERIOD."""

    def __init__(self, proxies: dict[str, TcpProxy]):
        self.proxies = proxies
        self.t0 = time.monotonic()
        self.rows: list[tuple[float, dict[str, tuple[int, int, int]]]] = []
        self.stopping = threading.Event()
        self._sample()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        self.rows.append((time.monotonic() - self.t0, {k: (p.down, p.up, p.resets) for k, p in self.proxies.items()}))

    def _run(self) -> None:
        while not self.stopping.wait(SAMPLE_PERIOD):
            self._sample()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self._sample()

    def series(self, name: str, direction: str) -> list[tuple[float, int]]:
        i = 0 if direction == "down" else 1
        return [(t, v[name][i]) for t, v in self.rows]

    def reset_times(self, name: str) -> list[float]:
        """When the relay reset a connection (to the sampling period)."""
        out, prev = [], 0
        for t, v in self.rows:
            out += [round(t, 2)] * (v[name][2] - prev)
            prev = v[name][2]
        return out

    def as_json(self) -> dict:
        return {k: {"t": [round(t, 3) for t, _ in self.rows], "down": [v[k][0] for _, v in self.rows],
                    "up": [v[k][1] for _, v in self.rows], "resets": self.reset_times(k)} for k in self.proxies}


def link_stats(series: list[tuple[float, int]], cap: float, end: float) -> dict:
    """From cumulative byte counts: first and last time bytes moved, seconds below half the cap
    between them (idle spells: the link had work left but carried little), the longest such spell,
    and the share of [first, last] at >= 90 % of the cap."""
    total = series[-1][1]
    if total < 64 * 1024:
        return {"bytes": total, "first": None, "last": None, "idle_s": 0.0, "longest_idle_s": 0.0, "full_share": 0.0}
    first = next(t for t, v in series if v > 32 * 1024)
    last = next(t for t, v in series if v >= total)
    idle = longest = run = full = span = 0.0
    spells: list[list[float]] = []  # idle spells of >= 1 s: [start, end]
    for (t0, v0), (t1, v1) in zip(series, series[1:]):
        if t1 <= first or t0 >= last:
            continue
        dtw = t1 - t0
        span += dtw
        r = (v1 - v0) / dtw if dtw > 0 else 0
        if r < 0.5 * cap:
            if run == 0.0:
                spells.append([round(t0, 2), round(t1, 2)])
            spells[-1][1] = round(t1, 2)
            idle += dtw
            run += dtw
            longest = max(longest, run)
        else:
            run = 0.0
        if r >= 0.9 * cap:
            full += dtw
    spells = [sp for sp in spells if sp[1] - sp[0] >= 1.0]
    return {"bytes": total, "first": round(first, 2), "last": round(last, 2), "idle_s": round(idle, 2),
            "longest_idle_s": round(longest, 2), "full_share": round(full / span, 3) if span else 0.0,
            "end": round(end, 2), "idle_spells": spells}


# ---- runs ---------------------------------------------------------------------------------
@dataclass
class Result:
    tool: str
    rep: int
    wall: float
    cpu: float
    maxrss_mib: float
    machine_cpu: float
    relay_cpu: float | None
    sshd_cpu: float | None
    pulled: int
    pulled_per_tag: list[int]
    uploaded: int
    objects: int
    floor: float
    wire: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    timeline: dict = field(default_factory=dict)


@dataclass
class Goodput:
    case: str
    tool: str
    bytes: int
    files: int
    wall: float
    cpu: float
    cap: float
    rtt: float
    busy: dict = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.bytes / self.wall / self.cap


def list_objects(aws: str, endpoint: str, bucket: str, prefix: str, env: dict) -> list[tuple[str, int]]:
    out = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "ls", "--recursive", f"s3://{bucket}/{prefix}/"],
                         capture_output=True, text=True, env=env).stdout
    objs = []
    for line in out.splitlines():
        f = line.split(None, 3)
        if len(f) == 4 and f[2].isdigit():
            objs.append((f[3], int(f[2])))
    return objs


def check_objects(aws: str, endpoint: str, bucket: str, objs: list[tuple[str, int]], originals: dict[str, Path],
                  scratch: Path, env: dict) -> None:
    """One FLAC object byte-identical to the tag's file, one .csv.gz inflating to the tag's CSV."""
    for suffix in (".flac", ".csv.gz"):
        key = next(k for k, _ in objs if k.endswith(suffix))
        local = scratch / ("check" + suffix)
        subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}",
                        str(local)], check=True, env=env)
        name = key.rsplit("/", 1)[1].removesuffix(".gz")
        device = key.split("/")[-2]
        data = gzip.open(local).read() if suffix == ".csv.gz" else local.read_bytes()
        want = originals[f"{device}/{name}"]
        if hashlib.sha256(data).digest() != hashlib.sha256(want.read_bytes()).digest():
            raise AssertionError(f"{key} does not match {want}")
        local.unlink()


def main() -> int:
    ap = bench_args(__doc__)
    ap.set_defaults(reps=1)
    ap.add_argument("--record", action="store_true", help="append a section to BENCHMARKS.md (default: no)")
    ap.add_argument("--audio-files", type=int, help="audio files per tag (default 3; quick 2)")
    ap.add_argument("--audio-mb", type=float, help="MB per audio file (default 172; quick 8)")
    ap.add_argument("--csv-mb", type=float, help="MB of CSV per tag, in 4 files (default 200; quick 6)")
    ap.add_argument("--tag-rate", type=float, default=6.0, help="MB/s cap of each tag's link (default 6)")
    ap.add_argument("--tag-delay", type=float, default=0.005, help="seconds each way on the tag links (default 0.005)")
    ap.add_argument("--s3-rate", type=float, default=3.0, help="MB/s cap of the uplink (default 3)")
    ap.add_argument("--s3-delay", type=float, default=0.05, help="seconds each way on the uplink (default 0.05)")
    ap.add_argument("--reset-mb", type=float, help="reset one uplink connection every this many MB (default 200; quick 15; 0: never)")
    ap.add_argument("--goodput-rate", type=float, default=2.0, help="MB/s cap for the goodput runs (default 2)")
    ap.add_argument("--goodput-delay", type=float, default=0.15, help="seconds each way for the goodput runs (default 0.15)")
    ap.add_argument("--goodput-files", type=int, help="files in the goodput tree (default 200; quick 50)")
    ap.add_argument("--goodput-file-kb", type=float, default=100, help="KB per file of the goodput tree (default 100)")
    ap.add_argument("--goodput-big-mb", type=float, help="MB of the goodput single file (default 64; quick 8)")
    ap.add_argument("--parts", default="ingest,goodput", help="what to run: ingest, goodput (default both)")
    ap.add_argument("--tools", default="ceti,reference", help="ingest tools: ceti, reference (default both)")
    ap.add_argument("--ceti-log", default="-v", help="ceti's verbosity for its --log-file: -v (default) or -vv (one line per "
                                                     "S3 request and SSH step)")
    args = ap.parse_args()
    q = args.quick
    audio_files = args.audio_files if args.audio_files is not None else (2 if q else 3)
    audio_bytes = int((args.audio_mb if args.audio_mb is not None else (8 if q else 172)) * MB)
    csv_bytes = int((args.csv_mb if args.csv_mb is not None else (6 if q else 200)) * MB)
    reset_mb = args.reset_mb if args.reset_mb is not None else (15 if q else 200)
    reset_bytes = int(reset_mb * MB) or None
    gp_files = args.goodput_files if args.goodput_files is not None else (50 if q else 200)
    gp_file_bytes = int(args.goodput_file_kb * 1000)
    gp_big = int((args.goodput_big_mb if args.goodput_big_mb is not None else (8 if q else 64)) * MB)
    tag_rate, s3_rate, gp_rate = args.tag_rate * MB, args.s3_rate * MB, args.goodput_rate * MB
    parts = set(args.parts.split(","))
    tools = [t for t in ("ceti", "reference") if t in args.tools.split(",")]

    endpoint, bucket = tags_and_s3("boat_bench")
    s3_host, s3_port = endpoint.split("://", 1)[-1].rsplit(":", 1)
    install_signal_handlers()
    t_start = time.monotonic()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    ceti = ceti_bin()
    aws = str(REPO / ".venv" / "bin" / "aws")
    work = REPO / ".tmp" / "bench-work" / f"boat-{stamp}"
    work.mkdir(parents=True)
    launcher, launcher_desc = build_launcher(work, required=True)
    (work / "aws-config").write_text("")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CETI_") and k not in ("SSH_AUTH_SOCK",)}
    base_env.update({"CETI_TAG_PASSWORD": TAG_PASSWORD, "SSHPASS": TAG_PASSWORD,
                     "AWS_CONFIG_FILE": str(work / "aws-config")})

    results: list[Result] = []
    goodputs: list[Goodput] = []
    sshd_kind = "-"
    data_desc = ""
    if "ingest" in parts:
        data = REPO / ".tmp" / "bench-data" / ("boat-quick" if q else "boat")
        sets = [make_tag_data(data / f"tag{i}", i, audio_files, audio_bytes, csv_bytes) for i in range(2)]
        originals = {f"{TAGS[i]}/{p.name}": p for i, s in enumerate(sets) for p in s}
        per_tag = [sum(p.stat().st_size for p in s) for s in sets]
        data_desc = (f"{audio_files} × {audio_bytes / MB:.0f} MB `.flac` (random bytes) + {csv_bytes / MB:.0f} MB CSV "
                     f"in 4 files per tag; {sum(per_tag) / MB:.0f} MB in all")
        log(f"data: {data_desc}")
        tagbase = tagsim.workdir("boat-bench")
        ports: list[int] = []
        listeners: list[int] = []
        server = ServerCpu(None)
        try:
            for i, name in enumerate(TAGS):
                d = tagbase / f"tag{i}"
                tagsim.run("loopback", d, name, timeout=120)
                ports.append(int((d / "port").read_text()))
                listeners.append(int((d / "sshd.pid").read_text().strip()))
                for p in sets[i]:
                    dest = d / "data" / p.name
                    try:
                        os.link(p, dest)
                    except OSError:
                        shutil.copy2(p, dest)
                    os.chmod(dest, 0o644)
            server = ServerCpu(listeners[0])
            if server.dir is not None:
                (server.dir / "cgroup.procs").write_text(f"{listeners[1]}\n")
                sshd_kind = f"{server.kind} {server.dir}"
            log(f"tags on 127.0.0.1:{ports} (sshd pids {listeners}); sshd CPU from {sshd_kind}")
            for s in sets:  # page cache warm for both tools alike
                for p in s:
                    with open(p, "rb") as f:
                        while f.read(8 << 20):
                            pass
            for rep in range(args.reps):
                for tool in (tools if rep % 2 == 0 else tools[::-1]):
                    r = ingest_run(tool, rep, ceti=ceti, aws=aws, endpoint=endpoint, s3=(s3_host, int(s3_port)),
                                   bucket=bucket, ports=ports, listeners=listeners, server=server, work=work,
                                   launcher=launcher, env=base_env, per_tag=per_tag, rates=(tag_rate, s3_rate),
                                   delays=(args.tag_delay, args.s3_delay), reset_bytes=reset_bytes,
                                   files=sum(map(len, sets)), originals=originals, verbosity=args.ceti_log)
                    results.append(r)
        finally:
            for i in range(len(TAGS)):
                try:
                    tagsim.run("stop", tagbase / f"tag{i}", timeout=120)
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
            server.remove()
            shutil.rmtree(tagbase, ignore_errors=True)

    if "goodput" in parts:
        gp_data = REPO / ".tmp" / "bench-data" / ("boat-goodput-quick" if q else "boat-goodput")
        tree = gp_data / "tree" / "wt-5eed0001"
        big = gp_data / "big" / "wt-5eed0002"
        for d, n, size in ((tree, gp_files, gp_file_bytes), (big, 1, gp_big)):
            d.mkdir(parents=True, exist_ok=True)
            names = {f"{1726531200000 + k * 1000}.flac" for k in range(n)}
            for p in d.iterdir():
                if p.name not in names:
                    p.unlink()
            for nm in names:
                if not (d / nm).exists() or (d / nm).stat().st_size != size:
                    write_random(d / nm, size)
        cases = [("a", f"{gp_files} × {gp_file_bytes / 1000:.0f} KB", tree.parent, gp_files, gp_files * gp_file_bytes),
                 ("b", f"1 × {gp_big / MB:.0f} MB", big.parent, 1, gp_big)]
        for key, title, root, nfiles, nbytes in cases:
            runs = [("ceti", [])] + ([("ceti -j 16", ["-j", "16"])] if key == "a" else []) + [("aws s3 sync", None)]
            for tool, extra in runs:
                goodputs.append(goodput_run(key, title, tool, extra, root, nfiles, nbytes, ceti=ceti, aws=aws,
                                            s3=(s3_host, int(s3_port)), bucket=bucket, work=work, launcher=launcher,
                                            env=base_env, rate=gp_rate, delay=args.goodput_delay))

    # ---- report ------------------------------------------------------------------------------
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    raw = {"stamp": stamp, "args": vars(args), "ingest": [asdict(r) for r in results],
           "goodput": [{**asdict(g), "share": g.share} for g in goodputs]}
    (out_dir / f"boat-{stamp}.json").write_text(json.dumps(raw, indent=1))
    lines, verdicts, notes = [], [], []
    if results:
        lines += ["| tool | wall s | link floor s | wall / floor | wall / reference | CPU s | peak RSS MiB | "
                  "machine CPU s | sshd CPU s | sshd CPU s/GB | pulled MB | uploaded MB | uplink wire MB | resets |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        by = {t: [r for r in results if r.tool == t] for t in tools}
        med = {t: statistics.median(r.wall for r in rs) for t, rs in by.items() if rs}
        for t, rs in by.items():
            for r in rs:
                ref = med.get("reference")
                lines.append(
                    f"| {'ceti ingest' if t == 'ceti' else 'sftp → gzip -6 → aws s3 sync'}{'' if len(rs) == 1 else f' (run {r.rep + 1})'} | "
                    f"{r.wall:.1f} | {r.floor:.1f} | {r.wall / r.floor:.3f}× | {f'{r.wall / ref:.2f}×' if ref else '—'} | "
                    f"{r.cpu:.1f} | {r.maxrss_mib:.0f} | {r.machine_cpu:.1f} | "
                    f"{'—' if r.sshd_cpu is None else f'{r.sshd_cpu:.1f}'} | "
                    f"{'—' if r.sshd_cpu is None else f'{r.sshd_cpu / (r.pulled / 1e9):.2f}'} | {r.pulled / MB:.0f} | "
                    f"{r.uploaded / MB:.0f} | {r.wire.get('s3_up', 0) / MB:.0f} | {r.wire.get('resets', 0)} |")
                s3l = r.links["s3_up"]
                tags_txt = "; ".join(f"{TAGS[i]} pull {l['first']}–{l['last']} s, {l['idle_s']} s below half its cap "
                                     f"(longest {l['longest_idle_s']} s)" for i, l in enumerate(r.links["tags"]))
                spells = ", ".join(f"{a:g}–{b:g} s" for a, b in s3l.get("idle_spells", [])) or "none"
                notes.append(f"{t} run {r.rep + 1}: uplink carried bytes from {s3l['first']} s to {s3l['last']} s of "
                             f"{r.wall:.1f} s; inside that span {s3l['idle_s']} s below half the cap (longest "
                             f"{s3l['longest_idle_s']} s; spells of ≥ 1 s: {spells}), ≥ 90 % of the cap "
                             f"{s3l['full_share'] * 100:.0f} % of it; resets at "
                             f"{', '.join(f'{x:g}' for x in r.links.get('s3_resets_at', [])) or '—'} s; {tags_txt}.")
        if "ceti" in med:
            c = by["ceti"]
            ratio = statistics.median(r.wall / r.floor for r in c)
            verdicts.append(f"ceti ingest wall vs the link floor {ratio:.3f}× (target ≤ {TARGET_FLOOR}×): "
                            f"{'met' if ratio <= TARGET_FLOOR else 'missed'}")
            if "reference" in med:
                verdicts.append(f"ceti ingest wall vs the sequential reference {med['ceti'] / med['reference']:.2f}×")
            s = [r.sshd_cpu / (r.pulled / 1e9) for r in results if r.sshd_cpu is not None]
            if s and "reference" in med:
                sc = statistics.median(r.sshd_cpu / (r.pulled / 1e9) for r in c)
                sr = statistics.median(r.sshd_cpu / (r.pulled / 1e9) for r in by["reference"])
                verdicts.append(f"tags' sshd CPU per GB pulled: ceti {sc:.2f} s (with the tag-side sha256sum), "
                                f"sftp {sr:.2f} s ({sc / sr:.2f}×)")
    gtable = []
    if goodputs:
        gtable += ["| case | tool | payload MB | wall s | CPU s | goodput MB/s | goodput / cap | busy span s | busy goodput / cap |",
                   "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
        for g in goodputs:
            span = (g.busy.get("last") or 0) - (g.busy.get("first") or 0)
            gtable.append(f"| {g.case} | {g.tool} | {g.bytes / MB:.1f} | {g.wall:.1f} | {g.cpu:.1f} | "
                          f"{g.bytes / g.wall / MB:.2f} | {g.share:.2f} | {span:.1f} | "
                          f"{(g.bytes / span / g.cap) if span > 0 else 0:.2f} |")
        for g in goodputs:
            if g.tool == "ceti":
                verdicts.append(f"s3upload goodput at {g.rtt * 1000:.0f} ms RTT, {g.case}: {g.share:.2f} of the cap "
                                f"(target ≥ {TARGET_GOODPUT}): {'met' if g.share >= TARGET_GOODPUT else 'missed'}")
    table = "\n".join(lines)
    print(table)
    print("\n".join(gtable))
    print("\n".join("- " + v for v in verdicts))
    print("\n".join("- " + n for n in notes))
    log(f"raw results: {out_dir / f'boat-{stamp}.json'}; logs: {work}; total {time.monotonic() - t_start:.0f} s")
    if not args.record or args.no_record:
        return 0
    m = machine_info()
    versions = (f"ceti {sh([ceti, '--version'])}{ceti_source(ceti)}; {sh([aws, '--version'], both=True)}; "
                f"{sh(['ssh', '-V'], both=True)}; gzip; SeaweedFS {sh([os.environ.get('CETI_WEED') or 'weed', 'version'])}")
    section = f"""
## boat, emulated (issue #13) — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}
- Versions: {versions}
- Data: two simulated tags (OpenSSH sshd on 127.0.0.1 in UTS namespaces, hostnames {', '.join(TAGS)}, files at
  /data), each {data_desc.split(';')[0]}. In the page cache.
- Links (Tests/integration/tcpproxy.py in the bench process; caps per direction, shared by all connections of a
  link): each tag {args.tag_rate:g} MB/s with {args.tag_delay * 1000:g} ms each way; the uplink to S3 (SeaweedFS on
  loopback) {args.s3_rate:g} MB/s with {args.s3_delay * 1000:g} ms each way, one connection reset after every
  {reset_mb:g} MB relayed. Fresh relays per run. MB = 10^6 B.
- ceti: `ingest -t 127.0.0.1:P0 -t 127.0.0.1:P1 --endpoint-url RELAY` with its defaults (tags in parallel, tag-side
  sha256sum, gzip 6, its default number of transfers). Reference, one step after the other: `sftp` of each tag (sshpass), `gzip -6` per
  CSV, `aws s3 sync` (the CLI's defaults), through the same relays. {args.reps} run(s) each; CPU = user+sys of the
  tool and its children (wait4, {launcher_desc}); sshd CPU from one cgroup holding both tags' sshd (sessions and
  ceti's tag-side sha256sum included), per GB of files pulled; machine CPU = every process (/proc/stat).
- Link floor = max(bytes of the busier tag ÷ {args.tag_rate:g} MB/s, bytes uploaded ÷ {args.s3_rate:g} MB/s), payload
  bytes (each tool's own objects). Uplink wire MB: what the relay carried upstream (HTTP, and parts resent after
  resets).
- Goodput: `ceti s3upload` (fresh ledger and prefix) through a relay capped at {args.goodput_rate:g} MB/s with
  {args.goodput_delay * 1000:g} ms each way (RTT {2 * args.goodput_delay * 1000:g} ms), no resets; goodput = payload ÷ wall;
  busy = payload ÷ the span the relay carried upload bytes.

{table}

{chr(10).join(gtable)}

- {(chr(10) + '- ').join(verdicts)}
- {(chr(10) + '- ').join(notes)}
"""
    record(section, t_start)
    return 0


def ingest_run(tool: str, rep: int, *, ceti: str, aws: str, endpoint: str, s3: tuple[str, int], bucket: str,
               ports: list[int], listeners: list[int], server: ServerCpu, work: Path, launcher: list[str],
               env: dict, per_tag: list[int], rates: tuple[float, float], delays: tuple[float, float],
               reset_bytes: int | None, files: int, originals: dict[str, Path], verbosity: str = "-v") -> Result:
    tag_rate, s3_rate = rates
    out = work / f"{tool}-{rep}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    prefix = f"boat-{int(time.time())}-{tool}-{rep}"
    tag_proxies = [start_tcp_proxy("127.0.0.1", p, delay=delays[0], rate=tag_rate) for p in ports]
    s3p = start_tcp_proxy(s3[0], s3[1], delay=delays[1], rate=s3_rate, reset_every=reset_bytes)
    relay_ep = f"http://127.0.0.1:{s3p.port}"
    env = dict(env, XDG_CONFIG_HOME=str(out / "config"), XDG_DATA_HOME=str(out / "data"))
    if tool == "ceti":
        env["CETI_LEDGER"] = str(out / "ledger.sqlite")
        cmd = [ceti, "ingest", "--user", "cetitag", "--staging", str(out / "staging"), "--endpoint-url", relay_ep,
               "--bucket", bucket, "--prefix", prefix, "--log-file", str(out / "ceti.log"), verbosity,
               *[a for p in tag_proxies for a in ("-t", f"127.0.0.1:{p.port}")]]
    else:
        steps = []
        for name, p in zip(TAGS, tag_proxies):
            d = out / "ref" / name
            steps.append(f'mkdir -p "{d}" && sshpass -e sftp -q {SSH_OPTS} -P {p.port} '
                         f'cetitag@127.0.0.1:/data/* "{d}/" >/dev/null')
        steps.append(f'for f in "{out}"/ref/*/*.csv; do gzip -6 "$f" || exit 1; done')
        steps.append(f'{aws} --endpoint-url {relay_ep} s3 sync --only-show-errors "{out}/ref" "s3://{bucket}/{prefix}/"')
        cmd = ["bash", "-c", " && ".join(steps)]
    names = {f"tag{i}": p for i, p in enumerate(tag_proxies)} | {"s3": s3p}
    floor_guess = max(max(per_tag) / tag_rate, sum(per_tag) / s3_rate)
    log(f"{tool} run {rep + 1}: starting (pull floor {max(per_tag) / tag_rate:.0f} s, upload of everything "
        f"uncompressed {sum(per_tag) / s3_rate:.0f} s)")
    tl = Timeline(names)
    try:
        m: Measured = run_measured(cmd, env, out / tool, 20 * floor_guess + 600, launcher, server_cpu=server.read,
                                   settle=lambda: [wait_sessions_gone(lp) for lp in listeners], relay=True)
    finally:
        tl.stop()
        for p in names.values():
            p.stop()
    if m.rc != 0 or m.timed_out:
        sys.exit(f"bench: {tool} failed (rc {m.rc}{', timed out' if m.timed_out else ''}); logs in {out}:\n{m.stderr[-3000:]}")
    objs = list_objects(aws, endpoint, bucket, prefix, env)
    want = files + (4 if tool == "ceti" else 0)  # ceti: a manifest and a _COMPLETE per tag
    if len(objs) != want:
        sys.exit(f"bench: {tool}: {len(objs)} objects under {prefix}, expected {want}")
    check_objects(aws, endpoint, bucket, objs, originals, out, env)
    uploaded = sum(s for _, s in objs)
    floor = max(max(per_tag) / tag_rate, uploaded / s3_rate)
    links = {"tags": [link_stats(tl.series(f"tag{i}", "down"), tag_rate, m.wall) for i in range(len(ports))],
             "s3_up": link_stats(tl.series("s3", "up"), s3_rate, m.wall), "s3_resets_at": tl.reset_times("s3")}
    r = Result(tool=tool, rep=rep, wall=m.wall, cpu=m.cpu, maxrss_mib=m.maxrss_kib / 1024, machine_cpu=m.machine_cpu,
               relay_cpu=m.relay_cpu, sshd_cpu=m.server_cpu, pulled=sum(per_tag), pulled_per_tag=per_tag,
               uploaded=uploaded, objects=len(objs), floor=floor,
               wire={"tags_down": [p.down for p in tag_proxies], "s3_up": s3p.up, "s3_down": s3p.down,
                     "resets": s3p.resets},
               links=links, timeline=tl.as_json())
    log(f"{tool} run {rep + 1}: wall {m.wall:.1f} s (floor {floor:.1f} s, {m.wall / floor:.3f}×), CPU {m.cpu:.1f} s, "
        f"sshd CPU {m.server_cpu if m.server_cpu is None else round(m.server_cpu, 1)} s, {s3p.resets} resets, "
        f"uplink {s3p.up / MB:.0f} MB on the wire for {uploaded / MB:.0f} MB of objects; links {links}")
    shutil.rmtree(out / "staging", ignore_errors=True)
    shutil.rmtree(out / "ref", ignore_errors=True)
    return r


def goodput_run(case: str, title: str, tool: str, extra: list[str] | None, root: Path, nfiles: int, nbytes: int, *,
                ceti: str, aws: str, s3: tuple[str, int], bucket: str, work: Path, launcher: list[str], env: dict,
                rate: float, delay: float) -> Goodput:
    out = work / f"goodput-{case}-{tool.replace(' ', '_')}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    prefix = f"boat-goodput-{int(time.time())}-{case}-{tool.replace(' ', '')}"
    p = start_tcp_proxy(s3[0], s3[1], delay=delay, rate=rate)
    ep = f"http://127.0.0.1:{p.port}"
    env = dict(env, CETI_LEDGER=str(out / "ledger.sqlite"), XDG_CONFIG_HOME=str(out / "config"),
               XDG_DATA_HOME=str(out / "data"))
    if extra is not None:
        cmd = [ceti, "s3upload", "--endpoint-url", ep, "--bucket", bucket, "--prefix", prefix,
               "--log-file", str(out / "ceti.log"), "-v", *extra, str(root)]
    else:
        cmd = [aws, "--endpoint-url", ep, "s3", "sync", "--only-show-errors", str(root), f"s3://{bucket}/{prefix}/"]
    tl = Timeline({"s3": p})
    try:
        m = run_measured(cmd, env, out / "run", 600 + 20 * nbytes / rate, launcher)
    finally:
        tl.stop()
        p.stop()
    if m.rc != 0 or m.timed_out:
        sys.exit(f"bench: goodput {case} {tool} failed (rc {m.rc}); logs in {out}:\n{m.stderr[-3000:]}")
    g = Goodput(case=f"{case}: {title}", tool=tool, bytes=nbytes, files=nfiles, wall=m.wall, cpu=m.cpu, cap=rate,
                rtt=2 * delay, busy=link_stats(tl.series("s3", "up"), rate, m.wall))
    log(f"goodput {case} {tool}: {m.wall:.1f} s, {g.share:.2f} of the cap; uplink {g.busy}")
    return g


if __name__ == "__main__":
    sys.exit(main())
