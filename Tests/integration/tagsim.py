"""Working directories for simulated tags (scripts/tag-sim.sh), shared by the integration tests and
the benchmarks. Standard library only, so a benchmark can import it without pytest or boto3.

    run(*args, timeout)   scripts/tag-sim.sh ARGS; RuntimeError with its stderr when it fails
    workdir(prefix)       a fresh dir the tag user can traverse (REPO/.tmp/tag-sim, else
                          /tmp/ceti-tag-sim), with an `owner` file (pid + start time); dirs whose
                          owner is gone (a killed run) are stopped and removed first
    world_traversable(p)  every existing parent of p has o+x
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
TAG_SIM = REPO / "scripts" / "tag-sim.sh"


def run(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run scripts/tag-sim.sh; raise RuntimeError with its stderr when it fails."""
    cmd = ["bash", str(TAG_SIM), *(str(a) for a in args)]
    cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                        errors="replace", timeout=timeout)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {cp.returncode}:\n{cp.stderr}{cp.stdout}")
    return cp


def world_traversable(p: Path) -> bool:
    for d in [p, *p.parents]:
        try:
            if not d.stat().st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


def proc_start(pid: int) -> str | None:
    """The start time of a live (non-zombie) process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def base() -> Path:
    """Where working dirs live: the tag user must traverse every parent (sshd reads
    authorized_keys as that user), which pytest's 0700 tmp dirs do not allow."""
    b = REPO / ".tmp" / "tag-sim"
    if not world_traversable(b.parent):
        b = Path("/tmp/ceti-tag-sim")
    b.mkdir(parents=True, exist_ok=True)
    b.chmod(0o755)
    return b


def reap_stale(b: Path) -> None:
    """Stop and remove working dirs whose owning process is gone (a killed run)."""
    for d in b.iterdir():
        try:
            pid, start = (d / "owner").read_text().split()
        except (OSError, ValueError):
            continue
        if proc_start(int(pid)) == start:
            continue  # its owner still runs
        try:
            run("stop", d, timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(d, ignore_errors=True)


def workdir(prefix: str) -> Path:
    b = base()
    reap_stale(b)
    d = Path(tempfile.mkdtemp(prefix=f"{prefix}.", dir=b))
    d.chmod(0o755)
    (d / "owner").write_text(f"{os.getpid()} {proc_start(os.getpid())}\n")
    return d
