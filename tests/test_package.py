"""Packaging contract: kernels/ is installed as torchspectral.kernels only; the console script works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torchspectral.kernels

import torchspectral

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_kernels_folder_is_installed_under_the_package(tmp_path: Path) -> None:
    assert Path(torchspectral.kernels.__file__).resolve().parent == REPO / "kernels"
    assert isinstance(torchspectral.kernels.available(), bool)
    # From outside the repository there must be no importable top-level `kernels` module.
    result = run_python("import kernels", tmp_path)
    assert result.returncode != 0 and "No module named 'kernels'" in result.stderr
    assert run_python("import torchspectral.kernels, torchspectral.functional", tmp_path).returncode == 0


def test_typed_marker_ships() -> None:
    assert (Path(torchspectral.__file__).parent / "py.typed").exists()


def test_console_script_demo_recovers_the_planted_direction(tmp_path) -> None:
    script = shutil.which("torchspectral", path=str(Path(sys.executable).parent))
    assert script is not None, "the torchspectral console script is not installed"
    args = [script, "demo", "--n", "400", "--n-boot", "20", "--quiet", "--out", str(tmp_path / "demo")]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "planted direction RECOVERED" in result.stdout
    assert "| model | dataset | domain |" in result.stdout


def test_cli_rejects_bad_arguments() -> None:
    args = [sys.executable, "-m", "torchspectral.audit.cli", "demo", "--n", "2"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--n must be at least 16" in result.stderr


def test_metrics_and_nn_are_attributes_of_the_package() -> None:
    """`import torchspectral as ts; ts.metrics.CKA` works without importing torchspectral.metrics first."""
    import subprocess
    import sys

    code = "import torchspectral as ts; print(ts.metrics.CKA.__name__, ts.nn.SASLoss.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.split() == ["CKA", "SASLoss"], result.stderr


def test_metrics_without_torchmetrics_names_the_extra() -> None:
    import subprocess
    import sys

    code = "import sys; sys.modules['torchmetrics'] = None\nimport torchspectral as ts\nts.metrics"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "ImportError: torchspectral.metrics needs torchmetrics" in result.stderr
    assert "pip install 'torchspectral[metrics]'" in result.stderr
