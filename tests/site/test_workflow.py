"""The Pages workflow (.github/workflows/pages.yml) is valid YAML with the schema essentials GitHub Actions needs.

It cannot run here, so this checks what would break it: the trigger, the job graph, the permissions the Pages
actions require, the official actions, the build command and the folder it uploads.  Note that YAML 1.1 (pyyaml)
reads the workflow's ``on:`` key as the boolean True.
"""
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
BUILD = "jupyter-book build -W -n --keep-going book"


@pytest.fixture(scope="module")
def wf():
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict), "the workflow must be a YAML mapping"
    return data


def _on(wf):
    on = wf.get("on", wf.get(True))            # pyyaml: `on` is YAML 1.1's boolean true
    assert isinstance(on, dict), "the workflow needs an `on:` mapping of events"
    return on


def _uses(job):
    return [s["uses"] for s in job.get("steps", []) if "uses" in s]


def _runs(job):
    return [s["run"] for s in job.get("steps", []) if "run" in s]


def _major(ref):
    """'actions/deploy-pages@v5' -> ('actions/deploy-pages', 5)."""
    name, _, version = ref.partition("@")
    assert version.startswith("v") and version[1:].split(".")[0].isdigit(), f"{ref}: pin a major version tag"
    return name, int(version[1:].split(".")[0])


def test_triggers_push_to_main_and_pull_requests(wf):
    on = _on(wf)
    assert "main" in on["push"]["branches"]
    assert "pull_request" in on


def test_every_job_is_well_formed(wf):
    jobs = wf["jobs"]
    assert {"build", "deploy"} <= set(jobs)
    for name, job in jobs.items():
        assert job.get("runs-on"), f"job {name} has no runs-on"
        assert job.get("steps"), f"job {name} has no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"job {name}: a step needs exactly one of uses/run: {step}"
        needs = job.get("needs", [])
        for n in [needs] if isinstance(needs, str) else needs:
            assert n in jobs, f"job {name} needs unknown job {n}"


def test_build_installs_and_builds_the_committed_book(wf):
    build = wf["jobs"]["build"]
    py = [s for s in build["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert py and str(py[0]["with"]["python-version"]) == "3.11"
    runs = "\n".join(_runs(build))
    assert "pip install -r requirements.txt -e ." in runs
    assert BUILD in runs
    assert "-W" in runs.split() and "-n" in runs.split() and "--keep-going" in runs.split()
    assert any(u.startswith("actions/checkout@") for u in _uses(build))


def test_build_uploads_the_html_folder_with_the_official_actions(wf):
    build = wf["jobs"]["build"]
    uses = _uses(build)
    assert any(u.startswith("actions/configure-pages@") for u in uses)
    upload = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "book/_build/html"
    # a pull request must never upload a Pages artifact
    assert build.get("if", "").replace(" ", "") == "github.event_name!='pull_request'"


def test_deploy_needs_build_and_has_the_pages_permissions(wf):
    deploy = wf["jobs"]["deploy"]
    needs = deploy["needs"]
    assert "build" in ([needs] if isinstance(needs, str) else needs)
    perms = deploy["permissions"]
    assert perms["pages"] == "write" and perms["id-token"] == "write"
    env = deploy["environment"]
    assert (env["name"] if isinstance(env, dict) else env) == "github-pages"
    step = [s for s in deploy["steps"] if s.get("uses", "").startswith("actions/deploy-pages@")]
    assert step and step[0].get("id") == "deployment"
    assert env["url"] == "${{ steps.deployment.outputs.page_url }}"
    assert deploy["concurrency"]["cancel-in-progress"] is False      # a deploy is never cancelled half way


def test_workflow_default_permissions_are_read_only(wf):
    assert wf["permissions"] == {"contents": "read"}
    for name, job in wf["jobs"].items():
        if name != "deploy":
            assert "pages" not in job.get("permissions", {}), f"only deploy may write Pages ({name})"


def test_pull_request_job_only_builds(wf):
    checks = [j for j in wf["jobs"].values() if "pull_request" in j.get("if", "") and "==" in j.get("if", "")]
    assert len(checks) == 1, "one job runs on pull requests"
    job = checks[0]
    assert BUILD in "\n".join(_runs(job))
    assert not [u for u in _uses(job) if "pages" in u], "the pull-request job uploads and deploys nothing"
    assert "permissions" not in job or "pages" not in job["permissions"]


def test_official_actions_at_current_major_versions(wf):
    # majors current when this was written (Pages actions on the Node 24 runtime); older ones are deprecated
    minimum = {"actions/checkout": 6, "actions/setup-python": 6, "actions/configure-pages": 6,
               "actions/upload-pages-artifact": 5, "actions/deploy-pages": 5}
    seen = set()
    for job in wf["jobs"].values():
        for ref in _uses(job):
            name, major = _major(ref)
            assert name in minimum, f"{ref}: only the official actions are used"
            assert major >= minimum[name], f"{ref}: older than v{minimum[name]}"
            seen.add(name)
    assert seen == set(minimum)


def test_the_book_does_not_execute_notebooks():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["sphinx"]["config"]["nb_execution_mode"] == "off"
