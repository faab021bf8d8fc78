"""Self-test of tcpproxy.py's link emulation: the rate cap is shared by all connections (per
direction), smooth below a second, combines with delay, and reset_every resets a connection after
every N bytes relayed in total. No S3 server or root needed; about 6 s.

    .venv/bin/pytest -q Tests/integration/test_tcpproxy_cap.py

Timings are measured around whole transfers of known size, so a busy machine can only make them
slower: the upper bounds on the rate (what fails when the cap is missing or per connection) are
strict (+5 %), the lower bounds generous.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from tcpproxy import start_tcp_proxy  # noqa: E402

BLOCK = bytes(range(256)) * 256  # 64 KiB


class Server:
    """Loopback server. A client sends one command byte: b"D" + u64 N: the server sends N bytes
    and closes; b"U": it reads to EOF and answers the count as u64; b"E": echoes until EOF."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=32)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _serve(c: socket.socket) -> None:
        try:
            with c:
                cmd = _recv_exact(c, 1)
                if cmd == b"D":
                    left = struct.unpack(">Q", _recv_exact(c, 8))[0]
                    while left > 0:
                        n = min(left, len(BLOCK))
                        c.sendall(BLOCK[:n])
                        left -= n
                    c.shutdown(socket.SHUT_WR)
                    c.recv(1)
                elif cmd == b"U":
                    total = 0
                    while data := c.recv(1 << 16):
                        total += len(data)
                    c.sendall(struct.pack(">Q", total))
                elif cmd == b"E":
                    while data := c.recv(1 << 16):
                        c.sendall(data)
        except OSError:
            pass

    def stop(self) -> None:
        self.sock.close()


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError("short read")
        buf += d
    return buf


def download(port: int, n: int) -> tuple[int, str | None]:
    """(bytes received, None or the error that ended the transfer)."""
    got = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"D" + struct.pack(">Q", n))
            while got < n:
                d = s.recv(1 << 16)
                if not d:
                    return got, "EOF"
                got += len(d)
    except OSError as e:
        return got, type(e).__name__
    return got, None


def upload(port: int, n: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"U")
        left = n
        while left > 0:
            k = min(left, len(BLOCK))
            s.sendall(BLOCK[:k])
            left -= k
        s.shutdown(socket.SHUT_WR)
        return struct.unpack(">Q", _recv_exact(s, 8))[0]


def parallel(fn, *args_list) -> tuple[float, list]:
    results: list = [None] * len(args_list)

    def run(i, args):
        results[i] = fn(*args)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_list)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return time.monotonic() - t0, results


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


RATE = 3_000_000


def test_rate_is_shared_by_all_connections_and_smooth(server):
    p = start_tcp_proxy("127.0.0.1", server.port, rate=RATE)
    try:
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.monotonic(), p.down))
                time.sleep(0.25)

        threading.Thread(target=sample, daemon=True).start()
        each = 4_500_000
        wall, res = parallel(download, (p.port, each), (p.port, each))
        stop.set()
        assert all(r == (each, None) for r in res), res
        rate = 2 * each / wall
        # Two connections together: 3 MB/s (per-connection capping would give ~6, none ~hundreds).
        assert rate <= RATE * 1.10, f"downstream {rate / 1e6:.2f} MB/s through a {RATE / 1e6:.0f} MB/s cap"
        assert rate >= RATE * 0.75, f"downstream only {rate / 1e6:.2f} MB/s through a {RATE / 1e6:.0f} MB/s cap"
        # Smooth: no quarter second well above the cap (past the first, which holds the burst).
        windows = [(b1 - b0) / (t1 - t0) for (t0, b0), (t1, b1) in zip(samples[1:], samples[2:]) if b1 < 2 * each]
        assert windows and max(windows) <= RATE * 1.35, [f"{w / 1e6:.2f}" for w in windows]

        # Upstream has its own bucket: the same cap for two uploads together. (The senders finish
        # when their last bytes are in socket buffers, a little before the relay does: the bound
        # is looser than downstream's, and still half of what per-connection capping would give.)
        each_up = 3_000_000
        wall, res = parallel(upload, (p.port, each_up), (p.port, each_up))
        assert res == [each_up, each_up]
        rate = 2 * each_up / wall
        assert RATE * 0.75 <= rate <= RATE * 1.25, f"upstream {rate / 1e6:.2f} MB/s"
    finally:
        p.stop()


def test_delay_combines_with_rate(server):
    delay = 0.1
    p = start_tcp_proxy("127.0.0.1", server.port, delay=delay, rate=RATE)
    try:
        with socket.create_connection(("127.0.0.1", p.port), timeout=20) as s:
            s.sendall(b"E")
            rtts = []
            for _ in range(3):
                t0 = time.monotonic()
                s.sendall(b"ping")
                _recv_exact(s, 4)
                rtts.append(time.monotonic() - t0)
        assert min(rtts) >= 2 * delay * 0.95, rtts
        assert min(rtts) <= 2 * delay + 0.5, rtts
        n = 1_500_000
        wall, res = parallel(download, (p.port, n))
        assert res == [(n, None)]
        assert wall >= n / (RATE * 1.05) + delay, wall  # paced, then held
    finally:
        p.stop()


@pytest.mark.parametrize("rate", [None, 20_000_000])
def test_reset_every_n_bytes_in_total(server, rate):
    mark = 1_000_000
    p = start_tcp_proxy("127.0.0.1", server.port, rate=rate, reset_every=mark)
    try:
        got, err = download(p.port, 3_000_000)
        assert err is not None and got < mark, (got, err)  # reset before the mark's bytes were passed on
        assert p.resets == 1
        got, err = download(p.port, 300_000)  # total stays below 2 × mark: untouched
        assert (got, err) == (300_000, None)
        assert p.resets == 1
        got, err = download(p.port, 3_000_000)
        assert err is not None and got < mark
        assert p.resets == 2
        total = p.down + p.up
        assert 2 * mark <= total < 2 * mark + 2 * 65536, total
    finally:
        p.stop()
