"""The computations behind each chapter of the book, so that notebooks only call snnlib.

``setup(params, notebook)`` validates the notebook's parameters, loads the test images and the trained models
(``pipeline.build_models`` for every training seed) and returns a ``Context``.  The functions below produce plain,
JSON-able rows (accuracies carry their 95 % Clopper-Pearson intervals) that the notebooks plot, glue and save.
Adversarial examples are cached in the artifact cache under the source model, the attack and the images, so the
chapters that need the same attack (e.g. white-box PGD at 8/255) craft it once.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from .. import data as D
from ..attacks import ATTACKS, Attack
from ..encoding import PoissonEncoder
from ..models import SpikingVGG, VGG
from ..robustness.prediction import predict
from .cache import ArtifactCache, config_key
from .results import write_result
from .pipeline import ModelSet, build_models, resolve_device
from .profiles import KNOWN_PARAMS, ProfileError, validate_overrides
from ..robustness.evaluation import RobustnessResult, evaluate_attack
from ..stats import accuracy_from_counts

__all__ = ["Context", "check_params", "setup", "make_attack", "clean_accuracy", "clean_table",
           "accuracy_vs_T", "attack_result", "collect_params", "main_eps", "eps_sweep", "layer_perturbation", "model_key", "KINDS"]

KINDS = ("ANN", "SNN-conv", "SNN-BP")
ATTACK_GRAD_MODE = "algorithm1"  # the papers' SNN-crafted attack (Algorithm 1); equal to BPTT + straight-through


def check_params(notebook: str, params: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate a notebook's parameters; raises ProfileError naming the parameter and what is allowed."""
    unknown = [k for k in params if k not in KNOWN_PARAMS and k not in ("profile", "results_dir")]
    if unknown:
        raise ProfileError(f"{notebook}: unknown parameter(s) {unknown}; allowed: {sorted(KNOWN_PARAMS)}") from None
    try:
        out = validate_overrides({k: v for k, v in params.items() if k in KNOWN_PARAMS}, profile=notebook)
    except ProfileError as e:
        raise ProfileError(f"{notebook}: {e}") from None
    if out.get("attack_images", 0) > out.get("n_test", 10 ** 9):
        raise ProfileError(f"{notebook}: attack_images={out['attack_images']} exceeds n_test={out['n_test']}; "
                           "allowed: attack_images <= n_test") from None
    out["profile"] = params.get("profile", "custom")
    out["results_dir"] = params.get("results_dir") or f"results/{out['profile']}"
    return out


def collect_params(namespace: Mapping[str, Any], notebook: str) -> Dict[str, Any]:
    """The notebook's parameters picked from a namespace (the notebook's ``globals()``) by their known names."""
    names = [k for k, p in KNOWN_PARAMS.items() if p.notebooks is None or notebook in p.notebooks]
    missing = [k for k in names if k not in namespace]
    if missing:
        raise ProfileError(f"{notebook}: the parameters cell lacks {missing}")
    out = {k: namespace[k] for k in names}
    out["profile"] = namespace.get("profile", "custom")
    out["results_dir"] = namespace.get("results_dir")
    return out


def model_key(ms: ModelSet, kind: str, model: nn.Module) -> Dict[str, Any]:
    """What identifies a model: the artifact config that trained it plus its run-time settings (T, leak, ...)."""
    cfg = dict(artifact=ms.info["configs"][kind], kind=kind)
    cfg["runtime"] = model.config() if isinstance(model, SpikingVGG) else model.config()
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

    @property
    def target(self) -> ModelSet:
        """The white-box target models (first training seed)."""
        return self.models[0]

    @property
    def twin(self) -> ModelSet:
        """The independently trained black-box twins (second training seed)."""
        return self.models[1]

    def scale_note(self) -> str:
        p = self.params
        return (f"profile '{p['profile']}', {self.test.describe()}; attacks on the first {len(self.y)} of them; "
                f"{p['n_train']} training images ({self.models[0].info['train_data']['source']}); "
                f"training seeds {p['model_seeds']}, evaluation seed {p['eval_seed']}; "
                f"{p['arch']}, ANN {p['epochs_ann']} epochs, SNN-BP {p['epochs_snn']} epochs at T={p['T_bp']}, "
                f"SNN-conv T={p['T_conv']}; 95% Clopper-Pearson intervals")

    def save(self, results: Mapping[str, Any]) -> str:
        """Write results/<profile>/<notebook>.json with parameters, data, scale and wall time."""
        payload = dict(notebook=self.notebook, profile=self.params["profile"],
                       parameters={k: v for k, v in self.params.items() if k != "results_dir"},
                       data=dict(test=self.test.info(), attack=self.attack_split.info() if self.attack_split else None,
                                 train=self.models[0].info["train_data"]),
                       scale_note=self.scale_note(), device=str(self.device), results=dict(results))
        return str(write_result(self.params["results_dir"], self.notebook, payload,
                                wall_time_s=time.time() - self.started))


