#!/usr/bin/env python3
"""ceti compress against the reference tools on a tag-like data set.

    .venv/bin/python bench/compress_bench.py [--quick] [--no-record]

FLAC: 8 × 172 MB raw (3 ch, 16-bit, 96 kHz, big-endian, low-level noise plus a weak tone, as a
hydrophone at sea records) with `ceti compress -j 1` and `-j 2` against `flac -5` one file at a
time and under `xargs -P 2`. gzip: ~200 MB of sensor CSVs with ceti against `gzip -6` and
`pigz -6`. Sizes, wall and user+sys CPU seconds (the tool's own, with its children, via wait4);
every output is checked (flac -t on one file, gunzip equality on one file) outside the timing.
Results are appended to BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from benchlib import (bench_args, build_launcher, ceti_bin, ensure_numpy, machine_info, record, run_measured,  # noqa: E402
                      write_hydrophone_raw, write_sensor_csv)

RAW_FLAGS = ["--force-raw-format", "--channels=3", "--bps=16", "--sample-rate=96000", "--sign=signed", "--endian=big"]


def make_data(base: Path, quick: bool) -> tuple[list[Path], list[Path]]:
    raw_dir, csv_dir = base / "raw", base / "csv"
    raw_dir.mkdir(parents=True, exist_ok=True)
    csv_dir.mkdir(parents=True, exist_ok=True)
    frames = (2_000_000 if quick else 28_666_666)  # 28.7 M frames × 6 bytes = 172 MB
    raws = []
    for i in range(2 if quick else 8):
        p = raw_dir / f"{1700000000000 + i * 300000}.raw"
        if not p.exists() or p.stat().st_size != frames * 6:
            write_hydrophone_raw(p, frames, i)
        raws.append(p)
    csvs = []
    for i in range(3 if quick else 10):
        p = csv_dir / f"data_sensor_{i:02}.csv"
        if not p.exists():
            write_sensor_csv(p, 60_000 if quick else 600_000, 100 + i)
        csvs.append(p)
    return raws, csvs


def fresh_copy(files: list[Path], dest: Path) -> list[Path]:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    out = []
    for f in files:
        d = dest / f.name
        os.link(f, d)  # hard links: no copying, originals stay (ceti runs with --keep)
        out.append(d)
    return out


def main() -> int:
    ap = bench_args(__doc__)
    args = ap.parse_args()
    t_start = time.monotonic()
    ceti = ceti_bin()
    if not shutil.which("pigz"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "pigz"], check=True, stdout=subprocess.DEVNULL)
    ensure_numpy()
    base = REPO / ".tmp" / "bench-data" / ("compress-quick" if args.quick else "compress")
    work = REPO / ".tmp" / "bench-work" / "compress"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    raws, csvs = make_data(base, args.quick)
    launcher, launcher_desc = build_launcher(work)
    raw_bytes = sum(p.stat().st_size for p in raws)
    csv_bytes = sum(p.stat().st_size for p in csvs)
    env = dict(os.environ)
    env["CETI_LEDGER"] = str(work / "ledger.sqlite")

    def ceti_cmd(d: Path, jobs: int) -> list[str]:
        return [ceti, "compress", "--keep", "--quiet", "-j", str(jobs), str(d)]

    def flac_seq(d: Path) -> list[str]:
        return ["sh", "-c", f'for f in "{d}"/*.raw; do flac -5 -s -f {" ".join(RAW_FLAGS)} -o "${{f%.raw}}.flac" "$f" || exit 1; done']

    def flac_par(d: Path) -> list[str]:
        return ["sh", "-c", f'ls "{d}"/*.raw | xargs -P 2 -I{{}} sh -c \'flac -5 -s -f {" ".join(RAW_FLAGS)} -o "$(echo {{}} | sed s/.raw$/.flac/)" {{}}\'']

    def gzip_seq(d: Path) -> list[str]:
        return ["sh", "-c", f'for f in "{d}"/*.csv; do gzip -6 -k -f "$f" || exit 1; done']

    def pigz(d: Path) -> list[str]:
        return ["sh", "-c", f'pigz -6 -k -f -p 2 "{d}"/*.csv']

    cases = [
        ("flac", "ceti -j 1", lambda d: ceti_cmd(d, 1), raws, ".flac"),
        ("flac", "ceti -j 2", lambda d: ceti_cmd(d, 2), raws, ".flac"),
        ("flac", "flac -5 (one at a time)", flac_seq, raws, ".flac"),
        ("flac", "flac -5 (xargs -P 2)", flac_par, raws, ".flac"),
        ("gzip", "ceti -j 2", lambda d: ceti_cmd(d, 2), csvs, ".csv.gz"),
        ("gzip", "gzip -6 (one at a time)", gzip_seq, csvs, ".csv.gz"),
        ("gzip", "pigz -6 -p 2", pigz, csvs, ".csv.gz"),
    ]
    results = []
    for kind, tool, cmd, files, ext in cases:
        walls, cpus, size = [], [], 0
        for rep in range(args.reps):
            d = work / "run"
            fresh_copy(files, d)
            (work / "ledger.sqlite").unlink(missing_ok=True)
            m = run_measured(cmd(d), env, work / f"{kind}-{len(results)}-{rep}", 3600, launcher)
            if m.rc != 0:
                print(f"{tool} failed ({m.rc}): {m.stderr[-2000:]}", file=sys.stderr)
                return 1
            outs = sorted(d.glob("*" + ext))
            assert len(outs) == len(files), f"{tool}: {len(outs)} outputs for {len(files)} inputs"
            size = sum(p.stat().st_size for p in outs)
            # Check one output with the reference tools (outside the timing).
            if ext == ".flac":
                subprocess.run(["flac", "-t", "-s", str(outs[0])], check=True)
                back = d / "check.raw"
                subprocess.run(["flac", "-d", "-s", "-f", "--force-raw-format", "--endian=big", "--sign=signed",
                                "-o", str(back), str(outs[0])], check=True)
                assert back.read_bytes() == files[0].read_bytes(), f"{tool}: decoded audio differs"
            else:
                subprocess.run(["gzip", "-t", str(outs[0])], check=True)
                got = subprocess.run(["gunzip", "-c", str(outs[0])], capture_output=True, check=True).stdout
                assert got == files[0].read_bytes(), f"{tool}: gunzip gives other bytes"
            walls.append(m.wall)
            cpus.append(m.cpu)
            print(f"bench: {kind} {tool} rep {rep + 1}: wall {m.wall:.2f} s, cpu {m.cpu:.2f} s, size {size}", file=sys.stderr)
        results.append({"kind": kind, "tool": tool, "wall": statistics.median(walls), "cpu": statistics.median(cpus),
                        "size": size, "input": raw_bytes if kind == "flac" else csv_bytes})
    shutil.rmtree(work / "run", ignore_errors=True)

    def row(kind, tool):
        return next(r for r in results if r["kind"] == kind and r["tool"] == tool)

    ref_flac, ref_flac2 = row("flac", "flac -5 (one at a time)"), row("flac", "flac -5 (xargs -P 2)")
    ref_gzip = row("gzip", "gzip -6 (one at a time)")
    lines = ["| set | tool | output MB | ratio | wall s | CPU s | MB/s | MB/s per CPU s |", "|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        mb = r["input"] / 1e6
        lines.append(f"| {r['kind']} ({mb:.0f} MB) | {r['tool']} | {r['size'] / 1e6:.2f} | {r['size'] / r['input'] * 100:.2f} % | "
                     f"{r['wall']:.2f} | {r['cpu']:.2f} | {mb / r['wall']:.1f} | {mb / r['cpu']:.1f} |")
    c1, c2, cg = row("flac", "ceti -j 1"), row("flac", "ceti -j 2"), row("gzip", "ceti -j 2")
    targets = [
        f"FLAC size vs flac -5: {c1['size'] / ref_flac['size'] * 100 - 100:+.2f} % (target within 0.5 %): "
        f"{'met' if abs(c1['size'] / ref_flac['size'] - 1) <= 0.005 else 'missed'}",
        f"FLAC per-core speed vs the flac CLI (MB per CPU s): {(ref_flac['cpu'] / c1['cpu']):.2f}× (target ≥ 1.0×): "
        f"{'met' if ref_flac['cpu'] / c1['cpu'] >= 1.0 else 'missed'}",
        f"FLAC wall, ceti -j 2 vs one flac process: {ref_flac['wall'] / c2['wall']:.2f}× (target ≥ 1.8×): "
        f"{'met' if ref_flac['wall'] / c2['wall'] >= 1.8 else 'missed'}; vs xargs -P 2: {ref_flac2['wall'] / c2['wall']:.2f}×",
        f"gzip size vs gzip -6: {cg['size'] / ref_gzip['size'] * 100 - 100:+.2f} % (target within 1 %): "
        f"{'met' if cg['size'] <= ref_gzip['size'] * 1.01 else 'missed'}",
        f"gzip wall vs gzip -6: {ref_gzip['wall'] / cg['wall']:.2f}× (target ≥ 2×): {'met' if ref_gzip['wall'] / cg['wall'] >= 2 else 'missed'}",
    ]
    table = "\n".join(lines)
    print(table)
    print("\n".join("- " + t for t in targets))
    if args.quick or args.no_record:
        return 0
    m = machine_info()
    versions = subprocess.run([ceti, "--version"], capture_output=True, text=True).stdout.strip()
    flacv = subprocess.run(["flac", "--version"], capture_output=True, text=True).stdout.strip()
    gzipv = subprocess.run(["gzip", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    pigzv = (subprocess.run(["pigz", "--version"], capture_output=True, text=True).stdout
             or subprocess.run(["pigz", "--version"], capture_output=True, text=True).stderr).strip()
    section = f"""
## compress — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}
- Versions: ceti {versions}; {flacv}; {gzipv}; {pigzv}; libFLAC and libdeflate from Debian 12
- Data: {len(raws)} raw files, {raw_bytes / 1e6:.0f} MB (3 ch, 16-bit, 96 kHz, big-endian; Gaussian noise σ≈12 LSB plus a
  weak 1.2 kHz tone), and {len(csvs)} CSVs, {csv_bytes / 1e6:.0f} MB (accelerometer-like random walks). In the page cache.
- Settings: ceti `compress --keep -j N` (libFLAC level 5 with verify on, our MD5 of the PCM and SHA-256 of the input;
  gzip level 6 as 1 MiB libdeflate members on all cores, re-inflated with zlib); `flac -5` (no -V) and `gzip -6` /
  `pigz -6 -p 2` as the references. Medians of {args.reps} runs; CPU = user+sys of the tool and its children (wait4,
  {launcher_desc}). MB = 10^6 bytes. Every run's first output checked with flac -t/-d or gzip -t/gunzip.

{table}

{chr(10).join('- ' + t for t in targets)}
"""
    record(section, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
