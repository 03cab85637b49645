"""Which unassessed findings a report lists (findings.md v2, S1): "The output lists an unassessed
finding when forcing it true and forcing it false would give different recommendation codes, and
says why." Checked against completions of the record: when two values the record allows give
different recommendations, the report must list an unassessed finding that decides them."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from b12kg.api import assess, read_file
from b12kg.explain.text import render_text
from b12kg.kb import finding_classes

CASES = Path(__file__).resolve().parents[1] / "vendor" / "shared" / "cases" / "valid"


def _recommendations(codes) -> set[str]:
    classes = finding_classes()
    return {c for c in codes if classes[c]["priority"]}


def _case(name: str) -> dict:
    case = read_file(CASES / f"{name}.yaml")
    case.pop("expect", None)
    return case


# Each record with an unknown value, and completions of it (the values the unknown may take); the completions of p47 and p51 disagree on the B12 route.
COMPLETIONS = {
    "p47-b12-at-most-133": [("observations", "b12", {"value": 100, "unit": "pmol/L"}),
                            ("observations", "b12", {"value": 133, "unit": "pmol/L"})],
    "p38-sex-not-recorded": [("patient", "sex", "female"), ("patient", "sex", "male")],
    "p55-sex-unknown-hb-124": [("patient", "sex", "female"), ("patient", "sex", "male")],
    "p51-censored-b12-low-folate-tingling": [("observations", "b12", {"value": 100, "unit": "pmol/L"}),
                                             ("observations", "b12", {"value": 149, "unit": "pmol/L"})],
}


def _completed(case: dict, where: str, key: str, value) -> dict:
    c = copy.deepcopy(case)
    c.setdefault(where, {})[key] = value
    return c


@pytest.mark.parametrize("name", sorted(COMPLETIONS))
def test_completions_that_change_recommendations_are_explained_by_a_listed_finding(name):
    case = _case(name)
    a = assess(case)
    assert a.unassessed, "the record leaves something undecided"
    listed = {f.code for f in a.unassessed if f.changes_recommendations}
    decided = set().union(*(f.changes_recommendations for f in a.unassessed))
    outcomes = [_recommendations(assess(_completed(case, *c)).codes) for c in COMPLETIONS[name]]
    differ = set().union(*outcomes) - set.intersection(*outcomes)
    # completions that disagree on a recommendation: the report lists a finding that decides one
    # of them (forcing one finding at a time, as the spec words it: a recommendation that depends on
    # several undecided findings together may be decided by none of them alone)
    if differ:
        assert listed and differ & decided, (sorted(differ), sorted(decided))
    # and what is listed names only recommendation codes
    assert decided <= set(_recommendations(decided))


def test_a_finding_that_changes_no_recommendation_is_not_listed_but_named():
    a = assess(_case("p38-sex-not-recorded"))
    by_code = {f.code: f for f in a.unassessed}
    assert by_code["FastTrackGIInvestigation"].changes_recommendations == ("FastTrackGIInvestigation",)
    assert by_code["Anemia"].changes_recommendations == ()
    text = render_text(a)
    listed = text.split("NOT ASSESSED", 1)[1]
    head, _, tail = listed.partition("Also not assessed, changing no recommendation:")
    assert "[FastTrackGIInvestigation]" in head and "[Anemia]" not in head
    assert "[Anemia]" in tail and "[MildAnemia]" in tail


def test_an_undecided_b12_lists_the_deficiency_with_the_intramuscular_route_it_decides():
    a = assess(_case("p47-b12-at-most-133"))
    f = next(u for u in a.unassessed if u.code == "VitaminB12Deficiency")
    assert "IntramuscularB12Replacement" in f.changes_recommendations
    listed = {u["code"]: u["changes_recommendations"] for u in a.to_json()["unassessed"]}
    assert list(listed["VitaminB12Deficiency"]) == list(f.changes_recommendations)
