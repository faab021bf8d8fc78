#!/usr/bin/env python3
"""Recording QC (issue #16): ingest with QC on and off, and `ceti qc` on FLAC against `flac -d`.

    bash scripts/with-s3.sh .venv/bin/python bench/qc_bench.py [--quick] [--reps N] [--no-record]

1. Ingest: the ingest bench's two simulated tags (real OpenSSH sshd on loopback, tag hostnames,
   data at /data; needs root) and data (each tag 6 × 172 MB raw audio, 3 ch 16-bit 96 kHz big-endian
   noise plus a weak tone, and ~100 MB of sensor CSV; quick: 2 × 24 MB and ~10 MB). `ceti ingest` of
   both tags as it is and with `--no-qc`, each run into a fresh staging folder, a fresh ledger and its
   own key prefix, so that no run skips work. User+sys CPU seconds of ceti and its children per GB of
   raw audio (and per GB of all data pulled), wall seconds, and CPU with QC on ÷ off (target ≤ 1.10).
   Outside the timing: every object counted, and every manifest of a QC-on run has a `qc` section
   (the device's, and one per recording) while a QC-off run's have none.
2. `ceti qc` on FLAC: one tag's raw files encoded once (cached, untimed) with `flac -5` into
   DIR/wt-bench/<epoch_ms>.flac as the firmware writes them. Timed: `flac -d` of each file in turn to
   a .wav in a scratch folder (the floor: decoding is the least any QC of a FLAC must do), `flac -d -c`
   of each to /dev/null (a second floor, without the writes), `ceti qc DIR -j 1 --json` (one file at
   a time: the fair comparison; target ≤ 1.3× the time of `flac -d`) and `ceti qc DIR` with its
   default jobs. Outside the timing: `ceti qc --json` lists every file with audio.frames equal to its
   raw file's frames (size ÷ 6).
Medians of --reps runs (default 3; quick: 1). Results are appended to BENCHMARKS.md.
"""

from __future__ import annotations

import datetime as dt
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
from benchlib import (bench_args, build_launcher, ceti_bin, ensure_numpy, install_signal_handlers, log,  # noqa: E402
                      machine_info, record, run_measured, tags_and_s3, versions)
from ingest_bench import TAGS, make_tag_data  # noqa: E402
sys.path.insert(0, str(REPO / "Tests" / "integration"))
import tagsim  # noqa: E402

CHANNELS, BYTES_PER_SAMPLE, RATE = 3, 2, 96000
FRAME_BYTES = CHANNELS * BYTES_PER_SAMPLE
FLAC_ENCODE = ["flac", "-5", "-s", "-f", "--force-raw-format", "--endian=big", "--sign=signed", f"--channels={CHANNELS}",
               f"--bps={8 * BYTES_PER_SAMPLE}", f"--sample-rate={RATE}"]
QC_DEVICE = "wt-bench"
MODES = ("QC on", "QC off")
QC_TOOLS = ("flac -d (to .wav files)", "flac -d -c > /dev/null", "ceti qc -j 1 --json", "ceti qc (default jobs)")


def median(ms: list, attr: str) -> float:
    return statistics.median(getattr(m, attr) for m in ms)


