"""The finding codes of the shared spec (findings.md, version 2) are OWL classes of the ontology with
exactly those local names, under b12:Finding, each naming the claims findings.md gives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import rdflib
from rdflib.namespace import OWL, RDF, RDFS, SKOS

from b12kg.kb.build import merged_graph

REPO = Path(__file__).resolve().parents[1]
FINDINGS_MD = REPO / "vendor" / "shared" / "spec" / "findings.md"
B12 = rdflib.Namespace("https://w3id.org/b12kg/")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def spec_codes() -> dict[str, str]:
    """{code: claims cell} from every table of findings.md whose first header cell is 'code'."""
    codes: dict[str, str] = {}
    in_table = False
    for line in FINDINGS_MD.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells[0] == "code":
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set("-: "):
            continue
        # version 2 marks rows "Code **v2**" (new) and "Code (**changed**)"
        code = re.sub(r"\s*(\(\*\*changed\*\*\)|\*\*v2\*\*)\s*$", "", cells[0].replace("`", "")).strip()
        assert code not in codes, f"code {code} listed twice in findings.md"
        codes[code] = cells[-1]
    return codes


def expand_claims(cell: str) -> set[str] | None:
    """'C13 to C17, C19' -> {C13..C17, C19}; 'beyond' -> None."""
    if cell.strip() == "beyond":
        return None
    out: set[str] = set()
    for part in cell.split(","):
        m = re.fullmatch(r"\s*C(\d+)\s+to\s+C(\d+)\s*", part)
        if m:
            out |= {f"C{i:02d}" for i in range(int(m[1]), int(m[2]) + 1)}
        else:
            m = re.fullmatch(r"\s*(C\d\d)\s*", part)
            assert m, f"cannot read claims cell part {part!r}"
            out.add(m[1])
    return out


SPEC = spec_codes()


@pytest.fixture(scope="module")
def graph() -> rdflib.Graph:
    return merged_graph()


def test_findings_md_has_sixty_two_codes() -> None:
    assert len(SPEC) == 62      # version 2: the 40 codes of version 1 and 22 new ones


@pytest.mark.parametrize("code", sorted(SPEC))
def test_code_is_a_finding_class(graph: rdflib.Graph, code: str) -> None:
    cls = B12[code]
    assert (cls, RDF.type, OWL.Class) in graph, f"b12:{code} is not declared as an owl:Class"
    assert B12.Finding in set(graph.transitive_objects(cls, RDFS.subClassOf)), f"b12:{code} is not under b12:Finding"
    assert [str(n) for n in graph.objects(cls, SKOS.notation)] == [code]
    assert (cls, RDF.type, OWL.NamedIndividual) not in graph, "a finding class must not be punned as an individual"


@pytest.mark.parametrize("code", sorted(SPEC))
def test_code_names_the_claims_of_findings_md(graph: rdflib.Graph, code: str) -> None:
    expected = expand_claims(SPEC[code])
    encoded = {str(c).rsplit("/", 1)[-1] for c in graph.objects(B12[code], B12.claim)}
    beyond = (B12[code], B12.beyondClaims, rdflib.Literal(True)) in graph
    if expected is None:
        assert beyond and not encoded, f"{code}: findings.md says 'beyond'"
    else:
        assert encoded == expected and not beyond

