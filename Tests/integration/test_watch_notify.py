"""ceti watch test-notify (issue #15): one `test` event to each channel of watch.notify, against a
real SMTP server (aiosmtpd, with AUTH over plain smtp://) and a local webhook receiver; the webhook
URL (a token in its path) and the SMTP password never reach stdout, stderr, the log or the ledger.
With both peers gone: exit 1, one line per channel, still no secret."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

TOKEN = "T0CETI42/B0NOTIFY7/xq9SecretWebhookToken"
USER = "ceti-mailer"
PASSWORD = "Smtp-Pa55word-n0t-for-logs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    """http.server on a thread, recording each POST (path, headers, body) and answering 200."""

    def __init__(self):
        posts = self.posts = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler: keeps each message with its envelope and whether the session logged in."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.authenticated))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


def write_config(tmp_path: Path, webhook_url: str, smtp_port: int) -> Path:
    (tmp_path / "webhook").write_text(webhook_url + "\n")
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    (tmp_path / "incoming").mkdir(exist_ok=True)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""\
watch:
  roots:
    - {{path: {tmp_path / "incoming"}, profile: tag_session}}
  profiles:
    tag_session: {{session_depth: 1}}
  notify:
    webhook_file: {tmp_path / "webhook"}
    email:
      smtp_url: smtp://127.0.0.1:{smtp_port}
      from: ceti@boat.example
      to: [ops@example.org]
      user: {USER}
      password_file: {tmp_path / "smtp-password"}
    on: [complete, failed]
""")
    return cfg


def assert_no_secret(ceti, r, log: Path, webhook_url: str):
    ledger = ceti.ledger.read_bytes().decode("latin-1") if ceti.ledger.exists() else ""
    for where, text in (("stdout", r.stdout), ("stderr", r.stderr), ("log", log.read_text()), ("ledger", ledger)):
        for secret in (webhook_url, TOKEN, "SecretWebhookToken", PASSWORD):
            assert secret not in text, f"{where} shows {secret!r}:\n{text}"


def test_test_notify_reaches_webhook_and_smtp_and_shows_no_secret(ceti, tmp_path):
    hook = Webhook()
    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, auth_require_tls=False)
    smtp.start()
    webhook_url = f"http://127.0.0.1:{hook.port}/services/{TOKEN}"
    cfg = write_config(tmp_path, webhook_url, smtp.port)
    log = tmp_path / "notify.log"
    mail_channel = f"e-mail to ops@example.org via smtp://127.0.0.1:{smtp.port}"
    try:
        r = ceti("watch", "test-notify", "--config", cfg, "--log-file", log, "-vv", check=0, timeout=120)
    finally:
        hook.stop()
        smtp.stop()
    assert r.stdout.splitlines() == ["webhook: delivered", f"{mail_channel}: delivered"], r.stdout + r.stderr

    # The webhook: one POST of the JSON, every field, `text` for Slack.
    assert len(hook.posts) == 1, hook.posts
    path, headers, body = hook.posts[0]
    assert path == f"/services/{TOKEN}"
    assert headers.get("Content-Type") == "application/json"
    event = json.loads(body)
    assert set(event) == {"event", "session", "root", "files", "bytes", "errors", "text", "host", "at"}, event
    assert event["event"] == "test" and event["files"] == 0 and event["errors"] == [] and "test notification" in event["text"]

    # The mail: one message, logged in, with the event's text as its subject and its fields in the body.
    assert len(box.messages) == 1, box.messages
    mail_from, rcpt, content, authenticated = box.messages[0]
    assert (mail_from, rcpt, authenticated) == ("ceti@boat.example", ["ops@example.org"], True)
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["Subject"] == event["text"] and msg["From"] == "ceti@boat.example" and msg["To"] == "ops@example.org"
    assert msg["Message-ID"] and msg["Date"] and msg.get_content_type() == "text/plain"
    text = msg.get_content()
    for line in ("event:    test", "session:  test", "files:    0", "bytes:    0 B (0 bytes)", f"host:     {event['host']}",
                 f"time:     {event['at']}"):
        assert line in text, text
    assert_no_secret(ceti, r, log, webhook_url)

    # Both peers gone: each channel fails in its own line, exit 1, and still no secret anywhere.
    r = ceti("watch", "test-notify", "--config", cfg, "--log-file", log, "-vv", check=1, timeout=120)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("webhook: failed: ") and lines[1].startswith(f"{mail_channel}: failed: "), r.stdout
    assert "Couldn't connect" in r.stdout or "Connection refused" in r.stdout, r.stdout
    assert_no_secret(ceti, r, log, webhook_url)


def test_test_notify_without_a_channel_is_a_usage_error(ceti, tmp_path):
    (tmp_path / "incoming").mkdir()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""\
watch:
  roots: [{{path: {tmp_path / "incoming"}, profile: p}}]
  profiles: {{p: {{session_depth: 1}}}}
  notify: {{on: [failed]}}
""")
    r = ceti("watch", "test-notify", "--config", cfg, check=2)
    assert r.stdout == "" and len(r.stderr.splitlines()) == 1 and "watch.notify names no channel" in r.stderr, r.stderr
