"""b12kg: a knowledge-graph reasoner for vitamin B12 and ferritin read together."""

__version__ = "0.1.0"
