"""ceti ingest: tags → staging → FLAC/gzip → S3 → backup → manifest + _COMPLETE → (clean).

Every result is checked with independent tools: boto3 downloads, `flac -d` decodes, gzip
inflates, and the bytes are compared with the tag's originals. Two loopback tags (`tag_pair`,
each sshd answering `hostname` with a tag name) serve most tests; the end-to-end test runs on the
simulated LAN (tags in network namespaces, S3 and ceti inside the hub namespace) when the
machine allows it, and on the loopback pair otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
RAW_FLAGS = ["--force-raw-format", "--endian=big", "--sign=signed", "--channels=3", "--bps=16",
             "--sample-rate=96000"]
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def audio(frames: int, seed: int) -> bytes:
    """Quiet noise as 3-channel 16-bit big-endian PCM: compressible, never trivially."""
    noise = random.Random(seed).randbytes(frames * 3)
    pcm = bytearray(frames * 6)
    pcm[1::2] = noise
    return bytes(pcm)


def csv_text(rows: int, seed: int) -> bytes:
    r = random.Random(seed)
    return "".join(f"{1700000000000 + i * 10},{r.random():.6f},{r.randint(0, 4095)}\n" for i in range(rows)).encode()


def tag_files(i: int, raws: int = 2, frames: int = 150_000, csv_rows: int = 20_000) -> dict[str, bytes]:
    files = {f"{1700000000000 + i * 100_000 + k * 300_000}.raw": audio(frames + k, i * 10 + k) for k in range(raws)}
    files[f"data_imu_acc_0{i}.csv"] = csv_text(csv_rows, i)
    files["data_battery.csv"] = csv_text(csv_rows // 10, 100 + i)
    files[f"data_tag_info_{i}.yaml"] = f"tag: {i}\n".encode()
    files["data_state.csv"] = b""  # a sensor that logged nothing: uploaded as it is
    return files


def fill(data: Path, files: dict[str, bytes], age: float = 600) -> None:
    for name, blob in files.items():
        p = data / name
        p.write_bytes(blob)
        os.chmod(p, 0o666)
        t = time.time() - age
        os.utime(p, (t, t))


def decode(name: str, blob: bytes, tmp: Path) -> bytes:
    """An uploaded object back to the tag's original bytes, with the reference tools."""
    if name.endswith(".flac"):
        src = tmp / "x.flac"
        src.write_bytes(blob)
        subprocess.run(["flac", "-s", "-t", str(src)], check=True, timeout=120)
        out = tmp / "x.raw"
        subprocess.run(["flac", "-s", "-d", "-f", "--force-raw-format", "--endian=big", "--sign=signed", "-o", str(out),
                        str(src)], check=True, timeout=120)
        return out.read_bytes()
    if name.endswith(".gz"):
        src = tmp / "x.gz"
        src.write_bytes(blob)
        subprocess.run(["gzip", "-t", str(src)], check=True, timeout=60)
        return gzip.decompress(blob)
    return blob


def little_endian(pcm16: bytes) -> bytes:
    """FLAC's MD5 covers the samples as little-endian: swap each big-endian 16-bit sample."""
    out = bytearray(len(pcm16))
    out[0::2], out[1::2] = pcm16[1::2], pcm16[0::2]
    return bytes(out)


def original_name(object_name: str) -> str:
    if object_name.endswith(".flac"):
        return object_name[:-5] + ".raw"
    if object_name.endswith(".gz"):
        return object_name[:-3]
    return object_name


def check_delivery(objects: dict[str, dict], body, want: dict[str, dict[str, bytes]], tmp: Path) -> dict[str, dict]:
    """Every original recovered bit-exactly from S3; each device's manifest lists exactly its
    objects with correct hashes; one _COMPLETE per device, not older than its manifest. `objects`
    is {key: {size, etag, last_modified}}, `body(key)` the object's bytes. Returns the manifests."""
    manifests = {}
    for device, files in want.items():
        data_keys = {k for k in objects if f"/{device}/" in k and "/_runs/" not in k}
        recovered = {}
        for k in data_keys:
            name = k.rsplit("/", 1)[1]
            # Taken as it was (FLAC firmware, other files), or compressed from the original.
            if name in files:
                recovered[name] = body(k)
            else:
                recovered[original_name(name)] = decode(name, body(k), tmp)
        assert recovered.keys() == files.keys(), device
        for name, blob in files.items():
            assert recovered[name] == blob, f"{device}/{name} does not come back bit-exactly"

        run_keys = sorted(k for k in objects if "/_runs/" in k and k.split("/")[-2] == device)
        assert [k.rsplit("/", 1)[1] for k in run_keys] == ["_COMPLETE", "manifest.json"], run_keys
        complete, manifest_key = run_keys
        assert complete.rsplit("/", 1)[0] == manifest_key.rsplit("/", 1)[0]
        assert objects[complete]["size"] == 0
        assert objects[complete]["last_modified"] >= objects[manifest_key]["last_modified"]
        m = json.loads(body(manifest_key))
        assert m["schema_version"] == 1 and m["device"] == device and RUN_ID.fullmatch(m["run_id"])
        assert f"/_runs/{m['run_id']}/{device}/" in manifest_key
        assert {e["object"]["key"] for e in m["files"]} == data_keys
        assert {e["name"] for e in m["files"]} == files.keys()
        for e in m["files"]:
            blob = body(e["object"]["key"])
            assert e["size"] == len(files[e["name"]]) and e["sha256"] == sha256(files[e["name"]])
            assert e["object"]["sha256"] == sha256(blob) and e["object"]["size"] == len(blob)
            assert e["object"]["etag"] == objects[e["object"]["key"]]["etag"] == hashlib.md5(blob).hexdigest()
            if e["name"].endswith((".raw", ".csv")) and e["size"] > 0:
                d = e["derivative"]
                assert d["sha256"] == sha256(blob) and d["name"] == e["object"]["key"].rsplit("/", 1)[1]
                if e["name"].endswith(".raw"):
                    assert d["codec"] == "flac" and d["flac_md5"] == hashlib.md5(little_endian(files[e["name"]])).hexdigest()
                else:
                    assert d["codec"] == "gzip"
            else:
                assert e.get("derivative") is None
                assert blob == files[e["name"]]
        manifests[device] = m
    return manifests


