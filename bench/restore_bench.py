#!/usr/bin/env python3
"""ceti restore of one device-run against `aws s3 cp --recursive` + `flac -d` + `gunzip` (issue #14).

    bash scripts/with-s3.sh .venv/bin/python bench/restore_bench.py [--quick] [--reps N] [--no-record]

One simulated tag (real OpenSSH sshd on loopback; needs root) with the ingest bench's data (6 × 172 MB
raw audio, 3 ch 16-bit 96 kHz big-endian noise plus a weak tone, and ~100 MB of sensor CSV; quick:
2 × 24 MB and ~10 MB) is ingested once, untimed: its FLAC and gzip objects and manifest are what is
restored. Timed: `ceti restore s3://…/_runs/RUN/DEVICE/ OUT` (defaults: 4 files at once) on a "new
machine" (fresh HOME/XDG, no ledger) against the way without ceti, one step after the other:
`aws s3 cp --recursive` of the device's folder, then `flac -d` of each FLAC to the raw layout (the
FLAC removed after), then `gunzip` of each .gz. Wall and user+sys CPU of each tool and its children
(not of the S3 server). Every run's output is compared with the tag's originals, outside the timing.
Results are appended to BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
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
                      tags_and_s3, versions)
from ingest_bench import TAGS, make_tag_data  # noqa: E402
sys.path.insert(0, str(REPO / "Tests" / "integration"))
import tagsim  # noqa: E402
from tcpproxy import start_tcp_proxy  # noqa: E402


def digests(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.iterdir()):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(8 << 20):
                h.update(chunk)
        out[p.name] = h.hexdigest()
    return out


def main() -> int:
    ap = bench_args(__doc__)
    ap.add_argument("--link", type=float, default=20.0,
                    help="also restore through a relay capped at this many MB/s (a shore link; 0 to skip)")
    args = ap.parse_args()
    endpoint, bucket = tags_and_s3("restore_bench")
    t_start = time.monotonic()
    ceti = ceti_bin()
    aws = str(REPO / ".venv" / "bin" / "aws")
    ensure_numpy()
    files = make_tag_data(REPO / ".tmp" / "bench-data" / ("ingest-quick" if args.quick else "ingest") / "tag0", 0, args.quick)
    want = digests(files[0].parent)
    work = REPO / ".tmp" / "bench-work" / "restore"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    launcher, launcher_desc = build_launcher(work)
    prefix = f"restore-bench-{int(time.time())}"
    base = tagsim.workdir("restore-bench")
    env = {**os.environ, "CETI_TAG_PASSWORD": "ceticeti", "CETI_LEDGER": str(work / "ledger.sqlite"),
           "XDG_CONFIG_HOME": str(work / "config")}  # the tag's pinned host key stays in the bench's folder
    try:
        tagsim.run("loopback", base / "tag0", TAGS[0], timeout=120)
        port = int((base / "tag0" / "port").read_text())
        for p in files:
            dest = base / "tag0" / "data" / p.name
            try:
                os.link(p, dest)
            except OSError:
                shutil.copy2(p, dest)
            os.chmod(dest, 0o644)
        subprocess.run([ceti, "ingest", "--quiet", "--user", "cetitag", "--staging", str(work / "staging"), "--endpoint-url",
                        endpoint, "--bucket", bucket, "--prefix", prefix, "-t", f"127.0.0.1:{port}"], env=env, check=True,
                       timeout=3600)
    finally:
        try:
            tagsim.run("stop", base / "tag0", timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(work / "staging", ignore_errors=True)
    listing = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "ls", "--recursive", f"s3://{bucket}/{prefix}/"],
                             capture_output=True, text=True, check=True).stdout.split()
    manifest_key = next(k for k in listing if k.endswith("/manifest.json"))
    manifest = json.loads(subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", f"s3://{bucket}/{manifest_key}", "-"],
                                         capture_output=True, check=True).stdout)
    run_folder = f"s3://{bucket}/{manifest_key.rsplit('/', 1)[0]}/"
    data_folder = os.path.commonpath([e["object"]["key"] for e in manifest["files"]])
    object_bytes = sum(e["object"]["size"] for e in manifest["files"])
    original_bytes = sum(e["size"] for e in manifest["files"])

    shore = {k: str(work / "shore" / k.lower()) for k in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    for d in shore.values():
        Path(d).mkdir(parents=True, exist_ok=True)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("CETI_", "XDG_"))} | shore
    ref_flags = "--force-raw-format --endian=big --sign=signed"
    def tools(url: str) -> dict:
        return {
            "ceti restore": lambda out: [ceti, "restore", "--quiet", "--endpoint-url", url, run_folder, str(out)],
            "aws s3 cp --recursive → flac -d → gunzip": lambda out: ["bash", "-c", " && ".join([
                f'{aws} --endpoint-url {url} s3 cp --recursive --only-show-errors "s3://{bucket}/{data_folder}/" "{out}"',
                f'for f in "{out}"/*.flac; do flac -d -s -f {ref_flags} -o "${{f%.flac}}.raw" "$f" && rm "$f" || exit 1; done',
                f'for f in "{out}"/*.gz; do gunzip "$f" || exit 1; done'])],
        }
    host, port = endpoint.split("://", 1)[1].rstrip("/").split(":")
    link = start_tcp_proxy(host, int(port), rate=args.link * 1e6) if args.link else None
    cases = [("loopback", endpoint)] + ([(f"{args.link:g} MB/s link", f"http://127.0.0.1:{link.port}")] if link else [])
    results: dict[tuple[str, str], list] = {}
    try:
        for rep in range(args.reps):
            for case, url in cases:
                for tool, argv in tools(url).items():
                    out = work / f"out-{rep}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    log = work / f"{case.split()[0]}-{'ceti' if tool.startswith('ceti') else 'ref'}-{rep}"
                    m = run_measured(argv(out), run_env, log, 3600, launcher)
                    if m.rc != 0:
                        print(f"{case}: {tool} failed ({m.rc}): {m.stderr[-3000:]}", file=sys.stderr)
                        return 1
                    got = digests(out)
                    assert got == want, f"{tool}: output differs from the tag's files: {sorted(set(got.items()) ^ set(want.items()))[:4]}"
                    results.setdefault((case, tool), []).append(m)
                    print(f"bench: {case}: {tool} rep {rep + 1}: wall {m.wall:.1f} s, CPU {m.cpu:.1f} s, "
                          f"peak RSS {m.maxrss_kib / 1024:.0f} MiB", file=sys.stderr)
                    shutil.rmtree(out, ignore_errors=True)
    finally:
        if link:
            link.stop()

    lines = ["| case | tool | wall s | CPU s | peak RSS MiB | wall vs reference |", "|---|---|--:|--:|--:|--:|"]
    verdicts = []
    for case, _ in cases:
        ref_wall = statistics.median(m.wall for m in results[(case, "aws s3 cp --recursive → flac -d → gunzip")])
        for tool in ("ceti restore", "aws s3 cp --recursive → flac -d → gunzip"):
            ms = results[(case, tool)]
            w = statistics.median(m.wall for m in ms)
            lines.append(f"| {case} | {tool} | {w:.1f} | {statistics.median(m.cpu for m in ms):.1f} | "
                         f"{max(m.maxrss_kib for m in ms) / 1024:.0f} | {w / ref_wall:.2f}× |")
        ceti_wall = statistics.median(m.wall for m in results[(case, "ceti restore")])
        ratio = ceti_wall / ref_wall
        floor_s = object_bytes / (args.link * 1e6) if case != "loopback" else 0
        floor = f"; {ceti_wall / floor_s:.2f}× the link floor ({floor_s:.1f} s)" if floor_s else ""
        verdicts.append(f"{case}: ceti restore wall vs the sequence {ratio:.2f}× (target ≤ 1.0×): "
                        f"{'met' if ratio <= 1.0 else 'missed'}{floor}")
    verdict = "\n- ".join(verdicts)
    table = "\n".join(lines)
    print(table)
    print("- " + verdict)
    if args.quick or args.no_record:
        return 0
    m = machine_info()
    version, flacv, awsv = versions(ceti, aws)
    record(f"""
