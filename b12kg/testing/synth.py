"""Seeded synthetic patients in the case format (shared/cases/README.md), for differential tests,
cohort runs and benchmarks.

``generate(n, seed)`` yields valid records: about six results each, in the units laboratories
report (g/dL and g/L haemoglobin; pg/mL, ng/L and pmol/L B12; ng/mL and ug/L ferritin; ng/mL,
ug/L and nmol/L folate; mg/dL and mg/L CRP; nmol/L and umol/L MMA; ug/dL and umol/L iron and
TIBC), some censored ('<L', '<=L', '>L', '>=L'), with or without sex, pregnancy with or without
gestational weeks, ages from infants to the old and at every age-band edge, every context word
and symptom of findings.md, and all three profiles. With ``edge_cases`` a share of the patients
carry values exactly at a cut-off of ontology/modules/thresholds.ttl, in each unit the cut-off
states (and in other accepted units when the conversion is exact, e.g. 10.5 g/dL for 105 g/L),
just above and just below it, and censored at it; such a patient's sex, age, pregnancy,
trimester and profile are drawn from the cut-off's own population, so the cut-off applies.

Everything clinical is read from the ontology (cut-offs, populations and age bands by SPARQL;
accepted units, factors and plausible ranges through ``kb.vocabulary()``); the value
distributions below are only the generator's scenario mix. Every generated value lies inside the
plausible range of its test, so every record is accepted by the loader (the tests check this).

``generate_invalid(n, seed)`` yields corrupt records, each naming the field that is wrong.
"""

from __future__ import annotations

import functools
import random
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator

from ..inputs.normalise import MIN_PREGNANCY_AGE
from ..kb import ontology_graph, vocabulary
from ..rdf.terms import B12NS, sparql_prefixes

__all__ = ["generate", "generate_invalid", "edge_values", "age_band_edges", "EdgeValue", "Population"]

_B12 = B12NS

SEX_KEYWORD = {"Female": "female", "Male": "male", "SexNotRecorded": None}


# ---------------------------------------------------------------------------------------------
# What the ontology says: populations and cut-offs
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Population:
    iri: str
    sexes: tuple[str, ...]            # local names: Female, Male, SexNotRecorded
    pregnancy: tuple[str, ...]        # Pregnant, NotPregnant
    trimesters: tuple[str, ...]       # FirstTrimester, ..., TrimesterUnknown, NoTrimester
    band: str                         # ClosedAgeBand, OpenAgeBand, AnyAge
    age_from: Decimal | None
    age_under: Decimal | None
    age_statuses: tuple[str, ...] = ()   # AgeNotRecorded: admitted when the age is not recorded


@dataclass(frozen=True)
class EdgeValue:
    """A value at or next to one cut-off, as a laboratory would report it."""

    threshold: str                    # local name of the b12th: node
    test_key: str                     # analyte key
    unit: str                         # the unit the value is given in
    value: object                     # int, float or a censored string such as '<30'
    relation: str                     # at, below, above, censored-<, censored-<=, censored->, censored->=
    limit: Decimal                    # the cut-off (or band end) in the unit it is stated in
    limit_unit: str
    population: Population
    profiles: tuple[str, ...]


def _local(iri) -> str:
    s = str(iri)
    return s[len(_B12):] if s.startswith(_B12) else s.rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=1)
def _populations() -> dict[str, Population]:
    g = ontology_graph()
    q = sparql_prefixes(("b12",)) + """
    SELECT ?pop ?band ?from ?under WHERE {
      ?pop a b12:Population ; b12:ageBand ?band .
      OPTIONAL { ?pop b12:ageFrom ?from } OPTIONAL { ?pop b12:ageUnder ?under } }"""
    out = {}
    for pop, band, afrom, under in g.query(q):
        def objs(p):
            return tuple(sorted(_local(o) for o in g.objects(pop, _uri(_B12 + p))))
        out[str(pop)] = Population(
            iri=str(pop), sexes=objs("admitsSex"), pregnancy=objs("admitsPregnancyStatus"),
            trimesters=objs("admitsTrimester"), band=_local(band),
            age_from=None if afrom is None else Decimal(str(afrom)),
            age_under=None if under is None else Decimal(str(under)),
            age_statuses=objs("admitsAgeStatus"))
    return out


