"""Faults survived, nothing lost: a training process killed with SIGKILL resumes from its checkpoints and ends with
the very models of an uninterrupted run; a damaged cache entry is rebuilt, never loaded."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The child trains a tiny model set (4 ANN epochs, 3 SNN-BP epochs) into the cache given as argv[1] and prints one
# JSON line: a digest of every model's weights and the training histories (wall-clock seconds left out).  After
# every checkpoint it writes, it sleeps a little, so that the parent can kill it at a known point.
CHILD = textwrap.dedent('''
    import hashlib, json, sys, time
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    import snnlib.train as T
    from tiny_models import tiny_arch
    from snnlib.study.cache import ArtifactCache
    from snnlib.study.pipeline import PIPELINE_KEYS, build_models
    from snnlib.study.profiles import load_profile

    save = T.atomic_save_torch
    def slow_save(obj, path):
        save(obj, path)
        time.sleep(float(sys.argv[2]))
    T.atomic_save_torch = slow_save

    def digest(sd):
        h = hashlib.sha256()
        for k in sorted(sd):
            h.update(k.encode()); h.update(sd[k].detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    with tiny_arch("tiny_fault", features=[8, "A", 16, "A"], hidden=[32]):
        p = {{k: v for k, v in load_profile("smoke")["common"].items() if k in PIPELINE_KEYS}}
        p.update(arch="tiny_fault", n_train=48, val_images=16, balance_images=16, balance_T=8, batch_size=16,
                 epochs_ann=4, ann_warmup_epochs=1, ann_checkpoint_every=1, epochs_snn=3, patience=3, T_conv=8,
                 T_bp=6, device="cpu")
        ms = build_models(p, 0, cache=ArtifactCache(sys.argv[1]), progress=False,
                          log=lambda m: print("LOG", m, file=sys.stderr, flush=True))
        hist = {{name: {{k: v for k, v in (h or {{}}).items() if k != "seconds"}}
                for name, h in (("ann", ms.ann_history), ("snn_bp", ms.snn_bp_history))}}
        print(json.dumps({{"ann": digest(ms.ann.state_dict()), "snn_bp": digest(ms.snn_bp.net.state_dict()),
                          "ann_epoch_1": digest(ms.ann_at_epoch(1).state_dict()),
                          "thresholds": [float(t) for t in ms.info["thresholds"]], "history": hist}}))
''').format(tests=str(ROOT / "tests"))


def _child(tmp_path: Path, cache: Path, pause_s: float) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(cache), str(pause_s)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, logs: list | None = None) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    if logs is not None:
        logs += [line[4:] for line in err.splitlines() if line.startswith("LOG ")]
    return json.loads(out.strip().splitlines()[-1])


def _kill_when(proc: subprocess.Popen, cache: Path, pattern: str, timeout_s: float = 300) -> Path:
    """SIGKILL ``proc`` as soon as a file matching ``pattern`` exists under ``cache``; returns that file."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        found = sorted(cache.glob(pattern))
        if found:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the child ended before {pattern} appeared: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{pattern} did not appear in {timeout_s} s")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_during_training_resumes_to_the_same_models(tmp_path):
    """Killed during the ANN's training, then again during the SNN's BPTT fine-tuning, then run to the end: every
    weight, threshold and history value equals the uninterrupted run's."""
    straight = _finish(_child(tmp_path, tmp_path / "straight", 0.0))

    cache = tmp_path / "killed"
    ann_ckpt = _kill_when(_child(tmp_path, cache, 1.0), cache, "checkpoints/*/ann.pt")
    assert not list(cache.glob("ann/*/state.pt")), "killed too late: the ANN had finished"
    assert ann_ckpt.is_file()
    _kill_when(_child(tmp_path, cache, 1.0), cache, "checkpoints/*/snn_bp.pt")
    assert list(cache.glob("ann/*/state.pt")) and not list(cache.glob("snn_bp/*/state.pt"))
    resumed = _finish(_child(tmp_path, cache, 0.0))
    assert resumed == straight


def test_two_runs_at_once_on_one_cache_train_each_model_once(tmp_path):
    """Two processes building the same models on one cache at the same time: each model is trained by one of them
    (the other waits on the entry's lock and loads it), and both end with the same models."""
    cache = tmp_path / "shared"
    a, b = _child(tmp_path, cache, 0.2), _child(tmp_path, cache, 0.2)
    logs: list = []
    ra, rb = _finish(a, logs), _finish(b, logs)
    assert ra == rb
    trained = sorted(m.split(" (")[0] for m in logs)
    assert trained == ["balanced thresholds", "trained ANN", "trained BPTT SNN"], logs


def test_truncated_cache_entry_is_rebuilt_not_loaded(tmp_path):
    """A model entry cut short (full disk, killed copy) is detected on load, reported with its path and rebuilt."""
    from snnlib.study.cache import ArtifactCache, CacheError

    import torch
    cache = ArtifactCache(tmp_path)
    cfg = {"what": "model", "n": 1}
    cache.save("ann", cfg, {"w": torch.arange(1000.0)})
    state = cache.path("ann", cfg) / "state.pt"
    state.write_bytes(state.read_bytes()[:300])
    with pytest.raises(CacheError, match=str(state.parent)):
        cache.load("ann", cfg)
    built = []
    out = cache.get_or_build("ann", cfg, lambda: built.append(1) or {"w": torch.ones(3)})
    assert built == [1] and torch.equal(out["w"], torch.ones(3))
    assert torch.equal(cache.load("ann", cfg)["w"], torch.ones(3))


@pytest.mark.parametrize("write", ["bytes", "torch"])
def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch, write):
    """A write that fails for lack of space (torch reports 'PytorchStreamWriter failed writing file') ends in one
    error naming the file and the free space; the old file is intact and no temp file remains."""
    import errno

    import torch
    from snnlib import files

    target = tmp_path / "state.pt"
    target.write_bytes(b"old")
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(files.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(files.WriteFailed, match=r"cannot write .*state\.pt: .* MB free on that file system"):
        if write == "bytes":
            files.atomic_write_bytes(target, b"x" * 100)
        else:
            files.atomic_save_torch({"w": torch.ones(1000)}, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]