# ---- 1. ingest with QC on and off ---------------------------------------------------------
def ingest_runs(args, ceti: str, aws: str, endpoint: str, bucket: str, sets: list[list[Path]], work: Path,
                launcher: list[str], label: str = "raw") -> dict[str, list]:
    files_per_run = sum(map(len, sets))
    base = tagsim.workdir("qc-bench")
    results: dict[str, list] = {mode: [] for mode in MODES}
    stamp = int(time.time())
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
        for s in sets:  # page cache warm for both modes alike
            for p in s:
                with open(p, "rb") as f:
                    while f.read(8 << 20):
                        pass
        # A config folder per set of tags: each set's sshd has new host keys, which ceti pins.
        env = {**os.environ, "CETI_TAG_PASSWORD": "ceticeti", "XDG_CONFIG_HOME": str(work / f"config-{label}")}
        for rep in range(args.reps):
            # Alternate which mode goes first, so that a drift of the machine favours neither.
            for mode in (MODES if rep % 2 == 0 else MODES[::-1]):
                tag = "on" if mode == "QC on" else "off"
                prefix = f"qc-bench-{stamp}-{label}-{rep}-{tag}"
                out = work / f"ingest-{rep}-{tag}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                env["CETI_LEDGER"] = str(out / "ledger.sqlite")
                cmd = [ceti, "ingest", "--quiet", "--user", "cetitag", "--staging", str(out / "staging"),
                       "--endpoint-url", endpoint, "--bucket", f"s3://{bucket}/{prefix}",
                       *[a for p in ports for a in ("-t", f"127.0.0.1:{p}")], *(["--no-qc"] if tag == "off" else [])]
                m = run_measured(cmd, env, work / f"ingest-{rep}-{tag}", 7200, launcher)
                if m.rc != 0:
                    sys.exit(f"bench: ceti ingest ({mode}) failed ({m.rc}): {m.stderr[-3000:]}")
                check_manifests(aws, endpoint, bucket, prefix, files_per_run, qc=(tag == "on"), scratch=out)
                results[mode].append(m)
                log(f"ingest ({label}) {mode} rep {rep + 1}: wall {m.wall:.1f} s, CPU {m.cpu:.1f} s, "
                    f"peak RSS {m.maxrss_kib / 1024:.0f} MiB")
                shutil.rmtree(out, ignore_errors=True)
    finally:
        for i in range(len(TAGS)):
            try:
                tagsim.run("stop", base / f"tag{i}", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(base, ignore_errors=True)
    return results


def check_manifests(aws: str, endpoint: str, bucket: str, prefix: str, files_per_run: int, qc: bool,
                    scratch: Path) -> None:
    """Every object there; each tag's manifest has a `qc` section (the device's, and every recording's
    and sensor file's) with QC on, and none anywhere with QC off."""
    listing = subprocess.run([aws, "--endpoint-url", endpoint, "s3", "ls", "--recursive", f"s3://{bucket}/{prefix}/"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    keys = [line.split()[-1] for line in listing if line.strip()]
    want = files_per_run + 2 * len(TAGS)  # + a manifest and _COMPLETE per tag
    assert len(keys) == want, f"{prefix}: {len(keys)} objects, expected {want}"
    manifests = [k for k in keys if k.endswith("/manifest.json")]
    assert len(manifests) == len(TAGS), f"{prefix}: manifests {manifests}"
    for key in manifests:
        local = scratch / "manifest.json"
        subprocess.run([aws, "--endpoint-url", endpoint, "s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}",
                        str(local)], check=True)
        manifest = json.loads(local.read_text())
        measured = [e["name"] for e in manifest["files"] if "qc" in e]
        if qc:
            assert isinstance(manifest.get("qc"), dict) and manifest["qc"].get("verdict"), f"{key}: no device qc section"
            unmeasured = [e["name"] for e in manifest["files"] if "qc" not in e]
            assert not unmeasured, f"{key}: QC on, but no qc for {unmeasured}"
            for e in manifest["files"]:
                if e["name"].endswith(".raw"):
                    frames = e["qc"]["audio"]["frames"]
                    assert frames * FRAME_BYTES == e["size"], f"{key}: {e['name']}: qc frames {frames}, size {e['size']}"
        else:
            assert "qc" not in manifest and not measured, f"{key}: QC off, but a qc section (files {measured[:3]})"


# ---- 2. ceti qc on FLAC against flac -d ---------------------------------------------------
def firmware_flacs(raws: list[Path], root: Path) -> dict[str, Path]:
    """root/wt-bench/<epoch_ms>.flac of each raw file (cached): {FLAC name: its raw file}. The names
    follow on from each other as a tag's recordings do (each starts where the one before ended)."""
    mapping, start = {}, 1_700_000_000_000
    for raw in raws:
        mapping[f"{start}.flac"] = raw
        start += round(raw.stat().st_size // FRAME_BYTES * 1000 / RATE)
    device = root / QC_DEVICE
    stamp = root.parent / f"{root.name}.stamp"
    # Names and sizes only: make_tag_data sets the raw files' mtimes anew on every call.
    want = "\n".join(f"{name} {raw.name} {raw.stat().st_size}" for name, raw in mapping.items())
    if device.is_dir() and stamp.exists() and stamp.read_text() == want and \
            sorted(p.name for p in device.iterdir()) == sorted(mapping) and not any(p for p in root.iterdir() if p != device):
        log(f"FLAC set: reusing {device}")
        return mapping
    log(f"FLAC set: encoding {len(mapping)} raw files with flac -5 into {device}")
    shutil.rmtree(root, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    part = root.parent / f"{root.name}.part"
    shutil.rmtree(part, ignore_errors=True)
    (part / QC_DEVICE).mkdir(parents=True)
    for name, raw in mapping.items():
        subprocess.run([*FLAC_ENCODE, "-o", str(part / QC_DEVICE / name), str(raw)], check=True)
    part.rename(root)
    stamp.write_text(want)
    return mapping


def qc_runs(args, ceti: str, root: Path, mapping: dict[str, Path], work: Path, launcher: list[str]) -> tuple[dict, str]:
    device = root / QC_DEVICE
    scratch = work / "decoded"
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config"), "CETI_LEDGER": str(work / "qc-ledger.sqlite")}
    quiet = 'exec "$0" "$@" >/dev/null'  # the tool's stdout to /dev/null, as an operator's script would
    cmds = {
        QC_TOOLS[0]: ["bash", "-c", f'for f in "{device}"/*.flac; do n="${{f##*/}}"; '
                                    f'flac -d -s -f -o "{scratch}/${{n%.flac}}.wav" "$f" || exit 1; done'],
        QC_TOOLS[1]: ["bash", "-c", f'for f in "{device}"/*.flac; do flac -d -s -c "$f" >/dev/null || exit 1; done'],
        QC_TOOLS[2]: ["sh", "-c", quiet, ceti, "qc", str(root), "-j", "1", "--json"],
        QC_TOOLS[3]: ["sh", "-c", quiet, ceti, "qc", str(root)],
    }
    # Untimed: what ceti qc reports, checked against the raw files (this also warms the page cache).
    r = subprocess.run([ceti, "qc", str(root), "-j", "1", "--json"], env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode not in (0, 4):
        sys.exit(f"bench: ceti qc failed ({r.returncode}): {r.stderr[-3000:]}")
    summary = json.loads(r.stdout)
    devices = summary["devices"]
    assert [d["device"] for d in devices] == [QC_DEVICE], f"ceti qc: devices {[d['device'] for d in devices]}"
    got = {f["name"]: f for f in devices[0]["files"]}
    assert sorted(got) == sorted(mapping), f"ceti qc listed {sorted(got)}, expected {sorted(mapping)}"
    for name, raw in mapping.items():
        audio = got[name].get("audio") or {}
        assert audio.get("frames") == raw.stat().st_size // FRAME_BYTES, \
            f"{name}: audio.frames {audio.get('frames')}, raw {raw.name} has {raw.stat().st_size // FRAME_BYTES}"
        assert not got[name].get("error"), f"{name}: {got[name]['error']}"
    problems = devices[0].get("problems") or []
    verdict = f"{devices[0]['verdict']}" + (f" ({'; '.join(p.get('message', p.get('kind', '?')) for p in problems[:3])})"
                                            if problems else "")
    log(f"ceti qc: {len(got)} files, frames as the raw files; verdict {verdict} (exit {r.returncode})")
    for f in device.iterdir():  # warm for flac too
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass
    results: dict[str, list] = {t: [] for t in QC_TOOLS}
    for rep in range(args.reps):
        for tool, cmd in cmds.items():
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            m = run_measured(cmd, env, work / f"qc-{QC_TOOLS.index(tool)}-{rep}", 3600, launcher)
            if m.rc not in ((0, 4) if tool.startswith("ceti") else (0,)):
                sys.exit(f"bench: {tool} failed ({m.rc}): {m.stderr[-3000:]}")
            if tool == QC_TOOLS[0]:
                wavs = list(scratch.glob("*.wav"))
                assert len(wavs) == len(mapping), f"flac -d wrote {len(wavs)} files"
            results[tool].append(m)
            log(f"qc: {tool} rep {rep + 1}: wall {m.wall:.2f} s, CPU {m.cpu:.2f} s, peak RSS {m.maxrss_kib / 1024:.0f} MiB")
    shutil.rmtree(scratch, ignore_errors=True)
    return results, verdict


def main() -> int:
    ap = bench_args(__doc__)
    reps = ap._option_string_actions["--reps"]
    reps.default, reps.help = None, "timed runs per case (default 3; with --quick 1)"
    args = ap.parse_args()
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    install_signal_handlers()
    endpoint, bucket = tags_and_s3("qc_bench")
    t_start = time.monotonic()
    ceti = ceti_bin()
    aws = str(REPO / ".venv" / "bin" / "aws")
    if not shutil.which("flac"):
        sys.exit("bench: qc_bench needs flac (scripts/deps.sh installs it)")
    ensure_numpy()
    data = REPO / ".tmp" / "bench-data" / ("ingest-quick" if args.quick else "ingest")
    sets = [make_tag_data(data / f"tag{i}", i, args.quick) for i in range(2)]
    raw_bytes = sum(p.stat().st_size for s in sets for p in s if p.suffix == ".raw")
    all_bytes = sum(p.stat().st_size for s in sets for p in s)
    work = REPO / ".tmp" / "bench-work" / "qc"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    launcher, launcher_desc = build_launcher(work)

    ingest = ingest_runs(args, ceti, aws, endpoint, bucket, sets, work, launcher)

    raws = [p for p in sets[0] if p.suffix == ".raw"]
    qc_root = REPO / ".tmp" / "bench-data" / ("qc-flac-quick" if args.quick else "qc-flac")
    mapping = firmware_flacs(raws, qc_root)
    flac_bytes = sum(p.stat().st_size for p in (qc_root / QC_DEVICE).iterdir())
    qc_raw_bytes = sum(p.stat().st_size for p in raws)
    qcres, verdict = qc_runs(args, ceti, qc_root, mapping, work, launcher)

    # Tags with current firmware write FLAC themselves: QC then decodes each as it is pulled.
    fw_roots = [qc_root] + [REPO / ".tmp" / "bench-data" / (f"qc-flac-tag{i}" + ("-quick" if args.quick else ""))
                            for i in range(1, len(sets))]
    fw_sets = []
    for i, s in enumerate(sets):
        firmware_flacs([p for p in s if p.suffix == ".raw"], fw_roots[i])
        fw_sets.append(sorted((fw_roots[i] / QC_DEVICE).iterdir()) + [p for p in s if p.suffix == ".csv"])
    fw_flac_bytes = sum(p.stat().st_size for s in fw_sets for p in s if p.suffix == ".flac")
    fw_all_bytes = sum(p.stat().st_size for s in fw_sets for p in s)
    ingest_fw = ingest_runs(args, ceti, aws, endpoint, bucket, fw_sets, work, launcher, label="firmware-flac")

    # ---- tables
    gb_audio, gb_all = raw_bytes / 1e9, all_bytes / 1e9
    off_cpu, off_wall = median(ingest["QC off"], "cpu"), median(ingest["QC off"], "wall")
    t1 = ["| ceti ingest | wall s | CPU s | CPU s per GB audio | CPU s per GB pulled | peak RSS MiB | wall vs QC off | CPU vs QC off |",
          "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for mode in MODES:
        ms = ingest[mode]
        w, c = median(ms, "wall"), median(ms, "cpu")
        t1.append(f"| {mode if mode == 'QC on' else 'QC off (`--no-qc`)'} | {w:.1f} | {c:.1f} | {c / gb_audio:.2f} | "
                  f"{c / gb_all:.2f} | {max(m.maxrss_kib for m in ms) / 1024:.0f} | {w / off_wall:.2f}× | {c / off_cpu:.3f}× |")
    cpu_ratio = median(ingest["QC on"], "cpu") / off_cpu
    fw_off_cpu, fw_off_wall = median(ingest_fw["QC off"], "cpu"), median(ingest_fw["QC off"], "wall")
    t1.append("| **tags writing FLAC (firmware ≥ 2.1-6)** | | | | | | | |")
    for mode in MODES:
        ms = ingest_fw[mode]
        w, c = median(ms, "wall"), median(ms, "cpu")
        t1.append(f"| {mode if mode == 'QC on' else 'QC off (`--no-qc`)'} | {w:.1f} | {c:.1f} | {c / gb_audio:.2f} | "
                  f"{c / (fw_all_bytes / 1e9):.2f} | {max(m.maxrss_kib for m in ms) / 1024:.0f} | {w / fw_off_wall:.2f}× | "
                  f"{c / fw_off_cpu:.3f}× |")
    fw_ratio = median(ingest_fw["QC on"], "cpu") / fw_off_cpu
    fw_extra = (median(ingest_fw["QC on"], "cpu") - fw_off_cpu) / gb_audio
    ref_wall, ref_cpu = median(qcres[QC_TOOLS[0]], "wall"), median(qcres[QC_TOOLS[0]], "cpu")
    t2 = ["| tool | wall s | CPU s | CPU s per GB audio | peak RSS MiB | wall vs flac -d | CPU vs flac -d |",
          "|---|--:|--:|--:|--:|--:|--:|"]
    for tool in QC_TOOLS:
        ms = qcres[tool]
        w, c = median(ms, "wall"), median(ms, "cpu")
        t2.append(f"| {tool} | {w:.2f} | {c:.2f} | {c / (qc_raw_bytes / 1e9):.2f} | {max(m.maxrss_kib for m in ms) / 1024:.0f} | "
                  f"{w / ref_wall:.2f}× | {c / ref_cpu:.2f}× |")
    qc_wall = median(qcres[QC_TOOLS[2]], "wall")
    qc_ratio = qc_wall / ref_wall
    floor2 = median(qcres[QC_TOOLS[1]], "wall")
    verdicts = [
        f"ingest CPU with QC on vs off {cpu_ratio:.3f}× (target ≤ 1.10×): {'met' if cpu_ratio <= 1.10 else 'missed'}",
        f"tags writing FLAC: ingest CPU with QC on vs off {fw_ratio:.3f}× ({'met' if fw_ratio <= 1.10 else 'missed'}: "
        f"QC must decode what the tag encoded, {fw_extra:.2f} CPU s more per GB of audio)",
        f"`ceti qc -j 1` wall vs `flac -d` to files {qc_ratio:.2f}× (target ≤ 1.3×): {'met' if qc_ratio <= 1.3 else 'missed'}; "
        f"{qc_wall / floor2:.2f}× `flac -d -c > /dev/null`",
    ]
    table = "\n".join(t1) + "\n\n" + "\n".join(t2)
    verdict_text = "\n- ".join(verdicts)
    print(table)
    print("- " + verdict_text)
    if args.quick or args.no_record:
        return 0
    m = machine_info()
    version, flacv, awsv = versions(ceti, aws)
    sshv = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    record(f"""
## Recording QC (issue #16) — {dt.datetime.now(dt.timezone.utc).strftime('%a %b %d %H:%M:%S UTC %Y')}

- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, Linux {m['kernel']}
- Versions: ceti {version}; {flacv}; {awsv}; {sshv}; SeaweedFS 4.48 on the same machine (loopback)
- Ingest: the ingest bench's two simulated tags (OpenSSH sshd on 127.0.0.1, hostnames {', '.join(TAGS)}), each
  {len(sets[0]) - 3} raw files ({raw_bytes / 2e6:.0f} MB per tag; 3 ch, 16-bit, 96 kHz, big-endian noise plus a weak tone) and
  3 CSVs; {gb_audio:.2f} GB of audio, {gb_all:.2f} GB pulled in all, in the page cache. `ceti ingest -t TAG1 -t TAG2` with its
  defaults, and with `--no-qc`; each run with a fresh staging folder, ledger and key prefix. CPU = user+sys of ceti and its
  children (wait4, {launcher_desc}); the tags' sshd and the S3 server are not counted. Every run's objects counted; every
  manifest of a QC-on run has the device's `qc` and one per file (the recordings' frames as their sizes give), a QC-off
  run's none. Then the same with each tag's recordings as `flac -5` files named `<epoch_ms>.flac` as current
  firmware writes them ({fw_flac_bytes / 1e6:.0f} MB of FLAC for the same {gb_audio:.2f} GB of audio; per GB of audio
  counts the decoded audio), uploaded as they are: QC decodes each as it is pulled.
- `ceti qc`: tag 1's {len(mapping)} raw files ({qc_raw_bytes / 1e6:.0f} MB) as `flac -5` files named `<epoch_ms>.flac`
  ({flac_bytes / 1e6:.0f} MB) in one device folder, in the page cache. `flac -d -s -f -o X.wav` of each in turn into a
  scratch folder (emptied between runs), and `flac -d -s -c > /dev/null` of each; `ceti qc DIR -j 1 --json > /dev/null`
  (one file at a time) and `ceti qc DIR` ({m['nproc']} files at once). Both decoders check the FLAC's MD5. `ceti qc`
  listed every file with the raw file's frame count; verdict {verdict}. Medians of {args.reps} runs.

{table}

- {verdict_text}
""", t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
