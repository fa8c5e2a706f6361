"""Formatting, Markdown tables, glued values and chapter figures built from the typed records."""
import json
from pathlib import Path

import numpy as np
import matplotlib
import pytest

matplotlib.use("Agg")

from snnlib.study import plots, tables
from snnlib.study import records as R
from snnlib.study.formatting import format_accuracy, format_duration, format_percent, percent_with_errors

from study_factories import acc, attack_record, cascade_record, chapter_results

ROOT = Path(__file__).resolve().parents[2]


def test_format_accuracy_known_answers():
    a = acc(576, 1017)                     # 56.64% [53.53, 59.71] (Clopper-Pearson)
    assert format_accuracy(a) == "56.6% [53.5, 59.7]"
    assert format_accuracy(a, unit="") == "56.6 [53.5, 59.7]"
    assert format_accuracy(a.to_dict()) == "56.6% [53.5, 59.7]"
    assert format_percent(a) == "56.6%"
    v, minus, plus = percent_with_errors(acc(0, 24))
    assert v == 0 and minus == 0 and plus == pytest.approx(14.247, abs=1e-3)
    with pytest.raises(TypeError, match="Accuracy or a mapping"):
        format_accuracy(0.5)
    with pytest.raises(KeyError, match="lacks \\['low'\\]"):
        format_accuracy({"value": 0.5, "high": 0.6})
    assert format_duration(125.9) == "2m 05s" and format_duration(None) == "–"
    assert format_duration(float("nan")) == "–"


def test_markdown_table_known_answer_and_escaping():
    text = tables.markdown_table([["a|b", 1, None], {"x": "line\nbreak", "n": 2.5, "z": "ok"}], ["x", "n", "z"],
                                 caption="Cap", align=["l", "r", "c"])
    assert text == ("Cap\n\n| x | n | z |\n|---|---:|:---:|\n| a\\|b | 1 |  |\n| line break | 2.5 | ok |")


@pytest.mark.parametrize("rows, columns, align, words", [
    ([[1, 2]], ["a"], None, ["row 0 has 2 cells for 1 columns"]),
    ([{"a": 1}], ["a", "b"], None, ["row 0 lacks column(s) ['b']"]),
    ([[1]], ["a"], ["x"], ["align must give"]),
    ([], [], None, ["at least one column"]),
])
def test_markdown_table_rejects_bad_input(rows, columns, align, words):
    with pytest.raises(ValueError) as e:
        tables.markdown_table(rows, columns, align=align)
    for w in words:
        assert w in str(e.value)


def test_display_table_shows_a_table_object(monkeypatch):
    # an HTML table in Jupyter and the book (_repr_html_), Markdown for other front ends and as str()
    import IPython.display as disp
    shown = []
    monkeypatch.setattr(disp, "display", lambda obj: shown.append(obj))
    t = tables.Table([["ANN", "56.6"]], ["model", "acc"], "Caption")
    assert tables.display_table(*t) is None
    assert len(shown) == 1 and isinstance(shown[0], tables.Table)
    assert shown[0]._repr_markdown_() == str(shown[0]) == t.markdown() == tables.markdown_table(t.rows, t.columns,
                                                                                                  "Caption")
    assert shown[0]._repr_html_() == t.html() and "<caption>Caption</caption>" in t.html()


def test_glue_values_calls_myst_glue_for_every_item(monkeypatch):
    import myst_nb
    got = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: got.append((name, value, display)))
    tables.glue_values({"a": 1, "b": "x"})
    assert got == [("a", 1, False), ("b", "x", False)]


