"""Recording QC (issue #16): generated recordings and sensor files with known defects.

A "defect" tag holds a clean recording, one with a channel zeroed, one with a channel clipped on
2 % of its samples, one with a DC offset that starts 10 minutes after the one before it, and a
sensor CSV with a frozen column and a timestamp jump. A "clean" tag holds clean recordings as
raw PCM, as a FLAC the firmware would write (made with the reference `flac`) and as a WAV, and a
clean CSV. `ceti qc --json` must report exactly those defects, on the right file and channel or
column, and nothing on the clean tag; an ingest of both tags must put the same findings into
each device's manifest (and the ledger, read back by `ceti qc --run`), print the bad tag's
verdict before its clean, and exit 4 with --qc-strict; the HTML report must load in headless
Chromium (screenshot kept in Tests/integration/artifacts/) and name every defect.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import struct
import subprocess
import wave
from html.parser import HTMLParser
from pathlib import Path

import pytest

from test_ingest import boto_objects, fill, ingest_argv, s3_body

RATE = 48_000
SECONDS = 2
FRAMES = RATE * SECONDS
FULL = 32768
START = 1_700_000_000_000
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CONFIG = "data_config_1700000000.txt"
# The tag's own record of its layout (older firmware writes raw PCM): 48 kHz, 16 bit.
CONFIG_TEXT = "audio_sample_rate = 48\naudio_bitdepth =: 16\n"


def channel(seed: int, hz: float) -> list[int]:
    """A -20 dBFS sine plus -50 dBFS uniform noise, in 16-bit samples."""
    r = random.Random(seed)
    amp = FULL * 10 ** (-20 / 20) * math.sqrt(2)
    noise = FULL * 10 ** (-50 / 20) * math.sqrt(3)
    return [round(amp * math.sin(2 * math.pi * hz * i / RATE) + noise * (2 * r.random() - 1)) for i in range(FRAMES)]


def clean(seed: int) -> list[list[int]]:
    return [channel(seed * 10 + c, 1000 + 250 * c) for c in range(3)]


def pcm(planes: list[list[int]], big: bool = True) -> bytes:
    inter = [s for frame in zip(*planes) for s in frame]
    return struct.pack((">" if big else "<") + f"{len(inter)}h", *inter)


def wav(planes: list[list[int]]) -> bytes:
    import io
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(3)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm(planes, big=False))
    return out.getvalue()


def flac(planes: list[list[int]], tmp: Path) -> bytes:
    """As the firmware writes it: libFLAC level 5 (here the reference encoder)."""
    src, out = tmp / "fw.raw", tmp / "fw.flac"
    src.write_bytes(pcm(planes))
    subprocess.run(["flac", "-s", "-f", "-5", "--force-raw-format", "--endian=big", "--sign=signed", "--channels=3",
                    "--bps=16", f"--sample-rate={RATE}", "-o", str(out), str(src)], check=True, timeout=120)
    return out.read_bytes()


def sensor_csv(rows: int, frozen: bool, jump_at: int | None) -> bytes:
    lines = ["Timestamp [us],Pressure [bar],Water Temperature [C]"]
    t = START * 1000
    for i in range(rows):
        if i == jump_at:
            t += 600_000_000  # the logger stopped for 10 minutes
        temp = "12.5" if frozen else f"{12 + (i % 17) / 10:.1f}"
        lines.append(f"{t},{1.0 + (i % 13) / 1000:.3f},{temp}")
        t += 1_000_000
    return ("\n".join(lines) + "\n").encode()


NAMES = {k: f"{START + 2000 * k}.raw" for k in range(3)}
GAPPED = f"{START + 4000 + 600_000}.raw"  # starts 10 minutes after the third
CSV = "data_pressure_temperature.csv"


def defect_files() -> dict[str, bytes]:
    dead = clean(2)
    dead[1] = [0] * FRAMES
    clipped = clean(3)
    # Both rails in turn (no DC of its own), one sample in 50: 2 % clipped, no run of equal samples.
    clipped[2] = [(FULL - 1 if i % 100 == 0 else -FULL) if i % 50 == 0 else s for i, s in enumerate(clipped[2])]
    offset = clean(4)
    offset[0] = [s + round(0.05 * FULL) for s in offset[0]]
    return {
        CONFIG: CONFIG_TEXT.encode(),
        NAMES[0]: pcm(clean(1)),
        NAMES[1]: pcm(dead),
        NAMES[2]: pcm(clipped),
        GAPPED: pcm(offset),
        CSV: sensor_csv(2000, frozen=True, jump_at=1000),
    }


def clean_files(tmp: Path) -> dict[str, bytes]:
    return {
        CONFIG: CONFIG_TEXT.encode(),
        f"{START}.raw": pcm(clean(5)),
        f"{START + 2000}.raw": pcm(clean(6)),
        f"{START + 4000}.flac": flac(clean(7), tmp),
        f"{START + 6000}.wav": wav(clean(8)),
        CSV: sensor_csv(2000, frozen=False, jump_at=None),
    }


# (kind, file, channel, column) → severity: exactly what the defect tag must show.
EXPECTED = {
    ("dead_channel", NAMES[1], 1, None): "bad",
    ("clipping", NAMES[2], 2, None): "bad",
    ("gap", GAPPED, None, None): "bad",
    ("dc_offset", GAPPED, 0, None): "warn",
    ("frozen_column", CSV, None, "Water Temperature [C]"): "warn",
    ("timestamp_gap", CSV, None, "Timestamp [us]"): "warn",
}


def found(problems: list[dict], rename=lambda n: n) -> dict:
    return {(p["kind"], rename(p.get("file")), p.get("channel"), p.get("column")): p["severity"] for p in problems}


def check_measures(files: dict[str, dict]) -> None:
    """The figures behind the findings, against what was generated."""
    for name in (NAMES[0], NAMES[1], NAMES[2], GAPPED):
        a = files[name]["audio"]
        assert a["sample_rate"] == RATE and a["bits_per_sample"] == 16 and a["frames"] == FRAMES
        assert a["duration_seconds"] == pytest.approx(SECONDS)
        assert len(a["channels"]) == 3
    ok = files[NAMES[0]]["audio"]["channels"]
    for c in ok:
        assert c["rms_dbfs"] == pytest.approx(-20, abs=0.1) and not c["dead"] and c["clipped_samples"] == 0
        assert abs(c["dc_offset"]) < 0.001 and 100 <= len(c["envelope"]) <= 400
    dead = files[NAMES[1]]["audio"]["channels"][1]
    assert dead["dead"] and dead["dead_reason"] == "all samples equal" and "rms_dbfs" not in dead
    clip = files[NAMES[2]]["audio"]["channels"][2]
    assert clip["clipped_samples"] == FRAMES // 50 and clip["clipped_share"] == pytest.approx(0.02)
    assert files[GAPPED]["audio"]["channels"][0]["dc_offset"] == pytest.approx(0.05, abs=0.001)
    s = files[CSV]["sensor"]
    assert s["header_present"] and s["rows"] == 2000 and s["timestamp_column"] == "Timestamp [us]"
    assert s["frozen_columns"] == ["Water Temperature [C]"] and s["gap_count"] == 1
    assert s["gaps"][0]["seconds"] == pytest.approx(601) and s["gaps"][0]["row"] == 1002
    assert [x["column"] for x in s["series"]] == ["Pressure [bar]", "Water Temperature [C]"]


@pytest.fixture
def tags_on_disk(tmp_path) -> Path:
    root = tmp_path / "staging"
    for device, files in (("wt-defect", defect_files()), ("wt-clean", clean_files(tmp_path))):
        (root / device).mkdir(parents=True)
        for name, blob in files.items():
            (root / device / name).write_bytes(blob)
    return root


def test_qc_of_a_folder_reports_exactly_the_generated_defects(ceti, tags_on_disk, tmp_path):
    html = tmp_path / "report.html"
    r = ceti("qc", tags_on_disk, "--json", "--html", html, check=None)
    assert r.returncode == 4, r.stderr  # a device is bad
    out = json.loads(r.stdout)
    devices = {d["device"]: d for d in out["devices"]}
    assert devices.keys() == {"wt-defect", "wt-clean"}

    bad = devices["wt-defect"]
    assert bad["verdict"] == "bad"
    assert found(bad["problems"]) == EXPECTED, json.dumps(bad["problems"], indent=1)
    files = {f["name"]: f for f in bad["files"]}
    assert files.keys() == set(NAMES.values()) | {GAPPED, CSV}
    check_measures(files)
    # Each file carries its own findings; the gap is the device's (on the recording after it).
    assert found(files[NAMES[1]]["problems"]) == {k: v for k, v in EXPECTED.items() if k[1] == NAMES[1]}
    assert [(t["name"], t.get("gap_before_seconds")) for t in bad["timeline"]][1:] == [
        (NAMES[1], 0), (NAMES[2], 0), (GAPPED, 598)]

    good = devices["wt-clean"]
    assert good["verdict"] == "ok" and good["problems"] == [], good["problems"]
    assert {f["name"] for f in good["files"]} == {f"{START}.raw", f"{START + 2000}.raw", f"{START + 4000}.flac",
                                                  f"{START + 6000}.wav", CSV}
    for f in good["files"]:
        assert f["problems"] == [] and "error" not in f, f["name"]
        if "audio" in f:
            assert f["audio"]["frames"] == FRAMES and all(c["rms_dbfs"] == pytest.approx(-20, abs=0.1)
                                                          for c in f["audio"]["channels"])
    assert [t.get("gap_before_seconds") for t in good["timeline"]] == [None, 0, 0, 0]
    assert html.is_file()

    # Without --json: one line per device problem is not printed, the summary is.
    r = ceti("qc", tags_on_disk, check=None)
    assert r.returncode == 4 and "2 device(s), 10 file(s): 1 bad, 0 warn, 1 ok" in r.stdout, r.stdout + r.stderr


class PageText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--hide-scrollbars", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/deps.sh installs it)")
def test_the_html_report_opens_in_a_browser_and_names_each_defect(ceti, tags_on_disk, tmp_path):
    html = tmp_path / "qc.html"
    r = ceti("qc", tags_on_disk, "--json", "--html", html, check=None)
    assert r.returncode == 4, r.stderr
    messages = [p["message"] for d in json.loads(r.stdout)["devices"] for p in d["problems"]]
    assert len(messages) == len(EXPECTED)
    page = html.read_text()
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "qc-report.png"
    shot.unlink(missing_ok=True)
    profile = "--user-data-dir=" + str(tmp_path / "chromium-profile")
    cp = chromium(profile, f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri())
    assert cp.returncode == 0 and shot.is_file(), cp.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    cp = chromium(profile, "--dump-dom", html.as_uri())
    assert cp.returncode == 0, cp.stderr
    dom = PageText()
    dom.feed(cp.stdout)
    text = " ".join("".join(dom.text).split())
    for m in messages:
        assert " ".join(m.split()) in text, m
    assert "svg" in dom.tags and "polyline" in dom.tags and "script" not in dom.tags
    assert "wt-defect" in text and "wt-clean" in text


def test_ingest_measures_in_its_passes_and_the_manifest_matches(ceti, s3, bucket, tag_pair, tmp_path, tags_on_disk):
    """Tag 0 holds the defects, tag 1 the clean recordings (its FLAC as the firmware writes it)."""
    defect, good = tag_pair
    want = {defect.name: defect_files(), good.name: clean_files(tmp_path)}
    for t in tag_pair:
        fill(t.data, want[t.name])
    staging = tmp_path / "ingest-staging"
    argv = [str(ceti.bin), *map(str, ingest_argv(ceti, tag_pair, bucket, staging, "--clean", "--qc-strict", "-v"))]
    # stdout and stderr in one pipe, in the order written: the verdict must come before the clean.
    r = subprocess.run(argv, env={**ceti.env, "CETI_TAG_PASSWORD": defect.password}, cwd=ceti.root,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    out = r.stdout
    assert r.returncode == 4, out  # nothing failed, a tag is bad
    verdict = out.index(f"{defect.name}: QC bad")
    assert f"{good.name}: QC ok" in out
    # The firmware's FLAC was measured as it arrived, not read again afterwards.
    assert "QC reads the local copy" not in out, out
    deleted = [i for i, line in enumerate(out.splitlines(keepends=True)) if line.startswith("deleted") and defect.name in line]
    assert deleted, out
    assert verdict < sum(len(x) for x in out.splitlines(keepends=True)[:deleted[0]]), out
    # The verdict never changes what is deleted: the bad tag is wiped of what is proven, as any other.
    assert not any(p.suffix in (".raw", ".csv") for p in defect.data.iterdir()), list(defect.data.iterdir())

    # Each device's manifest holds its files' QC and the verdict; the same as `ceti qc` of the files.
    objects = boto_objects(s3, bucket)
    body = s3_body(s3, bucket)
    manifests = {}
    for key in objects:
        if key.endswith("/manifest.json"):
            m = json.loads(body(key))
            manifests[m["device"]] = m
    m = manifests[defect.name]
    assert m["qc"]["verdict"] == "bad" and "files" not in m["qc"]
    assert found(m["qc"]["problems"]) == EXPECTED
    entries = {e["name"]: e for e in m["files"]}
    assert CONFIG in entries and "qc" not in entries[CONFIG]
    check_measures({n: e["qc"] for n, e in entries.items() if "qc" in e})
    g = manifests[good.name]
    assert g["qc"]["verdict"] == "ok" and g["qc"]["problems"] == []
    assert {n for n, e in ((e["name"], e) for e in g["files"]) if "qc" in e} == set(clean_files(tmp_path)) - {CONFIG}

    # What ingest measured in its passes equals a fresh measurement of the same files.
    fresh = json.loads(ceti("qc", tags_on_disk, "--json", check=None).stdout)
    fresh_files = {(d["device"], f["name"]): f for d in fresh["devices"] for f in d["files"]}
    for device, on_disk in ((defect.name, "wt-defect"), (good.name, "wt-clean")):
        for e in manifests[device]["files"]:
            if "qc" in e:
                assert e["qc"] == fresh_files[(on_disk, e["name"])], (device, e["name"])

    # The ledger kept it: `ceti qc --run` gives the manifest's findings without reading a file.
    shutil.rmtree(staging)
    r = ceti("qc", "--run", m["run_id"], "--json", check=None)
    assert r.returncode == 4, r.stderr
    from_ledger = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
    assert from_ledger[defect.name]["problems"] == m["qc"]["problems"]
    assert from_ledger[defect.name]["timeline"] == m["qc"]["timeline"]
    r = ceti("qc", "--device", good.name, "--json", check=None)
    assert r.returncode == 0 and json.loads(r.stdout)["devices"][0]["verdict"] == "ok", r.stderr


def test_qc_thresholds_come_from_the_config_file(ceti, tags_on_disk):
    cfg = ceti.xdg_config / "ceti" / "config.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    # A looser clipping line and a longer allowed stop: the clipping becomes a warning, the gap is allowed.
    cfg.write_text("qc:\n  clipping_bad_percent: 5\n  gap_bad_seconds: 900\n  gap_warn_seconds: 900\n")
    r = ceti("qc", tags_on_disk / "wt-defect", "--json", check=None)
    assert r.returncode == 4, r.stderr  # the dead channel is still bad
    d = json.loads(r.stdout)["devices"][0]
    assert d["device"] == "wt-defect"
    got = found(d["problems"])
    assert got[("clipping", NAMES[2], 2, None)] == "warn" and ("gap", GAPPED, None, None) not in got

    cfg.write_text("qc:\n  clipping_bad_percent: lots\n")
    r = ceti("qc", tags_on_disk, check=None)
    assert r.returncode == 2 and "qc.clipping_bad_percent" in r.stderr and "line 2" in r.stderr, r.stderr
    cfg.write_text("qc:\n  loudness: 3\n")
    r = ceti("qc", tags_on_disk, check=None)
    assert r.returncode == 2 and "qc.loudness" in r.stderr and "unknown" in r.stderr, r.stderr


def test_qc_usage_errors_and_damaged_input(ceti, tmp_path):
    r = ceti("qc", check=None)
    assert r.returncode == 2 and "give one of DIR, --device or --run" in r.stderr, r.stderr
    r = ceti("qc", tmp_path, "--run", "x", check=None)
    assert r.returncode == 2, r.stderr
    r = ceti("qc", tmp_path / "nowhere", check=None)
    assert r.returncode != 0 and "nowhere" in r.stderr, r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = ceti("qc", empty, check=None)
    assert r.returncode == 1 and "holds no recording" in r.stderr, r.stderr
    r = ceti("qc", "--run", "20990101T000000Z-ffff", check=None)
    assert r.returncode == 1 and "knows no run" in r.stderr, r.stderr

    # A FLAC damaged in transit and a raw cut mid-frame: reported, bad, no crash.
    d = tmp_path / "wt-broken"
    d.mkdir()
    good = flac(clean(9), tmp_path)
    broken = bytearray(good)
    broken[len(broken) // 2] ^= 0xFF
    (d / f"{START}.flac").write_bytes(bytes(broken))
    (d / f"{START + 2000}.raw").write_bytes(pcm(clean(10))[:-3])
    (d / CONFIG).write_text(CONFIG_TEXT)
    (d / "junk.flac").write_bytes(b"not a flac at all")
    r = ceti("qc", d, "--json", check=None)
    assert r.returncode == 4, r.stderr
    dev = json.loads(r.stdout)["devices"][0]
    kinds = {(p["kind"], p["file"]) for p in dev["problems"]}
    assert ("damaged", f"{START}.flac") in kinds and ("damaged", f"{START + 2000}.raw") in kinds
    assert ("damaged", "junk.flac") in kinds
