"""The accuracy effect of snnlib's bf16 option on the study's trained models: ``python -m snnlib.study.precision``.

``SpikingVGG(precision="bf16")`` runs the convolutions and linear layers in bfloat16 (float32 membranes and readout),
about twice as fast on a CPU with native bf16 (``python -m snnlib.bench --compare``), but it is not the papers'
arithmetic.  Before anyone uses it for a study, this measures what it changes, on the models a profile trains (the
first model seed, loaded from the artifact cache or trained): each SNN is scored at fp32 and at bf16 on the same
attack images with the same Poisson draws (clean), and attacked by the papers' white-box PGD crafted and scored at
each precision.  Each pair of per-image (majority-vote) outcomes is compared by an exact McNemar test and a paired
TOST within the profile's ``equivalence_margin``.  The JSON it writes is read by the performance appendix.

    python -m snnlib.study.precision --profile laptop --json results/bench/precision_laptop.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..files import atomic_write_json
from ..stats import equivalence_tost, paired_comparison

__all__ = ["NOTEBOOK", "KINDS", "precision_effect", "precision_effect_on", "compare_outcomes", "main"]

#: the notebook whose parameters (attack images, SNN-conv images, draws, PGD) the measurement uses
NOTEBOOK = "04_training_method"
#: the model kinds measured (the ANN has no bf16 option)
KINDS = ("SNN-BP", "SNN-conv")


def compare_outcomes(fp32, bf16, margin: float, alpha: float = 0.05) -> Dict[str, Any]:
    """The paired comparison of two (N,) per-image correctness arrays (fp32 first): accuracies and bf16 − fp32 in
    points with Tango's 95 % interval, the exact McNemar p, and the TOST equivalence within ``margin`` points."""
    cmp = paired_comparison(bf16, fp32)
    eq = equivalence_tost(bf16, fp32, margin / 100.0, alpha)
    return dict(n=cmp.n, fp32=100 * cmp.accuracy_b, bf16=100 * cmp.accuracy_a, difference=100 * cmp.difference,
                low=100 * cmp.low, high=100 * cmp.high, p_value=cmp.p_value, changed=int(cmp.n10 + cmp.n01),
                equivalent=bool(eq.equivalent), tost_p=eq.p_value, margin=float(margin))


def precision_effect(params: Mapping[str, Any], log=print) -> Dict[str, Any]:
    """:func:`precision_effect_on` the models and attack images of a profile's :data:`NOTEBOOK` parameters (e.g.
    ``load_profile("laptop")["notebooks"][NOTEBOOK]``), loaded from the artifact cache or trained."""
    from . import chapters as E

    ctx = E.setup(params, NOTEBOOK, log=log, check_models=False)     # fp32 against bf16 of the same models
    return {**precision_effect_on(ctx, log), "parameters": dict(ctx.params), "scale": ctx.scale_note()}


def precision_effect_on(ctx, log=print) -> Dict[str, Any]:
    """Clean and white-box PGD outcomes of SNN-BP and SNN-conv (the context's target seed) at fp32 and bf16, on
    the chapter's attack images (SNN-conv: ``snn_conv_images`` of them), compared image by image.

    Returns ``{"rows": [{kind, setting, n, fp32, bf16, difference, low, high, p_value, changed, equivalent,
    tost_p, margin, seconds_fp32, seconds_bf16}], "seed": ...}`` (accuracies and differences in %).
    """
    from ..robustness import evaluate_attack
    from ..robustness.prediction import score
    from . import chapters as E

    P, rows = ctx.params, []
    eps = E.main_eps(P)
    for kind in KINDS:
        model = ctx.target.kinds()[kind]
        n = E.images_for(ctx, kind)
        x, y, ids = ctx.x[:n], ctx.y[:n], ctx.attack_ids()[:n]
        models = {"fp32": model, "bf16": model.twin(precision="bf16")}
        clean, adv, secs = {}, {}, {"clean": {}, "PGD": {}}
        for name, m in models.items():
            t0 = time.time()
            clean[name] = score(m, x, y, draws=P["eval_draws"], seed=P["eval_seed"], image_ids=ids)
            secs["clean"][name] = time.time() - t0
            t0 = time.time()
            res = evaluate_attack(m, E.make_attack("pgd", m, eps, P), x, y, eval_seed=P["eval_seed"],
                                  zero_grad_check=False, draws=P["eval_draws"], image_ids=ids,
                                  clean_outcomes=clean[name])
            adv[name] = res.outcomes["adversarial"]
            secs["PGD"][name] = time.time() - t0
        for setting, out in (("clean", clean), (f"white-box PGD-{P['pgd_steps']} {eps:g}/255", adv)):
            row = compare_outcomes(out["fp32"].majority(), out["bf16"].majority(), P["equivalence_margin"])
            key = "clean" if setting == "clean" else "PGD"
            row.update(kind=kind, setting=setting, seconds_fp32=round(secs[key]["fp32"], 1),
                       seconds_bf16=round(secs[key]["bf16"], 1))
            rows.append(row)
            log(f"{kind} {setting}: fp32 {row['fp32']:.1f} % bf16 {row['bf16']:.1f} % "
                f"({row['changed']} of {row['n']} images change; equivalent within {row['margin']:g}: "
                f"{row['equivalent']})")
    return {"rows": rows, "seed": ctx.target.seed}


def main(argv: Optional[List[str]] = None) -> int:
    from ..machine import machine_info
    from .profiles import ProfileError, load_profile

    ap = argparse.ArgumentParser(prog="python -m snnlib.study.precision", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="smoke", help="run profile whose models and images are used")
    ap.add_argument("--json", default=None, help="write the result to this JSON file")
    a = ap.parse_args(argv)
    try:
        params = dict(load_profile(a.profile)["notebooks"][NOTEBOOK], profile=a.profile)
    except ProfileError as exc:
        print(f"python -m snnlib.study.precision: {exc}", file=sys.stderr)
        return 2
    t0 = time.time()
    report = precision_effect(params)
    report.update(profile=a.profile, machine=machine_info(), wall_s=round(time.time() - t0, 1),
                  timestamp_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    if a.json:
        atomic_write_json(Path(a.json), report)
        print("written to", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
