"""Fixtures for the integration tests.

Always run through the S3 wrapper, which starts a throwaway SeaweedFS and exports its
credentials:

    bash scripts/with-s3.sh .venv/bin/pytest -q Tests/integration

Fixtures
  s3env      (session) the server: .endpoint, .access_key, .secret_key, .region,
             .buckets (pre-created by with-s3.sh), .aws_env (dict of AWS_* variables)
  s3         (session) boto3 S3 client on the server (path-style, us-east-1)
  s3_client  factory: s3_client(endpoint_url=None, **botocore_config) -> a boto3 client;
             for clients pointed at a proxy; no retries unless you pass retries=...
  bucket     a fresh, empty bucket name per test; emptied (objects and multipart
             uploads) and deleted afterwards
  ceti       runner for the binary: ceti(*args, env_extra=None, timeout=600, check=None,
             input=None, cwd=None) -> subprocess.CompletedProcess (text, captured)
  proxy      factory: proxy(corrupt_nth_body=None, upstream=None, stall_nth_body=None,
             stall_seconds=0, skew_first=0, deny_file=None, down_file=None) -> ProxyHandle with
             .port, .endpoint, .log_path, .entries(), .stop(); all stopped at teardown

Environment: CETI_TEST_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (from
with-s3.sh); CETI_BIN overrides the binary (default $REPO/.build/debug/ceti).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
S3PROXY = HERE / "s3proxy.py"
REGION = "us-east-1"

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from s3proxy import read_log, start_proxy  # noqa: E402


# ---- the server ------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Env:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION
    buckets: tuple[str, ...] = ()

    @property
    def aws_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    @property
    def hostport(self) -> str:
        return self.endpoint.split("://", 1)[-1].rstrip("/")


@pytest.fixture(scope="session")
def s3env() -> S3Env:
    endpoint = os.environ.get("CETI_TEST_ENDPOINT", "").strip()
    ak = os.environ.get("AWS_ACCESS_KEY_ID", "")
    sk = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not endpoint or not ak or not sk:
        pytest.fail(
            "CETI_TEST_ENDPOINT / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set: the "
            "integration tests must run through the S3 wrapper, e.g.\n"
            "    bash scripts/with-s3.sh .venv/bin/pytest -q Tests/integration",
            pytrace=False,
        )
    buckets = tuple(b for b in os.environ.get("CETI_TEST_BUCKETS", "").replace(" ", ",").split(",") if b)
    return S3Env(endpoint=endpoint.rstrip("/"), access_key=ak, secret_key=sk,
                 region=os.environ.get("AWS_REGION") or REGION, buckets=buckets)


def make_s3_client(s3env: S3Env, endpoint_url: str | None = None, **config):
    """A boto3 S3 client with path-style addressing. `config` goes to botocore Config."""
    s3cfg = {"addressing_style": "path", **config.pop("s3", {})}
    cfg = Config(s3=s3cfg, **config)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or s3env.endpoint,
        region_name=s3env.region,
        aws_access_key_id=s3env.access_key,
        aws_secret_access_key=s3env.secret_key,
        config=cfg,
    )


@pytest.fixture(scope="session")
def s3(s3env):
    return make_s3_client(s3env, retries={"mode": "standard", "max_attempts": 3})


@pytest.fixture
def s3_client(s3env):
    """Factory for extra clients, e.g. one that talks through a proxy. No retries by
    default, so that every request shows up in a proxy log exactly once."""

    def make(endpoint_url: str | None = None, **config):
        config.setdefault("retries", {"total_max_attempts": 1})
        return make_s3_client(s3env, endpoint_url, **config)

    return make


def empty_bucket(s3, name: str) -> None:
    """Abort the bucket's multipart uploads and delete its objects (and versions)."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for u in page.get("Uploads", []) or []:
            try:
                s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
            except ClientError as e:
                if e.response["Error"]["Code"] != "NoSuchUpload":
                    raise
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys += [{"Key": o["Key"]} for o in page.get("Contents", []) or []]
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            for v in (page.get("Versions", []) or []) + (page.get("DeleteMarkers", []) or []):
                if v.get("VersionId") and v["VersionId"] != "null":
                    keys.append({"Key": v["Key"], "VersionId": v["VersionId"]})
    except ClientError:
        pass  # versioning not supported/enabled
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=name, Delete={"Objects": keys[i:i + 1000], "Quiet": True})