def test_chapter_tables_and_glue_from_records():
    res = chapter_results()
    t = tables.clean_accuracy_table(res["01_models"])
    assert t.rows[0] == ["ANN", 0, "57.0 [46.7, 66.9]", "–", "–"] and t.rows[1][3:] == [16, "0.99"]
    assert tables.threshold_table(res["01_models"]).rows == [["seed 0", "1.500", "2.250"]]
    with pytest.raises(ValueError, match="no clean accuracy of SNN-conv for seed 0"):
        tables.models_glue(res["01_models"], seed=0, n_test=100)
    res["01_models"].clean.append(R.CleanRow(kind="SNN-conv", seed=0, T=64, leak=1.0, accuracy=acc(30)))
    glue = tables.models_glue(res["01_models"], seed=0, n_test=100)
    assert glue == {"acc_ann": "57.0% [46.7, 66.9]", "acc_conv": "30.0% [21.2, 40.0]",
                    "acc_bp": "40.0% [30.3, 50.3]", "n_test": 100}
    tm = res["04_training_method"]
    tm.rows[0].result.flags_ok = False
    head = tables.headline_table(tm, 8.0)
    assert head.caption == "Accuracy (%) at epsilon 8/255 on 100 images"
    assert head.rows == [["SNN-BP", "60.0 [49.7, 69.7]", "not run", "not run", "not run", "30.0 [21.2, 40.0] ⚠"]]
    assert tables.training_method_glue(R.TrainingMethodResults(
        rows=[R.TrainingMethodRow(kind=k, attack="PGD", setting="black-box", eps_255=8.0,
                                  result=attack_record(acc(20 + i))) for i, k in enumerate(("SNN-BP", "ANN"))],
        clean={}), 8.0) == {"eps_main": "8/255", "bp_bb": "20.0% [12.7, 29.2]", "ann_bb": "21.0% [13.5, 30.3]"}
    checks = tables.masking_checks_table(res["06_gradient_masking"])
    assert checks.rows == [["SNN-BP", "randomness", "⚠", "12.5% change"]]
    assert tables.discretization_glue(res["02_discretization"])["bp_T_trend"] == "fewer than two points"
    assert "→" in tables.leak_glue(res["03_leak"])["leak_trend"]


def test_cascade_tables_and_glue():
    idx = np.arange(10)
    audit = dict(n=5, missed=1, extra=0, missed_ids=[3], extra_ids=[], full=acc(1, 5).to_dict(),
                 cascade=acc(2, 5).to_dict(), ok=False)
    gm = R.GradientMaskingResults(worst_case={}, eps_255=8.0, cascades=[
        cascade_record("SNN-BP", 0, idx < 9, idx < 4, idx < 3, fooled=(4, 1, 1), audit=audit),
        cascade_record("SNN-BP", 1, idx < 8, idx < 5, idx < 5, fooled=(2, 1, 0))])
    t = tables.cascade_table(gm)
    assert t.rows[0] == ["SNN-BP", 0, 10, "90.0% [55.5, 99.7]", "50.0% [18.7, 81.3]", "40.0% [12.2, 73.8]",
                         "30.0% [6.7, 65.2]", "1 missed of 5"]
    assert t.rows[1][4] == "60.0% [26.2, 87.8]" and t.rows[1][-1] == ""     # 8 clean-correct - 2 fooled by PGD
    st = tables.cascade_stage_table(gm, "SNN-BP", 1)
    assert [r[:4] for r in st.rows] == [["PGD-7 (paper)", "white-box", 10, 2], ["PGD-20x2", "white-box", 10, 1],
                                        ["transfer", "transfer", 10, 0]]
    with pytest.raises(ValueError, match="no cascade of ANN at seed 0"):
        tables.cascade_stage_table(gm, "ANN", 0)
    assert tables.cascade_summary(gm) == ("On every attacked image, the white-box cascade worst case leaves SNN-BP "
                                          "40.0% [12.2, 73.8] (seed 0, 10 images). The audit found 1 of 5 audit "
                                          "images that a cascade called robust but the full suite fooled.")
    assert "re-run the chapter" in tables.cascade_summary(R.GradientMaskingResults(worst_case={}, eps_255=8.0))


def test_claims_table_and_summary_glue():
    rows = [R.ClaimRow(id="E1", paper="P", claim="c|d", chapter="04", verdict=v, measured="m", scale=None)
            for v in ("supported", "not run", "supported")]
    t = tables.claims_table(rows)
    assert [r[3] for r in t.rows] == ["✓ supported", "– not run", "✓ supported"]
    assert "c\\|d" in t.markdown()
    assert tables.summary_glue(rows) == {"n_supported": 2, "n_contradicted": 0, "n_inconclusive": 0,
                                         "n_not_testable": 0, "n_not_run": 1, "n_claims": 3}


