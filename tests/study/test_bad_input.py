"""Bad input is refused before any work (issue 18): one clear message naming the parameter or path and what is
allowed, exit code 2 for the runner, no traceback, nothing written; the notebooks run directly with papermill check
as much as the runner."""

from __future__ import annotations

import errno
import glob
import os
from pathlib import Path

import nbformat
import pytest

from snnlib.study import chapters as E
from snnlib.study import cli
from snnlib.study import profiles as P
from snnlib.study.cli import main
from snnlib.study.profiles import NOTEBOOKS, ProfileError, notebook_params

ROOT = Path(__file__).resolve().parents[2]


def _notebook(marker: Path) -> nbformat.NotebookNode:
    """A notebook that leaves ``marker`` behind if it is ever executed (none of these tests may run one)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'smoke'\nresults_dir = 'results/smoke'\n")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').write('ran')")]
    return nb


@pytest.fixture
def book(tmp_path):
    d = tmp_path / "book"
    d.mkdir()
    for stem in NOTEBOOKS:
        nbformat.write(_notebook(tmp_path / "RAN"), str(d / f"{stem}.ipynb"))
    return d


def _argv(tmp_path, book, *more):
    return ["run", "--book-dir", str(book), "--results-dir", str(tmp_path / "res"),
            "--out-dir", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *more]


def _refused(capsys, tmp_path, argv, words, created=("res", "out", "cache")):
    """main(argv) exits 2 with one 'error:' message holding ``words``, no traceback, nothing run or written."""
    assert main(argv) == 2
    cap = capsys.readouterr()
    err = cap.err
    assert err.startswith("error: "), err
    assert "Traceback" not in err + cap.out
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "RAN").exists()
    for name in created:
        assert not (tmp_path / name).exists(), name
    return err


# ------------------------------------------------------------------------------------------------ 1. values
@pytest.mark.parametrize("params, words", [
    (["data_source=subset", "n_train=6000"], ["n_train=6000", "5438 train images", "shipped CIFAR-10 subset",
                                              "allowed: n_train <= 5438", "data_source: torchvision"]),
    (["data_source=subset", "n_test=2000", "attack_images=16"], ["n_test=2000", "allowed: n_test <= 1017"]),
    (["dataset=cifar100", "data_source=subset", "n_train=2000"], ["n_train=2000", "CIFAR-100",
                                                                  "allowed: n_train <= 1117"]),
    (["n_train=60000"], ["n_train=60000", "full CIFAR-10 train set", "allowed: n_train <= 50000"]),
    (["n_test=10001"], ["n_test=10001", "allowed: n_test <= 10000"]),
    (["epochs_snn=0"], ["epochs_snn", "got 0", "allowed: an integer >= 1", "converted SNN"]),
    (["eps_list=[0,8]"], ["eps_list", "[0, 8]", "allowed", "(0, 255]"]),
    (["large_eps=[0]"], ["large_eps", "(0, 255]"]),
    (["pgd_alpha=100"], ["pgd_alpha=100", "eps_list=[8, 16]", "allowed: pgd_alpha <= 32"]),
    (["model_seeds=[-1,0]"], ["model_seeds", "[-1, 0]", "allowed", "[0, 2**63)"]),
    (["eval_seed=-3"], ["eval_seed", "-3", "[0, 2**63)"]),
    (["T_list=[5,8]"], ["T_list=[5, 8]", "[5] <= 5", "vgg5 has 5 spiking layers", "identically zero",
                        "allowed: every T_list entry >= 6 for vgg5"]),
    (["T_bp=5"], ["T_bp=5", "identically zero", "allowed: T_bp >= 6 for vgg5"]),
    (["T_bp_trained=[4]"], ["T_bp_trained=[4]", "[4] <= 5", "allowed: every T_bp_trained entry >= 6 for vgg5"]),
    (["T_bp_trained=[8,8]"], ["T_bp_trained", "[8, 8]", "distinct integers"]),
    (["other_attacks=[pgd]"], ["other_attacks", "'rfgsm', 'bim'"]),
    (["T_conv=3"], ["T_conv=3", "allowed: T_conv >= 6 for vgg5"]),
    (["balance_T=5"], ["balance_T=5", "allowed: balance_T >= 6 for vgg5"]),
    (["arch=vgg9", "T_bp=8"], ["T_bp=8", "vgg9 has 8 spiking layers", "allowed: T_bp >= 9 for vgg9"]),
    (["adaptive_images=40"], ["adaptive_images=40", "attack_images=16", "allowed: adaptive_images <= attack_images"]),
])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_meaningless_values_are_refused(capsys, tmp_path, book, params, words, dry):
    argv = _argv(tmp_path, book, *(["--dry-run"] if dry else []), *[a for p in params for a in ("-p", p)])
    _refused(capsys, tmp_path, argv, words)


def test_a_common_parameters_problem_is_reported_once():
    with pytest.raises(ProfileError) as e:
        P.load_profile("smoke", {"T_bp": 4})
    assert str(e.value).count("T_bp=4") == 1 and "every notebook" in str(e.value)


def test_a_profiles_file_with_meaningless_values_is_refused(tmp_path):
    import yaml
    data = yaml.safe_load(P.PROFILES_PATH.read_text())
    data["profiles"]["smoke"]["common"]["T_conv"] = 5
    data["profiles"]["smoke"]["common"]["eps_list"] = [0, 8]
    data["profiles"]["smoke"]["notebooks"]["02_discretization"]["T_list"] = [2, 8]
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as e:
        P.load_profiles_file(path)
    msg = str(e.value)
    assert "profile 'smoke'" in msg and "eps_list" in msg and "(0, 255]" in msg
    del data["profiles"]["smoke"]["common"]["eps_list"]
    data["profiles"]["smoke"]["common"]["eps_list"] = [8]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as e:
        P.load_profiles_file(path)
    msg = str(e.value)
    assert "T_conv=5" in msg and "notebook 02_discretization: T_list=[2, 8]" in msg


def test_the_shipped_profiles_pass_the_new_checks():
    for name in P.available_profiles():
        P.load_profile(name)


def test_spiking_layers_is_the_output_delay():
    """The rule behind the T checks: VGG5's output is identically zero at T = 5 and not at T = 6."""
    import torch
    from snnlib.models import ARCHS, VGG, SpikingVGG, spiking_layers

    assert {a: spiking_layers(a) for a in ARCHS} == {a: VGG(a, 100).num_spiking for a in ARCHS}
    snn = SpikingVGG(VGG("vgg5", seed=0), [0.05] * 5, T=5).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert snn(x, T=5).abs().max() == 0 and snn(x, T=6).abs().max() > 0
    # chapter 1's curve of the converted SNN against T starts past the delay
    assert E.conversion_timesteps(16) == [6, 8, 16, 32, 64] and min(E.conversion_timesteps(16, "vgg9")) == 9


