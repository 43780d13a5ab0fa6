"""Japanese name, date and address normalisation and record linkage.

This package is the ground floor (ARCHITECTURE.md §8): it imports nothing from app/, sync/ or the web
layer, takes plain data and returns plain data, so the CLI, the hub, the UI and the benchmarks
all call the same engine.
"""
