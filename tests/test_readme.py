"""The README's examples run as written."""

from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = [block.split("```", 1)[0] for block in README.split("```python")[1:]]


def test_quick_example_is_short() -> None:
    assert len(BLOCKS[0].strip().splitlines()) <= 12


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})
