"""Artifact cache: trained models keyed by the configuration that made them.

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

import hashlib
import io
import json
import math
import os
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from ..files import atomic_write_bytes, atomic_write_json, file_lock
from ..machine import snnlib_version, torch_version, utc_now

__all__ = ["ENV_VAR", "ArtifactCache", "CacheError", "cache_dir", "canonical_json", "config_key"]

#: Environment variable that sets the cache folder.
ENV_VAR = "SNNLIB_CACHE"

_KEY_LEN = 16
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


#: this process's mark on the entries it builds (host, process id, start), so that re-using one of its own entries
#: is not counted as work saved
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _build_seconds(meta: Mapping[str, Any], *, other_processes: bool) -> float:
    """The build time an entry's config.json records (0.0 when none, and with ``other_processes`` when this process
    built it)."""
    if other_processes and meta.get("built_by") == PROCESS_ID:
        return 0.0
    try:
        return max(float(meta.get("build_s") or 0.0), 0.0)
    except (TypeError, ValueError):
        return 0.0


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
# The cache
# --------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> str:
    if not isinstance(kind, str) or not _NAME_RE.match(kind):
        raise ValueError(f"artifact kind must be a simple name (letters, digits, '_', '-', "
                         f"'.'), got {kind!r}")
    return kind


class ArtifactCache:
    """Content-addressed store of trained models (and other state dicts).

    >>> cache = ArtifactCache()                     # root = cache_dir()
    >>> state = cache.get_or_build("ann", cfg, lambda: {"model": net.state_dict()})
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else cache_dir()
        #: seconds of work this cache object saved, per kind: the build times (``build_s``, recorded by
        #: :meth:`get_or_build`) of the entries :meth:`get_or_build` loaded instead of building that another process
        #: built (an earlier attempt, another chapter); an entry this process built is work already in its own wall
        #: time and counts 0, as does one saved without a build time.  Each entry counts once per cache object (the
        #: examples a source crafted, loaded for each of its targets, are one piece of work), and an entry built inside
        #: another's build (``nested_built`` in its config.json) counts once, in whichever is loaded first
        self.reused_s: dict[str, float] = {}
        self._counted: set[str] = set()          # "kind/key" of the entries whose work is in reused_s or built here
        self._building: list[list[str]] = []     # for each build in progress (innermost last): the entries built in it

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
    def save(self, kind: str, config: Mapping[str, Any], state: Mapping[str, Any],
             build_s: float | None = None, nested_built: list[str] | None = None) -> Path:
        """Store ``state`` (a dict of tensors / primitives) for ``config``; return the folder.  ``build_s``: the
        seconds it took to make (kept in ``config.json``, counted in :attr:`reused_s` when it is loaded again);
        ``nested_built``: the entries ("kind/key") built during those seconds, whose time ``build_s`` includes.

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
            "created_utc": utc_now(),
            "snnlib_version": snnlib_version(),
            "torch_version": torch_version(),
        }
        if build_s is not None:
            meta["build_s"] = round(float(build_s), 3)
            meta["built_by"] = PROCESS_ID
        if nested_built:
            meta["nested_built"] = list(nested_built)
        atomic_write_json(d / "config.json", meta)
        atomic_write_bytes(d / "state.pt", buf.getvalue())   # last: marks the entry complete
        return d

    def load(self, kind: str, config: Mapping[str, Any],
             map_location: Any = "cpu") -> dict[str, Any]:
        """Load the entry for ``config`` (``torch.load(weights_only=True)``)."""
        return self._load(kind, config, map_location)[0]

    def _load(self, kind: str, config: Mapping[str, Any], map_location: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(state, the entry's config.json) for ``config``, checked as :meth:`load` says."""
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
        return state, stored

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
                return self._reuse(kind, config, map_location)
            except CacheError as e:
                print(f"snnlib: {e}; rebuilding", file=sys.stderr, flush=True)
        what = f"another process building {kind}/{config_key(config)}"
        with file_lock(self._lock_path(kind, config), what):
            if self.has(kind, config):
                try:
                    return self._reuse(kind, config, map_location)
                except CacheError as e:
                    print(f"snnlib: {e}; rebuilding", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            self._building.append([])
            try:
                state = build_fn()
            finally:
                nested = self._building.pop()
            if not isinstance(state, Mapping):
                raise TypeError(f"build_fn for {kind!r} must return a dict (state), got "
                                f"{type(state).__name__}")
            self.save(kind, config, state, build_s=time.perf_counter() - t0, nested_built=nested)
            entry = f"{kind}/{config_key(config)}"
            self._counted.add(entry)                     # its work is in this process's wall time
            if self._building:
                self._building[-1].append(entry)
            return dict(state)

    def _reuse(self, kind: str, config: Mapping[str, Any], map_location: Any) -> dict[str, Any]:
        """Load an entry for :meth:`get_or_build` and add its recorded build time to :attr:`reused_s`."""
        state, meta = self._load(kind, config, map_location)
        self.reused_s[kind] = self.reused_s.get(kind, 0.0) + self._uncounted_seconds(f"{kind}/{meta.get('key')}", meta)
        return state

    def _entry_meta(self, entry: str) -> dict[str, Any] | None:
        """The config.json of ``entry`` ("kind/key"), or None when it is gone or unreadable."""
        try:
            return json.loads((self.root / entry / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _uncounted_seconds(self, entry: str, meta: Mapping[str, Any]) -> float:
        """The part of ``entry``'s recorded build time not yet in :attr:`reused_s` (0.0 for one counted before or
        built by this process); marks it and the entries built inside it as counted."""
        if entry in self._counted:
            return 0.0
        self._counted.add(entry)
        seconds = _build_seconds(meta, other_processes=True)
        for child in meta.get("nested_built") or []:
            child_meta = self._entry_meta(child) if isinstance(child, str) else None
            if child_meta is not None:                   # its time is in ours: take out what was counted already
                counted_before = _build_seconds(child_meta, other_processes=False) - self._uncounted_seconds(
                    child, child_meta)
                seconds -= counted_before
        return max(seconds, 0.0)

    def build_seconds(self, kind: str, config: Mapping[str, Any], *, other_processes: bool = False) -> float:
        """The seconds the entry took to build, as recorded with it (0.0 when not recorded or unreadable, and with
        ``other_processes`` when this process built it)."""
        meta = self._entry_meta(f"{_check_kind(kind)}/{config_key(config)}")
        return 0.0 if meta is None else _build_seconds(meta, other_processes=other_processes)

    def remove(self, kind: str, config: Mapping[str, Any]) -> bool:
        """Delete the entry (if any); return whether something was deleted."""
        d = self.path(kind, config)
        if not d.exists():
            return False
        with file_lock(self._lock_path(kind, config),
                        f"another process using {kind}/{config_key(config)}"):
            shutil.rmtree(d, ignore_errors=True)
        return True