@pytest.fixture
def bucket(s3, request):
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:20].strip("-")
    name = re.sub(r"-+", "-", f"ceti-t-{test}-{uuid.uuid4().hex[:10]}")
    s3.create_bucket(Bucket=name)
    yield name
    try:
        empty_bucket(s3, name)
        s3.delete_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("NoSuchBucket",):
            raise


# ---- the binary ------------------------------------------------------------------------
class CetiRunner:
    """Runs the ceti binary with a private ledger, HOME and XDG dirs under tmp_path, and
    the test server's AWS credentials. Inherited AWS_*, CETI_* and XDG_* variables are
    dropped so that a developer's own settings never leak into a test."""

    def __init__(self, tmp_path: Path, s3env: S3Env):
        self.bin = Path(os.environ.get("CETI_BIN") or REPO / ".build" / "debug" / "ceti")
        self.root = tmp_path / "ceti-env"
        self.home = self.root / "home"
        self.xdg_data = self.root / "xdg-data"
        self.xdg_config = self.root / "xdg-config"
        self.xdg_cache = self.root / "xdg-cache"
        self.xdg_state = self.root / "xdg-state"
        self.ledger = self.root / "ledger.sqlite"
        for d in (self.home, self.xdg_data, self.xdg_config, self.xdg_cache, self.xdg_state):
            d.mkdir(parents=True, exist_ok=True)
        self.s3env = s3env
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "CETI_", "XDG_"))}
        env.update(s3env.aws_env)
        env.update({
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.xdg_data),
            "XDG_CONFIG_HOME": str(self.xdg_config),
            "XDG_CACHE_HOME": str(self.xdg_cache),
            "XDG_STATE_HOME": str(self.xdg_state),
            "CETI_LEDGER": str(self.ledger),
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        self.env = env

    def __call__(self, *args, env_extra: dict | None = None, timeout: float = 600,
                 check: bool | int | None = None, input: str | None = None,
                 cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run `ceti ARGS`. env_extra adds variables (a value of None removes one).
        check: None/False = no check, True = exit status must be 0, an int = must be it."""
        if not self.bin.exists():
            pytest.fail(f"ceti binary not found at {self.bin}: run `swift build` "
                        "(or point CETI_BIN at it)", pytrace=False)
        env = dict(self.env)
        for k, v in (env_extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        cmd = [str(self.bin), *(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args)]
        cp = subprocess.run(
            cmd, env=env, cwd=cwd or self.root, input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True, text=True, errors="replace", timeout=timeout,
        )
        want = None
        if check is True:
            want = 0
        elif isinstance(check, int) and not isinstance(check, bool):
            want = check
        if want is not None and cp.returncode != want:
            raise AssertionError(
                f"{' '.join(cmd)}\nexited {cp.returncode}, expected {want}\n"
                f"--- stdout ---\n{cp.stdout}\n--- stderr ---\n{cp.stderr}")
        return cp


@pytest.fixture
def ceti(tmp_path, s3env) -> CetiRunner:
    return CetiRunner(tmp_path, s3env)


# ---- the proxy -------------------------------------------------------------------------
@dataclass
class ProxyHandle:
    port: int
    log_path: Path
    upstream: str
    _stop: object = field(repr=False, default=None)
    stopped: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def entries(self) -> list[dict]:
        """Log entries so far (one per finished request, in finishing order)."""
        return read_log(self.log_path)

    def wait_for(self, pred, timeout: float = 10.0) -> list[dict]:
        """Entries once pred(entries) is true (the log is written when a request ends,
        which can be just after the client saw its response)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.entries()
            if pred(entries):
                return entries
            if time.monotonic() > deadline:
                raise AssertionError(f"proxy log never matched; entries: {entries}")
            time.sleep(0.05)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._stop()


@pytest.fixture
def proxy(s3env, tmp_path):
    started: list[ProxyHandle] = []

    def start(corrupt_nth_body: int | None = None, upstream: str | None = None,
              stall_nth_body: int | None = None, stall_seconds: float = 0, skew_first: int = 0,
              deny_file: Path | None = None, down_file: Path | None = None, rot_key: str | None = None) -> ProxyHandle:
        log = tmp_path / f"proxy{len(started) + 1}.jsonl"
        up = upstream or s3env.hostport
        port, stop = start_proxy(up, log, corrupt_nth_body=corrupt_nth_body,
                                 stall_nth_body=stall_nth_body, stall_seconds=stall_seconds,
                                 skew_first=skew_first, deny_file=deny_file, down_file=down_file, rot_key=rot_key)
        h = ProxyHandle(port=port, log_path=log, upstream=up, _stop=stop)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


# ---- simulated whale tags (scripts/tag-sim.sh) ------------------------------------------
# sshd_tag   (function) one real OpenSSH sshd on 127.0.0.1 (tag-sim.sh loopback): .host,
#            .port, .user ("cetitag"), .password ("ceticeti"), .data (the tag's data dir:
#            pass it as --remote-dir, the host's /data is not ours), .client_key,
#            .host_key_pub, .fingerprint, .known_hosts_line(), .ssh_argv(cmd, key=False),
#            .run(cmd) (a shell command on the tag as its user, over ssh+sshpass),
#            .sftp(batch), .scan_fingerprint() (ssh-keyscan), .regen_host_key() (new host
#            key, sshd restarted on the same port), .log_text(). Skipped unless root.
# tag_lan    (module) tags in network namespaces (tag-sim.sh lan DIR 2): .tags (LanHost:
#            .name = hostname wt-…, .address, .data, .namespace, .fingerprint; also t["name"]),
#            .non_tag_ssh / .non_ssh (addresses; *_host for the LanHost), .hub_exec(args,
#            env=None, env_extra=None, timeout=60, ...) -> CompletedProcess run inside the
#            hub namespace (the host namespace never talks to 10.77.0.x), .ssh(address, cmd),
#            .reset_data(). Skipped (tests fall back to loopback sshd) where namespaces
#            don't work.
# Their working dirs live under a world-traversable base (REPO/.tmp/tag-sim, or
# /tmp/ceti-tag-sim), not in tmp_path: sshd reads authorized_keys as the tag user, who
# cannot traverse pytest's 0700 tmp dirs. tmp_path/<name> links to the dir; the logs are
# copied to tmp_path/<name>-logs at teardown and the dir is removed.
import functools  # noqa: E402
import json as _json  # noqa: E402
import shutil  # noqa: E402

TAG_USER = "cetitag"
TAG_PASSWORD = "ceticeti"
SSH_COMMON_OPTS = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                   "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]
SSH_PASSWORD_OPTS = ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
                     "-o", "NumberOfPasswordPrompts=1"]


def _ssh_key_opts(key: Path) -> list[str]:
    return ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no"]


from tagsim import TAG_SIM  # noqa: E402
from tagsim import run as _tag_sim  # noqa: E402
from tagsim import workdir as _new_tag_workdir  # noqa: E402


def _tag_workdir(tmp_path: Path, name: str) -> Path:
    d = _new_tag_workdir(name)
    try:
        (tmp_path / name).symlink_to(d)
    except OSError:
        pass
    return d


def _tag_teardown(d: Path, tmp_path: Path, name: str) -> None:
    try:
        _tag_sim("stop", d, timeout=120)
    finally:
        logs = tmp_path / f"{name}-logs"
        for f in d.rglob("*.log"):
            if f.is_file():
                target = logs / f.relative_to(d)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
        for f in ("sshd_config", "lan.json", "port"):
            if (d / f).is_file():
                logs.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(d / f, logs / f)
        shutil.rmtree(d, ignore_errors=True)
        try:
            (tmp_path / name).unlink()
        except OSError:
            pass


def _host_key_fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    return out.split()[1]


def _check(cp: subprocess.CompletedProcess, check: bool) -> subprocess.CompletedProcess:
    if check and cp.returncode != 0:
        raise AssertionError(f"{cp.args}\nexited {cp.returncode}\n--- stdout ---\n{cp.stdout}"
                             f"\n--- stderr ---\n{cp.stderr}")
    return cp


@dataclass
class SshdTag:
    """A real OpenSSH sshd on loopback standing in for a whale tag."""
    dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = TAG_USER
    password: str = TAG_PASSWORD

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def host_key_pub(self) -> Path:
        return self.dir / "host_key.pub"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def fingerprint(self) -> str:
        """SHA256:… of the current host key (from the key file)."""
        return _host_key_fingerprint(self.host_key_pub)

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {' '.join(self.host_key_pub.read_text().split()[:2])}"

    def ssh_argv(self, cmd: str | None = None, *, key: bool = False) -> list[str]:
        """argv of an ssh to the tag as its user (password via sshpass, or key=True)."""
        auth = _ssh_key_opts(self.client_key) if key else SSH_PASSWORD_OPTS
        argv = ["ssh", *SSH_COMMON_OPTS, *auth, "-p", str(self.port), f"{self.user}@{self.host}"]
        if not key:
            argv = ["sshpass", "-p", self.password, *argv]
        return argv + ([cmd] if cmd is not None else [])

    def run(self, cmd: str, *, key: bool = False, timeout: float = 30, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run the shell command CMD on the tag as its user; CompletedProcess (text)."""
        cp = subprocess.run(self.ssh_argv(cmd, key=key), input=input,
                            stdin=subprocess.DEVNULL if input is None else None,
                            capture_output=True, text=True, errors="replace", timeout=timeout)
        return _check(cp, check)

    def sftp(self, batch: str, *, key: bool = False, timeout: float = 60,
             check: bool = False) -> subprocess.CompletedProcess:
        """Run an sftp batch (sftp -b -) against the tag."""
        auth = _ssh_key_opts(self.client_key) if key else ["-o", "BatchMode=no", *SSH_PASSWORD_OPTS]
        # -o BatchMode=no before -b: sftp -b forces batch mode, which forbids passwords.
        argv = ["sftp", *auth, "-b", "-", *SSH_COMMON_OPTS, "-P", str(self.port), f"{self.user}@{self.host}"]
        if not key:
            argv = ["sshpass", "-p", self.password, *argv]
        cp = subprocess.run(argv, input=batch, capture_output=True, text=True, errors="replace",
                            timeout=timeout)
        return _check(cp, check)

    def scan_fingerprint(self, timeout: float = 10) -> str:
        """SHA256:… of the ed25519 host key the server presents now (ssh-keyscan)."""
        scan = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(self.port), self.host],
                              capture_output=True, text=True, timeout=timeout)
        fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=scan.stdout,
                            capture_output=True, text=True, timeout=timeout)
        if fp.returncode != 0 or not fp.stdout.strip():
            raise AssertionError(f"ssh-keyscan of {self.host}:{self.port} got no key: {scan.stderr}")
        return fp.stdout.split()[1]

    def regen_host_key(self) -> str:
        """Replace the host key and restart sshd on the same port; the new fingerprint."""
        _tag_sim("rekey", self.dir, timeout=60)
        return self.fingerprint

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        _tag_sim("stop", self.dir, timeout=120)


@pytest.fixture
def sshd_tag(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("sshd_tag needs root (creates user cetitag, runs sshd on loopback)")
    d = _tag_workdir(tmp_path, "tag")
    try:
        _tag_sim("loopback", d, timeout=60)
        tag = SshdTag(dir=d, port=int((d / "port").read_text()))
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        _tag_teardown(d, tmp_path, "tag")
        pytest.fail(f"could not start the loopback sshd: {e}", pytrace=False)
    yield tag
    _tag_teardown(d, tmp_path, "tag")


# sshd_tag_systemd (function) an sshd_tag whose user finds a fake `sudo` (runs its arguments),
#            `systemctl` and `systemd-run` first on its PATH (tag-sim.sh systemd): state in
#            .dir/"systemd" (ceti-tag-data-capture.state: active/inactive; timers/NAME.pid:
#            armed timers that really fire; events.log). Skipped unless root.
@pytest.fixture
def sshd_tag_systemd(sshd_tag):
    try:
        _tag_sim("systemd", sshd_tag.dir, timeout=60)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"could not give the loopback tag a fake systemd: {e}", pytrace=False)
    return sshd_tag


@dataclass
class LanHost:
    namespace: str
    address: str
    dir: Path
    hostname: str | None = None
    data: Path | None = None
    fingerprint: str | None = None
    host_key_pub: Path | None = None
    port: int = 22

    @property
    def name(self) -> str | None:
        return self.hostname

    def __getitem__(self, key: str):  # t["name"], t["address"], t["data"] work too
        return getattr(self, key)

    @classmethod
    def from_json(cls, h: dict) -> "LanHost":
        return cls(namespace=h["namespace"], address=h["address"], dir=Path(h["dir"]),
                   hostname=h.get("hostname"), data=Path(h["data"]) if h.get("data") else None,
                   fingerprint=h.get("host_key_fingerprint"),
                   host_key_pub=Path(h["host_key_pub"]) if h.get("host_key_pub") else None,
                   port=int(h.get("port", 22)))


class TagLan:
    """Tags (and decoys) in network namespaces; talk to them only through hub_exec."""

    def __init__(self, d: Path):
        self.dir = d
        self.info = _json.loads((d / "lan.json").read_text())
        self.hub = self.info["hub"]["namespace"]
        self.hub_address = self.info["hub"]["address"]
        self.subnet = self.info["hub"]["subnet"]
        self.user = self.info["user"]
        self.password = self.info["password"]
        self.client_key = Path(self.info["client_key"])
        self.tags = [LanHost.from_json(h) for h in self.info["tags"]]
        self.non_tag_ssh_host = LanHost.from_json(self.info["non_tag_ssh"])
        self.non_ssh_host = LanHost.from_json(self.info["non_ssh"])
        self.non_tag_ssh = self.non_tag_ssh_host.address
        self.non_ssh = self.non_ssh_host.address

    def tag(self, name_or_address: str) -> LanHost:
        for t in self.tags:
            if name_or_address in (t.hostname, t.address, t.namespace):
                return t
        raise KeyError(name_or_address)

    def hub_exec(self, args, *, env: dict | None = None, env_extra: dict | None = None,
                 timeout: float = 60, check: bool = False, input: str | None = None,
                 cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run ARGS (a list, or a string for sh -c) inside the hub namespace, with ENV
        (default: this process's environment) plus ENV_EXTRA (None removes a variable)."""
        if isinstance(args, (str, bytes)):
            args = ["sh", "-c", args]
        full_env = dict(os.environ if env is None else env)
        for k, v in (env_extra or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = str(v)
        argv = ["bash", str(TAG_SIM), "hub-exec",
                *(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args)]
        cp = subprocess.run(argv, env=full_env, cwd=cwd, input=input,
                            stdin=subprocess.DEVNULL if input is None else None,
                            capture_output=True, text=True, errors="replace", timeout=timeout)
        return _check(cp, check)

    def ssh_argv(self, address: str, cmd: str | None = None, *, key: bool = False) -> list[str]:
        auth = _ssh_key_opts(self.client_key) if key else SSH_PASSWORD_OPTS
        argv = ["ssh", *SSH_COMMON_OPTS, *auth, f"{self.user}@{address}"]
        if not key:
            argv = ["sshpass", "-p", self.password, *argv]
        return argv + ([cmd] if cmd is not None else [])

    def ssh(self, address: str, cmd: str, *, key: bool = False, timeout: float = 30,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run the shell command CMD on the host at ADDRESS (from the hub) as the tag user."""
        return self.hub_exec(self.ssh_argv(address, cmd, key=key), timeout=timeout, check=check)

    def reset_data(self) -> None:
        """Empty every tag's data dir (from the host side: these are host directories)."""
        for t in self.tags:
            if t.data is None:
                continue
            for p in t.data.iterdir():
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()


@functools.lru_cache(maxsize=1)
def _netns_available() -> tuple[bool, str]:
    try:
        cp = subprocess.run(["bash", str(TAG_SIM), "available"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return cp.returncode == 0, (cp.stderr.strip() or f"exit {cp.returncode}")


@pytest.fixture(scope="module")
def tag_lan(tmp_path_factory):
    ok, reason = _netns_available()
    if not ok:
        pytest.skip(f"network namespaces unavailable: {reason}; tests fall back to loopback sshd")
    tmp = tmp_path_factory.mktemp("tag-lan")
    d = _tag_workdir(tmp, "lan")
    try:
        _tag_sim("lan", d, 2, timeout=120)
        lan = TagLan(d)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as e:
        _tag_teardown(d, tmp, "lan")
        pytest.fail(f"could not start the simulated LAN: {e}", pytrace=False)
    yield lan
    _tag_teardown(d, tmp, "lan")


# tag_pair  (function) two loopback sshd tags whose `hostname` answers wt-0a1b2c3d and
#           wt-b827eb0a0b0c (each in a UTS namespace of its own): SshdTag objects with .name.
#           Skipped unless root.
TAG_PAIR_NAMES = ("wt-0a1b2c3d", "wt-b827eb0a0b0c")


@pytest.fixture
def tag_pair(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("tag_pair needs root (creates user cetitag, runs sshd in UTS namespaces)")
    probe = subprocess.run(["unshare", "--uts", "--mount", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"tag_pair needs UTS and mount namespaces (unshare: {probe.stderr.strip()})")
    started = []
    try:
        for i, name in enumerate(TAG_PAIR_NAMES):
            d = _tag_workdir(tmp_path, f"tag{i}")
            started.append((d, f"tag{i}"))
            _tag_sim("loopback", d, name, timeout=60)
            tag = SshdTag(dir=d, port=int((d / "port").read_text()))
            tag.name = name
            started[-1] = (d, f"tag{i}", tag)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        for s in started:
            _tag_teardown(s[0], tmp_path, s[1])
        pytest.fail(f"could not start the loopback tags: {e}", pytrace=False)
    yield [s[2] for s in started]
    for s in started:
        _tag_teardown(s[0], tmp_path, s[1])
