"""`torchspectral audit` through its console script (a subprocess, as a user runs it): it never touches its
inputs, checks the output location before any work, isolates a failing run, and cleans up after signals."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from torchspectral.audit.destination import REPORT_MARKER

CONSOLE_SCRIPT = Path(sys.executable).with_name("torchspectral")


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} missing: install the package (make install)"
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )


def _pairs(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    image = g.standard_normal((n, d)).astype(np.float32)
    return image, (image + 0.7 * g.standard_normal((n, d))).astype(np.float32)


RUN = '[[run]]\nmodel = "{model}"\ndataset = "d"\ndomain = "natural"\nimage = "{image}"\ntext = "{text}"\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: manifest, embeddings and an unrelated note, all next to each other."""
    folder = tmp_path / "proj"
    folder.mkdir()
    image, text = _pairs(200, 16, 0)
    np.save(folder / "img.npy", image)
    np.save(folder / "txt.npy", text)
    (folder / "NOTES.txt").write_text("my notes")
    (folder / "m.toml").write_text(
        "[audit]\nbootstrap = 0\n\n" + RUN.format(model="m", image="img.npy", text="txt.npy")
    )
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def _one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("torchspectral audit: error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize(
    "out",
    ["proj", "proj/img.npy", "proj/m.toml", "proj/img.npy/report", "."],
    ids=["input-folder", "input-file", "manifest", "inside-input", "cwd"],
)
def test_force_never_replaces_inputs_or_the_cwd(project, out) -> None:
    before = _snapshot(project.parent)
    result = _cli("audit", str(project / "m.toml"), "--out", out, "--force", "--quiet", cwd=project.parent)
    assert result.returncode == 2, result.stderr
    _one_line_error(result)
    assert _snapshot(project.parent) == before  # nothing touched, no staging or retired folder left


def test_root_and_a_folder_above_the_cwd_are_refused(project) -> None:
    for out in ("/", str(project.parent)):
        result = _cli("audit", str(project / "m.toml"), "--out", out, "--force", "--quiet", cwd=project)
        assert result.returncode == 2
        _one_line_error(result, "refusing to write the report over")


def test_force_replaces_a_previous_report_only(project, tmp_path) -> None:
    out = tmp_path / "report"
    assert _cli("audit", str(project / "m.toml"), "--out", str(out), "--quiet").returncode == 0
    assert (out / REPORT_MARKER).is_file()
    (out / "old.txt").write_text("previous")  # not written by the report: --force refuses, nothing removed
    kept = _cli("audit", str(project / "m.toml"), "--out", str(out), "--force", "--quiet")
    assert kept.returncode == 2
    _one_line_error(kept, "old.txt", "nothing was touched")
    assert (out / "old.txt").read_text() == "previous"
    (out / "old.txt").unlink()
    again = _cli("audit", str(project / "m.toml"), "--out", str(out), "--force", "--quiet")
    assert again.returncode == 0, again.stderr
    assert (out / "report.md").is_file()
    (out / REPORT_MARKER).unlink()  # no longer a report: --force refuses it
    before = _snapshot(out)
    refused = _cli("audit", str(project / "m.toml"), "--out", str(out), "--force", "--quiet")
    assert refused.returncode == 2
    _one_line_error(refused, "replaces only a previous torchspectral report")
    assert _snapshot(out) == before


def test_unwritable_output_fails_before_the_inputs_are_read(tmp_path) -> None:
    (tmp_path / "bad.npy").write_text("not an array")  # reading it would fail: the output must be checked first
    manifest = tmp_path / "m.toml"
    manifest.write_text(RUN.format(model="m", image="bad.npy", text="bad.npy"))
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for out in (blocker / "out", Path("/proc/torchspectral-out")):
        result = _cli("audit", str(manifest), "--out", str(out), "--quiet")
        assert result.returncode == 2
        _one_line_error(result, "cannot create the report there")
        assert "bad.npy" not in result.stderr


