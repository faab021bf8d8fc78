"""One CLI convention (issue #12): -n/--dry-run on every command that changes anything, the
original Project-CETI spellings, --config everywhere, --bwlimit off, --bucket s3://B/PREFIX,
-v/-vv, EXAMPLES in every --help, and the man pages and completions `make install` puts in place.

Nothing here reaches a tag: tag commands are pointed at 127.0.0.1:1 (refused at once) or at a
/32 with nothing on the port, so they fail fast; "parses" means "not exit 2 (usage error)".
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["ingest", "whaletag", "general_offload", "compress", "s3upload", "verify", "restore", "watch", "qc", "status"]
DEVICE = "CETI-DJI_MINI2-1"
NOWHERE = "127.0.0.1:1"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def keys(s3, bucket) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


# ---- -n / --dry-run ---------------------------------------------------------------------
def test_compress_n_writes_nothing_and_t_is_gone(ceti, tmp_path):
    root = tmp_path / "in"
    write(root / "wt-1" / "a.raw", os.urandom(6 * 960))
    write(root / "wt-1" / "s.csv", b"t,x\n1,2\n")
    before = files_under(root)
    r = ceti("compress", "-n", root, check=0)
    assert "would-compress" in r.stdout
    assert files_under(root) == before
    assert not ceti.ledger.exists()
    r = ceti("compress", "--dry-run", "--json", root, check=0)
    assert files_under(root) == before and not ceti.ledger.exists()
    # compress is ceti's own (the original had raw2flac.sh, no flags): -t has no third meaning.
    r = ceti("compress", "-t", root, check=2)
    assert "-t" in r.stderr
    assert files_under(root) == before


@pytest.mark.parametrize("flag", ["-n", "-t", "--dry-run"])
def test_s3upload_dry_run_spellings_upload_nothing(ceti, s3, bucket, tmp_path, flag):
    root = tmp_path / "up"
    write(root / "wt-1" / "x.flac", b"x" * 1000)
    r = ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, flag, root, check=0)
    assert "would-upload" in r.stdout
    assert keys(s3, bucket) == []


@pytest.mark.parametrize("flag", ["-n", "-t", "--dry-run"])
def test_general_offload_dry_run_spellings_copy_nothing(ceti, tmp_path, flag):
    card = tmp_path / "card"
    write(card / "DCIM" / "a.mp4", b"video")
    (tmp_path / "ids.txt").write_text(DEVICE + "\n")
    data = tmp_path / "data"
    # The original's positional form: SRC ID TMP.
    ceti("general_offload", flag, "--registry", tmp_path / "ids.txt", "--data-dir", data,
         card, DEVICE, tmp_path / "tmp", check=0)
    assert files_under(data) == [] and not (tmp_path / "tmp").exists()
    assert not ceti.ledger.exists()


def test_whaletag_and_ingest_n_parse_and_write_nothing(ceti, bucket, tmp_path):
    data = tmp_path / "data"
    r = ceti("whaletag", "-n", "-t", NOWHERE, "--data-dir", data)
    assert r.returncode == 1, r.stderr
    assert files_under(data) == []
    staging = tmp_path / "staging"
    r = ceti("ingest", "-n", "-t", NOWHERE, "--staging", staging, "--bucket", bucket,
             "--endpoint-url", ceti.s3env.endpoint)
    assert r.returncode == 1, r.stderr
    assert not any(p.is_file() for p in staging.rglob("*")) if staging.exists() else True


# ---- the original tool's spellings -------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["-a", "--subnet", "127.0.0.9/32", "--port", "1"],
    ["-ca", "--require", "local", "--subnet", "127.0.0.9/32", "--port", "1"],
    ["-ct", NOWHERE, "--require", "local"],
    ["-t", NOWHERE],
    ["-l", "--subnet", "127.0.0.9/32", "--port", "1"],
], ids=["a", "ca", "ct", "t", "l"])
def test_whaletag_original_spellings_parse(ceti, tmp_path, argv):
    r = ceti("whaletag", *argv, "--data-dir", tmp_path / "data", timeout=60)
    assert r.returncode != 2, r.stderr
    assert "Unknown option" not in r.stderr and "Error:" not in r.stderr


# ---- --config on every command -------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_config_flag_on_every_command(ceti, tmp_path, command):
    missing = tmp_path / "no-such-config.yaml"
    argv = {
        "ingest": ["ingest", "-n", "-t", NOWHERE, "--bucket", "b"],
        "whaletag": ["whaletag", "-t", NOWHERE],
        "general_offload": ["general_offload", "-n", "--registry", tmp_path, tmp_path, DEVICE],
        "compress": ["compress", "-n", tmp_path],
        "s3upload": ["s3upload", "-n", "--bucket", "b", tmp_path],
        "verify": ["verify", "--bucket", "b"],
        "restore": ["restore", tmp_path / "manifest.json", tmp_path / "out"],
        "watch": ["watch", "--once"],
        "qc": ["qc", tmp_path],
        "status": ["status"],
    }[command]
    r = ceti(*argv, "--config", missing, check=2)
    assert str(missing) in r.stderr


def test_compress_config_file_names_the_ledger(ceti, tmp_path):
    root = tmp_path / "in"
    write(root / "s.csv", b"t,x\n1,2\n")
    ledger = tmp_path / "from-config.sqlite"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"ledger: {ledger}\n")
    ceti("compress", "--config", cfg, root, check=0, env_extra={"CETI_LEDGER": None})
    assert ledger.exists() and (root / "s.csv.gz").exists()


# ---- --bwlimit off, --bucket s3://B/PREFIX, -vv ----------------------------------------------
def test_bwlimit_off_and_bucket_url_prefix(ceti, s3, bucket, tmp_path):
    root = tmp_path / "up"
    write(root / "wt-1" / "x.flac", b"y" * 2000)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("bwlimit: 1k\n")  # a crawl, unless --bwlimit off lifts it
    r = ceti("s3upload", "--bucket", f"s3://{bucket}/pre", "--endpoint-url", ceti.s3env.endpoint,
             "--config", cfg, "--bwlimit", "off", "-vv", root, check=0, timeout=60)
    (key,) = keys(s3, bucket)
    assert key.startswith("pre/") and key.endswith("/wt-1/x.flac"), key
    assert "bwlimit off" in r.stderr and "prefix pre" in r.stderr
    # -vv: one line per S3 request (method, operation, key, status, time), never a header.
    assert f"PUT PutObject {key}: HTTP 200 in " in r.stderr, r.stderr
    assert "GET ListObjectsV2" in r.stderr and ceti.s3env.secret_key not in r.stderr
    assert "Authorization" not in r.stderr and "Signature=" not in r.stderr
    # -v alone does not print the settings.
    r = ceti("s3upload", "--bucket", f"s3://{bucket}/", "--endpoint-url", ceti.s3env.endpoint, "-v", "-n", root, check=0)
    assert "bwlimit" not in r.stderr and "HTTP 200 in" not in r.stderr
    # A plain name still works, with the default prefix.
    ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, root, check=0)
    assert any(k.startswith("raw/") for k in keys(s3, bucket))


def test_bwlimit_timetable_follows_the_local_time(ceti, s3, bucket, tmp_path):
    """rclone's form "HH:MM,RATE ...": the entry whose time last passed is in force."""
    import time
    root = tmp_path / "up"
    write(root / "wt-1" / "big.flac", os.urandom(1 << 20))
    now = time.localtime()
    here, later = f"{now.tm_hour:02d}:{now.tm_min:02d}", f"{(now.tm_hour + 2) % 24:02d}:{now.tm_min:02d}"

    def upload(table: str, prefix: str) -> tuple[float, str]:
        start = time.monotonic()
        r = ceti("s3upload", "--bucket", f"s3://{bucket}/{prefix}", "--endpoint-url", ceti.s3env.endpoint,
                 "--bwlimit", table, "-vv", root, check=0, timeout=120)
        return time.monotonic() - start, r.stderr

    slow, err = upload(f"{here},256k {later},off", "slow")
    assert slow >= 3.0, slow  # 1 MiB at 256 KiB/s
    assert f"{here} 256.0 KiB/s" in err and f"{later} off" in err, err  # -vv: the timetable in force
    fast, _ = upload(f"{here},off {later},256k", "fast")
    assert fast < slow / 2, (fast, slow)
    assert len(keys(s3, bucket)) == 2


