"""Run profiles for the study: load ``profiles.yaml``, validate it, merge overrides.

A *profile* fixes every parameter of every notebook of the book:

* ``smoke``  - tiny sizes, each notebook runs in under 2 minutes on a 2-core CPU (CI);
* ``laptop`` - the real CIFAR-10 subset shipped with the project, about 2 hours on a 2-core CPU;
* ``paper``  - full CIFAR-10 with the papers' timesteps, epochs and models (for a GPU).

The file ``snnlib/profiles.yaml`` holds, for each profile, a ``common`` block (the parameters
every notebook receives) and a ``notebooks`` block (per-notebook extras, e.g. ``T_list`` for
``02_discretization``; a notebook block may also override a common parameter).  Everything is
validated on load against :data:`KNOWN_PARAMS`; any problem raises one :class:`ProfileError` that
names the profile, the key, the value found and what is allowed.

>>> prof = load_profile("smoke", {"T_bp": 12})
>>> prof["notebooks"]["02_discretization"]["T_list"]
[6, 8]
>>> prof["notebooks"]["03_leak"]["T_bp"]
12

Beyond each parameter's own type and range, :func:`meaning_checks` refuses values that cannot mean anything for the
study (timesteps too short for any spike to reach the output, more images than the data source holds, a PGD step far
above the largest budget), and :func:`cost_units` is the rough cost model the runner scales its time estimate with.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    "NOTEBOOKS",
    "ATTACKING_NOTEBOOKS",
    "KNOWN_PARAMS",
    "NOTEBOOK_EXTRAS",
    "REQUIRED_EXTRAS",
    "RUNNER_PARAMS",
    "PROFILES_PATH",
    "ProfileError",
    "Param",
    "available_profiles",
    "load_profiles_file",
    "load_profile",
    "validate_overrides",
    "notebook_params",
    "parameters_cell_source",
    "ADDED_LATER",
    "recorded_params",
    "pipeline_checks",
    "meaning_checks",
    "data_problems",
    "cost_units",
    "training_cost_units",
    "resolve_notebook",
]

#: Notebooks of the book, in execution order (file stems inside ``book/``).
NOTEBOOKS: tuple[str, ...] = (
    "01_models",
    "02_discretization",
    "03_leak",
    "04_training_method",
    "05_attack_source",
    "06_gradient_masking",
    "07_summary",
)

#: The notebooks that craft adversarial examples (they take the memory setting ``attack_batch``).
ATTACKING_NOTEBOOKS: tuple[str, ...] = ("02_discretization", "03_leak", "04_training_method", "05_attack_source",
                                        "06_gradient_masking")

#: Parameters the runner adds itself (not settable in a profile or with ``-p``).
RUNNER_PARAMS: tuple[str, ...] = ("profile", "results_dir")

#: Default location of the profiles file.
PROFILES_PATH = Path(__file__).with_name("profiles.yaml")

# Keys allowed at the top of one profile.
_PROFILE_KEYS = ("description", "estimate_s", "estimate_machine", "common", "notebooks")

#: Seeds are non-negative and below 2**63 (``snnlib.seeding.derive_seed`` and ``torch.Generator.manual_seed``).
SEED_LIMIT = 2 ** 63

#: ``pgd_alpha`` may be at most this many times the largest ``eps_list`` budget.
PGD_ALPHA_MAX_RATIO = 2.0


class ProfileError(ValueError):
    """A profile (or an override of it) is invalid.  The message lists every problem found."""


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Internal: a value does not fit a parameter's type/range."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(float(v)))


def _int_check(lo: int | None = None, hi: int | None = None) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not _is_int(v):
            raise _Invalid
        if lo is not None and v < lo:
            raise _Invalid
        if hi is not None and v > hi:
            raise _Invalid
        return v
    return check


def _float_check(lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], Any]:
    """A real number; ints are accepted and converted to float (``1`` -> ``1.0``)."""
    def check(v: Any) -> Any:
        if not _is_number(v):
            raise _Invalid
        v = float(v)
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise _Invalid
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise _Invalid
        return v
    return check


def _number_check(lo: float | None = None, hi: float | None = None,
                  lo_open: bool = False) -> Callable[[Any], Any]:
    """A real number kept as given (an int stays an int, e.g. ``eps=8``)."""
    def check(v: Any) -> Any:
        if not _is_number(v):
            raise _Invalid
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise _Invalid
        if hi is not None and v > hi:
            raise _Invalid
        return v
    return check


def _choice_check(*options: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, str) or v not in options:
            raise _Invalid
        return v
    return check


def _bool_check(v: Any) -> Any:
    if not isinstance(v, bool):
        raise _Invalid
    return v


def _str_check(v: Any) -> Any:
    if not isinstance(v, str) or not v.strip():
        raise _Invalid
    return v


def _surrogate_check(v: Any) -> Any:
    """A surrogate name registered in ``snnlib.neurons.SURROGATES``."""
    from ..neurons import SURROGATES
    v = _str_check(v)
    if v not in SURROGATES:
        raise _Invalid
    return v


def _optional(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)
    return check


def _list_check(elem: Callable[[Any], Any], min_len: int = 1,
                unique: bool = False) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, (list, tuple)) or len(v) < min_len:
            raise _Invalid
        out = [elem(x) for x in v]
        if unique and len({repr(x) for x in out}) != len(out):
            raise _Invalid
        return out
    return check


@dataclass(frozen=True)
class Param:
    """Schema entry for one parameter."""

    name: str
    type: str                       #: short type name, e.g. ``"int"``, ``"list[int]"``
    allowed: str                    #: human-readable allowed values (used in error messages)
    doc: str                        #: meaning and unit (no '=': papermill parses the comment)
    check: Callable[[Any], Any]     #: returns the normalised value or raises ``_Invalid``
    notebooks: tuple[str, ...] | None = None  #: ``None``: common to every notebook
    optional: bool = False          #: a profile's notebook block and a parameters cell may leave it out (= null)

    @property
    def common(self) -> bool:
        return self.notebooks is None

    def validate(self, value: Any) -> Any:
        """Return the normalised value or raise ``ValueError`` with the allowed values."""
        try:
            return self.check(value)
        except (_Invalid, TypeError, ValueError):
            raise ValueError(f"got {_show(value)}; allowed: {self.allowed}") from None


def _p(name: str, type_: str, allowed: str, doc: str, check: Callable[[Any], Any],
       notebooks: Sequence[str] | None = None, optional: bool = False) -> Param:
    return Param(name, type_, allowed, doc, check,
                 None if notebooks is None else tuple(notebooks), optional)


_PARAM_LIST = [
    # ---- common to every notebook ----------------------------------------------------------
    _p("dataset", "str", "one of 'cifar10', 'cifar100'", "dataset",
       _choice_check("cifar10", "cifar100")),
    _p("data_source", "str", "one of 'auto', 'subset', 'torchvision'",
       "where images come from: shipped real subset, torchvision files, or auto (torchvision "
       "if present, else subset)", _choice_check("auto", "subset", "torchvision")),
    _p("data_dir", "str or null", "a non-empty string (path) or null",
       "dataset folder (null: the project's default)", _optional(_str_check)),
    _p("arch", "str", "one of 'vgg5', 'vgg9', 'vgg11'", "network architecture",
       _choice_check("vgg5", "vgg9", "vgg11")),
    _p("n_train", "int", "an integer >= 1", "training images used", _int_check(1)),
    _p("n_test", "int", "an integer >= 1", "test images used for clean accuracy",
       _int_check(1)),
    _p("batch_size", "int", "an integer >= 1", "mini-batch size (images)", _int_check(1)),
    _p("epochs_ann", "int", "an integer >= 0", "ANN training epochs", _int_check(0)),
    _p("epochs_snn", "int", "an integer >= 1 (with 0 epochs 'SNN-BP' would be the converted SNN with thresholds "
       "scaled by threshold_scale_bp, not BPTT-trained: nothing to compare conversion with; its accuracy-matched "
       "ANN also needs its validation accuracy)",
       "maximum SNN (surrogate-gradient BPTT) training epochs (fewer when the validation accuracy stops improving)",
       _int_check(1)),
    _p("patience", "int", "an integer >= 1",
       "SNN-BP early stopping: stop after this many epochs without a better validation accuracy, keeping the "
       "best epoch's weights", _int_check(1)),
    _p("val_images", "int", "an integer >= 1 and < n_train",
       "training images held out (seeded draw, the same for every model seed) as the validation split: the "
       "ANN's accuracy per epoch and SNN-BP's early stopping; the models train on the other n_train - val_images",
       _int_check(1)),
    _p("ann_schedule", "str", "one of 'step', 'cosine'",
       "ANN learning-rate schedule: step (the papers': lr / 10 at 60, 80 and 90 % of the epochs) or cosine",
       _choice_check("step", "cosine")),
    _p("ann_lr", "float", "a number > 0", "ANN base learning rate (SGD, momentum 0.9, weight decay 5e-4)",
       _float_check(0.0, lo_open=True)),
    _p("ann_warmup_epochs", "int", "an integer >= 0 and < epochs_ann (or 0)",
       "ANN epochs of linear learning-rate warm-up before the schedule (0: none, as in the papers)",
       _int_check(0)),
    _p("ann_nesterov", "bool", "true or false", "Nesterov momentum in the ANN's SGD (the papers: false)",
       _bool_check),
    _p("label_smoothing", "float", "a number in [0, 1)",
       "label smoothing of the ANN's training cross-entropy (0: none, as in the papers; SNN-BP: none)",
       _float_check(0.0, 1.0, hi_open=True)),
    _p("ann_checkpoint_every", "int", "an integer >= 1",
       "keep the ANN's weights after every this many epochs (and the last) for the accuracy-matched ANN "
       "(VGG5: 39 MB each)", _int_check(1)),
    _p("T_conv", "int", "an integer >= 1, more than arch's spiking layers (vgg5: >= 6)",
       "timesteps of the ANN-to-SNN converted network",
       _int_check(1)),
    _p("T_bp", "int", "an integer >= 1, more than arch's spiking layers (vgg5: >= 6)",
       "timesteps of the BPTT-trained SNN", _int_check(1)),
    _p("leak_bp", "float", "a number in (0, 1]",
       "membrane leak factor lambda of the BPTT SNN; 1.0 means no leak (IF)",
       _float_check(0.0, 1.0, lo_open=True)),
    _p("threshold_scale_bp", "float", "a number > 0",
       "scale applied to the converted thresholds before BPTT fine-tuning (Rathi: 0.7)",
       _float_check(0.0, lo_open=True)),
    _p("balance_T", "int", "an integer >= 1, more than arch's spiking layers (vgg5: >= 6)",
       "timesteps used for threshold balancing during conversion", _int_check(1)),
    _p("balance_images", "int", "an integer >= 1",
       "training images used for threshold balancing", _int_check(1)),
    _p("model_seeds", "list[int]", "a list of >= 2 distinct integers in [0, 2**63)",
       "training seeds: [white-box target, black-box twin]",
       _list_check(_int_check(0, SEED_LIMIT - 1), min_len=2, unique=True)),
    _p("eval_seed", "int", "an integer in [0, 2**63)", "seed of the evaluation's Poisson draws (scoring only)",
       _int_check(0, SEED_LIMIT - 1)),
    _p("attack_seed", "int", "an integer in [0, 2**63)",
       "seed of the attacks' randomness (random starts, noise, the encoder and dropout while crafting)",
       _int_check(0, SEED_LIMIT - 1)),
    _p("eval_draws", "int", "an integer >= 1 (odd, so the majority vote has no ties)",
       "Poisson draws each image is scored over (mean correctness and majority vote)", _int_check(1)),
    _p("equivalence_margin", "number", "a number in (0, 100)",
       "margin (accuracy points) within which two models count as equivalent (TOST), fixed before the run",
       _number_check(0, 100, lo_open=True)),
    _p("eps_list", "list[number]", "a non-empty list of numbers in (0, 255] (a budget of 0 is no attack: clean "
       "accuracy is measured on its own)",
       "attack budgets epsilon, in 1/255 units of the [0,1] pixel range",
       _list_check(_number_check(0, 255, lo_open=True))),
    _p("pgd_steps", "int", "an integer >= 1", "PGD iterations", _int_check(1)),
    _p("pgd_alpha", "number", "a number > 0 and <= 2 x the largest eps_list budget", "PGD step size, in 1/255 units",
       _number_check(0, lo_open=True)),
    _p("device", "str", "one of 'cpu', 'cuda', 'auto'",
       "torch device (auto: cuda if available)", _choice_check("cpu", "cuda", "auto")),
    _p("attack_images", "int", "an integer >= 1", "test images attacked", _int_check(1)),
    _p("snn_conv_images", "int|null", "an integer >= 1 or null",
       "attack images used by the cells where SNN-conv crafts or is scored, the leading part of the sample; "
       "null uses all of them", _optional(_int_check(1))),
    _p("sample_seed", "int|null", "an integer in [0, 2**63) or null",
       "seed of the random order in which test images are attacked, a smaller sample being the start of a larger "
       "one; null keeps the first test images",
       _optional(_int_check(0, SEED_LIMIT - 1))),
    # ---- per-notebook extras -------------------------------------------------------------
    _p("T_list", "list[int]", "a non-empty list of integers >= 1, each more than arch's spiking layers (vgg5: >= 6)",
       "timesteps swept for the discretisation study", _list_check(_int_check(1)),
       ["02_discretization"]),
    _p("T_bp_trained", "list[int]", "a list (possibly empty) of distinct integers, each more than arch's spiking layers "
       "(vgg5: >= 6) and other than T_bp to test E6b",
       "timesteps at which SNN-BP is also fine-tuned from the same converted network (E6b: the one trained at fewer "
       "timesteps vs the one trained at more, next to the inference-time T sweep); [] trains none",
       _list_check(_int_check(1), min_len=0, unique=True), ["02_discretization"]),
    _p("quant_bits", "list[int|null]", "a non-empty list of integers in 1..8 or null "
       "(null = no input quantisation)", "input quantisation bit depths swept",
       _list_check(_optional(_int_check(1, 8))), ["02_discretization"]),
    _p("leak_list", "list[float]", "a non-empty list of numbers in (0, 1]",
       "leak factors swept; 1.0 means no leak (IF)",
       _list_check(_float_check(0.0, 1.0, lo_open=True)), ["03_leak"]),
    _p("target_seeds", "str", "one of 'first', 'both'",
       "white-box targets: 'first' (the first seed's models; the second only as black-box source) or 'both' "
       "(each seed a target and the other's source: two replicates)", _choice_check("first", "both"),
       ["04_training_method", "05_attack_source"]),
    _p("attack_batch", "int|null", "an integer >= 1 or null",
       "images an attack crafts at once (null: all attack images in one batch); BPTT memory grows with it x T; an "
       "ANN source crafts the examples of one batch (the random start continues one stream), a Poisson-coded SNN "
       "source draws its spikes batch by batch: other draws of the same attack; a notebook may leave it out (null)",
       _optional(_int_check(1)), ATTACKING_NOTEBOOKS, optional=True),
    _p("other_attacks", "list[str]", "a list (possibly empty) of distinct names among 'rfgsm', 'bim'",
       "the IJCNN paper's other attacks (R-FGSM, BIM), run next to FGSM and PGD on other_attack_images images",
       _list_check(_choice_check("rfgsm", "bim"), min_len=0, unique=True), ["05_attack_source"]),
    _p("other_attack_images", "int|null", "an integer >= 1 or null",
       "images the other_attacks use, the leading part of the attack images (cells with SNN-conv: at most "
       "snn_conv_images); null uses as many as FGSM and PGD", _optional(_int_check(1)), ["05_attack_source"]),
    _p("compare_with", "list[str]", "a list (possibly empty) of distinct results-folder paths",
       "other runs' results folders (relative to the repository root) whose verdicts the summary shows beside this "
       "run's, claim by claim: the same profile run on another machine, or a larger run",
       _list_check(_str_check, min_len=0, unique=True), ["07_summary"]),
    _p("eot_samples", "int", "an integer >= 1",
       "Expectation-over-Transformation samples per gradient", _int_check(1),
       ["06_gradient_masking"]),
    _p("long_pgd_steps", "int", "an integer >= 1", "iterations of the long PGD sanity check",
       _int_check(1), ["06_gradient_masking"]),
    _p("restarts", "int", "an integer >= 1", "random restarts of the long PGD",
       _int_check(1), ["06_gradient_masking"]),
    _p("surrogates", "list[str]", "a non-empty list of distinct surrogate names registered in "
       "snnlib.neurons.SURROGATES (linear, fast_sigmoid, arctan, rectangle)",
       "surrogate-gradient functions compared for the attack",
       _list_check(_surrogate_check, unique=True), ["06_gradient_masking"]),
    _p("adaptive_images", "int", "an integer >= 1 and <= attack_images",
       "audit images: the full adaptive suite on each (the first of the attack images); the cascade covers every "
       "attack image", _int_check(1),
       ["06_gradient_masking"]),
    _p("apgd_steps", "int", "an integer >= 0",
       "iterations of APGD-CE and APGD-DLR (torchattacks; with EOT over eot_samples draws on the SNNs); 0: not run",
       _int_check(0), ["06_gradient_masking"]),
    _p("square_queries", "int", "an integer >= 0",
       "queries of the gradient-free Square attack (torchattacks), the last stage before the transfers; 0: not run",
       _int_check(0), ["06_gradient_masking"]),
    _p("large_eps", "list[number]", "a list of numbers in (0, 255]",
       "extra large budgets (in 1/255) for the does-accuracy-reach-zero check",
       _list_check(_number_check(0, 255, lo_open=True)), ["06_gradient_masking"]),
]

#: Schema of every settable parameter: name -> :class:`Param`.
KNOWN_PARAMS: dict[str, Param] = {p.name: p for p in _PARAM_LIST}

#: Names of the parameters every notebook receives.
COMMON_PARAMS: tuple[str, ...] = tuple(p.name for p in _PARAM_LIST if p.common)

#: Per notebook stem: the names of its extra parameters.
NOTEBOOK_EXTRAS: dict[str, tuple[str, ...]] = {
    nb: tuple(p.name for p in _PARAM_LIST if p.notebooks and nb in p.notebooks)
    for nb in NOTEBOOKS
}

#: Per notebook stem: the extra parameters it must be given (the optional ones may be left out: they mean null).
REQUIRED_EXTRAS: dict[str, tuple[str, ...]] = {
    nb: tuple(k for k in extras if not KNOWN_PARAMS[k].optional) for nb, extras in NOTEBOOK_EXTRAS.items()
}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _show(v: Any) -> str:
    """Render a value for an error message: value and its YAML-ish type."""
    kind = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str",
            list: "list", tuple: "list", dict: "mapping"}.get(type(v), type(v).__name__)
    r = repr(v)
    if len(r) > 80:
        r = r[:77] + "..."
    return f"{r} ({kind})"


def did_you_mean(name: Any, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt ``name``; "" when none is close."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve_notebook(name: str, notebooks: Sequence[str] = NOTEBOOKS) -> str:
    """Map a user-given notebook name to its stem.

    Accepts the stem (``02_discretization``), the name without number (``discretization``),
    the number (``02`` or ``2``) or a path (``book/02_discretization.ipynb``).
    Raises ``ValueError`` listing the valid names otherwise.
    """
    raw = name
    name = os.path.basename(name.strip())
    if name.endswith(".ipynb"):
        name = name[: -len(".ipynb")]
    if name in notebooks:
        return name
    hits = [nb for nb in notebooks if nb.split("_", 1)[-1] == name]
    if not hits and name.isdigit():
        hits = [nb for nb in notebooks if nb.split("_", 1)[0].isdigit()
                and int(nb.split("_", 1)[0]) == int(name)]
    if len(hits) == 1:
        return hits[0]
    raise ValueError(f"unknown notebook {raw!r}{did_you_mean(name, notebooks)}; "
                     f"valid: {', '.join(notebooks)} (or without the number prefix)")


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


def load_profiles_file(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read and validate the whole profiles file; return ``{profile_name: raw_profile}``."""
    import yaml

    path = Path(path) if path is not None else PROFILES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ProfileError(f"cannot read profiles file {path}: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ProfileError(f"{path}: expected a top-level mapping 'profiles: {{name: ...}}'")
    extra = sorted(set(data) - {"profiles"})
    if extra:
        raise ProfileError(f"{path}: unknown top-level key(s) {extra}; allowed: ['profiles']")
    profiles = data["profiles"]
    errors: list[str] = []
    for name, raw in profiles.items():
        _validate_raw_profile(str(name), raw, errors)
    if errors:
        raise ProfileError(f"invalid profiles file {path}:\n  " + "\n  ".join(errors))
    return profiles


def available_profiles(path: str | os.PathLike | None = None) -> dict[str, str]:
    """``{name: description}`` of the profiles in the file."""
    return {n: str(p.get("description", "")).strip()
            for n, p in load_profiles_file(path).items()}


def _validate_raw_profile(name: str, raw: Any, errors: list[str]) -> None:
    where = f"profile {name!r}"
    if not isinstance(raw, dict):
        errors.append(f"{where}: expected a mapping, got {_show(raw)}")
        return
    for k in raw:
        if k not in _PROFILE_KEYS:
            errors.append(f"{where}, key {k!r}: unknown key{did_you_mean(k, _PROFILE_KEYS)}; "
                          f"allowed: {', '.join(_PROFILE_KEYS)}")
    if "description" in raw and not isinstance(raw["description"], str):
        errors.append(f"{where}, key 'description': got {_show(raw['description'])}; "
                      "allowed: a string")
    if "estimate_machine" in raw and not (isinstance(raw["estimate_machine"], str) and raw["estimate_machine"].strip()):
        errors.append(f"{where}, key 'estimate_machine': got {_show(raw['estimate_machine'])}; allowed: the CPU name "
                      "the estimates were measured on, as /proc/cpuinfo gives it (e.g. 'AMD EPYC')")
    # estimate_s: a number (every notebook) or {stem|default: seconds}
    est = raw.get("estimate_s", None)
    if est is not None:
        if isinstance(est, dict):
            for k, v in est.items():
                if k != "default" and k not in NOTEBOOKS:
                    errors.append(f"{where}, key 'estimate_s.{k}': unknown notebook"
                                  f"{did_you_mean(k, NOTEBOOKS)}; allowed: default, "
                                  + ", ".join(NOTEBOOKS))
                elif not _is_number(v) or v < 0:
                    errors.append(f"{where}, key 'estimate_s.{k}': got {_show(v)}; "
                                  "allowed: a number of seconds >= 0")
        elif not _is_number(est) or est < 0:
            errors.append(f"{where}, key 'estimate_s': got {_show(est)}; allowed: a number "
                          "of seconds >= 0 or a mapping {notebook: seconds}")
    # common block
    common = raw.get("common")
    if not isinstance(common, dict):
        errors.append(f"{where}, key 'common': got {_show(common)}; allowed: a mapping of "
                      "the common parameters")
        common = {}
    for k, v in common.items():
        _check_param(where, f"common.{k}", k, v, errors, allow=COMMON_PARAMS)
    missing = [k for k in COMMON_PARAMS if k not in common]
    if missing:
        errors.append(f"{where}, key 'common': missing parameter(s) {', '.join(missing)}")
    # notebook blocks
    nbs = raw.get("notebooks") or {}
    if not isinstance(nbs, dict):
        errors.append(f"{where}, key 'notebooks': got {_show(nbs)}; allowed: a mapping "
                      "{notebook: {parameter: value}}")
        nbs = {}
    for nb, block in nbs.items():
        if nb not in NOTEBOOKS:
            errors.append(f"{where}, key 'notebooks.{nb}': unknown notebook"
                          f"{did_you_mean(nb, NOTEBOOKS)}; allowed: {', '.join(NOTEBOOKS)}")
            continue
        block = block or {}
        if not isinstance(block, dict):
            errors.append(f"{where}, key 'notebooks.{nb}': got {_show(block)}; allowed: a "
                          "mapping {parameter: value}")
            continue
        for k, v in block.items():
            _check_param(where, f"notebooks.{nb}.{k}", k, v, errors,
                         allow=COMMON_PARAMS + NOTEBOOK_EXTRAS[nb])
    for nb in NOTEBOOKS:
        block = nbs.get(nb) or {}
        if isinstance(block, dict):
            miss = [k for k in REQUIRED_EXTRAS[nb] if k not in block]
            if miss:
                errors.append(f"{where}, key 'notebooks.{nb}': missing parameter(s) "
                              f"{', '.join(miss)}")
    # cross-field checks, per notebook (after merge)
    if not errors:
        _grouped_checks(where, {nb: _merge(raw, nb) for nb in NOTEBOOKS}, errors)


def _check_param(where: str, key: str, name: Any, value: Any, errors: list[str],
                 allow: Sequence[str]) -> Any:
    if name in RUNNER_PARAMS:
        errors.append(f"{where}, key {key!r}: {name!r} is set by the runner, not by a profile")
        return None
    if name not in allow:
        spec = KNOWN_PARAMS.get(name)
        if spec is not None and spec.notebooks:
            hint = f" ({name!r} belongs to notebook(s) {', '.join(spec.notebooks)})"
        else:
            hint = did_you_mean(name, list(KNOWN_PARAMS))
        errors.append(f"{where}, key {key!r}: unknown parameter{hint}; allowed here: "
                      + ", ".join(allow))
        return None
    try:
        return KNOWN_PARAMS[name].validate(value)
    except ValueError as e:
        errors.append(f"{where}, key {key!r}: {e}")
        return None


def cross_checks(where: str, nb: str, p: Mapping[str, Any], errors: list[str]) -> None:
    """Every check between parameters of one notebook (``p``: its validated parameters); each problem found is
    appended to ``errors`` as a message that starts with ``where``."""
    meaning_checks(p, errors, f"{where}, notebook {nb}")
    if _has(p, "val_images", "n_train", "balance_images", "ann_warmup_epochs", "epochs_ann"):
        pipeline_checks(p, errors, f"{where}, notebook {nb}")


def _grouped_checks(where: str, nbs: Mapping[str, Mapping[str, Any]], errors: list[str]) -> None:
    """:func:`cross_checks` of every notebook, one message per problem naming the notebooks it concerns (a
    common parameter's problem is reported once, not once per notebook)."""
    found: dict[str, list[str]] = {}
    for nb, p in nbs.items():
        errs: list[str] = []
        cross_checks("\0", nb, p, errs)
        for m in errs:
            m = m.split(": ", 1)[1] if m.startswith("\0") else m
            found.setdefault(m, []).append(nb)
    for m, which in found.items():
        scope = ("every notebook" if len(which) == len(NOTEBOOKS) else
                 f"notebook{'s' if len(which) > 1 else ''} {', '.join(which)}")
        errors.append(f"{where}, {scope}: {m}")


def _has(p: Mapping[str, Any], *keys: str) -> bool:
    return all(k in p and p[k] is not None for k in keys)


def meaning_checks(p: Mapping[str, Any], errors: list[str], where: str) -> None:
    """Refuse values that are valid one by one but cannot mean anything together (checks whose parameters are
    absent from ``p`` are skipped):

    * ``attack_images <= n_test`` and ``adaptive_images <= attack_images``;
    * every timestep count (``T_conv``, ``T_bp``, ``balance_T``, each ``T_list`` entry) exceeds the number of spiking
      layers of ``arch`` (:func:`snnlib.models.spiking_layers`): with the released code's one-step-per-layer delay
      no spike reaches the output before then, so the logits are identically zero;
    * ``pgd_alpha <= 2 x max(eps_list)`` (a larger step jumps to the corners of the budget at every step);
    * ``n_train`` / ``n_test`` within the images the data source holds (the shipped subset's sizes for
      ``data_source: subset``, the full set's for ``torchvision`` and ``auto``; which one ``auto`` uses is only known
      once the data folder is looked at: :func:`data_problems`).
    """
    if _has(p, "attack_images", "n_test") and p["attack_images"] > p["n_test"]:
        errors.append(f"{where}: attack_images={p['attack_images']} exceeds n_test={p['n_test']}; allowed: "
                      "attack_images <= n_test (attacked images are taken from the evaluated test images)")
    if _has(p, "adaptive_images", "attack_images") and p["adaptive_images"] > p["attack_images"]:
        errors.append(f"{where}: adaptive_images={p['adaptive_images']} exceeds attack_images="
                      f"{p['attack_images']}; allowed: adaptive_images <= attack_images (the adaptive attacks use "
                      "the first of the attack images)")
    if _has(p, "arch"):
        from ..models import spiking_layers
        try:
            d = spiking_layers(p["arch"])
        except ValueError:
            d = None
        if d is not None:
            why = (f"{p['arch']} has {d} spiking layers and, with the released code's one-step-per-layer delay, no "
                   f"spike reaches the output before step {d + 1}: the output is identically zero for T <= {d}")
            for k in ("T_conv", "T_bp", "balance_T"):
                if _has(p, k) and p[k] <= d:
                    errors.append(f"{where}: {k}={p[k]} is too short: {why}; allowed: {k} >= {d + 1} for "
                                  f"{p['arch']}")
            for key in ("T_list", "T_bp_trained"):
                if _has(p, key):
                    short = [t for t in p[key] if t <= d]
                    if short:
                        errors.append(f"{where}: {key}={list(p[key])} has {short} <= {d}: {why}; allowed: every "
                                      f"{key} entry >= {d + 1} for {p['arch']}")
    if _has(p, "pgd_alpha", "eps_list") and p["eps_list"]:
        top = max(p["eps_list"])
        if p["pgd_alpha"] > PGD_ALPHA_MAX_RATIO * top:
            errors.append(f"{where}: pgd_alpha={p['pgd_alpha']} (/255) is more than {PGD_ALPHA_MAX_RATIO:g} x the "
                          f"largest budget of eps_list={list(p['eps_list'])}: every PGD step would jump to a corner "
                          f"of the budget; allowed: pgd_alpha <= {PGD_ALPHA_MAX_RATIO * top:g}")
    if _has(p, "dataset", "data_source"):
        for key, split in (("n_train", "train"), ("n_test", "test")):
            if not _has(p, key):
                continue
            limit, what = _image_limit(p["dataset"], p["data_source"], split)
            if limit is not None and p[key] > limit:
                errors.append(f"{where}: {key}={p[key]} exceeds the {limit} {split} images of {what}; allowed: "
                              f"{key} <= {limit}{_more_images_hint(p['dataset'], p['data_source'], split)}")


def _image_limit(dataset: str, source: str, split: str) -> tuple[int | None, str]:
    """(images available, what holds them) for a data source; (None, "") when unknown (missing subset files: the
    loader reports that)."""
    from .. import data as D
    spec = D._SPECS.get(dataset)
    if spec is None:
        return None, ""
    if source == "subset":
        try:
            return D.subset_size(dataset, split), f"the shipped {spec['title']} subset"
        except D.DataError:
            return None, ""
    return spec["total"][split], f"the full {spec['title']} {split} set"


def _more_images_hint(dataset: str, source: str, split: str) -> str:
    from .. import data as D
    spec = D._SPECS.get(dataset)
    if spec is None or source != "subset":
        return ""
    return (f" (for up to {spec['total'][split]} put the official '{spec['folder']}' folder in data_dir and use "
            "data_source: torchvision)")


def data_problems(p: Mapping[str, Any], base: str | os.PathLike | None = None) -> list[str]:
    """What locating the data reveals about ``p`` (dataset, data_source, data_dir, n_train, n_test), as messages.

    ``data_dir`` (relative paths resolved against ``base``, default the current folder) must be an existing folder
    when given; ``data_source: torchvision`` needs the official files there; ``auto`` uses them when present and
    the shipped subset otherwise, whose size then bounds ``n_train`` and ``n_test``.  Looks at file names only.
    """
    from .. import data as D
    out: list[str] = []
    if not _has(p, "dataset", "data_source") or p["dataset"] not in D._SPECS:
        return out
    spec = D._SPECS[p["dataset"]]
    raw = p.get("data_dir")
    if raw is not None:
        folder = Path(raw).expanduser()
        if base is not None and not folder.is_absolute():
            folder = Path(base) / folder
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            out.append(f"data_dir {raw!r} ({os.path.abspath(folder)}) {what}; give the folder that holds "
                       f"'{spec['folder']}' (relative paths are relative to the current folder), or data_dir=null for "
                       f"the default ({D.ENV_VAR} or {D.DEFAULT_DATA_DIR})")
            return out
    else:
        folder = D.resolve_data_dir(None)
    source = p["data_source"]
    if source == "subset":
        return out
    full = D.full_copy_available(p["dataset"], folder)
    if source == "torchvision" and not full:
        out.append(f"data_source 'torchvision' needs the official '{spec['folder']}' folder in {folder}, and it is "
                   f"not there (or incomplete); put it there (--data-dir DIR / -p data_dir=DIR), or use -p "
                   f"data_source=subset for the shipped subset")
    if source == "auto" and not full:
        for key, split in (("n_train", "train"), ("n_test", "test")):
            if not _has(p, key):
                continue
            try:
                limit = D.subset_size(p["dataset"], split)
            except D.DataError:
                continue
            if p[key] > limit:
                out.append(f"{key}={p[key]} exceeds the {limit} {split} images of the shipped {spec['title']} "
                           f"subset, which data_source 'auto' uses because no full copy ('{spec['folder']}') is in "
                           f"{folder}; allowed: {key} <= {limit}, or put the official files there (--data-dir DIR)")
    return out


def pipeline_checks(p: Mapping[str, Any], errors: list[str], where: str) -> None:
    """Cross-field checks of the model pipeline's parameters (also run by ``pipeline.build_models``)."""
    if p["val_images"] >= p["n_train"]:
        errors.append(f"{where}: val_images={p['val_images']} leaves no training image of "
                      f"n_train={p['n_train']}; allowed: val_images < n_train")
    elif p["balance_images"] > p["n_train"] - p["val_images"]:
        errors.append(f"{where}: balance_images={p['balance_images']} exceeds the "
                      f"{p['n_train'] - p['val_images']} training images left after val_images="
                      f"{p['val_images']}; allowed: balance_images <= n_train - val_images")
    if p["ann_warmup_epochs"] and p["ann_warmup_epochs"] >= p["epochs_ann"]:
        errors.append(f"{where}: ann_warmup_epochs={p['ann_warmup_epochs']} leaves no epoch after the warm-up "
                      f"of epochs_ann={p['epochs_ann']}; allowed: ann_warmup_epochs < epochs_ann (or 0)")


# --------------------------------------------------------------------------------------------
# Rough cost model (scales the runner's time estimates)
# --------------------------------------------------------------------------------------------


def training_cost_units(p: Mapping[str, Any]) -> float:
    """Rough cost of training the models of both seeds (see :func:`cost_units` for the unit): the ANN's epochs,
    threshold balancing (each spiking layer on its own pass) and SNN-BP's epochs at ``T_bp``."""
    from ..models import spiking_layers
    n_val = float(p["val_images"])
    n_fit = max(float(p["n_train"]) - n_val, 1.0)
    per_epoch = 3.0 * n_fit + n_val                      # forward + backward on the fit images, forward on val
    try:
        layers = spiking_layers(p["arch"])
    except (KeyError, ValueError):
        layers = 5
    ann = p["epochs_ann"] * per_epoch
    balance = float(p["balance_images"]) * p["balance_T"] * layers
    bp = p["epochs_snn"] * per_epoch * p["T_bp"]
    return 2.0 * (ann + balance + bp)


#: parameters added after earlier runs were recorded, with the value that means "that work was not done": a record
#: without them (a run from before they existed) is costed as not doing it (:func:`recorded_params`)
ADDED_LATER = {"other_attacks": [], "T_bp_trained": []}


def recorded_params(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a recorded run used, completed for the cost model: its own values for the keys of
    ``current`` (this plan's notebook parameters) it has, :data:`ADDED_LATER` values for those it predates, and
    ``current``'s values for the rest."""
    out = dict(current)
    out.update({k: v for k, v in ADDED_LATER.items() if k in current and k not in recorded})
    out.update({k: v for k, v in recorded.items() if k in current})
    return out


def main_eps(params: Mapping[str, Any]) -> float:
    """The headline budget in 1/255 units: 8 (the released code's default) when swept, else the middle of
    eps_list."""
    eps = list(params["eps_list"])
    return 8.0 if 8 in eps else float(sorted(eps)[len(eps) // 2])


def cost_units(nb: str, p: Mapping[str, Any]) -> float:
    """A rough cost of notebook ``nb`` under parameters ``p``, in units of one image through the network for one
    timestep (an ANN forward pass is 1, an SNN's at T timesteps T, a backward pass twice its forward).

    Only ratios are used: the runner multiplies a notebook's estimate (measured or the profile's) by
    ``cost_units(nb, now) / cost_units(nb, then)``.  It counts the work that grows with the parameters (images,
    timesteps, epochs, attack steps, EOT samples, restarts, sweeps) and ignores everything else (start-up,
    caching, data loading, batch-size effects), so it is only good for telling a run far larger than the profile's
    from a normal one.  Training is counted in ``01_models`` (later notebooks load the cached models).
    """
    if nb == "07_summary":
        return 1.0
    D, S = float(p["eval_draws"]), float(p["pgd_steps"])
    E = float(len(p["eps_list"]))
    A = float(p["attack_images"])
    Ac = min(A, float(p["snn_conv_images"])) if p.get("snn_conv_images") is not None else A
    Tb, Tc = float(p["T_bp"]), float(p["T_conv"])
    kinds = ((1.0, A), (Tb, A), (Tc, Ac))                 # (cost of one forward, images) of ANN, SNN-BP, SNN-conv
    targets = 2.0 if p.get("target_seeds") == "both" else 1.0

    def row(f: float, n: float) -> float:                 # clean, FGSM and PGD white-box, PGD from the twin ANN
        return n * (4 * D * f + 3 * f + 3 * S * f + 3 * S)

    if nb == "01_models":
        n = float(p["n_test"])
        return training_cost_units(p) + 2 * n * D * (1 + Tb + Tc) + 7.75 * n * Tc
    if nb == "02_discretization":
        bits = float(len([b for b in p["quant_bits"] if b is not None]))
        trained = [float(T) for T in p.get("T_bp_trained") or []]
        n_fit = max(float(p["n_train"]) - float(p["val_images"]), 1.0)
        retrain = sum(p["epochs_snn"] * (3.0 * n_fit + float(p["val_images"])) * T + row(T, A) for T in trained)
        return (retrain + sum(row(float(T), A) for T in set(p["T_list"]) | {p["T_bp"]})
                + sum(row(float(T), Ac) for T in set(p["T_list"]) | {p["T_conv"]})
                + bits * (row(Tb, A) + row(Tc, Ac)))
    if nb == "03_leak":
        L = float(len(p["leak_list"]))
        return L * row(Tb, A) + 3 * S * A + 2 * A * (1 + Tc + L * Tb)
    if nb == "04_training_method":
        return targets * 2 * E * sum(n * f * (3 + 3 * S + 2 * D) for f, n in kinds)
    if nb == "05_attack_source":
        main = targets * 2 * sum(n * f * (3 + 3 * S + 6 * D) for f, n in kinds)
        limit = p.get("other_attack_images")
        from ..attacks.bim import kurakin_steps
        steps = sum(1.0 if a == "rfgsm" else float(kurakin_steps(main_eps(p) / 255.0))
                    for a in p.get("other_attacks") or [])
        if not steps:
            return main
        others = [(f, n if limit is None else min(n, float(limit))) for f, n in kinds]
        return main + targets * 2 * sum(n * f * (3 * steps + 3 * D * len(p["other_attacks"])) for f, n in others)
    if nb == "06_gradient_masking":
        n = float(p["adaptive_images"])
        L, R, eot = float(p["long_pgd_steps"]), float(p["restarts"]), float(p["eot_samples"])
        extra = E + float(len(p["large_eps"]))
        surr = float(len(p["surrogates"]))
        apgd, queries = float(p.get("apgd_steps", 0)), float(p.get("square_queries", 0))

        def per_image(f: float, spiking: bool) -> float:      # the whole suite on one image of a model of cost f
            if not spiking:
                return 3 * (1 + 2 * S + L * R + 2 * apgd) + queries + 3 * S + 5 * D
            return (3 * f * (1 + S + eot * S + 4 * L * R + (surr - 1) * S + 2 * apgd * eot) + f * queries
                    + 3 * S * (f + 1) + D * f * (8 + surr))

        audit = sum(n * per_image(f, f != 1.0) + n * f * extra * (3 * S + D) for f, _ in kinds)
        # the cascade, every seed: the papers' PGD and scoring on every image, the rest on its survivors (about 1
        # in 10 in the laptop run: half the images are misclassified clean, the papers' PGD fools most others)
        cascade = 2 * sum(k * (f * (3 * S + D) + 0.1 * per_image(f, f != 1.0)) for f, k in kinds)
        return audit + cascade
    return 1.0


def _merge(raw: Mapping[str, Any], nb: str) -> dict[str, Any]:
    """Validated, normalised parameters of notebook ``nb`` (common, then notebook block)."""
    out: dict[str, Any] = {}
    for k in COMMON_PARAMS:
        out[k] = KNOWN_PARAMS[k].validate(copy.deepcopy(raw["common"][k]))
    block = (raw.get("notebooks") or {}).get(nb) or {}
    for k, v in block.items():
        out[k] = KNOWN_PARAMS[k].validate(copy.deepcopy(v))
    return out


def validate_overrides(overrides: Mapping[str, Any] | None,
                       profile: str = "<override>") -> dict[str, Any]:
    """Validate ``{name: value}`` overrides against :data:`KNOWN_PARAMS`; return normalised."""
    errors: list[str] = []
    out: dict[str, Any] = {}
    for k, v in (overrides or {}).items():
        val = _check_param(f"profile {profile!r}", f"-p {k}", k, v, errors,
                           allow=list(KNOWN_PARAMS))
        if not errors:
            out[k] = val
    if errors:
        raise ProfileError("invalid parameter override:\n  " + "\n  ".join(errors)
                           if len(errors) > 1 else errors[0])
    return out


def load_profile(name: str, overrides: Mapping[str, Any] | None = None,
                 path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Load profile ``name`` with ``overrides`` applied, fully validated.

    Returns a dict::

        {"name": "smoke", "description": "...",
         "common": {...common parameters...},
         "notebooks": {"01_models": {...all parameters of that notebook...}, ...},  # in order
         "estimate_s": {"01_models": 60.0, ...},
         "estimate_machine": "AMD EPYC" or None,      # the CPU the estimates were measured on
         "overrides": {...normalised overrides...}}

    An override of a common parameter applies to every notebook (also over a notebook block's
    own value); an override of a notebook extra (e.g. ``T_list``) applies to the notebook(s)
    that have it.  Raises :class:`ProfileError` on any problem.
    """
    profiles = load_profiles_file(path)
    if name not in profiles:
        raise ProfileError(f"unknown profile {name!r}{did_you_mean(name, list(profiles))}; "
                           f"available: {', '.join(profiles)}")
    raw = profiles[name]
    ov = validate_overrides(overrides, profile=name)
    nbs: dict[str, dict[str, Any]] = {}
    for nb in NOTEBOOKS:
        merged = _merge(raw, nb)
        for k, v in ov.items():
            if k in merged or k in NOTEBOOK_EXTRAS[nb]:
                merged[k] = copy.deepcopy(v)
        nbs[nb] = merged
    errors: list[str] = []
    _grouped_checks(f"profile {name!r} (with overrides)", nbs, errors)
    if errors:
        raise ProfileError(errors[0] if len(errors) == 1 else "\n  ".join(["", *errors]))
    common = {k: KNOWN_PARAMS[k].validate(copy.deepcopy(raw["common"][k]))
              for k in COMMON_PARAMS}
    common.update({k: copy.deepcopy(v) for k, v in ov.items() if k in COMMON_PARAMS})
    est = raw.get("estimate_s", 60)
    if isinstance(est, dict):
        default = est.get("default", 60)
        estimate = {nb: float(est.get(nb, default)) for nb in NOTEBOOKS}
    else:
        estimate = {nb: float(est) for nb in NOTEBOOKS}
    return {
        "name": name,
        "description": str(raw.get("description", "")).strip(),
        "common": common,
        "notebooks": nbs,
        "estimate_s": estimate,
        "estimate_machine": str(raw["estimate_machine"]).strip() if raw.get("estimate_machine") else None,
        "overrides": ov,
    }


def notebook_params(name: str, notebook: str,
                    overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All parameters of one notebook (by stem or short name) under profile ``name``."""
    return load_profile(name, overrides)["notebooks"][resolve_notebook(notebook)]


def parameters_cell_source(notebook: str, profile: str = "smoke") -> str:
    """Source of a ``parameters`` cell for ``notebook`` with the profile's values as defaults.

    Notebook authors paste this into the cell tagged ``parameters`` so that
    ``papermill book/<nb>.ipynb out.ipynb -p T_bp 8`` works and the defaults equal the
    smoke profile.
    """
    stem = resolve_notebook(notebook)
    params = notebook_params(profile, stem)
    lines = [f"# Parameters (defaults = the {profile!r} profile; overridden by papermill / "
             "python -m snnlib.study)",
             f"profile = {profile!r}  # name of the run profile",
             f"results_dir = 'results/{profile}'  # where this notebook writes its results JSON"]
    for k, v in params.items():
        lines.append(f"{k} = {v!r}  # {KNOWN_PARAMS[k].doc}")
    return "\n".join(lines) + "\n"