def test_provenance_table_sums_the_chapters(tmp_path):
    for nb, wall in (("01_models", 60.0), ("02_discretization", 65.0), ("07_summary", 1.0)):
        (tmp_path / f"{nb}.json").write_text(json.dumps({"wall_time_s": wall, "machine": {"cpu_count": 2}}))
    t = tables.provenance_table(tmp_path)
    assert [r[0] for r in t.rows] == ["01_models", "02_discretization", "**total**"]
    assert t.rows[-1][1] == "2m 05s" and t.rows[0][1] == "1m 00s"
    assert "estimated" not in t.columns                   # no runner estimates recorded: no such column
    (tmp_path / "_study_log.json").write_text(json.dumps({"notebooks": {
        "02_discretization": {"wall_time_s": 70.0, "estimate_s": 50.0, "estimate_from": "profile estimate on AMD EPYC"}}}))
    t = tables.provenance_table(tmp_path)
    col = t.columns.index("estimated")
    assert col == 3 and len(t.columns) == len(t.rows[0]) == len(t.rows[-1])
    assert t.rows[0][col] == "not recorded" and t.rows[1][col] == "0m 50s (profile estimate on AMD EPYC)"
    assert t.rows[-1][col] == "0m 50s" and "what the runner expected" in t.caption


def test_provenance_table_shows_the_work_a_resumed_chapter_reused(tmp_path):
    """A chapter resumed after a stop records the attack work it loaded from the cache: a "reused" column next to
    the wall time (its last attempt's), summed in the total; chapters from before it say "not recorded"."""
    for nb, wall, reused in (("01_models", 60.0, None), ("02_discretization", 65.0, 600.0), ("03_leak", 5.0, 0.0)):
        rec = {"wall_time_s": wall, "machine": {"cpu_count": 2}}
        if reused is not None:
            rec["reused_s"] = reused
        (tmp_path / f"{nb}.json").write_text(json.dumps(rec))
    t = tables.provenance_table(tmp_path)
    col = t.columns.index("reused")
    assert col == 2 and len(t.columns) == len(t.rows[0]) == len(t.rows[-1])
    assert [r[col] for r in t.rows] == ["not recorded", "10m 00s", "0m 00s", "10m 00s"]
    assert "earlier attempt" in t.caption
    (tmp_path / "02_discretization.json").write_text(json.dumps({"wall_time_s": 65.0, "reused_s": 0.0}))
    assert "reused" not in tables.provenance_table(tmp_path).columns     # nothing reused: no column


def test_provenance_table_shows_whether_the_chapters_used_the_same_models(tmp_path):
    same = {"seed 0": {"ANN": "a" * 16, "SNN-BP": "b" * 16}}
    other = {"seed 0": {"ANN": "c" * 16, "SNN-BP": "b" * 16}}

    def write(nb, models):
        (tmp_path / f"{nb}.json").write_text(json.dumps({"wall_time_s": 1.0, "models": models}))

    write("01_models", None)                          # a chapter written before the fingerprints
    write("02_discretization", None)
    t = tables.provenance_table(tmp_path)
    assert t.columns[-1] == "models" and t.rows[0][-1] == "not recorded" and "predate" in t.caption
    write("01_models", same)
    write("03_leak", same)
    t = tables.provenance_table(tmp_path)
    assert t.rows[0][-1] == t.rows[2][-1] != "not recorded" and len(t.rows[0][-1]) == 8
    assert "the 2 chapters that record it used the same ones" in t.caption and "02_discretization" in t.caption
    write("05_attack_source", other)                  # re-run alone, on another machine
    t = tables.provenance_table(tmp_path)
    assert t.rows[3][-1] != t.rows[0][-1]
    from snnlib.study.results import model_mismatches
    assert model_mismatches(tmp_path) == [f"seed 0 ANN: 01_models, 03_leak used {'a' * 16}; 05_attack_source "
                                          f"used {'c' * 16}"]      # SNN-BP agrees, so only the ANN is named
    assert t.caption.startswith("**The chapters used different trained models**") and "seed 0 ANN" in t.caption


def test_breakdown_table_reads_the_profile_json(tmp_path):
    rep = {"machine": {"cpu": "Test CPU", "threads": 2}, "measured_utc": "2026-12-06T05:38:00+00:00",
           "rows": [{"mode": "snn_attack", "T": 16, "batch": 64, "shares": {"dense": 0.5, "pooling": 0.1, "other": 0.4},
                     "top": [["aten::convolution_backward", 0.3, "dense"], ["compiled LIF step", 0.2, "other"],
                             ["aten::fill_", 0.05, "other"], ["aten::avg_pool2d_backward", 0.04, "pooling"]]}]}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(rep))
    t = tables.breakdown_table([path])
    assert t.rows == [["SNN attack gradient", 16, 64, "50.0 %", "10.0 %", "40.0 %", "compiled LIF step 20.0 %, fill_ 5.0 %"]]
    assert "Test CPU, 2 threads, 2026-12-06" in t.caption
    with pytest.raises(FileNotFoundError, match="python -m snnlib.bench --breakdown"):
        tables.breakdown_table([tmp_path / "missing.json"])


