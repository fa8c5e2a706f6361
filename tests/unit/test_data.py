import hashlib
import json

import numpy as np
import pytest
import torch

from snnlib import data
from snnlib.data import DataError

C10_NPZ = data.SUBSET_DIR / "cifar10-prefix-subset" / "cifar10_prefix_subset.npz"
C100_NPZ = data.SUBSET_DIR / "cifar100-prefix-subset" / "cifar100_prefix_subset.npz"


@pytest.fixture(autouse=True)
def _no_full_copy(tmp_path, monkeypatch):
    """Point the default data dir at an empty folder so 'auto' means the shipped subset."""
    monkeypatch.setenv("SNNLIB_DATA_DIR", str(tmp_path / "empty"))


@pytest.fixture(scope="module")
def c10():
    with np.load(C10_NPZ) as z:
        return {k: z[k] for k in ("train_labels_all", "test_labels_all", "train_batch", "train_index")}


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shipped_files_are_the_documented_ones():
    assert _sha256(C10_NPZ) == "5d20d8840191e46a40a3660a1d4afa158d66c7b01dc11f6d58996081ba58a4a1"
    assert _sha256(C100_NPZ) == "7225cba38c6779eb883fe6353d4e618f18739de47976cd345a7de01b599340c6"


def test_subset_test_split_loads(c10):
    s = data.load("cifar10", "test")
    assert s.source == "subset" and s.dataset == "cifar10" and s.split == "test"
    assert len(s) == 1017 == data.subset_size("cifar10", "test")
    assert s.images.shape == (1017, 32, 32, 3) and s.images.dtype == torch.uint8
    assert s.labels.dtype == torch.int64 and s.indices.dtype == torch.int64
    assert s.num_classes == 10
    assert s.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.equal(s.labels, torch.from_numpy(c10["test_labels_all"][s.indices.numpy()]))
    assert torch.equal(s.indices, torch.arange(1017))


def test_subset_train_global_indices(c10):
    s = data.load("cifar10", "train")
    assert len(s) == 5438
    assert s.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    expect_idx = (c10["train_batch"].astype(np.int64) - 1) * 10000 + c10["train_index"]
    assert s.indices.tolist() == sorted(expect_idx.tolist())
    assert torch.equal(s.labels, torch.from_numpy(c10["train_labels_all"][s.indices.numpy()]))
    # data_batch_1 raw rows 0-2 (CHW-flattened images 0-2) start/end with these values, as printed
    # from the real file (data.md section 3): first 3 red pixels / last 3 blue pixels of each image
    assert [s.images[i, 0, :3, 0].tolist() for i in range(3)] == [[59, 43, 50], [154, 126, 105],
                                                                   [255, 253, 253]]
    assert [s.images[i, -1, -3:, 2].tolist() for i in range(3)] == [[140, 84, 72], [139, 142, 144],
                                                                     [83, 83, 84]]
    # an image from batch 3 at position 5 has global index 20005 and the official label
    x = data.load("cifar10", "train", indices=[20005, 3])
    assert x.indices.tolist() == [20005, 3]
    assert x.labels.tolist() == [int(c10["train_labels_all"][20005]), 4]
    pos = s.indices.tolist().index(20005)
    assert torch.equal(x.images[0], s.images[pos]) and torch.equal(x.images[1], s.images[3])


def test_default_indices_sorted_and_stable():
    a = data.default_indices("cifar10", "train", 1500)
    assert a.dtype == torch.int64 and len(a) == 1500
    assert torch.all(a[1:] > a[:-1])
    assert a[1101].item() == 1101 and a[1102].item() == 10000
    assert torch.equal(a, data.default_indices("cifar10", "train", 1500))
    assert torch.equal(data.default_indices("cifar10", "train", 20), a[:20])
    # with a full copy: same prefix, then the remaining official indices in order
    full = data.default_indices("cifar10", "train", 6000, full=True)
    assert torch.equal(full[:1500], a)
    rest = full[5438:]
    assert torch.all(rest[1:] > rest[:-1]) and rest[0].item() == 1102
    assert len(set(full.tolist())) == 6000
    assert len(data.default_indices("cifar10", "test", None, full=True)) == 10000
    s = data.load("cifar10", "test", n=64)
    assert torch.equal(s.indices, data.default_indices("cifar10", "test", 64))


