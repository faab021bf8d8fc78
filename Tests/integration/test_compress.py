"""compress, checked with the reference tools: `flac -t`, `flac -d` (bit-exact), `gzip -t`, `gunzip -c`."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import time
import wave
from pathlib import Path

import pytest

MiB = 1 << 20


def pcm(frames: int, channels: int, bps: int, endian: str, seed: int = 1) -> bytes:
    """Hydrophone-like audio: a tone plus noise, as raw interleaved PCM."""
    rnd = random.Random(seed)
    amp = 2000 if bps == 16 else 500_000
    out = bytearray()
    for i in range(frames):
        for c in range(channels):
            v = int(amp * math.sin((i + 37 * c) / 23.0) + rnd.gauss(0, amp / 20))
            if bps == 16:
                out += struct.pack(">h" if endian == "big" else "<h", max(-32768, min(32767, v)))
            else:
                b = (v & 0xFFFFFF).to_bytes(3, "big")
                out += b if endian == "big" else b[::-1]
    return bytes(out)


def flac_decode(flac: Path, out: Path, *, endian: str, sign: str = "signed") -> bytes:
    subprocess.run(["flac", "-d", "-s", "-f", "--force-raw-format", f"--endian={endian}", f"--sign={sign}",
                    "-o", str(out), str(flac)], check=True)
    return out.read_bytes()


def compress(ceti, *args, check=None):
    return ceti("compress", *[str(a) for a in args], check=check)


CASES = [  # channels, bits, rate, endian: every channel count, both widths, both orders, three rates
    (1, 16, 48000, "big"), (2, 16, 96000, "little"), (3, 16, 96000, "big"), (4, 24, 192000, "big"),
    (5, 24, 48000, "little"), (6, 16, 192000, "little"), (7, 24, 96000, "big"), (8, 16, 48000, "big"),
    (3, 24, 96000, "little"), (2, 24, 192000, "big"),
]


@pytest.mark.parametrize("channels,bps,rate,endian", CASES)
def test_flac_is_bit_exact_for_every_layout(ceti, tmp_path, channels, bps, rate, endian):
    src = tmp_path / "in" / "wt-x"
    src.mkdir(parents=True)
    raw = pcm(rate // 8, channels, bps, endian)
    (src / "1700000000000.raw").write_bytes(raw)
    r = compress(ceti, "--channels", channels, "--bps", bps, "--sample-rate", rate, "--endian", endian, "--json",
                 tmp_path / "in", check=0)
    (f,) = json.loads(r.stdout)["files"]
    assert f["action"] == "compressed" and f["original_removed"] is True
    out = src / "1700000000000.flac"
    assert not (src / "1700000000000.raw").exists()
    subprocess.run(["flac", "-t", "-s", str(out)], check=True)
    assert flac_decode(out, tmp_path / "back.raw", endian=endian) == raw
    info = subprocess.run(["metaflac", "--show-channels", "--show-bps", "--show-sample-rate", str(out)],
                          capture_output=True, text=True, check=True).stdout.split()
    assert info == [str(channels), str(bps), str(rate)]


def test_a_raw_takes_its_tags_data_config_and_a_bin_its_name(ceti, tmp_path):
    """Firmware 2.3.0's data_config (quirk `=:` included) says 24-bit 48 kHz; the .bin of the next
    generation says its layout in its name; the options say something else for both."""
    src = tmp_path / "in" / "wt-x"
    src.mkdir(parents=True)
    (src / "data_config_1700000000000000.txt").write_text(
        "# Deployment Timestamp: 1700000000000000\naudio_filter = sinc5\naudio_bitdepth =: 24\n"
        "audio_sample_rate = 48 # KHz\nrec_enabled = true\n")
    raw = pcm(6000, 3, 24, "big")
    (src / "1700000100000.raw").write_bytes(raw)
    binary = pcm(5000, 2, 16, "little", seed=2)
    (src / "1700000200000000.le.16bit.2ch.44100sps.bin").write_bytes(binary)
    other = src / "firmware.bin"
    other.write_bytes(b"\x00" * 10)
    compress(ceti, "--bps", "16", "--sample-rate", "96000", tmp_path / "in", check=0)
    for flac, layout, endian, original in [
        (src / "1700000100000.flac", ["3", "24", "48000"], "big", raw),
        (src / "1700000200000000.le.16bit.2ch.44100sps.flac", ["2", "16", "44100"], "little", binary),
    ]:
        info = subprocess.run(["metaflac", "--show-channels", "--show-bps", "--show-sample-rate", str(flac)],
                              capture_output=True, text=True, check=True).stdout.split()
        assert info == layout, flac.name
        assert flac_decode(flac, tmp_path / "back.raw", endian=endian) == original, flac.name
    assert other.read_bytes() == b"\x00" * 10, "a .bin without a layout in its name is left alone"
    # The layout used is in the ledger, with the derivative.
    db = sqlite3.connect(ceti.ledger)
    params = dict(db.execute("SELECT output_path, parameters FROM derivatives"))
    assert "--bps=24 --sample-rate=48000" in params[str(src / "1700000100000.flac")]


def test_wav_takes_its_layout_from_the_header(ceti, tmp_path):
    d = tmp_path / "in" / "drone"
    d.mkdir(parents=True)
    data = pcm(24000, 2, 16, "little")
    with wave.open(str(d / "take.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(data)
    compress(ceti, tmp_path / "in", check=0)  # the raw flags (3 ch, big-endian) must not matter
    subprocess.run(["flac", "-t", "-s", str(d / "take.flac")], check=True)
    assert flac_decode(d / "take.flac", tmp_path / "back.raw", endian="little") == data


def riff_chunk(cid: bytes, body: bytes, pad: bytes = b"\0") -> bytes:
    """A RIFF chunk: id, little-endian size, body, and a pad byte after an odd-sized body."""
    return cid + struct.pack("<I", len(body)) + body + (pad if len(body) % 2 else b"")


def wav_bytes(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_chunk(channels: int, bits: int, rate: int, mask: int | None = None) -> bytes:
    """The fmt chunk flac writes: PCM, or WAVE_FORMAT_EXTENSIBLE holding PCM when a mask is given."""
    frame = channels * bits // 8
    body = struct.pack("<HHIIHH", 1 if mask is None else 0xFFFE, channels, rate, rate * frame, frame, bits)
    if mask is not None:
        body += struct.pack("<HHI", 22, bits, mask) + bytes.fromhex("0100000000001000800000aa00389b71")
    return riff_chunk(b"fmt ", body)


def python_wave(data: bytes) -> bytes:
    """A 16-bit stereo WAV as Python's wave module writes it."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(data)
    return buf.getvalue()