def test_cascade_throughput_comes_from_the_published_stage_seconds():
    path = ROOT / "results" / "laptop" / "06_gradient_masking.json"
    if not path.is_file():
        pytest.skip("no published laptop run")
    data = json.loads(path.read_text())["results"]["cascades"]
    t = tables.cascade_throughput_table(ROOT / "results" / "laptop")
    assert len(t.rows) == len(data) and t.columns[-1] == "images/s"
    for row, c in zip(t.rows, data):
        seconds = sum(st["seconds"] for st in c["stages"])
        assert row[:3] == [c["kind"], c["seed"], c["n"]] and row[4] == f"{c['n'] / seconds:.2f}"


def test_bench_table_reproduces_the_published_appendix():
    path = ROOT / "results" / "bench" / "compare_cpu.json"
    if not path.is_file():
        pytest.skip("no committed benchmark")
    rep = tables.load_bench(path)
    t = tables.bench_table(rep)
    assert t.columns[3] == "img·T/s" and t.align[1] == "r"
    snnlib_rows = [r for r in t.rows if r[2] == "snnlib"]
    assert all(r[5].startswith("**") for r in snnlib_rows[:1])
    g = tables.bench_glue(rep)
    assert g["infer_min"] <= g["infer_max"] and g["batch"] == rep["config"]["batch"]
    rows = rep["summary"]["rows"]
    if any(r.get("plain_speedup") for r in rows):          # a run with the plain PyTorch baseline
        assert g["bptt_plain_min"] == min(r["plain_speedup"] for r in rows if r["mode"] == "bptt")
    else:
        assert g["infer_plain_min"] is None


def test_bench_targets_name_every_miss():
    rows = [dict(mode="infer", T=8, speedup=2.5, plain_speedup=1.2, mem_ratio=0.5),
            dict(mode="infer", T=32, speedup=1.7, plain_speedup=3.0, mem_ratio=1.1)]
    rep = {"config": {"batch": 64}, "summary": {"rows": rows + [dict(mode="bptt", T=8, speedup=2.1,
                                                                     plain_speedup=1.6, mem_ratio=0.55)]},
           "machine": {"cpu": "c", "threads": 2, "torch": "t", "load": [0.5]}, "runs": []}
    g = tables.bench_glue(rep)
    assert g["infer_target17"] == "missed at T = 32 (1.70×), T = 8 (1.20× plain), T = 32 (memory 1.10×)"
    assert g["bptt_target17"] == "met at every T measured" and (g["infer_plain_min"], g["infer_plain_max"]) == (1.2, 3.0)
    with pytest.raises(FileNotFoundError, match="bench_json="):
        tables.load_bench("no/such/file.json")


def test_bench_bf16_option_is_reported_next_to_snnlib_or_says_why_not():
    base = {"config": {"batch": 64}, "machine": {"cpu": "c", "threads": 2, "torch": "t", "load": [0.5],
                                                 "versions": {}, "bf16_native": True}, "runs": []}
    rows = [dict(mode="infer", T=8, speedup=1.8, plain_speedup=3.0, mem_ratio=0.7, best_other="snntorch",
                 bf16_speedup=3.4, bf16_plain_speedup=5.5, bf16_mem_ratio=0.5),
            dict(mode="bptt", T=8, speedup=1.4, plain_speedup=2.0, mem_ratio=0.6, bf16_speedup=1.9,
                 bf16_plain_speedup=2.8, bf16_mem_ratio=0.7)]
    text = tables.bench_bf16_text(dict(base, summary={"rows": rows}))
    assert text == ("With the bf16 option snnlib runs inference 3.40–3.40× the fastest peer and 5.50–5.50× the plain "
                    "loop (issue 17's targets met at every T measured); BPTT 1.90–1.90× the fastest peer and "
                    "2.80–2.80× the plain loop (issue 17's targets missed at T = 8 (1.90×), T = 8 (memory 0.70×)).")
    old = [{k: v for k, v in r.items() if not k.startswith("bf16")} for r in rows]
    assert "did not time the bf16 option: the CPU has no native bf16" in tables.bench_bf16_text(
        dict(base, summary={"rows": old}, machine=dict(base["machine"], bf16_native=False)))
    assert "predates the bf16 option" in tables.bench_bf16_text(
        dict(base, summary={"rows": old}, machine={k: v for k, v in base["machine"].items() if k != "bf16_native"}))
    run = dict(mode="infer", T=8, results=[dict(system=s, rate=r, peak_mb=m, reps=3) for s, r, m in
                                           (("snnlib", 180.0, 70.0), ("snnlib_bf16", 340.0, 50.0),
                                            ("snntorch", 100.0, 100.0))])
    t = tables.bench_table(dict(base, runs=[run], summary={"rows": rows[:1]}))
    by = {r[2]: r for r in t.rows}
    assert by["snnlib bf16 (option)"][5].startswith("**3.40×**") and by["snnlib"][5].startswith("**1.80×**")
    assert by["snnlib bf16 (option)"][7] == "0.50×"