@pytest.mark.parametrize("extra", [
    ["--bucket", "s3://"], ["--bucket", "s3:///pre"], ["--bucket", "s3://b/pre", "--prefix", "other"],
    ["--bucket", "b", "--bwlimit", "offf"], ["--bucket", "b", "--bwlimit", "25:00,1M"],
    ["--bucket", "b", "--bwlimit", "06:00,1M 06:00,off"],
])
def test_bucket_url_and_bwlimit_usage_errors(ceti, tmp_path, extra):
    ceti("s3upload", *extra, "--endpoint-url", "http://127.0.0.1:1", tmp_path, check=2)


# ---- help, man pages, completions --------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS + [None])
def test_every_help_ends_with_examples(ceti, command):
    for argv in ([command, "--help"], ["help", command]) if command else (["--help"], ["-h"]):
        text = ceti(*argv, check=0).stdout
        head, _, examples = text.rpartition("\nEXAMPLES:\n")
        assert head, text
        lines = [l for l in examples.splitlines() if l.strip()]
        assert 2 <= len(lines) <= 4
        assert all(l.strip().startswith("ceti " + (command or "")) for l in lines)
        assert "OPTIONS:" in head or "SUBCOMMANDS:" in head


def test_j_counts_files_everywhere_and_tags_have_their_own_name(ceti):
    """-j/--jobs is files worked on at once (compressed, or sent to S3); tags at once are
    --tag-jobs in whaletag and ingest alike, so -j never means a third thing."""
    for command in ("compress", "s3upload", "ingest"):
        text = ceti(command, "--help").stdout
        assert "-j, --jobs" in text, command
    for command in ("whaletag", "ingest"):
        assert "--tag-jobs" in ceti(command, "--help").stdout, command
    r = ceti("whaletag", "-j", "2", "-t", NOWHERE, check=2)
    assert "-j" in r.stderr, r.stderr


