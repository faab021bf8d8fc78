"""`ceti watch --status-listen`: the status page as a person, a scraper and a script see it.

A real watcher runs against the test S3 server with two roots: a drone card whose sessions
complete (one named to break out of HTML) and one that never stops growing (waiting for
stability), and a mooring card whose session lacks its DONE marker (incomplete). Once they have
settled:
  - headless Chromium loads `/`: its screenshot is kept as Tests/integration/artifacts/
    watch-status-page.png, and its DOM names every session with its state (the hostile name as
    text, never as markup);
  - `/metrics` parses with prometheus_client and agrees with `/status.json`;
  - `/status.json` validates against the schema below;
  - no secret is on any of them, the server prints no log line of its own, and after SIGTERM
    the port is closed.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

STATES = ["waiting", "incomplete", "uploading", "complete", "failed", "too_old"]
LABELS = {"waiting": "waiting for stability", "incomplete": "incomplete", "uploading": "uploading",
          "complete": "complete", "failed": "failed", "too_old": "too old"}

PLAIN = "2026-12-01-flight1"
HOSTILE = 'flight <b>2 & "the other" <script>'  # a folder name: anything but "/"
LIVE = "2026-12-01-live"
UNMARKED = "2026-12-01-deploy"

TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"}
COUNT = {"type": "integer", "minimum": 0}
SESSION_SCHEMA = {
    "type": "object",
    "required": ["root", "name", "profile", "state", "files", "bytes", "uploaded_bytes", "changed_at", "updated_at"],
    "additionalProperties": False,
    "properties": {
        "root": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "profile": {"type": "string", "minLength": 1},
        "state": {"enum": STATES},
        "files": COUNT,
        "bytes": COUNT,
        "uploaded_bytes": COUNT,
        "manifest": {"type": "string", "pattern": r"^s3://[^/]+/.+/manifest\.json$"},
        "error": {"type": "string"},
        "changed_at": TIME,
        "updated_at": TIME,
        "next_attempt_at": TIME,
    },
    "allOf": [
        {"if": {"properties": {"state": {"const": "complete"}}}, "then": {"required": ["manifest"]}},
        {"if": {"properties": {"state": {"const": "failed"}}}, "then": {"required": ["error"]}},
    ],
}
STATUS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "started_at", "uploaded_bytes", "pending_bytes", "queue_size", "sessions_by_state",
                 "sessions"],
    "additionalProperties": False,
    "properties": {
        "version": {"type": "string", "minLength": 1},
        "started_at": TIME,
        "last_scan_at": TIME,
        "last_success_at": TIME,
        "last_success_epoch": {"type": "number", "exclusiveMinimum": 0},
        "uploaded_bytes": COUNT,
        "pending_bytes": COUNT,
        "queue_size": COUNT,
        "sessions_by_state": {"type": "object", "required": STATES, "additionalProperties": False,
                              "properties": {s: COUNT for s in STATES}},
        "sessions": {"type": "array", "items": SESSION_SCHEMA},
    },
}


# ---- the watcher ----------------------------------------------------------------------------
class Grower(threading.Thread):
    """Appends to a file every 0.2 s, so its session never holds still long enough to go."""

    def __init__(self, path: Path):
        super().__init__(daemon=True)
        self.path = path
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            with self.path.open("ab") as f:
                f.write(b"x" * 512)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _get(url: str, timeout: float = 10) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class Watcher:
    def __init__(self, proc: subprocess.Popen, stdout: Path, stderr: Path, url: str, secret: str):
        self.proc, self.stdout, self.stderr, self.url, self.secret = proc, stdout, stderr, url, secret

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def status(self) -> dict:
        code, _, body = _get(self.url + "status.json")
        assert code == 200, body
        return json.loads(body)

    def sessions(self) -> dict[str, dict]:
        return {s["name"]: s for s in self.status()["sessions"]}


@pytest.fixture
def watcher(ceti, bucket, s3env, tmp_path):
    drone = tmp_path / "cards" / "drone"
    mooring = tmp_path / "cards" / "mooring"
    _write(drone / PLAIN / "DJI_0001.MP4", b"\x00\x01" * 50_000)
    _write(drone / PLAIN / "flight.csv", b"t,lat,lon\n0,1,2\n")
    _write(drone / HOSTILE / "DJI_0002.MP4", b"\x02\x03" * 30_000)
    _write(drone / LIVE / "growing.bin", b"")
    _write(mooring / UNMARKED / "hydrophone.wav", b"RIFF" + b"\x00" * 4000)
    grower = Grower(drone / LIVE / "growing.bin")

    config = tmp_path / "watch.yaml"
    # JSON is YAML: no quoting of paths to get wrong.
    config.write_text(json.dumps({
        "bucket": bucket,
        "endpoint_url": s3env.endpoint,
        "watch": {
            "interval": "1s",
            "roots": [{"path": str(drone), "profile": "p"}, {"path": str(mooring), "profile": "q"}],
            "profiles": {"p": {"session_depth": 1, "stable_for": "1s"},
                         "q": {"session_depth": 1, "stable_for": "1s", "required_markers": ["DONE"]}},
        },
    }, indent=2) + "\n")

    if not ceti.bin.exists():
        pytest.fail(f"ceti binary not found at {ceti.bin}: run `swift build` (or point CETI_BIN at it)", pytrace=False)
    stdout, stderr = tmp_path / "watch.out", tmp_path / "watch.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen([str(ceti.bin), "watch", "--config", str(config), "--status-listen", "127.0.0.1:0"],
                                env=ceti.env, cwd=ceti.root, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    grower.start()
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None:
            m = re.search(r"status page: (http://127\.0\.0\.1:(\d+)/)", stderr.read_text(errors="replace"))
            if m and m.group(2) != "0":
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ceti watch printed no 'status page: http://127.0.0.1:PORT/' line (exit {proc.poll()}):\n"
                            f"{stdout.read_text(errors='replace')}{stderr.read_text(errors='replace')}", pytrace=False)
            else:
                time.sleep(0.1)
        w = Watcher(proc, stdout, stderr, url, s3env.secret_key)

        # Settled: both drone sessions complete, the live one still waiting, the unmarked one incomplete.
        want = {PLAIN: "complete", HOSTILE: "complete", LIVE: "waiting", UNMARKED: "incomplete"}
        deadline = time.monotonic() + 90
        while True:
            got = {name: s["state"] for name, s in w.sessions().items()}
            if got == want:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sessions never settled: {got}, want {want}\n{w.output()}", pytrace=False)
            time.sleep(0.5)
        yield w
    finally:
        grower.done.set()
        grower.join()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail("ceti watch did not end within 30 s of SIGTERM", pytrace=False)


# ---- reading the rendered page ---------------------------------------------------------------
class PageText(HTMLParser):
    """The DOM Chromium serialised, as text: every table's rows of cell texts, every element name."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.tables: list[list[list[str]]] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/deps.sh installs it): "
                                             "no browser to load the status page in")