def _uri(s: str):
    import rdflib

    return rdflib.URIRef(s)


@functools.lru_cache(maxsize=1)
def _cutoffs() -> tuple[tuple, ...]:
    """(threshold IRI, test key, criterion, unit, value, lower, upper, population IRI, profiles)
    for every limit of every cut-off, in a stable order."""

    g = ontology_graph()
    q = sparql_prefixes(("b12",)) + """
    SELECT ?thr ?key ?crit ?unit ?v ?lo ?hi ?pop
           (GROUP_CONCAT(DISTINCT ?pname; separator=" ") AS ?profiles) WHERE {
      ?thr a b12:Threshold ; b12:test ?test ; b12:criterion ?crit ; b12:population ?pop ;
           b12:limit ?lim ; b12:inProfile ?prof .
      ?prof b12:profileName ?pname .
      ?test b12:analyteKey ?key .
      ?lim b12:ucumUnit ?unit .
      OPTIONAL { ?lim b12:numericValue ?v }
      OPTIONAL { ?lim b12:lowerValue ?lo ; b12:upperValue ?hi }
    } GROUP BY ?thr ?key ?crit ?unit ?v ?lo ?hi ?pop"""
    rows = []
    for thr, key, crit, unit, v, lo, hi, pop, profiles in g.query(q):
        rows.append((str(thr), str(key), _local(crit), str(unit),
                     None if v is None else Decimal(str(v)), None if lo is None else Decimal(str(lo)),
                     None if hi is None else Decimal(str(hi)), str(pop), tuple(sorted(str(profiles).split()))))
    rows.sort(key=lambda r: (r[0], r[3]))
    return tuple(rows)


@functools.lru_cache(maxsize=1)
def age_band_edges() -> tuple[Decimal, ...]:
    """Every ageFrom / ageUnder of the ontology's populations."""
    edges = set()
    for p in _populations().values():
        for a in (p.age_from, p.age_under):
            if a is not None:
                edges.add(a)
    return tuple(sorted(edges))


def _step(d: Decimal) -> Decimal:
    """A step just finer than the number's own precision (30 -> 0.1, 14.5 -> 0.01, 0.28 -> 0.001)."""
    exp = d.normalize().as_tuple().exponent
    places = max(0, -int(exp)) + 1
    return Decimal(1).scaleb(-places)


def _num(d: Decimal) -> int | float:
    """A YAML-like number for a decimal: int when whole, else the float whose repr is the decimal."""
    d = d.normalize()
    if d == d.to_integral_value():
        return int(d)
    f = float(d)
    assert Decimal(repr(f)) == d, d
    return f


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")


def _compared_unit(info, unit: str) -> str:
    """The unit a value given in ``unit`` is compared in (profile-default.md: its own unit when a
    cut-off states it, or the same unit spelled otherwise; else the canonical unit), as the loader
    compares it."""

    return vocabulary().compared_units[(info.iri, unit)][0]


def _in_plausible(info, unit: str, value: Decimal) -> bool:
    canon = value * info.units[unit].factor_to_canonical
    return info.plausible_low <= canon <= info.plausible_high