def test_stale_staging_of_a_dead_audit_is_removed_and_foreign_folders_kept(project, tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / ".report.partial-stale"
    stale.mkdir()
    (stale / REPORT_MARKER).write_text(json.dumps({"tool": "torchspectral", "owner_pid": dead_pid}))
    (stale / "report.json").write_text("{")
    foreign = tmp_path / ".report.partial-foreign"  # same name pattern, no marker: not ours, never touched
    foreign.mkdir()
    result = _cli("audit", str(project / "m.toml"), "--out", str(tmp_path / "report"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and foreign.is_dir()


def test_one_bad_run_is_listed_and_the_good_runs_reported(project, tmp_path) -> None:
    np.save(project / "const.npy", np.ones((200, 16), np.float32))
    np.save(project / "few_img.npy", _pairs(3, 16, 1)[0])
    np.save(project / "few_txt.npy", _pairs(3, 16, 1)[1])
    manifest = project / "m.toml"
    text = manifest.read_text()
    text += "\n" + RUN.format(model="constant", image="img.npy", text="const.npy")
    text += "\n" + RUN.format(model="tiny", image="few_img.npy", text="few_txt.npy")
    manifest.write_text(text)
    out = tmp_path / "report"
    result = _cli("audit", str(manifest), "--out", str(out), "--quiet")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    failed_lines = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert len(failed_lines) == 2 and "constant / d" in failed_lines[0] and "tiny / d" in failed_lines[1]
    report = json.loads((out / "report.json").read_text())
    assert [r["model"] for r in report["runs"]] == ["m"]
    failures = {f["model"]: f["reason"] for f in report["failed_runs"]}
    assert set(failures) == {"constant", "tiny"}
    assert "zero variance" in failures["constant"] and "at least 4" in failures["tiny"]
    markdown = (out / "report.md").read_text()
    assert "## Failed runs" in markdown and "**constant / d**" in markdown and "1 run (2 more failed" in markdown
    # One run: the cross-run statistics are omitted with a note, not printed as rows of "n=1".
    assert "Omitted: cross-run statistics need at least 3 runs" in markdown and "(n=1)" not in markdown


def test_every_run_failing_exits_1_and_writes_nothing(project, tmp_path) -> None:
    np.save(project / "img.npy", np.ones((200, 16), np.float32))
    out = tmp_path / "report"
    result = _cli("audit", str(project / "m.toml"), "--out", str(out), "--quiet")
    assert result.returncode == 1
    assert "run m / d" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["proj"]


def test_a_file_size_limit_while_writing_is_one_line_exit_4_and_leaves_nothing(project, tmp_path) -> None:
    """`ulimit -f`: every write past the limit fails with EFBIG (Python ignores SIGXFSZ); the plots are larger."""
    limit = 20_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    out = tmp_path / "report"
    command = [str(CONSOLE_SCRIPT), "audit", str(project / "m.toml"), "--out", str(out), "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=small_files, timeout=300, check=False)
    assert result.returncode == 4, result.stderr
    _one_line_error(result, "File too large", str(out))
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["proj"]


def test_help_documents_the_exit_statuses() -> None:
    result = _cli("audit", "--help")
    assert result.returncode == 0
    for line in ("exit status:", "0  every run analysed", "1  no run could be analysed", "2  bad manifest",
                 "3  report written for the runs that succeeded", "4  the report could not be written",
                 "130/143"):  # fmt: skip
        assert line in result.stdout, result.stdout


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_leaves_nothing_behind_and_prints_one_line(tmp_path, signum, status) -> None:
    image, text = _pairs(3000, 128, 2)
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "txt.npy", text)
    manifest = tmp_path / "m.toml"
    manifest.write_text("[audit]\nbootstrap = 400\n\n" + RUN.format(model="m", image="img.npy", text="txt.npy"))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "audit", str(manifest), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
        # keeps ignoring it: give the audit the default disposition a terminal's Ctrl-C meets.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.partial-*")):  # the audit is under way once its staging folder exists
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the audit never created its staging directory"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(process.pid, signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert err.strip() == f"torchspectral audit: interrupted by {signal.Signals(signum).name}", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.npy", "m.toml", "txt.npy"]
