"""ceti watch (issue #15): the unattended mode. Sessions under two roots are uploaded exactly when
complete (markers there, unchanged for stable_for), each with its manifest and _COMPLETE after its
objects; a growing session waits; a kill -9 mid-upload resumes without a second _COMPLETE;
after_upload moves or deletes (each file on its own proof); the webhook hears of each session and
of a refused upload, and no secret reaches the output, the log or the ledger; validate-config names
the key and line of each problem; print-manifest reads the session and touches no S3."""

from __future__ import annotations

import email
import json
import os
import random
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from test_ingest import audio, boto_objects, csv_text, s3_body


def session(root: Path, name: str, files: dict[str, bytes], age: float = 600) -> Path:
    d = root / name
    for rel, blob in files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)
        t = time.time() - age
        os.utime(p, (t, t))
    return d


def config(tmp_path: Path, ceti, bucket: str, roots: str, profiles: str, extra: str = "", interval: str = "1s") -> Path:
    cfg = tmp_path / "watch.yaml"
    cfg.write_text(f"bucket: {bucket}\nendpoint_url: {ceti.s3env.endpoint}\nwatch:\n  interval: {interval}\n"
                   f"  roots:\n{roots}  profiles:\n{profiles}{extra}")
    return cfg


def watch(ceti, cfg: Path, *extra, check=None, endpoint=None, env=None, timeout=300):
    argv = ["watch", "--config", cfg, *extra]
    if endpoint:
        argv += ["--endpoint-url", endpoint]
    return ceti(*argv, check=check, env_extra=env, timeout=timeout)


def runs(objects: dict, session_name: str) -> list[str]:
    return sorted(k for k in objects if f"/_runs/" in k and k.split("/")[-2] == session_name)


def test_complete_sessions_only_each_with_manifest_and_complete_after_its_objects(ceti, s3, bucket, proxy, tmp_path):
    r1, r2 = tmp_path / "boat-drives", tmp_path / "lab"
    done = {"session_summary.json": b'{"ok": true}\n', "1700000000000.flac": random.Random(1).randbytes(300_000),
            "sensors/data_gps.csv": csv_text(500, 1), "scratch.tmp": b"editor leftovers"}
    session(r1, "wt-0001", done)
    session(r1, "wt-0002", {"1700000300000.flac": b"x" * 1000})  # no marker: never
    growing = session(r2, "run-7", {"a.csv": csv_text(100, 2)}, age=0)
    cfg = config(tmp_path, ceti, bucket,
                 f"    - {{path: {r1}, profile: marked}}\n    - {{path: {r2}, profile: plain, prefix: lab}}\n",
                 "    marked: {required_markers: [session_summary.json], stable_for: 30s, ignore: ['*.tmp']}\n"
                 "    plain: {stable_for: 3s}\n")
    p = proxy()
    os.utime(growing / "a.csv")  # written just now, whatever the setup above cost
    first = json.loads(watch(ceti, cfg, "--once", "--json", endpoint=p.endpoint, check=0).stdout)
    assert first["uploaded"] == [f"{r1}/wt-0001"] and first["failed"] == [], first
    states = {s["name"]: s["state"] for s in first["sessions"]}
    assert states == {"wt-0001": "complete", "wt-0002": "incomplete", "run-7": "waiting"}, states

    objects = boto_objects(s3, bucket)
    data = sorted(k for k in objects if "/_runs/" not in k)
    assert [k.split("/", 3)[-1] for k in data] == ["1700000000000.flac", "sensors/data_gps.csv", "session_summary.json"], data
    assert all(k.startswith("raw/") and k.split("/")[2] == "wt-0001" for k in data), data
    manifest_key, complete_key = runs(objects, "wt-0001")[1], runs(objects, "wt-0001")[0]
    assert manifest_key.endswith("/manifest.json") and complete_key.endswith("/_COMPLETE")
    m = json.loads(s3_body(s3, bucket)(manifest_key))
    assert m["device"] == "wt-0001" and sorted(e["name"] for e in m["files"]) == sorted(n for n in done if n != "scratch.tmp")
    for e in m["files"]:
        assert e["size"] == len(done[e["name"]]) and e["object"]["key"] in data
    # In S3's order of arrival: every object, then the manifest, then _COMPLETE.
    writes = [e["path"].split("?")[0] for e in p.entries() if e["method"] in ("PUT", "POST") and e.get("status") == 200]
    assert writes[-2].endswith("/manifest.json") and writes[-1].endswith("/_COMPLETE"), writes
    assert len(writes) == len(data) + 2

    # The growing session: still changing, then unchanged for stable_for → uploaded; the other never.
    with open(growing / "a.csv", "ab") as f:
        f.write(b"1700000000999,1,2,3\n")
    second = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert second["uploaded"] == [], second
    time.sleep(3.5)
    third = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert third["uploaded"] == [f"{r2}/run-7"], third
    objects = boto_objects(s3, bucket)
    assert any(k.startswith("lab/") and k.endswith("/run-7/a.csv") for k in objects), sorted(objects)
    assert len(runs(objects, "run-7")) == 2 and runs(objects, "wt-0002") == []
    assert sum(k.endswith("/_COMPLETE") for k in objects) == 2
    # Nothing changed: a further scan sends nothing.
    again = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert again["uploaded"] == [] and boto_objects(s3, bucket) == objects

    # The manifest alone gives the session back (ceti restore).
    out = tmp_path / "restored"
    ceti("restore", f"s3://{bucket}/{manifest_key.rsplit('/', 1)[0]}/", out, "--endpoint-url", ceti.s3env.endpoint, check=0)
    for name in ("session_summary.json", "1700000000000.flac"):
        assert (out / name).read_bytes() == done[name]