def test_describe_and_info():
    s = data.load("cifar10", "test", n=512)
    assert s.describe() == "CIFAR-10 test, 512 images (shipped real subset, official indices 0-511)"
    info = s.info()
    assert json.loads(json.dumps(info)) == info
    assert (info["n"], info["first_index"], info["last_index"], info["source"]) == (512, 0, 511, "subset")
    assert info["indices_sha256"] == hashlib.sha256(np.arange(512, dtype="<i8").tobytes()).hexdigest()


def test_cifar100_fine_labels():
    s = data.load("CIFAR-100", "test", n=100)
    assert s.dataset == "cifar100" and s.num_classes == 100
    with np.load(C100_NPZ) as z:
        assert s.labels.tolist() == z["test_fine_all"][:100].tolist()
    assert s.labels[:5].tolist() == [49, 33, 72, 51, 71]
    assert data.subset_size("cifar100", "train") == 1117


def test_to_float_and_batches():
    s = data.load("cifar10", "test", n=50)
    x = data.to_float(s.images)
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x[3, :, 5, 7] * 255, s.images[3, 5, 7].float())
    plain = list(data.batches(s, 16))
    assert [len(y) for _, y in plain] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([b for b, _ in plain]), x)
    assert [len(y) for _, y in data.batches(s, 16, drop_last=True)] == [16, 16, 16]

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return list(data.batches(s, 16, shuffle=True, augment=True, generator=g))

    a, b, c = run(1), run(1), run(2)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c))
    # shuffling is a permutation: same multiset of labels
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(s.labels.tolist())
    with pytest.raises(DataError):
        next(data.batches(s, 16, shuffle=True))  # no generator -> refuse global RNG


def test_augment_matches_reference():
    s = data.load("cifar10", "test", n=64)
    x = data.to_float(s.images)
    g = torch.Generator().manual_seed(123)
    state = g.get_state()
    out = data.augment(x, g)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0.0 <= out.min() and out.max() <= 1.0
    # replicate the documented draws and build the expectation the slow way
    g2 = torch.Generator()
    g2.set_state(state)
    dy = torch.randint(0, 9, (64,), generator=g2)
    dx = torch.randint(0, 9, (64,), generator=g2)
    flip = torch.rand(64, generator=g2) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(64):
        ref = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        if flip[i]:
            ref = torch.flip(ref, dims=[2])
        assert torch.equal(out[i], ref), i
    # both transformations actually occur
    assert 0 < int(flip.sum()) < 64
    assert ((dx != 4) | (dy != 4)).any()
    assert not torch.equal(out, x)
    # an unflipped, uncentred crop leaves a zero border
    i = int(torch.nonzero(dy == 0)[0]) if (dy == 0).any() else None
    if i is not None:
        assert torch.all(out[i, :, :4, :] == 0)


def test_explicit_indices_and_errors():
    with pytest.raises(DataError, match="1017"):
        data.load("cifar10", "test", n=2000)
    with pytest.raises(DataError, match="not in the shipped subset"):
        data.load("cifar10", "test", indices=[0, 5000])
    with pytest.raises(DataError, match="out of range"):
        data.load("cifar10", "test", indices=[10000])
    with pytest.raises(DataError, match="unknown dataset"):
        data.load("mnist")
    with pytest.raises(DataError, match="unknown split"):
        data.load("cifar10", "val")
    with pytest.raises(DataError, match="unknown source"):
        data.load("cifar10", source="web")
    with pytest.raises(DataError, match="integer"):
        data.load("cifar10", n="10")
    with pytest.raises(DataError, match="at least 1"):
        data.load("cifar10", n=0)
    with pytest.raises(DataError, match="not both"):
        data.load("cifar10", n=3, indices=[1, 2, 3])