@functools.lru_cache(maxsize=1)
def edge_values() -> tuple[EdgeValue, ...]:
    """Every edge value: each cut-off (and each end of each band) in each unit it is stated in,
    exactly, just below and just above, censored at it with each comparator, and in each other
    accepted unit that converts to it exactly and is compared in the stated unit. Ordered so that
    the exact values of all cut-offs come first, then the near values, then the rest."""

    vocab = vocabulary()
    pops = _populations()
    tiers: dict[int, list[EdgeValue]] = {0: [], 1: [], 2: [], 3: []}
    for thr, key, crit, unit, v, lo, hi, pop, profiles in _cutoffs():
        info = vocab.tests_by_key[key]
        name = thr.rsplit("/", 1)[-1]
        population = pops[pop]
        points = [v] if v is not None else [lo, hi]
        for c in points:
            if c is None:
                continue
            step = _step(c)
            cands = [(0, "at", c), (1, "below", c - step), (1, "above", c + step)]
            for tier, rel, value in cands:
                if _in_plausible(info, unit, value):
                    tiers[tier].append(EdgeValue(name, key, unit, _num(value), rel, c, unit, population, profiles))
            for cmp_ in ("<", "<=", ">", ">="):
                if _in_plausible(info, unit, c):
                    tiers[2].append(EdgeValue(name, key, unit, f"{cmp_}{_plain(c)}", f"censored-{cmp_}", c, unit,
                                              population, profiles))
            # the same cut-off in another accepted unit, when the conversion is exact
            fs = info.units[unit].factor_to_canonical
            for other, uinfo in sorted(info.units.items()):
                if other == unit or _compared_unit(info, other) != unit:
                    continue
                for tier, rel, value in cands:
                    q = value * fs / uinfo.factor_to_canonical
                    if q * uinfo.factor_to_canonical != value * fs or q != q.quantize(Decimal("0.0001")):
                        continue
                    if _in_plausible(info, other, q):
                        tiers[3 if tier else 0].append(EdgeValue(name, key, other, _num(q), rel, c, unit, population, profiles))
    return tuple(tiers[0] + tiers[1] + tiers[3] + tiers[2])


# ---------------------------------------------------------------------------------------------
# The scenario mix (generator parameters, not clinical knowledge)
# ---------------------------------------------------------------------------------------------
# Units each analyte is reported in, with weights, and decimals per unit.
_UNITS = {
    "hemoglobin": ((("g/L", 0), 6), (("g/dL", 1), 4)),
    "mcv": ((("fL", 0), 1),),
    "rdw": ((("%", 1), 1),),
    "mch": ((("pg", 1), 1),),
    "b12": ((("pmol/L", 0), 40), (("pg/mL", 0), 35), (("ng/L", 0), 25)),
    "holotc": ((("pmol/L", 0), 1),),
    "ferritin": ((("ug/L", 0), 6), (("ng/mL", 1), 4)),
    "folate": ((("nmol/L", 1), 4), (("ng/mL", 1), 4), (("ug/L", 1), 2)),
    "crp": ((("mg/L", 1), 7), (("mg/dL", 2), 3)),
    "agp": ((("g/L", 2), 7), (("mg/dL", 0), 3)),
    "tsat": ((("%", 0), 1),),
    "iron": ((("umol/L", 1), 1), (("ug/dL", 0), 1)),
    "tibc": ((("umol/L", 1), 1), (("ug/dL", 0), 1)),
    "mma": ((("umol/L", 2), 6), (("nmol/L", 0), 4)),
    "homocysteine": ((("umol/L", 1), 1),),
    "reticulocytes": ((("%", 1), 1),),
    "ldh": ((("U/L", 0), 1),),
}

