"""The documentation site runs as written: every python block of docs/*.md, the README's metric table, the build.

A python block is skipped only when the line right before its opening fence is the marker ``<!-- no-run -->``
(for a block that needs a GPU, torchrun or files the page cannot provide); the marker stays visible in the page's
source, and each use is listed by ``test_no_run_blocks_are_few``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from torchspectral.registry import metrics_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NO_RUN = "<!-- no-run -->"
MAX_NO_RUN = 3

# An opening ```python fence at the start of a line, its block, the closing fence.
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line of the opening fence, code, skipped) for every python block of a markdown text."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, match.group(1), before == NO_RUN))
    return blocks


PAGES = sorted(DOCS.glob("*.md"))
BLOCKS = [(page.name, *block) for page in PAGES for block in python_blocks(page.read_text())]


def test_the_docs_have_python_blocks() -> None:
    assert len([block for block in BLOCKS if not block[3]]) >= 5


def test_block_parser() -> None:
    text = "x\n```python\na = 1\n```\n<!-- no-run -->\n```python\nb = 2\n```\n```bash\nls\n```\n"
    assert python_blocks(text) == [(2, "a = 1\n", False), (6, "b = 2\n", True)]


def test_no_run_blocks_are_few() -> None:
    skipped = [f"{page}:{line}" for page, line, _, skip in BLOCKS if skip]
    assert len(skipped) <= MAX_NO_RUN, f"too many {NO_RUN} blocks: {skipped}"


@pytest.mark.parametrize(("page", "line", "code", "skip"), BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in BLOCKS])
def test_docs_example_runs(page: str, line: int, code: str, skip: bool, tmp_path: Path, monkeypatch) -> None:
    if skip:
        pytest.skip(f"{page}:{line} is marked {NO_RUN}")
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    # Line numbers of a traceback point into the page: pad the block to where it starts.
    source = "\n" * line + code
    exec(compile(source, str(DOCS / page), "exec"), {"__name__": "docs"})


def test_readme_metric_table_is_the_registry() -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- metrics-table:[^\n]*-->\n(.*?)\n<!-- /metrics-table -->", readme, re.DOTALL)
    assert match, "README.md has no metrics-table markers"
    assert match.group(1) == metrics_table(), "README's metric table differs from registry.metrics_table(): paste it"


def test_pages_do_not_point_outside_the_repository() -> None:
    for path in [ROOT / "README.md", *PAGES]:
        text = path.read_text()
        assert "../shared" not in text and "SPEC" not in text, f"{path.name} refers to a file outside the repository"


# A reference from the code into the docs: docs/<page>.md#<anchor>.
DOCS_LINK = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")
HEADING = re.compile(r"^#+\s+(.*?)\s*(?:\{#([\w-]+)\})?\s*$", re.MULTILINE)


def heading_anchors(text: str) -> set[str]:
    """The anchors of a page's headings: an explicit ``{#id}``, else the heading's slug (mkdocs' default toc)."""
    anchors = set()
    for title, explicit in HEADING.findall(text):
        anchors.add(explicit or re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", title).strip().lower()))
    return anchors


def test_heading_anchors() -> None:
    assert heading_anchors("# A page\n## Exit statuses {#exit}\n### The cost, in s\n") == {
        "a-page",
        "exit",
        "the-cost-in-s",
    }


def test_references_from_the_code_resolve_to_headings_of_the_docs() -> None:
    """Every ``docs/<page>.md#<anchor>`` in the package, kernels, examples, benchmarks and tests names a heading."""
    anchors = {page.name: heading_anchors(page.read_text()) for page in PAGES}
    files = [
        p
        for folder in ("torchspectral", "kernels", "examples", "benchmarks", "tests")
        for p in (ROOT / folder).rglob("*")
    ]
    broken, found = [], 0
    for path in files:
        if path.suffix not in (".py", ".json", ".md") or not path.is_file():
            continue
        text = path.read_text()
        # The reference is written from the spec and stays untouched; this file names the pattern it looks for.
        if "SPEC" + " §" in text and path.name not in ("reference.py", "test_docs.py"):
            broken.append(f"{path.relative_to(ROOT)}: a SPEC § reference (a file users do not have)")
        for page, anchor in DOCS_LINK.findall(text):
            found += 1
            if anchor not in anchors.get(page, set()):
                broken.append(f"{path.relative_to(ROOT)}: docs/{page}#{anchor}")
    assert found >= 30, "the code's references into the docs were not found"
    assert not broken, "references to headings that do not exist:\n" + "\n".join(broken)


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
    result = subprocess.run(
        [*command, "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    assert (site / "index.html").is_file() and (site / "api" / "index.html").is_file()
