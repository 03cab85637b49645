"""b12kg: a knowledge-graph reasoner for vitamin B12 and ferritin read together.

>>> import b12kg
>>> a = b12kg.assess({"id": "x", "patient": {"sex": "male", "age_years": 61},
...                   "observations": {"b12": {"value": 95, "unit": "pmol/L"},
...                                    "ferritin": {"value": 7, "unit": "ug/L"}}})
>>> "CombinedB12IronDeficiency" in a.codes
True
"""

from ._version import __version__
from .api import assess, load_record
from .errors import B12kgError, InputError, Issue
from .explain.model import Assessment, Evidence, Finding, RuleRef, Threshold
from .inputs.record import PatientRecord, Result

__all__ = [
    "__version__", "assess", "load_record", "Assessment", "Finding", "Evidence", "Threshold", "RuleRef",
    "PatientRecord", "Result", "B12kgError", "InputError", "Issue",
]
