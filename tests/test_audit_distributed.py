"""`torchspectral audit --distributed` on 2 gloo processes writes the single-process report (demo data).

The runs are split across the ranks (run i on rank i mod 2), rank 0 writes; two runs the metrics reject (one on
each rank) are listed as failed runs, exactly as in one process. Only the timings may differ.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_ranks
from safetensors.torch import save_file

from torchspectral.audit.cli import EXIT_SOME_RUNS_FAILED, EXIT_WRITE_FAILED, main
from torchspectral.demo import write_demo_inputs

pytestmark = pytest.mark.slow  # two audits of 10 runs (one of them on 2 processes)


def _manifest(folder: Path) -> Path:
    manifest = write_demo_inputs(folder, n=200, seed=0, n_boot=10)
    g = torch.Generator().manual_seed(0)
    save_file({"image": torch.randn(64, 8, generator=g), "text": torch.ones(64, 8)}, str(folder / "constant.st"))
    (folder / "constant.st").rename(folder / "constant.safetensors")
    text = manifest.read_text()
    for model in ("constant-a", "constant-b"):  # manifest indices 8 and 9: one on each rank
        text += f'\n[[run]]\nmodel = "{model}"\ndataset = "d"\ndomain = "x"\nembeddings = "constant.safetensors"\n'
    manifest.write_text(text)
    return manifest


def _without_timings(report: dict) -> dict:
    report = dict(report)
    report.pop("timings")
    report["runs"] = [{k: v for k, v in run.items() if k != "timings"} for run in report["runs"]]
    return report


def _worker(rank: int, world: int, manifest: str, out: str) -> int:
    return main(["audit", manifest, "--out", out, "--quiet", "--distributed"])


def test_distributed_audit_writes_the_single_process_report(tmp_path) -> None:
    manifest = _manifest(tmp_path / "inputs")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["audit", str(manifest), "--out", str(one), "--quiet"]) == EXIT_SOME_RUNS_FAILED
    statuses = run_ranks(_worker, 2, str(manifest), str(two))
    assert statuses == {0: EXIT_SOME_RUNS_FAILED, 1: EXIT_SOME_RUNS_FAILED}
    want = json.loads((one / "report.json").read_text())
    got = json.loads((two / "report.json").read_text())
    assert [f["model"] for f in got["failed_runs"]] == ["constant-a", "constant-b"]
    assert len(got["runs"]) == 8
    assert _without_timings(got) == _without_timings(want)
    assert (two / "runs.csv").read_text() == (one / "runs.csv").read_text()
    assert sorted(p.name for p in (two / "plots").iterdir()) == sorted(p.name for p in (one / "plots").iterdir())


def _bad_input_worker(rank: int, world: int, manifest: str, out: str) -> int:
    return main(["audit", manifest, "--out", out, "--quiet", "--distributed"])


def test_an_input_error_on_one_rank_is_the_error_on_every_rank(tmp_path) -> None:
    manifest = _manifest(tmp_path / "inputs")
    (tmp_path / "inputs" / "constant.safetensors").write_bytes(b"not a safetensors file")  # runs 8 and 9
    # Keep one unreadable run, manifest index 8: only rank 0 reads it.
    manifest.write_text(manifest.read_text().split('\n[[run]]\nmodel = "constant-b"')[0])
    out = tmp_path / "report"
    assert run_ranks(_bad_input_worker, 2, str(manifest), str(out)) == {0: 2, 1: 2}
    assert not out.exists()


def _good_and_bad(folder: Path) -> Path:
    """A manifest of two small runs: "good" (manifest index 0, rank 0) and "bad" (constant text; rank 1)."""
    folder.mkdir()
    g = np.random.default_rng(0)
    image = g.standard_normal((200, 16)).astype(np.float32)
    np.save(folder / "img.npy", image)
    np.save(folder / "txt.npy", (image + 0.7 * g.standard_normal((200, 16))).astype(np.float32))
    np.save(folder / "const.npy", np.ones((200, 16), np.float32))
    run = '[[run]]\nmodel = "{}"\ndataset = "d"\ndomain = "natural"\nimage = "img.npy"\ntext = "{}"\n'
    manifest = folder / "m.toml"
    manifest.write_text("[audit]\nbootstrap = 0\n\n" + run.format("good", "txt.npy") + run.format("bad", "const.npy"))
    return manifest


def _small_files_on_rank_zero(rank: int, world: int, manifest: str, out: str) -> tuple[int, str]:
    import contextlib
    import io

    if rank == 0:  # `ulimit -f` on the rank that writes: its plots are larger than this
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["audit", manifest, "--out", out, "--quiet", "--distributed"])
    return status, err.getvalue()


def test_a_write_failure_on_rank_zero_is_status_4_on_every_rank(tmp_path) -> None:
    out = tmp_path / "report"
    results = run_ranks(_small_files_on_rank_zero, 2, str(_good_and_bad(tmp_path / "inputs")), str(out))
    assert [status for status, _ in results.values()] == [EXIT_WRITE_FAILED, EXIT_WRITE_FAILED]
    for _, err in results.values():
        assert len(err.strip().splitlines()) == 1 and "File too large" in err and "plots/" in err, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def _torchrun_audit(manifest: Path, out: Path) -> tuple[subprocess.CompletedProcess, list[int]]:
    """`torchrun --nproc_per_node=2 -m torchspectral audit … --distributed` (gloo, CPU): the result and every
    worker's exit status as torchrun reports it (torchrun lists each worker when any exits non-zero)."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launcher, "-m", "torchspectral", "audit", str(manifest), "--out", str(out), "--quiet", "--distributed"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    statuses = [int(code) for code in re.findall(r"exitcode\s+:\s*(-?\d+)", result.stderr)]
    return result, sorted(statuses)


def test_torchrun_with_a_failing_run_writes_the_report_every_time(tmp_path) -> None:
    """One failing run (on rank 1): each rank finishes, rank 0 writes the report listing it, and both workers exit
    with status 3 — rank 1 does not exit before the report is published (torchrun would SIGTERM rank 0)."""
    manifest = _good_and_bad(tmp_path / "inputs")
    for attempt in range(3):
        out = tmp_path / f"report{attempt}"
        result, statuses = _torchrun_audit(manifest, out)
        assert statuses == [3, 3], result.stderr
        report = json.loads((out / "report.json").read_text())
        assert [r["model"] for r in report["runs"]] == ["good"]
        assert [f["model"] for f in report["failed_runs"]] == ["bad"]
        assert "zero variance" in report["failed_runs"][0]["reason"]
        assert "run bad / d failed:" in result.stderr and "interrupted by" not in result.stderr
        assert "[rank0]" not in result.stderr and "[rank1]" not in result.stderr  # no worker traceback
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
