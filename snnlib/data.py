"""CIFAR-10 / CIFAR-100 loading by global official index.

Two sources:

* ``"torchvision"``: a full official copy (``cifar-10-batches-py`` or ``cifar-100-python``) in a data
  folder, read with ``torchvision.datasets.CIFAR10/100``.
* ``"subset"``: the real subset shipped in ``<repo>/data/`` (leading images of each official batch file,
  see ``data/README.md``). Numbers computed on it are reduced-scale.

Every image is identified by its **global official index**: for the CIFAR-10 train split,
``(batch_number - 1) * 10000 + position in the batch``; for CIFAR-100 train, the position in the ``train``
file; for test, the position in the test file. This equals the position in torchvision's ``.data``,
so the same index selects the same image from either source.

Pixels are uint8 HWC in memory and float32 CHW in [0, 1] when batched; no normalisation here.
"""
from __future__ import annotations

import hashlib
import numbers
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    "DataError", "Split", "load", "default_indices", "to_float", "batches", "augment",
    "resolve_data_dir", "full_copy_available", "subset_size", "SUBSET_DIR", "SUBSET_ENV_VAR",
]

#: Environment variable naming the folder of the shipped subsets (for an installed, non-editable snnlib).
SUBSET_ENV_VAR = "SNNLIB_SUBSET_DIR"
#: Folder holding the shipped subsets: ``$SNNLIB_SUBSET_DIR`` if set, else ``<repo>/data`` (the checkout
#: snnlib runs from; ``pip install -e .`` keeps that link).
SUBSET_DIR = Path(os.environ.get(SUBSET_ENV_VAR) or Path(__file__).resolve().parent.parent / "data").expanduser()
ENV_VAR = "SNNLIB_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/snnlib/data")

_SPECS = {
    "cifar10": dict(
        title="CIFAR-10", num_classes=10, folder="cifar-10-batches-py",
        files=("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta"),
        npz="cifar10-prefix-subset/cifar10_prefix_subset.npz",
        total={"train": 50000, "test": 10000},
    ),
    "cifar100": dict(
        title="CIFAR-100", num_classes=100, folder="cifar-100-python",
        files=("train", "test", "meta"),
        npz="cifar100-prefix-subset/cifar100_prefix_subset.npz",
        total={"train": 50000, "test": 10000},
    ),
}
_SPLITS = ("train", "test")
_SOURCES = ("auto", "torchvision", "subset")
_SOURCE_WORDS = {"torchvision": "full official copy", "subset": "shipped real subset"}


class DataError(Exception):
    """A data set cannot be loaded as asked; the message says why and how to fix it."""


# --------------------------------------------------------------------------- validation helpers

def _check_dataset(dataset) -> str:
    if not isinstance(dataset, str):
        raise DataError(f"dataset must be a string such as 'cifar10' or 'cifar100', got {type(dataset).__name__}")
    key = dataset.lower().replace("-", "").replace("_", "")
    if key not in _SPECS:
        raise DataError(f"unknown dataset {dataset!r}: choose 'cifar10' or 'cifar100'")
    return key


def _check_split(split) -> str:
    if not isinstance(split, str) or split.lower() not in _SPLITS:
        raise DataError(f"unknown split {split!r}: choose 'train' or 'test'")
    return split.lower()


def _check_n(n) -> Optional[int]:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise DataError(f"n must be an integer or None, got {type(n).__name__} {n!r}")
    if n < 1:
        raise DataError(f"n must be at least 1, got {n}")
    return int(n)


