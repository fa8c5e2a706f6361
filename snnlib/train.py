"""Training: the ANN with SGD, the hybrid SNN with BPTT through the surrogate (Adam), checkpoint every epoch, resume.

Defaults follow the papers' setup (the training code Sharmin et al., ECCV 2020, arXiv:2003.10399, build on: Rathi,
Srinivasan, Panda and Roy, "Enabling Deep Spiking Neural Networks with Hybrid Conversion and Spike Timing Dependent
Backpropagation", ICLR 2020, arXiv:2005.01807, https://github.com/nitin-rathi/hybrid-snn-conversion):
ANN — SGD lr 1e-2, momentum 0.9, weight decay 5e-4, batch 64, lr / 10 at 60/80/90 % of the epochs; SNN — Adam
(amsgrad) lr 1e-4, weight decay 5e-4, lr / 5 at 60/80/90 %.  The settings of a run are one :class:`TrainConfig`
(``TrainConfig.ann(epochs)`` / ``TrainConfig.snn(epochs)`` give the papers' defaults); keyword calls such as
``train_ann(net, split, 10, lr=0.05)`` override its fields.

Validation and early stopping: ``fit(..., validate=fn)`` calls ``fn(model)`` after every epoch and records the
returned accuracy in ``history["val_acc"]``; with ``patience`` it stops once that many epochs passed without a
better validation accuracy, and with ``restore_best`` it returns the weights of the best validation epoch (the first
one on ties).  ``on_epoch_end(epoch, model, history)`` runs after each epoch (e.g. to keep a copy of the weights).

Randomness: shuffling and augmentation draw from a data generator seeded with ``seed``; dropout masks draw from the
global RNG, which :func:`fit` seeds with ``seed`` inside ``torch.random.fork_rng`` (so the caller's global RNG
state after ``fit`` is what it was before); the SNN's Poisson spikes come from its encoder's own generator.  A
checkpoint holds every stream used (data generator, CPU global RNG, the CUDA RNG of the training device, the
encoder's generator and a DataLoader's generators), so a resumed run ends with exactly the weights of an
uninterrupted one.  Checkpoints load with ``torch.load(weights_only=True)`` and carry the configuration that made
them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .data import Split, augment as augment_batch, batches
from .files import atomic_save_torch

__all__ = ["TrainConfig", "SCHEDULES", "OPTIMIZERS", "fit", "train_ann", "train_snn", "load_checkpoint",
           "CheckpointMismatch", "CorruptCheckpoint"]

#: learning-rate schedules: "step" (divide by ``lr_reduce`` at each milestone fraction of the epochs) or
#: "cosine" (``lr * (1 + cos(pi * (epoch - w) / (epochs - w))) / 2`` after ``w = warmup_epochs`` warm-up epochs,
#: epoch by epoch).  Warm-up (either schedule): epoch ``e < w`` uses ``(e + 1) / (w + 1)`` of the scheduled lr.
SCHEDULES = ("step", "cosine")
#: optimizers :meth:`TrainConfig.make_optimizer` builds: SGD with momentum, Adam (optionally amsgrad).
OPTIMIZERS = ("sgd", "adam")


class CheckpointMismatch(RuntimeError):
    """A checkpoint exists at the path but was made with another configuration."""


class CorruptCheckpoint(ValueError):
    """A checkpoint file exists but cannot be read back (truncated by a full disk or a kill mid-copy, or not a
    checkpoint); its message names the path."""


def _json_clean(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _real(name: str, value, low: float, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if v < low or (low_open and v == low) or v > high:
        left = "(" if low_open else "["
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{']' if high < math.inf else ')'}, got {v:g}")
    return v


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (besides the model and the data).

    epochs: number of epochs (int >= 0); lr: base learning rate; schedule: "step" | "cosine";
    milestones: fractions of ``epochs`` at which the "step" schedule divides the lr by ``lr_reduce``;
    batch_size: images per step (for a Split; a batch iterable brings its own); seed: the data generator and the
    global RNG (dropout) are seeded with it; augment: random crop + flip (None = True for a Split, False for a
    batch iterable); label_smoothing: of the cross-entropy, in [0, 1); optimizer: "sgd" | "adam", with momentum
    and nesterov (SGD), weight_decay, amsgrad (Adam) — used when :func:`fit` builds the optimizer itself;
    warmup_epochs: linear learning-rate warm-up, int >= 0 (see :data:`SCHEDULES`).
    The class defaults are the papers' ANN setup; :meth:`snn` gives the SNN one.
    """

    epochs: int
    lr: float = 1e-2
    milestones: Tuple[float, ...] = (0.6, 0.8, 0.9)
    lr_reduce: float = 10.0
    schedule: str = "step"
    batch_size: int = 64
    seed: int = 0
    augment: Optional[bool] = None
    label_smoothing: float = 0.0
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    amsgrad: bool = True
    warmup_epochs: int = 0
    nesterov: bool = False

    def __post_init__(self):
        e = self.epochs
        if isinstance(e, bool) or not isinstance(e, numbers.Integral) or e < 0:
            raise ValueError(f"epochs must be an int >= 0, got {e!r}")
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {b!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__} {self.seed!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise TypeError(f"augment must be True, False or None (= True for a Split), got {self.augment!r}")
        if not isinstance(self.amsgrad, bool):
            raise TypeError(f"amsgrad must be True or False, got {self.amsgrad!r}")
        if not isinstance(self.nesterov, bool):
            raise TypeError(f"nesterov must be True or False, got {self.nesterov!r}")
        w = self.warmup_epochs
        if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0, got {w!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if isinstance(self.milestones, (str, bytes)):
            raise TypeError(f"milestones must be a sequence of epoch fractions such as (0.6, 0.8), got {self.milestones!r}")
        try:
            ms = tuple(self.milestones)
        except TypeError:
            raise TypeError(f"milestones must be a sequence of epoch fractions such as (0.6, 0.8), got "
                            f"{type(self.milestones).__name__}") from None
        ms = tuple(_real(f"milestones[{i}]", m, 0.0, 1.0) for i, m in enumerate(ms))
        set_ = object.__setattr__
        set_(self, "epochs", int(e))
        set_(self, "batch_size", int(b))
        set_(self, "seed", int(self.seed))
        set_(self, "milestones", ms)
        set_(self, "lr", _real("lr", self.lr, 0.0, low_open=True))
        set_(self, "lr_reduce", _real("lr_reduce", self.lr_reduce, 0.0, low_open=True))
        set_(self, "label_smoothing", _real("label_smoothing", self.label_smoothing, 0.0, 1.0))
        if self.label_smoothing >= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing:g}")
        set_(self, "momentum", _real("momentum", self.momentum, 0.0))
        set_(self, "weight_decay", _real("weight_decay", self.weight_decay, 0.0))
        set_(self, "warmup_epochs", int(w))
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0.0):
            raise ValueError(f"nesterov=True needs optimizer 'sgd' with momentum > 0, got optimizer "
                             f"{self.optimizer!r} with momentum {self.momentum:g}")

    # ------------------------------------------------------------------ presets and changes
    @classmethod
    def ann(cls, epochs: int, **changes) -> "TrainConfig":
        """The papers' ANN setup: SGD lr 1e-2, momentum 0.9, weight decay 5e-4, lr / 10 at 60/80/90 %."""
        cls.field_names_check(changes)
        return cls(epochs=epochs, **changes)

    @classmethod
    def snn(cls, epochs: int, **changes) -> "TrainConfig":
        """The papers' SNN fine-tuning: Adam (amsgrad) lr 1e-4, weight decay 5e-4, lr / 5 at 60/80/90 %."""
        cls.field_names_check(changes)
        kw = dict(lr=1e-4, lr_reduce=5.0, optimizer="adam")
        kw.update(changes)
        return cls(epochs=epochs, **kw)

    @classmethod
    def field_names_check(cls, changes: Dict[str, Any]) -> None:
        """Raise TypeError naming every key of ``changes`` that is not a field of TrainConfig."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in changes if k not in names)
        if unknown:
            raise TypeError(f"unknown training setting(s) {unknown}; TrainConfig fields are {names}")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated like the constructor)."""
        self.field_names_check(changes)
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ what the settings mean
    def lr_at(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (0-based) under the schedule (after the warm-up, if any).

        Warm-up: epoch ``e < w`` (``w = warmup_epochs``) uses ``(e + 1) / (w + 1)`` of the rate the schedule gives
        it, so the rate rises linearly to the full rate at epoch ``w``.  Cosine: ``lr (1 + cos(pi (e - w) /
        (epochs - w))) / 2`` from epoch ``w`` on (``lr`` at epoch ``w``; without warm-up the usual cosine).  Step:
        ``lr / lr_reduce**k`` after ``k`` milestones (fractions of ``epochs``, warm-up included).
        """
        w = self.warmup_epochs
        if self.schedule == "cosine":
            if epoch < w:
                return self.lr * (epoch + 1) / (w + 1)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - w) / max(self.epochs - w, 1)))
        n = sum(1 for f in self.milestones if 0 < round(f * self.epochs) <= epoch)
        rate = self.lr / (self.lr_reduce ** n)
        return rate * (epoch + 1) / (w + 1) if epoch < w else rate

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """SGD(lr, momentum, weight_decay, nesterov) or Adam(lr, weight_decay, amsgrad) over ``params``."""
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                   nesterov=self.nesterov)
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, amsgrad=self.amsgrad)

    def record(self, augment: bool) -> Dict[str, Any]:
        """The JSON-able schedule settings a checkpoint is matched on (settings added later appear only when not at
        their defaults, so checkpoints written before keep matching).  augment: the resolved flag."""
        out: Dict[str, Any] = dict(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed, lr=self.lr,
                                   milestones=list(self.milestones), lr_reduce=self.lr_reduce, augment=augment)
        if self.schedule != "step":
            out["schedule"] = self.schedule
        if self.label_smoothing != 0.0:
            out["label_smoothing"] = self.label_smoothing
        if self.warmup_epochs != 0:
            out["warmup_epochs"] = self.warmup_epochs
        return out

    def optimizer_record(self) -> Dict[str, Any]:
        """The optimizer's settings as checkpoints record them (only those the chosen optimizer uses)."""
        if self.optimizer == "sgd":
            out = dict(optimizer="sgd", momentum=self.momentum, weight_decay=self.weight_decay)
            if self.nesterov:       # recorded only when used, so earlier checkpoints keep matching
                out["nesterov"] = True
            return out
        return dict(optimizer="adam", weight_decay=self.weight_decay, amsgrad=self.amsgrad)


def load_checkpoint(path: Union[str, Path]) -> dict:
    """Load a checkpoint safely (``weights_only=True``); raises FileNotFoundError with the path, and
    :class:`CorruptCheckpoint` (naming the path and why) when the file is not a readable checkpoint."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        raise CorruptCheckpoint(f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e)[:200]}); it is "
                                "truncated or not a snnlib checkpoint") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "rng", "epoch"} <= set(state):
        raise CorruptCheckpoint(f"checkpoint {path} is not a snnlib training checkpoint (no model, optimizer, rng "
                                "and epoch entries)")
    return state


# ---------------------------------------------------------------------------------------------- data sources
def _check_batch_source(train) -> None:
    if isinstance(train, Split):
        return
    try:
        it = iter(train)
    except TypeError:
        raise TypeError(f"train must be a snnlib Split or an iterable of (x, y) batches such as a DataLoader, got "
                        f"{type(train).__name__}") from None
    if it is train:
        raise TypeError("train is a one-shot iterator (e.g. a generator), which would be empty after the first "
                        "epoch; pass a Split, a DataLoader or a list of (x, y) batches")


def _data_record(train) -> Dict[str, Any]:
    if isinstance(train, Split):
        return train.info()
    info = getattr(train, "info", None)
    if callable(info):
        return info()
    out: Dict[str, Any] = {"source": type(train).__name__}
    try:
        out["batches"] = len(train)
    except TypeError:
        pass
    dataset = getattr(train, "dataset", None)
    if dataset is not None:
        try:
            out["n"] = len(dataset)
        except TypeError:
            pass
    return out


def _loader_generators(train) -> List[torch.Generator]:
    """The torch.Generators a DataLoader-like source shuffles with (its own and its sampler's), each once."""
    found: List[torch.Generator] = []
    for owner in (train, getattr(train, "sampler", None), getattr(getattr(train, "batch_sampler", None), "sampler",
                                                                  None)):
        g = getattr(owner, "generator", None) if owner is not None else None
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def _epoch_batches(train, settings: TrainConfig, augment: bool, gen: torch.Generator):
    if isinstance(train, Split):
        yield from batches(train, settings.batch_size, shuffle=True, augment=augment, generator=gen)
        return
    for i, item in enumerate(train):
        try:
            x, y = item
        except (TypeError, ValueError):
            raise TypeError(f"batch {i} of train is not an (x, y) pair: {type(item).__name__}") from None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
            raise TypeError(f"batch {i}: x must be float pixels in [0, 1] of shape (B, C, H, W), got "
                            f"{type(x).__name__} {getattr(x, 'dtype', '')} {tuple(getattr(x, 'shape', ()))}; "
                            f"convert uint8 images with snnlib.data.to_float")
        yield (augment_batch(x, gen) if augment else x), y


def _settings(epochs: Union[int, TrainConfig], base, overrides: Dict[str, Any]) -> TrainConfig:
    if isinstance(epochs, TrainConfig):
        return epochs.replace(**overrides)
    TrainConfig.field_names_check(overrides)
    return base(epochs, **overrides)


# ---------------------------------------------------------------------------------------------- training loop
def fit(model: nn.Module, train: Union[Split, Iterable], epochs: Union[int, TrainConfig],
        optimizer: Optional[torch.optim.Optimizer] = None, *, checkpoint: Optional[Union[str, Path]] = None,
        record: Optional[dict] = None, progress: bool = True, device: Union[str, torch.device] = "cpu",
        stop_after: Optional[int] = None, encoder=None, validate: Optional[Callable[[nn.Module], float]] = None,
        patience: Optional[int] = None, restore_best: bool = False,
        on_epoch_end: Optional[Callable[[int, nn.Module, Dict[str, list]], None]] = None,
        **overrides) -> Dict[str, list]:
    """Train ``model`` with cross-entropy; returns the history {'loss', 'acc', 'lr', 'seconds': one per epoch}
    (and 'val_acc' with ``validate``).

    train: a Split (shuffled and, with augment, augmented here, ``batch_size`` images per step) or any re-iterable
        of (x float (B, C, H, W) in [0, 1], y (B,)) batches, e.g. a DataLoader (which shuffles by itself; with
        ``augment=True`` each batch is augmented here too);
    epochs: the number of epochs or a :class:`TrainConfig`; overrides: TrainConfig fields (lr=..., milestones=...)
        set on top of it (class defaults when ``epochs`` is an int);
    optimizer: None = ``settings.make_optimizer(model.parameters())``; its lr is set every epoch by the schedule;
    checkpoint: file written after every epoch (atomically) and resumed from when present with the same settings;
    record: extra JSON-able entries of the checkpoint's configuration (the model's, the kind of run);
    stop_after: stop after this many epochs of *this call* (used to test resume);
    encoder: the SNN's encoder, whose generator state is checkpointed too;
    validate: ``validate(model) -> accuracy`` (a fraction) called after every epoch, recorded in
        ``history["val_acc"]``; it runs inside the training's RNG fork, so draws it makes from the global RNG would
        shift the dropout stream (reproducibly): evaluate with seeded streams of its own (an SNN: a twin's encoder);
    patience: with ``validate``, stop once ``patience`` epochs (int >= 1) passed without a strictly better
        validation accuracy (``epochs`` is then the maximum); a resumed run that had stopped stays stopped;
    restore_best: with ``validate``, leave ``model`` with the weights of the best validation epoch (the first best
        on ties) instead of the last epoch's (the best weights are checkpointed too);
    on_epoch_end: ``on_epoch_end(epoch, model, history)`` after each epoch (0-based ``epoch``, after validation,
        before the checkpoint is written; it may run again for an epoch redone after an interruption).
    The caller's global RNG state (CPU and the training CUDA device) is the same after the call as before.
    """
    settings = _settings(epochs, TrainConfig, overrides)
    _check_batch_source(train)
    augment = settings.augment if settings.augment is not None else isinstance(train, Split)
    record = dict(record or {})
    if optimizer is None:
        optimizer = settings.make_optimizer(model.parameters())
        record.update(settings.optimizer_record())
    if validate is None and (patience is not None or restore_best):
        raise ValueError("patience and restore_best need a validate function (validation accuracy per epoch)")
    if validate is not None and not callable(validate):
        raise TypeError(f"validate must be a function model -> accuracy, got {type(validate).__name__}")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"on_epoch_end must be a function (epoch, model, history), got {type(on_epoch_end).__name__}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, numbers.Integral)
                                 or patience < 1):
        raise ValueError(f"patience must be an int >= 1 (epochs without a better validation accuracy), "
                         f"got {patience!r}")
    if not isinstance(restore_best, bool):
        raise TypeError(f"restore_best must be True or False, got {restore_best!r}")
    if validate is not None:
        # validation settings are recorded only when used, so checkpoints written before keep matching
        record["validation"] = dict(patience=None if patience is None else int(patience), restore_best=restore_best)
    config = _json_clean(dict(record, **settings.record(augment), data=_data_record(train)))
    stopping = _Stopping(validate, None if patience is None else int(patience), restore_best)
    device = torch.device(device)
    model.to(device)
    cuda_devices = []
    if device.type == "cuda":
        cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda_devices):
        # dropout masks use the global generators; seeded here, their states are checkpointed
        torch.default_generator.manual_seed(settings.seed)
        for index in cuda_devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(settings.seed)
        return _fit_loop(model, train, settings, optimizer, augment, config, checkpoint, progress, device,
                         cuda_devices, stop_after, encoder, stopping, on_epoch_end)


