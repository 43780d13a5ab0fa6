"""Anpi: offline-first shelter registration and safety confirmation."""

__version__ = "0.1.0"
