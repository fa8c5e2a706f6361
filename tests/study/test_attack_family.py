"""Chapter 5's other attacks (R-FGSM, BIM): merging their cells, the per-attack comparisons of E2 and E11 (two code
paths that must agree with the claims), their table, the image limit and the cost model."""
import numpy as np
import pytest
from scipy import stats as sps

from snnlib.study import claims, profiles, tables
from snnlib.study import records as R

from study_factories import scored_record


def mcnemar_p(n10, n01):
    return sps.binomtest(n10, n10 + n01, 0.5).pvalue


def cell(source, target, adv, attack="PGD", source_seed=1, target_seed=0):
    return R.TransferCell(attack=attack, source=source, source_kind=source.split()[0], source_seed=source_seed,
                          target=target, target_seed=target_seed, result=scored_record(adv))


def main_and_other():
    """FGSM and PGD on 100 images (as in test_claims' Holm test), BIM on 50 and R-FGSM without an SNN-BP
    source."""
    idx = np.arange(100)
    main = R.AttackSourceResults(cells=[
        cell("ANN (twin)", "SNN-BP", idx < 40), cell("SNN-BP (twin)", "SNN-BP", (idx < 30) | (idx == 40) | (idx == 41)),
        cell("ANN (twin)", "ANN", (idx < 23) | (idx == 50)),
        cell("ANN (twin)", "SNN-BP", idx < 30, "FGSM"), cell("ANN (twin)", "ANN", idx < 21, "FGSM")], eps_255=8.0)
    j = np.arange(50)
    other = R.AttackSourceResults(cells=[
        cell("ANN (twin)", "SNN-BP", j < 20, "BIM"), cell("SNN-BP (twin)", "SNN-BP", j < 8, "BIM"),
        cell("ANN (twin)", "ANN", j < 14, "BIM"),
        cell("ANN (twin)", "SNN-BP", j < 25, "RFGSM"), cell("ANN (twin)", "ANN", j < 25, "RFGSM")], eps_255=8.0)
    return main, other


def test_merged_keeps_every_cell_and_refuses_mixed_budgets_or_repeated_attacks():
    main, other = main_and_other()
    both = main.merged(other)
    assert both.cells == main.cells + other.cells
    assert both.attacks() == ["PGD", "FGSM", "BIM", "RFGSM"]
    assert main.merged(R.AttackSourceResults(cells=[], eps_255=8.0)).cells == main.cells
    with pytest.raises(ValueError, match="4/255"):
        main.merged(R.AttackSourceResults(cells=[], eps_255=4.0))
    with pytest.raises(ValueError, match="PGD"):
        main.merged(main)


def test_the_pgd_and_fgsm_rows_agree_with_the_claims_and_bim_is_tested_on_its_own_images():
    main, other = main_and_other()
    rows = claims.attack_family(main.merged(other))
    got = {(r.attack, r.comparison): r for r in rows}
    bb, src = (label for label, _ in claims.FAMILY_COMPARISONS)
    assert [r.attack for r in rows] == ["PGD", "PGD", "FGSM", "FGSM", "BIM", "BIM", "RFGSM", "RFGSM"]
    verdicts = {r.id: r for r in claims.evaluate_claims(R.StudyResults(attack_source=main))}
    # the same paired tests as E2, E11 and E1 (raw p: E11 is significant here, inconclusive after Holm)
    for key, cid in (((("PGD", bb)), "E2"), (("PGD", src), "E11"), (("FGSM", bb), "E1")):
        j = got[key].judgement
        assert j.p_value == pytest.approx(verdicts[cid].p_value) and j.effect == pytest.approx(verdicts[cid].effect)
    assert got[("PGD", src)].verdict == claims.SUPPORTED and verdicts["E11"].verdict == claims.INCONCLUSIVE
    # BIM: worst case of SNN-BP over both twins = the SNN-BP-crafted cell (8 of 50) vs the ANN 14 of 50
    j = got[("BIM", bb)].judgement
    assert j.n_images == 50 and j.effect == pytest.approx(-12.0)
    assert j.p_value == pytest.approx(mcnemar_p(0, 6)) and got[("BIM", bb)].verdict == claims.CONTRADICTED
    j = got[("BIM", src)].judgement
    assert j.p_value == pytest.approx(mcnemar_p(12, 0)) and j.effect == pytest.approx(24.0)
    assert "on 50 images" in got[("BIM", src)].measured
    # FGSM has no SNN-crafted twin cell on SNN-BP, R-FGSM only the ANN-crafted ones: said, not guessed
    assert got[("FGSM", src)].verdict == claims.NOT_RUN and got[("FGSM", src)].judgement is None
    assert "FGSM from the ANN and from SNN-BP" in got[("FGSM", src)].reason
    assert got[("RFGSM", bb)].judgement.p_value == 1.0 and got[("RFGSM", bb)].verdict == claims.INCONCLUSIVE


def test_a_model_at_chance_makes_its_rows_not_testable():
    idx = np.arange(100)
    dead = R.TransferCell(attack="BIM", source="ANN (twin)", source_kind="ANN", source_seed=1, target="ANN",
                          target_seed=0, result=scored_record(idx < 5, idx < 8))
    res = R.AttackSourceResults(cells=[cell("ANN (twin)", "SNN-BP", idx < 40, "BIM"), dead], eps_255=8.0)
    row = claims.attack_family(res)[0]
    assert row.verdict == claims.NOT_TESTABLE and "not above chance" in row.reason


def test_the_table_names_the_attacks_as_the_literature_does():
    main, other = main_and_other()
    t = tables.attack_family_table(claims.attack_family(main.merged(other)))
    assert [r[0] for r in t.rows] == ["PGD", "PGD", "FGSM", "FGSM", "BIM", "BIM", "R-FGSM", "R-FGSM"]
    assert len(t.columns) == len(t.align) == len(t.rows[0])
    fgsm_src = t.rows[3]
    assert fgsm_src[3:7] == ["", "", "", ""] and "not run" in fgsm_src[-1]
    assert "<table" in t.html() and "R-FGSM" in t.html()
    main.cells.append(cell("SNN-BP", "SNN-BP", np.zeros(100, bool), source_seed=0))     # white-box
    glue = tables.attack_source_glue(main, other)
    assert glue["other_images"] == "50 images"
    assert tables.attack_source_glue(main, R.AttackSourceResults(cells=[], eps_255=8.0))["other_images"] == "not run"


def test_the_cost_model_counts_the_other_attacks_by_their_steps():
    p = profiles.load_profile("laptop")["notebooks"]["05_attack_source"]
    none = dict(p, other_attacks=[])
    rfgsm = dict(p, other_attacks=["rfgsm"])
    bim = dict(p, other_attacks=["bim"])
    base = profiles.cost_units("05_attack_source", none)
    extra_r = profiles.cost_units("05_attack_source", rfgsm) - base
    extra_b = profiles.cost_units("05_attack_source", bim) - base
    assert 0 < extra_r < extra_b                              # 1 gradient vs Kurakin's 10 at 8/255
    fewer = profiles.cost_units("05_attack_source", dict(bim, other_attack_images=100)) - base
    assert fewer == pytest.approx(extra_b / 2)                # every cell on 100 instead of 200 images


@pytest.mark.parametrize("value", [["pgd"], ["bim", "bim"], "bim", [1]])
def test_other_attacks_refuses_what_it_cannot_run(value):
    with pytest.raises(profiles.ProfileError, match="other_attacks"):
        profiles.validate_overrides({"other_attacks": value})
    assert profiles.validate_overrides({"other_attacks": []}) == {"other_attacks": []}
