"""Per-symbol Mamba (selective state-space) forecasting library."""

__version__ = "0.1.0"
