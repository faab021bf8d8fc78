"""The custody rule (DESIGN §2): a deletion or a "saved" claim needs this file's own proof.

Against real servers: SeaweedFS (objects deleted or overwritten behind ceti's back with boto3),
two loopback tags (`tag_pair`, sshd with their own hostname and /data), the test proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import empty_bucket
from test_ingest import boto_objects, fill, run_ingest, tag_files

MiB = 1 << 20


def whaletag(ceti, tag, data_dir: Path, *extra, bucket=None, check=None):
    argv = ["whaletag", "-t", f"127.0.0.1:{tag.port}", "--user", tag.user, "--data-dir", data_dir]
    if bucket:
        argv += ["--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint]
    return ceti(*argv, *extra, env_extra={"CETI_TAG_PASSWORD": tag.password}, check=check)


def cleaned(r) -> dict[str, dict]:
    (tag,) = json.loads(r.stdout)["tags"]
    return {c["name"]: c for c in tag["cleaned"]}


def s3upload(ceti, bucket, *dirs, extra=(), check=None, env_extra=None):
    return ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--json", *extra, *dirs,
                check=check, env_extra=env_extra)


def delete_all(s3, bucket) -> int:
    keys = list(boto_objects(s3, bucket))
    for k in keys:
        s3.delete_object(Bucket=bucket, Key=k)
    return len(keys)


def test_objects_gone_from_s3_prove_nothing_and_s3upload_sends_them_again(ceti, s3, bucket, tag_pair, tmp_path):
    t0 = tag_pair[0]
    files = tag_files(0, raws=1, frames=20_000, csv_rows=2_000)
    fill(t0.data, files)
    staging = tmp_path / "staging"
    r = run_ingest(ceti, [t0], bucket, staging)
    assert r.returncode == 0, r.stderr
    assert delete_all(s3, bucket) > len(files)  # the data, the manifest and _COMPLETE

    # ingest --clean: the run is complete in the ledger, but S3 no longer holds a thing.
    r = run_ingest(ceti, [t0], bucket, staging, "--clean", "--json")
    assert sorted(os.listdir(t0.data)) == sorted(files), r.stderr
    (tag,) = json.loads(r.stdout)["tags"]
    assert {c["action"] for c in tag["cleaned"]} == {"kept"}
    assert all("gone from S3" in c["reason"] for c in tag["cleaned"]), tag["cleaned"]

    # whaletag -c: the same, and it says why.
    r = whaletag(ceti, t0, staging, "-c", "--json", bucket=bucket)
    assert sorted(os.listdir(t0.data)) == sorted(files)
    assert all(c["action"] == "kept" and "gone from S3" in c["reason"] for c in cleaned(r).values()), r.stdout

    # s3upload of the staging folder sends every file again (the ledger's memory is no proof).
    r = s3upload(ceti, bucket, staging, check=0)
    actions = [f["action"] for f in json.loads(r.stdout)["files"]]
    assert actions and set(actions) == {"uploaded"}, actions
    assert len(boto_objects(s3, bucket)) == len(actions)

    # Now the proof holds again: the tag is wiped of exactly its files.
    r = whaletag(ceti, t0, staging, "-c", "--json", bucket=bucket, check=0)
    assert {c["action"] for c in cleaned(r).values()} == {"deleted"}
    assert os.listdir(t0.data) == []


def test_identical_bytes_of_another_tag_or_bucket_prove_nothing(ceti, s3, bucket, tag_pair, tmp_path):
    t0, t1 = tag_pair
    common = {"data_state.csv": b"", "data_battery.csv": b"time,voltage\n", "data_config_1700000000.txt": b"rate = 96000\n"}
    for i, t in enumerate(tag_pair):
        fill(t.data, {**common, "unique.csv": os.urandom(2000 + i)})
    d0, d1 = tmp_path / "d0", tmp_path / "d1"
    whaletag(ceti, t0, d0, check=0)
    whaletag(ceti, t1, d1, check=0)

    # Only tag 0's pull is uploaded: tag 1's byte-identical files stay on tag 1.
    s3upload(ceti, bucket, d0, check=0)
    r = whaletag(ceti, t1, d1, "-c", "--json", bucket=bucket, check=0)
    assert {c["action"] for c in cleaned(r).values()} == {"kept"}, r.stdout
    assert sorted(os.listdir(t1.data)) == sorted([*common, "unique.csv"])

    # Tag 1's own upload, but to another bucket, proves nothing for this one.
    other = bucket + "-b"
    s3.create_bucket(Bucket=other)
    try:
        s3upload(ceti, other, d1, check=0)
        r = whaletag(ceti, t1, d1, "-c", "--json", bucket=bucket, check=0)
        assert {c["action"] for c in cleaned(r).values()} == {"kept"}, r.stdout
        assert sorted(os.listdir(t1.data)) == sorted([*common, "unique.csv"])
    finally:
        empty_bucket(s3, other)
        s3.delete_bucket(Bucket=other)

    # Tag 1's own upload to this bucket; then one of its objects is deleted behind ceti's back.
    r = s3upload(ceti, bucket, d1, check=0)
    keys = {Path(f["path"]).name: f["key"] for f in json.loads(r.stdout)["files"]}
    s3.delete_object(Bucket=bucket, Key=keys["unique.csv"])
    r = whaletag(ceti, t1, d1, "-c", "--json", bucket=bucket, check=0)
    got = cleaned(r)
    assert {n for n, c in got.items() if c["action"] == "deleted"} == set(common)
    assert got["unique.csv"]["action"] == "kept" and "gone from S3" in got["unique.csv"]["reason"]
    assert os.listdir(t1.data) == ["unique.csv"]
    assert all(f"/{t1.name}/" in got[n]["reason"] for n in common), got  # its own object, not tag 0's
    # Tag 0 keeps everything: nobody cleaned it.
    assert sorted(os.listdir(t0.data)) == sorted([*common, "unique.csv"])


def test_two_uploaders_of_one_key_never_both_claim_it(ceti, s3, bucket, tmp_path):
    """Two laptops (two ledgers) send different bytes to the same keys at once: for each key
    exactly one wins, S3 holds its bytes, and the other reports a conflict and claims nothing."""
    names = {"big.raw": 11 * MiB + 3, "small.csv": 5000}
    trees = {}
    for side in ("a", "b"):
        root = tmp_path / side
        (root / "wt-0a1b2c3d").mkdir(parents=True)
        for name, size in names.items():
            (root / "wt-0a1b2c3d" / name).write_bytes(os.urandom(size))
        trees[side] = root
    procs = {}
    for side, root in trees.items():
        env = {**ceti.env, "CETI_LEDGER": str(tmp_path / f"ledger-{side}.sqlite")}
        procs[side] = subprocess.Popen(
            [str(ceti.bin), "s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--json",
             "--part-size", "5MiB", str(root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {side: (p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for side, p in procs.items()}

    for name in names:
        local = {side: (trees[side] / "wt-0a1b2c3d" / name).read_bytes() for side in trees}
        outcomes = {}
        for side, (_, out, _) in results.items():
            (f,) = [f for f in json.loads(out)["files"] if f["path"].endswith("/" + name)]
            outcomes[side] = f
        key = outcomes["a"]["key"]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        winners = [side for side in trees if local[side] == body]
        assert len(winners) == 1, (name, outcomes)
        (winner,) = winners
        loser = "b" if winner == "a" else "a"
        assert outcomes[winner]["action"] in ("uploaded", "resumed"), outcomes
        assert outcomes[loser]["action"] in ("conflict", "failed"), outcomes
        assert results[loser][0] == 1
        with sqlite3.connect(tmp_path / f"ledger-{loser}.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM objects WHERE key = ?", (key,)).fetchone() == (0,)
        with sqlite3.connect(tmp_path / f"ledger-{winner}.sqlite") as db:
            (sha,) = db.execute("SELECT sha256 FROM objects WHERE key = ?", (key,)).fetchone()
            assert sha == hashlib.sha256(body).hexdigest()
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_staged_copy_changed_after_its_pull_is_never_uploaded(ceti, s3, bucket, tag_pair, tmp_path):
    t0 = tag_pair[0]
    fill(t0.data, {"data_gps.csv": b"t,lat,lon\n1,2,3\n", "1700000000000.flac": os.urandom(4000)})
    staging = tmp_path / "staging"
    whaletag(ceti, t0, staging, check=0)
    victim = staging / t0.name / "1700000000000.flac"
    blob = bytearray(victim.read_bytes())
    blob[100] ^= 0x01  # one bit, same size
    victim.write_bytes(bytes(blob))

    r = s3upload(ceti, bucket, staging)
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if "1700000000000.flac" in l]
    assert len(errors) == 1 and "changed since it was pulled" in errors[0], r.stderr
    assert [k.rsplit("/", 1)[1] for k in boto_objects(s3, bucket)] == ["data_gps.csv"]
    # And nothing on the tag is deleted on its account.
    r = whaletag(ceti, t0, staging, "-c", "--json", bucket=bucket, check=0)
    got = cleaned(r)
    assert got["1700000000000.flac"]["action"] == "kept" and got["data_gps.csv"]["action"] == "deleted"


def test_one_tag_named_twice_is_pulled_once(ceti, s3, bucket, tag_pair, tmp_path):
    t0 = tag_pair[0]
    files = tag_files(0, raws=2, frames=30_000, csv_rows=3_000)
    fill(t0.data, files)
    staging = tmp_path / "staging"
    argv = ["ingest", "--user", t0.user, "--staging", staging, "--endpoint-url", ceti.s3env.endpoint,
            "--bucket", bucket, "-t", f"127.0.0.1:{t0.port}", "-t", f"localhost:{t0.port}", "--json"]
    r = ceti(*argv, env_extra={"CETI_TAG_PASSWORD": t0.password})
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert [t["tag"] for t in summary["tags"]] == [t0.name]
    (tag,) = summary["tags"]
    assert sorted(f["name"] for f in tag["pulled"]) == sorted(files)
    assert {f["action"] for f in tag["pulled"]} == {"pulled"}
    # Every output's bytes are the ones the ledger recorded for it.
    with sqlite3.connect(ceti.ledger) as db:
        rows = db.execute("SELECT output_path, output_sha256 FROM derivatives").fetchall()
    assert len(rows) == len([n for n in files if n.endswith((".raw", ".csv")) and files[n]])
    for path, sha in rows:
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == sha, path
    objects = boto_objects(s3, bucket)
    assert len([k for k in objects if "/_runs/" in k and k.endswith("/_COMPLETE")]) == 1


def test_a_fatal_s3_error_mid_ingest_stops_with_one_line_and_exit_2(ceti, s3, bucket, tag_pair, proxy, tmp_path):
    want = {}
    for i, t in enumerate(tag_pair):
        want[t.name] = tag_files(i, raws=3, frames=200_000, csv_rows=5_000)
        fill(t.data, want[t.name])
    deny = tmp_path / "deny"
    p = proxy(deny_file=deny)
    staging = tmp_path / "staging"
    argv = ["ingest", "--user", tag_pair[0].user, "--staging", staging, "--endpoint-url", p.endpoint,
            "--bucket", bucket, "--clean"]
    for t in tag_pair:
        argv += ["-t", f"127.0.0.1:{t.port}"]
    proc = subprocess.Popen([str(ceti.bin), *map(str, argv)], env={**ceti.env, "CETI_TAG_PASSWORD": tag_pair[0].password},
                            cwd=ceti.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The key is revoked once the first object is in S3.
    p.wait_for(lambda e: any(x["method"] == "PUT" and x["status"] == 200 for x in e), timeout=120)
    deny.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    refused = [l for l in lines if "refused" in l and bucket in l]
    assert len(refused) == 1, err
    assert not [l for l in lines if "AccessDenied" in l and l not in refused], err
    # Nothing deleted anywhere: the tags keep every file, staging keeps each file or its verified output.
    for t in tag_pair:
        assert sorted(os.listdir(t.data)) == sorted(want[t.name])
    objects = boto_objects(s3, bucket)
    assert not [k for k in objects if "/_runs/" in k]

    # With the key good again, a rerun completes every tag.
    deny.unlink()
    r = run_ingest(ceti, tag_pair, bucket, staging, "--json")
    assert r.returncode == 0, r.stderr
    objects = boto_objects(s3, bucket)
    assert len([k for k in objects if k.endswith("/_COMPLETE")]) == 2


def test_a_failed_file_never_holds_back_cleaning_the_others(ceti, s3, bucket, tag_pair, tmp_path):
    t0 = tag_pair[0]
    files = {"a.csv": b"t,v\n1,2\n", "b.csv": b"t,v\n3,4\n", "1700000000000.flac": os.urandom(5000)}
    fill(t0.data, files)
    staging = tmp_path / "staging"
    # A local name clash makes the pull of b.csv fail; the other files are fine.
    (staging / t0.name).mkdir(parents=True)
    (staging / t0.name / "b.csv").write_bytes(b"something else already here")
    r = run_ingest(ceti, [t0], bucket, staging, "--clean", "--json")
    assert r.returncode == 1, r.stderr
    assert any("b.csv" in l for l in r.stderr.splitlines()), r.stderr
    assert os.listdir(t0.data) == ["b.csv"]
    assert not [k for k in boto_objects(s3, bucket) if "/_runs/" in k]  # no manifest with a failure

    # The clash is resolved: the rerun pulls b.csv, writes the manifest with all three, wipes the tag.
    (staging / t0.name / "b.csv").unlink()
    r = run_ingest(ceti, [t0], bucket, staging, "--clean", "--json")
    assert r.returncode == 0, r.stderr
    assert os.listdir(t0.data) == []
    objects = boto_objects(s3, bucket)
    (mkey,) = [k for k in objects if k.endswith(f"/{t0.name}/manifest.json")]
    listed = {e["name"] for e in json.loads(s3.get_object(Bucket=bucket, Key=mkey)["Body"].read())["files"]}
    assert listed == set(files)