def _check_bool(name, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _as_index_array(indices) -> np.ndarray:
    if isinstance(indices, (str, bytes)):
        raise DataError("indices must be a sequence of integers, got a string")
    if isinstance(indices, torch.Tensor):
        arr = indices.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        except TypeError:
            raise DataError(f"indices must be a sequence of integers, got {type(indices).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise DataError("indices must be a non-empty 1-D sequence of integers")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- locations

def resolve_data_dir(data_dir=None) -> Path:
    """Data folder: ``data_dir`` if given, else ``$SNNLIB_DATA_DIR``, else ``~/.cache/snnlib/data``."""
    if data_dir is None:
        data_dir = os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR
    if not isinstance(data_dir, (str, os.PathLike)):
        raise DataError(f"data_dir must be a path or None, got {type(data_dir).__name__}")
    return Path(data_dir).expanduser()


def full_copy_available(dataset: str = "cifar10", data_dir=None) -> bool:
    """True when all official files of ``dataset`` are present in the data folder (md5 not checked here)."""
    spec = _SPECS[_check_dataset(dataset)]
    folder = resolve_data_dir(data_dir) / spec["folder"]
    return all((folder / f).is_file() for f in spec["files"])


def _missing_message(key: str, data_dir: Path, why: str) -> str:
    spec = _SPECS[key]
    sizes = _subset_sizes_text(key)
    return (
        f"{spec['title']} full copy not usable in {data_dir}: {why}\n"
        f"Fix it in one of two ways:\n"
        f"  (1) put the official '{spec['folder']}' folder in the data dir (pass --data-dir DIR or set "
        f"{ENV_VAR}=DIR), or pass download=True / --download on a machine with internet;\n"
        f"  (2) use the shipped real subset with source=\"subset\" ({sizes}; reduced-scale results)."
    )


def _subset_sizes_text(key: str) -> str:
    try:
        return f"{subset_size(key, 'train')} train + {subset_size(key, 'test')} test images"
    except DataError:
        return "subset files missing too"


# --------------------------------------------------------------------------- shipped subset

@lru_cache(maxsize=4)
def _subset_arrays(key: str, split: str):
    """(images uint8 (N,32,32,3), labels int64 (N,), global indices int64 (N,)) of the shipped subset."""
    spec = _SPECS[key]
    path = SUBSET_DIR / spec["npz"]
    if not path.is_file():
        raise DataError(f"shipped {spec['title']} subset not found at {path}; restore it from the repository "
                        f"(git checkout -- data/), point ${SUBSET_ENV_VAR} at a checkout's data/ folder (needed when "
                        f"snnlib is installed without -e), or use a full copy with source=\"torchvision\"")
    try:
        with np.load(path, allow_pickle=False) as z:
            x = np.ascontiguousarray(z[f"x_{split}"])
            if key == "cifar10":
                labels_all = z[f"{split}_labels_all"]
                if split == "train":
                    idx = (z["train_batch"].astype(np.int64) - 1) * 10000 + z["train_index"].astype(np.int64)
                else:
                    idx = z["test_index"].astype(np.int64)
            else:
                labels_all = z[f"{split}_fine_all"]
                idx = z[f"{split}_index"].astype(np.int64)
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError...
        raise DataError(f"shipped {spec['title']} subset at {path} is corrupt ({type(exc).__name__}: {exc}); "
                        f"restore it from the repository (git checkout -- data/)") from None
    total = spec["total"][split]
    if (x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8 or len(idx) != len(x)
            or len(labels_all) != total or idx.min() < 0 or idx.max() >= total):
        raise DataError(f"shipped {spec['title']} subset at {path} has unexpected contents; "
                        f"restore it from the repository (git checkout -- data/)")
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    x = x[order] if not np.all(order == np.arange(len(order))) else x
    labels = labels_all[idx].astype(np.int64)
    x.setflags(write=False)
    return x, labels, idx


def subset_size(dataset: str = "cifar10", split: str = "test") -> int:
    """Number of images of ``split`` in the shipped subset."""
    return len(_subset_arrays(_check_dataset(dataset), _check_split(split))[2])


# --------------------------------------------------------------------------- index selection

def default_indices(dataset: str = "cifar10", split: str = "test", n: Optional[int] = None,
                    full: bool = False) -> torch.Tensor:
    """First ``n`` global indices (int64 (n,)) in the standard order.

    The order is: the shipped subset's indices sorted ascending, then (only when ``full=True``, i.e. a
    full copy is available) the remaining official indices ascending. So the same ``n`` selects the same
    images from the subset and from a full copy whenever ``n`` fits the subset. ``n=None`` means all.
    """
    key, split, n = _check_dataset(dataset), _check_split(split), _check_n(n)
    full = _check_bool("full", full)
    sub = _subset_arrays(key, split)[2]
    if n is not None and n <= len(sub):
        return torch.from_numpy(sub[:n].copy())
    if not full:
        if n is None:
            return torch.from_numpy(sub.copy())
        spec = _SPECS[key]
        raise DataError(
            f"asked for {n} {spec['title']} {split} images but the shipped real subset has only {len(sub)}. "
            f"Use n <= {len(sub)}, or put the official '{spec['folder']}' folder in the data dir "
            f"(--data-dir DIR or {ENV_VAR}=DIR, or download=True / --download with internet) "
            f"to use the full {spec['total'][split]} images.")
    total = _SPECS[key]["total"][split]
    rest = np.setdiff1d(np.arange(total, dtype=np.int64), sub, assume_unique=True)
    allidx = np.concatenate([sub, rest])
    if n is not None and n > total:
        raise DataError(f"asked for {n} {_SPECS[key]['title']} {split} images but the split has only {total}")
    return torch.from_numpy(allidx[:n].copy() if n is not None else allidx)


# --------------------------------------------------------------------------- split container

def _ranges_text(idx: np.ndarray, max_ranges: int = 3) -> str:
    if len(idx) == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(idx) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(idx) - 1]])
    parts = [f"{idx[s]}" if s == e else f"{idx[s]}-{idx[e]}" for s, e in zip(starts, ends)]
    if len(parts) > max_ranges:
        return ", ".join(parts[:max_ranges]) + f", ... ({len(parts)} runs)"
    return ", ".join(parts)


