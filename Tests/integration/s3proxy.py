#!/usr/bin/env python3
"""A small HTTP/1.1 forwarding proxy for the integration tests.

    python s3proxy.py --listen-port 0 --upstream 127.0.0.1:8333 --log FILE \
        [--corrupt-nth-body N] [--port-file F] [--listen-host 127.0.0.1]

Clients use it as their S3 endpoint (http://127.0.0.1:PORT). It forwards each request
unchanged to the upstream (request line and every header byte for byte, Host included,
because the request is signed for it) and relays the response.

* One thread per client connection, with its own keep-alive connection to the upstream
  (re-opened when the upstream has closed it).
* Request bodies framed by Content-Length are streamed; chunked request bodies are read
  whole, then forwarded.
* `Expect: 100-continue`: the head is forwarded at once; the upstream's `100 Continue`
  is relayed, and a final response it sends before the body is relayed too (the
  connection is then closed). A client that sends its body without waiting is fine.
* `--corrupt-nth-body N` flips one bit (XOR 0x01) of the middle byte of the body of
  the N-th request that has a non-empty body (1-based, counted over all connections
  in the order their bodies start), once.
* Log: one JSON object per line and request, appended when the request is finished:
    method, path (request target, with query), body_bytes (body bytes received from
    the client; data bytes for a chunked body), status (final status relayed, or
    null), complete (the whole declared body was received from the client), conn
    (connection number, from 1), corrupted (bool), and "error" when something broke.
  A client that disconnects in the middle of a body gives complete=false,
  status=null and the number of bytes that did arrive.
* `deny_file` (importable only): while that file exists, every request is answered 403
  AccessDenied (after its body is read), as S3 answers a revoked key; logged with
  "error": "denied".
* `down_file` (importable only): while that file exists, S3 is unreachable: a new connection
  is reset at once and a request on an open one gets no answer (the connection is closed), as
  when the uplink drops; logged with "error": "down".
* SIGTERM / SIGINT: stops cleanly, exit status 0.

Importable: `start_proxy(upstream, log_path, corrupt_nth_body=None)` runs it on threads
in this process and returns `(port, stop_fn)`.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socket
import sys
import threading
import time

IO_SIZE = 256 * 1024
HEAD_LIMIT = 256 * 1024
UPSTREAM_TIMEOUT = 600.0


class PeerGone(Exception):
    """The peer closed the connection (or reset it) before we had what we needed."""


class Conn:
    """A socket with a read buffer."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(IO_SIZE)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line; None on EOF before any byte."""
        while True:
            while self.buf[:2] == b"\r\n":  # stray CRLFs between messages
                del self.buf[:2]
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > HEAD_LIMIT:
                raise PeerGone("message head too large")
            if not self._fill():
                if self.buf.strip():
                    raise PeerGone("connection closed inside a message head")
                return None

    def read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[: i + 2])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > HEAD_LIMIT:
                raise PeerGone("line too long")
            if not self._fill():
                raise PeerGone("connection closed inside a line")

    def read_some(self, n: int) -> bytes:
        """Up to n bytes (at least one); b'' on EOF."""
        if not self.buf and not self._fill():
            return b""
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        return chunk

    def readable(self, timeout: float | None = 0) -> bool:
        if self.buf:
            return True
        r, _, _ = select.select([self.sock], [], [], timeout)
        return bool(r)

    def send(self, data) -> None:
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as e:
            raise PeerGone(f"send failed: {e}") from e

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Message:
    def __init__(self, head: bytes):
        lines = head[:-4].split(b"\r\n")
        self.start = lines[0].decode("latin-1")
        self.headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers.append((name.strip().lower().decode("latin-1"),
                                 value.strip().decode("latin-1")))

    def get(self, name: str) -> str | None:
        value = None
        for k, v in self.headers:
            if k == name:
                value = v
        return value

    def tokens(self, name: str) -> set[str]:
        out: set[str] = set()
        for k, v in self.headers:
            if k == name:
                out.update(t.strip().lower() for t in v.split(",") if t.strip())
        return out

    def chunked(self) -> bool:
        te = self.get("transfer-encoding")
        return bool(te) and te.split(",")[-1].strip().lower() == "chunked"

    def content_length(self) -> int | None:
        cl = self.get("content-length")
        if cl is None:
            return None
        try:
            return int(cl.strip())
        except ValueError:
            raise PeerGone(f"bad Content-Length {cl!r}")

    def keep_alive(self, version: str) -> bool:
        conn = self.tokens("connection")
        if version.upper() == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def _parse_upstream(upstream: str) -> tuple[str, int]:
    u = upstream.strip()
    for scheme in ("http://", "HTTP://"):
        if u.startswith(scheme):
            u = u[len(scheme):]
    u = u.split("/", 1)[0]
    host, sep, port = u.rpartition(":")
    if not sep:
        return u, 80
    return host.strip("[]"), int(port)