# Canonical-unit ranges per scenario; analytes not named take the "normal" range.
_NORMAL = {
    "hemoglobin": (118, 165), "mcv": (80, 99), "rdw": (11.5, 14.8), "mch": (26, 33),
    "b12": (150, 700), "holotc": (30, 150), "ferritin": (15, 300), "folate": (6, 40),
    "crp": (0.2, 8), "agp": (0.5, 1.2), "tsat": (15, 45), "iron": (8, 30), "tibc": (45, 80),
    "mma": (0.1, 0.35), "homocysteine": (5, 15), "reticulocytes": (0.5, 2.5), "ldh": (120, 250),
}
_SCENARIOS = (
    # name, weight, overrides, analytes always included
    ("normal", 26, {}, ()),
    ("iron-deficiency", 14, {"ferritin": (2, 35), "hemoglobin": (70, 125), "mcv": (62, 86), "tsat": (3, 18),
                             "rdw": (14, 22), "iron": (2, 10), "tibc": (60, 90)}, ("ferritin", "hemoglobin")),
    ("b12-deficiency", 12, {"b12": (40, 180), "hemoglobin": (55, 125), "mcv": (96, 128), "mma": (0.25, 3.5),
                            "holotc": (5, 45), "homocysteine": (14, 80), "ldh": (250, 2500)}, ("b12", "hemoglobin")),
    ("combined", 6, {"b12": (40, 170), "ferritin": (3, 40), "hemoglobin": (60, 120), "mcv": (76, 102),
                     "rdw": (15, 24), "mma": (0.3, 2.5)}, ("b12", "ferritin")),
    ("indeterminate-b12", 9, {"b12": (125, 265), "holotc": (20, 80), "mma": (0.15, 0.6)}, ("b12",)),
    ("inflammation", 10, {"crp": (4, 180), "agp": (0.8, 2.8), "ferritin": (20, 700), "tsat": (8, 25),
                          "hemoglobin": (85, 135)}, ("crp", "ferritin")),
    ("iron-overload", 5, {"ferritin": (140, 3000), "tsat": (40, 95), "iron": (28, 45), "tibc": (40, 55)},
     ("ferritin", "tsat")),
    ("folate-deficiency", 6, {"folate": (1.0, 8.0), "mcv": (95, 120), "hemoglobin": (80, 130)}, ("folate",)),
    ("wide", 12, {"hemoglobin": (45, 200), "mcv": (55, 135), "rdw": (9, 30), "b12": (30, 2000),
                  "holotc": (3, 300), "ferritin": (1, 5000), "folate": (1, 60), "crp": (0.1, 300),
                  "agp": (0.2, 4), "tsat": (2, 98), "mma": (0.05, 8)}, ()),
)
# Probability that a panel includes each analyte (about six results a patient).
_INCLUDE = (
    ("hemoglobin", 0.92), ("b12", 0.78), ("ferritin", 0.82), ("mcv", 0.72), ("crp", 0.6), ("folate", 0.38),
    ("rdw", 0.35), ("tsat", 0.22), ("mma", 0.12), ("holotc", 0.1), ("agp", 0.06), ("mch", 0.1),
    ("homocysteine", 0.03), ("reticulocytes", 0.03), ("ldh", 0.03),
)
_CENSORABLE = ("b12", "ferritin", "crp", "folate", "mma", "holotc", "agp", "tsat")
_PROFILES = (("default", 80), ("who-2020", 10), ("who-2011", 10))
_COMPARATORS = ("<", "<=", ">", ">=")


def _weighted(pairs):
    items = [p[0] for p in pairs]
    cum = []
    total = 0
    for p in pairs:
        total += p[1]
        cum.append(total)
    return items, cum


