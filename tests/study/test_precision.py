"""The bf16 option's accuracy effect (python -m snnlib.study.precision): paired comparisons of real outcomes."""
import copy

import numpy as np
import pytest
import torch

from snnlib.study import chapters as E
from snnlib.study.precision import compare_outcomes, main, precision_effect_on


def test_compare_outcomes_is_the_paired_comparison_in_points():
    fp32 = np.array([True] * 150 + [False] * 150)
    same = compare_outcomes(fp32, fp32.copy(), margin=3)
    assert same["difference"] == 0 and same["changed"] == 0 and same["p_value"] == 1.0 and same["equivalent"]
    bf16 = fp32.copy()
    bf16[:30] = False                                   # bf16 loses 30 of 300 images: -10 points
    worse = compare_outcomes(fp32, bf16, margin=3)
    assert worse["difference"] == pytest.approx(-10.0) and worse["changed"] == 30
    assert worse["fp32"] == pytest.approx(50.0) and worse["bf16"] == pytest.approx(40.0)
    assert worse["p_value"] < 1e-6 and not worse["equivalent"] and worse["high"] < 0


@pytest.fixture(scope="module")
def tiny_ctx(tmp_path_factory):
    from snnlib.encoding import PoissonEncoder
    from snnlib.models import SpikingVGG, build_ann
    from snnlib.study.cache import ArtifactCache
    from snnlib.study.pipeline import ModelSet

    ann = build_ann("vgg5", seed=0).eval()
    conv = SpikingVGG(ann, [0.5] * 5, T=8, leak=1.0, encoder=PoissonEncoder(seed=0), delay=False).eval()
    bp = SpikingVGG(copy.deepcopy(ann), [0.35] * 5, T=8, leak=0.99, encoder=PoissonEncoder(seed=0),
                    delay=False).eval()
    ms = ModelSet(ann, conv, bp, 0, info={"configs": {k: {"kind": k} for k in E.KINDS}})
    params = dict(pgd_alpha=2, pgd_steps=2, eval_seed=0, attack_seed=0, eval_draws=3, eps_list=[8],
                  equivalence_margin=3, snn_conv_images=5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 32, 32, generator=g), torch.arange(8) % 10
    return E.Context("04_training_method", params, test=None, x=x, y=y, models=[ms, ms],
                     cache=ArtifactCache(tmp_path_factory.mktemp("cache")), device=torch.device("cpu"))


def test_precision_effect_scores_both_precisions_on_the_same_images(tiny_ctx):
    from snnlib.robustness.prediction import score

    out = precision_effect_on(tiny_ctx, log=lambda s: None)
    assert [(r["kind"], r["setting"].split()[0]) for r in out["rows"]] == [
        ("SNN-BP", "clean"), ("SNN-BP", "white-box"), ("SNN-conv", "clean"), ("SNN-conv", "white-box")]
    for kind, n in (("SNN-BP", 8), ("SNN-conv", 5)):             # SNN-conv on snn_conv_images of them
        row = next(r for r in out["rows"] if r["kind"] == kind and r["setting"] == "clean")
        model = tiny_ctx.target.kinds()[kind]
        ids = tiny_ctx.attack_ids()[:n]
        ref = {p: score(m, tiny_ctx.x[:n], tiny_ctx.y[:n], draws=3, seed=0, image_ids=ids).majority()
               for p, m in (("fp32", model), ("bf16", model.twin(precision="bf16")))}
        assert row["n"] == n and row["fp32"] == pytest.approx(100 * ref["fp32"].mean())
        assert row["bf16"] == pytest.approx(100 * ref["bf16"].mean())
        assert row["changed"] == int((ref["fp32"] != ref["bf16"]).sum())
    assert tiny_ctx.target.snn_bp.precision == "fp32"                 # the study's model is left as it was


def test_a_bad_profile_is_refused_with_its_name(capsys):
    assert main(["--profile", "nosuch"]) == 2
    assert "unknown profile 'nosuch'" in capsys.readouterr().err