def setup(params: Mapping[str, Any], notebook: str, progress: bool = False, log=print,
          cache: Optional[ArtifactCache] = None) -> Context:
    """Validate parameters, load the test split and attack images, build (or load) the models of every seed."""
    t0 = time.time()
    p = check_params(notebook, params)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = resolve_device(p["device"])
    test = D.load(p["dataset"], "test", n=p["n_test"], data_dir=p["data_dir"], source=p["data_source"])
    att = D.load(p["dataset"], "test", indices=test.indices[: p["attack_images"]].tolist(), data_dir=p["data_dir"],
                 source=test.source)
    cache = cache or ArtifactCache()
    models = [build_models(p, s, cache=cache, progress=progress, log=log) for s in p["model_seeds"][:2]]
    return Context(notebook, p, test, D.to_float(att.images), att.labels, models, cache, device, started=t0,
                   attack_split=att)


# ----------------------------------------------------------------------------------------------------- accuracy
def clean_accuracy(model: nn.Module, split_or_xy, seed: int = 0, batch_size: int = 128) -> Dict[str, Any]:
    """{'value', 'low', 'high', 'correct', 'total', ...} of a model on a Split or (x, y)."""
    from ..robustness.prediction import accuracy
    return accuracy(model, split_or_xy, batch_size=batch_size, seed=seed).to_dict()


def clean_table(ctx: Context) -> List[Dict[str, Any]]:
    """Clean test accuracy of the three kinds for every training seed."""
    rows = []
    for ms in ctx.models:
        for kind, model in ms.kinds().items():
            rows.append(dict(kind=kind, seed=ms.seed, T=getattr(model, "T", None), leak=getattr(model, "leak", None),
                             accuracy=clean_accuracy(model, ctx.test, ctx.params["eval_seed"])))
    return rows


def accuracy_vs_T(model: SpikingVGG, split, T_values: Iterable[int], seed: int = 0) -> List[Dict[str, Any]]:
    """Clean accuracy of an SNN at several inference timesteps (same weights and thresholds)."""
    return [dict(T=int(T), accuracy=clean_accuracy(model.twin(T=int(T)), split, seed)) for T in T_values]


