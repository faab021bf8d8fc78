#!/usr/bin/env python3
"""ceti s3upload against `aws s3 sync`, both uploading to the same local SeaweedFS.

Run through the S3 wrapper (it starts SeaweedFS, exports credentials and pre-creates
the bucket), normally via `make bench`:

    CETI_BIN=$PWD/.build/release/ceti CETI_TEST_BUCKETS=ceti-bench \\
        bash scripts/with-s3.sh .venv/bin/python bench/s3upload_bench.py [--quick] [--reps N]

Cases (same data for both tools, each run into a fresh prefix of its own):
  a  one 1 GiB file (random bytes: incompressible, like FLAC)
  b  a tag-like tree: 8 x 172 MiB audio files + 400 small CSVs (1-64 KiB)
  c  10,000 x 4 KiB CSV files in 10 device folders
  d  rerun of c with nothing new (ceti reuses c's ledger, aws syncs to c's destination)

Each run is one child process, measured with os.wait4: wall seconds, user+sys CPU
seconds and peak RSS of that process (ceti is one process, so is the aws CLI). The
SeaweedFS process's CPU over the run is read from /proc as well. After every run,
outside the timed region, the destination is listed with boto3 and must hold the
expected number of objects and bytes (for d: exactly the objects c left, unchanged).

Data sets are generated once under $REPO/.tmp/bench-data and reused. They are in the
page cache during the runs (no cache dropping), which favours neither tool.

Prints a Markdown table and appends a dated section to $REPO/BENCHMARKS.md (not with
--quick unless --record; never with --no-record). Raw results go to bench/out/.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import (  # noqa: E402
    KiB, MiB, REPO, DataSet, FileSpec, Measured, build_launcher, ceti_source, ensure_dataset,
    bench_args, ceti_bin, failure_lines, install_signal_handlers, log, machine_info, run_measured, sh,
)

REGION = "us-east-1"

# Targets from the issue (ceti relative to aws s3 sync).
TARGET_WALL = 0.5
TARGET_CPU = 0.25
TARGET_RSS_MIB = 64
TARGET_NOOP_WALL = 0.1

CASE_TITLES = {
    "a": "a: 1 file x 1 GiB",
    "b": "b: tag tree 8 x 172 MiB + 400 CSV",
    "c": "c: 10,000 x 4 KiB",
    "d": "d: rerun of c, nothing new",
}


# ---- data sets ------------------------------------------------------------------------
def dataset_specs(quick: bool) -> dict[str, list[FileSpec]]:
    rng = random.Random(20240917)
    if quick:
        big, n_audio, audio, n_csv, n_small = 64 * MiB, 4, 16 * MiB, 40, 500
    else:
        big, n_audio, audio, n_csv, n_small = 1024 * MiB, 8, 172 * MiB, 400, 10_000
    one = [FileSpec("wt-a1000001/2024-09-17/recording.flac", big, "random")]
    tag = [FileSpec(f"wt-b17f0c2e/sound/sound_{i:03d}.flac", audio, "random") for i in range(n_audio)]
    tag += [FileSpec(f"wt-b17f0c2e/sensors/sensors_{i:03d}.csv", rng.randint(1 * KiB, 64 * KiB), "csv")
            for i in range(n_csv)]
    per_dev = max(1, n_small // 10)
    small = [FileSpec(f"wt-c{i // per_dev:07d}/f_{i:05d}.csv", 4 * KiB, "csv") for i in range(n_small)]
    return {"onegb": one, "tag": tag, "small": small}


def case_titles(sets: dict[str, DataSet]) -> dict[str, str]:
    def size(n: int) -> str:
        return f"{n // (1024 * MiB)} GiB" if n % (1024 * MiB) == 0 else \
            f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB"
    a, b, c = sets["a"], sets["b"], sets["c"]
    audio = [f for f in b.files if f.kind == "random"]
    return {
        "a": f"a: 1 file × {size(a.files[0].size)}",
        "b": f"b: tag tree {len(audio)} × {size(audio[0].size)} + {b.count - len(audio)} CSV",
        "c": f"c: {c.count:,} × {size(c.files[0].size)}",
        "d": "d: rerun of c, nothing new",
    }


# ---- the server's CPU (the child itself is measured by benchlib.run_measured) ---------------
def find_server_pid(port: int = 8333) -> int | None:
    """The pid listening on the S3 port (our SeaweedFS `weed mini`), via ss."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None


def proc_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime, stime are fields 14, 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- S3 side ------------------------------------------------------------------------------
def s3_client(endpoint: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 5}))


