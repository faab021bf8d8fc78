"""s3upload against a real SeaweedFS, checked with boto3 (an independent client)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

MiB = 1 << 20


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def etag_of(data: bytes, part_size: int) -> str:
    """S3's ETag computed independently of ceti."""
    if len(data) <= part_size:
        return hashlib.md5(data).hexdigest()
    md5s = [hashlib.md5(data[i:i + part_size]).digest() for i in range(0, len(data), part_size)]
    return hashlib.md5(b"".join(md5s)).hexdigest() + f"-{len(md5s)}"


def get(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(s3, bucket) -> dict[str, dict]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []) or []:
            out[o["Key"]] = o
    return out


def writes(entries) -> list[dict]:
    return [e for e in entries if e["method"] in ("PUT", "POST")]


def upload(ceti, bucket, *dirs, endpoint=None, extra=(), check=None, env_extra=None):
    return ceti("s3upload", "--bucket", bucket, "--endpoint-url", endpoint or ceti.s3env.endpoint,
                *extra, *dirs, check=check, env_extra=env_extra)


def test_sizes_round_trip_and_multipart_etags(ceti, s3, bucket, tmp_path):
    part = 5 * MiB
    sizes = {"zero": 0, "one": 1, "five-minus": 5 * MiB - 1, "five": 5 * MiB, "five-plus": 5 * MiB + 1,
             "three-parts-plus": 3 * part + 7}
    root = tmp_path / "up"
    data = {name: os.urandom(size) for name, size in sizes.items()}
    for name, blob in data.items():
        write(root / "wt-sizes" / f"{name}.raw", blob)

    r = upload(ceti, bucket, root, extra=("--part-size", "5MiB"), check=0)
    assert "6 uploaded" in r.stdout

    listing = keys(s3, bucket)
    for name, blob in data.items():
        key = f"raw/{today()}/wt-sizes/{name}.raw"
        assert key in listing, f"{key} missing; have {sorted(listing)}"
        assert get(s3, bucket, key) == blob, f"{key} differs from its source"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ETag"].strip('"') == etag_of(blob, part), key
        assert head["Metadata"].get("sha256") == hashlib.sha256(blob).hexdigest()
    # The 5 MiB + 1 and 3 parts + 7 files went multipart.
    assert listing[f"raw/{today()}/wt-sizes/five-plus.raw"]["ETag"].strip('"').endswith("-2")
    assert listing[f"raw/{today()}/wt-sizes/three-parts-plus.raw"]["ETag"].strip('"').endswith("-4")


