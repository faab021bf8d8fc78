"""A TCP relay for tests and benchmarks: counts the bytes each way and can add latency, cap the
rate and reset connections.

    start_tcp_proxy(upstream_host, upstream_port, delay=0.0, reset_after_down=None,
                    *, rate=None, reset_every=None, burst=None)
        -> TcpProxy (.port, .down, .up, .resets, .stop())

`down` counts bytes from the server to the client (what an SFTP pull receives), `up` the other
way. `delay` (seconds) holds every chunk that long in each direction, so the round trip grows by
about twice the delay — a stand-in for `tc netem`, which this machine does not have.
`reset_after_down=N` (no delay): each connection passes the server's first N bytes to the client,
then stops relaying and resets both sides (TCP RST, as a dropped WiFi link or a crashing peer
looks); `resets` counts the connections reset so.

`rate` (bytes/s) caps the link as a whole, as a real uplink does: each direction has one token
bucket shared by ALL connections of the proxy, so N connections together get `rate` downstream
and, separately, `rate` upstream (the cap is per direction, like the up and down rates of an
asymmetric link; it is not a cap on the sum of both). Chunks are read at most ~10 ms of the rate
at a time (4-64 KiB) and released as tokens allow, so the flow is smooth well below a second;
a connection waiting for tokens does not read its socket, so TCP back-pressure reaches the
sender. The bucket holds at most `burst` bytes (default: 50 ms of the rate, at least two
chunks) after an idle spell; waiting connections are served in the order they asked. Accurate
to ~1 % at 2-10 MB/s on an idle machine (sleeps overshoot less than the burst absorbs).

`delay` combines with `rate`: a chunk is first paced by the bucket (serialisation on the link),
then held `delay` (propagation); with a rate, at most max(256 KiB, 2 x rate x delay) bytes wait
in flight per connection and direction before the relay stops reading (back-pressure again).
Note the delay is seen by the applications' request/response round trips, not by the kernel's
TCP (each side talks TCP to the relay over loopback).

`reset_every=N` (bytes): after every N bytes relayed through the proxy in total (all
connections, both directions together), the connection whose chunk crosses the mark is reset
(RST to both sides; that chunk and whatever it had in flight are dropped). Combines with
`rate` and `delay`; counted in `resets`. `reset_after_down` does not combine with the others.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque


class TokenBucket:
    """`rate` bytes/s shared by every thread that calls take(): a thread takes its chunk's tokens
    at once, running the bucket into debt, and sleeps until the debt it joined is paid off. Debt
    is settled in arrival order, so the long-run rate is exactly `rate` whenever someone waits,
    however the threads' sleeps overshoot (the bucket credits the elapsed time, up to `burst`)."""

    def __init__(self, rate: float, burst: float | None = None):
        if rate <= 0:
            raise ValueError("rate must be > 0 bytes/s")
        self.rate = float(rate)
        self.chunk = int(min(64 * 1024, max(4 * 1024, self.rate / 100)))
        self.burst = float(burst) if burst is not None else max(2.0 * self.chunk, self.rate * 0.05)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= n
            wait = -self.tokens / self.rate
        if wait > 0:
            time.sleep(wait)


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], delay: float = 0.0, listen_host: str = "127.0.0.1",
                 reset_after_down: int | None = None, rate: float | None = None,
                 reset_every: int | None = None, burst: float | None = None):
        if reset_after_down is not None and (delay > 0 or reset_after_down < 0):
            raise ValueError("reset_after_down needs delay=0 and N >= 0")
        if reset_after_down is not None and (rate is not None or reset_every is not None):
            raise ValueError("reset_after_down does not combine with rate or reset_every")
        if reset_every is not None and reset_every <= 0:
            raise ValueError("reset_every must be > 0 bytes")
        self.upstream = upstream
        self.delay = delay
        self.reset_after_down = reset_after_down
        self.rate = rate
        self.reset_every = reset_every
        self.buckets = {d: TokenBucket(rate, burst) for d in ("down", "up")} if rate else {}
        self.chunk = self.buckets["down"].chunk if rate else 1 << 16
        self.total = 0
        self.next_reset = reset_every or 0
        self.resets = 0
        self.lsock = socket.create_server((listen_host, 0), backlog=64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.down = 0
        self.up = 0
        self.stopping = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _count(self, direction: str, n: int) -> None:
        with self.lock:
            setattr(self, direction, getattr(self, direction) + n)

    def _account(self, direction: str, n: int) -> bool:
        """Counts n bytes; True when they cross the next reset_every mark (reset this connection)."""
        with self.lock:
            setattr(self, direction, getattr(self, direction) + n)
            self.total += n
            if self.reset_every and self.total >= self.next_reset:
                while self.next_reset <= self.total:
                    self.next_reset += self.reset_every
                return True
        return False

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Small buffers on our side: bytes counted are bytes the client could really have received,
            # not megabytes parked in the relay's own socket buffers when the client dies.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
            if self.rate:  # the same upstream: what the link has not carried yet stays with the sender
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
                server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
            with self.lock:
                self.socks += [client, server]
            if self.reset_after_down is not None:
                self._resetting(client, server, self.reset_after_down)
                continue
            conn = _Conn(client, server)
            self._shaped(conn, client, server, "up")
            self._shaped(conn, server, client, "down")

    def _reset(self, conn: "_Conn") -> None:
        """RST to both sides of one connection (idempotent)."""
        with conn.lock:
            if conn.reset:
                return
            conn.reset = True
        with self.lock:
            self.resets += 1
        _abort(conn.client, conn.server)

    def _shaped(self, conn: "_Conn", src: socket.socket, dst: socket.socket, direction: str) -> None:
        """One direction of a connection, under rate / delay / reset_every when given."""
        bucket = self.buckets.get(direction)
        chunk = self.chunk

        def finish() -> None:
            """This direction is over: pass the end on (half-close), close both when both are."""
            if not conn.reset:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            if conn.finished():
                with self.lock:
                    for s in (src, dst):
                        if s in self.socks:
                            self.socks.remove(s)
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        if self.delay <= 0:
            def run():
                try:
                    while not conn.reset:
                        data = src.recv(chunk)
                        if not data:
                            break
                        if self._account(direction, len(data)):
                            self._reset(conn)
                            return
                        if bucket:
                            bucket.take(len(data))
                        if conn.reset:
                            return
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    finish()
            threading.Thread(target=run, daemon=True).start()
            return

        queue: deque = deque()
        cond = threading.Condition()
        limit = max(256 * 1024, int(2 * (self.rate or 0) * self.delay)) if self.rate else None
        state = {"queued": 0}

        def put(due: float, data: bytes) -> None:
            with cond:
                queue.append((due, data))
                state["queued"] += len(data)
                cond.notify_all()

        def reader():
            try:
                while not conn.reset:
                    if limit is not None:
                        with cond:
                            while state["queued"] > limit and not conn.reset:
                                cond.wait(0.5)
                    data = src.recv(chunk)
                    if not data:
                        put(time.monotonic() + self.delay, b"")
                        return
                    if self._account(direction, len(data)):
                        self._reset(conn)
                        break
                    if bucket:
                        bucket.take(len(data))
                    put(time.monotonic() + self.delay, data)
            except OSError:
                pass
            put(0.0, b"")  # ends the writer (after what is queued, unless the connection was reset)

        def writer():
            try:
                while True:
                    with cond:
                        while not queue:
                            cond.wait()
                        due, data = queue.popleft()
                        state["queued"] -= len(data)
                        cond.notify_all()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not data or conn.reset:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                finish()

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def _resetting(self, client: socket.socket, server: socket.socket, limit: int) -> None:
        """Relays both ways until the server has sent `limit` bytes, then resets both sides."""
        done = threading.Event()

        def reset():
            if done.is_set():
                return
            done.set()
            time.sleep(0.1)  # let the client read what it was given before the RST
            with self.lock:
                self.resets += 1
            _abort(client, server)

        def up():
            try:
                while not done.is_set():
                    data = client.recv(1 << 16)
                    if not data or done.is_set():
                        break
                    self._count("up", len(data))
                    server.sendall(data)
            except OSError:
                pass

        def down():
            sent = 0
            try:
                if limit == 0:
                    return
                while True:
                    data = server.recv(1 << 16)
                    if not data:
                        break
                    data = data[:limit - sent]
                    client.sendall(data)
                    sent += len(data)
                    self._count("down", len(data))
                    if sent >= limit:
                        break
            except OSError:
                pass
            finally:
                reset()

        threading.Thread(target=up, daemon=True).start()
        threading.Thread(target=down, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


class _Conn:
    """One relayed connection's two sockets and whether it has been reset."""

    def __init__(self, client: socket.socket, server: socket.socket):
        self.client, self.server = client, server
        self.lock = threading.Lock()
        self.reset = False
        self.ended = 0

    def finished(self) -> bool:
        """Marks one direction over; True for the second (both sockets can be closed)."""
        with self.lock:
            self.ended += 1
            return self.ended == 2


def _abort(*socks: socket.socket) -> None:
    """Close with RST (SO_LINGER 0). shutdown(SHUT_RD) first wakes a relay thread blocked in recv
    on the socket (a bare close would not, and the socket would stay open) without sending a FIN."""
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def start_tcp_proxy(host: str, port: int, delay: float = 0.0, reset_after_down: int | None = None, *,
                    rate: float | None = None, reset_every: int | None = None,
                    burst: float | None = None) -> TcpProxy:
    return TcpProxy((host, port), delay, reset_after_down=reset_after_down, rate=rate,
                    reset_every=reset_every, burst=burst)
