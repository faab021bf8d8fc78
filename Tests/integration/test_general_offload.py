"""general_offload: registry from the local S3 server (or cache, or a file), verified copies."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVICE = "CETI-DJI_MINI2-1"


def card(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "card"
    files = {
        "DCIM/100MEDIA/DJI_0001.MP4": os.urandom(300_000),
        "DCIM/101MEDIA/DJI_0001.MP4": os.urandom(1000),  # same name, other folder
        "DCIM/100MEDIA/clip with space é.jpg": b"jpeg",
        "telemetry.SRT": b"1\n00:00:00,000 --> 00:00:01,000\n",
    }
    for rel, blob in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
    # A second name for one file: the same birth millisecond, so the names must still differ.
    os.link(root / "telemetry.SRT", root / "DCIM" / "telemetry-link.SRT")
    files["DCIM/telemetry-link.SRT"] = files["telemetry.SRT"]
    for litter in (".Trashes/501/x", ".Spotlight-V100/Store", ".fseventsd/0001", "System Volume Information/IndexerVolumeGuid",
                   "DCIM/._DJI_0001.MP4", ".DS_Store"):
        p = root / litter
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"litter")
    return root, files


def registry_file(tmp_path, *ids) -> Path:
    p = tmp_path / "ids.txt"
    p.write_text("\n".join(ids) + "\n")
    return p


def offload(ceti, *args, check=None, env_extra=None):
    return ceti("general_offload", *[str(a) for a in args], check=check, env_extra=env_extra)


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()}


def test_copies_everything_verified_with_unique_names_and_a_map(ceti, tmp_path):
    root, files = card(tmp_path)
    before = snapshot(root)
    data = tmp_path / "data"
    r = offload(ceti, "--registry", registry_file(tmp_path, DEVICE, "CETI-GOPRO-2"), "--data-dir", data, "--json",
                root, DEVICE, check=0)
    doc = json.loads(r.stdout)
    assert {f["original"] for f in doc["files"]} == set(files)
    assert all(f["action"] == "copied" for f in doc["files"])
    staging = data / "staging" / DEVICE
    (backup,) = (data / "backup").glob(f"*/{DEVICE}")
    for folder in (staging, backup):
        rows = [l.split("\t") for l in (folder / "names.tsv").read_text().splitlines()[1:]]
        assert {r[0] for r in rows} == set(files)
        names = [r[1] for r in rows]
        assert len(set(names)) == len(names), names
        for original, name, size, sha in rows:
            got = (folder / name).read_bytes()
            assert got == files[original] and int(size) == len(got) and sha == hashlib.sha256(got).hexdigest()
            assert name.split(".")[0].split("-")[0].isdigit() and name.endswith(Path(original).suffix)
            assert (folder / name).stat().st_mtime_ns // 1000 == (root / original).stat().st_mtime_ns // 1000
    assert not list(data.rglob("*.part"))
    assert snapshot(root) == before, "the card must never be modified"

    # A rerun copies nothing new.
    r = offload(ceti, "--registry", registry_file(tmp_path, DEVICE), "--data-dir", data, "--json", root, DEVICE, check=0)
    assert {f["action"] for f in json.loads(r.stdout)["files"]} == {"already-saved"}
    assert len(list(staging.iterdir())) == len(files) + 1


def test_near_miss_id_is_refused_with_suggestions_and_copies_nothing(ceti, tmp_path):
    root, _ = card(tmp_path)
    r = offload(ceti, "--registry", registry_file(tmp_path, DEVICE, "CETI-GOPRO-2"), "--data-dir", tmp_path / "data",
                root, "ceti-dji_mini2-1")
    assert r.returncode == 2
    assert DEVICE in r.stderr and "did you mean" in r.stderr
    assert not (tmp_path / "data").exists()


def test_registry_from_s3_then_from_the_cache_when_offline(ceti, s3, bucket, tmp_path):
    root, files = card(tmp_path)
    s3.put_object(Bucket=bucket, Key="Device ID List.txt", Body=f"CETI-GOPRO-2\n  {DEVICE}  \n\nCETI-MOORING-7\n".encode())
    data = tmp_path / "data"
    r = offload(ceti, "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--data-dir", data, "-v", root, DEVICE, check=0)
    assert f"s3://{bucket}/Device ID List.txt" in r.stderr

    # Offline: the cached copy answers, and says how old it is.
    r = offload(ceti, "--bucket", bucket, "--endpoint-url", "http://127.0.0.1:1", "--data-dir", data, "-t", "-v",
                root, DEVICE, check=0)
    assert "cached copy from" in r.stderr
    # Offline without a cache: a clear error that suggests --registry.
    r = offload(ceti, "--bucket", bucket, "--endpoint-url", "http://127.0.0.1:1", "--data-dir", data, root, DEVICE,
                env_extra={"XDG_CACHE_HOME": tmp_path / "empty-cache"})
    assert r.returncode == 2 and "--registry" in r.stderr


def test_dry_run_writes_nothing(ceti, tmp_path):
    root, files = card(tmp_path)
    r = offload(ceti, "--registry", registry_file(tmp_path, DEVICE), "--data-dir", tmp_path / "data", "-t", "--json",
                root, DEVICE, check=0)
    assert {f["action"] for f in json.loads(r.stdout)["files"]} == {"would-copy"}
    assert not (tmp_path / "data").exists() and not ceti.ledger.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_destination_fails_cleanly(ceti, tmp_path):
    root = tmp_path / "card"
    root.mkdir()
    big = os.urandom(3 << 20)
    (root / "big.MP4").write_bytes(big)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        r = offload(ceti, "--registry", registry_file(tmp_path, DEVICE), "--data-dir", small, root, DEVICE)
        assert r.returncode == 1 and "space" in r.stderr, r.stderr
        leftovers = [p for p in small.rglob("*") if p.is_file()]
        assert leftovers == [] or all(p.name == "names.tsv" for p in leftovers), leftovers
        assert (root / "big.MP4").read_bytes() == big
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_wrapper_uploads_then_removes_staging_and_keeps_it_when_the_upload_fails(ceti, s3, bucket, tmp_path):
    root, files = card(tmp_path)
    data = tmp_path / "data"
    env = {**ceti.env, "CETI": str(ceti.bin), "CETI_DATA_DIR": str(data), "CETI_BUCKET": bucket,
           "AWS_ENDPOINT_URL": ceti.s3env.endpoint}
    s3.put_object(Bucket=bucket, Key="Device ID List.txt", Body=DEVICE.encode())
    script = REPO / "scripts" / "general_offload.sh"
    r = subprocess.run(["bash", str(script), str(root), DEVICE], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len([k for k in keys if f"/{DEVICE}/" in k]) == len(files) + 1  # the files and names.tsv
    assert list(data.glob("staging.*")) == []

    # A second card while S3 is unreachable: staging is kept and the exit status says so.
    (root / "new.MP4").write_bytes(b"new clip")
    bad = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    r = subprocess.run(["bash", "-c", f'source "{script}"; general_offload "{root}" {DEVICE}'], env=bad,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    (kept,) = data.glob("staging.*")
    assert any(p.name.endswith(".MP4") for p in kept.rglob("*"))
    r = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("usage:")
