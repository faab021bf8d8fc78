#!/usr/bin/env python3
"""ceti general_offload against `cp -r` + `sha256sum`, on a 2 GB folder of mixed files.

    .venv/bin/python bench/offload_bench.py [--quick] [--no-record]

ceti reads the card once, writes staging and backup, fsyncs both, drops them from the page cache
and reads them back to compare. The references: `cp -r` to two destinations, and `cp -r` to two
destinations followed by `sha256sum` of the source and both copies (what an operator would script
to get the same assurance; note its sha256sum re-reads come from the page cache, ceti's read-back
deliberately does not). Targets: ceti faster than cp+sha256sum, and ≤ 1.5× plain `cp -r` ×2.
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
sys.path.insert(0, str(HERE))
from benchlib import (REPO, bench_args, build_launcher, ceti_bin, machine_info, record, run_measured,  # noqa: E402
                      write_random)


def make_card(root: Path, quick: bool) -> int:
    spec = [("DCIM/100MEDIA", 6, 250_000_000), ("DCIM/101MEDIA", 40, 10_000_000), ("MISC", 300, 300_000)]
    if quick:
        spec = [("DCIM/100MEDIA", 2, 20_000_000), ("MISC", 30, 100_000)]
    total = 0
    for folder, count, size in spec:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            p = root / folder / f"F{i:04}.MP4"
            if not p.exists() or p.stat().st_size != size:
                write_random(p, size)
            total += size
    return total


def main() -> int:
    ap = bench_args(__doc__)
    args = ap.parse_args()
    t0 = time.monotonic()
    ceti = ceti_bin()
    card = REPO / ".tmp" / "bench-data" / ("card-quick" if args.quick else "card")
    total = make_card(card, args.quick)
    work = REPO / ".tmp" / "bench-work" / "offload"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    launcher, launcher_desc = build_launcher(work)
    ids = work / "ids.txt"
    ids.write_text("CETI-BENCH-1\n")
    env = {**os.environ, "CETI_LEDGER": str(work / "ledger.sqlite")}
    out = work / "out"
    tools = {
        "ceti general_offload (verified, read back from disk)":
            [ceti, "general_offload", "--quiet", "--registry", str(ids), "--data-dir", str(out), str(card), "CETI-BENCH-1"],
        "cp -r ×2": ["sh", "-c", f'cp -r "{card}" "{out}/a" && cp -r "{card}" "{out}/b"'],
        # What ceti's durability costs by itself: the same copies, flushed to disk.
        "cp -r ×2 + sync": ["sh", "-c", f'cp -r "{card}" "{out}/a" && cp -r "{card}" "{out}/b" && sync'],
        "cp -r ×2 + sha256sum ×3": ["sh", "-c", f'cp -r "{card}" "{out}/a" && cp -r "{card}" "{out}/b" && '
                                    f'cd "{card}" && find . -type f -exec sha256sum {{}} + > "{out}/s.txt" && '
                                    f'cd "{out}/a" && sha256sum -c --quiet "{out}/s.txt" && cd "{out}/b" && sha256sum -c --quiet "{out}/s.txt"'],
    }
    results = {}
    for name, cmd in tools.items():
        walls, cpus = [], []
        for rep in range(args.reps):
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            (work / "ledger.sqlite").unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)
            m = run_measured(cmd, env, work / f"{len(results)}-{rep}", 3600, launcher)
            if m.rc != 0:
                print(f"{name} failed: {m.stderr[-2000:]}", file=sys.stderr)
                return 1
            copied = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix == ".MP4")
            assert copied == 2 * total, f"{name}: copied {copied} bytes, expected {2 * total}"
            walls.append(m.wall)
            cpus.append(m.cpu)
            print(f"bench: {name} rep {rep + 1}: wall {m.wall:.2f} s cpu {m.cpu:.2f} s", file=sys.stderr)
        results[name] = (statistics.median(walls), statistics.median(cpus))
    shutil.rmtree(out, ignore_errors=True)
    ceti_wall = results["ceti general_offload (verified, read back from disk)"][0]
    cp_wall = results["cp -r ×2"][0]
    pair_wall = results["cp -r ×2 + sha256sum ×3"][0]
    lines = ["| tool | wall s | CPU s | MB/s (source) |", "|---|--:|--:|--:|"]
    lines += [f"| {n} | {w:.2f} | {c:.2f} | {total / 1e6 / w:.0f} |" for n, (w, c) in results.items()]
    targets = [f"ceti vs cp -r ×2 + sha256sum: {ceti_wall / pair_wall:.2f}× the time (target < 1.0×): "
               f"{'met' if ceti_wall < pair_wall else 'missed'}",
               f"ceti vs plain cp -r ×2: {ceti_wall / cp_wall:.2f}× the time (target ≤ 1.5×): "
               f"{'met' if ceti_wall <= 1.5 * cp_wall else 'missed'}",
               f"ceti vs cp -r ×2 + sync (same durability, no verification): {ceti_wall / results['cp -r ×2 + sync'][0]:.2f}×"]
    table = "\n".join(lines)
    print(table)
    print("\n".join("- " + t for t in targets))
    if args.quick or args.no_record:
        return 0
    m = machine_info()
    version = subprocess.run([ceti, "--version"], capture_output=True, text=True).stdout.strip()
    section = f"""
## general_offload — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}; source and destinations on the same disk
- ceti {version}; coreutils cp and sha256sum from Debian 12
- Data: {total / 1e6:.0f} MB in {sum(1 for _ in card.rglob('*.MP4'))} files (6 × 250 MB, 40 × 10 MB, 300 × 300 kB, random bytes),
  in the page cache before each run (`sync` first). Medians of {args.reps} runs; CPU = user+sys with children ({launcher_desc}).
  ceti's read-back bypasses the page cache (fsync, then POSIX_FADV_DONTNEED); the references' sha256sum re-reads do not.

{table}

{chr(10).join('- ' + t for t in targets)}
"""
    record(section, t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