def test_make_install_man_pages_and_completions(ceti, tmp_path):
    tool = REPO / ".build" / "debug" / "generate-manual-tool"
    tool = tool if tool.exists() else next((REPO / ".build").glob("*/debug/generate-manual-tool"), None)
    prefix, pages = tmp_path / "prefix", tmp_path / "man-build"
    make = ["make", "-C", str(REPO), "-o", "release", "install", f"PREFIX={prefix}", f"CETI_BIN={ceti.bin}",
            f"MANPAGES={pages}", "CETI_USER=fieldops"]
    if tool is not None:  # else the plugin (a release build)
        make.append(f"GENERATE_MANUAL={tool} {ceti.bin} --multi-page -o {pages}")
    subprocess.run(make, check=True, capture_output=True, timeout=900)
    assert (prefix / "bin" / "ceti").exists()
    man1 = prefix / "share" / "man" / "man1"
    assert {p.name for p in man1.iterdir()} >= {f"ceti-{c}.1" for c in COMMANDS} | {"ceti.1", "ceti-watch-run.1"}
    # The watcher's systemd unit: runs the installed ceti as the chosen user, not restarted on a config error.
    unit = (prefix / "lib" / "systemd" / "system" / "ceti-watch.service").read_text()
    assert f"ExecStart={prefix}/bin/ceti watch" in unit and "User=fieldops" in unit and "RestartPreventExitStatus=2" in unit
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", str(prefix / "lib" / "systemd" / "system" / "ceti-watch.service")],
                           capture_output=True, text=True, env={**os.environ, "MANPATH": str(prefix / "share" / "man")})
        # Its man page is checked above (`man` may not be installed); anything else would be a unit error.
        assert [l for l in r.stderr.splitlines() if "'man " not in l] == [], r.stderr
    if shutil.which("man"):
        out = subprocess.run(["man", "-l", str(man1 / "ceti-ingest.1")], capture_output=True, text=True,
                             env={**os.environ, "MANPAGER": "cat", "PAGER": "cat"}, check=True).stdout
        assert "--dry-run" in out and "EXAMPLES" in out
        out = subprocess.run(["man", "ceti-ingest"], capture_output=True, text=True, check=True,
                             env={**os.environ, "MANPATH": str(prefix / "share" / "man"), "MANPAGER": "cat"}).stdout
        assert "ceti ingest" in out
    for p in ("share/zsh/site-functions/_ceti", "share/fish/vendor_completions.d/ceti.fish"):
        assert (prefix / p).stat().st_size > 0

    # bash: `ceti compress --ledger <TAB>` lists files; `--require <TAB>` its two values.
    here = tmp_path / "cwd"
    write(here / "ledger-one.sqlite", b"")
    (here / "sub").mkdir()
    script = prefix / "share" / "bash-completion" / "completions" / "ceti"

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        prog = f"""
            source {script}
            COMP_WORDS=({' '.join(repr(w) if w else '""' for w in words)})
            COMP_CWORD={len(words) - 1}
            COMP_LINE={line!r}
            COMP_POINT=${{#COMP_LINE}}
            fn=$(complete -p ceti | sed 's/.*-F \\([^ ]*\\) .*/\\1/')
            "$fn" ceti {words[-1] or '""'} {words[-2]}
            printf '%s\\n' "${{COMPREPLY[@]}}"
        """
        cp = subprocess.run(["bash", "-c", prog], cwd=here, capture_output=True, text=True, check=True, timeout=30)
        return [l for l in cp.stdout.splitlines() if l]

    assert "ledger-one.sqlite" in complete("ceti", "compress", "--ledger", "")
    assert set(complete("ceti", "whaletag", "--require", "")) == {"uploaded", "local"}
    assert set(complete("ceti", "compress", "--endian", "")) == {"big", "little"}


def test_log_file_appends_every_printed_line_time_stamped_and_no_secret(ceti, bucket, tmp_path):
    import re as _re

    write(tmp_path / "up" / "wt-a" / "a.csv", b"t,v\n1,2\n")
    log = tmp_path / "logs" / "run.log"
    log.parent.mkdir()
    r1 = ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--log-file", log, "-v",
              tmp_path / "up", check=0)
    r2 = ceti("s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, "--log-file", log, "-v",
              tmp_path / "up", check=0)
    lines = log.read_text().splitlines()
    stamp = _re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (out|err) ")
    assert lines and all(stamp.match(l) for l in lines), lines
    printed = [l for r in (r1, r2) for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    logged = [stamp.sub("", l) for l in lines]
    assert sorted(logged) == sorted(printed)  # every line, from both runs (appended)
    assert ceti.s3env.secret_key not in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"

    r = ceti("compress", "--log-file", tmp_path / "no" / "such" / "dir.log", tmp_path / "up")
    assert r.returncode == 2 and "--log-file" in r.stderr
