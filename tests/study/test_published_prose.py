"""The hand-written pages state what the published run measured: every effect with its interval, every verdict named
next to a claim id, the run's date and the verdict counts in book/intro.md and README.md are those the published
results give (an effect may also be one of chapter 5's table of attacks, or of a replicate run the summary sets
beside it: the laptop profile's ``compare_with``).  A re-published run fails here until the prose is rewritten from
its data."""
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from snnlib.study import claims
from snnlib.study.records import load_study

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "results" / "laptop"
PAGES = [ROOT / "book" / "intro.md", ROOT / "README.md"]

pytestmark = pytest.mark.skipif(not (PUBLISHED / "01_models.json").exists(), reason="no published laptop run")

NUM = r"[+−-]\d+\.\d"
EFFECT = re.compile(rf"({NUM})\s+points\s+\[({NUM}),\s+({NUM})\]")
VERDICT = re.compile(r"\((E\d+b?|I\d)(?:, primary)?(?:\):|,)\**\s*(supported|contradicted|inconclusive|not testable)")
RUN_DATE = re.compile(r"laptop reference run of (\d{1,2} \w+ \d{4})")
REPLICATE_NAMED = re.compile(r"replicate|AMD EPYC|run of \d{1,2} \w+ \d{4}")


@pytest.fixture(scope="module")
def rows():
    return claims.evaluate_claims(PUBLISHED)


@pytest.fixture(scope="module")
def attack_table():
    """Chapter 5's comparisons under each of its attacks (E2's and E11's tests under FGSM, PGD, R-FGSM and BIM)."""
    study = load_study(PUBLISHED)
    return [c.judgement for c in claims.attack_family(study.attack_source, study.num_classes)
            if c.judgement is not None]


@pytest.fixture(scope="module")
def replicate_rows():
    """The claims of the runs the published summary sets beside it (results folders kept in the repository)."""
    from snnlib.study.profiles import load_profile
    folders = load_profile("laptop")["notebooks"]["07_summary"]["compare_with"]
    return [r for f in folders for r in claims.evaluate_claims(ROOT / f)]


def _value(text: str) -> float:
    return float(text.replace("−", "-"))


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _effects(rows) -> set:
    return {(round(r.effect, 1), round(r.ci_low, 1), round(r.ci_high, 1)) for r in rows
            if r.effect is not None and r.ci_low is not None and r.ci_high is not None}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_effect_with_an_interval_in_the_prose_is_a_claims_measured_effect(page, rows, attack_table,
                                                                               replicate_rows):
    """Each is the published run's (a claim's, or a comparison of chapter 5's table of attacks), or a replicate
    run's named as such just before it ("the replicate", "run of <date>", the CPU it ran on)."""
    text = _text(page)
    this_run, replicate = _effects(rows) | _effects(attack_table), _effects(replicate_rows)
    found = [(tuple(_value(v) for v in m.groups()), text[max(0, m.start() - 250):m.start()])
             for m in EFFECT.finditer(text)]
    assert found, f"{page.name} states no effect with its interval"
    stale = [f for f, before in found
             if f not in this_run and not (f in replicate and REPLICATE_NAMED.search(before))]
    assert not stale, f"{page.name} states effects the published run did not measure: {stale}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_verdict_named_next_to_a_claim_id_is_the_published_verdict(page, rows):
    verdicts = {r.id: r.verdict for r in rows}
    named = VERDICT.findall(_text(page))
    wrong = [(cid, said, verdicts.get(cid)) for cid, said in named if verdicts.get(cid) != said]
    assert not wrong, f"{page.name}: (claim, verdict stated, verdict of the published run): {wrong}"


def test_the_intro_names_every_primary_claims_verdict(rows):
    text = _text(PAGES[0])
    for r in rows:
        if r.primary:
            sentence_after_id = rf"\({r.id}\b[^)]*\)(?:[^.]|\.(?=\d))*?"      # a decimal point ends no sentence
            assert re.search(sentence_after_id + rf"\b{r.verdict}\b", text), (r.id, r.verdict)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_run_date_is_the_date_chapter_1_was_run(page):
    stamp = json.loads((PUBLISHED / "01_models.json").read_text())["timestamp_utc"]
    run_day = datetime.fromisoformat(stamp).date()
    dates = RUN_DATE.findall(_text(page))
    assert dates and {datetime.strptime(d, "%d %B %Y").date() for d in dates} == {run_day}, dates


def test_the_readme_counts_the_published_verdicts(rows):
    counts = claims.count_verdicts(rows)
    text = " ".join(_text(PAGES[1]).split())
    m = re.search(r"Of (\d+) claims, (\d+) are supported", text)
    assert m and (int(m.group(1)), int(m.group(2))) == (len(rows), counts["supported"])
    for verdict in ("contradicted", "inconclusive", "not testable"):
        m = re.search(rf"(\d+) (?:is|are) {verdict}", text)
        assert m and int(m.group(1)) == counts[verdict], verdict
