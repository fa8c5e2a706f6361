"""The study's model pipeline: ANN -> converted SNN -> BPTT-fine-tuned SNN, trained once and cached.

``build_models(params, seed)`` returns the three model kinds for one training seed.  Each trained artifact (ANN
weights, balanced thresholds, BPTT SNN weights) is stored in the ``ArtifactCache`` under a key made from the
configuration that produced it, so notebooks share models and a stopped run resumes (training also checkpoints every
epoch inside the cache folder).

Validation split: ``val_images`` of the ``n_train`` training images are held out (:func:`validation_split`, a seeded
draw that is the same for every model seed); the ANN and SNN-BP train on the others.  After every epoch the ANN's
clean accuracy on it is recorded (``ModelSet.ann_history["val_acc"]``) and, every ``ann_checkpoint_every`` epochs,
its weights are kept in the ANN's cache entry, so :func:`accuracy_matched_ann` can pick the ANN of the epoch whose
validation accuracy is closest to SNN-BP's.  SNN-BP is fine-tuned for at most ``epochs_snn`` epochs, stopping after
``patience`` epochs without a better validation accuracy, and keeps its best epoch's weights
(``ModelSet.info["snn_bp_history"]["val_acc"]``).

The ANN recipe is a set of profile parameters: ``ann_schedule`` (the papers' "step" or "cosine"), ``ann_lr``,
``ann_warmup_epochs``, ``ann_nesterov``, ``label_smoothing`` (SGD momentum 0.9 and weight decay 5e-4 as in the
papers).  Every parameter in :data:`PIPELINE_KEYS` is part of the cache keys, and so is :func:`compute_record`: the
device type and, on a CPU, the torch thread count the models are trained with (the runner pins one count for every unit
on every executor, so local, Dask and SLURM runs share models only when they would compute the same weights).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from .. import data as D
from ..convert import balance_thresholds, scale_thresholds
from ..encoding import PoissonEncoder
from ..files import atomic_save_torch
from ..machine import resolve_device
from ..models import VGG, SpikingVGG, build_ann, check_arch
from ..robustness.prediction import predict, predict_draws
from ..seeding import derive_seed, generator
from ..train import CorruptCheckpoint, TrainConfig, train_ann, train_snn
from .cache import ArtifactCache
from .profiles import KNOWN_PARAMS, ProfileError, pipeline_checks

__all__ = ["ModelSet", "build_models", "weights_digest", "PIPELINE_KEYS", "validation_split", "ann_train_config",
           "snn_train_config", "artifact_configs", "compute_record", "accuracy_matched_epoch", "accuracy_matched_ann",
           "check_pipeline_params", "TRAINING_KINDS"]

PIPELINE_VERSION = 2
#: the artifact-cache kinds that hold trained models (what a chapter's ``training_s`` counts, not its attack work)
TRAINING_KINDS = ("ann", "thresholds", "snn_bp", "checkpoints")
#: the study's SNNs simulate inference (no graph) in pieces of this many timesteps: the same numbers, with memory
#: bounded at the paper profile's T=2000 (whole-sequence inference of VGG5 at batch 128 would need ~67 GB)
INFER_TIME_CHUNK = 64
#: ... and build a graph (attack gradients) in checkpointed pieces of this many timesteps when T is longer
#: (``SpikingVGG.grad_time_chunk``): the paper profile's SNN-conv at T=2000 would need ~1.5 MB per image-timestep,
#: ~380 GB for a batch of 128; in pieces of 256 about 50 GB.  Shorter T (every other profile) is not affected.
GRAD_TIME_CHUNK = 256
PIPELINE_KEYS = ("dataset", "data_source", "data_dir", "arch", "n_train", "batch_size", "epochs_ann", "epochs_snn",
                 "T_conv", "T_bp", "leak_bp", "threshold_scale_bp", "balance_T", "balance_images",
                 "val_images", "patience", "ann_schedule", "ann_lr", "ann_warmup_epochs", "ann_nesterov",
                 "label_smoothing", "ann_checkpoint_every")
#: seed of the held-out validation split (stream "data.validation"): fixed, so both model seeds (the white-box
#: target and its black-box twin) train on the same images, as in the papers
VALIDATION_SEED = 0
#: Poisson draws of SNN-BP's validation accuracy per epoch (per-image streams of the evaluation seed
#: ``derive_seed(model seed, "train.validation")``, the same every epoch, so epochs are compared on the same spikes)
VALIDATION_DRAWS = 1
#: file name of the ANN's weights after epoch e inside its cache entry
_SNAPSHOT = "epochs/epoch_{:04d}.pt"


def weights_digest(model: nn.Module) -> str:
    """The first 16 hex digits of a SHA-256 over ``model``'s state dict (each tensor's name, dtype, shape and bytes,
    in name order; a SpikingVGG's thresholds included).  The same recipe and seed trained on another kind of CPU
    (or GPU) gives other last bits, which training amplifies: the digest tells such models apart."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class ModelSet:
    """The three model kinds trained from one seed.  ``snn_conv`` shares ``ann``'s weights; ``snn_bp`` has its own.

    ann_snapshots: epoch (1-based: the weights after that many epochs) -> file of the ANN's weights kept in the
    cache entry (every ``ann_checkpoint_every`` epochs; the last epoch is ``ann`` itself).
    """

    ann: VGG
    snn_conv: SpikingVGG
    snn_bp: SpikingVGG
    seed: int
    info: Dict[str, Any] = field(default_factory=dict)
    ann_snapshots: Dict[int, str] = field(default_factory=dict)

    def kinds(self) -> Dict[str, torch.nn.Module]:
        return {"ANN": self.ann, "SNN-conv": self.snn_conv, "SNN-BP": self.snn_bp}

    def fingerprint(self) -> Dict[str, str]:
        """{kind: :func:`weights_digest`} of the three models: equal fingerprints, the same trained models."""
        return {kind: weights_digest(model) for kind, model in self.kinds().items()}

    @property
    def ann_history(self) -> Optional[Dict[str, list]]:
        """The ANN's training history: 'loss', 'acc' (training), 'lr', 'seconds' and 'val_acc' (clean accuracy on
        the validation split), one value per epoch (fractions)."""
        return self.info.get("ann_history")

    @property
    def snn_bp_history(self) -> Optional[Dict[str, Any]]:
        """SNN-BP's history: per-epoch lists as ``ann_history`` plus 'best_epoch' (1-based, the weights kept) and
        'stopped_early' (whether it stopped before ``epochs_snn``)."""
        return self.info.get("snn_bp_history")

    def ann_epochs(self) -> List[int]:
        """The epochs (1-based) whose ANN :meth:`ann_at_epoch` can return: the kept ones and the last."""
        last = len((self.ann_history or {}).get("loss", []))
        return sorted(set(self.ann_snapshots) | ({last} if last else set()))

    def ann_at_epoch(self, epoch: int) -> VGG:
        """The ANN with its weights after ``epoch`` epochs (in eval mode, on ``ann``'s device); the last epoch
        returns ``ann`` itself."""
        last = len((self.ann_history or {}).get("loss", []))
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise TypeError(f"epoch must be an int, got {type(epoch).__name__} {epoch!r}")
        if epoch == last and last:
            return self.ann
        if epoch not in self.ann_snapshots:
            raise KeyError(f"no ANN weights kept for epoch {epoch} of seed {self.seed}; kept epochs: "
                           f"{self.ann_epochs()} (ann_checkpoint_every sets how many are kept)")
        path = Path(self.ann_snapshots[epoch])
        if not path.is_file():
            raise FileNotFoundError(f"the ANN weights of epoch {epoch} are missing ({path}); delete the ANN's cache "
                                    f"entry ({path.parent.parent}) to retrain it")
        net = copy.deepcopy(self.ann)        # no random draw (a fresh VGG would draw its initial weights)
        try:
            weights = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(weights)
        except Exception as e:   # truncated (full disk, killed copy) or foreign file: never used as weights
            raise CorruptCheckpoint(f"the ANN weights of epoch {epoch} ({path}) cannot be read "
                                    f"({type(e).__name__}: {str(e)[:160]}); delete the ANN's cache entry "
                                    f"({path.parent.parent}) to retrain it") from None
        return net.eval()

    def ann_config_at_epoch(self, epoch: int) -> Dict[str, Any]:
        """What identifies the ANN of ``epoch``: the ANN's artifact configuration plus the epoch."""
        return dict(self.info["configs"]["ANN"], epoch=int(epoch))

    def accuracy_matched_ann(self, target_accuracy: Optional[float] = None) -> VGG:
        """:func:`accuracy_matched_ann` of this set (target: SNN-BP's validation accuracy when None)."""
        return accuracy_matched_ann(self, target_accuracy)