class _Tables:
    """Everything the generator needs, computed once per process."""

    def __init__(self) -> None:
    
        vocab = vocabulary()
        self.vocab = vocab
        # postpartum is left out: a pregnant record with it is refused (findings.md v2), and the
        # generator draws words before pregnancy; postpartum is covered by rule cases instead
        self.contexts = tuple(sorted(w for w in vocab.contexts if w != "postpartum"))
        self.symptoms = tuple(sorted(vocab.symptoms))
        self.profiles, self.profile_cum = _weighted(_PROFILES)
        self.age_edges = age_band_edges()
        self.edges = edge_values()
        self.edges_by_key: dict[str, list[EdgeValue]] = {}
        for e in self.edges:
            self.edges_by_key.setdefault(e.test_key, []).append(e)
        # units: (unit, decimals, factor as float, low and high of the plausible range in that unit)
        self.units = {}
        for key, opts in _UNITS.items():
            info = vocab.tests_by_key[key]
            rows = []
            for (unit, dec), w in opts:
                f = info.units[unit].factor_to_canonical
                rows.append(((unit, dec, float(f), float(info.plausible_low / f), float(info.plausible_high / f)), w))
            self.units[key] = _weighted(rows)
        self.loinc = {k: tuple(sorted(i.loinc)) for k, i in vocab.tests_by_key.items() if i.loinc}
        self.scenarios = []
        for name, w, over, always in _SCENARIOS:
            ranges = dict(_NORMAL)
            ranges.update(over)
            for key, (lo, hi) in ranges.items():
                info = vocab.tests_by_key[key]
                if not (float(info.plausible_low) <= lo < hi <= float(info.plausible_high)):
                    raise ValueError(f"scenario {name}: {key} range {lo}-{hi} is outside the plausible range")
            panel = []
            for key, p in _INCLUDE:
                lo, hi = ranges[key]
                units, cum = self.units[key]
                panel.append((key, 1.0 if key in always else p, float(lo), float(hi - lo), tuple(units), tuple(cum),
                              key in _CENSORABLE))
            self.scenarios.append((name, ranges, always, tuple(panel)))
        self.scenario_cum = _weighted([(i, s[1]) for i, s in enumerate(_SCENARIOS)])[1]


@functools.lru_cache(maxsize=1)
def _tables() -> _Tables:
    return _Tables()


def _pick(rng: random.Random, items, cum):
    if len(items) == 1:
        return items[0]
    return items[bisect_right(cum, rng.random() * cum[-1])]


def _fmt_value(x: float, dec: int):
    if dec == 0:
        return int(round(x))
    return round(x, dec)


def _value(rng: random.Random, t: _Tables, key: str, lo: float, hi: float, censor: bool) -> dict:
    units, cum = t.units[key]
    unit, dec, f, plo, phi = _pick(rng, units, cum)
    x = (lo + (hi - lo) * rng.random()) / f
    v = int(round(x)) if dec == 0 else round(x, dec)
    if not (plo <= v <= phi):            # rounding at a plausible bound: step back inside
        v = _fmt_value(min(max(x, plo * 1.01 + 10 ** -dec), phi * 0.99), dec)
    if censor and key in _CENSORABLE and rng.random() < 0.025:
        cmp_ = ("<", "<=", ">", ">=")[rng.randrange(4)]
        return {"value": f"{cmp_}{v}", "unit": unit}
    return {"value": v, "unit": unit}


# ---------------------------------------------------------------------------------------------
# Demographics
# ---------------------------------------------------------------------------------------------
def _random_age(rng: random.Random, t: _Tables):
    r = rng.random()
    if r < 0.66:
        return rng.randrange(18, 95)
    if r < 0.76:
        return round(rng.uniform(0.5, 18), 2)
    if r < 0.80:
        return round(rng.uniform(0, 0.5), 2)
    if r < 0.97:
        e = t.age_edges[rng.randrange(len(t.age_edges))]
        return _num(e) if rng.random() < 0.6 or e <= 0 else _num(e - Decimal("0.01"))   # an edge at 0 has no age below it
    return None


def _random_patient(rng: random.Random, t: _Tables) -> dict:
    patient: dict = {}
    age = _random_age(rng, t)
    r = rng.random()
    sex = "female" if r < 0.52 else "male" if r < 0.96 else None
    if sex:
        patient["sex"] = sex
    if age is not None:
        patient["age_years"] = age
    # the rare odd pregnancy (any sex, unknown age) is never under MIN_PREGNANCY_AGE, which the loader
    # refuses; the draw is made either way, so the stream of a seed is unchanged
    if (sex == "female" and age is not None and 15 <= age < 46 and rng.random() < 0.18) or (
            rng.random() < 0.003 and (age is None or age >= MIN_PREGNANCY_AGE)):
        patient["pregnant"] = True
        if rng.random() < 0.7:
            patient["gestational_weeks"] = (13, 14, 27, 28)[rng.randrange(4)] if rng.random() < 0.3 else rng.randrange(4, 42)
    elif rng.random() < 0.1:
        patient["pregnant"] = False
    return patient


