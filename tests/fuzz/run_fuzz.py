#!/usr/bin/env python3
"""The long fuzz run (issue 5): the hypothesis properties of tests/test_fuzz_parsers.py,
tests/test_properties.py, tests/test_injection.py and tests/test_fuzz_families.py, with many more examples and a fresh random
seed per round, for a given number of minutes.

    python tests/fuzz/run_fuzz.py --minutes 10
    python tests/fuzz/run_fuzz.py --minutes 60 --parser-examples 2000 --property-scale 20 --log fuzz.log

Each round is one pytest run of those properties (nothing else) with
B12KG_FUZZ_RANDOM=1 (no derandomisation), B12KG_FUZZ_EXAMPLES (examples per parser property) and
B12KG_PROPERTY_EXAMPLES (a multiplier of the property tests' examples), and
--hypothesis-seed set to a new seed, printed so that a failing round can be replayed:

    B12KG_FUZZ_RANDOM=1 B12KG_FUZZ_EXAMPLES=500 B12KG_PROPERTY_EXAMPLES=10 \\
        python -m pytest tests/test_fuzz_parsers.py --hypothesis-seed=SEED

Rounds start until the time is up; the last one may run past it by the length of a round.
Exit status 0 when every round passed, 1 otherwise. Not collected by pytest (no test_ prefix)."""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = ["tests/test_fuzz_parsers.py", "tests/test_properties.py", "tests/test_injection.py",
         "tests/test_fuzz_families.py"]
# The hypothesis tests of those files (the fixed examples run in the ordinary test run).
SELECT = " or ".join([
    "mutated", "swapped", "validate_never_crashes", "any_text_as_patient_id", "same_quantity_in_another",
    "lowering_ferritin", "lowering_b12", "raising_crp", "safety_invariants_and_evidence_hold_for_every",
    "byte_identical_json_and_rdf",
    # tests/test_fuzz_families.py (issue 11): FHIR codings and ranges, dates and ages, RDF terms, YAML numbers
    "never_change_a_result", "range_that_applies", "dates_and_ages", "yaml_number_forms",
])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="start rounds for this long (default 10)")
    ap.add_argument("--parser-examples", type=int, default=500, help="examples per parser property per round")
    ap.add_argument("--property-scale", type=float, default=10.0, help="multiplier of the property tests' examples")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with b12kg's test dependencies")
    ap.add_argument("--log", type=Path, default=None, help="append every round's pytest output here")
    args = ap.parse_args(argv)

    deadline = time.monotonic() + args.minutes * 60
    env = dict(os.environ, B12KG_FUZZ_RANDOM="1", B12KG_FUZZ_EXAMPLES=str(args.parser_examples),
               B12KG_PROPERTY_EXAMPLES=str(args.property_scale), PYTHONPATH=str(REPO))
    rng = random.SystemRandom()
    rounds, failed, tests_run = 0, [], 0
    start = time.monotonic()
    while time.monotonic() < deadline or rounds == 0:
        seed = rng.randrange(2**32)
        rounds += 1
        t0 = time.monotonic()
        cmd = [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:logging", "-x",
               f"--hypothesis-seed={seed}", "-k", SELECT, *FILES]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        tail = [ln for ln in out.splitlines() if ln.strip()][-1:] or ["(no output)"]
        m = re.search(r"(\d+) passed", out)
        tests_run += int(m.group(1)) if m else 0
        status = "passed" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"round {rounds}: seed {seed}: {status} in {time.monotonic() - t0:.0f} s: {tail[0]}", flush=True)
        if args.log:
            with open(args.log, "a", encoding="utf-8") as fh:
                fh.write(f"===== round {rounds} seed {seed} exit {proc.returncode}\n{out}\n")
        if proc.returncode != 0:
            failed.append(seed)
            print("\n".join(out.splitlines()[-80:]), flush=True)
    minutes = (time.monotonic() - start) / 60
    print(f"\n{rounds} rounds in {minutes:.1f} min ({args.parser_examples} examples per parser property, "
          f"x{args.property_scale:g} property examples; {tests_run} property runs passed); "
          + (f"FAILED rounds, seeds: {failed}" if failed else "no failure"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