def _num_classes(dataset: str) -> int:
    return 100 if dataset == "cifar100" else 10


# ------------------------------------------------------------------------------------------------ parameters
def check_pipeline_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """The pipeline's parameters (:data:`PIPELINE_KEYS`) validated and normalised; ProfileError naming each
    missing or bad parameter."""
    missing = [k for k in PIPELINE_KEYS if k not in params]
    if missing:
        raise ProfileError(f"build_models: missing parameter(s) {', '.join(missing)}")
    p, errors = {}, []
    for k in PIPELINE_KEYS:
        try:
            # arch: any registered architecture (a profile allows the papers' three)
            p[k] = check_arch(params[k]) if k == "arch" else KNOWN_PARAMS[k].validate(params[k])
        except ValueError as e:
            errors.append(f"build_models, parameter {k!r}: {e}")
    if not errors:
        pipeline_checks(p, errors, "build_models")
    if errors:
        raise ProfileError("\n  ".join(errors) if len(errors) == 1 else "\n  ".join(["", *errors]))
    return p


def ann_train_config(p: Mapping[str, Any], seed: int) -> TrainConfig:
    """The ANN's training settings from the (checked) parameters: SGD, momentum 0.9, weight decay 5e-4 (papers)."""
    return TrainConfig.ann(p["epochs_ann"], lr=p["ann_lr"], schedule=p["ann_schedule"],
                           warmup_epochs=p["ann_warmup_epochs"], nesterov=p["ann_nesterov"],
                           label_smoothing=p["label_smoothing"], batch_size=p["batch_size"], seed=seed)