def list_prefix(s3, bucket: str, prefix: str) -> dict[str, tuple[int, str, str]]:
    objs: dict[str, tuple[int, str, str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            objs[o["Key"]] = (o["Size"], o["ETag"], o["LastModified"].isoformat())
    return objs


def count_unfinished_uploads(s3, bucket: str, prefix: str) -> int:
    """Multipart uploads still open under the prefix (-1: the server cannot say)."""
    try:
        resp = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix + "/")
    except Exception:  # noqa: BLE001 - informational only
        return -1
    return len(resp.get("Uploads", []))


# ---- the benchmark ------------------------------------------------------------------------
@dataclass
class Run:
    case: str
    tool: str
    rep: int
    m: Measured | None = None
    ok: bool = False
    problem: str = ""
    bytes: int = 0
    files: int = 0
    dest: str = ""
    cmd: list[str] = field(default_factory=list)


def main() -> int:
    ap = bench_args(__doc__)
    ap.add_argument("--budget-min", type=float, default=18.0,
                    help="skip further repetitions when they would end later than this many minutes "
                         "after the start (default 18)")
    ap.add_argument("--cases", default="abcd", help="which cases (default abcd; d needs c)")
    ap.add_argument("--ceti-jobs", type=int, default=4, help="ceti -j (default 4, ceti's default)")
    ap.add_argument("--aws-concurrency", type=int, default=10,
                    help="aws s3 max_concurrent_requests (default 10, the CLI's default)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    ap.add_argument("--record", action="store_true", help="append to BENCHMARKS.md even with --quick")
    args = ap.parse_args()
    if "d" in args.cases and "c" not in args.cases:
        ap.error("case d reruns c: include c")

    started = time.monotonic()
    endpoint = os.environ.get("CETI_TEST_ENDPOINT", "").rstrip("/")
    buckets = [b for b in os.environ.get("CETI_TEST_BUCKETS", "").replace(" ", ",").split(",") if b]
    if not endpoint or not os.environ.get("AWS_ACCESS_KEY_ID") or not buckets:
        sys.exit("bench: CETI_TEST_ENDPOINT / AWS_ACCESS_KEY_ID / CETI_TEST_BUCKETS not set: run through "
                 "scripts/with-s3.sh (make bench)")
    bucket = buckets[0]
    ceti = ceti_bin()
    aws = str(REPO / ".venv/bin/aws")
    weed = str(REPO / ".venv/bin/weed")
    for exe in (ceti, aws):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench: {exe} is not executable")

    # Work dirs: data (reused), per-invocation scratch (ledgers, configs, logs).
    data_base = REPO / ".tmp/bench-data" / ("quick" if args.quick else "full")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    scratch = REPO / ".tmp/bench-work" / stamp
    logs = scratch / "logs"
    logs.mkdir(parents=True)
    out_dir = REPO / "bench/out"
    out_dir.mkdir(parents=True, exist_ok=True)

    specs = dataset_specs(args.quick)
    t_gen = time.monotonic()
    sets = {
        "a": ensure_dataset(data_base, "onegb", specs["onegb"]),
        "b": ensure_dataset(data_base, "tag", specs["tag"]),
        "c": ensure_dataset(data_base, "small", specs["small"]),
    }
    sets["d"] = sets["c"]
    CASE_TITLES.update(case_titles(sets))
    os.sync()  # freshly written data sets: let writeback finish before anything is timed
    gen_seconds = time.monotonic() - t_gen

    # Isolated configuration for both tools: nothing from ~/.aws or ~/.config leaks in.
    aws_config = scratch / "aws-config"
    aws_config.write_text(
        "[default]\n"
        f"region = {REGION}\n"
        "s3 =\n"
        f"  max_concurrent_requests = {args.aws_concurrency}\n"
        "  multipart_threshold = 8MB\n"
        "  multipart_chunksize = 8MB\n")
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("CETI_") and k not in ("CETI_BIN",) or k in ("AWS_PROFILE", "AWS_ENDPOINT_URL",
                                                                   "AWS_ENDPOINT_URL_S3"):
            env.pop(k, None)
    env.update({
        "AWS_CONFIG_FILE": str(aws_config),
        "AWS_SHARED_CREDENTIALS_FILE": str(scratch / "no-credentials"),
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "XDG_CONFIG_HOME": str(scratch / "xdg-config"),
        "XDG_DATA_HOME": str(scratch / "xdg-data"),
    })

    launcher, launcher_desc = build_launcher(scratch)
    s3 = s3_client(endpoint)
    server_pid = find_server_pid()
    if server_pid is None:
        log("warning: cannot find the SeaweedFS pid (ss): server CPU will not be reported")

    versions = {
        "ceti": sh([ceti, "--version"]) + ceti_source(ceti),
        "aws": sh([aws, "--version"]),
        "weed": sh([weed, "version"]),
    }
    machine = machine_info()
    log(f"machine: {machine}")
    log(f"versions: {versions}")

    run_id = f"bench-{stamp}"
    runs: list[Run] = []
    c_state: dict[tuple[str, int], tuple[str, Path | None, dict]] = {}  # (tool, rep) -> (prefix, ledger, listing)

    def one_run(case: str, tool: str, rep: int) -> Run:
        ds = sets[case]
        r = Run(case, tool, rep, bytes=ds.total, files=ds.count)
        if case == "d":
            if (tool, rep) not in c_state:
                r.problem = "no case c run to rerun"
                return r
            prefix, ledger, before = c_state[(tool, rep)]
        else:
            prefix = f"{run_id}/{case}-{tool}-r{rep}"
            ledger = scratch / f"ledger-{case}-r{rep}.sqlite" if tool == "ceti" else None
        if tool == "ceti":
            cmd = [ceti, "s3upload", "--bucket", bucket, "--endpoint-url", endpoint, "--region", REGION,
                   "--prefix", prefix, "-j", str(args.ceti_jobs), "--part-size", "8MiB",
                   "--ledger", str(ledger), "--quiet", str(ds.root)]
        else:
            cmd = [aws, "s3", "sync", str(ds.root), f"s3://{bucket}/{prefix}", "--endpoint-url", endpoint,
                   "--only-show-errors", "--no-progress"]
        r.cmd, r.dest = cmd, f"s3://{bucket}/{prefix}/"
        log(f"run {case}/{tool}/r{rep}: {' '.join(cmd)}")
        m = run_measured(cmd, env, logs / f"{case}-{tool}-r{rep}", args.timeout, launcher,
                         server_cpu=lambda: proc_cpu_seconds(server_pid))
        r.m = m
        # ---- verification, outside the timed region
        problems = []
        if m.timed_out:
            problems.append(f"killed after {args.timeout:.0f} s")
        if m.rc != 0:
            problems.append(f"exit status {m.rc}")
        try:
            listing = list_prefix(s3, bucket, prefix)
        except Exception as e:  # noqa: BLE001
            listing = {}
            problems.append(f"listing failed: {e}")
        n, total = len(listing), sum(v[0] for v in listing.values())
        if (n, total) != (ds.count, ds.total):
            problems.append(f"destination holds {n} objects / {total} bytes, expected {ds.count} / {ds.total}")
        if case == "c":
            c_state[(tool, rep)] = (prefix, ledger, listing)
        if case == "d" and listing != before:
            changed = sum(1 for k, v in listing.items() if before.get(k) != v)
            problems.append(f"not a no-op: {changed} objects new or rewritten")
        if case != "d":
            mpu = count_unfinished_uploads(s3, bucket, prefix)
            if mpu > 0:
                problems.append(f"{mpu} unfinished multipart uploads left behind")
        r.ok = not problems
        r.problem = "; ".join(problems)
        status = "ok" if r.ok else f"PROBLEM: {r.problem}"
        log(f"     wall {m.wall:.2f} s, cpu {m.cpu:.2f} s (user {m.user:.2f} sys {m.sys:.2f}), "
            f"peak RSS {m.maxrss_kib / 1024:.1f} MiB, server cpu "
            f"{m.server_cpu:.2f} s; {status}" if m.server_cpu is not None else
            f"     wall {m.wall:.2f} s, cpu {m.cpu:.2f} s, peak RSS {m.maxrss_kib / 1024:.1f} MiB; {status}")
        if not r.ok and m.stderr.strip():
            tail = "\n".join(m.stderr.strip().splitlines()[-15:])
            log(f"     stderr (last lines):\n{tail}")
        return r

    cases = [c for c in "abcd" if c in args.cases]
    deadline = started + args.budget_min * 60
    rep_seconds: list[float] = []
    reps_done = 0
    skipped_reps = ""
    for rep in range(1, args.reps + 1):
        if rep > 1:
            estimate = max(rep_seconds)
            if time.monotonic() + estimate > deadline:
                skipped_reps = (f"repetitions {rep}..{args.reps} skipped: one more round (~{estimate:.0f} s) "
                                f"would exceed the {args.budget_min:g} min budget")
                log(skipped_reps)
                break
        t_rep = time.monotonic()
        tools = ["ceti", "aws"] if rep % 2 == 1 else ["aws", "ceti"]  # alternate who goes first
        for case in cases:
            for tool in tools:
                runs.append(one_run(case, tool, rep))
                time.sleep(2)  # let the server settle between runs
        rep_seconds.append(time.monotonic() - t_rep)
        reps_done = rep

    total_seconds = time.monotonic() - started

    # ---- report
    rows = summarize(runs, cases)
    table = markdown_table(rows)
    settings = (
        f"ceti `s3upload -j {args.ceti_jobs} --part-size 8MiB --quiet` (fresh ledger per case; d reuses c's); "
        f"aws `s3 sync --only-show-errors --no-progress` with max_concurrent_requests = {args.aws_concurrency}, "
        f"multipart_threshold = multipart_chunksize = 8MB (the CLI's defaults, including its default "
        f"checksum behaviour); endpoint {endpoint} (path style), region {REGION}; each tool into its own "
        f"fresh prefix of bucket `{bucket}`; {reps_done} timed run(s) per case and tool, tool order "
        f"alternating per round, no warm-up; all data in the page cache (no cache dropping); "
        f"rusage taken by {launcher_desc}."
    )
    print()
    print(table)
    print()
    print(f"Settings: {settings}")
    failures = [r for r in runs if not r.ok]
    for r in failures:
        print(f"PROBLEM {r.case}/{r.tool}/r{r.rep}: {r.problem}\n  command: {' '.join(r.cmd)}")
    print(f"\nTotal bench time {total_seconds:.0f} s (data preparation {gen_seconds:.0f} s). "
          f"Logs: {logs}")
    if skipped_reps:
        print(skipped_reps)

    raw = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(), "quick": args.quick, "machine": machine,
        "versions": versions, "settings": settings, "total_seconds": total_seconds,
        "runs": [{"case": r.case, "tool": r.tool, "rep": r.rep, "ok": r.ok, "problem": r.problem,
                  "bytes": r.bytes, "files": r.files, "dest": r.dest, "cmd": r.cmd,
                  **({"rc": r.m.rc, "wall": r.m.wall, "cpu": r.m.cpu, "user": r.m.user, "sys": r.m.sys,
                      "maxrss_kib": r.m.maxrss_kib, "server_cpu": r.m.server_cpu} if r.m else {})}
                 for r in runs],
    }
    raw_path = out_dir / f"s3upload-{stamp}{'-quick' if args.quick else ''}.json"
    raw_path.write_text(json.dumps(raw, indent=1))
    print(f"Raw results: {raw_path}")

    record = not args.no_record and (not args.quick or args.record)
    if record:
        section = benchmarks_section(machine, versions, settings, table, rows, runs, args, total_seconds,
                                     skipped_reps)
        path = REPO / "BENCHMARKS.md"
        if not path.exists():
            path.write_text(
                "# Benchmarks\n\n"
                "`make bench` (bench/s3upload_bench.py) uploads the same data with `ceti s3upload` and "
                "`aws s3 sync` to a local SeaweedFS on loopback and measures each run as a child "
                "process (wall, user+sys CPU, peak RSS). Targets: wall ≤ 0.5× aws, CPU ≤ 0.25× aws, "
                "peak RSS ≤ 64 MB, no-op rerun ≤ 0.1× aws. Newest results last.\n")
        with open(path, "a") as f:
            f.write("\n" + section)
        print(f"Appended to {path}")
    return 1 if failures else 0


@dataclass
class Row:
    case: str
    tool: str
    n: int
    ok: bool
    wall_med: float
    wall_min: float
    cpu_med: float
    server_med: float | None
    rss_max_mib: float
    mibps: float | None
    wall_ratio: float | None = None
    cpu_ratio: float | None = None
    verdict: str = ""


def summarize(runs: list[Run], cases: list[str]) -> list[Row]:
    rows: list[Row] = []
    for case in cases:
        by_tool: dict[str, Row] = {}
        for tool in ("ceti", "aws"):
            rs = [r for r in runs if r.case == case and r.tool == tool and r.m is not None]
            if not rs:
                continue
            walls = [r.m.wall for r in rs]
            srv = [r.m.server_cpu for r in rs if r.m.server_cpu is not None]
            wall_med = statistics.median(walls)
            by_tool[tool] = Row(
                case, tool, len(rs), all(r.ok for r in rs), wall_med, min(walls),
                statistics.median(r.m.cpu for r in rs), statistics.median(srv) if srv else None,
                max(r.m.maxrss_kib for r in rs) / 1024,
                None if case == "d" else rs[0].bytes / MiB / wall_med)
        c, a = by_tool.get("ceti"), by_tool.get("aws")
        if c and a:
            c.wall_ratio = c.wall_med / a.wall_med if a.wall_med else None
            c.cpu_ratio = c.cpu_med / a.cpu_med if a.cpu_med else None
            missed = []
            if case == "d":
                if c.wall_ratio is None or c.wall_ratio > TARGET_NOOP_WALL:
                    missed.append(f"wall > {TARGET_NOOP_WALL}×")
            else:
                if c.wall_ratio is None or c.wall_ratio > TARGET_WALL:
                    missed.append(f"wall > {TARGET_WALL}×")
                if c.cpu_ratio is None or c.cpu_ratio > TARGET_CPU:
                    missed.append(f"CPU > {TARGET_CPU}×")
            if c.rss_max_mib > TARGET_RSS_MIB:
                missed.append(f"RSS > {TARGET_RSS_MIB} MiB")
            if not (c.ok and a.ok):
                c.verdict = "invalid (failed run)"
            else:
                c.verdict = "yes" if not missed else "no (" + ", ".join(missed) + ")"
        for t in ("ceti", "aws"):
            if t in by_tool:
                rows.append(by_tool[t])
    return rows


def markdown_table(rows: list[Row]) -> str:
    head = ("| case | tool | runs | wall s (median) | wall s (min) | CPU s user+sys | server CPU s | "
            "peak RSS MiB | MiB/s | wall ceti/aws | CPU ceti/aws | target met |")
    sep = "|" + "|".join(["---"] * 2 + ["--:"] * 9 + ["---"]) + "|"
    lines = [head, sep]

    def f(x: float | None, d: int = 2) -> str:
        return "—" if x is None else f"{x:.{d}f}"

    for r in rows:
        name = CASE_TITLES[r.case] + ("" if r.ok else " **(FAILED)**")
        lines.append(
            f"| {name} | {r.tool} | {r.n} | {f(r.wall_med)} | {f(r.wall_min)} | {f(r.cpu_med)} | "
            f"{f(r.server_med)} | {f(r.rss_max_mib, 1)} | {f(r.mibps, 1)} | "
            f"{f(r.wall_ratio) if r.tool == 'ceti' else ''} | {f(r.cpu_ratio) if r.tool == 'ceti' else ''} | "
            f"{r.verdict if r.tool == 'ceti' else ''} |")
    return "\n".join(lines)


def observations(rows: list[Row], nproc: int) -> list[str]:
    """Plain facts derived from the numbers; the author adds interpretation by hand."""
    out = []
    byk = {(r.case, r.tool): r for r in rows}
    for case in "abcd":
        c, a = byk.get((case, "ceti")), byk.get((case, "aws"))
        if not (c and a):
            continue
        parts = []
        for r in (c, a):
            busy = (r.cpu_med + (r.server_med or 0)) / r.wall_med / nproc if r.wall_med else 0
            srv = (f", server {r.server_med / r.wall_med:.2f} cores"
                   if r.server_med is not None and r.wall_med else "")
            parts.append(f"{r.tool}: client {r.cpu_med / r.wall_med:.2f} cores{srv}, machine {busy:.0%} busy")
        out.append(f"Case {case}: " + "; ".join(parts) + f"; target met: {c.verdict}.")
    return out


def benchmarks_section(machine, versions, settings, table, rows, runs, args, total_seconds, skipped) -> str:
    date = sh(["date", "-u"])
    nproc = int(machine["nproc"]) if machine["nproc"].isdigit() else 1
    lines = [
        f"## {date}{' (quick smoke run: small data, not a measurement)' if args.quick else ''}",
        "",
        f"- Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, "
        f"Linux {machine['kernel']}",
        f"- Versions: ceti {versions['ceti']}; {versions['aws']}; SeaweedFS `weed version`: {versions['weed']} "
        f"(`weed mini`, loopback)",
        f"- Settings: {settings}",
        f"- Total bench time: {total_seconds:.0f} s" + (f"; {skipped}" if skipped else ""),
        "- Columns: medians over the runs (peak RSS: the maximum); CPU s and peak RSS are the uploading "
        "process's own (its wait4 rusage, taken by a tiny launcher so that the bench's own Python RSS "
        "does not leak into ru_maxrss); server CPU s is SeaweedFS's user+sys over the same interval; "
        "MiB/s = data size / median wall.",
        "",
        table,
        "",
    ]
    lines += failure_lines(runs)
    lines.append("Measured load (cores busy = CPU s / wall s; machine busy = (client + server CPU) / "
                 f"(wall × {nproc})):")
    lines.append("")
    for o in observations(rows, nproc):
        lines.append(f"- {o}")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    install_signal_handlers()
    sys.exit(main())
