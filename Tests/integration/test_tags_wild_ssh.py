"""Tags in the wild (#11): no crash, no silent skip.

- `-t` at a port that is not SSH (an HTTP banner; accept-and-close), and at a real sshd behind a
  proxy that resets the connection after N server bytes, N from 1 to past authentication: exit 1
  with one error line for that target (never a signal), and a good tag beside it is pulled whole
  (whaletag and ingest).
- Discovery on the simulated LAN (`tag_lan`): a tag whose host key changed and one that refuses
  the password are listed with their problem and make the command exit 1; the SSH host that is
  named but not a tag (laptop-backup) is never sent a login.
- `--identity` that cannot be read: exit 2 before any connection.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tcpproxy import start_tcp_proxy
from test_ingest import boto_objects


def put(tag, name: str, data: bytes) -> None:
    p = tag.data / name
    p.write_bytes(data)
    os.chmod(p, 0o644)
    t = time.time() - 600
    os.utime(p, (t, t))


def errors(r) -> list[str]:
    return [l for l in r.stderr.splitlines() if l.startswith("ceti: ")]


def whaletag(ceti, tag, tmp_path, *targets, extra=()):
    """Pulls into tmp_path/pulled with a ledger of its own there (each run pulls afresh)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    argv = ["whaletag", "--user", tag.user, "--data-dir", tmp_path / "pulled", "--json", *extra]
    for t in targets:
        argv += ["-t", t]
    return ceti(*argv, env_extra={"CETI_TAG_PASSWORD": tag.password, "CETI_LEDGER": tmp_path / "ledger.sqlite"},
                timeout=180)


