"""The README is checked against the real thing: its closed-world table names exactly the codes
that have a rule reading an absence."""

from __future__ import annotations

import re
from pathlib import Path

from b12kg.rules.threevalued import hand_written_rules

README = Path(__file__).resolve().parents[1] / "README.md"


def test_closed_world_table_matches_the_rules():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Findings that need the closed world", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| (\w+)", section, re.M)) - {"code"}
    # the hand-written rules: every generated three-valued companion (rules/unassessed.ttl) reads
    # the absence of its own finding, as the README says beside the table
    needed = {r.finding for r in hand_written_rules() if r.finding and r.closed_world}
    assert listed == needed


def test_quick_start_is_two_make_commands():
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^make (\w+)", quick, re.M)
    assert commands == ["demo", "test"]