def test_missing_torchvision_copy_names_both_fixes(tmp_path):
    with pytest.raises(DataError) as e:
        data.load("cifar10", "test", n=4, source="torchvision", data_dir=tmp_path)
    msg = str(e.value)
    assert "SNNLIB_DATA_DIR" in msg and "subset" in msg and "cifar-10-batches-py" in msg
    assert "download" in msg


class _FakeData:
    """Stands in for torchvision's (N,32,32,3) .data without allocating it; pixels encode the index."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        idx = np.atleast_1d(np.asarray(idx))
        out = np.zeros((len(idx), 32, 32, 3), np.uint8)
        out[:, 0, 0, 0] = idx % 256
        out[:, 0, 0, 1] = idx // 256
        return out


def _fake_cifar(calls):
    class FakeCIFAR:
        def __init__(self, root, train=True, download=False, **kw):
            calls.append((root, train, download))
            n = 50000 if train else 10000
            self.data = _FakeData(n)
            self.targets = [(7 * i) % 10 for i in range(n)]

    return FakeCIFAR


def test_torchvision_path_maps_global_indices(tmp_path, monkeypatch):
    import torchvision

    calls = []
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _fake_cifar(calls))
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for f in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
              "test_batch", "batches.meta"):
        (folder / f).write_bytes(b"x")
    monkeypatch.setenv("SNNLIB_DATA_DIR", str(tmp_path))
    assert data.full_copy_available("cifar10")

    s = data.load("cifar10", "train", n=6000)  # auto -> full copy, beyond the subset size
    assert s.source == "torchvision" and calls[-1] == (str(tmp_path), True, False)
    assert torch.equal(s.indices, data.default_indices("cifar10", "train", 6000, full=True))
    decoded = s.images[:, 0, 0, 0].long() + 256 * s.images[:, 0, 0, 1].long()
    assert torch.equal(decoded, s.indices)
    assert torch.equal(s.labels, (7 * s.indices) % 10)
    assert "full official copy" in s.describe()

    t = data.load("cifar10", "test", indices=[9999, 0, 4321])
    assert t.source == "torchvision" and t.labels.tolist() == [(7 * 9999) % 10, 0, (7 * 4321) % 10]
    # explicit subset source ignores the full copy
    assert data.load("cifar10", "test", n=3, source="subset").source == "subset"


def test_torchvision_corrupt_copy_is_dataerror(tmp_path, monkeypatch):
    import torchvision

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", Broken)
    with pytest.raises(DataError) as e:
        data.load("cifar100", "test", source="torchvision", data_dir=tmp_path)
    assert "cifar-100-python" in str(e.value) and "subset" in str(e.value)


def test_subset_dir_from_environment_for_installed_packages(tmp_path):
    """SNNLIB_SUBSET_DIR points an installed (non-editable) snnlib at a checkout's data/ folder; a wrong folder
    gives an error that names the variable."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo_data = Path(__file__).resolve().parents[2] / "data"
    copy = tmp_path / "data"
    shutil.copytree(repo_data / "cifar100-prefix-subset", copy / "cifar100-prefix-subset")
    code = ("from snnlib import data; s = data.load('cifar100', 'test', n=5, source='subset'); "
            "print(data.SUBSET_DIR, len(s))")
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env={**os.environ, "SNNLIB_SUBSET_DIR": str(copy)})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(copy), "5"]
    bad = subprocess.run([sys.executable, "-c", code.replace("cifar100", "cifar10")], capture_output=True,
                         text=True, env={**os.environ, "SNNLIB_SUBSET_DIR": str(copy)})
    assert bad.returncode != 0 and "SNNLIB_SUBSET_DIR" in bad.stderr and "Traceback" in bad.stderr