@dataclass
class Split:
    """One selected split held in memory.

    images: uint8 (N, 32, 32, 3) HWC, as torchvision ``.data``; labels: int64 (N,);
    indices: int64 (N,) global official indices (see module docstring).
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    dataset: str
    split: str
    source: str
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def describe(self) -> str:
        """One line, e.g. ``CIFAR-10 test, 512 images (shipped real subset, official indices 0-511)``."""
        title = _SPECS[self.dataset]["title"]
        return (f"{title} {self.split}, {len(self)} images ({_SOURCE_WORDS.get(self.source, self.source)}, "
                f"official indices {_ranges_text(self.indices.numpy())})")

    def indices_sha256(self) -> str:
        """sha256 (hex) of the index list as little-endian int64 bytes."""
        return hashlib.sha256(self.indices.numpy().astype("<i8").tobytes()).hexdigest()

    def info(self) -> dict:
        """JSON-able summary: dataset, split, source, n, first/last index, sha256 of the index list."""
        idx = self.indices
        return {
            "dataset": self.dataset,
            "split": self.split,
            "source": self.source,
            "n": len(self),
            "num_classes": self.num_classes,
            "first_index": int(idx[0]) if len(idx) else None,
            "last_index": int(idx[-1]) if len(idx) else None,
            "indices_sha256": self.indices_sha256(),
            "description": self.describe(),
        }


# --------------------------------------------------------------------------- loading

def _load_torchvision_dataset(key: str, split: str, root: Path, download: bool):
    import torchvision  # lazy: slow import

    cls = torchvision.datasets.CIFAR10 if key == "cifar10" else torchvision.datasets.CIFAR100
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create data dir {root}: {exc}") from None
    try:
        return cls(str(root), train=(split == "train"), download=download)
    except RuntimeError as exc:
        if "not found" not in str(exc).lower():
            why = str(exc)
        elif full_copy_available(key, root):
            why = f"the files in {_SPECS[key]['folder']}/ fail torchvision's md5 check (corrupt or incomplete)"
        else:
            why = f"official files missing (no complete {_SPECS[key]['folder']}/ folder)"
        raise DataError(_missing_message(key, root, why)) from None
    except Exception as exc:  # network errors during download, unreadable pickles...
        raise DataError(_missing_message(key, root, f"{type(exc).__name__}: {exc}")) from None


def load(dataset: str = "cifar10", split: str = "test", n: Optional[int] = None,
         indices: Optional[Sequence[int]] = None, data_dir=None, source: str = "auto",
         download: bool = False) -> Split:
    """Load ``split`` of ``dataset`` into memory.

    n: number of images in the standard order (:func:`default_indices`); None = all of the source.
    indices: explicit global official indices (exclusive with ``n``); kept in the given order.
    data_dir: folder holding the full copy (default ``$SNNLIB_DATA_DIR`` or ``~/.cache/snnlib/data``).
    source: ``"auto"`` (full copy if present or ``download=True``, else shipped subset),
    ``"torchvision"`` or ``"subset"``. download: let torchvision fetch the full copy (needs internet).
    """
    key, split, n = _check_dataset(dataset), _check_split(split), _check_n(n)
    if not isinstance(source, str) or source.lower() not in _SOURCES:
        raise DataError(f"unknown source {source!r}: choose 'auto', 'torchvision' or 'subset'")
    source = source.lower()
    download = _check_bool("download", download)
    root = resolve_data_dir(data_dir)
    spec = _SPECS[key]
    idx = None
    if indices is not None:
        if n is not None:
            raise DataError("give either n or indices, not both")
        idx = _as_index_array(indices)
        total = spec["total"][split]
        bad = idx[(idx < 0) | (idx >= total)]
        if len(bad):
            raise DataError(f"indices out of range for {spec['title']} {split} (0..{total - 1}): "
                            f"{bad[:5].tolist()}")

    if source == "auto":
        source = "torchvision" if (download or full_copy_available(key, root)) else "subset"

    if source == "subset":
        x, labels, sub_idx = _subset_arrays(key, split)
        if idx is None:
            idx = default_indices(key, split, n, full=False).numpy()
        pos = np.searchsorted(sub_idx, idx)
        pos_c = np.minimum(pos, len(sub_idx) - 1)
        missing = idx[sub_idx[pos_c] != idx]
        if len(missing):
            raise DataError(
                f"{len(missing)} requested {spec['title']} {split} indices are not in the shipped subset "
                f"(e.g. {missing[:5].tolist()}); the subset holds official indices "
                f"{_ranges_text(sub_idx, 5)}. For other images put the official '{spec['folder']}' folder "
                f"in the data dir (--data-dir DIR or {ENV_VAR}=DIR) and use source=\"torchvision\".")
        images = torch.from_numpy(x[pos_c].copy())
        labs = torch.from_numpy(labels[pos_c].copy())
    else:
        ds = _load_torchvision_dataset(key, split, root, download)
        if idx is None:
            idx = default_indices(key, split, n, full=True).numpy()
        data = ds.data
        if len(data) != spec["total"][split]:
            raise DataError(f"{spec['title']} {split} in {root} has {len(data)} images, "
                            f"expected {spec['total'][split]}")
        images = torch.from_numpy(np.ascontiguousarray(np.asarray(data[idx], dtype=np.uint8)))
        labs = torch.from_numpy(np.asarray(ds.targets, dtype=np.int64)[idx])
    if images.shape[1:] != (32, 32, 3):
        raise DataError(f"unexpected image shape {tuple(images.shape)} from source {source!r}")
    return Split(images=images, labels=labs, indices=torch.from_numpy(np.asarray(idx, dtype=np.int64).copy()),
                 dataset=key, split=split, source=source, num_classes=spec["num_classes"])


# --------------------------------------------------------------------------- tensors and batches

def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) HWC -> float32 (N, 3, 32, 32) in [0, 1]."""
    if not isinstance(images_uint8, torch.Tensor):
        images_uint8 = torch.as_tensor(np.asarray(images_uint8))
    if images_uint8.dim() != 4 or images_uint8.shape[-1] != 3:
        raise DataError(f"to_float expects (N, H, W, 3) images, got shape {tuple(images_uint8.shape)}")
    return images_uint8.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()


