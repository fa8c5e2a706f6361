"""Did every chapter of a run use the same trained models?  A check on the clean outcomes the chapters recorded.

The same model scored on the same images with the same evaluation seed gives the same per-image, per-draw outcomes
in every chapter (each image's Poisson draws come from its own stream, so batching does not matter), while the same
recipe and seed trained again on another kind of CPU gives other weights that disagree on some images.  So each
chapter's clean outcomes of the base models (the three kinds of both training seeds at the profile's own T and
leak) are compared with those of the first chapter that has them (01_models).  Unlike the weight fingerprints
(:func:`snnlib.study.results.model_mismatches`), this also works for results written before the fingerprints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..robustness.outcomes import Outcomes
from .pipeline import PIPELINE_KEYS
from .records import KINDS, AttackRecord, RecordError, StudyResults, read_chapter

__all__ = ["CleanSet", "Agreement", "ModelMismatch", "base_clean_sets", "clean_agreement", "mixed_training_runs", "recorded_model_problems",
           "check_recorded_models"]


@dataclass
class CleanSet:
    """Clean outcomes of one base model (``kind``, training ``seed``) recorded by ``chapter``."""

    chapter: str
    kind: str
    seed: int
    outcomes: Outcomes


@dataclass
class Agreement:
    """One chapter's clean outcomes of one base model against the reference chapter's, on the images both scored.

    level: "draws" (both have the same evaluation draws: every draw of every image compared) or "majority" (the
    draw counts differ: each image's majority vote compared); agree / compared: counts at that level.
    """

    chapter: str
    kind: str
    seed: int
    reference: str
    images: int
    level: str
    agree: int
    compared: int

    @property
    def share(self) -> float:
        """Fraction of the compared outcomes that agree (nan when nothing was compared)."""
        return self.agree / self.compared if self.compared else float("nan")


def _clean_of(record: Optional[AttackRecord]) -> Optional[Outcomes]:
    return (record.outcomes or {}).get("clean") if record is not None else None


def _chapter_sets(study: StudyResults) -> Iterator[Tuple[str, str, int, Optional[Outcomes]]]:
    """(chapter, kind, seed, clean outcomes) of every base-model record in the study's chapters."""
    p = study.parameters
    own_T = {"SNN-BP": p.get("T_bp"), "SNN-conv": p.get("T_conv")}
    if study.models is not None:
        for row in study.models.clean:
            yield "01_models", row.kind, row.seed, row.outcomes
    if study.discretization is not None:           # the first seed's SNNs, at their own T, unquantised
        for row in study.discretization.rows:
            if row.sweep == "T" and row.bits is None and row.T == own_T.get(row.kind):
                yield "02_discretization", row.kind, 0, _clean_of(row.pgd_wb)
    if study.leak is not None:                     # the first seed's SNN-BP at its own leak
        for row in study.leak.rows:
            if p.get("leak_bp") is not None and row.leak == p["leak_bp"]:
                yield "03_leak", row.kind, 0, _clean_of(row.pgd_wb)
    if study.training_method is not None:
        for row in study.training_method.rows:
            yield "04_training_method", row.kind, row.seed, _clean_of(row.result)
    if study.attack_source is not None:
        for cell in study.attack_source.cells:
            yield "05_attack_source", cell.target, cell.target_seed, _clean_of(cell.result)
    if study.gradient_masking is not None:
        for kind, report in study.gradient_masking.worst_case.items():
            yield "06_gradient_masking", kind, 0, (report.outcomes or {}).get("clean")
        for cascade in study.gradient_masking.cascades:
            yield "06_gradient_masking", cascade.kind, cascade.seed, (cascade.outcomes or {}).get("clean")


def base_clean_sets(study: StudyResults) -> List[CleanSet]:
    """Every chapter's clean outcomes of the base models, one per (chapter, kind, seed, draws, evaluation seed):
    the one with the most images (a chapter scores a model once per image set and reuses it)."""
    best: Dict[tuple, CleanSet] = {}
    for chapter, kind, seed, out in _chapter_sets(study):
        if out is None or kind not in KINDS:
            continue
        key = (chapter, kind, int(seed), out.draws, out.eval_seed)
        if key not in best or out.n > best[key].outcomes.n:
            best[key] = CleanSet(chapter, kind, int(seed), out)
    return list(best.values())


def _compare(a: Outcomes, b: Outcomes) -> Tuple[int, str, int, int]:
    """(shared images, level, agreeing, compared) of two clean outcome sets of one model."""
    shared = np.intersect1d(a.image_ids, b.image_ids)
    if shared.size == 0:
        return 0, "draws", 0, 0
    a, b = a.subset(shared), b.subset(shared)
    if a.draws == b.draws and a.eval_seed == b.eval_seed:
        same = a.correct == b.correct
        return int(shared.size), "draws", int(same.sum()), int(same.size)
    same = a.majority() == b.majority()
    return int(shared.size), "majority", int(same.sum()), int(same.size)


def clean_agreement(study: StudyResults) -> List[Agreement]:
    """Each chapter's clean outcomes of each base model against the reference chapter's (01_models where it ran,
    else the first chapter that scored that model), on the images both scored.  All shares 1.0: the chapters
    used the same trained models; any lower share: that chapter's model is another training run."""
    sets = base_clean_sets(study)
    reference: Dict[Tuple[str, int], CleanSet] = {}
    for s in sorted(sets, key=lambda s: (s.chapter, -s.outcomes.draws, -s.outcomes.n)):
        reference.setdefault((s.kind, s.seed), s)
    out = []
    for s in sets:
        ref = reference[(s.kind, s.seed)]
        if s is ref:
            continue
        images, level, agree, compared = _compare(ref.outcomes, s.outcomes)
        if compared:
            out.append(Agreement(s.chapter, s.kind, s.seed, ref.chapter, images, level, agree, compared))
    return out


def mixed_training_runs(results_dir: Union[str, os.PathLike]) -> List[str]:
    """One line per trained model on which the chapters of ``results_dir`` disagree: by their weight fingerprints
    (:func:`snnlib.study.results.model_mismatches`) and, for chapters written before the fingerprints, by their clean
    outcomes (:func:`clean_agreement`).  Empty when every chapter used the same trained models (or an unreadable
    results file leaves nothing to compare: the summary reports it)."""
    from .records import load_study
    from .results import model_mismatches

    lines = model_mismatches(results_dir)
    try:
        lines += [f"{a.chapter} {a.kind} seed {a.seed}: {a.compared - a.agree} of {a.compared} clean outcomes "
                  f"differ from {a.reference}'s" for a in clean_agreement(load_study(results_dir))
                  if a.agree < a.compared]
    except (RecordError, OSError, ValueError, KeyError):
        pass
    return lines


class ModelMismatch(RuntimeError):
    """The models a chapter built differ from those its results folder's 01_models recorded with the same recipe."""


def recorded_model_problems(results_dir: Union[str, os.PathLike], params: Mapping[str, Any],
                            model_sets: Sequence[Any]) -> List[str]:
    """How ``model_sets`` (:class:`~snnlib.study.pipeline.ModelSet`) differ from the models that
    ``<results_dir>/01_models.json`` recorded, when that record used the same training recipe (``PIPELINE_KEYS`` and
    ``model_seeds``); empty when they agree, when there is no such record, or when it used another recipe.  Compares
    the weight fingerprints where recorded, else SNN-BP's thresholds (full floats, derived from the ANN's weights)."""
    path = Path(results_dir) / "01_models.json"
    if not path.is_file():
        return []
    try:
        record = read_chapter(path, "01_models")
    except RecordError:
        return []                      # an unreadable record is the summary's to report
    if any(record.parameters.get(k) != params.get(k) for k in (*PIPELINE_KEYS, "model_seeds")):
        return []
    problems = []
    for ms in model_sets:
        key = f"seed {ms.seed}"
        if record.models and key in record.models:
            mine = ms.fingerprint()
            differ = [kind for kind, digest in record.models[key].items() if mine.get(kind) != digest]
            if differ:
                problems.append(f"{key}: the weights of {', '.join(differ)} differ from those 01_models recorded")
            continue
        recorded = record.results.snn_bp_thresholds.get(key)
        mine_th = [float(t) for t in ms.info["snn_bp_thresholds"]]
        if recorded is not None and mine_th != [float(t) for t in recorded]:
            problems.append(f"{key}: SNN-BP thresholds {[round(t, 3) for t in mine_th]}, 01_models recorded "
                            f"{[round(float(t), 3) for t in recorded]}")
    return problems


def check_recorded_models(results_dir: Union[str, os.PathLike], params: Mapping[str, Any],
                          model_sets: Sequence[Any]) -> None:
    """Raise :class:`ModelMismatch` when :func:`recorded_model_problems` finds any: this chapter's numbers would not
    be from the training run the folder's other chapters used (another kind of CPU, GPU or thread count trains other
    weights from the same recipe and seed)."""
    problems = recorded_model_problems(results_dir, params, model_sets)
    if problems:
        raise ModelMismatch(
            f"the models trained here differ from those {Path(results_dir) / '01_models.json'} recorded with the same "
            f"recipe ({'; '.join(problems)}): this machine trains other weights (another kind of CPU, GPU or torch "
            "thread count), so this chapter's numbers would not belong with the folder's others. Re-run the whole "
            "profile here (01_models first), or write this run into another results folder (--results-dir).")