def test_awkward_key_characters(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    names = ["space name.csv", "plus+sign.csv", "eq=amp&.csv", "pct%20lit.csv", "tilde~bang!.csv",
             "quote'd.csv", "unicode-é-鯨.csv", "nested/deeper/file.csv"]
    data = {n: os.urandom(100 + i) for i, n in enumerate(names)}
    for n, blob in data.items():
        write(root / "wt-keys" / n, blob)
    write(root / "loose file.txt", b"no device folder")

    upload(ceti, bucket, root, check=0)

    listing = keys(s3, bucket)
    for n, blob in data.items():
        # A name that already looks percent-encoded has its % written %25 (README "File names").
        key = f"raw/{today()}/wt-keys/{n.replace('%20', '%2520')}"
        assert key in listing, f"{key!r} missing; have {sorted(listing)}"
        assert get(s3, bucket, key) == blob
    assert get(s3, bucket, f"raw/{today()}/unknown-device/loose file.txt") == b"no device folder"
    assert len(listing) == len(names) + 1


def test_skips_hidden_part_and_symlinks_out_of_dir(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    write(root / "wt-a" / "keep.csv", b"keep")
    write(root / "wt-a" / ".hidden", b"a tag's dot-file: uploaded")
    write(root / "wt-a" / "x.part", b"a tag's own .part file: uploaded")
    write(root / "wt-a" / "half.raw", b"rawr")
    write(root / "wt-a" / "half.flac.part", b"no")  # compress's unfinished output, beside its input
    write(root / "wt-a" / ".ceti-part-0123456789abcdef0123", b"no")  # a pull's partial
    outside = write(tmp_path / "outside" / "secret.txt", b"outside")
    (root / "wt-a" / "link.txt").symlink_to(outside)
    (root / "wt-a" / "linkdir").symlink_to(outside.parent)

    upload(ceti, bucket, root, check=0)
    assert sorted(keys(s3, bucket)) == [f"raw/{today()}/wt-a/{n}" for n in (".hidden", "half.raw", "keep.csv", "x.part")]


def test_wrong_secret_exits_2_names_source_and_writes_no_ledger(ceti, bucket, tmp_path):
    write(tmp_path / "up" / "wt-a" / "x.csv", b"data")
    secret = "WrongSecretKeyThatMustNotBeEchoed0123456"
    r = upload(ceti, bucket, tmp_path / "up", env_extra={"AWS_SECRET_ACCESS_KEY": secret})
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert "environment variables" in r.stderr and bucket in r.stderr
    assert secret not in r.stderr + r.stdout
    assert not ceti.ledger.exists(), "a refused run must not write the ledger"


def test_missing_bucket_and_no_bucket_are_usage_errors(ceti, tmp_path):
    write(tmp_path / "up" / "wt-a" / "x.csv", b"data")
    r = upload(ceti, "ceti-no-such-bucket-xyz", tmp_path / "up")
    assert r.returncode == 2 and "does not exist" in r.stderr, r.stderr
    r = ceti("s3upload", "--endpoint-url", ceti.s3env.endpoint, tmp_path / "up")
    assert r.returncode == 2 and "--bucket" in r.stderr and "CETI_BUCKET" in r.stderr, r.stderr
    r = upload(ceti, "whatever", tmp_path / "does-not-exist")
    assert r.returncode == 2 and "does-not-exist" in r.stderr, r.stderr
    r = upload(ceti, "whatever", tmp_path / "up", extra=("--part-size", "1MiB"))
    assert r.returncode == 2 and "--part-size" in r.stderr, r.stderr


def test_second_run_sends_no_put(ceti, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    for i in range(5):
        write(root / "wt-b" / f"f{i}.csv", os.urandom(1000 * (i + 1)))
    write(root / "wt-b" / "big.raw", os.urandom(12 * MiB))
    p = proxy()
    upload(ceti, bucket, root, endpoint=p.endpoint, extra=("--part-size", "5MiB"), check=0)
    first = p.wait_for(lambda e: any(x["method"] == "POST" and "uploadId=" in x["path"] for x in e))
    assert len([e for e in writes(first) if e["method"] == "PUT"]) == 5 + 3

    before = len(p.entries())
    r = upload(ceti, bucket, root, endpoint=p.endpoint, extra=("--part-size", "5MiB"), check=0)
    time.sleep(0.2)
    second = p.entries()[before:]
    assert writes(second) == [], second
    # The bucket check and one HEAD per file (asked together): the ledger's proof holds only while
    # S3 still has each object as recorded (DESIGN §2). No file is read or sent again.
    assert sorted(e["method"] for e in second) == ["GET"] + ["HEAD"] * 6, second
    assert "6 already in S3" in r.stdout


def test_ledger_lost_rebuilds_without_reupload(ceti, s3, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    write(root / "wt-c" / "a.csv", os.urandom(3000))
    write(root / "wt-c" / "b.raw", os.urandom(11 * MiB))
    upload(ceti, bucket, root, extra=("--part-size", "5MiB"), check=0)
    for f in ceti.ledger.parent.glob("ledger.sqlite*"):
        f.unlink()

    p = proxy()
    r = upload(ceti, bucket, root, endpoint=p.endpoint, extra=("--part-size", "5MiB", "--json"), check=0)
    time.sleep(0.2)
    assert writes(p.entries()) == []
    summary = json.loads(r.stdout)
    assert sorted(f["action"] for f in summary["files"]) == ["present", "present"]
    # And the rebuilt ledger now proves them: a third run reads no file and only asks S3 that
    # each object is still there.
    p2 = proxy()
    upload(ceti, bucket, root, endpoint=p2.endpoint, extra=("--part-size", "5MiB"), check=0)
    time.sleep(0.2)
    assert sorted(e["method"] for e in p2.entries()) == ["GET", "HEAD", "HEAD"]


def test_changed_file_is_a_conflict_until_overwrite(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    f = write(root / "wt-d" / "x.csv", b"first version\n")
    upload(ceti, bucket, root, check=0)
    key = f"raw/{today()}/wt-d/x.csv"
    etag_before = s3.head_object(Bucket=bucket, Key=key)["ETag"]

    f.write_bytes(b"second, different version\n")
    r = upload(ceti, bucket, root)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "conflict" in r.stderr and str(f) in r.stderr and "--overwrite" in r.stderr
    assert get(s3, bucket, key) == b"first version\n"
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == etag_before

    r = ceti("status", "--json", check=0)
    status = json.loads(r.stdout)
    assert [d["failed"] for d in status["devices"] if d["device"] == "wt-d"] == [1]

    upload(ceti, bucket, root, extra=("--overwrite",), check=0)
    assert get(s3, bucket, key) == b"second, different version\n"
    status = json.loads(ceti("status", "--json", check=0).stdout)
    (dev,) = [d for d in status["devices"] if d["device"] == "wt-d"]
    assert dev["failed"] == 0 and dev["verified_objects"] == 1


def test_bit_flipped_on_the_wire_is_rejected_then_retried(ceti, s3, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    small = os.urandom(200_000)
    big = os.urandom(11 * MiB)
    write(root / "wt-e" / "small.csv", small)
    write(root / "wt-e" / "big.raw", big)
    # The 1st body through the proxy is damaged; -j 1 makes that a deterministic request.
    p = proxy(corrupt_nth_body=1)
    r = upload(ceti, bucket, root, endpoint=p.endpoint, extra=("--part-size", "5MiB", "-j", "1", "--verbose"), check=0)
    entries = p.entries()
    bodies = [e for e in entries if e["body_bytes"] > 0]
    assert bodies[0]["status"] == 400, bodies[0]
    assert "retrying" in r.stderr
    assert get(s3, bucket, f"raw/{today()}/wt-e/small.csv") == small
    assert get(s3, bucket, f"raw/{today()}/wt-e/big.raw") == big


def test_dry_run_sends_nothing_and_writes_nothing(ceti, s3, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    write(root / "wt-f" / "a.csv", b"a" * 100)
    write(root / "wt-f" / "b.csv", b"b" * 100)
    upload(ceti, bucket, root, extra=("--prefix", "done"), check=0)  # creates the ledger
    ledger_before = ceti.ledger.read_bytes()
    write(root / "wt-f" / "c.csv", b"c" * 100)

    p = proxy()
    r = upload(ceti, bucket, root, endpoint=p.endpoint, extra=("-t", "--prefix", "done"), check=0)
    assert writes(p.entries()) == []
    assert ceti.ledger.read_bytes() == ledger_before
    assert "would-upload" in r.stdout and "c.csv" in r.stdout
    assert sorted(keys(s3, bucket)) == [f"done/{today()}/wt-f/a.csv", f"done/{today()}/wt-f/b.csv"]


def count_parts(ledger: Path) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM upload_parts").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_after_parts(args, env, ledger: Path, parts: int) -> None:
    """Start ceti, SIGKILL it once the ledger holds `parts` acknowledged parts."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and count_parts(ledger) >= parts:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the first run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_9_mid_multipart_then_resume(ceti, s3, bucket, proxy, tmp_path):
    part = 5 * MiB
    size = 120 * MiB + 12345
    blob = os.urandom(size)
    root = tmp_path / "up"
    write(root / "wt-g" / "long.raw", blob)
    p = proxy()
    args = [str(ceti.bin), "s3upload", "--bucket", bucket, "--endpoint-url", p.endpoint, "--part-size", "5MiB",
            "-j", "2", str(root)]
    # A rate limit stretches the first run so the kill lands mid-upload, at a random part.
    kill_after_parts(args + ["--bwlimit", "40M"], ceti.env, ceti.ledger, random.randint(2, 15))
    key = f"raw/{today()}/wt-g/long.raw"
    assert key not in keys(s3, bucket)

    r = subprocess.run(args + ["--verbose"], env=ceti.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stdout
    assert get(s3, bucket, key) == blob
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') == etag_of(blob, part)
    time.sleep(0.3)
    sent = sum(e["body_bytes"] for e in p.entries() if e["method"] == "PUT" and "partNumber=" in e["path"])
    assert sent < size + 2 * part, f"sent {sent} part bytes for a {size}-byte file"
    # Nothing is left in flight on the server.
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_file_changed_since_upload_began_starts_over(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    f = write(root / "wt-k" / "long.raw", os.urandom(40 * MiB))
    args = [str(ceti.bin), "s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint,
            "--part-size", "5MiB", "-j", "1", str(root)]
    kill_after_parts(args + ["--bwlimit", "10M"], ceti.env, ceti.ledger, 2)
    (stale,) = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]

    new = os.urandom(40 * MiB)  # same size, other content
    f.write_bytes(new)
    r = subprocess.run(args + ["--json"], env=ceti.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert [f["action"] for f in json.loads(r.stdout)["files"]] == ["uploaded"]
    assert get(s3, bucket, f"raw/{today()}/wt-k/long.raw") == new
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], f"stale upload {stale['UploadId']} left"
    assert count_parts(ceti.ledger) == 0


def test_json_summary_and_status(ceti, bucket, tmp_path):
    root = tmp_path / "up"
    write(root / "wt-h" / "a.csv", b"x" * 10)
    write(root / "wt-i" / "b.csv", b"y" * 20)
    r = upload(ceti, bucket, root, extra=("--json",), check=0)
    doc = json.loads(r.stdout)
    assert doc["bucket"] == bucket and doc["dry_run"] is False
    assert {(f["device"], f["action"], f["size"]) for f in doc["files"]} == {("wt-h", "uploaded", 10), ("wt-i", "uploaded", 20)}
    st = json.loads(ceti("status", "--json", check=0).stdout)
    assert {(d["device"], d["verified_objects"], d["verified_bytes"]) for d in st["devices"]} == {("wt-h", 1, 10), ("wt-i", 1, 20)}
    text = ceti("status", check=0).stdout
    assert "wt-h" in text and "wt-i" in text
    assert oct(ceti.ledger.stat().st_mode & 0o777) == "0o600"


def test_an_upload_aborted_on_the_server_starts_over(ceti, s3, bucket, proxy, tmp_path):
    """The ledger knows a multipart upload that S3 no longer has (aborted by a lifecycle rule or
    another tool): the rerun says so and starts over, and the object is right."""
    part = 5 * MiB
    blob = os.urandom(40 * MiB + 7)
    root = tmp_path / "up"
    write(root / "wt-h" / "long.raw", blob)
    p = proxy()
    args = [str(ceti.bin), "s3upload", "--bucket", bucket, "--endpoint-url", p.endpoint, "--part-size", "5MiB",
            "-j", "2", str(root)]
    kill_after_parts(args + ["--bwlimit", "20M"], ceti.env, ceti.ledger, 2)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1
    s3.abort_multipart_upload(Bucket=bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"])

    r = subprocess.run(args + ["--verbose"], env=ceti.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "is gone from the server; starting over" in r.stderr, r.stderr
    key = f"raw/{today()}/wt-h/long.raw"
    assert get(s3, bucket, key) == blob
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"') == etag_of(blob, part)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_planned_date_is_kept_for_resume_on_a_later_day(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    f = write(root / "wt-j" / "a.csv", b"dated")
    upload(ceti, bucket, root, extra=("-t",), check=0)  # a dry run plans nothing durable
    # Plan it "yesterday" by writing the first-planned date the way an earlier run would have.
    upload(ceti, bucket, root, check=0)
    with sqlite3.connect(ceti.ledger) as db:
        db.execute("UPDATE files SET planned_date = '2020-01-02' WHERE path = ?", (str(f),))
        db.execute("DELETE FROM objects")
    upload(ceti, bucket, root, check=0)
    assert f"raw/2020-01-02/wt-j/a.csv" in keys(s3, bucket)


def test_missing_credentials_is_a_usage_error(ceti, bucket, tmp_path):
    write(tmp_path / "up" / "wt-a" / "x.csv", b"data")
    r = upload(ceti, bucket, tmp_path / "up", env_extra={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None})
    assert r.returncode == 2, r.stderr
    assert "AWS_ACCESS_KEY_ID" in r.stderr and "credentials" in r.stderr, r.stderr
    assert not ceti.ledger.exists()


def test_credentials_from_profile_file(ceti, s3, bucket, tmp_path):
    write(tmp_path / "up" / "wt-a" / "x.csv", b"from a profile")
    creds = tmp_path / "aws-credentials"
    creds.write_text(f"[field]\naws_access_key_id = {ceti.s3env.access_key}\n"
                     f"aws_secret_access_key = {ceti.s3env.secret_key}\n")
    env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": creds}
    upload(ceti, bucket, tmp_path / "up", extra=("--profile", "field"), env_extra=env, check=0)
    assert get(s3, bucket, f"raw/{today()}/wt-a/x.csv") == b"from a profile"
    # A wrong secret in that profile names the profile and file, never the secret.
    creds.write_text(f"[field]\naws_access_key_id = {ceti.s3env.access_key}\naws_secret_access_key = nope-nope-nope\n")
    write(tmp_path / "up" / "wt-a" / "y.csv", b"more")
    r = upload(ceti, bucket, tmp_path / "up", extra=("--profile", "field"), env_extra=env)
    assert r.returncode == 2 and "'field'" in r.stderr and str(creds) in r.stderr, r.stderr
    assert "nope-nope-nope" not in r.stderr


def test_config_file_supplies_bucket_and_endpoint(ceti, s3, bucket, tmp_path):
    write(tmp_path / "up" / "wt-a" / "x.csv", b"configured")
    cfg = ceti.xdg_config / "ceti" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"bucket: {bucket}\nendpoint_url: {ceti.s3env.endpoint}\nprefix: cfg\n")
    ceti("s3upload", tmp_path / "up", check=0)
    assert get(s3, bucket, f"cfg/{today()}/wt-a/x.csv") == b"configured"
    cfg.write_text("bucket: [unclosed\n")
    r = ceti("s3upload", tmp_path / "up")
    assert r.returncode == 2 and str(cfg) in r.stderr, r.stderr


def test_many_files_in_a_folder_are_checked_by_one_listing(ceti, s3, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    blobs = {f"f{i:03}.csv": os.urandom(500 + i) for i in range(40)}
    for name, blob in blobs.items():
        write(root / "wt-many" / name, blob)
    upload(ceti, bucket, root, check=0)
    prefix = f"raw/{today()}/wt-many/"
    # Another client re-put one with the same bytes, and replaced another with different ones.
    s3.put_object(Bucket=bucket, Key=prefix + "f000.csv", Body=blobs["f000.csv"])
    s3.put_object(Bucket=bucket, Key=prefix + "f001.csv", Body=b"someone else's bytes")
    for f in ceti.ledger.parent.glob("ledger.sqlite*"):
        f.unlink()

    p = proxy()
    r = upload(ceti, bucket, root, endpoint=p.endpoint)
    assert r.returncode == 1, r.stdout + r.stderr  # f001 is a conflict
    time.sleep(0.2)
    entries = p.entries()
    assert writes(entries) == []
    lists = [e for e in entries if e["method"] == "GET" and "delimiter=" in e["path"]]
    heads = [e for e in entries if e["method"] == "HEAD"]
    assert len(lists) == 1, entries
    # The listing's sizes and ETags settle all 40 (39 identical, 1 conflict): no HEAD at all.
    assert heads == [], heads
    assert "f001.csv" in r.stderr and "conflict" in r.stderr
    assert get(s3, bucket, prefix + "f001.csv") == b"someone else's bytes"


def test_a_silent_link_is_abandoned_and_retried(ceti, s3, bucket, proxy, tmp_path):
    # Larger than what loopback's socket buffers can absorb (up to 4 + 32 MiB), so the sender really stalls.
    blob = os.urandom(80 * MiB)
    write(tmp_path / "up" / "wt-l" / "x.raw", blob)
    # The first body stops moving for 15 s; with --stall-timeout 2 ceti gives up on it and retries
    # (libcurl measures the rate over a window of a few seconds, so it notices after about 2 + 5 s).
    p = proxy(stall_nth_body=1, stall_seconds=15)
    r = upload(ceti, bucket, tmp_path / "up", endpoint=p.endpoint,
               extra=("--part-size", "96MiB", "--stall-timeout", "2", "-v"), check=0)
    assert "retrying PutObject" in r.stderr, r.stderr
    assert get(s3, bucket, f"raw/{today()}/wt-l/x.raw") == blob
    # The stalled request is logged once the proxy wakes up and finds the client gone.
    entries = p.wait_for(lambda es: any(e.get("stalled") for e in es), timeout=30)
    stalled = [e for e in entries if e.get("stalled")]
    assert len(stalled) == 1 and not stalled[0]["complete"], entries


def test_clock_skew_is_corrected_from_the_servers_date(ceti, s3, bucket, proxy, tmp_path):
    write(tmp_path / "up" / "wt-m" / "x.csv", b"late clock")
    # ceti's clock runs a day behind; the proxy answers the first request as AWS would.
    p = proxy(skew_first=1)
    cmd = ["faketime", "-f", "-1d", str(ceti.bin), "s3upload", "--bucket", bucket, "--endpoint-url", p.endpoint,
           str(tmp_path / "up")]
    r = subprocess.run(cmd, env=ceti.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    entries = p.entries()
    assert entries[0]["status"] == 403 and entries[0]["amz_date"] < time.strftime("%Y%m%d", time.gmtime())
    # Every request sent after that answer is signed with the server's time, not the machine's:
    # only the one sent at the same moment (the bucket check and the first key's HEAD go together)
    # may still carry the machine's.
    now = datetime.now(timezone.utc)
    late = [e for e in entries[1:]
            if abs((datetime.strptime(e["amz_date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) - now).total_seconds()) >= 300]
    assert len(late) <= 1, late
    assert len(entries) - 1 - len(late) >= 2, entries
    assert len(keys(s3, bucket)) == 1


def test_an_endpoint_that_never_answers_is_given_up_within_the_documented_bound(ceti, bucket, tmp_path):
    """A server that accepts connections and never sends a byte: each attempt is abandoned after
    --stall-timeout (before any response byte), and the run gives up after the documented bound:
    8 attempts x (stall-timeout + libcurl's few-second rate window) + at most 61.5 s of backoff."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        write(tmp_path / "up" / "wt-s" / "a.csv", b"never sent")
        start = time.monotonic()
        r = upload(ceti, bucket, tmp_path / "up", endpoint=f"http://127.0.0.1:{port}", extra=("--stall-timeout", "1"))
        took = time.monotonic() - start
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        listener.close()
    assert r.returncode == 1, r.stderr
    assert "after 8 attempts" in r.stderr, r.stderr
    # 8 attempts of the bucket check, and the one HEAD sent with the first (a hint, never retried).
    assert len(accepted) == 8 + 1
    assert 8 * 1 <= took <= 8 * (1 + 5) + 61.5 + 5, took


def test_status_pending_lists_exactly_the_files_without_a_verified_object(ceti, s3, bucket, tmp_path):
    """A partial upload (one file conflicts with other content already under its key): `status
    --pending` lists exactly that file; `--files` shows where every file's copies are."""
    root = tmp_path / "up"
    for name in ("a.csv", "b.csv", "c.raw"):
        write(root / "wt-p" / name, os.urandom(2000))
    s3.put_object(Bucket=bucket, Key=f"raw/{today()}/wt-p/b.csv", Body=b"someone else's bytes")
    upload(ceti, bucket, root, check=1)

    pending = json.loads(ceti("status", "--pending", "--json", check=0).stdout)["files"]
    assert [(f["device"], f["file"]) for f in pending] == [("wt-p", str(root / "wt-p" / "b.csv"))], pending
    assert pending[0].get("object") is None
    every = json.loads(ceti("status", "--files", "--json", check=0).stdout)["files"]
    held = {Path(f["file"]).name: f.get("object") for f in every}
    assert held == {"a.csv": f"s3://{bucket}/raw/{today()}/wt-p/a.csv", "b.csv": None,
                    "c.raw": f"s3://{bucket}/raw/{today()}/wt-p/c.raw"}, held
    text = ceti("status", "--pending", check=0).stdout
    assert "wt-p/b.csv" in text and "NOT IN S3" in text and "a.csv" not in text