def test_kill_9_mid_upload_then_restart_completes_once(ceti, s3, bucket, proxy, tmp_path):
    from tcpproxy import start_tcp_proxy

    root = tmp_path / "in"
    files = {f"{1700000000000 + k}.dat": random.Random(k).randbytes(3_000_000) for k in range(4)}
    session(root, "s1", files)
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n", "    p: {stable_for: 1s}\n")
    p = proxy()
    link = start_tcp_proxy("127.0.0.1", p.port, rate=2_000_000)
    try:
        argv = [str(ceti.bin), "watch", "--config", str(cfg), "--once", "--endpoint-url", f"http://127.0.0.1:{link.port}"]
        proc = subprocess.Popen(argv, env=ceti.env, cwd=ceti.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        # 12 MB through 2 MB/s takes 6 s: 2 s after S3 first answered, the objects are half sent.
        p.wait_for(lambda es: len(es) >= 1, timeout=60)
        time.sleep(2)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        link.stop()
    assert not any(k.endswith("/_COMPLETE") for k in boto_objects(s3, bucket)), "killed before its manifest"
    r = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert r["uploaded"] == [f"{root}/s1"], r
    objects = boto_objects(s3, bucket)
    assert sum(k.endswith("/_COMPLETE") for k in objects) == 1
    data = {k.rsplit("/", 1)[1]: v for k, v in objects.items() if "/_runs/" not in k}
    assert {n: v["size"] for n, v in data.items()} == {n: len(b) for n, b in files.items()}
    # The run resumed: one run folder, the same one the killed attempt had opened.
    assert len({k.split("/")[2] for k in objects if "/_runs/" in k}) == 1


def test_after_upload_moves_or_deletes_each_file_on_its_own_proof(ceti, s3, bucket, tmp_path):
    moved_root, deleted_root = tmp_path / "move", tmp_path / "delete"
    session(moved_root, "a", {"x.csv": csv_text(50, 3), "raw/1700000000000.raw": audio(20_000, 4)})
    session(deleted_root, "b", {"y.bin": b"y" * 5000, "z/z.bin": b"z" * 7000})
    cfg = config(tmp_path, ceti, bucket,
                 f"    - {{path: {moved_root}, profile: mv}}\n    - {{path: {deleted_root}, profile: rm}}\n",
                 "    mv: {stable_for: 1s, after_upload: move, compress: true}\n"
                 "    rm: {stable_for: 1s, after_upload: delete-local}\n")
    r = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert sorted(r["uploaded"]) == [f"{deleted_root}/b", f"{moved_root}/a"], r
    # Compressed in place (originals removed with proof), then moved to processed/.
    assert not (moved_root / "a").exists()
    kept = sorted(str(p.relative_to(moved_root)) for p in moved_root.rglob("*") if p.is_file())
    assert kept == ["processed/a/raw/1700000000000.flac", "processed/a/x.csv.gz"], kept
    assert not (deleted_root / "b").exists(), list(deleted_root.rglob("*"))
    objects = boto_objects(s3, bucket)
    m = json.loads(s3_body(s3, bucket)(next(k for k in objects if k.endswith("/a/manifest.json"))))
    names = {e["name"]: e for e in m["files"]}
    assert names.keys() == {"x.csv", "raw/1700000000000.raw"}
    assert names["raw/1700000000000.raw"]["derivative"]["codec"] == "flac"
    assert any(k.endswith("/b/z/z.bin") for k in objects)
    # A later scan: nothing to do (processed/ is not a session, the deleted one is gone).
    assert json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)["uploaded"] == []


