"""The computations behind each chapter of the book, so that notebooks only call snnlib.

``setup(params, notebook)`` validates the notebook's parameters, loads the test images and the trained models
(``pipeline.build_models`` for every training seed) and returns a ``Context``.  One function per chapter returns
that chapter's typed results record (:mod:`snnlib.study.records`): :func:`models_results`,
:func:`discretization_results`, :func:`leak_results`, :func:`training_method_results`,
:func:`attack_source_results`, :func:`gradient_masking_results`; ``Context.save`` writes it with the parameters,
data, scale note and provenance.  Accuracies carry their 95 % Clopper-Pearson intervals; budgets ``eps_255`` are
in 1/255.  Adversarial examples are cached in the artifact cache under the source model, the attack and the
images, so the chapters that need the same attack (e.g. white-box PGD at 8/255) craft it once.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .. import data as D
from ..attacks import ATTACKS, Attack
from ..attacks.suite import adaptive_suite, default_alpha, surrogate_variants
from ..encoding import PoissonEncoder
from ..models import SpikingVGG
from ..robustness.cascade import audit, cascade_worst_case
from ..robustness.evaluation import evaluate_attack
from ..robustness.masking import badge, run_checks, zero_gradients
from ..robustness.outcomes import Outcomes
from ..seeding import generator
from ..robustness.prediction import as_tensors, score
from ..robustness.worst_case import evaluate_worst_case
from ..stats import Accuracy, accuracy_from_outcomes
from .cache import ArtifactCache
from .claims import PAPER_TABLE_I
from .formatting import format_percent
from ..machine import resolve_device
from .consistency import check_recorded_models
from .pipeline import TRAINING_KINDS, ModelSet, build_models, weights_digest
from .profiles import KNOWN_PARAMS, ProfileError, main_eps, validate_overrides  # noqa: F401 (main_eps: the notebooks' E.main_eps)
from .records import (AttackRecord, AttackSourceResults, CascadeRecord, ChapterFile, CheckRecord, ClaimRow,
                      CleanRow, DiscretizationResults, DiscretizationRow, GradientMaskingResults, LayerPerturbation,
                      LeakResults, LeakRow, MaskingReport, ModelsResults, PerturbationImages, StageRow, SummaryFile,
                      TimestepPoint, TRAINED_T, TrainingMethodResults, TrainingMethodRow, TransferCell, from_dict, to_dict,
                      write_record)
from .results import provenance

__all__ = ["Context", "AttackPair", "AdaptiveAttacks", "check_params", "collect_params", "attack_order", "setup",
           "model_key", "make_attack", "clean_scores", "clean_accuracy", "clean_outcomes", "clean_table",
           "conversion_timesteps", "accuracy_vs_T", "training_histories",
           "models_results", "attack_result", "eps_sweep", "main_eps", "layer_perturbation", "layer_ratios",
           "summarize_ratios", "noise_like", "robustness_row",
           "discretization_results", "leak_results", "training_method_results", "attack_source_results",
           "zero_gradient_share", "adaptive_attacks", "autoattack_stages", "masking_report", "worst_case_outcomes",
           "cascade_stages", "cascade_report", "full_outcomes", "target_pairs",
           "gradient_masking_results", "images_for", "save_summary", "KINDS", "PAPER_TABLE_I"]

KINDS = ("ANN", "SNN-conv", "SNN-BP")
ATTACK_GRAD_MODE = "algorithm1"  # the papers' SNN-crafted attack (Algorithm 1); equal to BPTT + straight-through



def check_params(notebook: str, params: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate a notebook's parameters before any work, as the runner does; raises ProfileError naming the
    parameter (or folder) and what is allowed.

    Refused: names that are not this notebook's parameters (unknown, or another notebook's), values outside their
    range, combinations that cannot mean anything (:func:`snnlib.study.profiles.meaning_checks` and the pipeline's
    checks: ``balance_images`` beyond the training images, ``adaptive_images > attack_images``, timesteps too short
    for any spike to reach the output, ...), data that is not where ``data_dir`` / ``data_source`` say
    (:func:`snnlib.study.profiles.data_problems`, relative paths from the current folder) and a ``results_dir``
    that cannot be written (a file, under a file, not writable).  Every problem is listed in one message.
    """
    from ..files import folder_problem
    from .profiles import NOTEBOOK_EXTRAS, NOTEBOOKS, cross_checks, did_you_mean, data_problems

    own = set(KNOWN_PARAMS) if notebook not in NOTEBOOKS else \
        {k for k, p in KNOWN_PARAMS.items() if p.notebooks is None} | set(NOTEBOOK_EXTRAS[notebook])
    runner = ("profile", "results_dir")
    unknown = [k for k in params if k not in KNOWN_PARAMS and k not in runner]
    foreign = [k for k in params if k in KNOWN_PARAMS and k not in own]
    if unknown or foreign:
        parts = []
        if unknown:
            parts.append(f"unknown parameter(s) {unknown}" + "".join(did_you_mean(k, sorted(own)) for k in unknown))
        if foreign:
            parts.append("parameter(s) of other notebooks " + ", ".join(
                f"{k!r} ({', '.join(KNOWN_PARAMS[k].notebooks or ())})" for k in foreign))
        raise ProfileError(f"{notebook}: {'; '.join(parts)}; allowed here: {sorted(own)} (and profile, "
                           "results_dir)") from None
    try:
        out = validate_overrides({k: v for k, v in params.items() if k in KNOWN_PARAMS}, profile=notebook)
    except ProfileError as e:
        raise ProfileError(f"{notebook}: {e}") from None
    errors: List[str] = []
    cross_checks(f"parameters of {notebook}", notebook, out, errors)
    if not errors and notebook != "07_summary":
        errors += [f"{notebook}: {m}" for m in data_problems(out)]
    out["profile"] = params.get("profile", "custom")
    out["results_dir"] = params.get("results_dir") or f"results/{out['profile']}"
    problem = folder_problem(out["results_dir"])
    if problem:
        errors.append(f"{notebook}: results_dir {out['results_dir']!r}: {problem}; pass a writable folder "
                      "(papermill -p results_dir DIR)")
    if errors:
        raise ProfileError(errors[0] if len(errors) == 1 else "\n  ".join(["", *errors])) from None
    return out


def _parameter_cell_names(namespace: Mapping[str, Any]) -> List[str]:
    """Names assigned in the cells executed so far that start with ``# Parameters`` (the notebook's parameters cell
    and the cell papermill injects), read from IPython's input history ``In``; [] outside IPython."""
    import ast

    history = namespace.get("In")
    if not isinstance(history, (list, tuple)):
        return []
    names: List[str] = []
    for src in history:
        if not isinstance(src, str) or not src.lstrip().startswith("# Parameters"):
            continue
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for t in targets:
                if isinstance(t, ast.Name) and t.id not in names:
                    names.append(t.id)
    return names


