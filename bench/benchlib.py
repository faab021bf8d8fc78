"""Helpers shared by the benchmark scripts in bench/ (no third-party imports).

- data sets: FileSpec, DataSet, csv_bytes, write_random, dataset_ok, ensure_dataset
- measuring a child: LAUNCHER_C, build_launcher, Measured, run_measured (plus machine_cpu,
  self_cpu), and on_signal, which stops the child being measured on SIGINT/SIGTERM
- reporting: log, fmt_bytes, sh, ceti_source, machine_info
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
KiB = 1024


# ---- misc ---------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def sh(cmd: list[str], both: bool = False) -> str:
    """The first line of a command's stdout (else its stderr; with both: of stdout + stderr)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        text = (r.stdout + r.stderr) if both else (r.stdout.strip() or r.stderr.strip())
        return text.strip().splitlines()[0] if text.strip() else "?"
    except (OSError, subprocess.SubprocessError) as e:
        return f"? ({e})"


def ceti_source(ceti: str) -> str:
    """Which sources the binary was built from, as far as read-only git can tell."""
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0")  # never refresh (write) the index
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30, env=env).stdout.strip()
        head_time = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"], capture_output=True,
                                   text=True, timeout=30, env=env).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "Sources",
                                "Package.swift"], capture_output=True, timeout=30, env=env).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return ""
    if not head:
        return ""
    built = dt.datetime.fromtimestamp(os.path.getmtime(ceti), dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if head_time.isdigit() and int(head_time) > os.path.getmtime(ceti):
        return f" (built {built}; HEAD {head} is newer than the binary)"
    return f" (built {built} from commit {head}{' + uncommitted changes in Sources/' if dirty else ''})"


def machine_info() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "memory": mem, "kernel": platform.release()}


# ---- data sets ------------------------------------------------------------------------
@dataclass
class FileSpec:
    rel: str          # path below the data set's root (may have folders: DEVICE/...)
    size: int
    kind: str         # "random" or "csv"


@dataclass
class DataSet:
    name: str
    root: Path
    files: list[FileSpec]
    check: dict[str, str] = field(default_factory=dict)  # rel -> sha256, for benches that verify content

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


_CSV_POOL: bytes | None = None


def csv_bytes(index: int, size: int) -> bytes:
    """Plausible sensor CSV text of exactly `size` bytes (cheap: slices a shared pool)."""
    global _CSV_POOL
    if _CSV_POOL is None:
        rng = random.Random(7)
        rows = [f"{1726531200 + i * 0.04:.2f},{rng.uniform(0, 1500):.2f},{rng.uniform(2, 28):.3f},"
                f"{rng.uniform(-1, 1):.5f},{rng.uniform(-1, 1):.5f},{rng.uniform(-1, 1):.5f},"
                f"{rng.randint(0, 4095)}\n" for i in range(4000)]
        _CSV_POOL = "".join(rows).encode()
    head = f"# file {index}\ntime,depth_m,temp_c,ax,ay,az,light\n".encode()
    need = max(0, size - len(head))
    start = (index * 7919) % (len(_CSV_POOL) // 2)
    body = _CSV_POOL[start:start + need]
    while len(body) < need:
        body += _CSV_POOL[: need - len(body)]
    data = (head + body)[:size]
    if size > 0:
        data = data[:-1] + b"\n"
    return data


def write_random(path: Path, size: int) -> None:
    chunk = 8 * MiB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def dataset_ok(root: Path, files: list[FileSpec]) -> bool:
    """root holds exactly these files (regular files, not links) with these sizes."""
    if not root.is_dir():
        return False
    want = {f.rel: f.size for f in files}
    seen = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) or want.get(os.path.relpath(p, root)) != os.path.getsize(p):
                return False
            seen += 1
    return seen == len(want)


def ensure_dataset(base: Path, name: str, files: list[FileSpec],
                   size_text: Callable[[int], str] = fmt_bytes) -> DataSet:
    """base/name holding `files`: reused when its names and sizes match, else generated afresh
    (random bytes or CSV-like text). size_text formats the total for the log line."""
    root = base / name
    if dataset_ok(root, files):
        log(f"data set {name}: reusing {root}")
        return DataSet(name, root, files)
    log(f"data set {name}: generating {len(files)} files, {size_text(sum(f.size for f in files))} in {root}")
    t0 = time.monotonic()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for i, spec in enumerate(files):
        p = root / spec.rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if spec.kind == "random":
            write_random(p, spec.size)
        else:
            p.write_bytes(csv_bytes(i, spec.size))
    if not dataset_ok(root, files):
        sys.exit(f"bench: generated data set {root} does not match its spec")
    log(f"data set {name}: done in {time.monotonic() - t0:.1f} s")
    return DataSet(name, root, files)


