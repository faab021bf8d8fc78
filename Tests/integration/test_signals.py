"""SIGINT / SIGTERM / kill -9 against real servers: a loopback sshd tag with a fake systemd (the
`sshd_tag_systemd` fixture: fake sudo/systemctl/systemd-run whose timers really fire) and
SeaweedFS (through the `proxy` fixture to make an upload slow)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tcpproxy import start_tcp_proxy
from test_s3upload import keys
from test_whaletag import put

MiB = 1 << 20
HOSTNAME = socket.gethostname()  # what `hostname` answers on the loopback "tag"
CAPTURE = "ceti-tag-data-capture"


# ---- the tag's fake systemd ----------------------------------------------------------------
def service_state(tag) -> str:
    return (tag.dir / "systemd" / f"{CAPTURE}.state").read_text().strip()


def events(tag) -> list[list[str]]:
    """events.log of the fake systemd, each line split: [time, action, name, ...]."""
    text = (tag.dir / "systemd" / "events.log").read_text()
    return [line.split() for line in text.splitlines() if line.strip()]


def armed_timers(tag) -> list[str]:
    return sorted(p.stem for p in (tag.dir / "systemd" / "timers").glob("*.pid"))


def wait_until(pred, timeout: float, what: str, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


# ---- pulling ---------------------------------------------------------------------------------
def pull_args(tag, tmp_path, *extra, port=None) -> list:
    return ["whaletag", "-t", tag.host, "--port", port or tag.port, "--user", tag.user,
            "--remote-dir", tag.data, "--data-dir", tmp_path / "pulled", *extra]


def tag_env(tag) -> dict:
    return {"CETI_TAG_PASSWORD": tag.password}


def local(tmp_path) -> Path:
    return tmp_path / "pulled" / HOSTNAME


def start(ceti, args, env_extra=None) -> subprocess.Popen:
    env = dict(ceti.env)
    env.update({k: str(v) for k, v in (env_extra or {}).items()})
    return subprocess.Popen([str(ceti.bin), *(str(a) for a in args)], env=env, cwd=ceti.root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace")


def part_size(folder: Path) -> int:
    """Bytes in the partial downloads in FOLDER (`.ceti-part-*`, or an older ceti's `*.part`)."""
    total = 0
    for p in [*folder.glob(".ceti-part-*"), *folder.glob("*.part")]:
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def interrupted_lines(stderr: str, name: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith(f"interrupted ({name})")]


def test_stop_capture_normal_run_restarts_the_recorder_and_cancels_every_timer(ceti, sshd_tag_systemd, tmp_path):
    tag = sshd_tag_systemd
    blob = os.urandom(64 * MiB)
    put(tag, "1700000000000.raw", blob)
    put(tag, "data_battery.csv", b"t,v\n1,2\n")
    grace = 3
    # A pull that lasts longer than the grace period: the switch must be renewed, never fire.
    proxy = start_tcp_proxy("127.0.0.1", tag.port, delay=0.05)
    try:
        t0 = time.monotonic()
        r = ceti(*pull_args(tag, tmp_path, "--stop-capture", "--capture-grace", grace, "--json", port=proxy.port),
                 env_extra=tag_env(tag), check=0)
        took = time.monotonic() - t0
    finally:
        proxy.stop()
    doc = json.loads(r.stdout)
    assert {f["name"]: f["action"] for f in doc["tags"][0]["files"]} == {
        "1700000000000.raw": "pulled", "data_battery.csv": "pulled"}
    assert (local(tmp_path) / "1700000000000.raw").read_bytes() == blob
    assert took > grace + 1, f"the pull took {took:.1f} s: too fast to show that the switch is renewed"

    assert service_state(tag) == "active"
    ev = events(tag)
    actions = [e[1] for e in ev]
    # Armed before the recorder was stopped; started again by ceti (not by a timer) at the end.
    assert actions[0] == "arm" and actions[1] == "stop" and ev[1][2] == CAPTURE, ev
    starts = [e for e in ev if e[1] == "start"]
    assert len(starts) == 1 and starts[0][2] == CAPTURE and "timer" not in starts[0], ev
    assert "fire" not in actions, ev
    armed = [e[2] for e in ev if e[1] == "arm"]
    assert len(armed) >= 2, f"the switch was not renewed during a {took:.1f} s pull: {ev}"
    assert sorted(e[2] for e in ev if e[1] == "cancel") == sorted(armed), ev
    assert armed_timers(tag) == []
    # The timer is cancelled after the recorder is running again.
    assert max(i for i, e in enumerate(ev) if e[1] == "cancel") > actions.index("start"), ev


def test_sigterm_mid_pull_restarts_the_recorder_exits_143_and_resumes(ceti, sshd_tag_systemd, tmp_path):
    tag = sshd_tag_systemd
    blob = os.urandom(96 * MiB)
    put(tag, "1700000000000.raw", blob)
    part = local(tmp_path)
    proxy = start_tcp_proxy("127.0.0.1", tag.port, delay=0.05)
    try:
        proc = start(ceti, pull_args(tag, tmp_path, "--stop-capture", "--capture-grace", "60", port=proxy.port),
                     env_extra=tag_env(tag))
        try:
            wait_until(lambda: part_size(part) > 2 * MiB or proc.poll() is not None, 60, "the pull to start")
            assert proc.poll() is None, "the pull ended before it could be interrupted"
            assert service_state(tag) == "inactive"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
            took = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        proxy.stop()
    assert proc.returncode == 143, (proc.returncode, err)
    lines = interrupted_lines(err, "SIGTERM")
    assert len(lines) == 1 and "rerun to resume" in lines[0], err
    # Stopped at the next chunk, not by the process's last-resort timeout.
    assert "stopped after the current file" in lines[0] and took < 8, (took, err)
    assert "failed" not in err, err
    # The recorder runs again as soon as ceti is gone, started by ceti; no timer is left.
    assert service_state(tag) == "active"
    ev = events(tag)
    starts = [e for e in ev if e[1] == "start"]
    assert len(starts) == 1 and "timer" not in starts[0], ev
    assert "fire" not in [e[1] for e in ev] and armed_timers(tag) == [], ev
    # The partial download stays for the next run, which resumes it.
    have = part_size(part)
    assert 0 < have < len(blob), have
    assert not (local(tmp_path) / "1700000000000.raw").exists()

    r = ceti(*pull_args(tag, tmp_path, "--json"), env_extra=tag_env(tag), check=0)
    (f,) = json.loads(r.stdout)["tags"][0]["files"]
    assert f["action"] == "resumed" and f["bytes_received"] == len(blob) - have, f
    assert f["sha256"] == hashlib.sha256(blob).hexdigest()
    assert (local(tmp_path) / "1700000000000.raw").read_bytes() == blob


def test_kill_9_mid_pull_the_tag_restarts_its_recorder_within_the_grace_period(ceti, sshd_tag_systemd, tmp_path):
    tag = sshd_tag_systemd
    put(tag, "1700000000000.raw", os.urandom(96 * MiB))
    part = local(tmp_path)
    grace = 4
    proxy = start_tcp_proxy("127.0.0.1", tag.port, delay=0.05)
    try:
        proc = start(ceti, pull_args(tag, tmp_path, "--stop-capture", "--capture-grace", grace, port=proxy.port),
                     env_extra=tag_env(tag))
        try:
            wait_until(lambda: part_size(part) > 2 * MiB or proc.poll() is not None, 60, "the pull to start")
            assert proc.poll() is None, "the pull ended before it could be killed"
            proc.kill()
            proc.wait(timeout=10)
            killed = time.monotonic()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        # ceti had no chance to restart it.
        assert service_state(tag) == "inactive"
        # The last timer armed (at most `grace` s ago) fires on its own.
        wait_until(lambda: service_state(tag) == "active", grace + 5, "the tag's timer to start the recorder")
        assert time.monotonic() - killed <= grace + 5
    finally:
        proxy.stop()
    ev = events(tag)
    starts = [e for e in ev if e[1] == "start"]
    assert starts and all("timer" in e for e in starts), ev
    assert "fire" in [e[1] for e in ev]


# ---- uploading -------------------------------------------------------------------------------
def test_sigint_mid_upload_exits_130_keeps_the_ledger_true_and_a_rerun_completes(ceti, s3, bucket, proxy, tmp_path):
    root = tmp_path / "up"
    files = {}
    for i in range(8):
        p = root / "wt-sig" / f"f{i}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        files[p] = os.urandom(MiB + i)
        p.write_bytes(files[p])
    # The third body stalls for 4 s: SIGINT arrives while it is in flight.
    px = proxy(stall_nth_body=3, stall_seconds=4)
    proc = start(ceti, ["s3upload", "--bucket", bucket, "--endpoint-url", px.endpoint, "-j", "1", root])
    try:
        wait_until(lambda: len([e for e in px.entries() if e["method"] == "PUT" and e.get("status") == 200]) >= 2
                   or proc.poll() is not None, 60, "two uploads")
        assert proc.poll() is None, "the upload ended before it could be interrupted"
        time.sleep(0.5)  # the third PUT is now stalled in the proxy
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, out, err)
    lines = interrupted_lines(err, "SIGINT")
    assert len(lines) == 1 and "rerun to resume" in lines[0], err
    # No new file was started after the signal: the one in flight finished, nothing more.
    puts = [e for e in px.entries() if e["method"] == "PUT"]
    assert len(puts) == 3, puts
    in_s3 = keys(s3, bucket)
    assert len(in_s3) == 3, sorted(in_s3)

    # The ledger claims exactly what S3 holds, with the same size and ETag.
    with sqlite3.connect(f"file:{ceti.ledger}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT key, size, etag FROM objects WHERE bucket = ?", (bucket,)).fetchall()
    assert sorted(k for k, _, _ in rows) == sorted(in_s3)
    for k, size, etag in rows:
        assert in_s3[k]["Size"] == size and in_s3[k]["ETag"].strip('"') == etag, (k, size, etag, in_s3[k])

    # A rerun uploads the other five and proves the first three without sending them again.
    px2 = proxy()
    r = ceti("s3upload", "--bucket", bucket, "--endpoint-url", px2.endpoint, "--json", root, check=0)
    actions = sorted(f["action"] for f in json.loads(r.stdout)["files"])
    assert actions == ["skipped"] * 3 + ["uploaded"] * 5, actions
    assert len([e for e in px2.entries() if e["method"] == "PUT"]) == 5
    in_s3 = keys(s3, bucket)
    assert len(in_s3) == len(files)
    for p, blob in files.items():
        (key,) = [k for k in in_s3 if k.endswith("/wt-sig/" + p.name)]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(blob).hexdigest(), key
