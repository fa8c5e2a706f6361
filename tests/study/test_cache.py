"""Tests of snnlib.study.cache (keys, the artifact cache), snnlib.files (atomic writes) and snnlib.study.results."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
import torch

from snnlib import files as F
from snnlib.study import cache as A
from snnlib.study import results as R
from snnlib.study.cache import ArtifactCache


class NotAllowed:  # module level so torch.save can pickle it; weights_only load refuses it
    pass


# --------------------------------------------------------------------------------------------
# cache_dir / config_key
# --------------------------------------------------------------------------------------------


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLIB_CACHE", str(tmp_path / "c"))
    assert A.cache_dir() == tmp_path / "c"
    assert ArtifactCache().root == tmp_path / "c"
    monkeypatch.delenv("SNNLIB_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert A.cache_dir() == tmp_path / ".cache" / "snnlib"


def test_config_key_is_canonical():
    k = A.config_key({"a": 1, "b": [0.1, 2], "c": {"y": None, "x": True}})
    assert len(k) == 16 and all(ch in "0123456789abcdef" for ch in k)
    # key order, tuples vs lists, numpy / torch scalars do not matter
    import numpy as np
    assert A.config_key({"c": {"x": True, "y": None}, "b": (0.1, 2), "a": np.int64(1)}) == k
    assert A.config_key({"a": torch.tensor(1), "b": [0.1, 2], "c": {"x": True, "y": None}}) == k
    # values do
    assert A.config_key({"a": 2, "b": [0.1, 2], "c": {"y": None, "x": True}}) != k
    assert A.config_key({"lr": 0.1 + 0.2}) != A.config_key({"lr": 0.3})
    assert A.canonical_json({"b": 1.5, "a": "x"}) == '{"a":"x","b":1.5}'


@pytest.mark.parametrize("bad, exc, words", [
    ([1, 2], TypeError, "config must be a dict"),
    ({"model": {"w": object()}}, TypeError, "config['model']['w']"),
    ({1: "x"}, TypeError, "keys must be strings"),
    ({"lr": float("nan")}, ValueError, "NaN"),
])
def test_config_key_errors(bad, exc, words):
    with pytest.raises(exc) as info:
        A.config_key(bad)
    assert words in str(info.value)


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_atomic_write_bytes_and_failure_keeps_old(tmp_path):
    p = tmp_path / "sub" / "f.bin"
    F.atomic_write_bytes(p, b"one")
    F.atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert _siblings(p) == ["f.bin"]
    # an exception while writing leaves the old content and no temp file
    with pytest.raises(RuntimeError):
        with F.atomic_file(p) as f:
            f.write(b"half")
            raise RuntimeError("stopped")
    assert p.read_bytes() == b"two"
    assert _siblings(p) == ["f.bin"]
    with pytest.raises(TypeError):
        F.atomic_write_bytes(p, "text")


def test_atomic_write_json(tmp_path):
    import numpy as np
    p = tmp_path / "r.json"
    F.atomic_write_json(p, {"t": (1, 2), "nan": float("nan"), "np": np.float32(0.5),
                            "arr": np.arange(3), "ten": torch.tensor([1.5]), "path": tmp_path})
    data = json.loads(p.read_text())
    assert data == {"t": [1, 2], "nan": None, "np": 0.5, "arr": [0, 1, 2], "ten": [1.5],
                    "path": str(tmp_path)}
    with pytest.raises(TypeError, match=r"payload\['x'\]"):
        F.atomic_write_json(p, {"x": object()})
    assert json.loads(p.read_text())["t"] == [1, 2]      # old file intact
    assert _siblings(p) == ["r.json"]


def test_atomic_save_torch(tmp_path):
    p = tmp_path / "m.pt"
    F.atomic_save_torch({"w": torch.arange(4.0)}, p)
    assert torch.equal(torch.load(p, weights_only=True)["w"], torch.arange(4.0))
    assert _siblings(p) == ["m.pt"]


# --------------------------------------------------------------------------------------------
# ArtifactCache
# --------------------------------------------------------------------------------------------

CFG = {"arch": "vgg5", "seed": 0, "lr": 0.05, "T": [4, 8]}


def test_save_load_roundtrip(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert not cache.has("ann", CFG)
    state = {"model": {"w": torch.randn(3, 2)}, "acc": 0.5, "epochs": 3, "names": ["a", None]}
    d = cache.save("ann", CFG, state)
    assert d == tmp_path / "ann" / A.config_key(CFG) == cache.path("ann", CFG)
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "state.pt"]
    meta = json.loads((d / "config.json").read_text())
    assert meta["config"] == CFG and meta["kind"] == "ann"
    assert cache.has("ann", CFG)
    back = cache.load("ann", CFG)
    assert torch.equal(back["model"]["w"], state["model"]["w"])
    assert back["acc"] == 0.5 and back["names"] == ["a", None]
    with pytest.raises(KeyError, match="no cached 'snn' entry"):
        cache.load("snn", CFG)


def test_save_rejects_bad_state(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(TypeError, match="state must be a dict"):
        cache.save("ann", CFG, [torch.zeros(1)])
    with pytest.raises(TypeError, match="weights_only"):
        cache.save("ann", CFG, {"obj": NotAllowed()})
    with pytest.raises(TypeError, match="config must be a dict"):
        cache.save("ann", "vgg5", {})
    with pytest.raises(ValueError, match="kind"):
        cache.path("../evil", CFG)
    assert not cache.has("ann", CFG)


def test_get_or_build_builds_once(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return {"w": torch.ones(2)}

    a = cache.get_or_build("ann", CFG, build)
    b = cache.get_or_build("ann", CFG, build)
    c = ArtifactCache(tmp_path).get_or_build("ann", dict(reversed(list(CFG.items()))), build)
    assert len(calls) == 1
    assert torch.equal(a["w"], b["w"]) and torch.equal(b["w"], c["w"])
    cache.get_or_build("ann", {**CFG, "seed": 1}, build)     # another config builds again
    assert len(calls) == 2
    with pytest.raises(TypeError, match="must return a dict"):
        cache.get_or_build("bad", CFG, lambda: 3)


def test_a_reused_entry_counts_the_time_it_took_to_build(tmp_path, monkeypatch):
    """get_or_build records how long each build took; a later process (an earlier, stopped attempt's work re-used)
    that loads the entry instead of building it adds that time to reused_s under its kind, once however often it loads
    it; re-using an entry this process built adds nothing (that work is in its own wall time), nor does an entry saved
    without a build time."""
    import time as _time

    from snnlib.study import cache as C

    def slow():
        _time.sleep(0.2)
        return {"w": torch.ones(2)}

    first = ArtifactCache(tmp_path)
    first.get_or_build("scored", CFG, slow)
    first.get_or_build("scored", CFG, slow)
    ArtifactCache(tmp_path).get_or_build("scored", CFG, slow)
    assert first.reused_s == {"scored": 0.0}                        # this process's own entry
    built = first.build_seconds("scored", CFG)
    assert 0.2 <= built < 5 and first.build_seconds("scored", CFG, other_processes=True) == 0.0
    monkeypatch.setattr(C, "PROCESS_ID", "another-process")          # a later attempt
    again = ArtifactCache(tmp_path)
    again.get_or_build("scored", CFG, slow)
    again.get_or_build("scored", CFG, slow)
    assert again.reused_s == {"scored": pytest.approx(built)}         # loaded twice, one piece of work
    again.save("adversarial", CFG, {"w": torch.zeros(1)})           # no build time recorded
    again.get_or_build("adversarial", CFG, slow)
    assert again.reused_s["adversarial"] == 0.0 and again.build_seconds("nosuch", CFG) == 0.0


def _set_build_s(cache, kind, cfg, seconds):
    """Give an entry a known build time, as another process would have recorded it."""
    path = cache.path(kind, cfg) / "config.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps(dict(meta, build_s=seconds, built_by="an earlier attempt")))


@pytest.mark.parametrize("order", ["outer first", "inner first"])
def test_an_entry_built_inside_another_counts_once_in_reused_s(tmp_path, monkeypatch, order):
    """A scored cell whose build crafted its examples (10 s in all, 4 s of them the examples' own entry): a later
    process that loads both, in either order, re-used 10 s of work, not 14."""
    from snnlib.study import cache as C

    first = ArtifactCache(tmp_path)
    inner, outer = {"what": "examples"}, {"what": "scored"}
    first.get_or_build("scored", outer, lambda: first.get_or_build("adversarial", inner, lambda: {"x": torch.ones(1)}))
    assert json.loads((first.path("scored", outer) / "config.json").read_text())["nested_built"] == [
        f"adversarial/{first.key(inner)}"]
    _set_build_s(first, "scored", outer, 10.0)
    _set_build_s(first, "adversarial", inner, 4.0)
    monkeypatch.setattr(C, "PROCESS_ID", "a later attempt")
    again = ArtifactCache(tmp_path)
    loads = [("scored", outer), ("adversarial", inner)]
    for kind, cfg in loads if order == "outer first" else loads[::-1]:
        again.get_or_build(kind, cfg, lambda: pytest.fail("the entry is cached"))
    assert sum(again.reused_s.values()) == pytest.approx(10.0)
    assert again.reused_s == ({"scored": 10.0, "adversarial": 0.0} if order == "outer first"
                              else {"adversarial": 4.0, "scored": 6.0})


def test_resume_after_interrupted_build_and_partial_entry(tmp_path, capsys):
    cache = ArtifactCache(tmp_path)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("ann", CFG, interrupted)
    assert not cache.has("ann", CFG)
    # a stop between config.json and state.pt leaves an incomplete entry: it is rebuilt
    d = cache.path("ann", CFG)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text("{}")
    (d / ".state.pt.123.tmp").write_bytes(b"partial")
    assert not cache.has("ann", CFG)
    out = cache.get_or_build("ann", CFG, lambda: {"w": torch.zeros(1)})   # lock was released
    assert cache.has("ann", CFG) and torch.equal(out["w"], torch.zeros(1))
    # a corrupt state.pt is reported and rebuilt
    (d / "state.pt").write_bytes(b"garbage")
    out = cache.get_or_build("ann", CFG, lambda: {"w": torch.ones(1)})
    assert torch.equal(out["w"], torch.ones(1))
    assert "rebuilding" in capsys.readouterr().err
    assert torch.equal(cache.load("ann", CFG)["w"], torch.ones(1))


def test_load_detects_mismatched_config(tmp_path):
    cache = ArtifactCache(tmp_path)
    d = cache.save("ann", CFG, {"w": torch.zeros(1)})
    meta = json.loads((d / "config.json").read_text())
    meta["config"]["seed"] = 99
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(A.CacheError, match="differs"):
        cache.load("ann", CFG)


def _worker(root: str, counter: str, out: str) -> None:
    def build():
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)                      # the other process arrives while we build
        return {"w": torch.full((2,), 7.0), "pid": os.getpid()}

    state = ArtifactCache(root).get_or_build("ann", CFG, build)
    Path(out).write_text(json.dumps({"pid": int(state["pid"]), "w": state["w"].tolist()}))


def test_get_or_build_two_processes_build_once(tmp_path):
    ctx = mp.get_context("fork")
    counter = tmp_path / "builds.txt"
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "cache"), str(counter),
                                               str(tmp_path / f"out{i}.json")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(counter.read_text().split()) == 1
    outs = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]
    assert outs[0] == outs[1] and outs[0]["w"] == [7.0, 7.0]


# --------------------------------------------------------------------------------------------
# write_result
# --------------------------------------------------------------------------------------------


def test_write_result(tmp_path):
    p = R.write_result(tmp_path / "res", "02_discretization",
                       {"parameters": {"T_bp": 8}, "acc": [0.5, float("inf")]}, wall_time_s=1.25)
    assert p == tmp_path / "res" / "02_discretization.json"
    data = json.loads(p.read_text())
    assert data["wall_time_s"] == 1.25 and data["parameters"] == {"T_bp": 8}
    assert data["acc"] == [0.5, None]
    for k in ("snnlib_version", "torch_version", "timestamp_utc", "machine"):
        assert k in data
    assert {"platform", "cpu_count", "device_name"} <= set(data["machine"])
    assert data["torch_version"] == torch.__version__
    assert "wall_time_s" not in json.loads(R.write_result(tmp_path, "x", {}).read_text())
    with pytest.raises(ValueError, match="simple file stem"):
        R.write_result(tmp_path, "../x", {})
    with pytest.raises(TypeError, match="payload must be a dict"):
        R.write_result(tmp_path, "x", [1])


def test_run_provenance_reads_results_and_runner_log(tmp_path):
    R.write_result(tmp_path, "02_discretization", {"results": {}}, wall_time_s=12.5)
    R.write_result(tmp_path, "01_models", {"results": {}}, wall_time_s=3.0)
    (tmp_path / "_study_log.json").write_text(json.dumps({"notebooks": {"01_models": {"wall_time_s": 4.25}}}))
    (tmp_path / "broken.json").write_text("{not json")
    rows = R.run_provenance(tmp_path)
    assert [r["notebook"] for r in rows] == ["01_models", "02_discretization"]
    assert rows[0]["wall_time_s"] == 3.0 and rows[0]["runner_wall_time_s"] == 4.25
    assert rows[1]["runner_wall_time_s"] is None
    assert rows[0]["cpu_count"] == os.cpu_count() and rows[0]["device"]