# ---- measuring a child ------------------------------------------------------------------
# Why a launcher: on Linux a child's ru_maxrss starts from the high-water RSS of the memory
# image it exec'd from, and Python spawns children from its own (vfork/fork) image, so a
# direct os.wait4 on a child of this ~60-80 MiB Python process reports at least that much,
# even for /bin/true. The launcher is a tiny C program (about 1 MiB resident): it
# posix_spawns the tool, wait4s for it and writes the tool's own rusage to a file. Like any
# wait4 rusage, that includes the tool's reaped descendants (e.g. sftp's and scp's `ssh`).
LAUNCHER_C = r"""
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: ruspawn RESULT CMD...\n"); return 2; }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
    if (rc != 0) { fprintf(stderr, "ruspawn: %s: %s\n", argv[2], strerror(rc)); return 127; }
    signal(SIGINT, SIG_IGN);  /* the tool gets terminal signals itself; we wait for it */
    int st; struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) { perror("ruspawn: wait4"); return 126; }
    }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 125;
    FILE *f = fopen(argv[1], "w");
    if (!f) { perror("ruspawn: result file"); return 126; }
    fprintf(f, "%d %ld.%06ld %ld.%06ld %ld\n", code, (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
            (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
    fclose(f);
    return code;
}
"""


def build_launcher(scratch: Path, required: bool = False) -> tuple[list[str], str]:
    """(command prefix taking RESULT_FILE as first argument, description).

    Without a C compiler, or when compiling fails, falls back to GNU time, else to a direct
    os.wait4 (peak RSS then an upper bound only); with required=True it exits instead."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc and required:
        sys.exit("bench: no C compiler (cc) for the rusage launcher")
    if cc:
        src, exe = scratch / "ruspawn.c", scratch / "ruspawn"
        src.write_text(LAUNCHER_C)
        r = subprocess.run([cc, "-O2", "-o", str(exe), str(src)], capture_output=True, text=True)
        if r.returncode == 0:
            return [str(exe)], "ruspawn (C: posix_spawn + wait4)"
        if required:
            sys.exit(f"bench: cannot compile the launcher: {r.stderr.strip()[:500]}")
        log(f"warning: cannot compile the launcher with {cc}: {r.stderr.strip()[:500]}")
    if os.access("/usr/bin/time", os.X_OK):
        return ["GNU_TIME"], "GNU time (%U %S %M, 10 ms CPU resolution)"
    log("warning: no C compiler and no /usr/bin/time: peak RSS will include this Python's RSS")
    return [], "direct os.wait4 (peak RSS includes the bench's own RSS: upper bound only)"


@dataclass
class Measured:
    rc: int
    wall: float
    cpu: float
    user: float
    sys: float
    maxrss_kib: int
    server_cpu: float | None
    relay_cpu: float | None
    machine_cpu: float
    stdout: str
    stderr: str
    timed_out: bool = False


def machine_cpu() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat: all but idle and iowait)."""
    f = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    v = [int(x) for x in f]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


_current_child: subprocess.Popen | None = None


def run_measured(cmd: list[str], env: dict[str, str], log_prefix: Path, timeout: float, launcher: list[str],
                 server_cpu: Callable[[], float | None] | None = None,
                 settle: Callable[[], None] | None = None, relay: bool = False) -> Measured:
    """Run cmd under the launcher with stdout/stderr to log_prefix.stdout/.stderr; kill its process
    group after timeout seconds.

    server_cpu: a reading of the server's CPU seconds, taken before and after the run (None: no
    server CPU); settle: waits, after the child has exited, until the server's side of the run
    has ended, before the second reading; relay: also report this process's own CPU over the run
    as relay_cpu (a relay running in this process's threads while the main thread only waits)."""
    global _current_child
    out_path = log_prefix.with_suffix(".stdout")
    err_path = log_prefix.with_suffix(".stderr")
    res_path = log_prefix.with_suffix(".rusage")
    res_path.unlink(missing_ok=True)
    if launcher == ["GNU_TIME"]:
        full = ["/usr/bin/time", "-o", str(res_path), "-f", "%x %U %S %M", *cmd]
    elif launcher:
        full = [*launcher, str(res_path), *cmd]
    else:
        full = cmd
    timed_out = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        s0 = server_cpu() if server_cpu else None
        r0, k0 = self_cpu(), machine_cpu()
        t0 = time.monotonic()
        # Own process group: a timeout kills the launcher and the tool together.
        child = subprocess.Popen(full, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 start_new_session=True)
        _current_child = child

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            while True:
                try:
                    _pid, status, ru = os.wait4(child.pid, 0)
                    break
                except InterruptedError:
                    continue
        finally:
            timer.cancel()
        wall = time.monotonic() - t0
        r1, k1 = self_cpu(), machine_cpu()
        child.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        _current_child = None
    if settle:
        settle()
    s1 = server_cpu() if server_cpu else None
    rc, user, sys_, maxrss = child.returncode, ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    if launcher:
        try:
            fields = res_path.read_text().split()
            if launcher == ["GNU_TIME"] and fields[0] == "Command":  # "Command exited with non-zero status N"
                fields = res_path.read_text().splitlines()[-1].split()
            rc, user, sys_, maxrss = int(fields[0]), float(fields[1]), float(fields[2]), int(fields[3])
        except (OSError, ValueError, IndexError):
            rc = rc if rc != 0 else -1  # no rusage: the launcher itself failed or was killed
            user = sys_ = float("nan")
            maxrss = 0
    return Measured(
        rc=rc, wall=wall, cpu=user + sys_, user=user, sys=sys_,
        maxrss_kib=maxrss,  # KiB on Linux
        server_cpu=(s1 - s0) if s0 is not None and s1 is not None else None,
        relay_cpu=(r1 - r0) if relay else None, machine_cpu=k1 - k0,
        stdout=out_path.read_text(errors="replace"), stderr=err_path.read_text(errors="replace"),
        timed_out=timed_out.is_set())


