"""A TCP relay for tests and benchmarks: counts the bytes each way and can add latency.

    start_tcp_proxy(upstream_host, upstream_port, delay=0.0, reset_after_down=None)
        -> TcpProxy (.port, .down, .up, .resets, .stop())

`down` counts bytes from the server to the client (what an SFTP pull receives), `up` the other
way. `delay` (seconds) holds every chunk that long in each direction, so the round trip grows by
about twice the delay — a stand-in for `tc netem`, which this machine does not have.
`reset_after_down=N` (no delay): each connection passes the server's first N bytes to the client,
then stops relaying and resets both sides (TCP RST, as a dropped WiFi link or a crashing peer
looks); `resets` counts the connections reset so.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], delay: float = 0.0, listen_host: str = "127.0.0.1",
                 reset_after_down: int | None = None):
        if reset_after_down is not None and (delay > 0 or reset_after_down < 0):
            raise ValueError("reset_after_down needs delay=0 and N >= 0")
        self.upstream = upstream
        self.delay = delay
        self.reset_after_down = reset_after_down
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
            with self.lock:
                self.socks += [client, server]
            if self.reset_after_down is not None:
                self._resetting(client, server, self.reset_after_down)
                continue
            self._pipe(client, server, "up")
            self._pipe(server, client, "down")

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
            for s in (client, server):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # Wakes the relay thread blocked in recv on it (a bare close would not, and the
                    # socket would stay open); the close then sends the RST.
                    s.shutdown(socket.SHUT_RD)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

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

    def _pipe(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        if self.delay <= 0:
            def run():
                try:
                    while True:
                        data = src.recv(1 << 16)
                        if not data:
                            break
                        self._count(direction, len(data))
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (src, dst):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
            threading.Thread(target=run, daemon=True).start()
            return
        # With latency: a reader stamps chunks, a writer releases each `delay` after it arrived.
        queue: deque = deque()
        cond = threading.Condition()

        def reader():
            try:
                while True:
                    data = src.recv(1 << 16)
                    with cond:
                        queue.append((time.monotonic() + self.delay, data))
                        cond.notify()
                    if not data:
                        break
                    self._count(direction, len(data))
            except OSError:
                with cond:
                    queue.append((0.0, b""))
                    cond.notify()

        def writer():
            try:
                while True:
                    with cond:
                        while not queue:
                            cond.wait()
                        due, data = queue.popleft()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

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


def start_tcp_proxy(host: str, port: int, delay: float = 0.0, reset_after_down: int | None = None) -> TcpProxy:
    return TcpProxy((host, port), delay, reset_after_down=reset_after_down)
