"""Helpers for testing b12kg and what is built on it (like ``polars.testing``): synthetic patients
(``synth``) and the acceptance-case runner (``cases``, also ``b12kg cases``)."""
