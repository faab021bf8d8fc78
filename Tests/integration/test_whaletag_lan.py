"""whaletag discovery and pulls on a simulated boat LAN: tags in network namespaces (`tag_lan`).

Every ceti run here happens inside the hub namespace, whose only network is the test bridge;
nothing is ever sent from the host namespace to the tags' addresses.
"""

from __future__ import annotations

import json
import os
import time

import pytest


def fill(tag, files: dict[str, bytes]) -> None:
    for name, blob in files.items():
        p = tag.data / name
        p.write_bytes(blob)
        os.chmod(p, 0o644)
        t = time.time() - 600
        os.utime(p, (t, t))


def run(tag_lan, ceti, *args):
    env = {**ceti.env, "CETI_TAG_PASSWORD": tag_lan.password}
    return tag_lan.hub_exec([ceti.bin, "whaletag", "--user", tag_lan.user, *args], env=env, timeout=120)


@pytest.fixture
def lan(tag_lan):
    tag_lan.reset_data()
    yield tag_lan
    tag_lan.reset_data()


def test_list_finds_exactly_the_tags(lan, ceti):
    fill(lan.tags[0], {"1700000000000.raw": b"r" * 1000, "data_battery.csv": b"b" * 10})
    r = run(lan, ceti, "-l", "--json")
    assert r.returncode == 0, r.stderr
    found = {t["name"]: t for t in json.loads(r.stdout)}
    assert sorted(found) == sorted(t.name for t in lan.tags)
    for t in lan.tags:
        assert found[t.name]["address"] == t.address
    first = found[lan.tags[0].name]
    assert (first["files"], first["bytes"], first["pulled"], first["uploaded"]) == (2, 1010, 0, 0)
    # The SSH host that is not a tag and the non-SSH service are not listed.
    assert lan.non_tag_ssh not in {t["address"] for t in found.values()}
    assert lan.non_ssh not in {t["address"] for t in found.values()}
    text = run(lan, ceti, "-l")
    assert all(t.name in text.stdout for t in lan.tags)


def test_pull_all_is_exact_and_a_rerun_pulls_nothing(lan, ceti, tmp_path):
    want = {}
    for i, t in enumerate(lan.tags):
        files = {f"{1700000000000 + i}.raw": os.urandom(2_000_000 + i), f"data_imu_acc_0{i}.csv": os.urandom(5000),
                 "shared name.csv": f"tag {i}".encode()}
        fill(t, files)
        (t.data / "logs").mkdir()
        want[t.name] = files
    out = tmp_path / "pulled"
    r = run(lan, ceti, "-a", "--data-dir", out, "--json")
    assert r.returncode == 0, r.stderr
    for name, files in want.items():
        got = {p.name: p.read_bytes() for p in (out / name).iterdir()}
        assert got == files, name
    assert sorted(p.name for p in out.iterdir()) == sorted(want)

    r = run(lan, ceti, "-a", "--data-dir", out, "--json")
    assert r.returncode == 0, r.stderr
    actions = [f["action"] for t in json.loads(r.stdout)["tags"] for f in t["files"] if f["name"] != "logs"]
    assert actions and set(actions) == {"skipped"}
    assert all(f["bytes_received"] == 0 for t in json.loads(r.stdout)["tags"] for f in t["files"])
    # -l now knows they are pulled.
    listed = {t["name"]: t for t in json.loads(run(lan, ceti, "-l", "--json").stdout)}
    assert all(listed[n]["pulled"] == 3 for n in want)


def test_scanning_a_named_subnet_only(lan, ceti):
    # A /30 holding only the hub and nothing else: no tags.
    r = run(lan, ceti, "-l", "--json", "--subnet", "10.77.0.0/30")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
