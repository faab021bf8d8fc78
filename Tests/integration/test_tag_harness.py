"""Smoke tests of the simulated whale tags (scripts/tag-sim.sh and the sshd_tag / tag_lan
fixtures). They need no ceti binary and no S3 server.

The host namespace never sends traffic to the LAN's 10.77.0.x addresses (workplace rule):
everything that talks to the LAN runs inside the hub namespace (tag_lan.hub_exec)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SSH_COMMON_OPTS, TAG_SIM, _tag_sim, _tag_teardown, _tag_workdir

TAG_NAME = re.compile(r"^wt-[a-z0-9]{6,}$")
LAN_NAMESPACES = {"ceti-hub", "ceti-host9", "ceti-web8"}


def procs_using(d: Path) -> list[str]:
    """Command lines of live processes whose arguments mention D/."""
    out = []
    needle = f"{d}/"
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state in ("Z", "X"):
            continue
        if any(needle in a.decode(errors="replace") for a in args):
            out.append(f"{p.name}: {b' '.join(args).decode(errors='replace')}")
    return out


def netns_list() -> set[str]:
    cp = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in cp.stdout.splitlines() if line.strip()}


def ours(names: set[str]) -> set[str]:
    return {n for n in names if n in LAN_NAMESPACES or re.fullmatch(r"ceti-tag\d+", n)}


# ---- loopback sshd ------------------------------------------------------------------------
def test_loopback_password_login(sshd_tag):
    assert sshd_tag.host == "127.0.0.1" and 2222 <= sshd_tag.port <= 2299
    assert (sshd_tag.user, sshd_tag.password) == ("cetitag", "ceticeti")
    cp = sshd_tag.run("id -un; pwd; echo \"$0\"", check=True)
    user, home, shell = cp.stdout.split()
    assert user == "cetitag" and home == "/home/cetitag" and shell.endswith("bash"), cp.stdout
    assert sshd_tag.data.is_dir() and (sshd_tag.data.stat().st_mode & 0o777) == 0o777


def test_loopback_wrong_password_is_refused(sshd_tag):
    argv = sshd_tag.ssh_argv("true")
    argv[argv.index("-p") + 1] = "wrong-password"  # sshpass -p PASSWORD
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    # ssh gives up after one prompt (255, "Permission denied"); sshpass says 5 when it sees a re-prompt
    assert cp.returncode in (5, 255) and ("Permission denied" in cp.stderr or cp.returncode == 5), \
        (cp.returncode, cp.stderr)
    # and the server keeps serving
    assert sshd_tag.run("echo ok", check=True).stdout == "ok\n"


def test_loopback_client_key(sshd_tag):
    cp = sshd_tag.run("id -un", key=True, check=True)
    assert cp.stdout == "cetitag\n"
    assert (sshd_tag.dir / "authorized_keys").read_text() == (sshd_tag.dir / "client_key.pub").read_text()


def test_loopback_sftp(sshd_tag, tmp_path):
    data = sshd_tag.data
    body = os.urandom(300_000)
    (data / "1700000000000.raw").write_bytes(body)  # written by the test (root), read by the tag user
    local = tmp_path / "local"
    local.mkdir()
    upload = tmp_path / "up.csv"
    upload.write_text("a,b\n1,2\n")
    batch = (f'get "{data}/1700000000000.raw" "{local}/got.raw"\n'
             f'put "{upload}" "{data}/data_battery.csv"\n'
             f'ls -l "{data}"\n')
    cp = sshd_tag.sftp(batch, check=True)
    assert (local / "got.raw").read_bytes() == body
    assert (data / "data_battery.csv").read_text() == "a,b\n1,2\n"
    assert "1700000000000.raw" in cp.stdout
    # the client key works for SFTP too, and the tag user may delete files in its data dir
    sshd_tag.sftp(f'rm "{data}/1700000000000.raw"\n', key=True, check=True)
    assert not (data / "1700000000000.raw").exists()


def test_loopback_home_is_checkable(sshd_tag):
    """The acceptance test checks that a hostile name creates nothing in the home dir."""
    name = "x; touch pwned"
    (sshd_tag.data / name).write_text("hostile\n")
    cp = sshd_tag.run("ls -A ~; test ! -e ~/pwned && test ! -e pwned && echo clean", check=True)
    assert cp.stdout.rstrip().endswith("clean"), cp.stdout
    cp = sshd_tag.run(f"cat {sshd_tag.data}/'{name}'", check=True)
    assert cp.stdout == "hostile\n"


def test_regen_host_key(sshd_tag, tmp_path):
    before = sshd_tag.scan_fingerprint()
    assert before == sshd_tag.fingerprint
    known = tmp_path / "known_hosts"
    known.write_text(sshd_tag.known_hosts_line() + "\n")
    strict = ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]

    def pinned_login() -> subprocess.CompletedProcess:
        argv = ["ssh", "-F", "/dev/null", *strict, "-o", "ConnectTimeout=5", "-i", str(sshd_tag.client_key),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-p", str(sshd_tag.port),
                f"{sshd_tag.user}@{sshd_tag.host}", "echo pinned-ok"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    assert pinned_login().stdout == "pinned-ok\n"
    port = sshd_tag.port
    after = sshd_tag.regen_host_key()
    assert after != before
    assert sshd_tag.scan_fingerprint() == after
    assert sshd_tag.port == port and int((sshd_tag.dir / "port").read_text()) == port
    cp = pinned_login()
    assert cp.returncode != 0 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in cp.stderr, cp.stderr
    assert sshd_tag.run("echo still-ok", check=True).stdout == "still-ok\n"


def test_loopback_stop_is_clean_and_idempotent(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    d = _tag_workdir(tmp_path, "lifecycle")
    try:
        _tag_sim("loopback", d)
        port = int((d / "port").read_text())
        # a session left open must not outlive stop
        argv = ["sshpass", "-p", "ceticeti", "ssh", *SSH_COMMON_OPTS, "-o", "PubkeyAuthentication=no",
                "-p", str(port), "cetitag@127.0.0.1", "sleep 60"]
        sess = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            assert procs_using(d)
            _tag_sim("stop", d)
            assert sess.wait(timeout=15) != 0  # the server side closed it
        finally:
            if sess.poll() is None:
                sess.kill()
                sess.wait()
        assert procs_using(d) == []
        _tag_sim("stop", d)  # twice is fine
        assert not (d / "sshd.pid").exists()
    finally:
        _tag_teardown(d, tmp_path, "lifecycle")


# ---- LAN in network namespaces ------------------------------------------------------------
def netns_or_skip() -> None:
    cp = subprocess.run(["bash", str(TAG_SIM), "available"], capture_output=True, text=True, timeout=30)
    if cp.returncode != 0:
        pytest.skip(f"network namespaces unavailable: {cp.stderr.strip()}; tests fall back to loopback sshd")


def test_lan_lifecycle_stale_takeover_and_stop(tmp_path, request):
    """A killed run's namespaces are taken over by the next `lan`; stopping the old dir
    then leaves the new LAN alone; stop removes everything and is idempotent."""
    netns_or_skip()
    d1 = _tag_workdir(tmp_path, "lan1")  # (also reaps what a killed run left)
    d2 = _tag_workdir(tmp_path, "lan2")
    try:
        if ours(netns_list()):
            pytest.skip(f"a simulated LAN is running already: {sorted(ours(netns_list()))}")
        _tag_sim("lan", d1, 3)
        assert ours(netns_list()) == LAN_NAMESPACES | {"ceti-tag1", "ceti-tag2", "ceti-tag3"}
        # as if the run owning d1 had been killed: d1 is never stopped before this
        _tag_sim("lan", d2, 1)
        assert ours(netns_list()) == LAN_NAMESPACES | {"ceti-tag1"}
        assert procs_using(d1) == []
        _tag_sim("stop", d1)  # must not touch d2's LAN
        assert ours(netns_list()) == LAN_NAMESPACES | {"ceti-tag1"}
        cp = subprocess.run(["bash", str(TAG_SIM), "hub-exec", "sshpass", "-p", "ceticeti", "ssh",
                             *SSH_COMMON_OPTS, "-o", "PubkeyAuthentication=no", "cetitag@10.77.0.11", "hostname"],
                            capture_output=True, text=True, timeout=30)
        assert cp.stdout == "wt-1a2b3c4d\n", cp.stderr
        _tag_sim("stop", d2)
        assert ours(netns_list()) == set()
        assert procs_using(d2) == []
        _tag_sim("stop", d2)
    finally:
        _tag_teardown(d1, tmp_path, "lan1")
        _tag_teardown(d2, tmp_path, "lan2")
    assert ours(netns_list()) == set()


def test_lan_layout(tag_lan):
    assert [t.name for t in tag_lan.tags] == ["wt-1a2b3c4d", "wt-b827eb1a2b3c"]
    assert [t["address"] for t in tag_lan.tags] == ["10.77.0.11", "10.77.0.12"]
    assert all(TAG_NAME.match(t["name"]) and t["data"].is_dir() for t in tag_lan.tags)
    assert tag_lan.non_tag_ssh == "10.77.0.9" and tag_lan.non_ssh == "10.77.0.8"
    assert tag_lan.hub == "ceti-hub" and tag_lan.subnet == "10.77.0.0/24"
    summary = json.loads((tag_lan.dir / "lan.json").read_text())
    assert summary["non_tag_ssh"]["hostname"] == "laptop-backup"
    assert LAN_NAMESPACES | {"ceti-tag1", "ceti-tag2"} <= netns_list()


def test_lan_tags_answer_with_their_names_and_own_data(tag_lan):
    tag_lan.reset_data()
    for t in tag_lan.tags:
        (t.data / f"only-on-{t.name}.csv").write_text(t.name + "\n")
    for t in tag_lan.tags:
        cp = tag_lan.ssh(t.address, "hostname; ls -A /data", check=True)
        lines = cp.stdout.split()
        assert lines == [t.name, f"only-on-{t.name}.csv"], cp.stdout
        # the key works as well, and the tag user may write and delete in /data
        tag_lan.ssh(t.address, "echo x >/data/tmp.txt && rm /data/tmp.txt", key=True, check=True)
    tag_lan.reset_data()
    assert all(not any(t.data.iterdir()) for t in tag_lan.tags)


def test_lan_host_keys_match_the_summary(tag_lan):
    for t in [*tag_lan.tags, tag_lan.non_tag_ssh_host]:
        cp = tag_lan.hub_exec(["ssh-keyscan", "-T", "5", "-t", "ed25519", t.address], check=True)
        fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=cp.stdout,
                            capture_output=True, text=True, check=True, timeout=10).stdout.split()[1]
        assert fp == t.fingerprint, t
    assert len({t.fingerprint for t in tag_lan.tags}) == len(tag_lan.tags)  # a key per tag


def test_lan_non_tag_ssh_host(tag_lan):
    cp = tag_lan.ssh(tag_lan.non_tag_ssh, "hostname", check=True)
    assert cp.stdout == "laptop-backup\n"
    assert not TAG_NAME.match(cp.stdout.strip())


def test_lan_non_ssh_service_on_port_22(tag_lan):
    probe = ("import socket, sys\n"
             "s = socket.create_connection((sys.argv[1], 22), timeout=3)\n"
             "s.settimeout(3)\n"
             "sys.stdout.write(repr(s.recv(64)))\n")
    cp = tag_lan.hub_exec([sys.executable, "-c", probe, tag_lan.non_ssh], check=True, timeout=30)
    first = eval(cp.stdout)  # noqa: S307 - a bytes repr we printed
    assert first and not first.startswith(b"SSH-"), first


def test_lan_hub_exec_env_and_interfaces(tag_lan):
    cp = tag_lan.hub_exec("echo \"$CETI_PROBE\"; ip -o -4 addr show br0", env_extra={"CETI_PROBE": "kept"},
                          check=True)
    assert cp.stdout.startswith("kept\n") and "10.77.0.1/24" in cp.stdout, cp.stdout


def test_host_namespace_is_not_on_the_lan(tag_lan):
    """The host namespace has no interface or address on 10.77.0.0/24 (inspected, no
    traffic sent): only the hub namespace can reach the tags."""
    net = ipaddress.ip_network(tag_lan.subnet)
    cp = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True, timeout=10)
    for link in json.loads(cp.stdout):
        assert link["ifname"] not in ("br0",) and not link["ifname"].startswith(("vtag", "vhost9", "vweb8"))
        for a in link.get("addr_info", []):
            if a.get("family") == "inet":
                assert ipaddress.ip_address(a["local"]) not in net, link
    cp = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True, timeout=10)
    for r in json.loads(cp.stdout):
        dst = r.get("dst", "")
        if dst and dst != "default":
            assert not ipaddress.ip_network(dst, strict=False).overlaps(net), r