class Receiver:
    """A webhook receiver on loopback: each POST's JSON body, in order."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def stop(self):
        self.server.shutdown()


def test_webhook_and_mail_hear_each_session_and_a_refused_upload_and_no_secret_leaks(ceti, s3, bucket, tmp_path):
    from aiosmtpd.controller import Controller
    from test_watch_notify import PASSWORD, USER, Mailbox, authenticator, free_port

    receiver = Receiver()
    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, auth_require_tls=False)
    smtp.start()
    token = "T0KEN-" + "9f8e7d6c5b4a"
    hook = tmp_path / "webhook"
    hook.write_text(f"http://127.0.0.1:{receiver.port}/services/{token}\n")
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    root = tmp_path / "in"
    session(root, "s1", {"a.txt": b"a" * 100})
    session(root, "s2", {"b.txt": b"b" * 200})
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n", "    p: {stable_for: 1s}\n",
                 extra=f"  notify:\n    webhook_file: {hook}\n    on: [complete, failed]\n"
                       f"    email: {{smtp_url: 'smtp://127.0.0.1:{smtp.port}', from: ceti@boat.example, to: [ops@shore.example],"
                       f" user: {USER}, password_file: {tmp_path / 'smtp-password'}}}\n")
    log = tmp_path / "watch.log"
    try:
        ok = watch(ceti, cfg, "--once", "--json", "-vv", "--log-file", log, check=0)
        completes = [b for _, b in receiver.received if b["event"] == "complete"]
        assert sorted(b["session"] for b in completes) == ["s1", "s2"], receiver.received
        for b in completes:
            assert b["files"] == 1 and b["manifest"].startswith(f"s3://{bucket}/") and b["text"] and b["errors"] == []
        # S3 refuses the credentials: one `failed` POST for the session, exit 1.
        session(root, "s3", {"c.txt": b"c" * 300})
        secret = "not-the-secret-key-0123456789"
        bad = watch(ceti, cfg, "--once", "--json", "-vv", "--log-file", log, env={"AWS_SECRET_ACCESS_KEY": secret}, check=1)
        failed = [b for _, b in receiver.received if b["event"] == "failed"]
        assert [b["session"] for b in failed] == ["s3"] and failed[0]["errors"], receiver.received
        # The same three events by e-mail, each sent after logging in.
        subjects = sorted(email.message_from_bytes(m[2]).get("Subject", "") for m in box.messages)
        assert len(subjects) == 3 and all(m[3] for m in box.messages), subjects
        assert sum("s3 failed" in x for x in subjects) == 1 and sum("uploaded" in x for x in subjects) == 2, subjects
    finally:
        receiver.stop()
        smtp.stop()
    ledger = ceti.ledger.read_bytes() + b"".join(p.read_bytes() for p in ceti.ledger.parent.glob("ledger.sqlite-*"))
    for text in (ok.stdout + ok.stderr, bad.stdout + bad.stderr, log.read_text()):
        assert token not in text and secret not in text and ceti.s3env.secret_key not in text and PASSWORD not in text
    assert token.encode() not in ledger and secret.encode() not in ledger and PASSWORD.encode() not in ledger


def test_validate_config_names_each_problem_and_print_manifest_touches_no_s3(ceti, tmp_path):
    root = tmp_path / "in"
    session(root, "wt-1", {"a.csv": csv_text(20, 1), "b.raw": audio(1000, 2)})
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "bucket: b\n"
        "watch:\n"
        "  interval: soon\n"                                   # line 3
        "  roots:\n"
        f"    - {{path: {root}, profile: nope}}\n"             # line 5
        "  profiles:\n"
        "    p:\n"
        "      stable_for: 5m\n"
        "      after_upload: shred\n"                          # line 9
        "      colour: blue\n"                                 # line 10
        "  notify:\n"
        "    webhook: not-a-url-with-secret-xyz\n")            # line 12
    r = ceti("watch", "validate-config", "--config", bad, check=2)
    lines = r.stderr.strip().splitlines()
    for key, line in (("watch.interval", 3), ("watch.roots[0].profile", 5), ("watch.profiles.p.after_upload", 9),
                      ("watch.profiles.p.colour", 10), ("watch.notify.webhook", 12)):
        assert any(f"line {line}: {key}:" in l for l in lines), (key, lines)
    assert "not-a-url-with-secret-xyz" not in r.stderr

    good = tmp_path / "good.yaml"
    good.write_text(f"bucket: b\nendpoint_url: http://127.0.0.1:1\nwatch:\n  roots:\n    - {{path: {root}, profile: p}}\n"
                    "  profiles:\n    p: {compress: true, stable_for: 1s}\n")
    assert "watch section valid: 1 root(s), 1 profile(s)" in ceti("watch", "validate-config", "--config", good, check=0).stdout
    plan = json.loads(ceti("watch", "print-manifest", root / "wt-1", "--config", good, "--json", check=0).stdout)
    assert plan["state"].startswith("complete") and plan["bucket"] == "b"
    assert {f["name"]: f["codec"] for f in plan["files"]} == {"a.csv": "gzip", "b.raw": "flac"}
    assert {f["key"].rsplit("/", 1)[1] for f in plan["files"]} == {"a.csv.gz", "b.flac"}
    r = ceti("watch", "print-manifest", tmp_path, "--config", good, check=2)
    assert "is not a session folder" in r.stderr


def test_one_watcher_per_ledger_and_sigterm_ends_it_cleanly(ceti, s3, bucket, tmp_path):
    root = tmp_path / "in"
    session(root, "s1", {"a.txt": b"a" * 1000})
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n", "    p: {stable_for: 1s}\n")
    proc = subprocess.Popen([str(ceti.bin), "watch", "--config", str(cfg)], env=ceti.env, cwd=ceti.root,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(k.endswith("/_COMPLETE") for k in boto_objects(s3, bucket)) and time.monotonic() < deadline:
            time.sleep(0.2)
        r = watch(ceti, cfg, "--once", check=2)
        assert "another ceti watch is running on the ledger" in r.stderr, r.stderr
        # A session that appears later is picked up by the running watcher's next scan.
        session(root, "s2", {"b.txt": b"b" * 1000})
        while sum(k.endswith("/_COMPLETE") for k in boto_objects(s3, bucket)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(k.endswith("/_COMPLETE") for k in boto_objects(s3, bucket)) == 2
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143 and time.monotonic() - start < 10, (proc.returncode, err)
    assert "SIGTERM" in err, err


def test_a_stalled_upload_is_reported_once_and_the_session_still_completes(ceti, s3, bucket, proxy, tmp_path):
    receiver = Receiver()
    hook = tmp_path / "webhook"
    hook.write_text(f"http://127.0.0.1:{receiver.port}/hook\n")
    root = tmp_path / "in"
    session(root, "s1", {"a.bin": random.Random(5).randbytes(200_000)})
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n", "    p: {stable_for: 1s}\n",
                 extra=f"  notify:\n    webhook_file: {hook}\n    stall_after: 2s\n")
    # The link goes silent for 6 s in the middle of the object's body.
    p = proxy(stall_nth_body=1, stall_seconds=6)
    try:
        r = watch(ceti, cfg, "--once", "--json", endpoint=p.endpoint, check=0)
    finally:
        receiver.stop()
    events = [b["event"] for _, b in receiver.received]
    assert events == ["stalled", "complete"], (events, r.stderr)
    assert "no byte has moved" in r.stderr
    assert json.loads(r.stdout)["uploaded"] == [f"{root}/s1"]


def test_include_regex_max_age_and_depth_pick_the_sessions(ceti, s3, bucket, tmp_path):
    root = tmp_path / "in"
    session(root, "2026-11/wt-a", {"a.txt": b"a"})
    session(root, "2026-11/notes", {"n.txt": b"n"})  # not matching include_regex: never a session
    session(root, "2026-10/wt-old", {"o.txt": b"o"}, age=40 * 86400)  # older than max_age: reported only
    session(root, "wt-shallow", {"s.txt": b"s"})  # depth 1: not a session at depth 2
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n",
                 "    p: {session_depth: 2, include_regex: '^wt-', max_age: 30d, stable_for: 1s}\n")
    r = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert r["uploaded"] == [f"{root}/2026-11/wt-a"], r
    assert {s["name"]: s["state"] for s in r["sessions"]} == {"2026-11/wt-a": "complete", "2026-10/wt-old": "too_old"}
    assert sorted(k.split("/", 2)[2] for k in boto_objects(s3, bucket) if "/_runs/" not in k) == ["2026-11/wt-a/a.txt"]


def test_a_kept_session_that_changes_sends_only_what_is_new(ceti, s3, bucket, tmp_path):
    root = tmp_path / "in"
    s = session(root, "s1", {"a.txt": b"a" * 10, "b.txt": b"b" * 20})
    cfg = config(tmp_path, ceti, bucket, f"    - {{path: {root}, profile: p}}\n", "    p: {stable_for: 1s}\n")
    assert json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)["uploaded"] == [f"{root}/s1"]
    # A file removed: nothing new to send or list; the session stays complete, nothing fails.
    (s / "b.txt").unlink()
    assert json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)["sessions"][0]["state"] == "waiting"
    time.sleep(1.2)
    r = json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)
    assert r["failed"] == [] and {x["name"]: x["state"] for x in r["sessions"]} == {"s1": "complete"}, r
    # A file added: uploaded, and listed by a manifest of its own run.
    (s / "c.txt").write_bytes(b"c" * 30)
    assert json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)["uploaded"] == []  # changed just now
    time.sleep(1.2)
    assert json.loads(watch(ceti, cfg, "--once", "--json", check=0).stdout)["uploaded"] == [f"{root}/s1"]
    objects = boto_objects(s3, bucket)
    manifests = sorted(k for k in objects if k.endswith("/manifest.json"))
    assert len(manifests) == 2 and sum(k.endswith("/_COMPLETE") for k in objects) == 2
    listed = [[e["name"] for e in json.loads(s3_body(s3, bucket)(k))["files"]] for k in manifests]
    assert sorted(map(sorted, listed)) == [["a.txt", "b.txt"], ["c.txt"]], listed