def snn_train_config(p: Mapping[str, Any], seed: int) -> TrainConfig:
    """SNN-BP's fine-tuning settings: the papers' (Adam amsgrad lr 1e-4, lr / 5 at 60/80/90 % of ``epochs_snn``)."""
    return TrainConfig.snn(p["epochs_snn"], batch_size=p["batch_size"], seed=seed)


def _take(split: D.Split, pos: torch.Tensor) -> D.Split:
    return dataclasses.replace(split, images=split.images[pos], labels=split.labels[pos], indices=split.indices[pos])


def validation_split(train: D.Split, n_val: int, seed: int = VALIDATION_SEED) -> Tuple[D.Split, D.Split]:
    """(training part, validation part) of ``train``: ``n_val`` images drawn at random from the stream
    ``derive_seed(seed, "data.validation")``, the rest for training; both keep the split's order."""
    if isinstance(n_val, bool) or not isinstance(n_val, int) or not 1 <= n_val < len(train):
        raise ValueError(f"n_val must be an int in [1, {len(train) - 1}] (some images must be left to train on), "
                         f"got {n_val!r}")
    perm = torch.randperm(len(train), generator=generator(seed, "data.validation"))
    val_pos, train_pos = perm[:n_val].sort().values, perm[n_val:].sort().values
    return _take(train, train_pos), _take(train, val_pos)


