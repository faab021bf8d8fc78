"""Smoke tests of the integration harness itself: the S3 server from with-s3.sh, the
fixtures, and the forwarding proxy (s3proxy.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from conftest import S3PROXY


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def body_of(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def test_server_and_buckets(s3, s3env):
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(s3env.buckets) <= names, (s3env.buckets, names)
    assert s3env.endpoint == "http://127.0.0.1:8333"


def test_bucket_fixture_is_fresh(s3, bucket):
    assert len(bucket) <= 63 and bucket == bucket.lower()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    # leave debris behind: the fixture must clean it up
    s3.put_object(Bucket=bucket, Key="left/over", Body=b"x")
    s3.create_multipart_upload(Bucket=bucket, Key="unfinished")


def test_server_rejects_bad_md5(s3, bucket):
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ContentMD5=md5_b64(b"hellO"))
    assert ei.value.response["Error"]["Code"] == "BadDigest"


@pytest.mark.parametrize("size", [0, 300_001, 6 * 1024 * 1024 + 7])
def test_proxy_round_trip(proxy, s3_client, s3, bucket, size):
    p = proxy()
    c = s3_client(p.endpoint)
    body = body_of(size)
    key = "dir/obj with space.bin"
    c.put_object(Bucket=bucket, Key=key, Body=body, ContentMD5=md5_b64(body))
    assert c.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    # and directly, bypassing the proxy
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size

    entries = p.wait_for(lambda es: len(es) >= 2)
    assert len(entries) == 2, entries
    put, get = entries
    assert put["method"] == "PUT" and put["path"].startswith(f"/{bucket}/dir/obj%20with%20space.bin")
    assert put["body_bytes"] == size and put["status"] == 200 and put["complete"] is True
    assert put["corrupted"] is False
    assert get["method"] == "GET" and get["body_bytes"] == 0 and get["status"] == 200
    assert get["conn"] == put["conn"]  # keep-alive towards the client...


def test_proxy_query_and_listing(proxy, s3_client, bucket):
    p = proxy()
    c = s3_client(p.endpoint)
    c.put_object(Bucket=bucket, Key="a/1", Body=b"1")
    keys = [o["Key"] for o in c.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]]
    assert keys == ["a/1"]
    entries = p.wait_for(lambda es: len(es) >= 2)
    assert entries[1]["method"] == "GET" and "list-type=2" in entries[1]["path"]
    assert "prefix=a%2F" in entries[1]["path"]


def test_proxy_corrupts_nth_body_once(proxy, s3_client, s3, bucket):
    p = proxy(corrupt_nth_body=2)
    c = s3_client(p.endpoint)
    first, second = body_of(1000, 1), body_of(2 * 1024 * 1024, 2)
    c.put_object(Bucket=bucket, Key="first", Body=first, ContentMD5=md5_b64(first))
    c.head_object(Bucket=bucket, Key="first")  # no body: not counted
    with pytest.raises(ClientError) as ei:
        c.put_object(Bucket=bucket, Key="second", Body=second, ContentMD5=md5_b64(second))
    assert ei.value.response["Error"]["Code"] == "BadDigest"
    # only once: the retry goes through untouched
    c.put_object(Bucket=bucket, Key="second", Body=second, ContentMD5=md5_b64(second))
    assert s3.get_object(Bucket=bucket, Key="second")["Body"].read() == second

    entries = p.wait_for(lambda es: len(es) >= 4)
    assert [(e["method"], e["status"], e["corrupted"]) for e in entries] == [
        ("PUT", 200, False), ("HEAD", 200, False), ("PUT", 400, True), ("PUT", 200, False)]
    assert entries[2]["body_bytes"] == len(second) and entries[2]["complete"] is True


def test_proxy_corrupt_first_put_is_bad_digest(proxy, s3_client, bucket):
    p = proxy(corrupt_nth_body=1)
    c = s3_client(p.endpoint)
    body = body_of(100_000)
    with pytest.raises(ClientError) as ei:
        c.put_object(Bucket=bucket, Key="k", Body=body, ContentMD5=md5_b64(body))
    assert ei.value.response["Error"]["Code"] == "BadDigest"
    (e,) = p.wait_for(lambda es: len(es) >= 1)
    assert e["corrupted"] is True and e["status"] == 400 and e["body_bytes"] == len(body)


def _raw_request(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    return s


def _read_response(s: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def test_proxy_logs_client_disconnect_mid_body(proxy, bucket):
    p = proxy()
    head = (f"PUT /{bucket}/partial HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n").encode()
    s = _raw_request(p.port, head + b"x" * 12345)
    time.sleep(0.3)
    s.close()
    (e,) = p.wait_for(lambda es: len(es) >= 1)
    assert e["method"] == "PUT" and e["path"] == f"/{bucket}/partial"
    assert e["body_bytes"] == 12345 and e["complete"] is False and e["status"] is None


def test_proxy_keep_alive_and_expect_continue(proxy, bucket):
    p = proxy()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    # two unsigned requests on one connection: both answered (403), one connection
    for _ in range(2):
        s.sendall(f"GET /{bucket}?list-type=2 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        resp = _read_response(s)
        assert resp.startswith(b"HTTP/1.1 403"), resp[:200]
        # drain the body
        length = int([ln.split(b":")[1] for ln in resp.split(b"\r\n")
                      if ln.lower().startswith(b"content-length:")][0])
        rest = len(resp) - resp.index(b"\r\n\r\n") - 4
        while rest < length:
            rest += len(s.recv(65536))
    # Expect: 100-continue on an unsigned PUT: either the server refuses before the
    # body (final 403 relayed, connection closed) or says 100 and refuses after it.
    s.sendall((f"PUT /{bucket}/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
               "Content-Type: text/plain\r\nExpect: 100-continue\r\n\r\n").encode())
    resp = _read_response(s)
    if resp.startswith(b"HTTP/1.1 100"):
        s.sendall(b"hello")
        resp = resp.split(b"\r\n\r\n", 1)[1] or _read_response(s)
    assert resp.startswith(b"HTTP/1.1 403"), resp[:200]
    s.close()
    entries = p.wait_for(lambda es: len(es) >= 3)
    assert [e["status"] for e in entries] == [403, 403, 403]
    assert len({e["conn"] for e in entries}) == 1


def test_proxy_chunked_request_body(proxy, bucket):
    p = proxy()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall((f"PUT /{bucket}/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "Content-Type: text/plain\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n").encode())
    resp = _read_response(s)
    assert resp.startswith(b"HTTP/1.1 "), resp
    s.close()
    (e,) = p.wait_for(lambda es: len(es) >= 1)
    assert e["body_bytes"] == 11 and e["complete"] is True and e["status"] is not None


def test_proxy_as_subprocess(tmp_path, s3env, s3_client, bucket):
    log, port_file = tmp_path / "p.jsonl", tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, str(S3PROXY), "--listen-port", "0", "--upstream", s3env.hostport,
         "--log", str(log), "--port-file", str(port_file), "--corrupt-nth-body", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.05)
        port = int(port_file.read_text())
        c = s3_client(f"http://127.0.0.1:{port}")
        body = b"abc" * 1000
        with pytest.raises(ClientError) as ei:
            c.put_object(Bucket=bucket, Key="k", Body=body, ContentMD5=md5_b64(body))
        assert ei.value.response["Error"]["Code"] == "BadDigest"
        c.put_object(Bucket=bucket, Key="k", Body=body, ContentMD5=md5_b64(body))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["status"], e["corrupted"]) for e in entries] == [(400, True), (200, False)]


def test_ceti_fixture_isolates_environment(ceti, tmp_path, s3env):
    fake = tmp_path / "fake-ceti"
    fake.write_text("#!/bin/sh\nenv\necho \"args:$*\"\nexit 3\n")
    fake.chmod(0o755)
    ceti.bin = fake
    cp = ceti("upload", "a b", env_extra={"EXTRA": "1"}, check=3)
    env = dict(line.split("=", 1) for line in cp.stdout.splitlines() if "=" in line)
    assert "args:upload a b" in cp.stdout
    for k in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "CETI_LEDGER"):
        assert env[k].startswith(str(tmp_path)), (k, env[k])
    assert env["AWS_ACCESS_KEY_ID"] == s3env.access_key and env["AWS_REGION"] == "us-east-1"
    assert env["EXTRA"] == "1" and "CETI_TEST_ENDPOINT" not in env
    with pytest.raises(AssertionError, match="exited 3, expected 0"):
        ceti(check=True)


def test_ceti_binary_runs(ceti):
    if not ceti.bin.exists():
        pytest.skip(f"{ceti.bin} not built")
    cp = ceti("--help", timeout=60)
    assert cp.returncode == 0 or cp.stdout or cp.stderr