def collect_params(namespace: Mapping[str, Any], notebook: str) -> Dict[str, Any]:
    """The notebook's parameters picked from a namespace (the notebook's ``globals()``) by their known names.

    Run inside a notebook, the names set in its parameters cells (its own and papermill's injected one, from
    IPython's input history) that are not this notebook's parameters are passed on too, so that
    :func:`check_params` refuses them (``papermill ... -p T_bp_typo 8`` would otherwise run with the default).
    An optional parameter (a memory setting such as ``attack_batch``) the namespace lacks is left out: it means null."""
    names = [k for k, p in KNOWN_PARAMS.items() if p.notebooks is None or notebook in p.notebooks]
    missing = [k for k in names if k not in namespace and not KNOWN_PARAMS[k].optional]
    if missing:
        raise ProfileError(f"{notebook}: the parameters cell lacks {missing}")
    out = {k: namespace[k] for k in names if k in namespace}
    for k in _parameter_cell_names(namespace):
        if k not in out and k not in ("profile", "results_dir") and k in namespace:
            out[k] = namespace[k]
    out["profile"] = namespace.get("profile", "custom")
    out["results_dir"] = namespace.get("results_dir")
    return out


def model_key(ms: ModelSet, kind: str, model: nn.Module) -> Dict[str, Any]:
    """What identifies a model: the artifact config that trained it plus its run-time settings (T, leak, ...)."""
    cfg = dict(artifact=ms.info["configs"][kind], kind=kind)
    cfg["runtime"] = model.config()
    return json.loads(json.dumps(cfg, sort_keys=True, default=str))


@dataclass
class Context:
    """Everything a chapter needs: parameters, test data, attack images, models per seed, cache, device."""

    notebook: str
    params: Dict[str, Any]
    test: D.Split
    x: Tensor            # attack images (N, 3, 32, 32) in [0, 1]
    y: Tensor            # their labels (N,)
    models: List[ModelSet]
    cache: ArtifactCache
    device: torch.device
    started: float = field(default_factory=time.time)
    attack_split: Optional[D.Split] = None
    clean_memo: Dict[Any, Any] = field(default_factory=dict, repr=False)   # (id(model), n) -> (model, Outcomes)

    @property
    def target(self) -> ModelSet:
        """The white-box target models (first training seed)."""
        return self.models[0]

    @property
    def twin(self) -> ModelSet:
        """The independently trained black-box twins (second training seed)."""
        return self.models[1]

    def attack_ids(self) -> Tensor:
        """Global test-set indices of the attack images (N,) (0..N-1 when the split does not know them)."""
        if self.attack_split is not None and getattr(self.attack_split, "indices", None) is not None:
            return torch.as_tensor(self.attack_split.indices[: len(self.y)]).long()
        return torch.arange(len(self.y))

    def scale_note(self, images: Optional[int] = None) -> str:
        """The figures' scale note: profile, data, attacked images, draws, training and intervals.  images: a
        figure that uses only the first ``images`` attack images (None: all of them)."""
        p = self.params
        n = len(self.y) if images is None else min(int(images), len(self.y))
        sample = (f"attacks on the first {n} of them" if p.get("sample_seed") is None else
                  f"attacks on a random sample of {len(self.y)} of them (sample seed {p['sample_seed']})"
                  + (f", the first {n} of it" if n < len(self.y) else ""))
        if p.get("snn_conv_images") is not None and p["snn_conv_images"] < n:
            sample += f" (cells with SNN-conv: the first {p['snn_conv_images']} of these)"
        return (f"profile '{p['profile']}', {self.test.describe()}; {sample}; "
                f"each scored over {p.get('eval_draws', 1)} Poisson draw(s) (majority vote); "
                f"{p['n_train']} training images ({self.models[0].info['train_data']['source']}"
                f"{', ' + str(p['val_images']) + ' of them held out for validation' if p.get('val_images') else ''}); "
                f"training seeds {p['model_seeds']}, evaluation seed {p['eval_seed']}; "
                f"{p['arch']}, ANN {p['epochs_ann']} epochs, SNN-BP at most {p['epochs_snn']} epochs at T={p['T_bp']}, "
                f"SNN-conv T={p['T_conv']}; 95% Clopper-Pearson intervals")

    def chapter_file(self, results) -> ChapterFile:
        """The file record of this chapter around its typed ``results`` (parameters, data, provenance)."""
        return ChapterFile(
            notebook=self.notebook, profile=self.params["profile"],
            parameters={k: v for k, v in self.params.items() if k != "results_dir"},
            data=dict(test=self.test.info(), attack=self.attack_split.info() if self.attack_split else None,
                      train=self.models[0].info["train_data"]),
            scale_note=self.scale_note(), device=str(self.device), results=results,
            wall_time_s=time.time() - self.started,
            models={f"seed {m.seed}": m.fingerprint() for m in self.models},
            training_s=sum(float(m.info.get("training_s") or 0.0) for m in self.models),
            reused_s=self.reused_attack_s(), **provenance())

    def reused_attack_s(self) -> float:
        """Seconds of attack work (crafted examples, scored cells, chapter 6's reports, not trained models) this
        chapter loaded from the cache instead of doing again, by the build times recorded with them."""
        return round(sum(s for kind, s in self.cache.reused_s.items() if kind not in TRAINING_KINDS), 3)

    def save(self, results) -> str:
        """Write ``<results_dir>/<notebook>.json`` (:func:`snnlib.study.records.write_record`); returns the path."""
        return str(write_record(self.params["results_dir"], self.chapter_file(results)))


def attack_order(n: int, sample_seed: Optional[int]) -> Tensor:
    """Positions 0..n-1 of the test split in the order they are attacked (int64 (n,)).

    sample_seed None: the split's own order (the first test images); an int: a permutation drawn from the stream
    ``derive_seed(sample_seed, "attack.sample")``, so the first ``attack_images`` are a random sample and a smaller
    sample (e.g. the adaptive images) is the leading part of a larger one.
    """
    if sample_seed is None:
        return torch.arange(n)
    return torch.randperm(n, generator=generator(int(sample_seed), "attack.sample"))


def setup(params: Mapping[str, Any], notebook: str, progress: bool = False, log=print,
          cache: Optional[ArtifactCache] = None, check_models: bool = True) -> Context:
    """Validate parameters, load the test split and attack images, build (or load) the models of every seed.

    check_models: refuse models other than those the results folder's 01_models recorded with the same recipe
    (:func:`snnlib.study.consistency.check_recorded_models`); off for tools that only compare the models with
    themselves."""
    t0 = time.time()
    p = check_params(notebook, params)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = resolve_device(p["device"])
    test = D.load(p["dataset"], "test", n=p["n_test"], data_dir=p["data_dir"], source=p["data_source"])
    order = attack_order(len(test), p.get("sample_seed"))
    att = D.load(p["dataset"], "test", indices=test.indices[order[: p["attack_images"]]].tolist(),
                 data_dir=p["data_dir"], source=test.source)
    cache = cache or ArtifactCache()
    models = [build_models(p, s, cache=cache, progress=progress, log=log) for s in p["model_seeds"][:2]]
    if check_models and notebook != "01_models" and p.get("results_dir"):
        check_recorded_models(p["results_dir"], p, models)      # never mix two training runs in one results folder
    return Context(notebook, p, test, D.to_float(att.images), att.labels, models, cache, device, started=t0,
                   attack_split=att)


