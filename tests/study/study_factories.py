"""Small builders of the study's typed records, shared by the record, claim and table tests."""
from __future__ import annotations

from pathlib import Path

from snnlib.robustness.outcomes import Outcomes
from snnlib.stats import accuracy_from_counts
from snnlib.study import records as R

import numpy as np


def acc(k, n=100):
    return accuracy_from_counts(k, n)


def attack_record(adversarial=None, eps_255=8.0, outcomes=None, **changes) -> R.AttackRecord:
    fields = dict(attack_name="PGD", attack={"attack": "PGD", "steps": 7, "alpha_255": 2.0}, source="ANN (twin)",
                  target="SNN-BP", whitebox=False, n=100, eps=eps_255 / 255, eps_255=eps_255, clean=acc(60),
                  adversarial=adversarial or acc(30), success_rate=acc(30, 60), max_linf=eps_255 / 255,
                  max_linf_255=eps_255, budget_ok=True, adv_not_above_clean=True, zero_grad_share=None,
                  more_iters_not_weaker=None, weaker=None, eval_seed=0, seconds=1.5, flags_ok=True, warnings=[],
                  outcomes=outcomes)
    fields.update(changes)
    return R.AttackRecord(**fields)


def discretization_row(kind="SNN-BP", T=8, bits=None, sweep="T", pgd_wb=None) -> R.DiscretizationRow:
    return R.DiscretizationRow(kind=kind, eps_255=8.0, clean=acc(60), fgsm_wb=attack_record(acc(40)),
                               pgd_wb=attack_record(pgd_wb or acc(30)), pgd_bb=attack_record(acc(50)), T=T,
                               bits=bits, sweep=sweep)


def leak_row(leak=1.0, pgd_wb=None) -> R.LeakRow:
    return R.LeakRow(kind="SNN-BP", eps_255=8.0, clean=acc(60), fgsm_wb=attack_record(acc(40)),
                     pgd_wb=attack_record(pgd_wb or acc(30)), pgd_bb=attack_record(acc(50)), leak=leak)


def outcomes(n=5, seed=0) -> Outcomes:
    rng = np.random.default_rng(seed)
    return Outcomes(image_ids=np.arange(n), correct=rng.random((3, n)) > 0.5)


def chapter_results() -> dict:
    """One results record per chapter, every row type included."""
    report = R.MaskingReport(
        kind="SNN-BP", n=24, eps_255=8.0, clean=acc(16, 24), per_attack={"PGD-7 Alg.1 (paper)": acc(3, 24),
                                                                         "PGD-50x2 BPTT": acc(2, 24)},
        worst_case=acc(2, 24), strongest={"clean": 8, "PGD-7 Alg.1 (paper)": 13, "PGD-50x2 BPTT": 1},
        unique={"clean": 0, "PGD-7 Alg.1 (paper)": 0, "PGD-50x2 BPTT": 1}, seconds={"PGD-50x2 BPTT": 12.5},
        acc_by_eps={"8.0": acc(3, 24), "16.0": acc(1, 24)},
        checks=[R.CheckRecord(name="randomness", ok=False, detail="12.5% change", skipped=False,
                              value={"seeds": [0, 1], "spread": 0.1})],
        badge="⚠ 1 masking sign: randomness", paper_attack="PGD-7 Alg.1 (paper)")
    return {
        "01_models": R.ModelsResults(
            clean=[R.CleanRow(kind="ANN", seed=0, T=None, leak=None, accuracy=acc(57)),
                   R.CleanRow(kind="SNN-BP", seed=0, T=16, leak=0.99, accuracy=acc(40))],
            conv_vs_T=[R.TimestepPoint(T=16, accuracy=acc(10)), R.TimestepPoint(T=64, accuracy=acc(30))],
            thresholds={"seed 0": [1.5, 2.25]}, snn_bp_thresholds={"seed 0": [1.05, 1.575]},
            paper_table_I={"ANN": 89.5}),
        "02_discretization": R.DiscretizationResults(rows=[discretization_row(), discretization_row(
            T=16, bits=1, sweep="bits")], eps_255=8.0),
        "03_leak": R.LeakResults(rows=[leak_row(0.9), leak_row(1.0)], eps_255=8.0, perturbation={
            "ANN": [R.LayerPerturbation(mean=0.19, low=0.18, high=0.2, n=100)],
            "SNN-BP leak 1": [R.LayerPerturbation(mean=float("nan"), low=float("nan"), high=float("nan"), n=0)]}),
        "04_training_method": R.TrainingMethodResults(rows=[R.TrainingMethodRow(
            kind="SNN-BP", attack="PGD", setting="black-box", eps_255=8.0,
            result=attack_record(outcomes={"adversarial": outcomes()}))], clean={"SNN-BP": acc(60)}),
        "05_attack_source": R.AttackSourceResults(cells=[R.TransferCell(
            attack="PGD", source="ANN (twin)", source_kind="ANN", source_seed=1, target="SNN-BP",
            result=attack_record())], eps_255=8.0),
        "06_gradient_masking": R.GradientMaskingResults(worst_case={"SNN-BP": report}, eps_255=8.0),
    }