def test_precision_table_reads_the_paired_comparison():
    rep = {"scale": "laptop", "seed": 0, "rows": [dict(kind="SNN-BP", setting="clean", n=300, fp32=53.7, bf16=53.0,
                                                       difference=-0.7, low=-1.9, high=0.4, p_value=0.34, changed=6,
                                                       equivalent=True, tost_p=1e-9, margin=3.0)]}
    t = tables.precision_table(rep)
    assert t.rows[0][:5] == ["SNN-BP", "clean", 300, "53.7%", "53.0%"] and t.rows[0][5] == "-0.7 [-1.9, +0.4]"
    assert t.rows[0][8] == "yes (p = 1e-09)" and "±3 points" in t.columns[-1]
    assert tables.precision_text(rep) == ("bf16 changes the majority-vote outcome of SNN-BP clean 6 of 300 images; the "
                                          "widest 95 % interval of bf16 − fp32 is [-1.9, +0.4] points (SNN-BP, clean), "
                                          "and 1 of 1 settings are equivalent to fp32 within ±3 points (TOST)")
    with pytest.raises(FileNotFoundError, match="precision_json="):
        tables.load_precision("no/such/file.json")


def test_chapter_figures_draw_from_records():
    import matplotlib.pyplot as plt
    res = chapter_results()
    fig = plots.clean_bars(res["01_models"], "t", "note", reference={"ANN": 89.5})
    assert len(fig.axes[0].patches) == 2                           # one bar per (kind, seed) measured
    fig = plots.timestep_curve(res["01_models"], "SNN-conv", "t")
    assert fig.axes[0].get_xscale() == "log"
    fig = plots.sweep_lines(res["02_discretization"].rows, "T", "t", "T", kind="SNN-BP", sweep="T")
    assert len(fig.axes[0].get_legend().get_texts()) == 4
    plots.bits_lines(res["02_discretization"], "SNN-BP", "t")
    plots.budget_lines(res["04_training_method"], "PGD")
    report = res["06_gradient_masking"].worst_case["SNN-BP"]
    fig = plots.attack_bars(report, "note")
    assert len(fig.axes[0].patches) == len(report.per_attack) + 1
    assert fig.axes[0].patches[-1].get_width() == pytest.approx(100 * 2 / 24)   # the worst case, last (bottom)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "worst case (per image)" in labels and all(t.get_rotation() == 0 for t in fig.axes[0].get_yticklabels())
    fig = plots.eps_lines(res["06_gradient_masking"])
    plots.perturbation_lines({k: v for k, v in res["03_leak"].perturbation.items()}, "t")
    plt.close("all")


def test_transfer_heatmap_needs_every_cell():
    res = chapter_results()["05_attack_source"]
    with pytest.raises(R.RecordError, match="no PGD cell"):
        plots.transfer_heatmap(res, "PGD")             # only ANN (twin) -> SNN-BP was measured
    cells = [R.TransferCell(attack="PGD", source=s, source_kind="ANN", source_seed=0, target=t,
                            result=attack_record(acc(10 * i + j))) for i, s in enumerate(("ANN", "ANN (twin)"))
             for j, t in enumerate(R.KINDS)]
    fig = plots.transfer_heatmap(R.AttackSourceResults(cells=cells, eps_255=8.0), "PGD")
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (2, 3) and img[1, 2] == pytest.approx(12.0)
    import matplotlib.pyplot as plt
    plt.close("all")


