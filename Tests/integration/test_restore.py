"""ceti restore (issue #14): a run's files for one device back from S3 as the tag wrote them, on a
"new machine" (a fresh HOME and XDG dirs, no ledger) from the manifest alone. Checked byte for byte
against the tag's originals, with the tag's names and modification times; a kill -9 mid-restore
resumes without fetching finished files again (the S3 proxy's log shows every GET and its range);
mismatches, occupied names and hostile manifests are refused and named."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import struct
import subprocess
import time
from pathlib import Path

from test_ingest import RAW_FLAGS, audio, boto_objects, fill, run_ingest, s3_body, tag_files


def new_machine(ceti, tmp_path: Path, name: str) -> dict:
    """Environment of a shore machine that never saw the boat's ledger or config."""
    root = tmp_path / name
    env = {}
    for var, sub in (("HOME", "home"), ("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[var] = root / sub
    env["CETI_LEDGER"] = None
    return env


def restore(ceti, source, out, *extra, env=None, endpoint=None, check=None):
    return ceti("restore", source, out, "--endpoint-url", endpoint or ceti.s3env.endpoint, *extra, env_extra=env,
                check=check, timeout=600)


def run_folders(s3, bucket) -> dict[str, str]:
    """device → s3:// URL of its run folder."""
    return {k.split("/")[-2]: f"s3://{bucket}/{k.rsplit('/', 1)[0]}/" for k in boto_objects(s3, bucket)
            if k.endswith("/manifest.json")}


def firmware_flac(tmp_path: Path, seed: int, frames: int) -> bytes:
    raw = tmp_path / f"fw{seed}.raw"
    raw.write_bytes(audio(frames, seed))
    out = tmp_path / f"fw{seed}.flac"
    subprocess.run(["flac", "-s", "-5", *RAW_FLAGS[1:], "-o", str(out), str(raw)], check=True, timeout=60)
    return out.read_bytes()


def recorder_wav(frames: int, seed: int) -> bytes:
    """A WAV as a field recorder writes one: 2 ch 16-bit 48 kHz PCM, an odd-sized LIST chunk (pad
    byte) before the audio and an iXML-like chunk after it; every byte must come back."""
    def chunk(cid: bytes, body: bytes) -> bytes:
        return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")
    pcm = random.Random(seed).randbytes(frames * 4)
    body = (b"WAVE" + chunk(b"fmt ", struct.pack("<HHIIHH", 1, 2, 48000, 48000 * 4, 4, 16))
            + chunk(b"LIST", b"INFOICMT\x05\0\0\0buoy\0") + chunk(b"data", pcm) + chunk(b"iXML", b"<BWFXML/>"))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def size_of(p: Path) -> int:
    """A file's size, 0 once it is gone (a finished download is removed while we look)."""
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def assert_restored(out: Path, tag_data: Path, names) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(names), sorted(p.name for p in out.iterdir())
    for name in names:
        original = tag_data / name
        assert (out / name).read_bytes() == original.read_bytes(), name
        assert int((out / name).stat().st_mtime) == int(original.stat().st_mtime), name


def test_each_device_run_restored_on_a_new_machine(ceti, s3, bucket, tag_pair, tmp_path):
    t0, t1 = tag_pair
    files0 = tag_files(0, raws=2) | {"1700000900000.flac": firmware_flac(tmp_path, 5, 60_000),
                                     "1700000950000.wav": recorder_wav(30_001, 6)}
    # Firmware 2.3.0's data_config: the second tag records 24-bit audio.
    pcm24 = bytes(random.Random(3).getrandbits(8) >> 3 for _ in range(9 * 20_000))
    files1 = tag_files(1, raws=1) | {
        "data_config_1700000000000000.txt": b"audio_bitdepth =: 24\naudio_sample_rate = 48 # KHz\n",
        "1700000400000.raw": pcm24,
    }
    fill(t0.data, files0)
    fill(t1.data, files1, age=900)
    run_ingest(ceti, tag_pair, bucket, tmp_path / "staging", check=0)
    folders = run_folders(s3, bucket)
    assert folders.keys() == {t0.name, t1.name}

    for t, files in ((t0, files0), (t1, files1)):
        env = new_machine(ceti, tmp_path, f"shore-{t.name}")
        out = tmp_path / f"restored-{t.name}"
        dry = json.loads(restore(ceti, folders[t.name], out, "-n", "--json", env=env, check=0).stdout)
        assert dry["would_restore"] == len(files) and dry["restored"] == 0 and not out.exists(), dry
        r = restore(ceti, folders[t.name], out, "--json", env=env, check=0)
        summary = json.loads(r.stdout)
        assert summary["restored"] == len(files) and summary["problems"] == [] and summary["device"] == t.name, summary
        assert summary["complete"] is True and summary["notes"] == [], summary
        assert_restored(out, t.data, files)
        # No ledger was read or made on the shore machine; no temporary file is left.
        assert not any(Path(env["XDG_DATA_HOME"]).rglob("*")), list(Path(env["XDG_DATA_HOME"]).rglob("*"))

    # The WAV went up as a FLAC that keeps its header and chunks, and came back whole above.
    m0 = json.loads(s3_body(s3, bucket)(folders[t0.name].split(bucket + "/", 1)[1] + "manifest.json"))
    (wav,) = [e for e in m0["files"] if e["name"].endswith(".wav")]
    assert wav["derivative"]["codec"] == "flac" and wav["object"]["key"].endswith(".flac"), wav

    # A rerun finds every file there: nothing is downloaded again.
    out0 = tmp_path / f"restored-{t0.name}"
    r = restore(ceti, folders[t0.name], out0, "--json", env=new_machine(ceti, tmp_path, "shore-again"), check=0)
    again = json.loads(r.stdout)
    assert again["already_there"] == len(files0) and again["restored"] == 0 and again["downloaded"] == 0, again

    # From a local copy of the manifest, only the sensor files, keeping their .gz as well.
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(s3_body(s3, bucket)(folders[t1.name].split(bucket + "/", 1)[1] + "manifest.json"))
    out1 = tmp_path / "csv-only"
    r = restore(ceti, manifest, out1, "--only", "*.csv", "--keep-derivatives", env=new_machine(ceti, tmp_path, "shore-csv"),
                check=0)
    csvs = [n for n in files1 if n.endswith(".csv")]
    gz = [n + ".gz" for n in csvs if files1[n]]  # the empty CSV went up as it was
    assert sorted(p.name for p in out1.iterdir()) == sorted(csvs + gz), r.stderr
    for n in csvs:
        assert (out1 / n).read_bytes() == files1[n]
    assert "restore: " in r.stdout and "all " in r.stdout


def test_kill_9_mid_restore_then_rerun_fetches_only_what_is_missing(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    from tcpproxy import start_tcp_proxy

    t = tag_pair[0]
    # Files that go up as they are, several chunks (2 MiB) each.
    files = {f"log_{k}.dat": random.Random(k).randbytes(9_000_000 + k) for k in range(3)}
    files["data_tag_info.yaml"] = b"tag: 9\n"
    fill(t.data, files)
    run_ingest(ceti, [t], bucket, tmp_path / "staging", check=0)
    (folder,) = run_folders(s3, bucket).values()
    out = tmp_path / "out"
    env = dict(ceti.env, **{k: str(v) for k, v in new_machine(ceti, tmp_path, "shore").items() if v is not None})
    env.pop("CETI_LEDGER")

    manifest = json.loads(s3_body(s3, bucket)(folder.split(bucket + "/", 1)[1] + "manifest.json"))
    key_of = {e["name"]: e["object"]["key"] for e in manifest["files"]}
    # restore's download of an object: DIR/.ceti-restore-<first 16 hex of SHA-256(key)>.download
    temp_of = {f".ceti-restore-{hashlib.sha256(e['object']['key'].encode()).hexdigest()[:16]}.download": e
               for e in manifest["files"]}

    first = proxy()
    link = start_tcp_proxy("127.0.0.1", first.port, rate=2_000_000)
    done, partial = [], None
    try:
        argv = [str(ceti.bin), "restore", folder, str(out), "-j", "1", "--endpoint-url", f"http://127.0.0.1:{link.port}"]
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (done and partial):
            time.sleep(0.02)
            if not out.exists():
                continue
            done = [p for p in out.iterdir() if not p.name.startswith(".")]
            # A download with seconds still to go at 2 MB/s: it is cut off mid-object.
            partial = next((p for p in out.glob(".ceti-restore-*.download")
                            if 0 < size_of(p) < temp_of[p.name]["object"]["size"] - (4 << 20)), None)
        # A second restore into the same folder meanwhile is refused (they would share temporary files).
        other = restore(ceti, folder, out, env=new_machine(ceti, tmp_path, "shore2"), endpoint=first.endpoint, check=2)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        link.stop()
    assert done and partial, "the restore never had a finished file and a partial one at once"
    assert "being restored into by another ceti restore" in other.stderr, other.stderr
    finished = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    partial_size = size_of(partial)
    partial_key = temp_of[partial.name]["object"]["key"]

    second = proxy()
    r = restore(ceti, folder, out, "--json", "-v", env=new_machine(ceti, tmp_path, "shore"), endpoint=second.endpoint,
                check=0)
    summary = json.loads(r.stdout)
    assert summary["already_there"] == len(finished) and summary["restored"] == len(files) - len(finished), summary
    assert_restored(out, t.data, files)
    assert not list(out.glob(".ceti-restore-*"))
    gets = [e for e in second.entries() if e["method"] == "GET" and "manifest.json" not in e["path"]]
    # Finished files: not one byte fetched again. The partial one: continued from where it stopped.
    for name in finished:
        assert not [g for g in gets if key_of[name] in g["path"]], name
    starts = [int(g["range"].split("=")[1].split("-")[0]) for g in gets if partial_key in g["path"]]
    assert starts and min(starts) == partial_size, (partial_size, starts)
    assert summary["downloaded"] < sum(e["object"]["size"] for e in manifest["files"] if e["name"] not in finished)


def test_mismatches_occupied_names_and_hostile_manifests_are_refused_and_named(ceti, s3, bucket, tag_pair, tmp_path):
    t = tag_pair[0]
    files = tag_files(0, raws=2, frames=20_000, csv_rows=2000)
    fill(t.data, files)
    run_ingest(ceti, [t], bucket, tmp_path / "staging", check=0)
    (folder,) = run_folders(s3, bucket).values()
    manifest = json.loads(s3_body(s3, bucket)(folder.split(bucket + "/", 1)[1] + "manifest.json"))
    entries = {e["name"]: e for e in manifest["files"]}
    raw0, raw1 = sorted(n for n in files if n.endswith(".raw"))
    env = new_machine(ceti, tmp_path, "shore")

    # An object overwritten with other bytes; a file of another content already in the folder.
    s3.put_object(Bucket=bucket, Key=entries[raw0]["object"]["key"], Body=b"fLaC other bytes")
    out = tmp_path / "out"
    out.mkdir()
    (out / "data_battery.csv").write_bytes(b"mine\n")
    r = restore(ceti, folder, out, "--json", env=env, check=1)
    problems = {p["name"]: p["detail"] for p in json.loads(r.stdout)["problems"]}
    assert problems.keys() == {raw0, "data_battery.csv"}, problems
    assert "not overwritten" in problems["data_battery.csv"] and f"data_battery.csv" in r.stderr
    assert (out / "data_battery.csv").read_bytes() == b"mine\n"
    assert not (out / raw0).exists() and (out / raw1).read_bytes() == files[raw1]
    assert raw0 in r.stderr

    # A manifest from elsewhere cannot write outside the folder; an old one without a layout says so.
    hostile = dict(manifest)
    hostile["files"] = [dict(entries[raw1], name="../escaped.raw")]
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(hostile))
    r = restore(ceti, evil, tmp_path / "evil-out", env=env, check=1)
    assert "../escaped.raw is not a path inside the folder" in r.stderr and not (tmp_path / "escaped.raw").exists()
    old = dict(manifest)
    old["files"] = [dict(entries[raw1], derivative=dict(entries[raw1]["derivative"], layout=None, parameters="-5"))]
    old_path = tmp_path / "old.json"
    old_path.write_text(json.dumps(old))
    r = restore(ceti, old_path, tmp_path / "old-out", env=env, check=0)
    assert "no raw layout recorded: decoded as the tag's default" in r.stderr
    assert (tmp_path / "old-out" / raw1).read_bytes() == files[raw1]

    # Usage errors: one line, exit 2.
    (tmp_path / "junk.json").write_text("{not json")
    for source in (tmp_path / "junk.json", tmp_path / "absent.json", f"s3://{bucket}/nowhere/_runs/x/wt-0/"):
        r = restore(ceti, source, tmp_path / "x", env=env, check=2)
        assert len(r.stderr.strip().splitlines()) == 1 and str(source).rstrip("/").split("/")[-1] in r.stderr, r.stderr
    r = restore(ceti, folder, tmp_path / "x", "--only", "*.nothing", env=env, check=2)
    assert "no file of the manifest matches" in r.stderr
