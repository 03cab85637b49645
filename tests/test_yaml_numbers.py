"""Case records are read as YAML 1.2 (issue 11, item 3): PyYAML's YAML 1.1 forms gave other values
without a word (hemoglobin 0130 read as octal 88 g/L, so Anemia; 1:30 read as sexagesimal 90;
pregnant: yes read as true) and a float of 19 significant digits was rounded (ferritin
29.99999999999999999 ug/L read as 30, so no LowFerritin)."""

from __future__ import annotations

from decimal import Decimal

import pytest

import b12kg
from b12kg import InputError


def _record(tmp_path, observations: str, patient: str = "{sex: female, age_years: 40}"):
    p = tmp_path / "r.yaml"
    p.write_text(f"id: y\npatient: {patient}\nobservations:\n{observations}", encoding="utf-8")
    return p


def test_a_leading_zero_is_decimal_not_octal(tmp_path):
    a = b12kg.assess(_record(tmp_path, "  hemoglobin: {value: 0130, unit: g/L}\n"))
    assert a.record_summary["results"]["hemoglobin"]["value_compared"] == "130"
    assert "Anemia" not in a.codes                       # 88 g/L would be anaemia


@pytest.mark.parametrize("value", ["1:30", "1_30", "0b101"])
def test_yaml_11_number_forms_are_refused_naming_the_field(tmp_path, value):
    with pytest.raises(InputError) as exc:
        b12kg.load_record(_record(tmp_path, f"  hemoglobin: {{value: {value}, unit: g/L}}\n"))
    assert "observations.hemoglobin.value" in str(exc.value) and value in str(exc.value)


@pytest.mark.parametrize("word", ["yes", "on", "y"])
def test_yaml_11_booleans_are_refused(tmp_path, word):
    with pytest.raises(InputError, match="patient.pregnant"):
        b12kg.load_record(_record(tmp_path, "  ferritin: {value: 20, unit: ug/L}\n",
                                  patient=f"{{sex: female, age_years: 30, pregnant: {word}}}"))


def test_a_float_keeps_every_digit(tmp_path):
    a = b12kg.assess(_record(tmp_path, "  ferritin: {value: 29.99999999999999999, unit: ug/L}\n"))
    assert a.record_summary["results"]["ferritin"]["value_compared"] == "29.99999999999999999"
    assert {"LowFerritin", "IronDeficiency"} <= set(a.codes)


def test_dates_and_plain_numbers_still_read(tmp_path):
    rec = b12kg.load_record(_record(tmp_path, "  ferritin: {value: 12.5, unit: ug/L, time: 2024-03-01}\n",
                                    patient="{sex: male, birth_date: 1960-03-02, specimen_date: 2024-03-01}"))
    assert rec.results["ferritin"].compared_value == Decimal("12.5")
    assert rec.age_years is not None and Decimal(63) < rec.age_years < Decimal(64)
