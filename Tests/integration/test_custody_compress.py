"""The custody rule where compress and the tree walkers meet it (issue #10, items 1, 4, 7, 12):
two inputs never share an output, a staged copy that changed since its pull is never encoded,
general_offload's `→ PATH` always exists and is verified, and nothing unreadable passes silently."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import pytest

from test_compress import flac_decode, pcm

DEVICE = "CETI-DJI_MINI2-1"
HOSTNAME = socket.gethostname()


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def flac_ok(path: Path) -> bool:
    return subprocess.run(["flac", "-t", "-s", str(path)], capture_output=True).returncode == 0


def derivatives(ceti, output: Path) -> list[tuple]:
    if not ceti.ledger.exists():
        return []
    with sqlite3.connect(ceti.ledger) as db:
        return db.execute("SELECT input_path, output_sha256 FROM derivatives WHERE output_path = ?", (str(output),)).fetchall()


def write_wav(path: Path, raw_le: bytes, channels: int = 3, rate: int = 96000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw_le)


# ---- 1. two inputs, one output ----------------------------------------------------------------

@pytest.mark.parametrize("other", ["a.wav", "a.RAW"])
def test_two_inputs_for_one_output_are_both_kept_and_named(ceti, tmp_path, other):
    d = tmp_path / "in" / "wt-x"
    d.mkdir(parents=True)
    a = pcm(48000, 3, 16, "big", seed=1)
    (d / "a.raw").write_bytes(a)
    if other == "a.wav":
        write_wav(d / other, pcm(48000, 3, 16, "little", seed=2))
    else:
        (d / other).write_bytes(pcm(48000, 3, 16, "big", seed=3))
    second = (d / other).read_bytes()
    b = pcm(24000, 3, 16, "big", seed=4)
    (d / "b.raw").write_bytes(b)  # an innocent bystander: its work still happens

    r = ceti("compress", "--json", tmp_path / "in")  # default -j: the encoders would run in parallel
    assert r.returncode == 1, r.stderr
    assert (d / "a.raw").read_bytes() == a and (d / other).read_bytes() == second
    for line in (l for l in r.stderr.splitlines() if "a.flac" in l):
        assert str(d / "a.raw") in line and str(d / other) in line, line
    assert any(str(d / "a.raw") in l and str(d / other) in l for l in r.stderr.splitlines()), r.stderr
    files = {Path(f["input"]).name: f for f in json.loads(r.stdout)["files"]}
    assert files["a.raw"]["action"] == files[other]["action"] == "failed"
    assert not files["a.raw"]["original_removed"] and not files[other]["original_removed"]
    # No output under a final name unless it is a good FLAC of its own input (there should be none).
    assert not (d / "a.flac").exists() and not (d / "a.flac.part").exists()
    assert derivatives(ceti, d / "a.flac") == []
    # The rest was compressed as usual.
    assert files["b.raw"]["action"] == "compressed" and not (d / "b.raw").exists()
    assert flac_ok(d / "b.flac") and flac_decode(d / "b.flac", tmp_path / "b.back", endian="big") == b

    # Once one is renamed, both compress, each to its own output.
    (d / other).rename(d / ("c" + Path(other).suffix))
    ceti("compress", tmp_path / "in", check=0)
    assert flac_ok(d / "a.flac") and flac_decode(d / "a.flac", tmp_path / "a.back", endian="big") == a


def test_an_output_recorded_for_another_input_is_a_collision(ceti, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    a = pcm(24000, 3, 16, "big", seed=5)
    (d / "a.raw").write_bytes(a)
    ceti("compress", d, check=0)
    flac = (d / "a.flac").read_bytes()
    # Later a WAV of the same stem appears: a.flac is a.raw's, not its.
    write_wav(d / "a.wav", pcm(24000, 3, 16, "little", seed=6))
    wav = (d / "a.wav").read_bytes()
    r = ceti("compress", d)
    assert r.returncode == 1
    assert str(d / "a.wav") in r.stderr and str(d / "a.raw") in r.stderr, r.stderr
    assert (d / "a.wav").read_bytes() == wav
    assert (d / "a.flac").read_bytes() == flac
    assert flac_decode(d / "a.flac", tmp_path / "a.back", endian="big") == a


def test_an_original_beside_its_output_goes_only_if_the_output_reads_back_as_recorded(ceti, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    a = pcm(24000, 3, 16, "big", seed=7)
    (d / "a.raw").write_bytes(a)
    ceti("compress", "--keep", d, check=0)
    out = d / "a.flac"
    good = out.read_bytes()
    bad = bytearray(good)
    bad[-100] ^= 0x01  # same size, other bytes: the size check alone would pass it
    out.write_bytes(bytes(bad))
    r = ceti("compress", d)
    assert r.returncode == 1 and "no longer has the SHA-256 recorded" in r.stderr, r.stderr
    assert (d / "a.raw").read_bytes() == a
    out.write_bytes(good)
    r = ceti("compress", "--json", d, check=0)
    (f,) = json.loads(r.stdout)["files"]
    assert f["action"] == "skipped" and f["original_removed"] and not (d / "a.raw").exists()


def test_a_part_locked_by_another_process_is_left_alone(ceti, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    a = pcm(24000, 3, 16, "big", seed=8)
    (d / "a.raw").write_bytes(a)
    part = d / "a.flac.part"
    part.write_bytes(b"another writer's bytes")
    with open(part, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = ceti("compress", d)
    assert r.returncode == 1 and "being written by another process" in r.stderr, r.stderr
    assert part.read_bytes() == b"another writer's bytes"
    assert (d / "a.raw").read_bytes() == a and not (d / "a.flac").exists()
    # Unlocked (the other writer died): the stale .part is taken over and the run completes.
    r = ceti("compress", d, check=0)
    assert flac_ok(d / "a.flac") and not part.exists() and not (d / "a.raw").exists()


# ---- 2. a staged copy that changed since its pull ----------------------------------------------

def test_a_pulled_copy_that_changed_is_not_encoded(ceti, sshd_tag, tmp_path):
    raw = pcm(30000, 3, 16, "big", seed=9)
    csv = b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(2000))
    for name, blob in {"1700000000000.raw": raw, "data_battery.csv": csv}.items():
        p = sshd_tag.data / name
        p.write_bytes(blob)
        os.chmod(p, 0o644)
        t = time.time() - 600
        os.utime(p, (t, t))
    ceti("whaletag", "-t", sshd_tag.host, "--port", sshd_tag.port, "--user", sshd_tag.user, "--remote-dir", sshd_tag.data,
         "--data-dir", tmp_path / "pulled", env_extra={"CETI_TAG_PASSWORD": sshd_tag.password}, check=0)
    local = tmp_path / "pulled" / HOSTNAME
    staged = local / "1700000000000.raw"
    assert staged.read_bytes() == raw
    changed = bytearray(raw)
    changed[len(raw) // 2] ^= 0x40  # one bit, same size
    staged.write_bytes(bytes(changed))

    r = ceti("compress", "--json", local)
    assert r.returncode == 1
    assert (f"{staged} changed since it was pulled: SHA-256 recorded {sha(raw)}, now {sha(bytes(changed))}; "
            "kept, output discarded") in r.stderr, r.stderr
    assert staged.read_bytes() == bytes(changed)
    assert not (local / "1700000000000.flac").exists() and not (local / "1700000000000.flac.part").exists()
    assert derivatives(ceti, local / "1700000000000.flac") == []
    # The unchanged CSV beside it went through.
    files = {Path(f["input"]).name: f["action"] for f in json.loads(r.stdout)["files"]}
    assert files == {"1700000000000.raw": "failed", "data_battery.csv": "compressed"}
    assert subprocess.run(["gunzip", "-c", str(local / "data_battery.csv.gz")], capture_output=True, check=True).stdout == csv


# ---- 3. general_offload reports only what it wrote ---------------------------------------------

def card(root: Path) -> dict[str, bytes]:
    files = {"DCIM/100MEDIA/DJI_0001.MP4": os.urandom(200_000), "DCIM/100MEDIA/DJI_0002.JPG": os.urandom(5000),
             "telemetry.SRT": b"1\n00:00:00,000 --> 00:00:01,000\n"}
    for rel, blob in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    return files


def arrows(line: str) -> list[Path]:
    """The folders a summary line says it wrote: `→ A and B`."""
    m = re.search(r"→ (.*)$", line.strip())
    return [Path(p) for p in m.group(1).split(" and ")] if m else []


def check_folder(folder: Path, files: dict[str, bytes], expect: set[str]) -> None:
    rows = [l.split("\t") for l in (folder / "names.tsv").read_text().splitlines()[1:]]
    assert {r[0] for r in rows} == expect, rows
    for original, name, size, digest in rows:
        got = (folder / name).read_bytes()
        assert got == files[original] and int(size) == len(got) and digest == sha(got)


def test_offload_to_another_data_dir_writes_and_verifies_both_folders(ceti, tmp_path):
    root = tmp_path / "card"
    files = card(root)
    ids = tmp_path / "ids.txt"
    ids.write_text(DEVICE + "\n")
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    ceti("general_offload", "--registry", ids, "--data-dir", d1, root, DEVICE, check=0)

    r = ceti("general_offload", "--registry", ids, "--data-dir", d2, root, DEVICE, check=0)
    said = arrows(r.stdout.strip().splitlines()[-1])
    (backup,) = (d2 / "backup").glob(f"*/{DEVICE}")
    staging = d2 / "staging" / DEVICE
    assert said == [backup, staging], r.stdout
    for folder in (backup, staging):
        check_folder(folder, files, set(files))
    assert not list(d2.rglob("*.part"))

    # Staging uploaded and removed, then the card offloaded again: the files go back to staging
    # (not in S3), with a names.tsv; the summary names only staging, which it wrote.
    shutil.rmtree(staging)
    r = ceti("general_offload", "--registry", ids, "--data-dir", d2, "--json", root, DEVICE, check=0)
    doc = json.loads(r.stdout)
    assert {f["action"] for f in doc["files"]} == {"restaged"}
    assert doc.get("backup") is None and Path(doc["staging"]) == staging
    check_folder(staging, files, set(files))
    r = ceti("general_offload", "--registry", ids, "--data-dir", d2, root, DEVICE, check=0)
    assert arrows(r.stdout.strip().splitlines()[-1]) == [], r.stdout  # nothing new written: no arrow

    # A backup that no longer reads back as recorded is not "already saved".
    victim = next(p for p in backup.iterdir() if p.name.endswith(".MP4"))
    blob = bytearray(victim.read_bytes())
    blob[10] ^= 0xFF
    victim.write_bytes(bytes(blob))
    r = ceti("general_offload", "--registry", ids, "--data-dir", d2, "--json", root, DEVICE, check=0)
    actions = {f["original"]: f["action"] for f in json.loads(r.stdout)["files"]}
    assert actions["DCIM/100MEDIA/DJI_0001.MP4"] == "copied" and list(actions.values()).count("copied") == 1


# ---- 4. unreadable input is a failure ----------------------------------------------------------

def nobody_ok() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


needs_nobody = pytest.mark.skipif(not nobody_ok(), reason="needs root and setpriv to run ceti as nobody")


@pytest.fixture
def nobody_dir():
    """A folder owned by nobody in a place nobody can reach (tmp_path's parents are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="ceti-nobody-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    subprocess.run(["chmod", "-R", "u+rwx", str(d)], check=False)
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(ceti, home: Path, *args, env_extra=None) -> subprocess.CompletedProcess:
    """ceti ARGS as the unprivileged user nobody (root reads through permission bits)."""
    env = dict(ceti.env)
    env.update({"HOME": str(home / "home"), "XDG_DATA_HOME": str(home / "xdg"), "XDG_CACHE_HOME": str(home / "cache"),
                "XDG_CONFIG_HOME": str(home / "config"), "XDG_STATE_HOME": str(home / "state"),
                "CETI_LEDGER": str(home / "ledger.sqlite"), **(env_extra or {})})
    for k in ("home", "xdg", "cache", "config", "state"):
        (home / k).mkdir(exist_ok=True)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(home)], check=True)
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(ceti.bin),
                           *[str(a) for a in args]], env=env, cwd=home, capture_output=True, text=True, timeout=300)


