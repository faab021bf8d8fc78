#!/usr/bin/env python3
"""ceti ingest against the sequential reference built from the standard tools.

    bash scripts/with-s3.sh .venv/bin/python bench/ingest_bench.py [--quick] [--reps N] [--no-record]

Two simulated tags (real OpenSSH sshd on loopback, tag hostnames, data at /data; needs root), each
with 6 × 172 MB raw audio (3 ch, 16-bit, 96 kHz, big-endian: low-level noise plus a weak tone)
and ~100 MB of sensor CSV. `ceti ingest` (pull both tags, FLAC/gzip, upload, manifests) against
the tag.sh way, one step after the other: `sftp get` of each tag, `flac -5` per raw file (the raw
removed after), `gzip -6` per CSV, `aws s3 sync`. Wall and user+sys CPU seconds of each tool
and its children (not of sshd or the S3 server, for either). Outputs are checked outside the
timing: every object counted, one FLAC and one gzip object decoded back to the tag's original.
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
                      tags_and_s3, versions, write_hydrophone_raw, write_sensor_csv)
sys.path.insert(0, str(REPO / "Tests" / "integration"))
import tagsim  # noqa: E402

RAW_FLAGS = "--force-raw-format --channels=3 --bps=16 --sample-rate=96000 --sign=signed --endian=big"
TAGS = ("wt-0a1b2c3d", "wt-b827eb0a0b0c")
SSH_OPTS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            "-o PubkeyAuthentication=no -o PreferredAuthentications=password")


def make_tag_data(base: Path, index: int, quick: bool) -> list[Path]:
    """6 raw files of 172 MB and ~100 MB of CSV (quick: 2 × 24 MB and ~10 MB), cached."""
    base.mkdir(parents=True, exist_ok=True)
    frames = 4_000_000 if quick else 28_666_666
    out = []
    for k in range(2 if quick else 6):
        p = base / f"{1700000000000 + index * 10_000_000 + k * 300_000}.raw"
        if not p.exists() or p.stat().st_size != frames * 6:
            write_hydrophone_raw(p, frames, index * 100 + k)
        out.append(p)
    rows = 90_000 if quick else 900_000  # 3 × ~33 MB
    for name in ("data_imu_acc_01.csv", "data_pressure_temperature.csv", "data_battery.csv"):
        p = base / name
        if not p.exists() or p.stat().st_size < rows * 30:
            write_sensor_csv(p, rows, 1000 + index * 10 + len(name))
        out.append(p)
    old = time.time() - 3600
    for p in out:
        os.utime(p, (old, old))
    return out


def main() -> int:
    ap = bench_args(__doc__)
    ap.add_argument("--uplink", default="40M",
                    help="also run with the upload capped at this rate for both tools (MiB/s as 40M; 'none' to skip)")
    args = ap.parse_args()
    endpoint, bucket = tags_and_s3("ingest_bench")
    t_start = time.monotonic()
    ceti = ceti_bin()
    aws = str(REPO / ".venv" / "bin" / "aws")
    ensure_numpy()
    data = REPO / ".tmp" / "bench-data" / ("ingest-quick" if args.quick else "ingest")
    sets = [make_tag_data(data / f"tag{i}", i, args.quick) for i in range(2)]
    raw_bytes = sum(p.stat().st_size for s in sets for p in s if p.suffix == ".raw")
    csv_bytes = sum(p.stat().st_size for s in sets for p in s if p.suffix == ".csv")
    files_per_run = sum(map(len, sets))
    # Tags live under a folder the tag user can traverse; their /data holds hard links to the set.
    base = tagsim.workdir("ingest-bench")
    work = REPO / ".tmp" / "bench-work" / "ingest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    launcher, launcher_desc = build_launcher(work)
    ports = []
    try:
        for i, name in enumerate(TAGS):
            tagsim.run("loopback", base / f"tag{i}", name, timeout=120)
            ports.append(int((base / f"tag{i}" / "port").read_text()))
            for p in sets[i]:
                dest = base / f"tag{i}" / "data" / p.name
                try:
                    os.link(p, dest)
                except OSError:
                    shutil.copy2(p, dest)
                os.chmod(dest, 0o644)
        # Page cache warm for both tools alike.
        for s in sets:
            for p in s:
                with open(p, "rb") as f:
                    while f.read(8 << 20):
                        pass
        env = {**os.environ, "CETI_TAG_PASSWORD": "ceticeti", "SSHPASS": "ceticeti",
               "XDG_CONFIG_HOME": str(work / "config")}
        # The same uplink cap for both: ceti's --bwlimit and the AWS CLI's s3 max_bandwidth.
        capped_config = work / "aws-config"
        capped_config.write_text(f"[default]\ns3 =\n  max_bandwidth = {args.uplink.rstrip('M')}MB/s\n")
        cases = [("local", None)] + ([] if args.uplink == "none" else [(f"uplink {args.uplink.rstrip('M')} MiB/s", args.uplink)])
        results: dict[tuple[str, str], list] = {(c, t): [] for c, _ in cases for t in ("ceti ingest", "sequential reference")}
        for rep in range(args.reps):
            for (case, tool) in results:
                cap = dict(cases)[case]
                prefix = f"bench-{int(time.time())}-{rep}-{'ceti' if tool.startswith('ceti') else 'ref'}"
                out = work / f"out-{rep}-{len(results[(case, tool)])}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                env.pop("AWS_CONFIG_FILE", None)
                if tool.startswith("ceti"):
                    env["CETI_LEDGER"] = str(out / "ledger.sqlite")
                    cmd = [ceti, "ingest", "--quiet", "--user", "cetitag", "--staging", str(out / "staging"),
                           "--endpoint-url", endpoint, "--bucket", bucket, "--prefix", prefix,
                           *[a for p in ports for a in ("-t", f"127.0.0.1:{p}")], *(["--bwlimit", cap] if cap else [])]
                else:
                    if cap:
                        env["AWS_CONFIG_FILE"] = str(capped_config)
                    steps = []
                    for name, port in zip(TAGS, ports):
                        d = out / name
                        steps.append(f'mkdir -p "{d}" && sshpass -e sftp -q {SSH_OPTS} -P {port} '
                                     f'cetitag@127.0.0.1:/data/* "{d}/" >/dev/null')
                        steps.append(f'for f in "{d}"/*.raw; do flac -5 -s -f {RAW_FLAGS} -o "${{f%.raw}}.flac" "$f" '
                                     f'&& rm "$f" || exit 1; done')
                        steps.append(f'for f in "{d}"/*.csv; do gzip -6 "$f" || exit 1; done')
                    steps.append(f'{aws} --endpoint-url {endpoint} s3 sync --only-show-errors "{out}" '
                                 f'"s3://{bucket}/{prefix}/"')
                    cmd = ["bash", "-c", " && ".join(steps)]
                m = run_measured(cmd, env, work / f"{prefix}", 7200, launcher)
                if m.rc != 0:
                    print(f"{tool} failed ({m.rc}): {m.stderr[-3000:]}", file=sys.stderr)
                    return 1
                keys = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "ls", "--recursive", f"s3://{bucket}/{prefix}/"],
                                      capture_output=True, text=True, check=True).stdout.split("\n")
                keys = [k.split()[-1] for k in keys if k.strip()]
                want = files_per_run + (4 if tool.startswith("ceti") else 0)  # + a manifest and _COMPLETE per tag
                assert len(keys) == want, f"{tool}: {len(keys)} objects, expected {want}"
                check_one(aws, endpoint, bucket, keys, sets, out)
                results[(case, tool)].append(m)
                print(f"bench: {case}: {tool} rep {rep + 1}: wall {m.wall:.1f} s, CPU {m.cpu:.1f} s, peak RSS "
                      f"{m.maxrss_kib / 1024:.0f} MiB", file=sys.stderr)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        for i in range(len(TAGS)):
            try:
                tagsim.run("stop", base / f"tag{i}", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(base, ignore_errors=True)

    lines = ["| case | tool | wall s | CPU s | machine CPU s | peak RSS MiB | wall vs reference |",
             "|---|---|--:|--:|--:|--:|--:|"]
    verdicts = []
    for case, _ in cases:
        c, r = results[(case, "ceti ingest")], results[(case, "sequential reference")]
        cw, rw = statistics.median(m.wall for m in c), statistics.median(m.wall for m in r)
        for tool, ms, w in (("ceti ingest", c, cw), ("sftp get → flac -5 → gzip -6 → aws s3 sync", r, rw)):
            lines.append(f"| {case} | {tool} | {w:.1f} | {statistics.median(m.cpu for m in ms):.1f} | "
                         f"{statistics.median(m.machine_cpu for m in ms):.1f} | {max(m.maxrss_kib for m in ms) / 1024:.0f} | {w / rw:.2f}× |")
        verdicts.append(f"{case}: ceti ingest wall vs the sequential reference {cw / rw:.2f}× (target ≤ 0.6×): "
                        f"{'met' if cw / rw <= 0.6 else 'missed'}")
    table = "\n".join(lines)
    verdict = "\n- ".join(verdicts)
    print(table)
    print("- " + verdict)
    if args.quick or args.no_record:
        return 0
    m = machine_info()
    version, flacv, awsv = versions(ceti, aws)
    sshv = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    section = f"""
