"""Packaging contract: kernels/ is installed as torchspectral.kernels and shadows nothing; the console script works."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import torchspectral
import torchspectral.kernels

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_kernels_folder_is_installed_under_the_package(tmp_path: Path) -> None:
    assert [Path(p).resolve() for p in torchspectral.kernels.__path__] == [REPO / "kernels"]
    assert isinstance(torchspectral.kernels.available(), bool)
    for cwd in (REPO, tmp_path):
        assert run_python("import torchspectral.kernels, torchspectral.functional", cwd).returncode == 0


def test_a_wheel_installs_the_kernels_folder_under_the_package(tmp_path: Path) -> None:
    """The wheel ships kernels/ as torchspectral/kernels/ (and no top-level kernels), and imports from it alone."""
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    result = subprocess.run([*build, str(REPO)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("torchspectral-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)  # a pure-Python wheel installs by unpacking
    assert "torchspectral/kernels.py" in names and "torchspectral/kernels/tiles.py" in names
    assert not [name for name in names if name.startswith("kernels/")]
    code = "import torchspectral.kernels.tiles as t, torchspectral.kernels as k\nprint(t.__file__, k.available())"
    result = run_python(code, tmp_path, pythonpath=site)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.split()[0]).resolve().parent == (site / "torchspectral" / "kernels").resolve()


# Where a top-level `kernels` comes from, as the child sees it: a file (a regular package or module), "namespace"
# for a namespace package (its only portion would be an empty folder), or the ImportError's message.
WHICH_KERNELS = """
try:
    import kernels
except ImportError as error:
    print("missing:", error)
else:
    print(kernels.__file__ or "namespace", list(getattr(kernels, "__path__", [])))
"""


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.parametrize("where", ["repo", "elsewhere"])
def test_the_kernels_folder_never_shadows_a_top_level_kernels(tmp_path: Path, where: str) -> None:
    """The PyPI package `kernels` (transformers imports it) must win over our folder from any working directory.

    A stand-in `kernels` package on PYTHONPATH proves it whether or not the real one is installed; the real one,
    when the environment has it, is checked too (with transformers, which failed to import while we shadowed it).
    """
    cwd = REPO if where == "repo" else tmp_path
    other = tmp_path / "other-distribution"
    (other / "kernels").mkdir(parents=True)
    (other / "kernels" / "__init__.py").write_text("MARK = 'the other distribution'\n")
    result = run_python("import kernels; print(kernels.MARK)", cwd, pythonpath=other)
    assert result.returncode == 0 and result.stdout.strip() == "the other distribution", result.stderr

    seen = run_python(WHICH_KERNELS, cwd)
    assert seen.returncode == 0, seen.stderr
    if _installed("kernels"):
        # The real package is installed: it, not the repository's folder, is what `import kernels` gives.
        origin = Path(seen.stdout.split()[0]).resolve()
        assert origin.parent == Path(importlib.metadata.distribution("kernels").locate_file("kernels")), seen.stdout
        assert REPO / "kernels" not in origin.parents, seen.stdout
        if _installed("transformers"):
            assert run_python("import kernels, transformers", cwd).returncode == 0
    else:
        # Not installed: nothing from the repository poses as it (a namespace over an empty folder at most).
        assert seen.stdout.startswith(("missing: No module named 'kernels'", "namespace")), seen.stdout


def test_typed_marker_ships() -> None:
    assert (Path(torchspectral.__file__).parent / "py.typed").exists()


def test_console_script_demo_recovers_the_planted_direction(tmp_path) -> None:
    script = shutil.which("torchspectral", path=str(Path(sys.executable).parent))
    assert script is not None, "the torchspectral console script is not installed"
    args = [script, "demo", "--n", "1000", "--n-boot", "20", "--quiet", "--out", str(tmp_path / "demo")]
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
