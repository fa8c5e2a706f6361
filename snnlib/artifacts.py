"""Artifact cache, atomic file writes and result JSON files.

Trained models are shared between notebooks through an :class:`ArtifactCache` keyed by the
configuration that made them, so each model is trained once.  The cache lives outside the work
tree (``$SNNLIB_CACHE``, default ``~/.cache/snnlib``).  Every file is written atomically (temp
file in the same folder, then :func:`os.replace`), so a run that is stopped never leaves a
half-written entry and simply resumes: finished entries are loaded, missing ones are built.
Two processes asking for the same entry do not both build it: :meth:`ArtifactCache.get_or_build`
holds a per-entry lock (``fcntl.flock``; released by the OS if the holder dies), the second
process waits and then loads what the first one saved.

Layout::

    <root>/<kind>/<key>/state.pt      torch.save of a dict of tensors / primitives (written last)
    <root>/<kind>/<key>/config.json   the configuration (and kind, key, versions, timestamp)
    <root>/<kind>/<key>.lock          lock file (empty)

``key = config_key(config)``: the first 16 hex digits of the sha256 of the canonical JSON of the
configuration (sorted keys, no whitespace, floats as Python's shortest round-trip ``repr``).
Note that ``1`` and ``1.0`` are different values in a configuration.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

__all__ = [
    "ENV_VAR",
    "ArtifactCache",
    "CacheError",
    "atomic_save_torch",
    "atomic_write_bytes",
    "atomic_write_json",
    "run_provenance",
    "cache_dir",
    "canonical_json",
    "config_key",
    "machine_info",
    "write_result",
]

#: Environment variable that sets the cache folder.
ENV_VAR = "SNNLIB_CACHE"

_KEY_LEN = 16
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class CacheError(RuntimeError):
    """A cache entry is unreadable or inconsistent."""


# --------------------------------------------------------------------------------------------
# Cache folder and keys
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Root of the artifact cache: ``$SNNLIB_CACHE`` if set, else ``~/.cache/snnlib``."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "snnlib"


def _canonical(obj: Any, where: str) -> Any:
    """Return a JSON-ready copy of a configuration value, or raise a clear ``TypeError``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"config value at {where} is {obj!r}: NaN/inf cannot be part of "
                             "a cache key")
        return float(obj)
    if isinstance(obj, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"config key {k!r} at {where} is a {type(k).__name__}; "
                                "configuration keys must be strings")
            out[k] = _canonical(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    # numpy / torch scalars (0-d arrays) -> Python numbers
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "ndim", None) == 0:
        return _canonical(item(), where)
    raise TypeError(f"config value at {where} has type {type(obj).__name__}, which is not "
                    "JSON-serialisable; allowed: None, bool, int, float, str, list/tuple, "
                    "dict with str keys (and numpy/torch scalars)")


def canonical_json(config: Mapping[str, Any]) -> str:
    """Canonical JSON text of a configuration (sorted keys, compact, stable floats)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}: {config!r:.80}")
    return json.dumps(_canonical(config, "config"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)


def config_key(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of :func:`canonical_json` ``(config)``."""
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()[:_KEY_LEN]


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_file(path: str | os.PathLike) -> Iterator[io.BufferedWriter]:
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then replace)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    with _atomic_file(path) as f:
        f.write(data)
    return Path(path)


def atomic_save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to a temp file in the same folder, then ``os.replace`` onto ``path``."""
    import torch

    with _atomic_file(path) as f:
        torch.save(obj, f)
    return Path(path)


def _to_jsonable(obj: Any, where: str = "payload") -> Any:
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
            out[k] = _to_jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        seq = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [_to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(seq)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    tolist = getattr(obj, "tolist", None)      # numpy arrays/scalars, torch tensors
    if callable(tolist):
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
            tolist = obj.tolist
        return _to_jsonable(tolist(), where)
    raise TypeError(f"value at {where} has type {type(obj).__name__}, which is not "
                    "JSON-serialisable; allowed: None, bool, int, float, str, list/tuple, dict, "
                    "Path, numpy arrays/scalars, torch tensors")


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically.

    Tuples become lists, numpy/torch values Python numbers/lists, Paths strings, and NaN/inf
    become ``null`` (strict JSON has no NaN).  A value that cannot be converted raises a
    ``TypeError`` naming where it is.
    """
    text = json.dumps(_to_jsonable(obj), indent=indent, allow_nan=False, ensure_ascii=False)
    return atomic_write_bytes(path, (text + "\n").encode("utf-8"))