class Upstream:
    """One keep-alive connection to the upstream, re-opened when it went stale."""

    def __init__(self, addr: tuple[str, int], registry):
        self.addr = addr
        self.conn: Conn | None = None
        self.registry = registry

    def ensure(self) -> Conn:
        if self.conn is not None:
            # Readable while idle means EOF (the server closed it) or stray bytes:
            # either way the connection is unusable.
            if self.conn.buf or select.select([self.conn.sock], [], [], 0)[0]:
                self.close()
        if self.conn is None:
            sock = socket.create_connection(self.addr, timeout=30)
            sock.settimeout(UPSTREAM_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = Conn(sock)
            self.registry.add(sock)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.registry.discard(self.conn.sock)
            self.conn.close()
            self.conn = None


class _Registry:
    """Open sockets, so that stop() can shut them down."""

    def __init__(self):
        self.lock = threading.Lock()
        self.socks: set[socket.socket] = set()

    def add(self, s):
        with self.lock:
            self.socks.add(s)

    def discard(self, s):
        with self.lock:
            self.socks.discard(s)

    def shutdown_all(self):
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _ClientGoneMidBody(Exception):
    def __init__(self, received: int):
        super().__init__(f"client disconnected after {received} body bytes")
        self.received = received


class Proxy:
    def __init__(self, upstream: str, log_path: str, corrupt_nth_body: int | None = None,
                 listen_host: str = "127.0.0.1", listen_port: int = 0,
                 stall_nth_body: int | None = None, stall_seconds: float = 0, skew_first: int = 0,
                 deny_file: str | None = None, down_file: str | None = None, rot_key: str | None = None):
        self.upstream = _parse_upstream(upstream)
        # GETs of a path holding this string get the first byte of their body flipped: bytes that
        # rotted at rest while the object's size, ETag and metadata (HEAD) stayed as they were.
        self.rot_key = rot_key
        self.deny_file = deny_file
        self.down_file = down_file
        # Answer the first N requests as AWS does to a client whose clock is off (SeaweedFS never
        # checks the clock, so this error path cannot be reached against it).
        self.skew_left = skew_first
        self.corrupt_nth_body = corrupt_nth_body
        # Stop reading the N-th body for a while after its first chunk: a link that goes silent.
        self.stall_nth_body = stall_nth_body
        self.stall_seconds = stall_seconds
        self.lsock = socket.create_server((listen_host, listen_port), backlog=64)
        self.port = self.lsock.getsockname()[1]
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8")
        self.count_lock = threading.Lock()
        self.bodies_seen = 0
        self.conn_seq = 0
        self.registry = _Registry()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accept_thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        self.accept_thread = threading.Thread(target=self._accept_loop, name="s3proxy-accept",
                                              daemon=True)
        self.accept_thread.start()

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.accept_thread is not None:
            self.accept_thread.join(5)
        try:
            self.lsock.close()
        except OSError:
            pass
        self.registry.shutdown_all()
        deadline = time.monotonic() + 5
        for t in list(self.threads):
            t.join(max(0.0, deadline - time.monotonic()))
        with self.log_lock:
            self.log_file.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.2)
                if not r:
                    continue
                csock, _ = self.lsock.accept()
            except OSError:
                if self.stopping.is_set():
                    break
                time.sleep(0.05)
                continue
            if self.down_file and os.path.exists(self.down_file):
                # A reset, as from a link that is gone.
                csock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                csock.close()
                self._log({"method": None, "path": None, "status": None, "error": "down"})
                continue
            csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn_seq += 1
            t = threading.Thread(target=self._serve_client, args=(csock, self.conn_seq),
                                 name=f"s3proxy-conn-{self.conn_seq}", daemon=True)
            self.threads = [x for x in self.threads if x.is_alive()]
            self.threads.append(t)
            self.registry.add(csock)
            t.start()

    # ---- log ----------------------------------------------------------------------
    def _log(self, entry: dict) -> None:
        line = json.dumps(entry, sort_keys=False) + "\n"
        with self.log_lock:
            if not self.log_file.closed:
                self.log_file.write(line)
                self.log_file.flush()

    def _next_body_is_corrupted(self) -> tuple[bool, bool]:
        """Counts a body; says whether to corrupt it and whether to stall it."""
        with self.count_lock:
            self.bodies_seen += 1
            return (self.corrupt_nth_body is not None and self.bodies_seen == self.corrupt_nth_body,
                    self.stall_nth_body is not None and self.bodies_seen == self.stall_nth_body)

    # ---- per connection ---------------------------------------------------------
    def _serve_client(self, csock: socket.socket, cid: int) -> None:
        client = Conn(csock)
        up = Upstream(self.upstream, self.registry)
        try:
            while not self.stopping.is_set():
                try:
                    head = client.read_head()
                except PeerGone:
                    break
                if head is None:
                    break
                if not self._handle(client, head, cid, up):
                    break
        except Exception as e:  # a test tool: never let a thread die noisily
            if not self.stopping.is_set():
                print(f"s3proxy: connection {cid}: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            up.close()
            self.registry.discard(csock)
            try:
                csock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()

    def _handle(self, client: Conn, head: bytes, cid: int, up: Upstream) -> bool:
        """One request/response exchange. Returns whether the client connection stays."""
        req = Message(head)
        if self.down_file and os.path.exists(self.down_file):
            self._log({"method": req.start.split(" ")[0], "status": None, "error": "down"})
            return False
        parts = req.start.split(" ")
        if len(parts) != 3:
            client.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        method, target, version = parts
        entry = {"method": method, "path": target, "body_bytes": 0, "status": None,
                 "complete": False, "conn": cid, "corrupted": False, "amz_date": req.get("x-amz-date"),
                 "range": req.get("range")}
        with self.count_lock:
            skew = self.skew_left > 0
            self.skew_left -= 1 if skew else 0
        if skew:
            body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>RequestTimeTooSkewed</Code>"
                    b"<Message>The difference between the request time and the current time is too large.</Message></Error>")
            date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode()
            client.send(b"HTTP/1.1 403 Forbidden\r\nDate: " + date + b"\r\nContent-Type: application/xml\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            entry["status"] = 403
            entry["error"] = "answered RequestTimeTooSkewed"
            self._log(entry)
            return False
        chunked = req.chunked()
        length = 0 if chunked else (req.content_length() or 0)
        has_body = chunked or length > 0
        expect = (req.get("expect") or "").strip().lower() == "100-continue"
        client_keep = req.keep_alive(version)
        if self.deny_file and os.path.exists(self.deny_file):
            return self._deny(client, entry, length if has_body and not chunked and not expect else 0)

        try:
            upc = up.ensure()
            upc.send(head)
        except (OSError, PeerGone) as e:
            up.close()
            entry["error"] = f"upstream: {e}"
            self._log(entry)
            try:
                client.send(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
            except PeerGone:
                pass
            return False

        try:
            if has_body:
                if expect:
                    status = self._await_continue(client, upc, method)
                    if status is not None:  # final answer before the body
                        entry["status"] = status
                        entry["error"] = "final response before the body (Expect: 100-continue)"
                        self._log(entry)
                        up.close()
                        return False
                try:
                    if chunked:
                        early = self._forward_chunked(client, upc, entry)
                    else:
                        early = self._forward_length(client, upc, length, entry)
                except _ClientGoneMidBody as e:
                    entry["body_bytes"] = e.received
                    entry["error"] = str(e)
                    self._log(entry)
                    up.close()
                    return False
                if early is not None:  # upstream answered (and stopped reading) mid-body
                    entry["status"] = early
                    entry["error"] = "upstream responded before the whole body was sent"
                    self._log(entry)
                    up.close()
                    return False
            else:
                entry["complete"] = True
            up_keep = self._relay_response(upc, client, method, entry)
        except PeerGone as e:
            entry.setdefault("error", str(e))
            self._log(entry)
            up.close()
            return False
        except socket.timeout:
            entry["error"] = "upstream timed out"
            self._log(entry)
            up.close()
            return False
        self._log(entry)
        if not up_keep:
            up.close()
        return client_keep and up_keep

    def _deny(self, client: Conn, entry: dict, length: int) -> bool:
        """403 AccessDenied, as for a revoked key; the body (if any) is read first."""
        try:
            left = length
            while left > 0:
                chunk = client.read_some(min(left, IO_SIZE))
                if not chunk:
                    break
                left -= len(chunk)
            body = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                    b"<Message>Access Denied</Message></Error>")
            client.send(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except PeerGone:
            pass
        entry["status"] = 403
        entry["error"] = "denied"
        self._log(entry)
        return False

    # ---- request body -------------------------------------------------------------
    def _interim(self, upc: Conn, client: Conn, method: str) -> int | None:
        """Upstream has bytes: relay 1xx responses; relay a final one and return its status."""
        head = upc.read_head()
        if head is None:
            raise PeerGone("upstream closed the connection")
        status = _status_of(head)
        if 100 <= status < 200:
            client.send(head)
            return None
        self._relay_response_rest(head, upc, client, method)
        return status

    def _await_continue(self, client: Conn, upc: Conn, method: str) -> int | None:
        while True:
            if client.buf:
                return None  # the client did not wait for 100
            if upc.buf:
                r = [upc.sock]
            else:
                r, _, _ = select.select([client.sock, upc.sock], [], [])
            if upc.sock in r:
                head = upc.read_head()
                if head is None:
                    raise PeerGone("upstream closed the connection")
                status = _status_of(head)
                client.send(head)
                if status == 100:
                    return None
                if 100 < status < 200:
                    continue
                self._relay_body(Message(head), status, upc, client, method)
                return status
            return None  # body bytes (or EOF) from the client

    def _forward_length(self, client: Conn, upc: Conn, length: int, entry: dict) -> int | None:
        corrupt, stall = self._next_body_is_corrupted()
        corrupt_at = length // 2 if corrupt else -1
        sent = 0
        while sent < length:
            chunk = client.read_some(min(IO_SIZE, length - sent))
            if not chunk:
                raise _ClientGoneMidBody(sent)
            if stall:
                stall = False
                entry["stalled"] = True
                time.sleep(self.stall_seconds)
            if sent <= corrupt_at < sent + len(chunk):
                b = bytearray(chunk)
                b[corrupt_at - sent] ^= 0x01
                chunk = bytes(b)
                entry["corrupted"] = True
            sent += len(chunk)
            entry["body_bytes"] = sent
            if upc.readable(0):
                status = self._interim(upc, client, entry["method"])
                if status is not None:
                    return status
            try:
                upc.send(chunk)
            except PeerGone:
                if upc.readable(1):
                    status = self._interim(upc, client, entry["method"])
                    if status is not None:
                        return status
                raise
        entry["complete"] = True
        return None

    def _forward_chunked(self, client: Conn, upc: Conn, entry: dict) -> int | None:
        raw = bytearray()
        spans: list[tuple[int, int]] = []  # (offset in raw, length) of each chunk's data
        received = 0
        try:
            while True:
                line = client.read_line()
                raw += line
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the blank line
                        t = client.read_line()
                        raw += t
                        if t == b"\r\n":
                            break
                    break
                spans.append((len(raw), size))
                need = size
                while need:
                    piece = client.read_some(need)
                    if not piece:
                        raise PeerGone("eof")
                    raw += piece
                    received += len(piece)
                    need -= len(piece)
                crlf = client.read_line()
                if crlf != b"\r\n":
                    raise PeerGone("bad chunk framing")
                raw += crlf
        except (PeerGone, ValueError):
            raise _ClientGoneMidBody(received)
        entry["body_bytes"] = received
        entry["complete"] = True
        if received and self._next_body_is_corrupted()[0]:
            target = received // 2
            for off, size in spans:
                if target < size:
                    raw[off + target] ^= 0x01
                    entry["corrupted"] = True
                    break
                target -= size
        if upc.readable(0):
            status = self._interim(upc, client, entry["method"])
            if status is not None:
                return status
        upc.send(raw)
        return None

    # ---- response -----------------------------------------------------------------
    def _relay_response(self, upc: Conn, client: Conn, method: str, entry: dict) -> bool:
        """Relay interim responses and the final one; returns upstream keep-alive."""
        while True:
            head = upc.read_head()
            if head is None:
                raise PeerGone("upstream closed the connection before responding")
            status = _status_of(head)
            if 100 <= status < 200 and status != 101:
                client.send(head)
                continue
            entry["status"] = status
            rot = (self.rot_key is not None and method.upper() == "GET" and status in (200, 206)
                   and self.rot_key in entry.get("path", ""))
            return self._relay_response_rest(head, upc, client, method, rot)

    def _relay_response_rest(self, head: bytes, upc: Conn, client: Conn, method: str, rot: bool = False) -> bool:
        """Send a final response head and its body to the client; return upstream keep-alive."""
        resp = Message(head)
        status = _status_of(head)
        client.send(head)
        return self._relay_body(resp, status, upc, client, method, rot)

    def _relay_body(self, resp: Message, status: int, upc: Conn, client: Conn, method: str, rot: bool = False) -> bool:
        version = resp.start.split(" ", 1)[0]
        keep = resp.keep_alive(version)
        if method.upper() == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return keep
        if resp.chunked():
            while True:
                line = upc.read_line()
                client.send(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        t = upc.read_line()
                        client.send(t)
                        if t == b"\r\n":
                            return keep
                self._relay_n(upc, client, size + 2)
        length = resp.content_length()
        if length is not None:
            self._relay_n(upc, client, length, rot)
            return keep
        while True:  # delimited by close
            chunk = upc.read_some(IO_SIZE)
            if not chunk:
                return False
            client.send(chunk)

    @staticmethod
    def _relay_n(src: Conn, dst: Conn, n: int, rot: bool = False) -> None:
        while n > 0:
            chunk = src.read_some(min(IO_SIZE, n))
            if not chunk:
                raise PeerGone("upstream closed the connection inside a body")
            if rot:
                chunk = bytes([chunk[0] ^ 0x01]) + chunk[1:]
                rot = False
            dst.send(chunk)
            n -= len(chunk)


def _status_of(head: bytes) -> int:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        raise PeerGone(f"bad status line {line!r}")


def start_proxy(upstream: str, log_path, corrupt_nth_body: int | None = None,
                listen_host: str = "127.0.0.1", listen_port: int = 0,
                stall_nth_body: int | None = None, stall_seconds: float = 0, skew_first: int = 0,
                deny_file=None, down_file=None, rot_key=None):
    """Run the proxy on threads in this process. Returns (port, stop_fn)."""
    proxy = Proxy(upstream, os.fspath(log_path), corrupt_nth_body, listen_host, listen_port,
                  stall_nth_body, stall_seconds, skew_first, os.fspath(deny_file) if deny_file else None,
                  os.fspath(down_file) if down_file else None, rot_key)
    proxy.start()
    return proxy.port, proxy.stop


def read_log(log_path) -> list[dict]:
    """The log's entries, in the order requests finished."""
    try:
        with open(log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--listen-host", default="127.0.0.1")
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--upstream", required=True, help="HOST:PORT (or http://HOST:PORT)")
    ap.add_argument("--log", required=True, help="JSON-lines log, appended to")
    ap.add_argument("--corrupt-nth-body", type=int, default=None, metavar="N")
    ap.add_argument("--port-file", help="write the bound port here (atomically)")
    args = ap.parse_args(argv)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    proxy = Proxy(args.upstream, args.log, args.corrupt_nth_body, args.listen_host,
                  args.listen_port)
    proxy.start()
    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{proxy.port}\n")
        os.replace(tmp, args.port_file)
    print(f"s3proxy: listening on {args.listen_host}:{proxy.port} -> "
          f"{proxy.upstream[0]}:{proxy.upstream[1]}", file=sys.stderr, flush=True)
    while not done.wait(0.5):
        pass
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