def augment(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``padding``) + random horizontal flip of a batch (B, C, H, W).

    Draws, in this order, from ``generator`` only: row offsets ``randint(0, 2p+1, (B,))``, column offsets
    ``randint(0, 2p+1, (B,))``, flips ``rand(B) < 0.5``. Output image b is
    ``padded[b, :, dy:dy+H, dx:dx+W]``, flipped along W when its flip is True. Same shape, dtype, device.
    """
    if not isinstance(generator, torch.Generator):
        raise DataError("augment needs a torch.Generator (all random draws come from it)")
    if x.dim() != 4:
        raise DataError(f"augment expects (B, C, H, W), got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    gdev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gdev).to(x.device)
    flip = (torch.rand(b, generator=generator, device=gdev) < 0.5).to(x.device)
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = dy[:, None] + ar_h[None, :]                                   # (B, H)
    cols = dx[:, None] + torch.where(flip[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # (B, W)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    out = padded[bidx, :, rows[:, :, None], cols[:, None, :]]            # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def batches(split: Split, batch_size: int, shuffle: bool = False, augment: bool = False,
            generator: Optional[torch.Generator] = None,
            drop_last: bool = False) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x float32 (B, 3, 32, 32) in [0, 1], y int64 (B,))`` over ``split``.

    Shuffling (one ``randperm`` up front) and augmentation (:func:`augment`, per batch) draw only from
    ``generator``, which is required when either is on.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    shuffle = _check_bool("shuffle", shuffle)
    do_aug = _check_bool("augment", augment)
    if (shuffle or do_aug) and not isinstance(generator, torch.Generator):
        raise DataError("shuffle/augment need generator=torch.Generator().manual_seed(seed) "
                        "(no global random state is used)")
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        sel = order[start:start + batch_size]
        x = to_float(split.images[sel])
        if do_aug:
            x = _augment(x, generator)
        yield x, split.labels[sel]


_augment = augment  # `batches` has a parameter named `augment`
