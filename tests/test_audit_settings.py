"""The audit's settings (command-line flags and the manifest's [audit] table) are checked before any embedding is
read: a bad device, preset or seed is one line and exit status 2, not a failure of every run after the reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from torchspectral.audit import readers
from torchspectral.audit.cli import EXIT_INPUT_ERROR, main

RUN = '[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "natural"\nimage = "img.npy"\ntext = "txt.npy"\n'


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    g = np.random.default_rng(0)
    image = g.standard_normal((80, 16)).astype(np.float32)
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "txt.npy", (image + 0.5 * g.standard_normal((80, 16))).astype(np.float32))
    path = tmp_path / "m.toml"
    path.write_text("[audit]\nbootstrap = 0\n\n" + RUN)
    return path


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The runs whose embeddings the audit read."""
    seen: list[str] = []
    original = readers.read_run

    def counting(spec):
        seen.append(spec.name)
        return original(spec)

    monkeypatch.setattr(readers, "read_run", counting)
    return seen


BAD_FLAGS = [
    (["--device", "bogus"], "--device"),
    (["--device", "cuda:99"], "--device"),
    (["--device", "meta"], "--device"),
    (["--presets", "bogus"], "--presets"),
    (["--presets", "default,"], "--presets"),
    (["--seed", str(10**23)], "--seed"),
    (["--seed", "-1"], "--seed"),
]
if not torch.cuda.is_available():
    BAD_FLAGS.append((["--device", "cuda"], "--device"))


@pytest.mark.parametrize(("flags", "named"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_a_bad_setting_is_one_line_and_exit_2_before_any_input_is_read(
    manifest, reads, tmp_path, capsys, flags, named
) -> None:
    out = tmp_path / "report"
    assert main(["audit", str(manifest), "--out", str(out), "--quiet", *flags]) == EXIT_INPUT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("torchspectral audit: error:"), err
    assert named in err and flags[1].rstrip(",") in err, err
    assert reads == []
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["img.npy", "m.toml", "txt.npy"]


@pytest.mark.parametrize("seed", [10**23, 2**63])
def test_a_seed_out_of_range_in_the_manifest_is_refused(manifest, reads, tmp_path, capsys, seed) -> None:
    manifest.write_text(f"[audit]\nbootstrap = 0\nseed = {seed}\n\n" + RUN)
    out = tmp_path / "report"
    assert main(["audit", str(manifest), "--out", str(out), "--quiet"]) == EXIT_INPUT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'seed'" in err and str(seed) in err, err
    assert reads == [] and not out.exists()


def test_the_largest_seed_and_a_listed_device_run(manifest, tmp_path) -> None:
    out = tmp_path / "report"
    args = ["--seed", str(2**63 - 1), "--device", "cpu", "--presets", "default,paper", "--n-boot", "2"]
    assert main(["audit", str(manifest), "--out", str(out), "--quiet", *args]) == 0
    assert (out / "report.md").is_file()
