"""Robustness measurement over the core: predictions, attack evaluation, the worst case, gradient-masking checks.

Depends on the core (models, attacks, stats) only.  Modules: :mod:`~snnlib.robustness.prediction` (predictions
and clean accuracy), :mod:`~snnlib.robustness.evaluation` (one attack on one target, the transfer matrix),
:mod:`~snnlib.robustness.worst_case` (per-image worst case over attacks), :mod:`~snnlib.robustness.masking`
(AutoAttack-style checks for gradient masking).
"""
from .evaluation import RobustnessResult, evaluate_attack, transfer_matrix  # noqa: F401
from .masking import Check, badge, run_checks  # noqa: F401
from .prediction import accuracy, predict  # noqa: F401
from .worst_case import WorstCaseResult, evaluate_worst_case, worst_case  # noqa: F401

__all__ = ["RobustnessResult", "evaluate_attack", "transfer_matrix", "Check", "badge", "run_checks", "accuracy",
           "predict", "WorstCaseResult", "evaluate_worst_case", "worst_case"]