def test_headline_sweep_sentences_mark_chance_level_points():
    """A sweep's end point whose model does not classify (clean accuracy not above 1/classes) is called so in the
    sentence the chapter prints; a working model's point is not."""
    import dataclasses
    from study_factories import discretization_row
    dead = dataclasses.replace(discretization_row(T=8, pgd_wb=acc(10)), clean=acc(11))
    alive = discretization_row(T=32, pgd_wb=acc(20))
    res = R.DiscretizationResults(rows=[alive, dead], eps_255=8.0)
    text = tables.discretization_glue(res)["bp_T_trend"]
    first, last = text.split(" → ")
    assert first.startswith("10.0%") and first.endswith("at 8 (clean accuracy 11.0% [5.6, 18.8]: at chance level, "
                                                          "not evidence)")
    assert last.startswith("20.0%") and last.endswith("at 32")
    # at 100 classes the same 11 % is well above chance
    assert "chance" not in tables.discretization_glue(res, num_classes=100)["bp_T_trend"]


def test_claim_statements_give_each_verdict_its_evidence():
    rows = [R.ClaimRow(id="E1", paper="ECCV 2020", claim="SNN-BP is more robust", chapter="04", verdict="supported",
                       measured="SNN-BP 30.0% vs ANN 18.0%", scale=None, test="McNemar", effect=12.0, ci_low=7.1,
                       ci_high=17.5, p_value=0.00012, p_adjusted=0.0006, n_images=300, seeds=[0, 1], primary=True),
            R.ClaimRow(id="E6", paper="ECCV 2020", claim="fewer timesteps, more robust", chapter="02",
                       verdict="inconclusive", measured="T sweep", scale=None, test="trend test", effect=-1.2,
                       ci_low=-5.0, ci_high=2.6, p_value=0.51, mde=6.3, n_images=300, seeds=[0],
                       excluded=["T=8: clean accuracy at chance"]),
            R.ClaimRow(id="E3", paper="ECCV 2020", claim="CIFAR-100", chapter="-", verdict="not testable",
                       measured="1,117 training images; run --profile paper", scale=None)]
    text = tables.claim_statements(rows)
    e1, e6, e3 = text.splitlines()
    assert e1.startswith("- **E1** (ECCV 2020, primary): *SNN-BP is more robust* — **supported**: +12.0 points "
                         "[+7.1, +17.5] on 300 images, target seeds 0 and 1; McNemar, p = 0.00012 (Holm-adjusted "
                         "0.0006)")
    assert "could have detected a difference of 6.3 points" in e6 and "excluded by the guards: T=8" in e6
    assert "detected" not in e1                                # the MDE is stated where the verdict is open
    assert e3.endswith("— **not testable**: 1,117 training images; run --profile paper.")
    assert text._repr_markdown_() == str(text)


def test_attenuation_table_shows_the_per_image_comparison():
    from snnlib.study import records as R
    ids = list(range(12))
    leak = R.LeakResults(rows=[], perturbation={}, eps_255=8.0, perturbation_images={
        "ANN": R.PerturbationImages(ids, [0.6] * 12, [0.2] * 12),
        "SNN-BP leak 0.99": R.PerturbationImages(ids, [0.3 + 0.01 * i for i in ids], [0.2] * 12)})
    t = tables.attenuation_table(leak)
    (row,) = t.rows
    assert row[:5] == ["SNN-BP leak 0.99", 12, "1.775", "3.000", "-1.225"] and float(row[5]) < 0.01
    assert tables.attenuation_table(R.LeakResults(rows=[], perturbation={}, eps_255=8.0)).rows == []


def test_trained_T_table_sets_each_trained_model_beside_the_simulated_one():
    from study_factories import scored_row
    v = lambda k: np.arange(100) < k
    row = lambda T, k, sweep: scored_row(R.DiscretizationRow, v(k), v(80), zero_grad=0.25, kind="SNN-BP", T=T,
                                         bits=None, sweep=sweep)
    res = R.DiscretizationResults(rows=[row(8, 5, "T"), row(16, 20, "T"), row(8, 31, R.TRAINED_T)], eps_255=8.0)
    t = tables.trained_T_table(res, 16)
    assert [r[0] for r in t.rows] == ["trained at T=8", "trained at T=16, simulated at T=8",
                                      "trained at T=16 (the study's SNN-BP)"]
    assert t.rows[0][3].startswith("31.0 [") and t.rows[1][3].startswith("5.0 [") and t.rows[2][5] == "0.25"
    assert len(t.columns) == len(t.align) == len(t.rows[0])
    assert tables.trained_T_table(R.DiscretizationResults(rows=[row(16, 20, "T")], eps_255=8.0), 16).rows == [
        tables.trained_T_table(res, 16).rows[2]]
