"""Benchmarks import the float64 NumPy references from tests/ (one copy of each reference)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