def on_signal(signum, _frame):
    """SIGINT/SIGTERM handler: stop the child being measured, then exit (SystemExit, so the
    caller's finally blocks still run, e.g. stopping whaletag_bench's sshd and relay)."""
    if _current_child is not None and _current_child.returncode is None:
        try:
            os.killpg(_current_child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def record(section: str, started: float) -> None:
    """Append a dated results section to BENCHMARKS.md."""
    with open(REPO / "BENCHMARKS.md", "a") as f:
        f.write(section)
    log(f"appended to BENCHMARKS.md; total {time.monotonic() - started:.0f} s")


def ensure_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "numpy"], check=True)


def write_hydrophone_raw(path: Path, frames: int, seed: int) -> None:
    """Raw audio as a tag writes it (3 ch, 16-bit, big-endian): Gaussian noise σ≈12 LSB plus a weak
    1.2 kHz tone at 96 kHz, as a hydrophone at sea records. Written in 4 M-frame chunks."""
    import numpy as np
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for start in range(0, frames, 4_000_000):
            n = min(4_000_000, frames - start)
            t = np.arange(start, start + n)
            x = rng.normal(0, 12, (n, 3)) + 40 * np.sin(2 * np.pi * 1200 * t / 96000)[:, None]
            f.write(x.astype(">i2").tobytes())


def write_sensor_csv(path: Path, rows: int, seed: int) -> None:
    """Accelerometer-like random walks, one row per 10 ms."""
    import numpy as np
    rng = np.random.default_rng(seed)
    ts = 1700000000000 + np.arange(rows) * 10
    vals = np.cumsum(rng.normal(0, 0.01, (rows, 3)), axis=0)
    with open(path, "w") as f:
        f.write("timestamp_ms,ax,ay,az\n")
        for start in range(0, rows, 100_000):
            f.write("".join(f"{t},{a:.4f},{b:.4f},{c:.4f}\n" for t, (a, b, c) in
                            zip(ts[start:start + 100_000], vals[start:start + 100_000])))


def bench_args(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; callers add their own before parse_args()."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small data sets: a smoke run, not a measurement")
    ap.add_argument("--reps", type=int, default=2, help="timed runs per case and tool (default 2)")
    ap.add_argument("--no-record", action="store_true", help="do not append to BENCHMARKS.md")
    return ap


def tags_and_s3(bench: str) -> tuple[str, str]:
    """For the benches that run simulated tags and S3: root (tag-sim's sshd) and with-s3.sh's
    server are required; returns the endpoint and the bench bucket."""
    if os.geteuid() != 0:
        sys.exit(f"bench: {bench} needs root (the simulated tags run their own sshd)")
    endpoint = os.environ.get("CETI_TEST_ENDPOINT", "").rstrip("/")
    if not endpoint:
        sys.exit("bench: run under scripts/with-s3.sh (CETI_TEST_ENDPOINT is not set)")
    return endpoint, (os.environ.get("CETI_TEST_BUCKETS") or "ceti-bench").split(",")[0]


def versions(ceti: str, aws: str) -> tuple[str, str, str]:
    """`ceti --version`, `flac --version` and `aws --version`, for a results section."""
    def first(cmd: list[str]) -> str:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    return first([ceti, "--version"]), first(["flac", "--version"]), first([aws, "--version"])


def ceti_bin() -> str:
    return os.environ.get("CETI_BIN") or str(REPO / ".build" / "release" / "ceti")


def failure_lines(runs) -> list[str]:
    """Markdown lines naming the runs that failed (objects with .ok .case .tool .rep .problem .cmd)."""
    lines = [f"- FAILED {r.case}/{r.tool}/r{r.rep}: {r.problem} — `{' '.join(r.cmd)}`" for r in runs if not r.ok]
    return lines + [""] if lines else []