def lock_away(*paths: Path) -> None:
    """chmod 000, and prove that nobody really cannot read them."""
    for p in paths:
        os.chmod(p, 0)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "ls" if p.is_dir() else "cat", str(p)], capture_output=True, text=True)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (p, r.stderr)


def failure_lines(stderr: str, path: Path) -> list[str]:
    return [l for l in stderr.splitlines() if str(path) in l and "Permission denied" in l]


def tree_with_unreadable_parts(nobody_dir: Path, device: Path, files: dict[str, bytes], locked: str, secret: str) -> None:
    """Files under `device` owned by nobody; then the folder `locked` and the file `secret` made
    unreadable to nobody."""
    for name, blob in files.items():
        (device / name).parent.mkdir(parents=True, exist_ok=True)
        (device / name).write_bytes(blob)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(nobody_dir)], check=True)
    lock_away(device / locked, device / secret)


@needs_nobody
def test_compress_reports_an_unreadable_folder_and_file(ceti, nobody_dir):
    d = nobody_dir / "in"
    tree_with_unreadable_parts(nobody_dir, d / "wt-x", {"locked/x.csv": b"a,b\n1,2\n", "ok.csv": b"a,b\n3,4\n",
                                                        "secret.csv": b"a,b\n5,6\n"}, "locked", "secret.csv")
    r = as_nobody(ceti, nobody_dir, "compress", d)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(failure_lines(r.stderr, d / "wt-x" / "locked")) == 1, r.stderr
    assert len(failure_lines(r.stderr, d / "wt-x" / "secret.csv")) == 1, r.stderr
    assert "2 failed" in r.stdout, r.stdout
    # The rest was done.
    assert (d / "wt-x" / "ok.csv.gz").exists() and not (d / "wt-x" / "ok.csv").exists()