def test_the_page_in_a_browser_shows_every_session_with_its_state(watcher, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "watch-status-page.png"
    shot.unlink(missing_ok=True)
    profile = ["--user-data-dir=" + str(tmp_path / "chromium-profile")]
    cp = _chromium(*profile, f"--screenshot={shot}", "--window-size=1280,900", watcher.url)
    assert cp.returncode == 0 and shot.is_file(), f"chromium made no screenshot:\n{cp.stderr}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    cp = _chromium(*profile, "--dump-dom", watcher.url)
    assert cp.returncode == 0, cp.stderr
    dom = PageText()
    dom.feed(cp.stdout)
    text = " ".join("".join(dom.text).split())
    assert "ceti watch" in text
    # The hostile name is text on the page: no element came out of it.
    assert HOSTILE in text and "b" not in dom.tags and "script" not in dom.tags

    # Sessions: a heading row per root (one cell), then a row per session (name, state, ...).
    sessions_table = next(t for t in dom.tables if t and t[0][:2] == ["Session", "State"])
    rows, root_of, root = {}, {}, None
    for row in sessions_table[1:]:
        if len(row) == 1:
            root = row[0]
        else:
            rows[row[0]], root_of[row[0]] = row, root
    status = watcher.sessions()
    assert set(rows) == set(status), f"page rows {sorted(rows)} != sessions {sorted(status)}"
    for name, s in status.items():
        assert rows[name][1] == LABELS[s["state"]], f"{name}: page says {rows[name][1]!r}, status.json {s['state']}"
        assert root_of[name] == s["root"], f"{name} under {root_of[name]!r}, status.json {s['root']!r}"
        if s["state"] == "complete":
            assert s["manifest"] in " ".join(rows[name]), f"{name}: manifest not on the page"

    # Devices: each watched root with its session count.
    devices = next(t for t in dom.tables if t and t[0][:2] == ["Root", "Sessions"])
    assert {row[0]: row[1] for row in devices[1:]} == {
        root: str(n) for root, n in Counter(s["root"] for s in status.values()).items()}
    assert sorted(Counter(s["root"] for s in status.values()).values()) == [1, 3]

    assert watcher.secret not in cp.stdout


def test_metrics_parse_and_status_json_validates(watcher):
    code, ctype, metrics = _get(watcher.url + "metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4"), (code, ctype)
    code, ctype, body = _get(watcher.url + "status.json")
    assert code == 200 and ctype.startswith("application/json"), (code, ctype)
    status = json.loads(body)

    jsonschema.Draft202012Validator.check_schema(STATUS_SCHEMA)
    jsonschema.validate(status, STATUS_SCHEMA, cls=jsonschema.Draft202012Validator)
    assert sum(status["sessions_by_state"].values()) == len(status["sessions"])
    assert status["queue_size"] == sum(s["state"] in ("uploading", "failed") for s in status["sessions"])

    families = list(text_string_to_metric_families(metrics))
    types = {f.name: f.type for f in families}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}
    assert types["ceti_watch_uploaded_bytes"] == "counter"  # the parser names a counter without _total
    for gauge in ("ceti_watch_sessions", "ceti_watch_queue_size", "ceti_watch_pending_bytes",
                  "ceti_watch_last_success_timestamp_seconds"):
        assert types[gauge] == "gauge", gauge
    per_state = {dict(labels)["state"]: v for (name, labels), v in samples.items() if name == "ceti_watch_sessions"}
    assert per_state == {s: float(n) for s, n in status["sessions_by_state"].items()}
    assert per_state["complete"] == 2 and per_state["waiting"] == 1 and per_state["incomplete"] == 1
    assert samples[("ceti_watch_uploaded_bytes_total", ())] == status["uploaded_bytes"] > 0
    assert samples[("ceti_watch_queue_size", ())] == status["queue_size"]
    assert samples[("ceti_watch_last_success_timestamp_seconds", ())] == pytest.approx(status["last_success_epoch"])
    assert abs(status["last_success_epoch"] - time.time()) < 600

    assert _get(watcher.url + "nope")[0] == 404
    page = _get(watcher.url)[2]
    for text in (metrics, body, page):
        assert watcher.secret not in text
    # Hummingbird's own log stays out of the watcher's output.
    assert not re.search(r"Server started|Hummingbird|hb\.request", watcher.output()), watcher.output()

    # SIGTERM ends the watcher, and its status page with it.
    port = int(watcher.url.rsplit(":", 1)[1].strip("/"))
    watcher.proc.send_signal(signal.SIGTERM)
    # 143: ceti's exit status after SIGTERM (0 if the watcher treats it as a clean stop).
    assert watcher.proc.wait(timeout=30) in (0, 143), watcher.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
