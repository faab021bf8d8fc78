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
             stall_seconds=0, skew_first=0) -> ProxyHandle with
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
              stall_nth_body: int | None = None, stall_seconds: float = 0, skew_first: int = 0) -> ProxyHandle:
        log = tmp_path / f"proxy{len(started) + 1}.jsonl"
        up = upstream or s3env.hostport
        port, stop = start_proxy(up, log, corrupt_nth_body=corrupt_nth_body,
                                 stall_nth_body=stall_nth_body, stall_seconds=stall_seconds,
                                 skew_first=skew_first)
        h = ProxyHandle(port=port, log_path=log, upstream=up, _stop=stop)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()
