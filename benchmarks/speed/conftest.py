"""The speed suites import the float64 NumPy references and the planted coverage models from tests/ (one copy of
each)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