# ----------------------------------------------------------------------------------------------------- attacks
def make_attack(name: str, model: nn.Module, eps_255: float, params: Mapping[str, Any], *,
                grad_mode: Optional[str] = None, **kw) -> Attack:
    """An attack of the papers' family by name ("fgsm", "rfgsm", "bim", "pgd") at eps_255 / 255.

    SNN sources use the papers' Algorithm 1 gradient by default; PGD takes the profile's steps and step size.
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
    return cls(model, eps, grad_mode=grad_mode, seed=int(params["eval_seed"]), **kw)


def _adv_cached(ctx: Context, source_key: Dict[str, Any], attack: Attack, x: Tensor, y: Tensor) -> Tensor:
    if ctx.attack_split is not None and x is ctx.x:
        images = ctx.attack_split.info()["indices_sha256"]
    else:
        images = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    cfg = dict(source=source_key, attack=attack.config(), images=images)

    def build():
        return {"x_adv": attack(x, y).cpu()}

    return ctx.cache.get_or_build("adversarial", cfg, build)["x_adv"]


class _Precrafted(Attack):
    """An Attack that returns already-crafted examples (so evaluate_attack can score cached ones)."""

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


def attack_result(ctx: Context, target: nn.Module, target_name: str, source: nn.Module, source_name: str,
                  source_set: ModelSet, source_kind: str, attack_name: str, eps_255: float,
                  zero_grad_check: bool = True, x: Optional[Tensor] = None, y: Optional[Tensor] = None,
                  **attack_kw) -> Dict[str, Any]:
    """One robustness number: ``attack_name`` at eps_255/255 crafted on ``source``, evaluated on ``target``.

    Returns RobustnessResult.to_dict() plus the names; the crafted examples are cached.
    """
    x = ctx.x if x is None else x
    y = ctx.y if y is None else y
    atk = make_attack(attack_name, source, eps_255, ctx.params, **attack_kw)
    x_adv = _adv_cached(ctx, model_key(source_set, source_kind, source), atk, x, y) if ctx.cache else atk(x, y)
    res = evaluate_attack(target, _Precrafted(atk, x_adv), x, y, eval_seed=ctx.params["eval_seed"],
                          zero_grad_check=zero_grad_check, source_name=source_name, target_name=target_name)
    out = res.to_dict()
    out.update(attack_name=attack_name.upper(), eps_255=float(eps_255), whitebox=source is target)
    return out


def eps_sweep(ctx: Context, target: nn.Module, target_name: str, source: nn.Module, source_name: str,
              source_set: ModelSet, source_kind: str, attack_name: str, eps_list: Sequence[float],
              **kw) -> List[Dict[str, Any]]:
    """attack_result for every epsilon in eps_list (in /255)."""
    return [attack_result(ctx, target, target_name, source, source_name, source_set, source_kind, attack_name, e,
                          **kw) for e in eps_list]


def main_eps(params: Mapping[str, Any]) -> float:
    """The headline budget: 8/255 (the released code's default) when swept, else the middle of eps_list."""
    eps = list(params["eps_list"])
    return 8.0 if 8 in eps else float(sorted(eps)[len(eps) // 2])


# ----------------------------------------------------------------------------------------------------- layers
@torch.no_grad()
def layer_perturbation(model: nn.Module, x: Tensor, x_adv: Tensor, seed: int = 0) -> List[Dict[str, float]]:
    """Relative perturbation ||a_l(x_adv) - a_l(x)|| / ||a_l(x)|| of every spiking layer (claim 10), per image.

    ANN: post-ReLU activations; SNN: time-averaged spike rates (same Poisson draws for x and x_adv).  Returns one
    dict per layer: mean over the images whose clean activity is non-zero, a normal-approximation 95 % interval
    (low, high) and n; mean is nan when the layer is silent for every image.
    """
    was = model.training
    model.eval()
    if isinstance(model, SpikingVGG):
        model.record = True
        model.encoder.reseed(seed)
        model(x)
        clean = [r.clone() for r in model.last_rates]
        model.encoder.reseed(seed)
        model(x_adv)
        adv = list(model.last_rates)
        model.record = False
    else:
        _, clean = model(x, record=True)
        _, adv = model(x_adv, record=True)
    model.train(was)
    out = []
    for a, b in zip(clean, adv):
        den = a.flatten(1).norm(dim=1)
        ok = den > 0
        ratio = (b - a).flatten(1).norm(dim=1)[ok] / den[ok]
        n = int(ok.sum())
        if n == 0:
            out.append(dict(mean=float("nan"), low=float("nan"), high=float("nan"), n=0))
            continue
        m = float(ratio.mean())
        half = 1.96 * float(ratio.std()) / n ** 0.5 if n > 1 else float("nan")
        out.append(dict(mean=m, low=m - half, high=m + half, n=n))
    return out


# ----------------------------------------------------------------------------------------------------- sweeps
def robustness_row(ctx: Context, kind: str, model: nn.Module, eps_255: float, bb_source: Optional[nn.Module] = None,
                   bb_kind: str = "ANN", bb_set: Optional[ModelSet] = None, **fields) -> Dict[str, Any]:
    """Clean accuracy and white-box FGSM / PGD (crafted on ``model`` itself, the papers' SNN gradient) and
    black-box PGD (crafted on ``bb_source``, by default the twin ANN) of one model variant, on the attack images."""
    bb_set = bb_set or ctx.twin
    bb_source = bb_source if bb_source is not None else bb_set.ann
    row = dict(kind=kind, eps_255=float(eps_255), **fields)
    row["clean"] = clean_accuracy(model, (ctx.x, ctx.y), ctx.params["eval_seed"])
    row["fgsm_wb"] = attack_result(ctx, model, kind, model, kind, ctx.target, kind, "fgsm", eps_255)
    row["pgd_wb"] = attack_result(ctx, model, kind, model, kind, ctx.target, kind, "pgd", eps_255)
    row["pgd_bb"] = attack_result(ctx, model, kind, bb_source, f"{bb_kind} (twin)", bb_set, bb_kind, "pgd", eps_255,
                                  zero_grad_check=False)
    return row


def series(rows: Sequence[Mapping[str, Any]], x_key: str, entry: str, **where) -> List[tuple]:
    """[(row[x_key], accuracy dict)] for the rows matching ``where``; entry = 'clean' or a result name."""
    out = []
    for r in rows:
        if all(r.get(k) == v for k, v in where.items()):
            acc = r[entry] if entry == "clean" else r[entry]["adversarial"]
            out.append((r[x_key], acc))
    return out


# ----------------------------------------------------------------------------------------------------- adaptive
def adaptive_attacks(ctx: Context, kind: str, model: nn.Module, eps_255: float) -> Dict[str, Attack]:
    """The papers' attacks next to the adaptive ones for one target, as {table name: Attack}.

    SNNs: PGD-7 with Algorithm 1 (the papers'), PGD with EOT over Poisson draws, rate-based PGD (BPTR, RGA), PGD
    through the ANN of the same weights (BPDA), PGD through each other surrogate, long PGD with restarts, and the
    papers' black-box transfers (from the twin of the same kind and from the twin ANN).  ANN: PGD-7, long PGD with
    restarts and the transfer from the twin ANN.
    """
    from ..attacks import FGSM, PGD
    from ..attacks.suite import default_alpha, surrogate_variants
    P = ctx.params
    eps, alpha, steps = float(eps_255) / 255, float(P["pgd_alpha"]) / 255, int(P["pgd_steps"])
    L, R, seed = int(P["long_pgd_steps"]), int(P["restarts"]), int(P["eval_seed"])
    long_alpha = default_alpha(eps, L)
    twin = ctx.twin.kinds()[kind]
    out: Dict[str, Attack] = {}
    if not isinstance(model, SpikingVGG):
        out[f"FGSM (paper)"] = FGSM(model, eps, seed=seed)
        out[f"PGD-{steps} (paper)"] = PGD(model, eps, alpha=alpha, steps=steps, seed=seed)
        out[f"PGD-{L}x{R}"] = PGD(model, eps, alpha=long_alpha, steps=L, restarts=R, seed=seed)
        out[f"PGD-{steps} transfer from twin ANN"] = PGD(twin, eps, alpha=alpha, steps=steps, seed=seed)
        return out
    out["FGSM Alg.1 (paper)"] = FGSM(model, eps, grad_mode="algorithm1", seed=seed)
    out[f"PGD-{steps} Alg.1 (paper)"] = PGD(model, eps, alpha=alpha, steps=steps, grad_mode="algorithm1", seed=seed)
    out[f"PGD-{steps} EOT-{P['eot_samples']}"] = PGD(model, eps, alpha=alpha, steps=steps, grad_mode="bptt",
                                                     eot=int(P["eot_samples"]), seed=seed)
    out[f"PGD-{L} rate (BPTR)"] = PGD(model, eps, alpha=long_alpha, steps=L, restarts=R, grad_mode="rate", seed=seed)
    out[f"PGD-{L} rate (RGA)"] = PGD(model, eps, alpha=long_alpha, steps=L, restarts=R, grad_mode="rga", seed=seed)
    out[f"PGD-{L} ANN proxy (BPDA)"] = PGD(model, eps, alpha=long_alpha, steps=L, restarts=R, grad_mode="ann_proxy",
                                           seed=seed)
    own = repr(model.surrogate)
    for key, variant in surrogate_variants(model, tuple(P["surrogates"])).items():
        if key != own:
            out[f"PGD-{steps} surrogate {key}"] = PGD(variant, eps, alpha=alpha, steps=steps, grad_mode="bptt",
                                                      seed=seed)
    out[f"PGD-{L}x{R} BPTT"] = PGD(model, eps, alpha=long_alpha, steps=L, restarts=R, grad_mode="bptt", seed=seed)
    out[f"PGD-{steps} transfer from twin {kind}"] = PGD(twin, eps, alpha=alpha, steps=steps, seed=seed,
                                                        grad_mode="algorithm1")
    out[f"PGD-{steps} transfer from twin ANN"] = PGD(ctx.twin.ann, eps, alpha=alpha, steps=steps, seed=seed)
    return out


def masking_report(ctx: Context, kind: str, model: nn.Module, eps_255: float) -> Dict[str, Any]:
    """Worst case over :func:`adaptive_attacks` and the masking checks for one target, on the adaptive images.

    Returns {'worst_case': Accuracy dict, 'per_attack': {name: Accuracy dict}, 'strongest', 'unique', 'clean',
    'checks': [Check dicts], 'badge': str, 'acc_by_eps': {eps_255: Accuracy dict} of the papers' PGD}.
    """
    from ..robustness.worst_case import evaluate_worst_case
    from ..attacks import PGD
    from ..robustness.masking import badge, run_checks
    P = ctx.params
    n = int(P["adaptive_images"])
    x, y = ctx.x[:n], ctx.y[:n]
    attacks = adaptive_attacks(ctx, kind, model, eps_255)
    wc = evaluate_worst_case(model, attacks, x, y, eval_seed=P["eval_seed"])
    paper_pgd = next(k for k in attacks if k.startswith("PGD-") and "paper" in k)
    paper_fgsm = next((k for k in attacks if k.startswith("FGSM")), None)
    transfer = next(k for k in attacks if "transfer from twin" in k and not k.endswith("twin ANN")) \
        if isinstance(model, SpikingVGG) else next(k for k in attacks if "transfer" in k)
    # accuracy against epsilon for the papers' PGD, up to the large budgets (does it reach zero?)
    grad_mode = "algorithm1" if isinstance(model, SpikingVGG) else "autograd"
    acc_by_eps = {float(eps_255): wc.per_attack[paper_pgd]}
    for e in sorted(set(float(v) for v in list(P["eps_list"]) + list(P["large_eps"]))):
        if e == float(eps_255):
            continue
        atk = PGD(model, e / 255, alpha=max(float(P["pgd_alpha"]), e / 4) / 255, steps=int(P["pgd_steps"]),
                  grad_mode=grad_mode, seed=int(P["eval_seed"]))
        adv_pred = predict(model, atk(x, y), seed=P["eval_seed"])
        acc_by_eps[e] = accuracy_from_counts(int((adv_pred == y).sum()), len(y))
    zero = attacks[paper_pgd].input_gradient(x, y)[0].flatten(1).abs().amax(1).eq(0).float().mean().item()
    checks = run_checks(whitebox=wc.per_attack[paper_pgd], blackbox=wc.per_attack[transfer],
                        fgsm=wc.per_attack[paper_fgsm] if paper_fgsm else None, pgd=wc.per_attack[paper_pgd],
                        acc_by_eps={e / 255: a for e, a in acc_by_eps.items()}, zero_grad_share=zero,
                        model=model if isinstance(model, SpikingVGG) else None, x=x, y=y)
    d = wc.to_dict()
    return dict(kind=kind, n=n, eps_255=float(eps_255), clean=d["clean"], per_attack=d["per_attack"],
                worst_case=d["worst"], strongest=d["strongest"], unique=d["unique"], seconds=d["seconds"],
                acc_by_eps={str(k): v.to_dict() for k, v in acc_by_eps.items()},
                checks=[c.to_dict() for c in checks], badge=badge(checks), paper_attack=paper_pgd)
