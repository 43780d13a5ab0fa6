"""Generated and curated data tables for :mod:`matching` (no I/O at import beyond Python modules)."""