_TRIMESTER_WEEKS = {"FirstTrimester": (0, 13), "SecondTrimester": (14, 27), "ThirdTrimester": (28, 42)}


def _patient_for(rng: random.Random, pop: Population) -> dict:
    """Demographics inside a population, at its age-band edges about half the time."""
    patient: dict = {}
    sexes = pop.sexes
    if "Female" in sexes and "Male" in sexes:
        r = rng.random()
        sex = "Female" if r < 0.47 else "Male" if r < 0.94 or "SexNotRecorded" not in sexes else "SexNotRecorded"
    else:
        sex = sexes[rng.randrange(len(sexes))]
    child_band = pop.age_under is not None and pop.age_under <= 15
    if "NotPregnant" in pop.pregnancy and ("Pregnant" not in pop.pregnancy or child_band or rng.random() < 0.85):
        pregnant = False
    else:
        pregnant = True
        if sex == "Male" and "Female" in sexes and rng.random() < 0.9:
            sex = "Female"
    if SEX_KEYWORD[sex]:
        patient["sex"] = SEX_KEYWORD[sex]
    if pop.band == "ClosedAgeBand":
        lo, hi = pop.age_from, pop.age_under
        r = rng.random()
        age = lo if r < 0.3 else hi - Decimal("0.01") if r < 0.55 else Decimal(str(round(rng.uniform(float(lo), float(hi) - 0.01), 2)))
        patient["age_years"] = _num(age)
    elif pop.band == "OpenAgeBand":
        lo = pop.age_from
        if pregnant:
            age = max(lo, Decimal(rng.randrange(16, 45)))
        else:
            age = lo if rng.random() < 0.3 else lo + Decimal(rng.randrange(0, 60))
        if "AgeNotRecorded" not in pop.age_statuses or rng.random() < 0.95:
            patient["age_years"] = _num(age)
    else:
        if rng.random() < 0.95:
            patient["age_years"] = rng.randrange(16, 45) if pregnant else rng.randrange(1, 90)
    if pregnant:
        patient["pregnant"] = True
        tris = [x for x in pop.trimesters if x != "NoTrimester"]
        tri = tris[rng.randrange(len(tris))]
        if tri in _TRIMESTER_WEEKS:
            a, b = _TRIMESTER_WEEKS[tri]
            patient["gestational_weeks"] = (a, b)[rng.randrange(2)] if rng.random() < 0.5 else rng.randint(a, b)
    elif rng.random() < 0.1:
        patient["pregnant"] = False
    return patient