WAVS = {
    "plain": lambda: python_wave(pcm(24001, 2, 16, "little")),
    "extensible": lambda: wav_bytes(fmt_chunk(3, 24, 96000, mask=0x7), riff_chunk(b"data", pcm(9000, 3, 24, "little"))),
    # A LIST chunk, an odd-sized chunk (its pad byte kept as it is, even non-zero) before the audio,
    # and a chunk after it.
    "chunks": lambda: wav_bytes(
        fmt_chunk(2, 16, 48000),
        riff_chunk(b"LIST", b"INFO" + riff_chunk(b"ISFT", b"drone recorder 2.1\0")),
        riff_chunk(b"guan", b"GUANO|Version:1.0\nMake:Wildlife Acoustics\n", pad=b"\x55"),
        riff_chunk(b"data", pcm(7001, 2, 16, "little", seed=3)),
        riff_chunk(b"iXML", b"<BWFXML><PROJECT>ceti</PROJECT></BWFXML>\n")),
    # Odd-length 8-bit audio: a zero pad byte after it, then a chunk.
    "odd8bit": lambda: wav_bytes(
        fmt_chunk(1, 8, 8000), riff_chunk(b"data", bytes(random.Random(4).randrange(256) for _ in range(10001))),
        riff_chunk(b"id3 ", b"\x01\x02\x03")),
}


