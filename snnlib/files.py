"""Atomic file writes and an inter-process file lock (used by training checkpoints and the study).

Every write goes to a temp file in the same folder, is fsynced, then ``os.replace``-d onto the target, so a
stopped process never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["WriteFailed", "atomic_file", "atomic_write_bytes", "atomic_save_torch", "atomic_write_json", "to_jsonable",
           "file_lock", "folder_problem", "make_writable_folder"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[io.BufferedWriter]:
    """Open a temp file next to ``path``; on success fsync + ``os.replace`` it onto ``path``.

    On any exception (including ``KeyboardInterrupt``) the temp file is removed and ``path`` is
    left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if _is_write_failure(e):
            # a full disk, a quota, a lost mount: torch reports it as "PytorchStreamWriter failed writing file
            # data/0"; say which file, how much room is left and what to do (nothing half-written stays behind)
            raise WriteFailed(f"cannot write {path}: {e}; {_free_space(path.parent)} on that file system. Nothing "
                              "was left half-written: free some space (or choose another folder) and run again, "
                              "finished work is kept") from e
        raise


def _is_write_failure(e: BaseException) -> bool:
    """A failure of the write itself (not an exception of the caller's code inside ``atomic_file``)."""
    import errno
    if isinstance(e, WriteFailed):
        return False
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)
    return isinstance(e, RuntimeError) and "failed writing" in str(e)     # torch's PytorchStreamWriter


class WriteFailed(OSError):
    """A file could not be written (full disk, quota, read-only or lost mount); names the file and the free space."""


def _free_space(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
    except OSError:
        return "free space unknown"
    return f"{st.f_bavail * st.f_frsize / 2 ** 20:.0f} MB free"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then replace)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def atomic_save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to a temp file in the same folder, then ``os.replace`` onto ``path``."""
    import torch

    with atomic_file(path) as f:
        torch.save(obj, f)
    return Path(path)


def to_jsonable(obj: Any, where: str = "payload") -> Any:
    """JSON-ready copy: tuples -> lists, numpy/torch values -> Python, NaN/inf -> None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, (bool, int, float)) or k is None:
                k = json.dumps(k)          # same as json.dumps does for such keys
            elif not isinstance(k, str):
                raise TypeError(f"key {k!r} at {where} has type {type(k).__name__}; JSON "
                                "object keys must be strings")
            out[k] = to_jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        seq = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(seq)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    tolist = getattr(obj, "tolist", None)      # numpy arrays/scalars, torch tensors
    if callable(tolist):
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
            tolist = obj.tolist
        return to_jsonable(tolist(), where)
    raise TypeError(f"value at {where} has type {type(obj).__name__}, which is not "
                    "JSON-serialisable; allowed: None, bool, int, float, str, list/tuple, dict, "
                    "Path, numpy arrays/scalars, torch tensors")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically.

    Tuples become lists, numpy/torch values Python numbers/lists, Paths strings, and NaN/inf
    become ``null`` (strict JSON has no NaN).  A value that cannot be converted raises a
    ``TypeError`` naming where it is.
    """
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))




def folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be used as an output folder, without writing anything; ``None`` when it can.

    The folder may not exist yet: then the closest existing folder above it must be writable (it will be created
    there).  Problems: the path is a file, it lies under a file, or the folder that would hold the files is not
    writable (no write permission, a read-only file system).  Root bypasses permissions, so for root only a
    read-only file system is caught here; :func:`make_writable_folder` tries a real write.
    """
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    cur = path
    while not os.path.lexists(cur) and cur.parent != cur:
        cur = cur.parent
    if cur == path and not path.is_dir():
        kind = "a file" if path.is_file() else "not a folder"
        return f"{path} is {kind}"
    if cur != path and not cur.is_dir():
        kind = "a file" if cur.is_file() else "not a folder"
        return f"{path} lies under {cur}, which is {kind}"
    if not os.access(cur, os.W_OK | os.X_OK):
        return (f"{cur} is not writable" if cur == path
                else f"{path} cannot be created: {cur} is not writable")
    return None


def make_writable_folder(path: str | os.PathLike) -> str | None:
    """Create the folder ``path`` (with its parents) and write and remove a probe file in it; returns ``None`` when
    that works, else why not (the OS's reason, naming the path).  Nothing is left behind but the folders."""
    path = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    problem = folder_problem(path)
    if problem:
        return problem
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.", suffix=".tmp")
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        return f"cannot write in {path}: {e.strerror or e}"
    return None


@contextlib.contextmanager
def file_lock(lock_path: Path, what: str, poll_s: float = 0.2) -> Iterator[None]:
    """Exclusive inter-process lock on ``lock_path``.

    Uses ``fcntl.flock`` where available (released automatically when the holder dies);
    elsewhere an ``O_CREAT|O_EXCL`` lock file polled until it disappears.  Prints one line to
    stderr when it has to wait.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX fallback
        fcntl = None
    if fcntl is not None:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"snnlib: waiting for {what} (lock {lock_path})", file=sys.stderr,
                      flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return
    # pragma: no cover - fallback
    announced = False
    while True:
        try:
            fd = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            if not announced:
                print(f"snnlib: waiting for {what} (lock {lock_path}; delete it if no such "
                      "process exists)", file=sys.stderr, flush=True)
                announced = True
            time.sleep(poll_s)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
