"""Stopping a run (Ctrl-C, or ``timeout --signal=INT`` as tools/study_gpu.sh does) while a notebook's kernel is busy:
the runner says which notebook it stopped and how to resume, exits 130, keeps the published notebook, and prints
no traceback (the kernel, shut down mid-cell, used to log one from its closed socket)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sleeping_book(book: Path, marker: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'smoke'\nresults_dir = 'results/smoke'\n")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        f"import time\nopen({str(marker)!r}, 'w').write('busy')\ntime.sleep(120)")]
    book.mkdir()
    nbformat.write(nb, str(book / "02_discretization.ipynb"))


def _kernels_of(pid: int) -> list[int]:
    """Process ids of the kernels (ipykernel) started by process ``pid``."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid \
                    and b"ipykernel" in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


@pytest.mark.parametrize("how", ["SIGINT to the group", "SIGTERM to the runner", "SIGTERM to the group"])
def test_an_interrupted_run_names_the_notebook_and_prints_no_traceback(tmp_path, how):
    """Ctrl-C in a terminal reaches the runner and its kernel; ``kill PID`` (SIGTERM) only the runner, which must
    then stop its kernel itself (a runner started with ``&`` from a script ignores SIGINT)."""
    book, marker, out = tmp_path / "book", tmp_path / "busy", tmp_path / "out"
    _sleeping_book(book, marker)
    cmd = [sys.executable, "-m", "snnlib.study", "run", "--only", "02", "--book-dir", str(book),
           "--out-dir", str(out), "--results-dir", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        kernels = _kernels_of(proc.pid)
        assert kernels
        if how == "SIGINT to the group":
            os.killpg(proc.pid, signal.SIGINT)             # as a terminal's Ctrl-C: the whole group, kernel too
        elif how == "SIGTERM to the group":
            os.killpg(proc.pid, signal.SIGTERM)            # as a batch scheduler's stop: the kernel dies at once
        else:
            os.kill(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
        time.sleep(1)
        assert not [k for k in kernels if Path(f"/proc/{k}").exists()
                    and "Z" not in Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = stdout + stderr
    assert proc.returncode == 130, text
    assert "02_discretization: interrupted" in text and "--resume" in text, text
    assert "Traceback" not in text and "Error" not in text and "exception" not in text, text
    assert not (out / "02_discretization.ipynb").exists()