@dataclass
class _Stopping:
    """Validation state of a run: the function, the early-stopping rule, the best epoch so far and its weights."""

    validate: Optional[Callable[[nn.Module], float]]
    patience: Optional[int]
    restore_best: bool
    best_epoch: Optional[int] = None
    best_acc: float = -math.inf
    best_state: Optional[Dict[str, torch.Tensor]] = None
    stopped: bool = False

    def after_epoch(self, epoch: int, model: nn.Module, history: Dict[str, list]) -> None:
        if self.validate is None:
            return
        acc = self.validate(model)
        if isinstance(acc, torch.Tensor):
            acc = acc.item()
        acc = float(acc)
        if math.isnan(acc):
            raise ValueError(f"validate returned NaN after epoch {epoch + 1}")
        history["val_acc"].append(acc)
        if acc > self.best_acc:
            self.best_epoch, self.best_acc = epoch, acc
            if self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.stopped = True

    def state(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"stopped": self.stopped, "best_epoch": self.best_epoch}
        if self.best_state is not None:
            out["best_model"] = self.best_state
        return out

    def load(self, state: Dict[str, Any], history: Dict[str, list]) -> None:
        self.stopped = bool(state.get("stopped", False))
        self.best_epoch = state.get("best_epoch")
        if self.best_epoch is not None:
            self.best_acc = float(history["val_acc"][self.best_epoch])
        self.best_state = state.get("best_model")