# located data: only known once the data folder is looked at
@pytest.mark.parametrize("params, words", [
    (["n_train=6000"], ["n_train=6000", "5438", "data_source 'auto' uses", "no full copy"]),
    (["data_source=torchvision"], ["data_source 'torchvision' needs", "cifar-10-batches-py", "data_source=subset"]),
])
def test_data_located_before_work(capsys, tmp_path, book, params, words):
    empty = tmp_path / "nodata"
    empty.mkdir()
    argv = _argv(tmp_path, book, "--data-dir", str(empty), *[a for p in params for a in ("-p", p)])
    assert main(argv + ["--dry-run", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "note: the run will refuse:" in out and all(w in out for w in words)
    _refused(capsys, tmp_path, argv + ["--yes"], words)


def test_a_data_dir_without_a_full_copy_is_named(capsys, tmp_path, book):
    """An existing folder that holds no full copy is not an error (auto uses the shipped subset) but is said."""
    empty = tmp_path / "nodata"
    empty.mkdir()
    assert main(_argv(tmp_path, book, "--dry-run", "--data-dir", str(empty))) == 0
    out = capsys.readouterr().out
    assert f"note: no full cifar10 copy ('cifar-10-batches-py') in {empty}: data_source 'auto' uses the shipped " \
           "subset" in out


def test_data_problems_are_notes_for_cluster_executors(capsys, tmp_path, book):
    empty = tmp_path / "nodata"
    empty.mkdir()
    argv = _argv(tmp_path, book, "--dry-run", "--data-dir", str(empty), "-p", "data_source=torchvision",
                 "--executor", "slurm")
    assert main(argv) == 0
    assert "fine when the workers see the data there" in capsys.readouterr().out


# absurd sizes: the estimate says so, the run asks for --yes
@pytest.mark.parametrize("params", [["pgd_steps=1000000000"], ["T_bp=1000000000"],
                                    ["--only", "06", "-p", "eot_samples=1000000000"],
                                    ["--only", "06", "-p", "long_pgd_steps=1000000000"],
                                    ["--only", "04", "-p", "epochs_ann=100000"]])
def test_enormous_sizes_need_yes(capsys, tmp_path, book, params):
    more = params if params[0] == "--only" else ["-p", params[0]]
    name = more[-1].split("=")[0]
    argv = _argv(tmp_path, book, *more)
    assert main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "times the 'smoke' profile's own estimate" in out and f"driven by {name}=" in out
    assert "the run asks for --yes" in out
    assert "for these parameters" in out or "training included" in out
    _refused(capsys, tmp_path, argv, ["times the 'smoke' profile's own estimate", f"{name}=", "--yes"])
    # with --yes the gate is passed: the next check (an output folder under a file) is what stops it here
    (tmp_path / "f").write_text("x")
    err = _refused(capsys, tmp_path, argv[:-2] + ["--cache-dir", str(tmp_path / "f" / "c"), "--yes"],
                   ["lies under"], created=("res", "out"))
    assert "--yes" not in err


def test_estimates_scale_with_the_parameters(capsys, tmp_path, book):
    base = cli._Plan(cli._parser().parse_args(_argv(tmp_path, book, "--profile", "laptop")))
    more = cli._Plan(cli._parser().parse_args(_argv(tmp_path, book, "--profile", "laptop", "-p", "pgd_steps=14")))
    for nb in ("02_discretization", "04_training_method", "06_gradient_masking"):
        assert 1.1 < more.estimate(nb)[0] / base.estimate(nb)[0] <= 2.0, nb     # attacks are part of the work
        assert "for these parameters" in more.estimate(nb)[1]
    assert more.estimate("01_models") == base.estimate("01_models")     # training does not attack
    assert more.over_budget_text(NOTEBOOKS) is None                   # twice the steps: no --yes needed
    # cost grows with every driver
    p = notebook_params("laptop", "06_gradient_masking")
    for k in ("pgd_steps", "T_bp", "T_conv", "eot_samples", "long_pgd_steps", "restarts", "adaptive_images",
              "eval_draws"):
        assert P.cost_units("06_gradient_masking", {**p, k: p[k] * 10}) > P.cost_units("06_gradient_masking", p), k
    p = notebook_params("laptop", "01_models")
    for k in ("n_train", "epochs_ann", "epochs_snn", "T_bp", "balance_T", "n_test"):
        assert P.cost_units("01_models", {**p, k: p[k] * 10}) > P.cost_units("01_models", p), k
    assert cli._fmt_s(3e10).endswith("years") and cli._fmt_s(5 * 86400) == "5.0 days"


# ------------------------------------------------------------------------------------------------ 2. names/paths
@pytest.mark.parametrize("only", [[""], [" , "], ["", ""]])
def test_empty_only_is_an_error_naming_the_notebooks(capsys, tmp_path, book, only):
    argv = _argv(tmp_path, book, "--dry-run", *[a for o in only for a in ("--only", o)])
    _refused(capsys, tmp_path, argv, ["--only", "names no notebook", *NOTEBOOKS])


@pytest.mark.parametrize("how", ["--data-dir", "-p"])
def test_a_missing_data_dir_is_an_error_not_a_fallback(capsys, tmp_path, book, how, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arg = ["--data-dir", "dtaa"] if how == "--data-dir" else ["-p", "data_dir=dtaa"]
    for dry in (["--dry-run"], []):
        _refused(capsys, tmp_path, _argv(tmp_path, book, *dry, *arg),
                 [str(tmp_path / "dtaa"), "does not exist", "relative to the current folder"])
    (tmp_path / "afile").write_text("x")
    arg[-1] = arg[-1].replace("dtaa", "afile")
    _refused(capsys, tmp_path, _argv(tmp_path, book, "--dry-run", *arg), ["afile", "is a file, not a folder"])


def test_empty_data_dir_is_an_error(capsys, tmp_path, book):
    _refused(capsys, tmp_path, _argv(tmp_path, book, "--dry-run", "--data-dir", ""), ["--data-dir ''"])


def test_data_dir_flag_and_parameter_resolve_alike(tmp_path, book, monkeypatch, capsys):
    (tmp_path / "mydata").mkdir()
    monkeypatch.chdir(tmp_path)
    plans = [cli._Plan(cli._parser().parse_args(_argv(tmp_path, book, *arg)))
             for arg in (["--data-dir", "mydata"], ["-p", "data_dir=mydata"], ["-p", f"data_dir={tmp_path}/mydata"],
                         ["--data-dir", "./mydata/"])]
    values = {p.profile["common"]["data_dir"] for p in plans}
    assert values == {str(tmp_path / "mydata")}, values       # outside the repository: absolute
    inside = cli._Plan(cli._parser().parse_args(_argv(tmp_path, book, "--data-dir", str(ROOT / "data"))))
    assert inside.profile["common"]["data_dir"] == "data"        # inside: relative to the notebooks' folder
    assert main(["run", "--help"]) == 0
    assert "relative to the current folder" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------------------------------------ 3. outputs
@pytest.mark.parametrize("flag, what", [("--results-dir", "results folder"),
                                        ("--out-dir", "output folder of the executed notebooks"),
                                        ("--cache-dir", "artifact cache")])
@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
def test_an_output_folder_that_is_a_file_or_under_a_file(capsys, tmp_path, book, flag, what, dry):
    f = tmp_path / "f"
    f.write_text("keep")
    others = tuple(n for n, fl in (("res", "--results-dir"), ("out", "--out-dir"), ("cache", "--cache-dir"))
                   if fl != flag)
    for target, words in ((f, [str(f), "is a file"]), (f / "sub" / "dir", [str(f / "sub" / "dir"), "lies under",
                                                                          str(f), "which is a file"])):
        argv = _argv(tmp_path, book, *(["--dry-run"] if dry else []), flag, str(target))
        _refused(capsys, tmp_path, argv, [what, *words, f"choose another with {flag} DIR"], created=others)
        assert f.read_text() == "keep"


def test_a_read_only_output_folder(capsys, tmp_path, book):
    if os.geteuid() == 0:
        pytest.skip("root bypasses permissions (the under-a-file and monkeypatched cases cover the message)")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        for target in (ro, ro / "new"):
            _refused(capsys, tmp_path, _argv(tmp_path, book, "--results-dir", str(target)),
                     [str(ro), "is not writable", "--results-dir DIR"], created=("res", "out"))
    finally:
        ro.chmod(0o700)


def test_a_folder_without_write_permission_named_even_as_root(capsys, tmp_path, book, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode, *a, **k))
    _refused(capsys, tmp_path, _argv(tmp_path, book, "--dry-run", "--out-dir", str(ro / "nb")),
             [f"{ro / 'nb'} cannot be created: {ro} is not writable", "--out-dir DIR"])
    assert not (ro / "nb").exists()


def test_a_write_that_fails_is_caught_before_work(capsys, tmp_path, book, monkeypatch):
    """A full disk (or a file system that refuses writes) shows up in the probe write, before any notebook."""
    import tempfile

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(tempfile, "mkstemp", full)
    err = _refused(capsys, tmp_path, _argv(tmp_path, book), ["cannot write in", "No space left on device",
                                                              "results folder"], created=())
    assert str(tmp_path / "res") in err
    assert not [p for p in (tmp_path / "res").iterdir()]            # no probe or log left behind


def test_folder_problem_looks_without_writing(tmp_path):
    from snnlib.files import folder_problem, make_writable_folder
    assert folder_problem(tmp_path / "a" / "b") is None and not (tmp_path / "a").exists()
    assert make_writable_folder(tmp_path / "a" / "b") is None and (tmp_path / "a" / "b").is_dir()
    assert not list((tmp_path / "a" / "b").iterdir())


# ------------------------------------------------------------------------------------------------ 4. papermill
def _smoke(nb="06_gradient_masking", **changes):
    p = notebook_params("smoke", nb)
    p.update(changes)
    return p


@pytest.mark.parametrize("nb, changes, words", [
    ("01_models", {"T_bpp": 8}, ["unknown parameter(s) ['T_bpp']", "did you mean 'T_bp'", "allowed here"]),
    ("01_models", {"T_list": [8]}, ["'T_list' (02_discretization)"]),
    ("01_models", {"balance_images": 500}, ["balance_images=500", "n_train - val_images"]),
    ("01_models", {"val_images": 256}, ["val_images=256", "n_train=256"]),
    ("06_gradient_masking", {"adaptive_images": 20}, ["adaptive_images=20", "attack_images=16"]),
    ("02_discretization", {"T_list": [4, 8]}, ["T_list", "identically zero", ">= 6"]),
    ("01_models", {"epochs_snn": 0}, ["epochs_snn", "integer >= 1"]),
    ("01_models", {"pgd_alpha": 64}, ["pgd_alpha=64", "<= 32"]),
    ("01_models", {"data_source": "subset", "n_train": 9000}, ["n_train=9000", "5438"]),
    ("01_models", {"data_dir": "/nonexistent/cifar"}, ["data_dir '/nonexistent/cifar'", "does not exist"]),
])
def test_check_params_refuses_what_the_runner_refuses(nb, changes, words):
    with pytest.raises(ProfileError) as e:
        E.check_params(nb, _smoke(nb, **changes))
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_check_params_refuses_a_results_dir_that_cannot_be_written(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    for rd, words in ((f, ["results_dir", str(f), "is a file"]), (f / "r", ["lies under", "is a file"])):
        with pytest.raises(ProfileError) as e:
            E.check_params("07_summary", _smoke("07_summary", results_dir=str(rd)))
        assert all(w in str(e.value) for w in words) and "-p results_dir" in str(e.value)
    assert E.check_params("07_summary", _smoke("07_summary", results_dir=str(tmp_path / "new")))


def test_collect_params_passes_on_names_set_in_parameters_cells():
    """Inside a notebook, IPython's input history ``In`` holds the cells run so far; a name papermill injects that
    is not a parameter of this notebook is passed on and refused."""
    ns = dict(_smoke("03_leak"), profile="smoke", results_dir="results/smoke", helper=3, T_typo=4)
    ns["In"] = ["", P.parameters_cell_source("03_leak"), "# Parameters\nT_typo = 4\nT_bp = 8\n", "helper = 3\n"]
    p = E.collect_params(ns, "03_leak")
    assert p["T_typo"] == 4 and "helper" not in p
    with pytest.raises(ProfileError, match=r"unknown parameter\(s\) \['T_typo'\]"):
        E.check_params("03_leak", p)
    del ns["In"]
    assert "T_typo" not in E.collect_params(ns, "03_leak")     # outside IPython: only the known names


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "book" / "0*.ipynb"))),
                         ids=lambda p: Path(p).stem)