# ------------------------------------------------------------------------------------------------ matching
def accuracy_matched_epoch(model_set: ModelSet, target_accuracy: Optional[float] = None) -> int:
    """The epoch (1-based) among :meth:`ModelSet.ann_epochs` whose ANN validation accuracy is closest to
    ``target_accuracy`` (a fraction; None: SNN-BP's validation accuracy); the earliest such epoch on ties.
    Both accuracies are on the same held-out validation split (the ANN's is deterministic; SNN-BP's is its best
    epoch's, over :data:`VALIDATION_DRAWS` Poisson draw(s))."""
    if target_accuracy is None:
        target_accuracy = model_set.info.get("snn_bp_val_accuracy")
        if target_accuracy is None:
            raise ValueError(f"seed {model_set.seed}: SNN-BP has no validation accuracy (epochs_snn = 0?); pass "
                             f"target_accuracy")
    if isinstance(target_accuracy, bool) or not isinstance(target_accuracy, (int, float)) \
            or not 0.0 <= float(target_accuracy) <= 1.0:
        raise ValueError(f"target_accuracy must be a fraction in [0, 1] (e.g. 0.62, not 62), got {target_accuracy!r}")
    val = (model_set.ann_history or {}).get("val_acc")
    if not val:
        raise ValueError(f"seed {model_set.seed}: the ANN has no per-epoch validation accuracy (a cache entry from "
                         f"before validation splits?)")
    epochs = [e for e in model_set.ann_epochs() if e <= len(val)]
    # distances rounded so that float noise (0.6 - 0.55 vs 0.55 - 0.5) does not break a tie
    return min(epochs, key=lambda e: (round(abs(val[e - 1] - float(target_accuracy)), 12), e))


def accuracy_matched_ann(model_set: ModelSet, target_accuracy: Optional[float] = None) -> VGG:
    """The ANN of the epoch whose clean accuracy on the validation split (not the test set) is closest to
    ``target_accuracy`` (a fraction; None: SNN-BP's validation accuracy), among the epochs whose weights were kept
    (:func:`accuracy_matched_epoch`); eval mode, on the ANN's device."""
    return model_set.ann_at_epoch(accuracy_matched_epoch(model_set, target_accuracy))


# ------------------------------------------------------------------------------------------------ building
def _best(val_acc: List[float]) -> int:
    """Index of the first best validation accuracy (the epoch whose weights early stopping keeps)."""
    return max(range(len(val_acc)), key=lambda i: (val_acc[i], -i))


def _ann_validator(val: D.Split, batch_size: int = 256):
    x, y = D.to_float(val.images), val.labels

    def validate(model: nn.Module) -> float:
        return float((predict(model, x, batch_size, None) == y).float().mean())
    return validate


def _snn_validator(val: D.Split, seed: int, batch_size: int = 128):
    x, y = D.to_float(val.images), val.labels
    eval_seed = derive_seed(seed, "train.validation")

    def validate(snn: SpikingVGG) -> float:
        # a twin (same weights, a copy of the encoder) with per-image streams: the training encoder is left alone
        twin = snn.twin(time_chunk=INFER_TIME_CHUNK).to(next(snn.parameters()).device)
        pred = predict_draws(twin, x, VALIDATION_DRAWS, eval_seed, val.indices, batch_size)
        return float((pred == y.unsqueeze(0)).float().mean())
    return validate


def compute_record(device: torch.device | str, threads: Optional[int] = None) -> Dict[str, Any]:
    """What the trained weights depend on besides the recipe: the device type and, on a CPU, the torch thread count
    (float reductions are split by thread, so 1 and 2 threads train different weights).

    threads: the count the models are (or were) trained with; default torch's current setting.
    """
    kind = torch.device(device).type
    if kind != "cpu":
        return {"device": kind}
    n = torch.get_num_threads() if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"torch thread count must be an integer >= 1, got {threads!r}")
    return {"device": kind, "torch_threads": n}


def _configs(p: Mapping[str, Any], seed: int, nc: int, train: D.Split, val: D.Split,
             compute: Mapping[str, Any]) -> Dict[str, dict]:
    """The artifact configurations (cache keys) of the three kinds: everything that determines each."""
    ann_settings = ann_train_config(p, seed)
    ann_cfg = dict(v=PIPELINE_VERSION, arch=p["arch"], num_classes=nc, data=train.info()["indices_sha256"],
                   val=val.info()["indices_sha256"], data_source=train.source, dataset=p["dataset"],
                   n_train=len(train), n_val=len(val), epochs=p["epochs_ann"], batch_size=p["batch_size"], seed=seed,
                   train=dict(ann_settings.record(True), **ann_settings.optimizer_record()),
                   checkpoint_every=p["ann_checkpoint_every"], compute=dict(compute))
    th_cfg = dict(ann=ann_cfg, balance_T=p["balance_T"], balance_images=p["balance_images"])
    snn_settings = snn_train_config(p, seed)
    bp_cfg = dict(thresholds=th_cfg, T=p["T_bp"], leak=p["leak_bp"], scale=p["threshold_scale_bp"],
                  epochs=p["epochs_snn"], batch_size=p["batch_size"], seed=seed, patience=p["patience"],
                  train=dict(snn_settings.record(True), **snn_settings.optimizer_record()),
                  validation=dict(draws=VALIDATION_DRAWS, chunk=INFER_TIME_CHUNK))
    return {"ANN": ann_cfg, "SNN-conv": th_cfg, "SNN-BP": bp_cfg}