def _admits(pop: Population, patient: dict) -> bool:
    sex = {"female": "Female", "male": "Male"}.get(patient.get("sex"), "SexNotRecorded")
    if sex not in pop.sexes:
        return False
    pregnant = bool(patient.get("pregnant")) or "gestational_weeks" in patient
    if ("Pregnant" if pregnant else "NotPregnant") not in pop.pregnancy:
        return False
    if pregnant:
        w = patient.get("gestational_weeks")
        tri = "TrimesterUnknown" if w is None else "FirstTrimester" if w < 14 else "SecondTrimester" if w < 28 else "ThirdTrimester"
    else:
        tri = "NoTrimester"
    if tri not in pop.trimesters:
        return False
    if pop.band == "AnyAge":
        return True
    age = patient.get("age_years")
    if age is None:
        return "AgeNotRecorded" in pop.age_statuses
    age = Decimal(str(age))
    if age < pop.age_from:
        return False
    return pop.band != "ClosedAgeBand" or age < pop.age_under


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------
def _observations(rng: random.Random, t: _Tables, scenario, fixed: dict) -> dict:
    """A panel: each analyte with its inclusion probability (always the scenario's own), each value
    uniform in the scenario's canonical range, reported in a weighted choice of units."""
    rnd = rng.random
    obs: dict = {}
    for key, p, lo, span, units, cum, censorable in scenario[3]:
        if key in fixed:
            obs[key] = fixed[key]
            continue
        if p < 1.0 and rnd() >= p:
            continue
        unit, dec, f, plo, phi = units[bisect_right(cum, rnd() * cum[-1])] if len(units) > 1 else units[0]
        x = (lo + span * rnd()) / f
        v = int(round(x)) if dec == 0 else round(x, dec)
        if not (plo <= v <= phi):            # rounding at a plausible bound: step back inside
            v = _fmt_value(min(max(x, plo * 1.01 + 10 ** -dec), phi * 0.99), dec)
        if censorable and rnd() < 0.025:
            obs[key] = {"value": f"{_COMPARATORS[int(rnd() * 4)]}{v}", "unit": unit}
        else:
            obs[key] = {"value": v, "unit": unit}
    for key in fixed:
        if key not in obs:
            obs[key] = fixed[key]
    if rnd() < 0.12 and "tsat" not in obs:   # iron and TIBC; TSAT then derived by the loader
        ranges = scenario[1]
        obs["iron"] = _value(rng, t, "iron", *ranges["iron"], censor=False)
        obs["tibc"] = _value(rng, t, "tibc", *ranges["tibc"], censor=False)
    mma = obs.get("mma")
    if mma is not None and rnd() < 0.3 and not isinstance(mma["value"], str):
        # the laboratory's own upper reference limit, in the result's unit; sometimes exactly the value
        base = 0.4 if mma["unit"] == "umol/L" else 400
        mma = obs["mma"] = dict(mma)
        mma["ref_high"] = mma["value"] if rnd() < 0.2 and mma["value"] > 0 else base
    if rnd() < 0.04:
        obs["if_antibody"] = {"value": "positive" if rnd() < 0.5 else "negative"}
    if rnd() < 0.08 and obs:                 # some results under a LOINC code instead of the key
        keys = list(obs)
        key = keys[int(rnd() * len(keys))]
        codes = t.loinc.get(key)
        if codes:
            obs[codes[int(rnd() * len(codes))]] = obs.pop(key)
    return obs


def _words(rng: random.Random, t: _Tables) -> tuple[list, list]:
    rnd = rng.random
    symptoms: list = []
    context: list = []
    if rnd() < 0.4:
        s = t.symptoms
        symptoms = sorted({s[int(rnd() * len(s))] for _ in range(1 + int(rnd() * 2))})
    if rnd() < 0.45:
        c = t.contexts
        context = sorted({c[int(rnd() * len(c))] for _ in range(1 + int(rnd() * 2))})
        aliases = sorted(vocabulary().context_aliases)
        if rnd() < 0.02 and aliases:    # an alias (findings.md v2): read as its word; unknown words are refused
            context.append(aliases[int(rnd() * len(aliases))])
    return symptoms, context


def generate(n: int, seed: int = 0, *, edge_cases: bool = True) -> Iterator[dict]:
    """``n`` synthetic patients in the case format (without ``expect``), the same for the same
    seed. With ``edge_cases``, every second patient carries a value at or next to a cut-off,
    taken in turn from ``edge_values()`` (exact values of every cut-off first), with
    demographics and profile from that cut-off's population."""
    t = _tables()
    rng = random.Random(seed)
    edges = t.edges
    n_edges = len(edges)
    k = 0
    items = t.scenarios
    cum = t.scenario_cum
    for i in range(n):
        scenario = _pick(rng, items, cum)
        fixed: dict = {}
        if edge_cases and i % 2 == 0:
            e = edges[k % n_edges]
            k += 1
            patient = _patient_for(rng, e.population)
            profile = e.profiles[int(rng.random() * len(e.profiles))]
            fixed[e.test_key] = {"value": e.value, "unit": e.unit}
            # more edge values on other analytes, when their cut-off's population admits this patient
            for key, cands in t.edges_by_key.items():
                if key != e.test_key and rng.random() < 0.15:
                    c = cands[int(rng.random() * len(cands))]
                    if profile in c.profiles and _admits(c.population, patient):
                        fixed[key] = {"value": c.value, "unit": c.unit}
        else:
            patient = _random_patient(rng, t)
            profile = _pick(rng, t.profiles, t.profile_cum)
        symptoms, context = _words(rng, t)
        if patient.get("pregnant"):         # a record both pregnant and postpartum is refused
            context = [w for w in context if w != "postpartum"]
        yield {
            "id": f"synth-{seed}-{i:07d}",
            "patient": patient,
            "observations": _observations(rng, t, scenario, fixed),
            "symptoms": symptoms,
            "context": context,
            "profile": profile,
        }


