"""Usage errors exit 2 (the argument parser's too), a damaged ledger stops every command before
it touches a file, and the config file's values are checked and named as the file's."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

SUBCOMMANDS = ["ingest", "whaletag", "general_offload", "compress", "s3upload", "qc", "status"]

# Words of SQL that must never reach the operator.
SQL_WORDS = re.compile(r"\b(PRAGMA|SELECT|INSERT|UPDATE|DELETE FROM|CREATE|BEGIN|COMMIT|WHERE|journal_mode)\b")


def inputs(tmp_path: Path) -> Path:
    """A folder of work for any command: a CSV and a raw file under a device folder."""
    d = tmp_path / "in" / "wt-0a1b2c"
    d.mkdir(parents=True, exist_ok=True)
    (d / "sensors.csv").write_text("t,depth\n" + "".join(f"{i},{i * 0.5}\n" for i in range(2000)))
    (d / "audio.raw").write_bytes(bytes(range(256)) * 60)  # 15360 bytes: whole 3-channel 16-bit frames
    return tmp_path / "in"


def snapshot(root: Path) -> dict[str, str]:
    """Every file below root (and root's own files) → its SHA-256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def positional(sub: str, tmp_path: Path) -> list[str]:
    """The arguments a subcommand requires, so that only the error under test is wrong."""
    work = inputs(tmp_path)
    return {
        "ingest": [],
        "whaletag": [],
        "general_offload": [str(work), "CETI-TEST-1"],
        "compress": [str(work)],
        "s3upload": [str(work)],
        "qc": [str(work)],
        "status": [],
    }[sub]


def assert_parser_usage_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stdout == "", r.stdout
    assert "Usage: ceti" in r.stderr, r.stderr  # the parser's own usage text is kept
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


# ---- the argument parser's errors exit 2 ------------------------------------------------

@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_unknown_flag_exits_2(ceti, tmp_path, sub):
    args = positional(sub, tmp_path)
    before = snapshot(tmp_path / "in")
    r = ceti(sub, *args, "--bogus")
    assert_parser_usage_error(r, "Unknown option '--bogus'")
    assert snapshot(tmp_path / "in") == before
    assert not ceti.ledger.exists()


# Each subcommand's own numeric option (general_offload and status have none).
NUMERIC = {"ingest": "--jobs", "whaletag": "--tag-jobs", "compress": "--jobs", "s3upload": "--jobs", "qc": "--jobs"}


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_non_numeric_value_exits_2(ceti, tmp_path, sub):
    if sub not in NUMERIC:
        pytest.skip(f"{sub} has no numeric option")
    r = ceti(sub, *positional(sub, tmp_path), NUMERIC[sub], "abc")
    assert_parser_usage_error(r, "'abc'", "invalid")
    assert not ceti.ledger.exists()


# The positional arguments each subcommand requires (ingest, whaletag and status have none: what
# they need besides, such as -t/-l/-a or a bucket, is checked after parsing and exits 2 as well).
REQUIRED = {
    "general_offload": ([], "<source>"),
    "compress": ([], "<directories>"),
    "s3upload": ([], "<directories>"),
}


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_missing_required_argument_exits_2(ceti, tmp_path, sub):
    if sub not in REQUIRED:
        pytest.skip(f"{sub} has no required positional argument")
    args, name = REQUIRED[sub]
    r = ceti(sub, *args)
    assert_parser_usage_error(r, "Missing expected argument", name)


def test_general_offload_needs_its_device_id_too(ceti, tmp_path):
    r = ceti("general_offload", inputs(tmp_path))
    assert_parser_usage_error(r, "Missing expected argument", "<device-id>")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_option_without_its_value_exits_2(ceti, tmp_path, sub):
    r = ceti(sub, *positional(sub, tmp_path), "--ledger")
    assert_parser_usage_error(r, "Missing value for '--ledger <ledger>'")


def test_validation_and_run_time_usage_errors_stay_2(ceti, tmp_path):
    # Found by ceti after parsing (not by the parser): the same status.
    r = ceti("whaletag")
    assert r.returncode == 2 and "-l" in r.stderr, r.stderr
    r = ceti("compress", "--jobs", "0", inputs(tmp_path))
    assert r.returncode == 2 and "--jobs 0" in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["help"], ["--version"], ["help", "compress"],
                                  *[[s, "--help"] for s in SUBCOMMANDS]])
