"""whaletag -t against a real OpenSSH sshd on loopback (the `sshd_tag` fixture)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tcpproxy import start_tcp_proxy

MiB = 1 << 20
HOSTNAME = socket.gethostname()  # what `hostname` answers on the loopback "tag"


def put(tag, name: str, data: bytes, age: float = 600) -> Path:
    """A file on the tag, last modified `age` seconds ago."""
    p = tag.data / name
    p.write_bytes(data)
    os.chmod(p, 0o644)
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def pull(ceti, tag, tmp_path, *extra, port=None, check=None, env_extra=None):
    return ceti("whaletag", "-t", tag.host, "--port", port or tag.port, "--user", tag.user,
                "--remote-dir", tag.data, "--data-dir", tmp_path / "pulled", *extra,
                env_extra={"CETI_TAG_PASSWORD": tag.password, **(env_extra or {})}, check=check)


def local(tmp_path) -> Path:
    return tmp_path / "pulled" / HOSTNAME


def s3_args(ceti, bucket) -> list:
    """What -c (proof by upload) needs: the bucket whose objects prove each file."""
    return ["--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint]


def test_pull_is_exact_and_a_rerun_pulls_nothing(ceti, sshd_tag, tmp_path):
    files = {"1700000000000.raw": os.urandom(3 * MiB + 17), "data_battery.csv": b"t,v\n1,2\n",
             "data_config_1700000000.txt": b"cfg", "empty.csv": b""}
    for name, blob in files.items():
        put(sshd_tag, name, blob)
    (sshd_tag.data / "logs").mkdir()
    put(sshd_tag, "logs/inner.log", b"never pulled")
    (sshd_tag.data / "link.raw").symlink_to(sshd_tag.data / "1700000000000.raw")

    r = pull(ceti, sshd_tag, tmp_path, "--json", check=0)
    doc = json.loads(r.stdout)
    (tag,) = doc["tags"]
    assert tag["tag"] == HOSTNAME and tag.get("error") is None
    actions = {f["name"]: f["action"] for f in tag["files"]}
    assert actions == {**{n: "pulled" for n in files}, "logs": "ignored", "link.raw": "ignored"}
    for name, blob in files.items():
        assert (local(tmp_path) / name).read_bytes() == blob, name
    assert sorted(p.name for p in local(tmp_path).iterdir()) == sorted(files)
    # Recorded with the tag's own checksum.
    sha = {f["name"]: f["sha256"] for f in tag["files"] if f["action"] == "pulled"}
    assert sha == {n: hashlib.sha256(b).hexdigest() for n, b in files.items()}

    r = pull(ceti, sshd_tag, tmp_path, "--json", check=0)
    again = {f["name"]: f["action"] for f in json.loads(r.stdout)["tags"][0]["files"]}
    assert {n: again[n] for n in files} == {n: "skipped" for n in files}
    assert all(f["bytes_received"] == 0 for f in json.loads(r.stdout)["tags"][0]["files"])


def test_hostile_names_are_pulled_verified_and_never_run(ceti, sshd_tag, tmp_path):
    names = ["space name.csv", "quote'single.csv", 'quote"double.csv', "x; touch pwned", "$(touch dollar).csv",
             "`touch tick`.csv", "鯨-é.csv", "new\nline.csv", "back\\slash.csv", "-leading-dash.csv"]
    for i, n in enumerate(names):
        put(sshd_tag, n, f"{i}\n".encode())
    r = pull(ceti, sshd_tag, tmp_path, "--json", check=0)
    files = {f["name"]: f for f in json.loads(r.stdout)["tags"][0]["files"]}
    # Names are reported in name form: a control character as %XX (README "File names").
    for i, n in enumerate(names):
        n_form = n.replace("\n", "%0A")
        assert files[n_form]["action"] == "pulled", files[n_form]
        assert (local(tmp_path) / n).read_bytes() == f"{i}\n".encode()
    home = sshd_tag.run("ls -a ~; ls -a .", check=True).stdout
    for bad in ("pwned", "dollar", "tick"):
        assert bad not in home
        assert not (sshd_tag.data / bad).exists()


def test_a_file_still_being_written_is_reported_not_pulled(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "old.csv", b"done")
    put(sshd_tag, "growing.csv", b"still writing", age=5)
    r = pull(ceti, sshd_tag, tmp_path, "--json", check=0)
    files = {f["name"]: f["action"] for f in json.loads(r.stdout)["tags"][0]["files"]}
    assert files == {"old.csv": "pulled", "growing.csv": "still-writing"}
    assert not (local(tmp_path) / "growing.csv").exists()
    r = pull(ceti, sshd_tag, tmp_path, check=0)
    assert "growing.csv" in r.stderr and "still" in r.stderr


def test_wrong_password_is_one_clear_line_and_exit_1(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"a")
    r = pull(ceti, sshd_tag, tmp_path, env_extra={"CETI_TAG_PASSWORD": "not-the-password"})
    assert r.returncode == 1, r.stdout + r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("ceti:")]
    assert len(errors) == 1 and "refused" in errors[0] and "--password-file" in errors[0]
    assert "not-the-password" not in r.stdout + r.stderr
    assert not local(tmp_path).exists() or not any(local(tmp_path).iterdir())


def test_a_changed_host_key_is_refused_until_accepted(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"a")
    pull(ceti, sshd_tag, tmp_path, check=0)
    known = (ceti.xdg_config / "ceti" / "known_hosts").read_text()
    assert HOSTNAME in known

    sshd_tag.regen_host_key()
    put(sshd_tag, "b.csv", b"b")
    r = pull(ceti, sshd_tag, tmp_path)
    assert r.returncode == 1
    assert "host key" in r.stderr and "--accept-new-host-key" in r.stderr
    assert not (local(tmp_path) / "b.csv").exists()
    assert (ceti.xdg_config / "ceti" / "known_hosts").read_text() == known

    pull(ceti, sshd_tag, tmp_path, "--accept-new-host-key", HOSTNAME, check=0)
    assert (local(tmp_path) / "b.csv").read_bytes() == b"b"


def test_kill_9_mid_file_then_resume_sends_little_more_than_the_file(ceti, sshd_tag, tmp_path):
    size = 160 * MiB + 12345
    blob = os.urandom(size)
    put(sshd_tag, "1700000000000.raw", blob)
    proxy = start_tcp_proxy(sshd_tag.host, sshd_tag.port)
    try:
        args = [str(ceti.bin), "whaletag", "-t", sshd_tag.host, "--port", str(proxy.port), "--user", sshd_tag.user,
                "--remote-dir", str(sshd_tag.data), "--data-dir", str(tmp_path / "pulled")]
        env = {**ceti.env, "CETI_TAG_PASSWORD": sshd_tag.password}
        # The partial's name: `.ceti-part-` + 20 hex of the SHA-256 of the file's name.
        part = local(tmp_path) / (".ceti-part-" + hashlib.sha256(b"1700000000000.raw").hexdigest()[:20])
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if part.exists() and part.stat().st_size >= 40 * MiB:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the pull finished before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert part.exists() and part.stat().st_size < size

        r = subprocess.run(args + ["--json"], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        (f,) = json.loads(r.stdout)["tags"][0]["files"]
        assert f["action"] == "resumed"
        assert (local(tmp_path) / "1700000000000.raw").read_bytes() == blob
        assert not part.exists()
        time.sleep(0.2)
        print(f"resume overhead: {proxy.down - size} bytes")
        assert proxy.down < size + 4 * MiB, f"{proxy.down} bytes received for a {size}-byte file"
    finally:
        proxy.stop()


def test_dry_run_writes_nothing(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"a")
    r = pull(ceti, sshd_tag, tmp_path, "--dry-run", "--json", check=0)
    assert [f["action"] for f in json.loads(r.stdout)["tags"][0]["files"]] == ["would-pull"]
    assert not (tmp_path / "pulled").exists()
    assert not ceti.ledger.exists()


def test_logs_are_pulled_last_even_when_just_written(ceti, sshd_tag, tmp_path):
    """A `*.log` changes on every login (ours too): it never settles, so it is pulled all the same,
    after everything else."""
    put(sshd_tag, "zz.csv", b"z" * 1000)
    put(sshd_tag, "a.log", b"login at 12:00\n", age=1)
    put(sshd_tag, "b.csv", b"b")
    r = pull(ceti, sshd_tag, tmp_path, "-vv", check=0)
    assert r.returncode == 0, r.stderr
    assert (local(tmp_path) / "a.log").read_bytes() == b"login at 12:00\n"
    reads = [line.rsplit("/", 1)[1].split(" ")[0] for line in r.stderr.splitlines() if ": reading " in line]
    assert reads[-1] == "a.log" and sorted(reads) == ["a.log", "b.csv", "zz.csv"], reads


def test_vv_logs_every_ssh_step_and_never_the_password(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"a")
    r = pull(ceti, sshd_tag, tmp_path, "-vv", check=0)
    assert r.returncode == 0, r.stderr
    assert f"logged in, hostname {HOSTNAME}" in r.stderr
    assert f"listed {sshd_tag.data}" in r.stderr
    assert "reading " in r.stderr and "ran cd " in r.stderr
    assert sshd_tag.password not in r.stderr
    # -v alone: none of it.
    r = pull(ceti, sshd_tag, tmp_path, "-v", check=0)
    assert "logged in, hostname" not in r.stderr


def test_unreachable_tag_does_not_stop_the_others(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"a")
    r = ceti("whaletag", "-t", "127.0.0.1", "-t", "127.0.0.2", "--port", sshd_tag.port, "--user", sshd_tag.user,
             "--remote-dir", sshd_tag.data, "--data-dir", tmp_path / "pulled",
             env_extra={"CETI_TAG_PASSWORD": sshd_tag.password})
    assert r.returncode == 1
    assert "127.0.0.2" in r.stderr
    assert (local(tmp_path) / "a.csv").read_bytes() == b"a"


def test_usage_errors_exit_2(ceti, tmp_path):
    for args in ([], ["-l", "-a"], ["-l", "-c"], ["-a", "--subnet", "10.1.0.0/8"], ["-t", "x", "--require", "maybe"]):
        r = ceti("whaletag", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert len([l for l in r.stderr.splitlines() if l.startswith("ceti:")]) == 1, r.stderr


def test_clean_deletes_exactly_what_is_proven_uploaded(ceti, s3, bucket, sshd_tag, tmp_path):
    blobs = {f"{1700000000000 + i}.raw": os.urandom(1000 + i) for i in range(4)}
    for name, blob in blobs.items():
        put(sshd_tag, name, blob)
    put(sshd_tag, "growing.csv", b"writing", age=2)
    (sshd_tag.data / "config").mkdir()

    # Nothing uploaded yet: -c deletes nothing.
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--json", *s3_args(ceti, bucket), check=0)
    cleaned = {c["name"]: c for c in json.loads(r.stdout)["tags"][0]["cleaned"]}
    assert all(c["action"] == "kept" for c in cleaned.values()), cleaned
    assert cleaned["1700000000000.raw"]["reason"].startswith("not uploaded yet")
    assert sorted(p.name for p in sshd_tag.data.iterdir()) == sorted([*blobs, "growing.csv", "config"])

    # The same bytes uploaded from another folder are not this tag's copy: no proof.
    upload_dir = tmp_path / "up" / HOSTNAME
    upload_dir.mkdir(parents=True)
    uploaded = sorted(blobs)[:3]
    for name in uploaded:
        (upload_dir / name).write_bytes((local(tmp_path) / name).read_bytes())
    ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--prefix", "elsewhere",
         tmp_path / "up", check=0)
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--json", *s3_args(ceti, bucket), check=0)
    assert {c["action"] for c in json.loads(r.stdout)["tags"][0]["cleaned"]} == {"kept"}

    # Upload three of the pulled copies themselves (the fourth is set aside meanwhile).
    aside = tmp_path / "aside"
    aside.mkdir()
    (local(tmp_path) / sorted(blobs)[3]).rename(aside / sorted(blobs)[3])
    ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, tmp_path / "pulled", check=0)
    (aside / sorted(blobs)[3]).rename(local(tmp_path) / sorted(blobs)[3])

    # One uploaded file is rewritten on the tag with the same size and mtime: only the tag's own
    # SHA-256 can tell, and it is kept.
    changed = uploaded[2]
    proven = uploaded[:2]
    st = (sshd_tag.data / changed).stat()
    (sshd_tag.data / changed).write_bytes(bytes(b ^ 0xFF for b in blobs[changed]))
    os.utime(sshd_tag.data / changed, (st.st_atime, st.st_mtime))

    r = pull(ceti, sshd_tag, tmp_path, "-c", "--dry-run", "--json", *s3_args(ceti, bucket), check=0)
    would = sorted(c["name"] for c in json.loads(r.stdout)["tags"][0]["cleaned"] if c["action"] == "would-delete")
    assert would == proven
    assert all((sshd_tag.data / n).exists() for n in blobs)

    r = pull(ceti, sshd_tag, tmp_path, "-c", "--json", *s3_args(ceti, bucket), check=0)
    cleaned = {c["name"]: c for c in json.loads(r.stdout)["tags"][0]["cleaned"]}
    assert sorted(n for n, c in cleaned.items() if c["action"] == "deleted") == proven
    assert all(f"s3://{bucket}/" in cleaned[n]["reason"] for n in proven)
    assert "no longer matches" in cleaned[changed]["reason"]
    assert sorted(p.name for p in sshd_tag.data.iterdir()) == sorted(
        [n for n in blobs if n not in proven] + ["growing.csv", "config"])
    assert (sshd_tag.data / changed).read_bytes() == bytes(b ^ 0xFF for b in blobs[changed])


def test_clean_with_require_local_checks_the_local_copy(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"aaa")
    put(sshd_tag, "b.csv", b"bbb")
    pull(ceti, sshd_tag, tmp_path, check=0)
    (local(tmp_path) / "b.csv").write_bytes(b"bit rot")  # the local copy no longer proves anything
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--require", "local", "--json", check=0)
    cleaned = {c["name"]: c["action"] for c in json.loads(r.stdout)["tags"][0]["cleaned"]}
    assert cleaned == {"a.csv": "deleted", "b.csv": "kept"}
    assert not (sshd_tag.data / "a.csv").exists() and (sshd_tag.data / "b.csv").read_bytes() == b"bbb"


def test_a_file_that_fails_keeps_only_itself_on_the_tag(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"aaa")
    pull(ceti, sshd_tag, tmp_path, check=0)
    # A local name clash makes the next pull fail for one file: it keeps itself, never the
    # other, proven files of the tag (issue #11).
    put(sshd_tag, "b.csv", b"new on the tag")
    (local(tmp_path) / "b.csv").write_bytes(b"something else already here")
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--require", "local")
    assert r.returncode == 1
    assert "b.csv" in r.stderr and "already exists" in r.stderr
    assert not (sshd_tag.data / "a.csv").exists()
    assert (sshd_tag.data / "b.csv").read_bytes() == b"new on the tag"


def test_stop_capture_without_sudo_pulls_nothing_and_says_why(ceti, sshd_tag, tmp_path):
    # The loopback tag's user has no sudo: stopping the recorder fails, so nothing is pulled.
    put(sshd_tag, "a.csv", b"a")
    r = pull(ceti, sshd_tag, tmp_path, "--stop-capture")
    assert r.returncode == 1
    assert "ceti-tag-data-capture" in r.stderr and "nothing was pulled" in r.stderr, r.stderr
    assert not (local(tmp_path) / "a.csv").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_local_disk_is_one_clear_error_and_loses_nothing(ceti, sshd_tag, tmp_path):
    blob = os.urandom(3 * MiB)
    put(sshd_tag, "big.raw", blob)
    put(sshd_tag, "small.csv", b"fits")
    small_disk = tmp_path / "small-disk"
    small_disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small_disk)], check=True)
    try:
        r = ceti("whaletag", "-t", sshd_tag.host, "--port", sshd_tag.port, "--user", sshd_tag.user,
                 "--remote-dir", sshd_tag.data, "--data-dir", small_disk, "-c", "--require", "local",
                 env_extra={"CETI_TAG_PASSWORD": sshd_tag.password})
        assert r.returncode == 1
        errors = [l for l in r.stderr.splitlines() if "big.raw" in l]
        assert len(errors) == 1 and "space" in errors[0], r.stderr
        # big.raw keeps itself on the tag; small.csv goes only if its own copy was made and proven.
        assert (sshd_tag.data / "big.raw").read_bytes() == blob
        assert (sshd_tag.data / "small.csv").exists() or (small_disk / HOSTNAME / "small.csv").read_bytes() == b"fits"
        assert not (small_disk / HOSTNAME / "big.raw").exists()
    finally:
        subprocess.run(["umount", str(small_disk)], check=False)


def test_clean_accepts_an_uploaded_flac_as_proof_for_its_raw(ceti, bucket, sshd_tag, tmp_path):
    import struct
    raw = b"".join(struct.pack(">hhh", i % 300, -i % 200, i % 7) for i in range(48000))
    put(sshd_tag, "1700000000000.raw", raw)
    put(sshd_tag, "data_gps.csv", b"t,lat,lon\n1,2,3\n")
    pull(ceti, sshd_tag, tmp_path, check=0)
    ceti("compress", tmp_path / "pulled", check=0)  # raw → flac, csv → csv.gz, originals removed
    assert (local(tmp_path) / "1700000000000.flac").exists() and not (local(tmp_path) / "1700000000000.raw").exists()

    # Before the upload nothing is proven; after it, the tag's raw and csv are deleted.
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--json", *s3_args(ceti, bucket), check=0)
    assert {c["action"] for c in json.loads(r.stdout)["tags"][0]["cleaned"]} == {"kept"}
    ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, tmp_path / "pulled", check=0)
    r = pull(ceti, sshd_tag, tmp_path, "-c", "--json", *s3_args(ceti, bucket), check=0)
    cleaned = {c["name"]: c["action"] for c in json.loads(r.stdout)["tags"][0]["cleaned"]}
    assert cleaned == {"1700000000000.raw": "deleted", "data_gps.csv": "deleted"}
    assert list(sshd_tag.data.iterdir()) == []


def test_staging_is_the_landing_folders_name_and_data_dir_still_works(ceti, sshd_tag, tmp_path):
    put(sshd_tag, "a.csv", b"one")
    ceti("whaletag", "-t", sshd_tag.host, "--port", sshd_tag.port, "--user", sshd_tag.user, "--remote-dir", sshd_tag.data,
         "--staging", tmp_path / "staging", env_extra={"CETI_TAG_PASSWORD": sshd_tag.password}, check=0)
    assert (tmp_path / "staging" / HOSTNAME / "a.csv").read_bytes() == b"one"
    put(sshd_tag, "b.csv", b"two")
    r = pull(ceti, sshd_tag, tmp_path, "--json", check=0)  # --data-dir, the old name
    assert (local(tmp_path) / "b.csv").read_bytes() == b"two", r.stderr


SLOW_SHA256SUM = """#!/bin/sh
# A tag's sha256sum at 0.05 s per MB (a Pi Zero 2 hashes slowly): sleeps, notes each call, hashes.
total=0
for f in "$@"; do
    [ "$f" = "--" ] && continue
    total=$((total + $(stat -c %s "$f")))