def boto_objects(s3, bucket: str) -> dict[str, dict]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []) or []:
            out[o["Key"]] = {"size": o["Size"], "etag": o["ETag"].strip('"'), "last_modified": o["LastModified"].timestamp()}
    return out


def ingest_argv(ceti, tags, bucket: str, staging: Path, *extra) -> list[str]:
    """Both loopback tags serve their files at /data, as real tags do (tag-sim.sh loopback DIR NAME)."""
    argv = ["ingest", "--user", tags[0].user, "--staging", staging, "--endpoint-url", ceti.s3env.endpoint,
            "--bucket", bucket]
    for t in tags:
        argv += ["-t", f"127.0.0.1:{t.port}"]
    return argv + list(extra)


def run_ingest(ceti, tags, bucket, staging, *extra, check=None):
    return ceti(*ingest_argv(ceti, tags, bucket, staging, *extra), env_extra={"CETI_TAG_PASSWORD": tags[0].password},
                check=check, timeout=600)


def s3_body(s3, bucket):
    return lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def data_keys(objects: dict, device: str) -> set[str]:
    return {k for k in objects if f"/{device}/" in k and "/_runs/" not in k}


# ---- end to end ---------------------------------------------------------------------------
def test_two_tags_end_to_end_with_backup_and_an_idempotent_rerun(ceti, s3, bucket, tag_pair, tmp_path):
    want = {}
    for i, t in enumerate(tag_pair):
        want[t.name] = tag_files(i)
        fill(t.data, want[t.name])
    staging, backup = tmp_path / "staging", tmp_path / "backup"
    r = run_ingest(ceti, tag_pair, bucket, staging, "--backup", backup, "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    objects = boto_objects(s3, bucket)
    manifests = check_delivery(objects, s3_body(s3, bucket), want, tmp_path)
    assert {m["run_id"] for m in manifests.values()} == {summary["run_id"]}
    assert all(t["manifest"].endswith(f"/{t['tag']}/manifest.json") for t in summary["tags"])
    assert sum(f["action"] == "ingested" for t in summary["tags"] for f in t["files"]) == sum(map(len, want.values()))

    # The backup holds the uploaded bytes in DIR/<local date>/<device>/.
    day = time.strftime("%Y-%m-%d")
    for device in want:
        keys = data_keys(objects, device)
        held = {p.name: p.read_bytes() for p in (backup / day / device).iterdir()}
        assert held == {k.rsplit("/", 1)[1]: s3_body(s3, bucket)(k) for k in keys}
    # Without --clean the tags keep everything; staging keeps only what was uploaded.
    for t in tag_pair:
        assert sorted(os.listdir(t.data)) == sorted(want[t.name])
        staged = os.listdir(staging / t.name)
        assert sorted(staged) == sorted(k.rsplit("/", 1)[1] for k in data_keys(objects, t.name))

    # A rerun finds everything done: no new object, no new manifest, no second _COMPLETE.
    r = run_ingest(ceti, tag_pair, bucket, staging, "--backup", backup, "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert {f["action"] for t in again["tags"] for f in t["files"]} == {"already-ingested"}
    assert all(t.get("manifest") is None for t in again["tags"])
    assert boto_objects(s3, bucket) == objects

    report = json.loads(ceti("status", "--json", check=0).stdout)
    status = {d["device"]: d for d in report["devices"]}
    for device, files in want.items():
        assert status[device]["pulled_files"] == len(files)
        assert status[device]["verified_objects"] == len(files)
    # The no-op rerun had no work: the last run with work is still the first one.
    last = report["last_ingest_run"]
    assert last["id"] == summary["run_id"] and last["finished"]
    assert {d["device"]: (d["files"], d["complete"]) for d in last["devices"]} == {k: (len(v), True) for k, v in want.items()}
    assert f"last ingest run {summary['run_id']} (finished)" in ceti("status", check=0).stdout


def test_two_tags_end_to_end_on_the_lan(tag_lan, ceti, tmp_path):
    """Discovery, pulls, S3 and ceti all inside the hub namespace; the bucket is read back
    with boto3 from there too (s3dump.py)."""
    tag_lan.reset_data()
    want = {}
    for i, t in enumerate(tag_lan.tags):
        want[t.name] = tag_files(i)
        fill(t.data, want[t.name])
    dump, out = tmp_path / "dump", tmp_path / "summary.json"
    script = f"""set -e
"{ceti.bin}" ingest --user {tag_lan.user} --staging "{tmp_path / 'staging'}" --endpoint-url "$CETI_TEST_ENDPOINT" \\
    --bucket lan-ingest --json >"{out}"
"{REPO}/.venv/bin/python" "{REPO}/Tests/integration/s3dump.py" "$CETI_TEST_ENDPOINT" lan-ingest "{dump}"
"""
    env = {**ceti.env, "CETI_TAG_PASSWORD": tag_lan.password, "CETI_TEST_BUCKETS": "lan-ingest"}
    try:
        r = tag_lan.hub_exec(["bash", REPO / "scripts" / "with-s3.sh", "bash", "-c", script], env=env, timeout=600)
        assert r.returncode == 0, r.stderr + r.stdout
        summary = json.loads(out.read_text())
        assert sorted(t["tag"] for t in summary["tags"]) == sorted(want)
        assert {t["address"] for t in summary["tags"]} == {t.address for t in tag_lan.tags}
        index = json.loads((dump / "index.json").read_text())
        assert index["open_uploads"] == 0
        check_delivery(index["objects"], lambda k: (dump / "objects" / k).read_bytes(), want, tmp_path)
    finally:
        tag_lan.reset_data()


# ---- clean ---------------------------------------------------------------------------------
def test_clean_keeps_exactly_what_is_not_proven_uploaded(ceti, s3, bucket, tag_pair, tmp_path):
    t0, t1 = tag_pair
    files0, files1 = tag_files(0, raws=1), tag_files(1, raws=1)
    fill(t0.data, files0)
    fill(t0.data, {"data_ecg_01.csv": b"1,2\n"}, age=0)  # still being written
    (t0.data / "logs").mkdir()
    (t0.data / "logs" / "boot.log").write_bytes(b"log")
    fill(t1.data, files1)
    fill(t1.data, {"1700000999999.raw": b"\x00" * 7})  # not whole frames: uploaded as it is, flagged
    staging = tmp_path / "staging"

    r = run_ingest(ceti, tag_pair, bucket, staging, "--clean", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(t0.data)) == ["data_ecg_01.csv", "logs"]
    assert (t0.data / "logs" / "boot.log").read_bytes() == b"log"
    # The cut-off recording no longer holds its tag back (issue #11): manifest, then a clean tag.
    assert os.listdir(t1.data) == []
    objects = boto_objects(s3, bucket)
    body = s3_body(s3, bucket)
    (mkey,) = [k for k in objects if k.endswith(f"/{t1.name}/manifest.json")]
    (entry,) = [e for e in json.loads(body(mkey))["files"] if e["name"] == "1700000999999.raw"]
    assert entry["derivative"] is None and "not whole frames" in entry["note"], entry
    assert body(entry["object"]["key"]) == b"\x00" * 7
    check_delivery(objects, body, {t0.name: files0}, tmp_path)


# ---- interruption ----------------------------------------------------------------------------
def test_kill_9_at_random_moments_then_rerun_gives_the_same_state(ceti, s3, bucket, tag_pair, tmp_path):
    from conftest import empty_bucket

    want = {}
    for i, t in enumerate(tag_pair):
        want[t.name] = tag_files(i, raws=3, frames=700_000, csv_rows=120_000)
        fill(t.data, want[t.name])
    # The reference: one uninterrupted run.
    start = time.monotonic()
    run_ingest(ceti, tag_pair, bucket, tmp_path / "staging-a", "--part-size", "5MiB", check=0)
    took = time.monotonic() - start

    other = bucket + "-b"
    s3.create_bucket(Bucket=other)
    try:
        env = {**ceti.env, "CETI_TAG_PASSWORD": tag_pair[0].password, "CETI_LEDGER": str(tmp_path / "ledger-b.sqlite")}
        argv = [str(ceti.bin), *map(str, ingest_argv(ceti, tag_pair, other, tmp_path / "staging-b", "--part-size", "5MiB"))]
        rng = random.Random()
        delays = []
        for _ in range(3):
            delays.append(round(rng.uniform(0.05, max(0.2, took * 0.9)), 2))
            p = subprocess.Popen(argv, env=env, cwd=ceti.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delays[-1])
            p.send_signal(signal.SIGKILL)
            p.wait()
        r = subprocess.run(argv, env=env, cwd=ceti.root, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"killed after {delays} s (uninterrupted run: {took:.1f} s)\n{r.stderr}"

        a, b = boto_objects(s3, bucket), boto_objects(s3, other)

        def normal(objects):
            # Manifests name their bucket: compared below, without the run id, time and bucket.
            return {RUN_ID.sub("RUN", k): (v["size"] if k.endswith("_COMPLETE") else "manifest" if "/_runs/" in k else v["etag"])
                    for k, v in objects.items()}

        assert normal(b) == normal(a), f"killed after {delays} s"
        assert not s3.list_multipart_uploads(Bucket=other).get("Uploads")
        manifests_a = check_delivery(a, s3_body(s3, bucket), want, tmp_path)
        manifests_b = check_delivery(b, s3_body(s3, other), want, tmp_path)
        for device in want:
            ma, mb = manifests_a[device], manifests_b[device]
            for m in (ma, mb):
                m.pop("run_id"), m.pop("run_started_at"), m.pop("bucket")
            assert ma == mb, f"killed after {delays} s"
    finally:
        empty_bucket(s3, other)
        s3.delete_bucket(Bucket=other)


# ---- firmware that writes FLAC -----------------------------------------------------------------
def test_flac_firmware_is_uploaded_as_is_and_markers_come_after_the_objects(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    t0, t1 = tag_pair
    flacs = {}
    for k in range(3):
        raw = tmp_path / f"{k}.raw"
        raw.write_bytes(audio(80_000, 50 + k))
        out = tmp_path / f"{1700000000000 + k}.flac"
        subprocess.run(["flac", "-s", "-5", *RAW_FLAGS[1:], "-o", str(out), str(raw)], check=True, timeout=60)
        flacs[out.name] = out.read_bytes()
    fill(t0.data, flacs)  # no .raw, no .csv
    raw_only = {f"{1700000500000 + k}.raw": audio(60_000, 70 + k) for k in range(2)}
    fill(t1.data, raw_only)  # no .csv
    p = proxy()
    argv = ingest_argv(ceti, tag_pair, bucket, tmp_path / "staging", "--max-staging", "1k", "--json")
    argv[argv.index("--endpoint-url") + 1] = p.endpoint
    r = ceti(*argv, env_extra={"CETI_TAG_PASSWORD": t0.password})
    assert r.returncode == 0, r.stderr
    objects = boto_objects(s3, bucket)
    manifests = check_delivery(objects, s3_body(s3, bucket), {t0.name: flacs, t1.name: raw_only}, tmp_path)
    # Not re-encoded: the objects are the tag's own FLAC files, byte for byte.
    for e in manifests[t0.name]["files"]:
        assert e["object"]["sha256"] == e["sha256"] and e.get("derivative") is None

    # In the proxy's log (finishing order): every object of a device, then its manifest, then _COMPLETE.
    writes = [e["path"].split("?")[0] for e in p.entries() if e["method"] in ("PUT", "POST") and e.get("status") == 200]
    for device in (t0.name, t1.name):
        mine = [w for w in writes if f"/{device}/" in w]
        assert len(mine) >= 3 and mine[-2].endswith("/manifest.json") and mine[-1].endswith("/_COMPLETE"), mine


# ---- usage ------------------------------------------------------------------------------------
def test_usage_and_credential_errors_touch_no_tag(ceti, bucket, tag_pair, tmp_path):
    fill(tag_pair[0].data, {"1700000000000.raw": audio(1000, 1)})
    r = run_ingest(ceti, tag_pair, bucket, tmp_path / "staging", "--max-staging", "lots")
    assert r.returncode == 2 and "--max-staging lots" in r.stderr
    r = run_ingest(ceti, tag_pair, bucket, tmp_path / "staging", "-t", "127.0.0.1:99999")
    assert r.returncode == 2 and "65535" in r.stderr
    r = ceti(*ingest_argv(ceti, tag_pair, bucket, tmp_path / "staging"),
             env_extra={"CETI_TAG_PASSWORD": "x", "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert r.returncode == 2, r.stderr
    assert "wrong-secret" not in r.stderr + r.stdout
    assert not (tmp_path / "staging").exists() and not ceti.ledger.exists()
    assert "1700000000000.raw" in os.listdir(tag_pair[0].data)


def test_dry_run_writes_nothing(ceti, s3, bucket, tag_pair, tmp_path):
    fill(tag_pair[0].data, {"1700000000000.raw": audio(1000, 1), "data_state.csv": b"a,b\n"})
    r = run_ingest(ceti, tag_pair, bucket, tmp_path / "staging", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["dry_run"]
    assert sorted(f["action"] for t in summary["tags"] for f in t["pulled"]) == ["would-pull"] * 2
    assert not (tmp_path / "staging").exists() and not ceti.ledger.exists()
    assert boto_objects(s3, bucket) == {}
    # The same tag named twice is pulled once.
    r = run_ingest(ceti, [tag_pair[0], tag_pair[0]], bucket, tmp_path / "staging", "--dry-run", "--json")
    assert r.returncode == 0 and len(json.loads(r.stdout)["tags"]) == 1, r.stderr


def test_a_run_stopped_between_complete_and_its_record_never_rewrites_that_manifest(ceti, s3, bucket, tag_pair, tmp_path):
    """kill -9 can land after _COMPLETE is written and before the ledger records it. That window
    is too narrow to hit by timing, so the ledger is put back into that state by hand (the one
    place these tests touch the ledger)."""
    import sqlite3

    t0 = tag_pair[0]
    files = tag_files(0, raws=1)
    fill(t0.data, files)
    staging = tmp_path / "staging"
    first = json.loads(run_ingest(ceti, [t0], bucket, staging, "--json", check=0).stdout)
    before = boto_objects(s3, bucket)
    manifest_key = next(k for k in before if k.endswith("manifest.json"))
    with sqlite3.connect(ceti.ledger) as db:
        db.execute("UPDATE run_devices SET completed_at = NULL")
        db.execute("UPDATE runs SET finished_at = NULL")
    # Meanwhile the tag recorded one more file.
    late = {"data_gps.csv": csv_text(500, 9)}
    fill(t0.data, late)

    r = run_ingest(ceti, [t0], bucket, staging, "--json", check=0)
    resumed = json.loads(r.stdout)
    assert resumed["run_id"] == first["run_id"] and resumed["resumed"]
    after = boto_objects(s3, bucket)
    assert after[manifest_key] == before[manifest_key]
    assert sum(k.endswith("_COMPLETE") for k in after) == 1
    check_delivery({k: v for k, v in after.items() if "data_gps" not in k}, s3_body(s3, bucket), {t0.name: files}, tmp_path)

    # The late file is uploaded, and listed by the next run's manifest.
    final = json.loads(run_ingest(ceti, [t0], bucket, staging, "--json", check=0).stdout)
    assert final["run_id"] != first["run_id"]
    objects = boto_objects(s3, bucket)
    second = json.loads(s3_body(s3, bucket)(f"raw/_runs/{final['run_id']}/{t0.name}/manifest.json"))
    assert [e["name"] for e in second["files"]] == ["data_gps.csv"]
    assert f"raw/_runs/{final['run_id']}/{t0.name}/_COMPLETE" in objects
    assert sum(k.endswith("_COMPLETE") for k in objects) == 2


def test_a_manifest_another_writer_put_first_is_never_overwritten(ceti, s3, bucket, tag_pair, tmp_path):
    """Two writers of one run's manifest (a copy of the ledger resuming the same run on another
    laptop): SeaweedFS refuses the second create-only PUT (If-None-Match: *), ceti reads what is
    there, finds another writer's manifest, leaves it as it is, writes no _COMPLETE and says so.
    The run is made resumable by hand, as a kill -9 would leave it (the ledger is touched here as
    in the test above)."""
    import sqlite3

    t0 = tag_pair[0]
    fill(t0.data, tag_files(0, raws=1))
    staging = tmp_path / "staging"
    argv = ingest_argv(ceti, [t0], bucket, staging, "--wait-for-s3", "0", "--json")
    argv[argv.index("--endpoint-url") + 1] = "http://127.0.0.1:1"
    run_id = json.loads(ceti(*argv, env_extra={"CETI_TAG_PASSWORD": t0.password}, check=3, timeout=300).stdout)["run_id"]
    # Meanwhile the other writer's manifest of the same run and device reaches S3 first.
    key = f"raw/_runs/{run_id}/{t0.name}/manifest.json"
    theirs = json.dumps({"schema_version": 1, "run_id": run_id, "device": t0.name, "host": "other-laptop",
                         "bucket": bucket, "run_started_at": "2026-01-01T00:00:00Z", "files": []}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=theirs)
    with sqlite3.connect(ceti.ledger) as db:
        db.execute("UPDATE runs SET finished_at = NULL")

    r = ceti("ingest", "--staging", staging, "--endpoint-url", ceti.s3env.endpoint, "--bucket", bucket,
             "--subnet", "127.0.0.1/32", "--port", "9", "--json", env_extra={"CETI_TAG_PASSWORD": t0.password},
             timeout=300)
    assert json.loads(r.stdout)["run_id"] == run_id, "the stopped run was resumed"
    assert r.returncode == 1, r.stderr
    assert f"s3://{bucket}/{key} was already written by another ceti with other content" in r.stderr, r.stderr
    assert s3_body(s3, bucket)(key) == theirs
    objects = boto_objects(s3, bucket)
    assert not any(k.endswith("/_COMPLETE") for k in objects), objects
    assert len(data_keys(objects, t0.name)) == len(tag_files(0, raws=1)), "the files themselves went up"


def test_a_second_ingest_on_the_same_ledger_is_refused(ceti, bucket, tag_pair, tmp_path):
    fill(tag_pair[0].data, {f"{1700000000000 + k}.raw": audio(400_000, k) for k in range(4)})
    # The first run is held back by a bandwidth cap, so it is surely still running.
    argv = [str(ceti.bin), *map(str, ingest_argv(ceti, tag_pair, bucket, tmp_path / "staging", "--bwlimit", "1M"))]
    env = {**ceti.env, "CETI_TAG_PASSWORD": tag_pair[0].password}
    first = subprocess.Popen(argv, env=env, cwd=ceti.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "staging").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        r = run_ingest(ceti, tag_pair, bucket, tmp_path / "staging")
        assert r.returncode == 2 and "another ceti ingest is running" in r.stderr, r.stderr
    finally:
        assert first.wait(timeout=300) == 0, first.stderr.read()


def test_tag_sh_logs_everything_and_exits_with_cetis_status(ceti, s3, bucket, tag_pair, tmp_path):
    files = tag_files(1, raws=1)
    fill(tag_pair[1].data, files)
    logs = tmp_path / "logs"
    env = {**ceti.env, "CETI_BIN": str(ceti.bin), "CETI_LOG_DIR": str(logs), "CETI_STAGING": str(tmp_path / "staging"),
           "CETI_BACKUP": str(tmp_path / "backup"), "CETI_TAG_PASSWORD": tag_pair[1].password}
    argv = ["bash", str(REPO / "scripts" / "tag.sh"), "-t", f"127.0.0.1:{tag_pair[1].port}", "--user", tag_pair[1].user,
            "--endpoint-url", ceti.s3env.endpoint, "--bucket", bucket]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (log,) = logs.glob("tag-*.log")
    text = log.read_text()
    assert "ingested" in r.stdout and "ingested" in text and text.rstrip().endswith("# exit status 0")
    assert f"{tag_pair[1].name}: {len(files)} file(s) in s3://" in text  # stderr is logged too
    check_delivery(boto_objects(s3, bucket), s3_body(s3, bucket), {tag_pair[1].name: files}, tmp_path)
    assert sorted(p.name for p in (tmp_path / "backup").rglob("*") if p.is_file()) == sorted(
        k.rsplit("/", 1)[1] for k in data_keys(boto_objects(s3, bucket), tag_pair[1].name))

    time.sleep(1.1)  # a new log per second
    r = subprocess.run([*argv, "--max-staging", "nonsense"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    newest = max(logs.glob("tag-*.log"), key=lambda p: p.stat().st_mtime)
    assert newest != log and "--max-staging nonsense" in newest.read_text()
    assert newest.read_text().rstrip().endswith("# exit status 2")


@pytest.mark.parametrize("limit", [None, "1k"])
def test_max_staging_pauses_pulling_until_uploads_catch_up(ceti, s3, bucket, tag_pair, proxy, tmp_path, limit):
    """The first upload is held 8 s by the proxy. Without --max-staging the tag is pulled meanwhile;
    with a budget smaller than one file, nothing more is pulled until that upload is verified."""
    t = tag_pair[0]
    files = {f"data_config_{k}.txt": random.Random(k).randbytes(100_000 + k) for k in range(4)}
    fill(t.data, files)
    p = proxy(stall_nth_body=1, stall_seconds=8)
    staging = tmp_path / "staging"
    argv = [str(ceti.bin), *map(str, ingest_argv(ceti, [t], bucket, staging, *(["--max-staging", limit] if limit else [])))]
    argv[argv.index("--endpoint-url") + 1] = p.endpoint
    run = subprocess.Popen(argv, env={**ceti.env, "CETI_TAG_PASSWORD": t.password}, cwd=ceti.root,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    def held() -> list[str]:
        return os.listdir(staging / t.name) if (staging / t.name).exists() else []

    try:
        deadline = time.monotonic() + 6
        while not held() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(2)  # the first upload is still held: the others are pulled only without a budget
        assert run.poll() is None, "the run ended before the stalled upload could be watched"
        assert (len(held()) == 1) if limit else (len(held()) > 1), held()
    finally:
        assert run.wait(timeout=120) == 0, run.stderr.read()
    check_delivery(boto_objects(s3, bucket), s3_body(s3, bucket), {t.name: files}, tmp_path)


def test_a_file_that_grew_after_it_was_ingested_is_kept_and_explained(ceti, s3, bucket, tag_pair, tmp_path):
    t = tag_pair[0]
    files = {"data_battery.csv": csv_text(2000, 1)}
    fill(t.data, files)
    staging = tmp_path / "staging"
    run_ingest(ceti, [t], bucket, staging, check=0)
    before = boto_objects(s3, bucket)
    grown = files["data_battery.csv"] + csv_text(10, 2)
    fill(t.data, {"data_battery.csv": grown})

    r = run_ingest(ceti, [t], bucket, staging)
    assert r.returncode == 1
    assert "data_battery.csv changed on wt-0a1b2c3d since an earlier version" in r.stderr and "rename it on the tag" in r.stderr
    assert (t.data / "data_battery.csv").read_bytes() == grown
    assert boto_objects(s3, bucket) == before  # the first version and its manifest untouched

    # Renamed on the tag as the message says: the new version gets its own key and manifest.
    (t.data / "data_battery.csv").rename(t.data / "data_battery-2.csv")
    r = run_ingest(ceti, [t], bucket, staging, "--json", check=0)
    after = boto_objects(s3, bucket)
    key = next(k for k in after if k.endswith("/data_battery-2.csv.gz"))
    assert gzip.decompress(s3_body(s3, bucket)(key)) == grown
    assert {k: v for k, v in after.items() if k in before} == before
    assert sum(k.endswith("_COMPLETE") for k in after) == 2


# ---- offline first (issue #13) -------------------------------------------------------------
def test_without_s3_both_tags_are_offloaded_and_a_later_run_uploads_the_queue(ceti, s3, bucket, tag_pair, tmp_path):
    want = {}
    for i, t in enumerate(tag_pair):
        want[t.name] = tag_files(i, raws=1)
        fill(t.data, want[t.name])
    staging = tmp_path / "staging"
    env = {"CETI_TAG_PASSWORD": tag_pair[0].password}
    # The uplink is down: the endpoint is a closed port.
    argv = ingest_argv(ceti, tag_pair, bucket, staging, "--wait-for-s3", "0", "--clean", "--json")
    argv[argv.index("--endpoint-url") + 1] = "http://127.0.0.1:1"
    start = time.monotonic()
    r = ceti(*argv[:-1], env_extra=env, check=3, timeout=300)
    assert time.monotonic() - start < 60, "an unreachable S3 costs no minutes before the pull"
    assert "S3 unreachable" in r.stderr and "nothing was deleted on the tag" in r.stderr
    assert "queued for S3" in r.stdout and "rerun `ceti ingest`" in r.stdout
    for t in tag_pair:
        assert sorted(os.listdir(t.data)) == sorted(want[t.name]), "the tags keep everything"
        staged = sorted(os.listdir(staging / t.name))
        assert staged == sorted(n[:-4] + ".flac" if n.endswith(".raw") else n + ".gz" if n.endswith(".csv") and want[t.name][n]
                                else n for n in want[t.name]), "pulled, verified and compressed offline"
    # Rerun offline: nothing new to pull, the same queue.
    summary = json.loads(ceti(*argv, env_extra=env, check=3, timeout=300).stdout)
    assert {f["action"] for t in summary["tags"] for f in t["files"]} == {"queued"}
    assert sum(len(t["files"]) for t in summary["tags"]) == sum(map(len, want.values()))
    assert boto_objects(s3, bucket) == {}

    # The uplink is back and no tag is in reach: the queue goes up, each manifest once.
    r = ceti("ingest", "--staging", staging, "--endpoint-url", ceti.s3env.endpoint, "--bucket", bucket,
             "--subnet", "127.0.0.1/32", "--port", "9", "--json", env_extra=env, check=0, timeout=300)
    assert r.returncode == 0, r.stderr
    drained = json.loads(r.stdout)
    assert sorted(t["tag"] for t in drained["tags"]) == sorted(want) and all(not t["pulled"] for t in drained["tags"])
    assert all(t["manifest"] and t["address"] == "127.0.0.1" for t in drained["tags"]), "where each tag was reached"
    objects = boto_objects(s3, bucket)
    check_delivery(objects, s3_body(s3, bucket), want, tmp_path)
    # A rerun changes nothing in S3.
    ceti("ingest", "--staging", staging, "--endpoint-url", ceti.s3env.endpoint, "--bucket", bucket,
         "--subnet", "127.0.0.1/32", "--port", "9", env_extra=env, check=0, timeout=300)
    assert boto_objects(s3, bucket) == objects


def test_s3_that_drops_out_mid_run_and_returns_within_the_patience(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    want = {tag_pair[0].name: tag_files(0, raws=2)}
    fill(tag_pair[0].data, want[tag_pair[0].name])
    down = tmp_path / "uplink-down"
    p = proxy(down_file=down)
    argv = ingest_argv(ceti, tag_pair[:1], bucket, tmp_path / "staging", "--wait-for-s3", "120", "-v")
    argv[argv.index("--endpoint-url") + 1] = p.endpoint
    proc = subprocess.Popen([str(ceti.bin), *map(str, argv)], env={**ceti.env, "CETI_TAG_PASSWORD": tag_pair[0].password},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Down as soon as the first object is on its way, for a few seconds.
    deadline = time.monotonic() + 60
    while not any(e.get("method") == "PUT" for e in p.entries()) and time.monotonic() < deadline:
        time.sleep(0.05)
    down.touch()
    time.sleep(4)
    down.unlink()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert any(e.get("error") == "down" for e in p.entries())
    assert "S3 unreachable" in err and "S3 answers again" in err
    check_delivery(boto_objects(s3, bucket), s3_body(s3, bucket), want, tmp_path)


def test_a_tags_data_config_sets_the_raw_layout_and_a_bin_names_its_own(ceti, s3, bucket, tag_pair, tmp_path):
    """Firmware 2.3.0: 24-bit 48 kHz in data_config_<µs>.txt (its `=:` quirk included); the next
    generation's `.bin` says its layout in its name. Both FLACs carry that layout and decode back
    bit-exactly; the manifest says which layout was used and where it came from."""
    t = tag_pair[0]
    rnd = random.Random(7)
    pcm24 = bytes(rnd.getrandbits(8) >> 3 for _ in range(9 * 20_000))  # 3 ch × 3 bytes, quiet
    pcm16le = bytes(rnd.getrandbits(8) >> 2 for _ in range(4 * 15_000))  # 2 ch × 2 bytes
    files = {
        "data_config_1700000000000000.txt": b"# Deployment Timestamp: 1700000000000000\naudio_bitdepth =: 24\n"
                                            b"audio_sample_rate = 48 # KHz\n",
        "1700000100000.raw": pcm24,
        "1700000200000000.le.16bit.2ch.44100sps.bin": pcm16le,
    }
    fill(t.data, files)
    r = run_ingest(ceti, [t], bucket, tmp_path / "staging", "--json")
    assert r.returncode == 0, r.stderr
    body = s3_body(s3, bucket)
    objects = boto_objects(s3, bucket)
    (manifest_key,) = [k for k in objects if k.endswith("/manifest.json")]
    entries = {e["name"]: e for e in json.loads(body(manifest_key))["files"]}
    for name, layout, endian, original in [
        ("1700000100000.raw", ["3", "24", "48000"], "big", pcm24),
        ("1700000200000000.le.16bit.2ch.44100sps.bin", ["2", "16", "44100"], "little", pcm16le),
    ]:
        flac = tmp_path / "x.flac"
        flac.write_bytes(body(entries[name]["object"]["key"]))
        info = subprocess.run(["metaflac", "--show-channels", "--show-bps", "--show-sample-rate", str(flac)],
                              capture_output=True, text=True, check=True).stdout.split()
        assert info == layout, name
        out = tmp_path / "back.raw"
        subprocess.run(["flac", "-d", "-s", "-f", "--force-raw-format", f"--endian={endian}", "--sign=signed",
                        "-o", str(out), str(flac)], check=True)
        assert out.read_bytes() == original, name
    raw_layout = entries["1700000100000.raw"]["derivative"]["layout"]
    assert raw_layout == {"channels": 3, "bits_per_sample": 24, "sample_rate": 48000, "endian": "big", "signed": True,
                          "from": "data_config_1700000000000000.txt"}
    assert entries["1700000200000000.le.16bit.2ch.44100sps.bin"]["derivative"]["layout"]["from"] == "name"
    assert entries["data_config_1700000000000000.txt"]["derivative"] is None


# ---- streaming what goes up as it is (#13) ------------------------------------------------------
def test_a_large_firmware_flac_is_streamed_to_s3_while_it_is_still_being_pulled(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    """Behind a 2 MB/s tag link, a part of a 16 MB FLAC reaches S3 while the file is still a partial
    download in staging; the object (multipart, under the tag's own SHA-256) is the tag's bytes and
    is completed only after the copy is confirmed and listed."""
    from tcpproxy import start_tcp_proxy

    t0 = tag_pair[0]
    name = "1700000000000.flac"
    blob = random.Random(13).randbytes(16 * 1_000_000)
    fill(t0.data, {name: blob, "data_tag_info_0.yaml": b"tag: 0\n"})
    link = start_tcp_proxy("127.0.0.1", t0.port, rate=2_000_000)
    p = proxy()
    staging = tmp_path / "staging"
    env = dict(ceti.env, CETI_TAG_PASSWORD=t0.password)
    argv = ["ingest", "--user", t0.user, "--staging", staging, "--endpoint-url", p.endpoint, "--bucket", bucket,
            "-t", f"127.0.0.1:{link.port}", "--part-size", "5MiB", "-v"]
    try:
        proc = subprocess.Popen([str(ceti.bin), *map(str, argv)], env=env, cwd=ceti.root, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        # The first part is acknowledged by S3 while the pull still writes its .ceti-part file.
        p.wait_for(lambda es: any("partNumber=" in e["path"] and e.get("status") == 200 for e in es), timeout=60)
        still_pulling = list((staging / t0.name).glob(".ceti-part-*"))
        out, err = proc.communicate(timeout=300)
    finally:
        link.stop()
    assert proc.returncode == 0, err
    assert still_pulling, "no part went to S3 before the file was whole"
    assert f"{t0.name}/{name}: streaming 4 parts" in err, err
    key = next(k for k in boto_objects(s3, bucket) if k.endswith("/" + name))
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-4") and head["Metadata"]["sha256"] == sha256(blob)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == blob
    # Each part was sent once; the upload was completed after the copy was confirmed.
    puts = [e for e in p.entries() if e["method"] == "PUT" and "partNumber=" in e["path"] and e.get("status") == 200]
    assert len(puts) == 4, puts


def test_s3upload_of_the_staging_folder_sends_the_queue_and_ingest_then_writes_the_manifests(ceti, s3, bucket, tag_pair,
                                                                                              proxy, tmp_path):
    """After an offline ingest, `ceti s3upload STAGING` puts the queued files in S3 (and says whose
    they are); a later `ceti ingest` with no tag writes each manifest and _COMPLETE and sends no file
    again."""
    t0 = tag_pair[0]
    want = {t0.name: tag_files(0, raws=1)}
    fill(t0.data, want[t0.name])
    staging = tmp_path / "staging"
    env = {"CETI_TAG_PASSWORD": t0.password}
    argv = ingest_argv(ceti, [t0], bucket, staging, "--wait-for-s3", "0")
    argv[argv.index("--endpoint-url") + 1] = "http://127.0.0.1:1"
    ceti(*argv, env_extra=env, check=3, timeout=300)
    assert boto_objects(s3, bucket) == {}
    # Not safe to delete anywhere yet: every file of the tag, with its local copy or derivative.
    pending = json.loads(ceti("status", "--pending", "--json", check=0).stdout)["files"]
    assert sorted(f["file"].rsplit("/", 1)[1] for f in pending) == sorted(want[t0.name])
    assert all(f["device"] == t0.name and (f.get("copy") or f.get("derivative")) for f in pending), pending

    r = ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, staging, check=0, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "waiting in `ceti ingest`'s queue" in r.stderr and f"ceti ingest --staging {staging}" in r.stderr, r.stderr
    sent = {k: v["etag"] for k, v in boto_objects(s3, bucket).items()}
    assert len(sent) == len(want[t0.name]) and not any("/_runs/" in k for k in sent)

    p = proxy()
    r = ceti("ingest", "--staging", staging, "--endpoint-url", p.endpoint, "--bucket", bucket, "--subnet", "127.0.0.1/32",
             "--port", "9", env_extra=env, check=0, timeout=300)
    assert r.returncode == 0, r.stderr
    objects = boto_objects(s3, bucket)
    check_delivery(objects, s3_body(s3, bucket), want, tmp_path)
    assert {k: v["etag"] for k, v in objects.items() if "/_runs/" not in k} == sent
    writes = [e["path"].split("?")[0] for e in p.entries() if e["method"] in ("PUT", "POST")]
    assert sorted(w.rsplit("/", 1)[1] for w in writes) == ["_COMPLETE", "manifest.json"], writes
    assert json.loads(ceti("status", "--pending", "--json", check=0).stdout)["files"] == []
