"""Issue #11: any file name a tag can hold, and files that used never to be "done".

Names are bytes: a tag file named with 255 bytes, bytes that are not UTF-8, a newline, CR, ESC,
a leading dash, a dot-file, `x.part`, a name that already looks percent-encoded — each is pulled
byte-identical under its own name, uploaded (by `s3upload` of the pull folder and by `ingest`),
and cleaned off the tag after its own proof. Object keys carry names in ceti's name form
(README "File names"): the name itself, or — for a name that is not UTF-8, holds a control
character or already holds `%` + two hex digits — its invalid bytes, its control characters'
bytes and every `%` as `%XX`. Nothing printed holds a raw control
character. A `.raw` cut off mid-frame is uploaded as it is by ingest, flagged in its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

HOSTNAME = socket.gethostname()

NAMES: dict[bytes, bytes] = {
    b"L" * 251 + b".bin": b"two hundred and fifty-five bytes of name\n",
    b"\xff\xfe bad utf8.csv": b"t,v\n1,2\n",
    b"new\nline.csv": b"newline\n",
    b"cr\rforged line.csv": b"cr\n",
    b"esc\x1b[31mred.csv": b"esc\n",
    b"-leading-dash.csv": b"dash\n",
    b".hidden": b"a dot-file\n",
    b"x.part": b"a tag file that ends in .part\n",
    b"pct%41.txt": b"looks percent-encoded\n",
}


def decode_form(form: str) -> bytes:
    """ceti's name form back to the name's bytes (README "File names")."""
    raw = form.encode()
    if re.search(rb"%[0-9A-Fa-f]{2}", raw):
        return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)
    return raw


def put_bytes(data: Path, files: dict[bytes, bytes], age: float = 600) -> None:
    for name, blob in files.items():
        p = os.path.join(os.fsencode(data), name)
        with open(p, "wb") as f:
            f.write(blob)
        os.chmod(p, 0o666)
        t = time.time() - age
        os.utime(p, (t, t))


def listing(folder: Path) -> set[bytes]:
    return set(os.listdir(os.fsencode(folder)))


def read(folder: Path, name: bytes) -> bytes:
    with open(os.path.join(os.fsencode(folder), name), "rb") as f:
        return f.read()


def assert_clean_output(r, expect_names: int = 0) -> None:
    """No raw control character reaches the terminal: only line breaks separate lines."""
    for stream in (r.stdout, r.stderr):
        assert "\x1b" not in stream and "\r" not in stream, stream
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stream), stream


def bucket_objects(s3, bucket: str) -> dict[str, bytes]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []) or []:
            out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def whaletag(ceti, tag, data_dir, *extra, check=None):
    return ceti("whaletag", "-t", tag.host, "--port", tag.port, "--user", tag.user, "--remote-dir", tag.data,
                "--data-dir", data_dir, *extra, env_extra={"CETI_TAG_PASSWORD": tag.password}, check=check)


def test_any_name_is_pulled_uploaded_and_cleaned(ceti, s3, bucket, sshd_tag, tmp_path):
    assert len(next(iter(NAMES))) == 255
    put_bytes(sshd_tag.data, NAMES)
    pulled = tmp_path / "pulled"
    r = whaletag(ceti, sshd_tag, pulled, check=0)
    assert_clean_output(r)
    # One result line per file, each naming its file (escaped) on that line.
    results = [l for l in r.stdout.splitlines() if l.startswith("pulled")]
    assert len(results) == len(NAMES), r.stdout
    assert any("new%0Aline.csv" in l for l in results) and any("%FF%FE bad utf8.csv" in l for l in results), r.stdout
    here = pulled / HOSTNAME
    assert listing(here) == set(NAMES), listing(here)  # own names, no partial left behind
    for name, blob in NAMES.items():
        assert read(here, name) == blob, name

    # A rerun pulls nothing: every name is found again in the ledger.
    r = whaletag(ceti, sshd_tag, pulled, "--json", check=0)
    actions = {f["name"]: f["action"] for f in json.loads(r.stdout)["tags"][0]["files"]}
    assert {decode_form(n) for n in actions} == set(NAMES), actions
    assert set(actions.values()) == {"skipped"}, actions

    # Not uploaded yet: -c keeps everything.
    r = whaletag(ceti, sshd_tag, pulled, "-c", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, check=0)
    assert_clean_output(r)
    assert listing(sshd_tag.data) == set(NAMES)

    # s3upload of the pull folder sends every one of them (dot-file and x.part too).
    r = ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, pulled, check=0)
    assert_clean_output(r)
    objects = bucket_objects(s3, bucket)
    by_name = {decode_form(k.rsplit("/", 1)[1]): blob for k, blob in objects.items()}
    assert set(by_name) == set(NAMES), sorted(objects)
    for name, blob in NAMES.items():
        assert by_name[name] == blob, name
    assert all(f"/{HOSTNAME}/" in k for k in objects)
    # The encoding: plain UTF-8 names as they are, the others percent-encoded (with % as %25).
    keys = {k.rsplit("/", 1)[1] for k in objects}
    assert {"%FF%FE bad utf8.csv", "pct%2541.txt", "new%0Aline.csv", "esc%1B[31mred.csv", "-leading-dash.csv",
            ".hidden", "x.part"} <= keys, keys
    assert not any(re.search(r"[\x00-\x1f\x7f]", k) for k in objects), keys

    # Now each file has its own proof: all of them are deleted, one line each.
    r = whaletag(ceti, sshd_tag, pulled, "-c", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, check=0)
    assert_clean_output(r)
    deleted = [l for l in r.stdout.splitlines() if l.startswith("deleted")]
    assert len(deleted) == len(NAMES), r.stdout
    assert listing(sshd_tag.data) == set()


def test_a_file_that_fails_keeps_only_itself(ceti, sshd_tag, tmp_path):
    put_bytes(sshd_tag.data, {b"a.csv": b"aaa", b"\xff b.csv": b"new on the tag"})
    pulled = tmp_path / "pulled"
    here = pulled / HOSTNAME
    here.mkdir(parents=True)
    # A local name clash makes the pull of one file fail.
    with open(os.path.join(os.fsencode(here), b"\xff b.csv"), "wb") as f:
        f.write(b"something else already here")
    r = whaletag(ceti, sshd_tag, pulled, "-c", "--require", "local", "--json")
    assert r.returncode == 1, r.stderr
    assert_clean_output(r)
    doc = json.loads(r.stdout)
    (tag,) = doc["tags"]
    assert tag.get("error") is None, tag
    cleaned = {c["name"]: c for c in tag["cleaned"]}
    assert cleaned["a.csv"]["action"] == "deleted", cleaned
    assert cleaned["%FF b.csv"]["action"] == "kept" and "not pulled" in cleaned["%FF b.csv"]["reason"], cleaned
    assert listing(sshd_tag.data) == {b"\xff b.csv"}
    assert read(here, b"\xff b.csv") == b"something else already here"
    # The summary counts a file failure as a file, not as an unreachable tag.
    r = whaletag(ceti, sshd_tag, pulled)
    assert "unreachable or refused" not in r.stderr + r.stdout, r.stderr + r.stdout
    assert "1 failed" in r.stderr + r.stdout, r.stderr + r.stdout


def test_a_legacy_part_partial_is_resumed_not_uploaded(ceti, s3, bucket, sshd_tag, tmp_path):
    blob = os.urandom(300_000)
    put_bytes(sshd_tag.data, {b"rec.bin": blob})
    here = tmp_path / "pulled" / HOSTNAME
    here.mkdir(parents=True)
    (here / "rec.bin.part").write_bytes(blob[:100_000])  # left by an older ceti
    r = whaletag(ceti, sshd_tag, tmp_path / "pulled", "--json", check=0)
    (f,) = json.loads(r.stdout)["tags"][0]["files"]
    assert f["action"] == "resumed" and f["bytes_received"] == 200_000, f
    assert listing(here) == {b"rec.bin"} and (here / "rec.bin").read_bytes() == blob


def test_ingest_takes_every_name_and_a_truncated_raw(ceti, s3, bucket, tag_pair, tmp_path):
    t0, t1 = tag_pair
    truncated = b"\x00\x01" * 3 + b"\x07"  # 7 bytes: not whole 6-byte frames
    files = dict(NAMES)
    files[b"1700000999999.raw"] = truncated
    put_bytes(t0.data, files)
    put_bytes(t1.data, {b"data_battery.csv": b"t,v\n1,2\n"})
    staging = tmp_path / "staging"
    argv = ["ingest", "--user", t0.user, "--staging", staging, "--endpoint-url", ceti.s3env.endpoint,
            "--bucket", bucket, "-t", f"127.0.0.1:{t0.port}", "-t", f"127.0.0.1:{t1.port}", "--clean"]
    r = ceti(*argv, env_extra={"CETI_TAG_PASSWORD": t0.password}, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_clean_output(r)
    # Every file proven and cleaned: nothing held the tag's manifest or its clean back.
    assert listing(t0.data) == set() and listing(t1.data) == set()

    objects = bucket_objects(s3, bucket)
    manifests = {k: json.loads(v) for k, v in objects.items() if k.endswith("/manifest.json")}
    (m,) = [m for m in manifests.values() if m["device"] == t0.name]
    assert any(k.endswith(f"/{t0.name}/_COMPLETE") for k in objects)
    entries = {decode_form(e["name"]): e for e in m["files"]}
    assert set(entries) == set(files), sorted(entries)
    for name, blob in files.items():
        e = entries[name]
        assert e["size"] == len(blob) and e["sha256"] == hashlib.sha256(blob).hexdigest(), e
        body = objects[e["object"]["key"]]
        if name.endswith(b".csv"):
            import gzip
            assert e["derivative"]["codec"] == "gzip" and gzip.decompress(body) == blob, e
            assert decode_form(e["object"]["key"].rsplit("/", 1)[1]) == name + b".gz"
        else:
            assert body == blob, name
            assert decode_form(e["object"]["key"].rsplit("/", 1)[1]) == name
    raw = entries[b"1700000999999.raw"]
    assert "derivative" in raw and raw["derivative"] is None, raw
    assert "not whole frames" in raw["note"], raw
    assert objects[raw["object"]["key"]] == truncated


def test_compress_reports_a_truncated_raw_and_keeps_it(ceti, tmp_path):
    d = tmp_path / "staging" / "wt-00000001"
    d.mkdir(parents=True)
    (d / "1700000999999.raw").write_bytes(b"\x00" * 7)
    r = ceti("compress", tmp_path / "staging")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1700000999999.raw" in r.stdout + r.stderr and "whole" in r.stdout + r.stderr
    assert (d / "1700000999999.raw").read_bytes() == b"\x00" * 7
    assert sorted(os.listdir(d)) == ["1700000999999.raw"]
