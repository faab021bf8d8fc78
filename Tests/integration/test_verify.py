"""ceti verify (issue #14): after an ingest of two tags, S3 is checked against the ledger — HEAD by
default, every byte read back with --deep — and each mismatch is named. Objects are damaged with
boto3 (overwritten, deleted) and, for bytes that rot at rest while size, ETag and metadata stay as
they were, by the S3 proxy flipping a byte of an object's GET body (`rot_key`)."""

from __future__ import annotations

import json

from test_ingest import boto_objects, fill, run_ingest, tag_files


def verify(ceti, bucket, endpoint, *extra, check=None):
    return ceti("verify", "--bucket", bucket, "--endpoint-url", endpoint, *extra, check=check, timeout=300)


def test_verify_names_what_s3_lost_or_changed_and_deep_finds_rot(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    for i, t in enumerate(tag_pair):
        fill(t.data, tag_files(i, raws=1))
    backup = tmp_path / "backup"
    r = run_ingest(ceti, tag_pair, bucket, tmp_path / "staging", "--backup", backup, check=0)
    assert r.returncode == 0, r.stderr
    objects = sorted(k for k in boto_objects(s3, bucket) if "/_runs/" not in k)
    assert len(objects) >= 8

    ok = json.loads(verify(ceti, bucket, ceti.s3env.endpoint, "--json", check=0).stdout)
    assert ok["problems"] == [] and ok["objects"] == len(objects) and ok["backups"] == len(objects)
    # Staging keeps each uploaded file (the FLAC, the gzip, the files that went as they were).
    assert ok["local_copies"] == len(objects), ok
    deep = verify(ceti, bucket, ceti.s3env.endpoint, "--deep", check=0)
    assert deep.returncode == 0 and "read back and hashed" in deep.stdout, deep.stdout + deep.stderr

    # Bytes that rotted at rest: HEAD still says all is well; only --deep reads them back.
    rotten = objects[0]
    p = proxy(rot_key=rotten.rsplit("/", 1)[1])
    assert verify(ceti, bucket, p.endpoint, check=0).returncode == 0
    r = verify(ceti, bucket, p.endpoint, "--deep", check=1)
    assert f"corrupt: s3://{bucket}/{rotten}:" in r.stderr, r.stderr

    # One object overwritten with other bytes, another deleted, a backup copy truncated: each named.
    changed, gone = objects[1], objects[2]
    s3.put_object(Bucket=bucket, Key=changed, Body=b"other bytes")
    s3.delete_object(Bucket=bucket, Key=gone)
    some_backup = next(p for p in backup.rglob("*") if p.is_file())
    some_backup.write_bytes(some_backup.read_bytes()[:-1])
    # A staged file whose bytes changed but not its size: only --deep reads it.
    staged = next(p for p in (tmp_path / "staging").rglob("*.gz"))
    blob = bytearray(staged.read_bytes())
    blob[-1] ^= 0xFF
    staged.write_bytes(bytes(blob))
    r = verify(ceti, bucket, ceti.s3env.endpoint, "--json", check=1)
    found = {(x["kind"], x["what"]) for x in json.loads(r.stdout)["problems"]}
    assert found == {("changed", f"s3://{bucket}/{changed}"), ("missing", f"s3://{bucket}/{gone}"),
                     ("backup", str(some_backup))}, found
    assert f"missing: s3://{bucket}/{gone}" in r.stderr and f"changed: s3://{bucket}/{changed}" in r.stderr
    r = verify(ceti, bucket, ceti.s3env.endpoint, "--deep", "--json", check=1)
    assert ("local", str(staged)) in {(x["kind"], x["what"]) for x in json.loads(r.stdout)["problems"]}

    # One device only: the other tag's objects are not asked for.
    device = tag_pair[0].name
    mine = [k for k in objects if f"/{device}/" in k]
    one = json.loads(verify(ceti, bucket, ceti.s3env.endpoint, "--device", device, "--json", check=None).stdout)
    assert one["objects"] == len(mine) and one["backups"] == 0
    assert {x["what"] for x in one["problems"]} == {f"s3://{bucket}/{k}" for k in (changed, gone) if k in mine}


def test_verify_without_a_ledger_or_with_an_unknown_run_is_a_usage_error(ceti, bucket, tmp_path):
    r = verify(ceti, bucket, ceti.s3env.endpoint, check=2)
    assert "no ledger at" in r.stderr and len(r.stderr.strip().splitlines()) == 1
