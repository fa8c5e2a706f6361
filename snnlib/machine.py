"""Where a number was computed: UTC time, CPU and accelerator names, library versions, git commit."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["DEVICES", "resolve_device", "utc_now", "cpu_name", "git_commit", "torch_version", "snnlib_version", "machine_info", "load_average"]

#: the devices snnlib runs on ("auto" picks cuda when torch sees a GPU, else cpu)
DEVICES = ("cpu", "cuda")


def resolve_device(device: str = "auto"):
    """The ``torch.device`` of a device name: "cpu", "cuda", or "auto"/None (cuda when torch sees a GPU, else cpu).

    A clear ``ValueError`` for any other name and ``RuntimeError`` for "cuda" on a machine without a CUDA GPU.
    """
    import torch
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} or 'auto', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU here "
                           f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                           "run on the CPU instead (device 'cpu')")
    return torch.device(device)


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second (``2026-11-28T11:11:38+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's best guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """Short (12-digit) commit of the git checkout at ``cwd`` (default: snnlib's own folder), or None."""
    cwd = Path(__file__).resolve().parent if cwd is None else cwd
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def torch_version() -> str:
    """torch's version (without importing it when it is not loaded yet)."""
    mod = sys.modules.get("torch")
    if mod is not None:
        return str(mod.__version__)
    try:
        from importlib.metadata import version
        return version("torch")
    except Exception:
        return "unknown"


def snnlib_version() -> str:
    """snnlib's version string."""
    from . import __version__
    return str(__version__)


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return []


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Platform, Python, CPU count/name, torch threads and the accelerator (if torch is loaded).

    threads: the torch thread count to record (default: torch's current setting).
    """
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_name": cpu_name(),
        "device_name": None,
    }
    torch = sys.modules.get("torch")     # do not import torch just for this
    if torch is not None:
        try:
            info["torch_threads"] = int(threads) if threads is not None else torch.get_num_threads()
            if torch.cuda.is_available():
                info["device_name"] = torch.cuda.get_device_name(0)
        except Exception:
            pass
    if info["device_name"] is None:
        info["device_name"] = f"cpu: {info['cpu_name']}"
    return info