done
echo "$total" >> "$HOME/sha256sum.calls"
sleep "$(awk "BEGIN { print $total / 1048576 * 0.05 }")"
exec /usr/bin/sha256sum "$@"
"""


def test_the_tags_checksum_overlaps_the_transfer(ceti, sshd_tag_systemd, tmp_path):
    """The tag's own sha256sum of file N runs (over a second connection) while file N+1 arrives:
    a slow checksum adds about the time of the last file's check, not of all of them."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from tcpproxy import start_tcp_proxy
    tag = sshd_tag_systemd
    sizes = [12 << 20] * 5
    for i, size in enumerate(sizes):
        put(tag, f"17000000{i}0000.flac", os.urandom(size))
    proxy = start_tcp_proxy("127.0.0.1", tag.port, delay=0.1)  # ~0.2 s RTT: ~1 s per file
    calls = Path("/home/cetitag/sha256sum.calls")
    calls.unlink(missing_ok=True)
    try:
        def timed(name: str) -> float:
            start = time.monotonic()
            ceti("whaletag", "-t", "127.0.0.1", "--port", proxy.port, "--user", tag.user, "--remote-dir", tag.data,
                 "--data-dir", tmp_path / name, env_extra={"CETI_TAG_PASSWORD": tag.password,
                                                           "CETI_LEDGER": tmp_path / f"{name}.sqlite"},
                 check=0, timeout=300)
            return time.monotonic() - start
        fast = timed("fast")
        wrapper = tag.dir / "bin" / "sha256sum"
        wrapper.write_text(SLOW_SHA256SUM)
        wrapper.chmod(0o755)
        slow = timed("slow")
    finally:
        proxy.stop()
    hashed = [int(x) for x in calls.read_text().split()]
    assert sum(hashed) == sum(sizes), hashed  # the slow checksum did run, on every byte
    last_check = sizes[-1] / (1 << 20) * 0.05
    all_checks = sum(sizes) / (1 << 20) * 0.05
    assert slow - fast <= last_check + 1.2, f"fast {fast:.1f} s, slow {slow:.1f} s: the checks did not overlap"
    assert all_checks - last_check > 1.2  # so a run without overlap would have failed the line above
    for i in range(len(sizes)):
        assert (tmp_path / "slow" / HOSTNAME / f"17000000{i}0000.flac").stat().st_size == sizes[i]