## ingest — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}
- Versions: ceti {version}; {flacv}; gzip; {awsv}; {sshv}; SeaweedFS 4.48 on the same machine
- Data: two simulated tags (OpenSSH sshd on 127.0.0.1, hostnames {', '.join(TAGS)}, files at /data), each
  {len(sets[0]) - 3} raw files ({raw_bytes / 2e6:.0f} MB per tag; 3 ch, 16-bit, 96 kHz, big-endian noise plus a weak tone) and
  3 CSVs ({csv_bytes / 2e6:.0f} MB per tag). In the page cache.
- ceti: `ingest -t TAG1 -t TAG2` with its defaults (tags in parallel, tag-side sha256sum of every file, FLAC level 5 with
  verify and MD5 check, gzip 6 re-inflated, uploads with Content-MD5 + signed SHA-256, manifests).
  "machine CPU s" is every process's CPU during the run (/proc/stat): ceti or the tools, and also the two tags' sshd and
  sha256sum and the S3 server, all on the same {m['nproc']} CPUs. The uplink case caps the upload at the same rate for both
  (ceti `--bwlimit`, the AWS CLI's `s3.max_bandwidth`), as a slow link to S3 does in the field.
  Reference: one step after the other as tag.sh did: `sftp get` of each tag (sshpass), `flac -5` per raw file
  (then rm), `gzip -6` per CSV, `aws s3 sync`. Medians of {args.reps} runs; CPU = user+sys of the tool and its children
  (wait4, {launcher_desc}); sshd and the S3 server are not counted for either. Every run's objects counted; one FLAC and
  one gzip object decoded back to the tag's original.

{table}

- {verdict}
"""
    record(section, t_start)
    return 0


def check_one(aws: str, endpoint: str, bucket: str, keys: list[str], sets: list[list[Path]], out: Path) -> None:
    """Download one FLAC and one gzip object and compare them, decoded, with the originals."""
    originals = {(tag, p.name): p for tag, s in zip(TAGS, sets) for p in s}
    for suffix, orig_suffix in ((".flac", ".raw"), (".csv.gz", ".csv")):
        key = next(k for k in keys if k.endswith(suffix))
        local = out / ("check" + suffix)
        subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}", str(local)],
                       check=True)
        back = out / "check.back"
        if suffix == ".flac":
            subprocess.run(["flac", "-d", "-s", "-f", "--force-raw-format", "--endian=big", "--sign=signed", "-o", str(back),
                            str(local)], check=True)
        else:
            with open(back, "wb") as f:
                subprocess.run(["gunzip", "-c", str(local)], stdout=f, check=True)
        device, name = key.split("/")[-2], key.rsplit("/", 1)[1][: -len(suffix)] + orig_suffix
        assert back.read_bytes() == originals[(device, name)].read_bytes(), f"{key} does not decode to {name}"


if __name__ == "__main__":
    sys.exit(main())
