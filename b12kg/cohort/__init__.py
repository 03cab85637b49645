"""Cohorts: stream many patient records through the rules on all cores (see runner.py)."""

from .runner import Summary, assess_cohort, output_files

__all__ = ["assess_cohort", "output_files", "Summary"]