# ----------------------------------------------------------------------------------------------------- accuracy
def clean_scores(model: nn.Module, split_or_xy, seed: int = 0, draws: int = 1, batch_size: int = 128) -> Outcomes:
    """Per-image clean outcomes of a model on a Split (ids: its test-set indices) or an (x, y) pair (ids 0..N-1)."""
    x, y = as_tensors(split_or_xy)
    ids = split_or_xy.indices if isinstance(split_or_xy, D.Split) else None
    return score(model, x, y, draws=draws, seed=seed, image_ids=ids, batch_size=batch_size)


def clean_accuracy(model: nn.Module, split_or_xy, seed: int = 0, draws: int = 1, batch_size: int = 128) -> Accuracy:
    """Clean (majority-vote) accuracy with its Clopper-Pearson interval of a model on a Split or (x, y)."""
    return accuracy_from_outcomes(clean_scores(model, split_or_xy, seed, draws, batch_size).majority())


def clean_table(ctx: Context) -> List[CleanRow]:
    """Clean test accuracy of the three kinds for every training seed."""
    rows = []
    for ms in ctx.models:
        for kind, model in ms.kinds().items():
            out = clean_scores(model, ctx.test, ctx.params["eval_seed"], ctx.params["eval_draws"])
            rows.append(CleanRow(kind=kind, seed=ms.seed, T=getattr(model, "T", None),
                                 leak=getattr(model, "leak", None),
                                 accuracy=accuracy_from_outcomes(out.majority()), outcomes=out))
    return rows