## restore — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}
- Versions: ceti {version}; {flacv}; gzip; {awsv}; SeaweedFS 4.48 on the same machine (loopback)
- Data: one device-run of `ceti ingest` from a simulated tag: {len(manifest['files'])} objects, {object_bytes / 1e6:.0f} MB in S3
  (FLAC of {len(files) - 3} raw files, gzip of 3 CSVs) restoring to {original_bytes / 1e6:.0f} MB of originals.
- ceti: `restore s3://…/_runs/RUN/DEVICE/ OUT` with its defaults (4 files at once, ranged GETs of 2 MiB, 4 in flight per
  file; every download hashed against the manifest's SHA-256, FLAC decoded with its MD5 and sample count checked, each
  original's size and SHA-256 checked before it gets its name and mtime) on a machine without the ledger.
  Reference: `aws s3 cp --recursive` of the device's folder, then `flac -d` per FLAC (then rm), then `gunzip` per .gz — no
  check against the manifest. The link case relays both through `Tests/integration/tcpproxy.py` capped at
  {args.link:g} MB/s (the link floor is the objects' bytes at that rate). Medians of {args.reps} runs; CPU = user+sys of the tool and its children (wait4,
  {launcher_desc}); the S3 server is not counted. Both outputs compared with the tag's files.

{table}

- {verdict}
""", t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