def _fit_loop(model, train, settings: TrainConfig, optimizer, augment: bool, config: dict, checkpoint, progress,
              device: torch.device, cuda_devices: List[int], stop_after, encoder, stopping: _Stopping,
              on_epoch_end) -> Dict[str, list]:
    epochs = settings.epochs
    gen = torch.Generator().manual_seed(settings.seed)
    loader_gens = _loader_generators(train)
    history: Dict[str, list] = {"loss": [], "acc": [], "lr": [], "seconds": []}
    if stopping.validate is not None:
        history["val_acc"] = []
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    state = None
    if ckpt_path is not None and ckpt_path.exists():
        try:
            state = load_checkpoint(ckpt_path)
        except CorruptCheckpoint as e:      # never resume from garbage: start again, keeping the file for a look
            bad = ckpt_path.with_name(ckpt_path.name + ".corrupt")
            os.replace(ckpt_path, bad)
            warnings.warn(f"{e}; training starts from epoch 1 (the damaged file is kept as {bad})", stacklevel=3)
    if state is not None:
        if state.get("config") != config:
            old = state.get("config", {})
            raise CheckpointMismatch(
                f"checkpoint {ckpt_path} was made with another configuration; delete it or choose another path "
                f"(differences in: {sorted(k for k in set(config) | set(old) if config.get(k) != old.get(k))})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng = state["rng"]
        gen.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        if cuda_devices and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], cuda_devices[0])
        if encoder is not None and "encoder" in rng:
            encoder.set_state(rng["encoder"], device)
        for g, s in zip(loader_gens, rng.get("loader", [])):
            g.set_state(s)
        history = {k: list(v) for k, v in state["history"].items()}
        start = int(state["epoch"]) + 1
        if stopping.validate is not None:
            stopping.load(state.get("stopping", {}), history)
    ran = 0
    for epoch in range(start, epochs):
        if stopping.stopped or (stop_after is not None and ran >= stop_after):
            break
        lr_e = settings.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr_e
        model.train()
        t0 = time.time()
        tot_loss, correct, seen = 0.0, 0, 0
        it = _epoch_batches(train, settings, augment, gen)
        if progress:
            from tqdm.auto import tqdm
            total = ((len(train) + settings.batch_size - 1) // settings.batch_size if isinstance(train, Split)
                     else getattr(train, "__len__", lambda: None)())
            it = tqdm(it, total=total, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
        for x, y in it:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = F.cross_entropy(out, y, label_smoothing=settings.label_smoothing)
            loss.backward()
            optimizer.step()
            tot_loss += float(loss.detach()) * len(y)
            correct += int((out.detach().argmax(1) == y).sum())
            seen += len(y)
        history["loss"].append(tot_loss / max(seen, 1))
        history["acc"].append(correct / max(seen, 1))
        history["lr"].append(lr_e)
        history["seconds"].append(time.time() - t0)
        ran += 1
        stopping.after_epoch(epoch, model, history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, history)
        if ckpt_path is not None:
            rng = {"data": gen.get_state(), "torch": torch.get_rng_state()}
            if cuda_devices:
                rng["cuda"] = torch.cuda.get_rng_state(cuda_devices[0])
            if encoder is not None:
                rng["encoder"] = encoder.get_state(device)
            if loader_gens:
                rng["loader"] = [g.get_state() for g in loader_gens]
            ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "history": history, "rng": rng, "config": config}
            if stopping.validate is not None:
                ckpt["stopping"] = stopping.state()
            atomic_save_torch(ckpt, ckpt_path)
    finished = stopping.stopped or len(history["loss"]) >= epochs   # not a run cut short by stop_after
    if finished and stopping.restore_best and stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
    return history