@needs_nobody
def test_s3upload_reports_an_unreadable_folder_and_file(ceti, s3, bucket, nobody_dir):
    up = nobody_dir / "up"
    tree_with_unreadable_parts(nobody_dir, up / "dev", {"locked/inner.txt": b"inner", "ok.txt": b"fine",
                                                        "secret.txt": b"secret"}, "locked", "secret.txt")
    r = as_nobody(ceti, nobody_dir, "s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--json", up)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(failure_lines(r.stderr, up / "dev" / "locked")) == 1, r.stderr
    assert len(failure_lines(r.stderr, up / "dev" / "secret.txt")) == 1, r.stderr
    failed = {Path(f["path"]).name for f in json.loads(r.stdout)["files"] if f["action"] == "failed"}
    assert failed == {"locked", "secret.txt"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith("dev/ok.txt") for k in keys) and not any("secret" in k or "inner" in k for k in keys), keys


@needs_nobody
def test_general_offload_reports_an_unreadable_folder_and_file(ceti, nobody_dir):
    root = nobody_dir / "card"
    (root / "DCIM" / "locked").mkdir(parents=True)
    (root / "DCIM" / "locked" / "DJI_0009.MP4").write_bytes(b"hidden clip")
    (root / "DCIM" / "DJI_0001.MP4").write_bytes(os.urandom(5000))
    (root / "DCIM" / "DJI_0002.MP4").write_bytes(b"unreadable clip")
    ids = nobody_dir / "ids.txt"
    ids.write_text(DEVICE + "\n")
    subprocess.run(["chown", "-R", "nobody:nogroup", str(nobody_dir)], check=True)
    lock_away(root / "DCIM" / "locked", root / "DCIM" / "DJI_0002.MP4")
    data = nobody_dir / "data"
    r = as_nobody(ceti, nobody_dir, "general_offload", "--registry", ids, "--data-dir", data, root, DEVICE)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(failure_lines(r.stderr, root / "DCIM" / "locked")) == 1, r.stderr
    assert len(failure_lines(r.stderr, root / "DCIM" / "DJI_0002.MP4")) == 1, r.stderr
    (backup,) = (data / "backup").glob(f"*/{DEVICE}")
    rows = [l.split("\t") for l in (backup / "names.tsv").read_text().splitlines()[1:]]
    assert [row[0] for row in rows] == ["DCIM/DJI_0001.MP4"]


def test_offload_backup_root_is_its_own_option(ceti, tmp_path):
    """`--backup DIR` puts the dated backup under DIR (one name for backups across commands);
    staging stays DATA_DIR/staging."""
    root = tmp_path / "card"
    files = card(root)
    ids = tmp_path / "ids.txt"
    ids.write_text(DEVICE + "\n")
    data, backups = tmp_path / "data", tmp_path / "backups"
    r = ceti("general_offload", "--registry", ids, "--data-dir", data, "--backup", backups, root, DEVICE, check=0)
    (backup,) = backups.glob(f"*/{DEVICE}")
    staging = data / "staging" / DEVICE
    assert arrows(r.stdout.strip().splitlines()[-1]) == [backup, staging], r.stdout
    for folder in (backup, staging):
        check_folder(folder, files, set(files))
    assert not (data / "backup").exists()