@pytest.mark.parametrize("name", sorted(WAVS))
def test_a_wav_comes_back_byte_for_byte_with_flac_keep_foreign_metadata(ceti, tmp_path, name):
    d = tmp_path / "in" / "drone"
    d.mkdir(parents=True)
    original = WAVS[name]()
    (d / "take.wav").write_bytes(original)
    r = compress(ceti, "--json", tmp_path / "in", check=0)
    (f,) = json.loads(r.stdout)["files"]
    assert f["action"] == "compressed" and f["original_removed"] is True
    flac = d / "take.flac"
    subprocess.run(["flac", "-t", "-s", str(flac)], check=True)
    out = tmp_path / "out.wav"
    subprocess.run(["flac", "-d", "-s", "-f", "--keep-foreign-metadata", "-o", str(out), str(flac)], check=True)
    assert out.read_bytes() == original
    # The ledger's input hash is that of the whole WAV, header and all.
    with sqlite3.connect(ceti.ledger) as db:
        (sha,) = db.execute("SELECT input_sha256 FROM derivatives").fetchone()
    assert sha == hashlib.sha256(original).hexdigest()


def test_a_wav_whose_chunk_no_flac_block_holds_is_kept(ceti, tmp_path):
    d = tmp_path / "in" / "drone"
    d.mkdir(parents=True)
    big = wav_bytes(fmt_chunk(2, 16, 48000), riff_chunk(b"JUNK", bytes(17 << 20)), riff_chunk(b"data", pcm(4800, 2, 16, "little")))
    (d / "big.wav").write_bytes(big)
    r = compress(ceti, tmp_path / "in")
    assert r.returncode == 1
    assert "big.wav" in r.stderr and '"JUNK" chunk' in r.stderr and "left untouched" in r.stderr, r.stderr
    assert (d / "big.wav").read_bytes() == big
    assert sorted(p.name for p in d.iterdir()) == ["big.wav"]


def test_gzip_round_trips_and_passes_gzip_t(ceti, tmp_path):
    d = tmp_path / "in" / "wt-x"
    d.mkdir(parents=True)
    rnd = random.Random(2)
    big = "".join(f"{1700000000000 + i},{rnd.random():.5f},{rnd.randint(0, 4000)}\n" for i in range(400_000)).encode()
    small = b"t,v\n1,2\n"
    (d / "data_imu.csv").write_bytes(big)  # several 1 MiB blocks
    (d / "data_battery.csv").write_bytes(small)
    (d / "notes.txt").write_text("left alone")
    compress(ceti, tmp_path / "in", check=0)
    for name, blob in (("data_imu.csv", big), ("data_battery.csv", small)):
        gz = d / (name + ".gz")
        subprocess.run(["gzip", "-t", str(gz)], check=True)
        assert subprocess.run(["gunzip", "-c", str(gz)], capture_output=True, check=True).stdout == blob
        assert not (d / name).exists()
    assert (d / "notes.txt").read_text() == "left alone"
    # Within 1 % of gzip -6's size.
    ref = len(subprocess.run(["gzip", "-6", "-c"], input=big, capture_output=True, check=True).stdout)
    assert (d / "data_imu.csv.gz").stat().st_size <= ref * 1.01


