"""The README's examples run as written, and the README stays a short front page."""

from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = [block.split("```", 1)[0] for block in README.split("```python")[1:]]


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= 200  # the rest lives in docs/


def test_readme_names_the_test_command() -> None:
    assert "make test" in README  # CI runs `make test`


def test_quick_example_is_short() -> None:
    assert len(BLOCKS[0].strip().splitlines()) <= 12


def test_quick_example_covers_the_package() -> None:
    # A function, a streaming torchmetrics Metric, a loss and the verdict, in the one example.
    for name in ("ts.sas(", "ts.metrics.", "ts.nn.", "ts.imbalance_verdict("):
        assert name in BLOCKS[0], name


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})