def test_each_notebooks_own_defaults_pass_check_params(path):
    """The parameters cell of every book notebook (regenerated from the smoke profile) holds the smoke profile's
    values and passes the checks, so ``papermill book/<nb>.ipynb out.ipynb`` starts from valid parameters."""
    stem = Path(path).stem
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    ns: dict = {}
    exec(cells[0].source, ns)
    ns.pop("__builtins__", None)
    assert {k: v for k, v in ns.items() if k not in ("profile", "results_dir")} == notebook_params("smoke", stem)
    assert E.check_params(stem, ns)["profile"] == "smoke"


def test_a_notebook_whose_parameters_cell_leaves_out_attack_batch_takes_it_from_papermill(tmp_path):
    """attack_batch is optional: chapters 2-4 and 6 do not list it in their parameters cells, yet a profile or
    ``papermill -p attack_batch N`` that sets it reaches the chapter's parameters; left out, it is absent (null)."""
    import papermill as pm

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(P.parameters_cell_source("03_leak"))
    params.metadata["tags"] = ["parameters"]
    assert "attack_batch" not in params.source
    out = tmp_path / "seen"
    nb.cells = [params,
                nbformat.v4.new_code_cell("from snnlib.study import chapters as E\n"
                                          "P = E.check_params('03_leak', E.collect_params(globals(), '03_leak'))\n"
                                          f"open({str(out)!r}, 'w').write(repr(P.get('attack_batch', 'absent')))")]
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(src))
    seen = []
    for parameters in ({"attack_batch": 7}, {}):
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=parameters, cwd=str(ROOT),
                            progress_bar=False, kernel_name="python3")
        seen.append(out.read_text())
    assert seen == ["7", "'absent'"]