def _fit_options(kw: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Split keyword arguments into fit options and TrainConfig overrides."""
    fit_names = ("checkpoint", "record", "progress", "device", "stop_after", "validate", "patience", "restore_best",
                 "on_epoch_end")
    return ({k: v for k, v in kw.items() if k in fit_names}, {k: v for k, v in kw.items() if k not in fit_names})


def train_ann(net: nn.Module, train: Union[Split, Iterable], epochs: Union[int, TrainConfig],
              **kw) -> Dict[str, list]:
    """Train the ANN as in the papers' setup (Rathi et al.'s ``ann.py`` defaults, :meth:`TrainConfig.ann`).

    epochs: the number of epochs or a TrainConfig; kw: TrainConfig fields (lr=..., momentum=..., schedule=...,
    label_smoothing=..., warmup_epochs=..., nesterov=...) and :func:`fit` options (checkpoint, record, progress,
    device, stop_after, validate, patience, restore_best, on_epoch_end).
    """
    options, overrides = _fit_options(kw)
    settings = _settings(epochs, TrainConfig.ann, overrides)
    record = dict(kind="ann", model=net.config())
    record.update(options.pop("record", None) or {})
    record.update(settings.optimizer_record())
    return fit(net, train, settings, settings.make_optimizer(net.parameters()), record=record, **options)


def train_snn(snn: nn.Module, train: Union[Split, Iterable], epochs: Union[int, TrainConfig],
              **kw) -> Dict[str, list]:
    """Hybrid fine-tuning of a converted SNN with BPTT through the surrogate, Adam (amsgrad) as Rathi's ``snn.py``
    (:meth:`TrainConfig.snn`).  Only the weights are trained; thresholds and leak stay fixed, as in the released code.

    epochs: the number of epochs or a TrainConfig; kw: TrainConfig fields and :func:`fit` options as in train_ann.
    """
    options, overrides = _fit_options(kw)
    settings = _settings(epochs, TrainConfig.snn, overrides)
    record = dict(kind="snn", model=snn.config())
    record.update(options.pop("record", None) or {})
    record.update(settings.optimizer_record())
    return fit(snn, train, settings, settings.make_optimizer(snn.net.parameters()), record=record,
               encoder=getattr(snn, "encoder", None), **options)