# --------------------------------------------------------------------------------------------
# Locking
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _file_lock(lock_path: Path, what: str, poll_s: float = 0.2) -> Iterator[None]:
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


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _NAME_RE.match(kind):
        raise ValueError(f"artifact kind must be a simple name (letters, digits, '_', '-', "
                         f"'.'), got {kind!r}")
    return kind


def _torch_version() -> str:
    mod = sys.modules.get("torch")
    if mod is not None:
        return str(mod.__version__)
    try:
        from importlib.metadata import version
        return version("torch")
    except Exception:
        return "unknown"


def _snnlib_version() -> str:
    try:
        import snnlib  # noqa: PLC0415
        v = getattr(snnlib, "__version__", None)
        if v:
            return str(v)
    except Exception:
        pass
    try:
        from importlib.metadata import version
        return version("snnlib")
    except Exception:
        return "unknown"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class ArtifactCache:
    """Content-addressed store of trained models (and other state dicts).

    >>> cache = ArtifactCache()                     # root = cache_dir()
    >>> state = cache.get_or_build("ann", cfg, lambda: {"model": net.state_dict()})
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir()

    def __repr__(self) -> str:
        return f"ArtifactCache(root={str(self.root)!r})"

    # -- paths --------------------------------------------------------------------------------
    def key(self, config: Mapping[str, Any]) -> str:
        return config_key(config)

    def path(self, kind: str, config: Mapping[str, Any]) -> Path:
        """Folder of the entry: ``<root>/<kind>/<key>/``."""
        return self.root / _check_kind(kind) / config_key(config)

    def _lock_path(self, kind: str, config: Mapping[str, Any]) -> Path:
        return self.root / _check_kind(kind) / f"{config_key(config)}.lock"

    def has(self, kind: str, config: Mapping[str, Any]) -> bool:
        """True when a complete entry exists (``state.pt`` is written last)."""
        d = self.path(kind, config)
        return (d / "state.pt").is_file() and (d / "config.json").is_file()

    # -- save / load --------------------------------------------------------------------------
    def save(self, kind: str, config: Mapping[str, Any], state: Mapping[str, Any]) -> Path:
        """Store ``state`` (a dict of tensors / primitives) for ``config``; return the folder.

        The state is checked to load back with ``torch.load(weights_only=True)`` *before*
        anything is written, so a bad state fails here and not in a later notebook.
        """
        import torch

        if not isinstance(state, Mapping):
            raise TypeError(f"ArtifactCache.save({kind!r}): state must be a dict, got "
                            f"{type(state).__name__}")
        cfg_text = canonical_json(config)           # validates config
        d = self.path(kind, config)
        buf = io.BytesIO()
        try:
            torch.save(dict(state), buf)
            torch.load(io.BytesIO(buf.getvalue()), weights_only=True, map_location="cpu")
        except Exception as e:
            raise TypeError(f"ArtifactCache.save({kind!r}): the state holds objects that "
                            "torch.save/torch.load(weights_only=True) refuse; store only tensors, "
                            f"numbers, strings, None and lists/tuples/dicts of them ({e})") \
                from None
        meta = {
            "kind": kind,
            "key": config_key(config),
            "config": json.loads(cfg_text),
            "created_utc": _utc_now(),
            "snnlib_version": _snnlib_version(),
            "torch_version": _torch_version(),
        }
        atomic_write_json(d / "config.json", meta)
        atomic_write_bytes(d / "state.pt", buf.getvalue())   # last: marks the entry complete
        return d

    def load(self, kind: str, config: Mapping[str, Any],
             map_location: Any = "cpu") -> dict[str, Any]:
        """Load the entry for ``config`` (``torch.load(weights_only=True)``)."""
        import torch

        d = self.path(kind, config)
        if not self.has(kind, config):
            raise KeyError(f"no cached {kind!r} entry for this config (expected {d}/state.pt)")
        try:
            stored = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CacheError(f"cache entry {d}: unreadable config.json ({e}); delete the "
                             "folder to rebuild it") from None
        if stored.get("config") != json.loads(canonical_json(config)):
            raise CacheError(f"cache entry {d}: stored config differs from the requested one "
                             "(key collision or edited file); delete the folder to rebuild it")
        try:
            state = torch.load(d / "state.pt", weights_only=True, map_location=map_location)
        except Exception as e:
            raise CacheError(f"cache entry {d}: cannot load state.pt ({type(e).__name__}: "
                             f"{e}); delete the folder to rebuild it") from None
        if not isinstance(state, dict):
            raise CacheError(f"cache entry {d}: state.pt does not hold a dict")
        return state

    def get_or_build(self, kind: str, config: Mapping[str, Any],
                     build_fn: Callable[[], Mapping[str, Any]],
                     map_location: Any = "cpu") -> dict[str, Any]:
        """Return the cached state for ``config``, or build, save and return it.

        ``build_fn()`` is called at most once per entry across processes: the per-entry lock is
        held while building, and a process that had to wait loads the result.  A corrupt entry
        is rebuilt.  The freshly built state is returned as ``build_fn`` made it (not reloaded).
        """
        if self.has(kind, config):
            try:
                return self.load(kind, config, map_location=map_location)
            except CacheError as e:
                print(f"snnlib: {e}; rebuilding", file=sys.stderr, flush=True)
        what = f"another process building {kind}/{config_key(config)}"
        with _file_lock(self._lock_path(kind, config), what):
            if self.has(kind, config):
                try:
                    return self.load(kind, config, map_location=map_location)
                except CacheError as e:
                    print(f"snnlib: {e}; rebuilding", file=sys.stderr, flush=True)
            state = build_fn()
            if not isinstance(state, Mapping):
                raise TypeError(f"build_fn for {kind!r} must return a dict (state), got "
                                f"{type(state).__name__}")
            self.save(kind, config, state)
            return dict(state)

    def remove(self, kind: str, config: Mapping[str, Any]) -> bool:
        """Delete the entry (if any); return whether something was deleted."""
        import shutil

        d = self.path(kind, config)
        if not d.exists():
            return False
        with _file_lock(self._lock_path(kind, config),
                        f"another process using {kind}/{config_key(config)}"):
            shutil.rmtree(d, ignore_errors=True)
        return True


# --------------------------------------------------------------------------------------------
# Result files
# --------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """Platform, Python, CPU count/name, torch threads and the accelerator (if torch is loaded)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_name": _cpu_name(),
        "device_name": None,
    }
    torch = sys.modules.get("torch")     # do not import torch just for this
    if torch is not None:
        try:
            info["torch_threads"] = torch.get_num_threads()
            if torch.cuda.is_available():
                info["device_name"] = torch.cuda.get_device_name(0)
        except Exception:
            pass
    if info["device_name"] is None:
        info["device_name"] = f"cpu: {info['cpu_name']}"
    return info