def test_papermill_run_with_an_unknown_parameter_stops_before_work(tmp_path):
    """A notebook run directly with papermill and a mistyped parameter stops at its check cell with the message;
    the cell after it (the work) never runs."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(P.parameters_cell_source("07_summary"))
    params.metadata["tags"] = ["parameters"]
    marker = tmp_path / "worked"
    nb.cells = [params,
                nbformat.v4.new_code_cell("from snnlib.study import chapters as E\n"
                                          "P = E.check_params('07_summary', E.collect_params(globals(), '07_summary'))"),
                nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').write('x')")]
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(src))
    with pytest.raises(PapermillExecutionError) as e:
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={"n_trian": 128},
                            cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    assert "unknown parameter(s) ['n_trian']" in str(e.value) and "did you mean 'n_train'" in str(e.value)
    assert not marker.exists()


def test_a_run_recorded_before_a_parameter_existed_is_costed_without_its_work(tmp_path, book):
    """Chapter 5's last run predates other_attacks: its wall time is scaled up by their cost, not taken as is."""
    import json
    plan = cli._Plan(cli._parser().parse_args(_argv(tmp_path, book, "--profile", "laptop")))
    params = {k: v for k, v in plan.params("05_attack_source").items() if k not in ("other_attacks",
                                                                                      "other_attack_images")}
    plan.results_dir.mkdir(parents=True, exist_ok=True)
    (plan.results_dir / "05_attack_source.json").write_text(json.dumps({"wall_time_s": 6045.0, "parameters": params}))
    seconds, source = plan.estimate("05_attack_source")
    now = notebook_params("laptop", "05_attack_source")
    ratio = P.cost_units("05_attack_source", now) / P.cost_units("05_attack_source", dict(now, other_attacks=[]))
    assert ratio > 1.2 and seconds == pytest.approx(6045.0 * ratio) and "for these parameters" in source
    assert P.recorded_params({"other_attacks": ["bim"], "junk": 1}, now)["other_attacks"] == ["bim"]
    assert "junk" not in P.recorded_params({"junk": 1}, now)