def test_help_and_version_exit_0_on_stdout(ceti, args):
    r = ceti(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and r.stderr == "", r.stderr


def test_root_help_documents_the_exit_codes(ceti):
    text = " ".join(ceti("--help", check=0).stdout.split())
    assert "Exit status: 0 success" in text
    assert "1 some work failed" in text and "a damaged or locked ledger" in text
    assert "2 usage or configuration error" in text


# ---- a damaged ledger ------------------------------------------------------------------

def quick_check(path: Path) -> str | None:
    """What SQLite's PRAGMA quick_check says is wrong with the file (None: sound)."""
    c = sqlite3.connect(path)
    try:
        rows = c.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        c.close()
    return None if rows == [("ok",)] else repr(rows)


def garbage_ledger(ceti, tmp_path) -> None:
    ceti.ledger.write_bytes(bytes((i * 131 + 7) % 251 for i in range(16384)))
    assert quick_check(ceti.ledger) is not None


def corrupted_ledger(ceti, tmp_path) -> None:
    """A real ledger (compress recorded a derivative in it) with page 2's bytes overwritten."""
    first = tmp_path / "first" / "wt-0a1b2c"
    first.mkdir(parents=True)
    (first / "x.csv").write_text("a,b\n1,2\n" * 500)
    ceti("compress", tmp_path / "first", check=0)
    assert quick_check(ceti.ledger) is None  # sound, and the WAL now checkpointed into the file
    for suffix in ("-wal", "-shm"):
        assert not Path(str(ceti.ledger) + suffix).exists()
    data = bytearray(ceti.ledger.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) >= 3 * page
    data[page:page + 64] = b"\x5a" * 64  # page 2: its header and cell pointers
    ceti.ledger.write_bytes(bytes(data))
    assert quick_check(ceti.ledger) is not None


def command(sub: str, ceti, tmp_path, work: Path, bucket: str) -> list[str]:
    s3 = ["--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint]
    registry = tmp_path / "ids.txt"
    registry.write_text("CETI-TEST-1\n")
    return {
        "compress": ["compress", work],
        "compress --dry-run": ["compress", "--dry-run", work],
        "status": ["status"],
        "s3upload": ["s3upload", *s3, work],
        "s3upload --dry-run": ["s3upload", "--dry-run", *s3, work],
        "general_offload": ["general_offload", "--registry", registry, "--data-dir", tmp_path / "data", work / "wt-0a1b2c",
                            "CETI-TEST-1", tmp_path / "staging"],
        "whaletag": ["whaletag", "-t", "127.0.0.1:1", "--data-dir", tmp_path / "data"],
        "ingest": ["ingest", "-t", "127.0.0.1:1", "--staging", tmp_path / "staging", *s3],
    }[sub]


@pytest.mark.parametrize("damage", [garbage_ledger, corrupted_ledger], ids=["garbage", "corrupted-page"])
@pytest.mark.parametrize("sub", ["compress", "compress --dry-run", "status", "s3upload", "s3upload --dry-run",
                                 "general_offload", "whaletag", "ingest"])
def test_damaged_ledger_stops_every_command_first(ceti, s3, bucket, tmp_path, damage, sub):
    damage(ceti, tmp_path)
    work = inputs(tmp_path)
    before, ledger_before = snapshot(work), ceti.ledger.read_bytes()
    r = ceti(*command(sub, ceti, tmp_path, work, bucket), timeout=120)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert str(ceti.ledger) in line and "damaged" in line, line
    assert f"mv {ceti.ledger} {ceti.ledger}.damaged" in line and "restore" in line, line
    assert not SQL_WORDS.search(line), line
    # Nothing touched: inputs byte-identical (nothing compressed or removed), nothing written,
    # nothing uploaded, the ledger as it was.
    assert snapshot(work) == before
    assert not (tmp_path / "data").exists() and not (tmp_path / "staging").exists()
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert ceti.ledger.read_bytes() == ledger_before


def test_moving_the_damaged_ledger_aside_lets_ceti_start_anew(ceti, tmp_path):
    garbage_ledger(ceti, tmp_path)
    work = inputs(tmp_path)
    assert ceti("compress", "--keep", work).returncode == 1
    os.rename(ceti.ledger, f"{ceti.ledger}.damaged")
    ceti("compress", "--keep", work, check=0)
    assert quick_check(ceti.ledger) is None
    assert (work / "wt-0a1b2c" / "sensors.csv.gz").exists()


# ---- the config file -------------------------------------------------------------------

def write_config(ceti, text: str) -> Path:
    cfg = ceti.xdg_config / "ceti" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text)
    return cfg


@pytest.mark.parametrize("text,key,line,words", [
    ("bucket: b\njobs: four\n", "jobs", 2, ["four", "not a number"]),
    ("bucket: [a, b]\n", "bucket", 1, ["a list"]),
    ("prefix: raw\nendpoint_url:\n  host: x\n", "endpoint_url", 2, ["a mapping"]),
    ("ledger: [x]\n", "ledger", 1, ["a list"]),
])
@pytest.mark.parametrize("sub", ["s3upload", "status", "compress"])
def test_config_value_of_the_wrong_type_exits_2(ceti, bucket, tmp_path, text, key, line, words, sub):
    cfg = write_config(ceti, text)
    work = inputs(tmp_path)
    before = snapshot(work)
    args = {"s3upload": ["s3upload", "--bucket", bucket, "--endpoint-url", ceti.s3env.endpoint, work],
            "status": ["status"], "compress": ["compress", work]}[sub]
    r = ceti(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"config file {cfg}, line {line}: {key}:" in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert snapshot(work) == before and not ceti.ledger.exists()


@pytest.mark.parametrize("text,key,flag", [
    ("jobs: 99\n", "jobs", "--jobs"),
    ("part_size: 1k\n", "part_size", "--part-size"),
    ("bwlimit: fast\n", "bwlimit", "--bwlimit"),
    ("key_template: '{prefix}/{bogus}'\n", "key_template", "--key-template"),
    ("endpoint_url: ftp//nowhere\n", "endpoint_url", "--endpoint-url"),
])
def test_bad_config_value_is_reported_as_the_files(ceti, bucket, tmp_path, text, key, flag):
    cfg = write_config(ceti, f"bucket: {bucket}\n" + text)
    r = ceti("s3upload", inputs(tmp_path))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert f"config file {cfg}, line 2: {key}:" in r.stderr, r.stderr
    assert flag not in r.stderr, r.stderr
    assert not ceti.ledger.exists()


def test_a_flag_overrides_the_files_value(ceti, s3, bucket, tmp_path):
    # A flag given beside a well-typed but out-of-range file value: the flag is used.
    write_config(ceti, f"bucket: {bucket}\nendpoint_url: {ceti.s3env.endpoint}\njobs: 99\n")
    ceti("s3upload", "--jobs", "2", inputs(tmp_path), check=0)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 2


def test_tilde_in_a_config_path_is_home(ceti, tmp_path):
    write_config(ceti, "ledger: ~/ledgers/l.sqlite\n")
    work = inputs(tmp_path)
    ceti("compress", "--keep", work, env_extra={"CETI_LEDGER": None}, check=0)
    ledger = ceti.home / "ledgers" / "l.sqlite"
    assert ledger.is_file() and quick_check(ledger) is None
    assert not list(ceti.root.rglob("~")) and not list(work.rglob("~"))
    r = ceti("status", "--json", env_extra={"CETI_LEDGER": None}, check=0)
    assert str(ledger) in r.stdout