class FakeService:
    """A TCP listener on loopback that is not SSH: `reply` bytes then close (b"": close at once)."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                if self.reply:
                    c.sendall(self.reply)
                    time.sleep(0.2)
            except OSError:
                pass
            finally:
                c.close()

    def stop(self):
        self.sock.close()


@pytest.fixture
def good(tag_pair):
    """tag_pair[0] with two files; its files by name."""
    t = tag_pair[0]
    files = {"notes_1.txt": os.urandom(70_000), "data_tag_info_1700000000.yaml": b"tag: good\n"}
    for n, b in files.items():
        put(t, n, b)
    return t, files


def assert_good_pulled(tmp_path, tag, files):
    got = {p.name: p.read_bytes() for p in (tmp_path / "pulled" / tag.name).iterdir()}
    assert got == files


def assert_one_error_for(r, needle: str):
    assert 0 <= r.returncode < 128, f"killed by a signal: {r.returncode}\n{r.stderr}"
    assert r.returncode == 1, r.stderr
    errs = errors(r)
    assert len(errs) == 1 and needle in errs[0], r.stderr


@pytest.mark.parametrize("reply", [b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello\n", b""],
                         ids=["http-banner", "close-at-once"])
def test_a_port_that_is_not_ssh_is_one_error_and_the_good_tag_is_pulled(ceti, good, tmp_path, reply):
    tag, files = good
    svc = FakeService(reply)
    try:
        bad = f"127.0.0.1:{svc.port}"
        r = whaletag(ceti, tag, tmp_path, bad)
        assert_one_error_for(r, bad)
        assert "not an SSH server" in r.stderr or "without sending an SSH banner" in r.stderr, r.stderr
        r = whaletag(ceti, tag, tmp_path / "pair", f"127.0.0.1:{tag.port}", bad)
        assert_one_error_for(r, bad)
        assert_good_pulled(tmp_path / "pair", tag, files)
        (doc_tag,) = [t for t in json.loads(r.stdout)["tags"] if t["tag"] == tag.name]
        assert doc_tag.get("error") is None
    finally:
        svc.stop()


def session_bytes(ceti, tag, tmp_path) -> int:
    """How many bytes a whole `-t` session of TAG sends its client (empty data folder)."""
    p = start_tcp_proxy("127.0.0.1", tag.port)
    try:
        r = whaletag(ceti, tag, tmp_path / "measure", f"127.0.0.1:{p.port}")
        assert r.returncode == 0, r.stderr
        time.sleep(0.2)
        return p.down
    finally:
        p.stop()


def test_resets_anywhere_in_the_session_are_one_error_and_never_a_crash(ceti, good, tag_pair, tmp_path):
    tag, files = good
    other = tag_pair[1]
    total = session_bytes(ceti, other, tmp_path)
    assert total > 1500, total
    spread = sorted({1, 2, 4, 10, 20, 21, 40, 100, 300, 700, 1000, 1200}
                    | {total * k // 20 for k in range(1, 20)})
    seen = []
    for n in spread:
        p = start_tcp_proxy("127.0.0.1", other.port, reset_after_down=n)
        try:
            bad = f"127.0.0.1:{p.port}"
            r = whaletag(ceti, tag, tmp_path / f"alone-{n}", bad)
            assert 0 <= r.returncode < 128, f"N={n}: killed by a signal ({r.returncode})\n{r.stderr}"
            if n <= total * 8 // 10:
                assert r.returncode == 1, f"N={n} of {total}: {r.stderr}"
            if r.returncode == 1:
                assert len(errors(r)) == 1 and bad in errors(r)[0], f"N={n}: {r.stderr}"
                seen.append(errors(r)[0])
            # Beside a good tag: the good one is pulled completely.
            pulled = tmp_path / f"pair-{n}"
            r = whaletag(ceti, tag, pulled, f"127.0.0.1:{tag.port}", bad)
            assert 0 <= r.returncode < 128, f"N={n}: killed by a signal ({r.returncode})\n{r.stderr}"
            if n <= total * 8 // 10:
                assert r.returncode == 1 and len(errors(r)) == 1 and bad in errors(r)[0], f"N={n}: {r.stderr}"
            assert_good_pulled(pulled, tag, files)
        finally:
            p.stop()
    # The failures name the stage: the handshake, the login, or the connection lost later.
    assert any("handshake" in e for e in seen) and any("lost" in e for e in seen), seen


@pytest.mark.parametrize("n", [1, 100, 1000, "auth"])
def test_ingest_pulls_and_uploads_the_good_tag_beside_a_resetting_one(ceti, s3, bucket, good, tag_pair, tmp_path, n):
    tag, files = good
    other = tag_pair[1]
    if n == "auth":
        n = session_bytes(ceti, other, tmp_path) // 2
    p = start_tcp_proxy("127.0.0.1", other.port, reset_after_down=n)
    try:
        bad = f"127.0.0.1:{p.port}"
        r = ceti("ingest", "--user", tag.user, "--staging", tmp_path / "staging", "--endpoint-url", ceti.s3env.endpoint,
                 "--bucket", bucket, "-t", f"127.0.0.1:{tag.port}", "-t", bad,
                 env_extra={"CETI_TAG_PASSWORD": tag.password}, timeout=300)
    finally:
        p.stop()
    assert 0 <= r.returncode < 128, f"killed by a signal ({r.returncode})\n{r.stderr}"
    assert r.returncode == 1, r.stderr
    assert len(errors(r)) == 1 and bad in errors(r)[0], r.stderr
    uploaded = {k.rsplit("/", 1)[-1] for k in boto_objects(s3, bucket) if "/_runs/" not in k}
    assert set(files) <= uploaded, (uploaded, r.stderr)


def test_an_identity_that_cannot_be_read_is_a_usage_error(ceti, tmp_path):
    for argv in (["whaletag", "-t", "127.0.0.1:9"], ["ingest", "-t", "127.0.0.1:9", "--bucket", "b",
                                                     "--endpoint-url", ceti.s3env.endpoint]):
        r = ceti(*argv, "--identity", "/nonexistent/key", timeout=60)
        assert r.returncode == 2, r.stderr
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and "/nonexistent/key" in lines[0], r.stderr
    r = ceti("whaletag", "-t", "127.0.0.1:9", "--identity", tmp_path, timeout=60)
    assert r.returncode == 2 and str(tmp_path) in r.stderr, r.stderr


# ---- discovery on the LAN --------------------------------------------------------------
HUB_HOSTS = Path("/etc/netns/ceti-hub/hosts")


@pytest.fixture
def named_lan(tag_lan):
    """The LAN with names for its hosts, as DNS or mDNS would give them: `ip netns exec` puts
    /etc/netns/ceti-hub/hosts over /etc/hosts inside the hub, where ceti runs."""
    if HUB_HOSTS.parent.exists():
        pytest.skip(f"{HUB_HOSTS.parent} exists already: not ours to change")
    HUB_HOSTS.parent.mkdir(parents=True)
    try:
        lines = ["127.0.0.1 localhost"] + [f"{t.address} {t.name}" for t in tag_lan.tags]
        lines.append(f"{tag_lan.non_tag_ssh} {tag_lan.non_tag_ssh_host.hostname}")
        HUB_HOSTS.write_text("\n".join(lines) + "\n")
        tag_lan.reset_data()
        yield tag_lan
    finally:
        HUB_HOSTS.unlink(missing_ok=True)
        HUB_HOSTS.parent.rmdir()
        tag_lan.reset_data()


def lan_run(lan, ceti, *args, password=None):
    env = {**ceti.env, "CETI_TAG_PASSWORD": password or lan.password}
    return lan.hub_exec([ceti.bin, "whaletag", "--user", lan.user, *args], env=env, timeout=180)


def password_attempts(log: Path) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [l for l in text.splitlines() if "password" in l.lower() or "invalid user" in l.lower()
            or "authentication" in l.lower()]


def test_discovery_lists_refused_tags_and_never_logs_in_to_a_named_non_tag(named_lan, ceti, tmp_path):
    lan = named_lan
    changed, refused = lan.tags[0], lan.tags[1]
    put(refused, "1700000000000.raw", b"r" * 100)
    # The first tag's name is pinned to another key (a reflash, or another device using its name).
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "other"], check=True)
    pinned = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    known = ceti.xdg_config / "ceti" / "known_hosts"
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text(f"{changed.name} {pinned}\n")
    host9_log = lan.non_tag_ssh_host.dir / "sshd.log"
    before = len(password_attempts(host9_log))

    # A wrong password: the second tag refuses it.
    r = lan_run(lan, ceti, "-l", "--json", password="wrong-password")
    assert r.returncode == 1, r.stderr
    listed = {t["name"]: t for t in json.loads(r.stdout)}
    assert sorted(listed) == sorted(t.name for t in lan.tags), r.stdout
    assert listed[changed.name]["address"] == changed.address
    assert "host key" in listed[changed.name]["problem"], listed
    assert listed[refused.name]["address"] == refused.address
    assert "refused" in listed[refused.name]["problem"], listed
    errs = errors(r)
    assert len(errs) == 2 and any(changed.name in e for e in errs) and any(refused.address in e for e in errs), r.stderr

    text = lan_run(lan, ceti, "-l", password="wrong-password")
    assert text.returncode == 1
    assert "PROBLEM" in text.stdout and changed.name in text.stdout and refused.name in text.stdout, text.stdout

    # -a: both tags get their error line, nothing is pulled, exit 1.
    r = lan_run(lan, ceti, "-a", "--data-dir", tmp_path / "pulled", "--json", password="wrong-password")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert sorted(t["tag"] for t in doc["tags"]) == sorted(t.name for t in lan.tags), r.stdout
    assert all(t.get("error") for t in doc["tags"]), r.stdout
    assert len(errors(r)) == 2, r.stderr

    # With the right password the second tag is read; the changed key still stops the first.
    r = lan_run(lan, ceti, "-l", "--json")
    assert r.returncode == 1, r.stderr
    listed = {t["name"]: t for t in json.loads(r.stdout)}
    assert listed[refused.name].get("problem") is None and listed[refused.name]["files"] == 1
    assert "host key" in listed[changed.name]["problem"]

    # The SSH host named laptop-backup was never sent a user name or password.
    time.sleep(0.5)
    assert password_attempts(host9_log)[before:] == [], host9_log.read_text()
    # (The changed tag was never sent one either: its key is checked first.)
    changed_log = changed.dir / "sshd.log"
    assert not [l for l in password_attempts(changed_log) if lan.hub_address in l], changed_log.read_text()