def test_bad_input_is_rejected_and_kept_while_the_rest_goes_on(ceti, tmp_path):
    d = tmp_path / "in" / "wt-x"
    d.mkdir(parents=True)
    good = pcm(4800, 3, 16, "big")
    (d / "good.raw").write_bytes(good)
    (d / "odd.raw").write_bytes(good[:-1])
    (d / "empty.raw").write_bytes(b"")
    (d / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    (d / "ok.csv").write_text("a,b\n")
    r = compress(ceti, tmp_path / "in")
    assert r.returncode == 1
    for name in ("odd.raw", "empty.raw", "bad.wav"):
        assert name in r.stderr
        assert (d / name).exists()
    assert (d / "odd.raw").read_bytes() == good[:-1]
    assert flac_decode(d / "good.flac", tmp_path / "back.raw", endian="big") == good
    assert (d / "ok.csv.gz").exists() and not list(d.glob("*.part"))
    assert "whole number of" in r.stderr and "--channels" in r.stderr


def test_rerun_skips_and_dry_run_writes_nothing(ceti, tmp_path):
    d = tmp_path / "in" / "wt-x"
    d.mkdir(parents=True)
    (d / "a.raw").write_bytes(pcm(4800, 3, 16, "big"))
    (d / "b.csv").write_text("x\n" * 100)
    r = compress(ceti, "-n", "--json", tmp_path / "in", check=0)
    assert sorted(f["action"] for f in json.loads(r.stdout)["files"]) == ["would-compress", "would-compress"]
    assert sorted(p.name for p in d.iterdir()) == ["a.raw", "b.csv"] and not ceti.ledger.exists()
    compress(ceti, "--keep", tmp_path / "in", check=0)
    r = compress(ceti, "--keep", "--json", tmp_path / "in", check=0)
    assert sorted(f["action"] for f in json.loads(r.stdout)["files"]) == ["skipped", "skipped"]
    # Without --keep, the rerun removes the originals it has proof for, and nothing is encoded again.
    r = compress(ceti, "--json", tmp_path / "in", check=0)
    files = json.loads(r.stdout)["files"]
    assert [(f["action"], f["original_removed"]) for f in files] == [("skipped", True), ("skipped", True)]
    assert sorted(p.name for p in d.iterdir()) == ["a.flac", "b.csv.gz"]
    with sqlite3.connect(ceti.ledger) as db:
        rows = db.execute("SELECT codec, flac_md5, parameters FROM derivatives ORDER BY codec").fetchall()
    assert [r[0] for r in rows] == ["flac", "gzip"]
    assert len(rows[0][1]) == 32 and "--endian=big" in rows[0][2]


def test_kill_9_then_rerun_loses_nothing(ceti, tmp_path):
    d = tmp_path / "in" / "wt-x"
    d.mkdir(parents=True)
    originals = {}
    for i in range(6):
        blob = os.urandom(12 * MiB)  # noise: slow to encode, so the kill lands mid-file
        originals[f"{1700000000000 + i}.raw"] = blob
        (d / f"{1700000000000 + i}.raw").write_bytes(blob)
    proc = subprocess.Popen([str(ceti.bin), "compress", "-j", "1", str(tmp_path / "in")], env=ceti.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not list(d.glob("*.flac")):
        time.sleep(0.01)
    time.sleep(random.uniform(0.05, 0.5))
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Right after the kill: every original is there or has a recorded verified output.
    with sqlite3.connect(ceti.ledger) as db:
        recorded = {Path(p).name for (p,) in db.execute("SELECT output_path FROM derivatives")}
    for name in originals:
        assert (d / name).exists() or name.replace(".raw", ".flac") in recorded, name
    for f in d.glob("*.flac"):
        assert f.name in recorded, f"{f.name} is a final name without a ledger record"

    compress(ceti, tmp_path / "in", check=0)
    assert not list(d.glob("*.part")) and not list(d.glob("*.raw"))
    for name, blob in originals.items():
        assert flac_decode(d / name.replace(".raw", ".flac"), tmp_path / "back.raw", endian="big") == blob


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_fails_cleanly_and_loses_nothing(ceti, tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d)], check=True)
    try:
        (d / "wt-x").mkdir()
        blob = os.urandom(6 * 350_000)  # noise does not compress: its FLAC needs ~2 MB more
        (d / "wt-x" / "noise.raw").write_bytes(blob)
        r = compress(ceti, d)
        assert r.returncode == 1
        assert "noise" in r.stderr and "space" in r.stderr, r.stderr
        assert (d / "wt-x" / "noise.raw").read_bytes() == blob
        assert sorted(p.name for p in (d / "wt-x").iterdir()) == ["noise.raw"]
    finally:
        subprocess.run(["umount", str(d)], check=False)
