"""The study's model pipeline: ANN -> converted SNN -> BPTT-fine-tuned SNN, trained once and cached.

``build_models(params, seed)`` returns the three model kinds for one training seed.  Each trained artifact (ANN
weights, balanced thresholds, BPTT SNN weights) is stored in the ``ArtifactCache`` under a key made from the
configuration that produced it, so notebooks share models and a stopped run resumes (training also checkpoints every
epoch inside the cache folder).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from .. import data as D
from ..convert import balance_thresholds, scale_thresholds
from ..encoding import PoissonEncoder
from ..models import ARCHS, VGG, SpikingVGG, build_ann, check_arch
from ..train import train_ann, train_snn
from .cache import ArtifactCache

__all__ = ["ModelSet", "build_models", "resolve_device", "PIPELINE_KEYS"]

PIPELINE_VERSION = 1
#: the study's SNNs simulate inference (no graph) in pieces of this many timesteps: the same numbers, with memory
#: bounded at the paper profile's T=2000 (whole-sequence inference of VGG5 at batch 128 would need ~67 GB)
INFER_TIME_CHUNK = 64
PIPELINE_KEYS = ("dataset", "data_source", "data_dir", "arch", "n_train", "batch_size", "epochs_ann", "epochs_snn",
                 "T_conv", "T_bp", "leak_bp", "threshold_scale_bp", "balance_T", "balance_images")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is a clear error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but no CUDA GPU is available; use device='cpu' or 'auto'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return torch.device(device)


@dataclass
class ModelSet:
    """The three model kinds trained from one seed.  ``snn_conv`` shares ``ann``'s weights; ``snn_bp`` has its own."""

    ann: VGG
    snn_conv: SpikingVGG
    snn_bp: SpikingVGG
    seed: int
    info: Dict[str, Any] = field(default_factory=dict)

    def kinds(self) -> Dict[str, torch.nn.Module]:
        return {"ANN": self.ann, "SNN-conv": self.snn_conv, "SNN-BP": self.snn_bp}


def _num_classes(dataset: str) -> int:
    return 100 if dataset == "cifar100" else 10


def build_models(params: Mapping[str, Any], seed: int, cache: Optional[ArtifactCache] = None,
                 progress: bool = True, log=print) -> ModelSet:
    """Train (or load from the cache) the ANN, its converted SNN and the BPTT SNN for ``seed``.

    params: the study parameters (see snnlib/profiles.yaml: dataset, arch, n_train, epochs_ann, epochs_snn, T_conv,
    T_bp, leak_bp, threshold_scale_bp, balance_T, balance_images, batch_size, data_source, data_dir, device).
    """
    missing = [k for k in PIPELINE_KEYS if k not in params]
    if missing:
        raise KeyError(f"build_models: missing parameters {missing}")
    p = {k: params[k] for k in PIPELINE_KEYS}
    check_arch(p["arch"])
    cache = cache or ArtifactCache()
    device = resolve_device(params.get("device", "auto"))
    nc = _num_classes(p["dataset"])
    train = D.load(p["dataset"], "train", n=p["n_train"], data_dir=p["data_dir"], source=p["data_source"])
    info: Dict[str, Any] = {"train_data": train.info(), "seed": seed, "device": str(device)}

    # 1. ANN ------------------------------------------------------------------------------------------------
    ann_cfg = dict(v=PIPELINE_VERSION, arch=p["arch"], num_classes=nc, data=train.info()["indices_sha256"],
                   data_source=train.source, dataset=p["dataset"], n_train=len(train), epochs=p["epochs_ann"],
                   batch_size=p["batch_size"], seed=seed)

    def trained(kind: str, cfg: dict, net: VGG, model: nn.Module, train_fn, epochs: int, what: str):
        """Train ``model`` (checkpointed under ``cfg``) and return the cache entry: net weights, history, seconds."""
        t0 = time.time()
        hist = train_fn(model, train, epochs, batch_size=p["batch_size"], seed=seed,
                        checkpoint=cache.path("checkpoints", cfg) / f"{kind}.pt", progress=progress, device=device)
        log(f"trained {what} (seed {seed}, {epochs} epochs) in {time.time() - t0:.0f} s")
        return {"model": {k: v.cpu() for k, v in net.state_dict().items()}, "history": hist,
                "seconds": time.time() - t0}

    def build_ann_state():
        net = build_ann(p["arch"], nc, seed=seed)
        return trained("ann", ann_cfg, net, net, train_ann, p["epochs_ann"], "ANN")

    ann_state = cache.get_or_build("ann", ann_cfg, build_ann_state)
    ann = build_ann(p["arch"], nc, seed=seed)
    ann.load_state_dict(ann_state["model"])
    ann.to(device).eval()
    info["ann_history"] = ann_state.get("history")

    # 2. threshold balancing ------------------------------------------------------------------------------
    th_cfg = dict(ann=ann_cfg, balance_T=p["balance_T"], balance_images=p["balance_images"])

    def build_thresholds():
        imgs = D.to_float(train.images[: p["balance_images"]])
        t0 = time.time()
        th = balance_thresholds(ann, imgs.to(device), p["balance_T"], seed=seed)
        log(f"balanced thresholds (seed {seed}) in {time.time() - t0:.0f} s: {[round(t, 3) for t in th]}")
        return {"thresholds": th}

    th = list(cache.get_or_build("thresholds", th_cfg, build_thresholds)["thresholds"])
    info["thresholds"] = th
    snn_conv = SpikingVGG(ann, scale_thresholds(th, 1.0), T=p["T_conv"], leak=1.0, encoder=PoissonEncoder(seed=0),
                          time_chunk=INFER_TIME_CHUNK)
    snn_conv.to(device).eval()

    # 3. BPTT fine-tuning -----------------------------------------------------------------------------------
    bp_th = scale_thresholds(th, p["threshold_scale_bp"])
    bp_cfg = dict(thresholds=th_cfg, T=p["T_bp"], leak=p["leak_bp"], scale=p["threshold_scale_bp"],
                  epochs=p["epochs_snn"], batch_size=p["batch_size"], seed=seed)

    def build_bp_state():
        net = copy.deepcopy(ann)
        snn = SpikingVGG(net, bp_th, T=p["T_bp"], leak=p["leak_bp"], encoder=PoissonEncoder(seed=seed))
        return trained("snn_bp", bp_cfg, net, snn, train_snn, p["epochs_snn"], f"BPTT SNN (T={p['T_bp']})")

    bp_state = cache.get_or_build("snn_bp", bp_cfg, build_bp_state)
    bp_net = build_ann(p["arch"], nc, seed=seed)
    bp_net.load_state_dict(bp_state["model"])
    bp_net.to(device).eval()
    snn_bp = SpikingVGG(bp_net, bp_th, T=p["T_bp"], leak=p["leak_bp"], encoder=PoissonEncoder(seed=0),
                        time_chunk=INFER_TIME_CHUNK)
    snn_bp.to(device).eval()
    info["snn_bp_history"] = bp_state.get("history")
    info["configs"] = {"ANN": ann_cfg, "SNN-conv": th_cfg, "SNN-BP": bp_cfg}
    info["snn_bp_thresholds"] = bp_th
    return ModelSet(ann, snn_conv, snn_bp, seed, info)
