import pytest

from snnlib.study import chapters as E
from snnlib.study.profiles import ProfileError, notebook_params


def smoke(nb="02_discretization", **changes):
    p = notebook_params("smoke", nb)
    p.update(changes)
    return p


def test_smoke_parameters_are_valid():
    for nb in ("01_models", "02_discretization", "03_leak", "06_gradient_masking"):
        assert E.check_params(nb, smoke(nb))["profile"] == "custom"


@pytest.mark.parametrize("name,value,words", [
    ("arch", "resnet50", ["arch", "vgg5"]),
    ("T_bp", 0, ["T_bp", ">= 1"]),
    ("T_list", [0, 8], ["T_list"]),
    ("leak_bp", 1.5, ["leak_bp"]),
    ("eps_list", ["8", "16"], ["eps_list"]),
    ("n_test", "64", ["n_test"]),
])
def test_bad_parameters_name_the_parameter_and_what_is_allowed(name, value, words):
    with pytest.raises(ProfileError) as e:
        E.check_params("02_discretization", smoke(**{name: value}))
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    assert "allowed" in msg


def test_unknown_parameter_and_cross_check():
    with pytest.raises(ProfileError, match="unknown parameter"):
        E.check_params("02_discretization", smoke(T_typo=3))
    with pytest.raises(ProfileError, match="attack_images"):
        E.check_params("02_discretization", smoke(attack_images=1000))


def test_collect_params_picks_the_notebooks_knobs():
    ns = dict(smoke("03_leak"), profile="smoke", results_dir="r", unrelated=1)
    p = E.collect_params(ns, "03_leak")
    assert "leak_list" in p and "T_list" not in p and "unrelated" not in p
    ns.pop("leak_list")
    with pytest.raises(ProfileError, match="leak_list"):
        E.collect_params(ns, "03_leak")


def test_main_eps_prefers_8():
    assert E.main_eps({"eps_list": [2, 8, 32]}) == 8.0
    assert E.main_eps({"eps_list": [2, 4, 16]}) == 4.0


def test_layer_perturbation_known_answers():
    import math
    import torch
    from snnlib.models import SpikingVGG, build_ann
    torch.manual_seed(0)
    ann = build_ann("vgg5", seed=0)
    x = torch.rand(3, 3, 32, 32)
    same = E.layer_perturbation(ann, x, x)
    assert len(same) == 5 and all(d["mean"] == 0 for d in same)
    moved = E.layer_perturbation(ann, x, (x + 0.1).clamp(0, 1))
    assert all(d["mean"] > 0 and d["low"] <= d["mean"] <= d["high"] for d in moved)
    # an SNN whose thresholds are too high never fires: the ratio is undefined (nan), not 0 or inf
    silent = SpikingVGG(ann, [1e6] * 5, T=8, delay=False)
    out = E.layer_perturbation(silent, x, (x + 0.1).clamp(0, 1))
    assert all(math.isnan(d["mean"]) and d["n"] == 0 for d in out)