def chapter_file(notebook, results, dataset="cifar10") -> R.ChapterFile:
    return R.ChapterFile(notebook=notebook, profile="test", parameters={"dataset": dataset, "T_bp": 16},
                         data={"test": {"n": 100}}, scale_note="test scale", device="cpu", results=results,
                         wall_time_s=12.0, snnlib_version="0.1.0", torch_version="2.0", machine={"cpu_count": 2},
                         git_commit=None, timestamp_utc="2026-01-01T00:00:00+00:00")


def study_files() -> dict:
    return {nb: chapter_file(nb, res) for nb, res in chapter_results().items()}


def write_study(folder: Path, files: dict) -> None:
    for f in files.values():
        R.write_record(folder, f)


# ------------------------------------------------------------------------------ records with per-image outcomes
def pair_vectors(n11=0, n10=0, n01=0, n00=0):
    """Two (N,) bool outcome vectors with exactly these paired counts (n10: a right, b wrong)."""
    a = np.array([True] * n11 + [True] * n10 + [False] * n01 + [False] * n00)
    b = np.array([True] * n11 + [False] * n10 + [True] * n01 + [False] * n00)
    return a, b


def vector(k, n):
    """(n,) bool: the first k images correct."""
    return np.arange(n) < k


def outcome(bits, ids=None) -> Outcomes:
    """Outcomes (one draw) of a bool vector, image ids 0..N-1 unless given."""
    bits = np.asarray(bits, dtype=bool)
    return Outcomes(image_ids=np.arange(bits.size) if ids is None else np.asarray(ids), correct=bits[None, :])


def scored_record(adv, clean=None, zero_grad=None, ids=None, eps_255=8.0, **changes) -> R.AttackRecord:
    """An AttackRecord whose accuracies and outcomes ("clean", "adversarial") come from per-image vectors;
    clean defaults to all correct."""
    adv = np.asarray(adv, dtype=bool)
    clean = np.ones_like(adv) if clean is None else np.asarray(clean, dtype=bool)
    n = int(adv.size)
    return attack_record(adversarial=acc(int(adv.sum()), n), clean=acc(int(clean.sum()), n), n=n, eps_255=eps_255,
                         zero_grad_share=zero_grad, outcomes={"clean": outcome(clean, ids),
                                                              "adversarial": outcome(adv, ids)}, **changes)


def scored_row(cls, adv, clean=None, zero_grad=None, **fields):
    """A DiscretizationRow / LeakRow whose white-box PGD has per-image outcomes (adv) and clean outcomes."""
    rec = scored_record(adv, clean, zero_grad=zero_grad)
    return cls(eps_255=8.0, clean=rec.clean, fgsm_wb=rec, pgd_wb=rec, pgd_bb=rec, **fields)


def clean_row(kind, bits, seed=0) -> R.CleanRow:
    bits = np.asarray(bits, dtype=bool)
    return R.CleanRow(kind=kind, seed=seed, T=None, leak=None, accuracy=acc(int(bits.sum()), int(bits.size)),
                      outcomes=outcome(bits))


def cascade_record(kind, seed, clean, whitebox, worst, fooled=(1, 2, 3), audit=None) -> R.CascadeRecord:
    """A CascadeRecord from per-image vectors (image ids 500..): two white-box stages and one transfer stage,
    each having fooled the given counts (what earlier stages left to attack is not checked)."""
    clean, whitebox, worst = (np.asarray(v, dtype=bool) for v in (clean, whitebox, worst))
    n = int(clean.size)
    ids = np.arange(n) + 500
    stages = [R.StageRow(name=name, attacked=n, fooled=f, seconds=1.0, max_linf=8 / 255, config={}, whitebox=wb)
              for (name, wb), f in zip((("PGD-7 (paper)", True), ("PGD-20x2", True), ("transfer", False)), fooled)]
    return R.CascadeRecord(kind=kind, seed=seed, n=n, eps_255=8.0, stages=stages,
                           worst_case=accuracy_from_counts(int(worst.sum()), n),
                           whitebox=accuracy_from_counts(int(whitebox.sum()), n),
                           outcomes={"clean": outcome(clean, ids), "worst_case": outcome(worst, ids),
                                     "worst_case_whitebox": outcome(whitebox, ids)}, audit=audit)
