"""The version of b12kg. Modules below the package root import it from here, not from the root
(which imports the whole public API)."""

__version__ = "0.1.0"
