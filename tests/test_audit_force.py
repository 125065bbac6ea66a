"""`--force` replaces only what a previous report wrote: its marker lists the files it wrote, and a folder holding
anything else (a user's file, a forged or older marker) is refused with one line, exit 2, nothing removed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from torchspectral.audit.cli import EXIT_INPUT_ERROR, main
from torchspectral.audit.destination import REPORT_MARKER

RUN = '[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "natural"\nimage = "img.npy"\ntext = "txt.npy"\n'


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    g = np.random.default_rng(0)
    image = g.standard_normal((80, 8)).astype(np.float32)
    np.save(folder / "img.npy", image)
    np.save(folder / "txt.npy", (image + 0.5 * g.standard_normal((80, 8))).astype(np.float32))
    (folder / "m.toml").write_text("[audit]\nbootstrap = 0\ntop_k_pairs = 0\n\n" + RUN)
    return folder / "m.toml"


def _audit(manifest: Path, out: Path, *flags: str) -> int:
    return main(["audit", str(manifest), "--out", str(out), "--quiet", *flags])


def _snapshot(folder: Path) -> dict[str, str]:
    def entry(p: Path) -> str:
        if p.is_symlink():
            return "-> " + os.readlink(p)
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"

    return {str(p.relative_to(folder)): entry(p) for p in sorted(folder.rglob("*"))}


def _refused(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("torchspectral audit: error:"), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture
def previous(manifest: Path, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    assert _audit(manifest, out) == 0
    return out


def test_the_marker_lists_every_file_the_report_wrote(previous) -> None:
    marker = json.loads((previous / REPORT_MARKER).read_text())
    written = {p.relative_to(previous).as_posix() for p in previous.rglob("*") if p.name != REPORT_MARKER}
    assert set(marker["files"]) | set(marker["folders"]) == written
    assert "plots" in marker["folders"] and "report.md" in marker["files"]


@pytest.mark.parametrize("added", ["notes.txt", "plots/mine.png", ".hidden"])
def test_a_file_the_report_did_not_write_is_never_deleted(manifest, previous, tmp_path, capsys, added) -> None:
    (previous / added).write_text("the user's own work")
    before = _snapshot(tmp_path)
    assert _audit(manifest, previous, "--force") == EXIT_INPUT_ERROR
    _refused(capsys, added, "nothing was touched")
    assert _snapshot(tmp_path) == before
    (previous / added).unlink()  # moved away: the report is a report again
    assert _audit(manifest, previous, "--force") == 0
    assert (previous / "report.md").is_file()


def test_a_listed_name_that_is_now_a_folder_or_a_link_is_refused(manifest, previous, tmp_path, capsys) -> None:
    (previous / "runs.csv").unlink()
    (previous / "runs.csv").mkdir()
    (previous / "report.md").unlink()
    (previous / "report.md").symlink_to(manifest)
    before = _snapshot(tmp_path)
    assert _audit(manifest, previous, "--force") == EXIT_INPUT_ERROR
    _refused(capsys, "nothing was touched")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("marker", ["{}", "", "not json", '{"tool": "torchspectral", "owner_pid": null}', "[]"])
def test_a_forged_or_older_marker_is_refused(manifest, tmp_path, capsys, marker) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / REPORT_MARKER).write_text(marker)
    (out / "thesis.tex").write_text("months of work")
    before = _snapshot(tmp_path)
    assert _audit(manifest, out, "--force") == EXIT_INPUT_ERROR
    _refused(capsys, REPORT_MARKER, "nothing was touched")
    assert _snapshot(tmp_path) == before


def test_a_marker_alone_that_lists_nothing_is_refused(manifest, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / REPORT_MARKER).write_text("{}")
    assert _audit(manifest, out, "--force") == EXIT_INPUT_ERROR
    _refused(capsys, "nothing was touched")
    assert (out / REPORT_MARKER).read_text() == "{}"


def test_the_demo_can_be_rerun_into_its_own_report(tmp_path) -> None:
    out = tmp_path / "demo"
    for _ in range(2):
        assert main(["demo", "--out", str(out), "--n", "100", "--n-boot", "0", "--quiet"]) in (0, 1)
    assert "demo-manifest.toml" in json.loads((out / REPORT_MARKER).read_text())["files"]