def conversion_timesteps(T_conv: int, arch: str = "vgg5") -> List[int]:
    """Timesteps at which chapter 1 measures the converted SNN: T_conv / 4 ... 4 T_conv, each at least one more than
    the architecture's spiking layers (VGG5: 6; fewer steps give an identically zero output)."""
    from ..models import spiking_layers
    low = spiking_layers(arch) + 1
    return sorted({max(low, T_conv // 4), max(low, T_conv // 2), T_conv, 2 * T_conv, 4 * T_conv})


def accuracy_vs_T(model: SpikingVGG, split, T_values: Iterable[int], seed: int = 0,
                  draws: int = 1) -> List[TimestepPoint]:
    """Clean accuracy of an SNN at several inference timesteps (same weights and thresholds), with the per-image
    outcomes behind each point (the same numbers as :func:`clean_accuracy`)."""
    points = []
    for T in T_values:
        out = clean_scores(model.twin(T=int(T)), split, seed, draws)
        points.append(TimestepPoint(T=int(T), accuracy=accuracy_from_outcomes(out.majority()), outcomes=out))
    return points


def training_histories(ctx: Context) -> Dict[str, Optional[Dict[str, List[float]]]]:
    """{"ANN seed 0": {"loss": [...], "acc": [...]}, "SNN-BP seed 0": ...}: per-epoch training loss and accuracy
    (fraction) of every trained model (None when the cache entry predates histories)."""
    out: Dict[str, Optional[Dict[str, List[float]]]] = {}
    for ms in ctx.models:
        out[f"ANN seed {ms.seed}"] = ms.info.get("ann_history")
        out[f"SNN-BP seed {ms.seed}"] = ms.info.get("snn_bp_history")
    return out


def models_results(ctx: Context) -> ModelsResults:
    """Chapter 1: clean accuracies, the converted SNN against T and the thresholds of every seed."""
    steps = conversion_timesteps(ctx.params["T_conv"], ctx.params.get("arch", "vgg5"))
    return ModelsResults(
        clean=clean_table(ctx),
        conv_vs_T=accuracy_vs_T(ctx.target.snn_conv, ctx.test, steps,
                                ctx.params["eval_seed"], 1),     # a descriptive curve: one draw per image
        thresholds={f"seed {ms.seed}": [round(float(t), 3) for t in ms.info["thresholds"]] for ms in ctx.models},
        snn_bp_thresholds={f"seed {ms.seed}": [float(t) for t in ms.info["snn_bp_thresholds"]]
                           for ms in ctx.models},
        paper_table_I=dict(PAPER_TABLE_I))


# ----------------------------------------------------------------------------------------------------- attacks
@dataclass
class AttackPair:
    """Who crafts and who is scored: ``source`` (of kind ``source_kind`` in ``source_set``) and ``target``.

    The source's set and kind identify the crafted examples in the cache; the names label the result.
    """

    source: nn.Module
    source_name: str
    source_set: ModelSet
    source_kind: str
    target: nn.Module
    target_name: str

    @classmethod
    def whitebox(cls, model: nn.Module, kind: str, model_set: ModelSet) -> "AttackPair":
        """The attack crafted on the target itself (``model`` may be a twin of the set's model, e.g. other T)."""
        return cls(source=model, source_name=kind, source_set=model_set, source_kind=kind, target=model,
                   target_name=kind)

    @property
    def is_whitebox(self) -> bool:
        return self.source is self.target


def make_attack(name: str, model: nn.Module, eps_255: float, params: Mapping[str, Any], *,
                grad_mode: Optional[str] = None, **kw) -> Attack:
    """An attack of the papers' family by name ("fgsm", "rfgsm", "bim", "pgd") at eps_255 / 255.

    SNN sources use the papers' Algorithm 1 gradient by default; PGD takes the profile's steps and step size; the
    attack crafts ``attack_batch`` images at once where the notebook has that parameter (else all at once).
    """
    key = name.lower()
    if key not in {k.lower() for k in ATTACKS}:
        raise ValueError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    cls = {k.lower(): v for k, v in ATTACKS.items()}[key]
    if grad_mode is None:
        grad_mode = ATTACK_GRAD_MODE if isinstance(model, SpikingVGG) else "autograd"
    eps = float(eps_255) / 255.0
    if key == "pgd":
        kw.setdefault("alpha", float(params["pgd_alpha"]) / 255.0)
        kw.setdefault("steps", int(params["pgd_steps"]))
    kw.setdefault("batch_size", params.get("attack_batch"))
    return cls(model, eps, grad_mode=grad_mode, seed=int(params["attack_seed"]), **kw)


def _adv_cached(ctx: Context, pair: AttackPair, attack: Attack, x: Tensor, y: Tensor) -> Tensor:
    """attack(x, y), from the artifact cache when the same source, attack and images were crafted before."""
    if ctx.cache is None:
        return attack(x, y)
    if ctx.attack_split is not None and x is ctx.x:
        images = ctx.attack_split.info()["indices_sha256"]
    else:
        images = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    cfg = dict(source=model_key(pair.source_set, pair.source_kind, pair.source), attack=attack.config(),
               images=images)
    return ctx.cache.get_or_build("adversarial", cfg, lambda: {"x_adv": attack(x, y).cpu()})["x_adv"]


class _Precrafted(Attack):
    """An Attack that returns already-crafted examples (so the robustness API can score cached ones).

    Its ``model``, ``eps`` and ``config()`` are those of the attack that crafted them; ``input_gradient`` is that
    attack's too (for the zero-gradient check).
    """

    def __init__(self, attack: Attack, x_adv: Tensor):
        self.__dict__.update(attack.__dict__)
        self._inner, self._x_adv = attack, x_adv

    def _attack_batch(self, x, y, gen):
        return self._x_adv

    def attack(self, x, y):
        return self._x_adv

    __call__ = attack

    def config(self):
        return self._inner.config()

    def input_gradient(self, x, y):
        return self._inner.input_gradient(x, y)


def attack_result(ctx: Context, pair: AttackPair, attack_name: str, eps_255: float, *,
                  zero_grad_check: Optional[bool] = None, x: Optional[Tensor] = None, y: Optional[Tensor] = None,
                  max_images: Optional[int] = None, **attack_kw) -> AttackRecord:
    """One robustness number: ``attack_name`` at eps_255/255 crafted on ``pair.source``, scored on ``pair.target``.

    x, y: images (N, 3, 32, 32) in [0, 1] and labels (default: the chapter's attack images, the leading
    :func:`images_for` the pair's kinds, at most ``max_images``).  zero_grad_check: measure the share of zero
    source gradients (default: for white-box pairs only).  The crafted examples are cached.
    """
    own_images = x is None
    if not own_images and max_images is not None:
        raise ValueError("max_images limits the chapter's own attack images; pass it without x and y")
    n = images_for(ctx, pair.source_kind, pair.target_name, limit=max_images) if own_images else None
    x = ctx.x[:n] if x is None else x
    y = ctx.y[:n] if y is None else y
    ids = ctx.attack_ids()[:n] if own_images else None
    if zero_grad_check is None:
        zero_grad_check = pair.is_whitebox
    atk = make_attack(attack_name, pair.source, eps_255, ctx.params, **attack_kw)
    x_adv = _adv_cached(ctx, pair, atk, x, y)

    def scored() -> Dict[str, Any]:
        clean = clean_outcomes(ctx, pair.target, n) if own_images else None
        res = evaluate_attack(pair.target, _Precrafted(atk, x_adv), x, y, eval_seed=ctx.params["eval_seed"],
                              zero_grad_check=zero_grad_check, source_name=pair.source_name,
                              target_name=pair.target_name, draws=ctx.params["eval_draws"], image_ids=ids,
                              clean_outcomes=clean)
        return {"record": json.dumps(to_dict(AttackRecord.from_result(res, attack_name, whitebox=pair.is_whitebox)))}

    # the scored record is cached too, keyed by the target's weights and the exact inputs: a chapter stopped part-way
    # and run again re-uses every cell it finished instead of scoring them again
    cfg = dict(target=weights_digest(pair.target), target_runtime=pair.target.config(), attack_name=attack_name,
               source=model_key(pair.source_set, pair.source_kind, pair.source), attack=atk.config(),
               names=[pair.source_name, pair.target_name], whitebox=pair.is_whitebox, x=_tensor_digest(x),
               y=_tensor_digest(y), x_adv=_tensor_digest(x_adv), image_ids=None if ids is None else _tensor_digest(ids),
               eval_seed=ctx.params["eval_seed"], draws=ctx.params["eval_draws"], zero_grad_check=bool(zero_grad_check))
    return from_dict(AttackRecord, json.loads(ctx.cache.get_or_build("scored", cfg, scored)["record"]))


def _cached_record(ctx: Context, kind: str, cls: type, key: Mapping[str, Any], build: Callable[[], Any]) -> Any:
    """``build()``'s record (a dataclass of :mod:`snnlib.study.records`), cached under ``key`` plus everything the
    chapter's attacks depend on (all its parameters but where it writes, the attack images and labels): a chapter
    stopped part-way resumes after the last record it finished.  Always returned decoded from its JSON form."""
    cfg = dict(key, params={k: v for k, v in ctx.params.items() if k not in ("profile", "results_dir")},
               images=_tensor_digest(ctx.x), labels=_tensor_digest(ctx.y), image_ids=_tensor_digest(ctx.attack_ids()))
    state = ctx.cache.get_or_build(kind, json.loads(json.dumps(cfg, default=str)),
                                   lambda: {"record": json.dumps(to_dict(build()))})
    return from_dict(cls, json.loads(state["record"]))


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tensor_digest(t: Tensor) -> str:
    """SHA-256 (hex) of a tensor's dtype, shape and bytes."""
    t = t.detach().cpu().contiguous()
    return hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode() + t.numpy().tobytes()).hexdigest()


def images_for(ctx: Context, *kinds: str, limit: Optional[int] = None) -> int:
    """How many of the attack images (the leading ones of the seeded sample) a cell involving ``kinds`` uses: all
    of them, or ``snn_conv_images`` when SNN-conv crafts or is scored (its long T makes each image expensive), and
    at most ``limit`` (None: no further limit)."""
    n = len(ctx.y)
    conv = ctx.params.get("snn_conv_images")
    if conv is not None and "SNN-conv" in kinds:
        n = min(n, int(conv))
    if limit is not None:
        if int(limit) < 1:
            raise ValueError(f"limit must be a positive number of images or None, got {limit!r}")
        n = min(n, int(limit))
    return n


def clean_outcomes(ctx: Context, model: nn.Module, n: Optional[int] = None) -> Outcomes:
    """The model's per-image outcomes on the first ``n`` (default all) attack images, scored once and reused.

    A smaller ``n`` after a larger one takes the leading images of the larger scoring: each image's draws are
    seeded by its id, so this equals scoring the ``n`` images afresh."""
    n = len(ctx.y) if n is None else n
    key = (id(model), n)
    if key not in ctx.clean_memo:       # the memo keeps the model alive, so its id is never reused
        larger = sorted(k[1] for k in ctx.clean_memo if k[0] == id(model) and k[1] > n)
        if larger:
            scored = ctx.clean_memo[(id(model), larger[0])][1]
            ctx.clean_memo[key] = (model, scored.subset(scored.image_ids[:n]))
        else:
            ctx.clean_memo[key] = (model, score(model, ctx.x[:n], ctx.y[:n], draws=ctx.params["eval_draws"],
                                                seed=ctx.params["eval_seed"], image_ids=ctx.attack_ids()[:n]))
    return ctx.clean_memo[key][1]


def eps_sweep(ctx: Context, pair: AttackPair, attack_name: str, eps_list: Sequence[float],
              **kw) -> List[AttackRecord]:
    """:func:`attack_result` for every epsilon in eps_list (in /255)."""
    return [attack_result(ctx, pair, attack_name, e, **kw) for e in eps_list]


# ----------------------------------------------------------------------------------------------------- layers
@torch.no_grad()
def layer_ratios(model: nn.Module, x: Tensor, x_pert: Tensor, seed: int = 0) -> List[Tensor]:
    """Per image, the relative perturbation ||a_l(x_pert) - a_l(x)|| / ||a_l(x)|| of every spiking layer l: one
    (N,) tensor per layer, nan where the layer is silent on the clean image.

    ANN: post-ReLU activations; SNN: time-averaged spike rates (the same Poisson draws for x and x_pert).
    """
    was = model.training
    model.eval()
    if isinstance(model, SpikingVGG):
        model.record = True
        model.encoder.reseed(seed)
        model(x)
        clean = [r.clone() for r in model.last_rates]
        model.encoder.reseed(seed)
        model(x_pert)
        pert = list(model.last_rates)
        model.record = False
    else:
        _, clean = model(x, record=True)
        _, pert = model(x_pert, record=True)
    model.train(was)
    out = []
    for a, b in zip(clean, pert):
        den = a.flatten(1).norm(dim=1)
        ratio = (b - a).flatten(1).norm(dim=1) / den
        out.append(torch.where(den > 0, ratio, torch.full_like(ratio, float("nan"))))
    return out


def summarize_ratios(ratios: Sequence[Tensor]) -> List[LayerPerturbation]:
    """One record per layer of :func:`layer_ratios`: the mean over the images where it is defined, a
    normal-approximation 95 % interval (low, high) and n; mean is nan when the layer is silent for every image."""
    out = []
    for r in ratios:
        r = r[~torch.isnan(r)]
        n = int(r.numel())
        if n == 0:
            out.append(LayerPerturbation(mean=float("nan"), low=float("nan"), high=float("nan"), n=0))
            continue
        m = float(r.mean())
        half = 1.96 * float(r.std()) / n ** 0.5 if n > 1 else float("nan")
        out.append(LayerPerturbation(mean=m, low=m - half, high=m + half, n=n))
    return out


def layer_perturbation(model: nn.Module, x: Tensor, x_adv: Tensor, seed: int = 0) -> List[LayerPerturbation]:
    """Relative perturbation ||a_l(x_adv) - a_l(x)|| / ||a_l(x)|| of every spiking layer (claim 10), summarised over
    the images (:func:`layer_ratios`, :func:`summarize_ratios`)."""
    return summarize_ratios(layer_ratios(model, x, x_adv, seed))


def noise_like(x: Tensor, x_adv: Tensor, seed: int) -> Tensor:
    """Random-sign noise of the attack's size: each image moves by +-s per pixel with s = ||x_adv - x||_2 / sqrt(D),
    the attack's L2 distance (hence within its L-infinity budget), then clipped to [0, 1].  Signs from the seeded
    stream ``"study.layer_noise"``.  x, x_adv: (N, C, H, W)."""
    g = generator(seed, "study.layer_noise")
    signs = torch.randint(0, 2, tuple(x.shape), generator=g).to(x.device, x.dtype) * 2 - 1
    step = (x_adv - x).flatten(1).norm(dim=1) / float(x[0].numel()) ** 0.5
    return (x + signs * step.view(-1, *([1] * (x.dim() - 1)))).clamp(0, 1)


def _last_layer_images(ids: Sequence[int], adv: Tensor, noise: Tensor) -> PerturbationImages:
    def values(t: Tensor) -> List[Optional[float]]:
        return [None if math.isnan(v) else float(v) for v in t.tolist()]
    return PerturbationImages(image_ids=[int(i) for i in ids], adversarial=values(adv), noise=values(noise))


# ----------------------------------------------------------------------------------------------------- sweeps
def robustness_row(ctx: Context, kind: str, model: nn.Module, eps_255: float,
                   model_set: Optional[ModelSet] = None) -> Dict[str, Any]:
    """The fields of a :class:`~snnlib.study.records.RobustnessRow` for one model variant on the attack images.

    Clean accuracy, white-box FGSM and PGD (crafted on ``model`` itself, the papers' SNN gradient) and black-box
    PGD crafted on the twin ANN.  model_set: the models ``model`` was trained with (default the first seed's; a
    model trained with other settings, e.g. :func:`retrained_models`, must name its own, which keys its cache).
    """
    wb = AttackPair.whitebox(model, kind, ctx.target if model_set is None else model_set)
    bb = AttackPair(source=ctx.twin.ann, source_name="ANN (twin)", source_set=ctx.twin, source_kind="ANN",
                    target=model, target_name=kind)
    return dict(kind=kind, eps_255=float(eps_255),
                clean=accuracy_from_outcomes(clean_outcomes(ctx, model, images_for(ctx, kind)).majority()),
                fgsm_wb=attack_result(ctx, wb, "fgsm", eps_255), pgd_wb=attack_result(ctx, wb, "pgd", eps_255),
                pgd_bb=attack_result(ctx, bb, "pgd", eps_255, zero_grad_check=False))


def _progress_line(label: str, fields: Mapping[str, Any]) -> str:
    return (f"{label}: clean {format_percent(fields['clean'])}, FGSM white-box "
            f"{format_percent(fields['fgsm_wb'].adversarial)}, PGD white-box "
            f"{format_percent(fields['pgd_wb'].adversarial)}, PGD black-box "
            f"{format_percent(fields['pgd_bb'].adversarial)}")


def retrained_models(ctx: Context, T: int, log: Callable[[str], Any] = print) -> ModelSet:
    """The first seed's models with SNN-BP fine-tuned at ``T`` timesteps instead of ``T_bp`` (the ANN and SNN-conv
    are the same; the new SNN-BP is trained, or loaded from the artifact cache, by
    :func:`~snnlib.study.pipeline.build_models`)."""
    return build_models(dict(ctx.params, T_bp=int(T)), ctx.target.seed, cache=ctx.cache, progress=False, log=log)


def discretization_results(ctx: Context, eps_255: float, log: Callable[[str], Any] = print) -> DiscretizationResults:
    """Chapter 2: SNN-BP and SNN-conv at every T of ``T_list`` (and their own T), SNN-BP fine-tuned at every T of
    ``T_bp_trained`` (sweep "T trained"), then both at every input bit depth of ``quant_bits`` (at their own T)."""
    P = ctx.params
    rows: List[DiscretizationRow] = []
    for kind, base in (("SNN-BP", ctx.target.snn_bp), ("SNN-conv", ctx.target.snn_conv)):
        for T in sorted(set(P["T_list"]) | {base.T}):
            f = robustness_row(ctx, kind, base.twin(T=T), eps_255)
            rows.append(DiscretizationRow(**f, T=T, bits=None, sweep="T"))
            log(_progress_line(f"{kind} T={T}", f))
        if kind == "SNN-BP":
            for T in sorted(set(P.get("T_bp_trained") or [])):
                ms = retrained_models(ctx, T, log)
                f = robustness_row(ctx, kind, ms.snn_bp, eps_255, model_set=ms)
                rows.append(DiscretizationRow(**f, T=T, bits=None, sweep=TRAINED_T))
                log(_progress_line(f"{kind} trained at T={T}", f))
        for b in [b for b in P["quant_bits"] if b is not None]:
            f = robustness_row(ctx, kind, base.twin(encoder=PoissonEncoder(seed=0, bits=b)), eps_255)
            rows.append(DiscretizationRow(**f, T=base.T, bits=b, sweep="bits"))
            log(_progress_line(f"{kind} {b}-bit input", f))
    return DiscretizationResults(rows=rows, eps_255=float(eps_255))


def leak_results(ctx: Context, eps_255: float, log: Callable[[str], Any] = print) -> LeakResults:
    """Chapter 3: SNN-BP at every leak of ``leak_list``, and the layer-wise perturbation of PGD crafted on the
    twin ANN through the ANN, SNN-conv and SNN-BP at every leak."""
    P = ctx.params
    rows = []
    for lk in sorted(P["leak_list"]):
        f = robustness_row(ctx, "SNN-BP", ctx.target.snn_bp.twin(leak=lk), eps_255)
        rows.append(LeakRow(**f, leak=lk))
        log(_progress_line(f"leak {lk:g}", f))
    x_adv = make_attack("pgd", ctx.twin.ann, eps_255, P)(ctx.x, ctx.y)
    seed = P["eval_seed"]
    x_noise = noise_like(ctx.x, x_adv, int(P["attack_seed"]))
    models = {"ANN": ctx.target.ann, "SNN-conv (IF)": ctx.target.snn_conv}
    for lk in sorted(P["leak_list"]):
        models[f"SNN-BP leak {lk:g}"] = ctx.target.snn_bp.twin(leak=lk)
    pert, images, ids = {}, {}, ctx.attack_ids().tolist()
    for label, model in models.items():
        adv = layer_ratios(model, ctx.x, x_adv, seed)
        pert[label] = summarize_ratios(adv)
        images[label] = _last_layer_images(ids, adv[-1], layer_ratios(model, ctx.x, x_noise, seed)[-1])
    return LeakResults(rows=rows, perturbation=pert, eps_255=float(eps_255), perturbation_images=images)


def target_pairs(ctx: Context) -> List[tuple]:
    """[(target set, twin set)]: the first seed's models attacked, the second's as black-box source; with
    ``target_seeds: both`` also the reverse, so every black-box number has two replicates."""
    pairs = [(ctx.target, ctx.twin)]
    if ctx.params.get("target_seeds", "first") == "both":
        pairs.append((ctx.twin, ctx.target))
    return pairs


def training_method_results(ctx: Context, log: Callable[[str], Any] = print) -> TrainingMethodResults:
    """Chapter 4: every kind under FGSM and PGD at every budget of ``eps_list``, white-box (crafted on itself)
    and black-box (crafted on its independently trained twin of the same kind), for every target seed of
    :func:`target_pairs`.  ``clean``: the first seed's clean accuracies on the attack images."""
    P = ctx.params
    clean = {k: accuracy_from_outcomes(clean_outcomes(ctx, m, images_for(ctx, k)).majority())
             for k, m in ctx.target.kinds().items()}
    rows = []
    for tset, sset in target_pairs(ctx):
        for kind in KINDS:
            target = tset.kinds()[kind]
            wb = AttackPair.whitebox(target, kind, tset)
            bb = AttackPair(source=sset.kinds()[kind], source_name=f"{kind} (twin)", source_set=sset,
                            source_kind=kind, target=target, target_name=kind)
            for attack in ("FGSM", "PGD"):
                for eps in P["eps_list"]:
                    rows.append(TrainingMethodRow(kind=kind, attack=attack, setting="white-box", eps_255=float(eps),
                                                  result=attack_result(ctx, wb, attack, eps), seed=tset.seed))
                    rows.append(TrainingMethodRow(kind=kind, attack=attack, setting="black-box", eps_255=float(eps),
                                                  result=attack_result(ctx, bb, attack, eps, zero_grad_check=False),
                                                  seed=tset.seed))
            log(f"{kind} (seed {tset.seed}): done")
    return TrainingMethodResults(rows=rows, clean=clean)


def attack_source_results(ctx: Context, eps_255: float, attacks: Sequence[str] = ("FGSM", "PGD"),
                          log: Callable[[str], Any] = print, max_images: Optional[int] = None
                          ) -> AttackSourceResults:
    """Chapter 5: the source-by-target transfer matrix of every attack at eps_255, for every target seed of
    :func:`target_pairs`.

    Sources: the three target kinds (the diagonal is white-box) and the other seed's models ("<kind> (twin)");
    targets: the three kinds of the target seed.  Every cell is an :func:`attack_result` (examples from the
    artifact cache when another chapter crafted them; per-image outcomes; white-box cells carry their source's
    zero-gradient share) on :func:`images_for` its kinds, at most ``max_images`` (None: no further limit).
    """
    cells = []
    for tset, sset in target_pairs(ctx):
        sources = [(f"{kind}{suffix}", ms, kind, model) for ms, suffix in ((tset, ""), (sset, " (twin)"))
                   for kind, model in ms.kinds().items()]
        for attack_name in attacks:
            for name, ms, kind, model in sources:
                for target_name, target in tset.kinds().items():
                    pair = AttackPair(source=model, source_name=name, source_set=ms, source_kind=kind,
                                      target=target, target_name=target_name)
                    rec = attack_result(ctx, pair, attack_name, eps_255, max_images=max_images)
                    cells.append(TransferCell(attack=attack_name.upper(), source=name, source_kind=kind,
                                              source_seed=ms.seed, target=target_name, result=rec,
                                              target_seed=tset.seed))
            log(f"{attack_name} (target seed {tset.seed}): done")
    return AttackSourceResults(cells=cells, eps_255=float(eps_255))


# ----------------------------------------------------------------------------------------------------- adaptive
def zero_gradient_share(attack: Attack, x: Tensor, y: Tensor) -> float:
    """Share of images (fraction) whose input gradient on ``attack``'s source is exactly zero.

    The gradient is the attack's own (:meth:`snnlib.attacks.Attack.input_gradient`, its grad mode), counted by
    :func:`snnlib.robustness.masking.zero_gradients` as in ``RobustnessResult.zero_grad_share``.
    """
    grad, _ = attack.input_gradient(x, y)
    return float(zero_gradients(grad).value)


@dataclass
class AdaptiveAttacks:
    """The attacks of chapter 6 for one target: {table name: Attack} and which of them are the papers'."""

    attacks: Dict[str, Attack]
    paper_pgd: str
    paper_fgsm: str
    transfer: str      # the black-box transfer compared with the white-box attack (twin of the same kind)
    transfers: List[str] = field(default_factory=list)   # every attack crafted on another trained model

    def crafted_on_target(self) -> List[str]:
        """The attacks crafted on the target itself (its own weights, any gradient or surrogate), in order."""
        return [k for k in self.attacks if k not in self.transfers]


def adaptive_attacks(ctx: Context, kind: str, model: nn.Module, eps_255: float,
                     twin: Optional[ModelSet] = None) -> AdaptiveAttacks:
    """The papers' attacks next to the adaptive ones for one target.

    SNNs: FGSM and PGD with Algorithm 1 (the papers', :func:`make_attack`), then
    :func:`snnlib.attacks.suite.adaptive_suite` (PGD with EOT over Poisson draws, rate-based PGD (BPTR, RGA), PGD
    through the ANN of the same weights (BPDA) and long PGD with restarts, at ``long_pgd_steps`` x ``restarts``),
    with short PGD (``pgd_steps``) through each other surrogate of ``surrogates`` before the long one, then
    :func:`autoattack_stages` (APGD-CE and APGD-DLR with EOT, the gradient-free Square), and the papers' black-box
    transfers (from the twin of the same kind and from the twin ANN).  ANN: FGSM, PGD, long PGD with restarts,
    APGD-CE, APGD-DLR, Square and the transfer from the twin ANN.  twin: the black-box sources (default: the
    second seed's).  Every attack's randomness comes from ``attack_seed``.
    """
    from ..attacks import PGD
    P = ctx.params
    eps = float(eps_255) / 255
    steps, L, R, seed = int(P["pgd_steps"]), int(P["long_pgd_steps"]), int(P["restarts"]), int(P["attack_seed"])
    batch = P.get("attack_batch")
    twin_set = ctx.twin if twin is None else twin
    twin = twin_set.kinds()[kind]
    if not isinstance(model, SpikingVGG):
        paper_pgd, transfer = f"PGD-{steps} (paper)", f"PGD-{steps} transfer from twin ANN"
        attacks = {"FGSM (paper)": make_attack("fgsm", model, eps_255, P),
                   paper_pgd: make_attack("pgd", model, eps_255, P),
                   f"PGD-{L}x{R}": PGD(model, eps, alpha=default_alpha(eps, L), steps=L, restarts=R, seed=seed,
                                       batch_size=batch),
                   **autoattack_stages(model, eps, P, eot=1),
                   transfer: make_attack("pgd", twin, eps_255, P)}
        return AdaptiveAttacks(attacks, paper_pgd, "FGSM (paper)", transfer, [transfer])
    paper_pgd = f"PGD-{steps} Alg.1 (paper)"
    suite = adaptive_suite(model, eps, steps=L, restarts=R, eot=int(P["eot_samples"]), eot_steps=steps,
                           paper_steps=steps, surrogates=(), seed=seed, batch_size=batch)
    suite[paper_pgd] = make_attack("pgd", model, eps_255, P)      # the profile's step size, as in chapter 4
    own = repr(model.surrogate)
    short_surrogates = {f"PGD-{steps} surrogate {key}": PGD(variant, eps, alpha=float(P["pgd_alpha"]) / 255,
                                                            steps=steps, grad_mode="bptt", seed=seed,
                                                            batch_size=batch)
                        for key, variant in surrogate_variants(model, tuple(P["surrogates"])).items() if key != own}
    attacks: Dict[str, Attack] = {"FGSM Alg.1 (paper)": make_attack("fgsm", model, eps_255, P)}
    long_bptt = f"PGD-{L}x{R} BPTT"
    for name, atk in suite.items():
        if name == long_bptt:
            attacks.update(short_surrogates)
        attacks[name] = atk
    attacks.update(autoattack_stages(model, eps, P, eot=int(P["eot_samples"])))
    transfer = f"PGD-{steps} transfer from twin {kind}"
    attacks[transfer] = make_attack("pgd", twin, eps_255, P)
    from_ann = f"PGD-{steps} transfer from twin ANN"
    attacks[from_ann] = make_attack("pgd", twin_set.ann, eps_255, P)
    return AdaptiveAttacks(attacks, paper_pgd, "FGSM Alg.1 (paper)", transfer, [transfer, from_ann])


def autoattack_stages(model: nn.Module, eps: float, P: Mapping[str, Any], eot: int) -> Dict[str, Attack]:
    """AutoAttack's attacks from torchattacks (:mod:`snnlib.attacks.external`) on ``model``: APGD-CE and APGD-DLR
    at ``apgd_steps`` iterations with ``eot`` gradient passes per step, and the gradient-free Square at
    ``square_queries`` queries (the masking check: it needs no gradient); a parameter of 0 (or absent) leaves its
    attacks out; each crafts ``attack_batch`` images at once.  eps: budget in [0, 1] pixel units."""
    from ..attacks.external import APGD, Square
    seed, out, batch = int(P["attack_seed"]), {}, P.get("attack_batch")
    steps, queries = int(P.get("apgd_steps", 0)), int(P.get("square_queries", 0))
    if steps:
        for loss in ("ce", "dlr"):
            name = f"APGD-{loss.upper()}-{steps}" + (f" EOT-{eot}" if eot > 1 else "")
            out[name] = APGD(model, eps, steps=steps, loss=loss, eot=eot, seed=seed, batch_size=batch)
    if queries:
        out[f"Square-{queries}"] = Square(model, eps, queries=queries, seed=seed, batch_size=batch)
    return out


def masking_report(ctx: Context, kind: str, model: nn.Module, eps_255: float) -> MaskingReport:
    """Worst case over :func:`adaptive_attacks` and the masking checks for one target, on the adaptive images.

    acc_by_eps: the papers' PGD at every budget of ``eps_list`` and ``large_eps`` (does accuracy reach zero?).
    """
    P = ctx.params
    n = int(P["adaptive_images"])
    x, y = ctx.x[:n], ctx.y[:n]
    ids = ctx.attack_ids()[:n]
    adaptive = adaptive_attacks(ctx, kind, model, eps_255)
    wc = evaluate_worst_case(model, adaptive.attacks, x, y, eval_seed=P["eval_seed"], draws=P["eval_draws"],
                             image_ids=ids)
    paper = wc.per_attack[adaptive.paper_pgd]
    acc_by_eps = {float(eps_255): paper}
    for e in sorted(set(float(v) for v in list(P["eps_list"]) + list(P["large_eps"]))):
        if e == float(eps_255):
            continue
        atk = make_attack("pgd", model, e, P, alpha=max(float(P["pgd_alpha"]), e / 4) / 255)
        out = score(model, atk(x, y), y, draws=P["eval_draws"], seed=P["eval_seed"], image_ids=ids)
        acc_by_eps[e] = accuracy_from_outcomes(out.majority())
    checks = run_checks(whitebox=paper, blackbox=wc.per_attack[adaptive.transfer],
                        fgsm=wc.per_attack[adaptive.paper_fgsm], pgd=paper,
                        acc_by_eps={e / 255: a for e, a in acc_by_eps.items()},
                        zero_grad_share=zero_gradient_share(adaptive.attacks[adaptive.paper_pgd], x, y),
                        model=model if isinstance(model, SpikingVGG) else None, x=x, y=y)
    return MaskingReport(kind=kind, n=n, eps_255=float(eps_255), clean=wc.clean, per_attack=dict(wc.per_attack),
                         worst_case=wc.worst, strongest=dict(wc.strongest), unique=dict(wc.unique),
                         seconds={k: round(v, 3) for k, v in wc.seconds.items()},
                         acc_by_eps={str(k): v for k, v in acc_by_eps.items()},
                         checks=[CheckRecord(**c.to_dict()) for c in checks], badge=badge(checks),
                         paper_attack=adaptive.paper_pgd,
                         outcomes=worst_case_outcomes(wc.outcomes, adaptive))


def worst_case_outcomes(outcomes: Mapping[str, Outcomes], adaptive: AdaptiveAttacks) -> Dict[str, Outcomes]:
    """The per-image outcomes chapter 6 keeps: "clean", "paper" (the papers' PGD) and the worst cases (clean
    included, majority vote per attack, K = 1): over every attack, over the attacks crafted on the target itself
    ("worst_case_whitebox") and over the transfer attacks ("worst_case_transfer")."""
    clean = outcomes["clean"]
    groups = {"worst_case": list(adaptive.attacks), "worst_case_whitebox": adaptive.crafted_on_target(),
              "worst_case_transfer": list(adaptive.transfers)}
    out = {"clean": clean, "paper": outcomes[adaptive.paper_pgd]}
    for name, keys in groups.items():
        if keys:
            robust = Outcomes.all_correct([clean] + [outcomes[k] for k in keys])
            out[name] = Outcomes(clean.image_ids, robust[None, :], clean.eval_seed, None,
                                 {"attacks": list(keys)})
    return out


def cascade_stages(adaptive: AdaptiveAttacks) -> List[Tuple[str, Attack]]:
    """The cascade's order: the papers' PGD, the other attacks crafted on the target (as listed: the cheap ones
    first, the gradient-free Square last), then the transfers from the other trained models."""
    own = [(k, adaptive.attacks[k]) for k in adaptive.crafted_on_target() if k != adaptive.paper_pgd]
    transfers = [(k, adaptive.attacks[k]) for k in adaptive.transfers]
    return [(adaptive.paper_pgd, adaptive.attacks[adaptive.paper_pgd])] + own + transfers


def cascade_report(ctx: Context, kind: str, target_set: ModelSet, twin_set: ModelSet, eps_255: float,
                   full: Optional[MaskingReport] = None) -> CascadeRecord:
    """The cascade worst case of ``kind`` of ``target_set`` over :func:`adaptive_attacks` (transfers from
    ``twin_set``) on every attack image (:func:`images_for`), scored as chapter 6 scores (``eval_draws``, majority).

    full: the full suite of the same target on the first images; when given, the cascade is audited against it
    (:func:`snnlib.robustness.cascade.audit`: images the cascade missed).
    """
    P = ctx.params
    model = target_set.kinds()[kind]
    n = images_for(ctx, kind)
    ids = ctx.attack_ids()[:n]
    adaptive = adaptive_attacks(ctx, kind, model, eps_255, twin=twin_set)
    stages = cascade_stages(adaptive)
    res = cascade_worst_case(model, stages, ctx.x[:n], ctx.y[:n], image_ids=ids, eval_seed=int(P["eval_seed"]),
                             draws=int(P["eval_draws"]))
    own = set(adaptive.crafted_on_target())
    first_transfer = 1 + len(own)          # stage 0 is the clean pass; cascade_stages puts the target's own first
    whitebox_robust = (res.first_fooled < 0) | (res.first_fooled >= first_transfer)
    names = [k for k, _ in stages]

    def outcome(robust: Tensor, group: str, attacks: List[str]) -> Outcomes:
        return Outcomes(res.image_ids, robust.numpy()[None, :], int(P["eval_seed"]), None,
                        {"attacks": attacks, "worst_case": group})

    clean = res.first_fooled != 0          # stage 0 scores the unattacked images
    audited = None
    full_sets = full_outcomes(full) if full is not None else {}
    if full_sets:
        m = min(full.n, n)                  # the audit images are the leading attack images
        per_attack = {k: torch.as_tensor(o.majority()[:m]) for k, o in full_sets.items()}
        audited = audit(per_attack, res, image_ids=ids[:m]).to_dict()
    return CascadeRecord(
        kind=kind, seed=int(target_set.seed), n=n, eps_255=float(eps_255),
        stages=[StageRow(whitebox=(st.name in own), **st.to_dict()) for st in res.stages[1:]],
        worst_case=res.accuracy, whitebox=accuracy_from_outcomes(whitebox_robust.numpy()),
        outcomes={"clean": outcome(clean, "clean", []),
                  "worst_case": outcome(res.robust, "every stage", names),
                  "worst_case_whitebox": outcome(whitebox_robust, "stages crafted on the target",
                                                 [k for k in names if k in own])},
        audit=audited)


def full_outcomes(report: MaskingReport) -> Dict[str, Outcomes]:
    """The per-image outcomes of the full suite on the audit images that :func:`audit` compares: "clean" and the
    worst case over every attack."""
    o = report.outcomes or {}
    return {k: o[k] for k in ("clean", "worst_case") if k in o}


def gradient_masking_results(ctx: Context, eps_255: float,
                             log: Callable[[str], Any] = print) -> GradientMaskingResults:
    """Chapter 6: a :func:`masking_report` (the full suite on the audit images) for every kind of the white-box
    target set, and a :func:`cascade_report` on every attack image for every kind and training seed (each seed
    the other's black-box source; the first seed's cascade audited against its full suite)."""
    reports = {}
    for kind, model in ctx.target.kinds().items():
        r = reports[kind] = _cached_record(
            ctx, "masking_report", MaskingReport,
            dict(kind=kind, target=weights_digest(model), twin=ctx.twin.fingerprint(), eps_255=eps_255),
            lambda: masking_report(ctx, kind, model, eps_255))
        log(f"{kind}: papers' attack {format_percent(r.paper)}, worst case {format_percent(r.worst_case)} "
            f"on the {r.n} audit images   {r.badge}")
    cascades = []
    sets = list(ctx.models[:2])
    for i, target_set in enumerate(sets):
        twin_set = sets[1 - i] if len(sets) > 1 else target_set
        for kind in target_set.kinds():
            full = reports[kind] if i == 0 else None
            key = dict(kind=kind, seed=target_set.seed, target=target_set.fingerprint(), twin=twin_set.fingerprint(),
                       eps_255=eps_255, full=None if full is None else _text_digest(json.dumps(to_dict(full))))
            c = _cached_record(ctx, "cascade", CascadeRecord, key,
                               lambda: cascade_report(ctx, kind, target_set, twin_set, eps_255, full=full))
            cascades.append(c)
            missed = "" if c.audit is None else f"; audit: {c.audit['missed']} of {c.audit['n']} images missed"
            log(f"{kind} seed {c.seed}: cascade worst case {format_percent(c.worst_case)} on {c.n} images "
                f"(white-box only {format_percent(c.whitebox)}){missed}")
    return GradientMaskingResults(worst_case=reports, eps_255=float(eps_255), cascades=cascades)


# ----------------------------------------------------------------------------------------------------- summary
def save_summary(params: Mapping[str, Any], claims: Sequence[ClaimRow], counts: Mapping[str, int]) -> Path:
    """Write ``<results_dir>/07_summary.json`` (:class:`~snnlib.study.records.SummaryFile`); returns the path."""
    rec = SummaryFile(notebook="07_summary", profile=params["profile"], claims=list(claims), counts=dict(counts),
                      **provenance())
    return write_record(params["results_dir"], rec)