def artifact_configs(params: Mapping[str, Any], seed: int, threads: Optional[int] = None) -> Dict[str, dict]:
    """The cache configurations {"ANN", "SNN-conv", "SNN-BP"} that :func:`build_models` would use (loads the
    training split's labels and indices, trains nothing).

    threads: the torch thread count the models would be trained with (default: the current one).
    """
    p = check_pipeline_params(params)
    full = D.load(p["dataset"], "train", n=p["n_train"], data_dir=p["data_dir"], source=p["data_source"])
    train, val = validation_split(full, p["val_images"])
    compute = compute_record(resolve_device(params.get("device", "auto")), threads)
    return _configs(p, seed, _num_classes(p["dataset"]), train, val, compute)


def build_models(params: Mapping[str, Any], seed: int, cache: Optional[ArtifactCache] = None,
                 progress: bool = True, log=print) -> ModelSet:
    """Train (or load from the cache) the ANN, its converted SNN and the BPTT SNN for ``seed``.

    params: the study parameters (see snnlib/study/profiles.yaml; the keys of :data:`PIPELINE_KEYS` and
    ``device``).  Bad or missing values raise :class:`~snnlib.study.profiles.ProfileError` naming the parameter.
    """
    p = check_pipeline_params(params)
    cache = cache or ArtifactCache()
    device = resolve_device(params.get("device", "auto"))
    nc = _num_classes(p["dataset"])
    full = D.load(p["dataset"], "train", n=p["n_train"], data_dir=p["data_dir"], source=p["data_source"])
    train, val = validation_split(full, p["val_images"])
    info: Dict[str, Any] = {"train_data": train.info(), "val_data": val.info(), "seed": seed, "device": str(device)}
    spent = [0.0]                     # seconds this call spends training (0 when every model comes from the cache)

    # 1. ANN ------------------------------------------------------------------------------------------------
    ann_settings = ann_train_config(p, seed)
    every = p["ann_checkpoint_every"]
    configs = _configs(p, seed, nc, train, val, compute_record(device))
    ann_cfg, th_cfg, bp_cfg = configs["ANN"], configs["SNN-conv"], configs["SNN-BP"]

    def trained(kind: str, cfg: dict, net: VGG, model: nn.Module, train_fn, settings: TrainConfig, what: str,
                **fit_kw):
        """Train ``model`` (checkpointed under ``cfg``) and return the cache entry: net weights, history, seconds."""
        t0 = time.time()
        hist = train_fn(model, train, settings, checkpoint=cache.path("checkpoints", cfg) / f"{kind}.pt",
                        progress=progress, device=device, **fit_kw)
        done = f"{len(hist['loss'])} epochs"
        if settings.epochs != len(hist["loss"]):
            done += f" of at most {settings.epochs}, stopped early"
        if fit_kw.get("restore_best") and hist.get("val_acc"):
            b = _best(hist["val_acc"])
            done += f"; best validation accuracy {100 * hist['val_acc'][b]:.1f} % at epoch {b + 1}, weights kept"
        log(f"trained {what} (seed {seed}, {done}) in {time.time() - t0:.0f} s")
        spent[0] += time.time() - t0
        return {"model": {k: v.cpu() for k, v in net.state_dict().items()}, "history": hist,
                "seconds": time.time() - t0}

    ann_dir = cache.path("ann", ann_cfg)

    def build_ann_state():
        net = build_ann(p["arch"], nc, seed=seed)

        def keep(epoch: int, model: nn.Module, history) -> None:
            e = epoch + 1
            if e % every == 0 and e < p["epochs_ann"]:      # the last epoch's weights are the entry's model
                atomic_save_torch({k: v.detach().cpu() for k, v in model.state_dict().items()},
                                  ann_dir / _SNAPSHOT.format(e))

        state = trained("ann", ann_cfg, net, net, train_ann, ann_settings, "ANN", validate=_ann_validator(val),
                        on_epoch_end=keep)
        # epochs kept before an interruption were saved by the run that was interrupted
        state["snapshots"] = [e for e in range(every, p["epochs_ann"], every)
                              if (ann_dir / _SNAPSHOT.format(e)).is_file()]
        return state

    ann_state = cache.get_or_build("ann", ann_cfg, build_ann_state)
    ann = build_ann(p["arch"], nc, seed=seed)
    ann.load_state_dict(ann_state["model"])
    ann.to(device).eval()
    info["ann_history"] = ann_state.get("history")
    snapshots = {int(e): str(ann_dir / _SNAPSHOT.format(int(e))) for e in ann_state.get("snapshots", [])}

    # 2. threshold balancing (on training images only) ------------------------------------------------------
    def build_thresholds():
        imgs = D.to_float(train.images[: p["balance_images"]])
        t0 = time.time()
        th = balance_thresholds(ann, imgs.to(device), p["balance_T"], seed=seed)
        log(f"balanced thresholds (seed {seed}) in {time.time() - t0:.0f} s: {[round(t, 3) for t in th]}")
        spent[0] += time.time() - t0
        return {"thresholds": th}

    th = list(cache.get_or_build("thresholds", th_cfg, build_thresholds)["thresholds"])
    info["thresholds"] = th
    snn_conv = SpikingVGG(ann, scale_thresholds(th, 1.0), T=p["T_conv"], leak=1.0, encoder=PoissonEncoder(seed=0),
                          time_chunk=INFER_TIME_CHUNK, grad_time_chunk=GRAD_TIME_CHUNK)
    snn_conv.to(device).eval()

    # 3. BPTT fine-tuning, early-stopped on the validation split --------------------------------------------
    bp_th = scale_thresholds(th, p["threshold_scale_bp"])
    snn_settings = snn_train_config(p, seed)

    def build_bp_state():
        net = copy.deepcopy(ann)
        snn = SpikingVGG(net, bp_th, T=p["T_bp"], leak=p["leak_bp"], encoder=PoissonEncoder(seed=seed))
        return trained("snn_bp", bp_cfg, net, snn, train_snn, snn_settings, f"BPTT SNN (T={p['T_bp']})",
                       validate=_snn_validator(val, seed), patience=p["patience"], restore_best=True)

    bp_state = cache.get_or_build("snn_bp", bp_cfg, build_bp_state)
    bp_net = build_ann(p["arch"], nc, seed=seed)
    bp_net.load_state_dict(bp_state["model"])
    bp_net.to(device).eval()
    snn_bp = SpikingVGG(bp_net, bp_th, T=p["T_bp"], leak=p["leak_bp"], encoder=PoissonEncoder(seed=0),
                        time_chunk=INFER_TIME_CHUNK, grad_time_chunk=GRAD_TIME_CHUNK)
    snn_bp.to(device).eval()
    hist = dict(bp_state.get("history") or {})
    val_acc = list(hist.get("val_acc") or [])
    if val_acc:
        best = _best(val_acc)
        hist["best_epoch"] = best + 1
        info["snn_bp_val_accuracy"] = val_acc[best]
    hist["stopped_early"] = len(hist.get("loss", [])) < p["epochs_snn"]
    info["snn_bp_history"] = hist
    ann_val = (info["ann_history"] or {}).get("val_acc") or [None]
    info["ann_val_accuracy"] = ann_val[-1]            # the final ANN's
    info["configs"] = configs
    info["snn_bp_thresholds"] = bp_th
    info["training_s"] = spent[0]
    return ModelSet(ann, snn_conv, snn_bp, seed, info, ann_snapshots=snapshots)