# ---------------------------------------------------------------------------------------------
# Invalid records
# ---------------------------------------------------------------------------------------------
_INVALID_KINDS = ("wrong-unit", "missing-unit", "not-a-number", "unknown-analyte", "implausible-value", "refused-code")


def generate_invalid(n: int, seed: int = 0) -> Iterator[dict]:
    """``n`` corrupt records: a valid synthetic patient with one thing broken. Each record has
    ``corruption: {kind, field}`` and ``expect: {error: true, error_mentions: [field]}`` (the
    shared invalid-case format): the loader must refuse it with a message naming the field."""
    t = _tables()
    vocab = t.vocab
    rng = random.Random(seed ^ 0x5EED)
    refused = sorted(vocab.refused_codes)
    for i, rec in enumerate(generate(n, seed, edge_cases=False)):
        kind = _INVALID_KINDS[i % len(_INVALID_KINDS)]
        obs = rec["observations"]
        numeric = [k for k in obs if k in vocab.tests_by_key and not vocab.tests_by_key[k].qualitative]
        key = numeric[rng.randrange(len(numeric))] if numeric else "ferritin"
        info = vocab.tests_by_key[key]
        if key not in obs:
            obs[key] = {"value": _num(info.plausible_low + 1) if info.plausible_low is not None else 1,
                        "unit": info.canonical_unit}
        entry = obs[key]
        if kind == "wrong-unit":
            wrong = ("mmol/L", "g/dL", "kg", "mL", "U/L", "%")
            choices = [u for u in wrong if u not in info.units]
            entry["unit"] = choices[rng.randrange(len(choices))]
            field = f"observations.{key}.unit"
        elif kind == "missing-unit":
            if rng.random() < 0.5:
                entry.pop("unit", None)
            else:
                entry["unit"] = ""
            field = f"observations.{key}.unit"
        elif kind == "not-a-number":
            entry["value"] = ("n/a", "high", "12,5", "", "<>3", "1e", "--4")[rng.randrange(7)]
            field = f"observations.{key}.value"
        elif kind == "unknown-analyte":
            bad = ("vitamin-z", "serum-gold", "b13", "ferritine")[rng.randrange(4)]
            obs[bad] = {"value": 5, "unit": "mg/L"}
            field = f"observations.{bad}"
        elif kind == "implausible-value":
            unit = info.canonical_unit
            hi = info.plausible_high
            entry["unit"] = unit
            entry["value"] = _num(hi * 2 + 1) if rng.random() < 0.7 else -1
            entry.pop("ref_high", None)
            field = f"observations.{key}.value"
        else:  # refused-code
            code = refused[rng.randrange(len(refused))]
            info2 = vocab.refused_codes[code][0]
            obs[code] = {"value": 10, "unit": info2.canonical_unit}
            field = f"observations.{code}"
        rec["id"] = f"synth-invalid-{seed}-{i:07d}"
        rec["corruption"] = {"kind": kind, "field": field}
        rec["expect"] = {"error": True, "error_mentions": [field]}
        yield rec