def write_result(results_dir: str | os.PathLike, name: str, payload: Mapping[str, Any],
                 wall_time_s: float | None = None) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically and return its path.

    The file holds ``payload`` plus ``wall_time_s`` (if given), ``snnlib_version``,
    ``torch_version``, ``machine`` (platform, cpu count, device name), ``git_commit`` and
    ``timestamp_utc``.  Keys of ``payload`` win over these added fields.  Notebooks should call
    it with ``name`` = their stem (``"02_discretization"``) and put their parameters under
    ``payload["parameters"]``; the study runner reads ``wall_time_s`` for its time estimates.
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"result name must be a simple file stem, got {name!r}")
    meta: dict[str, Any] = {}
    if wall_time_s is not None:
        meta["wall_time_s"] = float(wall_time_s)
    meta.update({
        "snnlib_version": _snnlib_version(),
        "torch_version": _torch_version(),
        "machine": machine_info(),
        "git_commit": _git_commit(Path(__file__).resolve().parent),
        "timestamp_utc": _utc_now(),
    })
    out = {**meta, **payload}
    path = Path(results_dir) / f"{name}.json"
    return atomic_write_json(path, out)


def run_provenance(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per chapter result in ``results_dir``: how and where it was computed.

    Keys: notebook, wall_time_s (the notebook's own measurement, seconds), runner_wall_time_s (papermill
    execution including kernel start, from ``_study_log.json`` when the study runner made it), device, cpu_count,
    torch_threads, torch_version, git_commit, timestamp_utc.  Files that are not result JSON are skipped.
    """
    d = Path(results_dir)
    log: dict[str, Any] = {}
    try:
        log = json.loads((d / "_study_log.json").read_text()).get("notebooks", {})
    except (OSError, ValueError):
        pass
    rows = []
    for p in sorted(d.glob("*.json")):
        if p.name.startswith("_"):
            continue
        try:
            r = json.loads(p.read_text())
        except ValueError:
            continue
        m = r.get("machine") or {}
        rows.append(dict(notebook=p.stem, wall_time_s=r.get("wall_time_s"),
                         runner_wall_time_s=(log.get(p.stem) or {}).get("wall_time_s"),
                         device=m.get("device_name"), cpu_count=m.get("cpu_count"),
                         torch_threads=m.get("torch_threads"), torch_version=r.get("torch_version"),
                         git_commit=r.get("git_commit"), timestamp_utc=r.get("timestamp_utc")))
    return rows
