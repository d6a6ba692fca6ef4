"""The package version (one place: the package, model cards and pyproject agree)."""

__version__ = "0.1.0"
