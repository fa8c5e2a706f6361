"""The papers' attack next to the adaptive ones: surrogate twins, long PGD, EOT, rate and ANN-proxy gradients.

:func:`adaptive_suite` returns {readable name: Attack}; :func:`snnlib.robustness.worst_case.evaluate_worst_case`
scores a target under all of them at once.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from ..models import SpikingVGG
from ..neurons import SURROGATES, get_surrogate
from .base import Attack
from .checks import check_eps
from .gradients import GRAD_MODES
from .pgd import PGD
from .rate import RATE_RULES, require_snn

__all__ = ["PAPER_ALPHA", "surrogate_variants", "default_alpha", "adaptive_suite"]

PAPER_ALPHA = 2 / 255  # the released code's PGD step (with 7 steps at eps = 8/255)


def surrogate_variants(snn: SpikingVGG, names: Sequence[str] = ("linear", "fast_sigmoid", "arctan", "rectangle"),
                       widths: Optional[Mapping[str, Sequence[float]]] = None) -> Dict[str, SpikingVGG]:
    """Twins of ``snn`` (same weights, thresholds, forward) with other surrogate gradients, to craft on.

    names: surrogate registry names; widths: {name: [width, ...]} (names missing from it use their default width).
    Returns {"arctan(width=2)": twin, ...} in the given order.  The forward pass is unchanged, only BPTT differs.
    """
    require_snn(snn, "surrogate_variants")
    if isinstance(names, str):
        names = (names,)
    widths = dict(widths or {})
    unknown = [n for n in list(names) + list(widths) if n not in SURROGATES]
    if unknown:
        raise ValueError(f"unknown surrogate(s) {unknown}; choose from {sorted(SURROGATES)}")
    out: Dict[str, SpikingVGG] = {}
    for name in names:
        for w in widths.get(name, [None]):
            sg = get_surrogate(name, w)
            out[repr(sg)] = snn.twin(surrogate=sg)
    return out


def default_alpha(eps: float, steps: int) -> float:
    """Step size for long PGD: ``eps * max(2.5 / steps, 1/10)`` (Madry's 2.5 eps / steps, at least eps / 10)."""
    return eps * max(2.5 / steps, 0.1)


def adaptive_suite(snn: SpikingVGG, eps: float, *, steps: int = 50, restarts: int = 2, eot: int = 8,
                   alpha: Optional[float] = None, eot_steps: Optional[int] = None,
                   surrogates: Sequence[str] = ("fast_sigmoid", "arctan", "rectangle"),
                   rate_rules: Sequence[str] = ("bptr", "rga"), paper_steps: int = 7, seed: int = 0,
                   **attack_kw) -> Dict[str, Attack]:
    """The papers' attack next to the adaptive ones, as {table name: Attack} (all untargeted L-inf PGD at eps).

    * ``PGD-7 Alg.1 (paper)``: Algorithm 1 gradient, alpha 2/255, 7 steps, one Poisson draw per step;
    * ``PGD-{eot_steps} EOT-{eot}``: BPTT averaged over ``eot`` draws per step (one restart);
    * ``PGD-{steps} rate (BPTR)`` / ``PGD-{steps} rate (RGA)``: the rate gradients of ``rate_rules``;
    * ``PGD-{steps} ANN proxy (BPDA)``: the gradient of ``snn.net``;
    * ``PGD-{steps} surrogate <name(width=w)>``: BPTT on a twin with another surrogate (the model's own skipped);
    * ``PGD-{steps}x{restarts} BPTT``: long PGD with restarts through the model's own surrogate.

    alpha: step of the long attacks (default :func:`default_alpha`); eot_steps: steps of the EOT attack (default
    ``steps``); attack_kw: passed to every attack (e.g. ``batch_size``).  The long attacks use ``restarts``.
    """
    require_snn(snn, "adaptive_suite")
    eps = check_eps(eps)
    alpha = default_alpha(eps, steps) if alpha is None else alpha
    eot_steps = steps if eot_steps is None else eot_steps
    eot_alpha = alpha if eot_steps == steps else default_alpha(eps, eot_steps)
    long = dict(eps=eps, alpha=alpha, steps=steps, restarts=restarts, seed=seed, **attack_kw)
    suite: Dict[str, Attack] = {
        f"PGD-{paper_steps} Alg.1 (paper)": PGD(snn, eps=eps, alpha=PAPER_ALPHA, steps=paper_steps,
                                                grad_mode="algorithm1", seed=seed, **attack_kw),
        f"PGD-{eot_steps} EOT-{eot}": PGD(snn, eps=eps, alpha=eot_alpha, steps=eot_steps, grad_mode="bptt",
                                          eot=eot, seed=seed, **attack_kw),
    }
    for rule in rate_rules:
        mode = "rate" if rule == "bptr" else rule
        if mode not in GRAD_MODES:
            raise ValueError(f"unknown rate rule {rule!r}; choose from {sorted(RATE_RULES)}")
        suite[f"PGD-{steps} rate ({rule.upper()})"] = PGD(snn, grad_mode=mode, **long)
    suite[f"PGD-{steps} ANN proxy (BPDA)"] = PGD(snn, grad_mode="ann_proxy", **long)
    own = repr(snn.surrogate)
    for key, twin in surrogate_variants(snn, tuple(surrogates)).items():
        if key != own:
            suite[f"PGD-{steps} surrogate {key}"] = PGD(twin, grad_mode="bptt", **long)
    suite[f"PGD-{steps}x{restarts} BPTT"] = PGD(snn, grad_mode="bptt", **long)
    return suite
