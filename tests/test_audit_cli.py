"""`torchspectral audit` / `demo` end to end on synthetic embeddings: outputs, errors, atomicity."""

from __future__ import annotations

import errno
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from torchspectral.audit import output
from torchspectral.audit.cli import EXIT_WRITE_FAILED, main
from torchspectral.demo import write_demo_inputs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory) -> Path:
    return write_demo_inputs(tmp_path_factory.mktemp("inputs"), n=300, seed=0, n_boot=20)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_audit_writes_the_full_report(demo_manifest, tmp_path) -> None:
    out = tmp_path / "report"
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"report.json", "runs.csv", "report.md", "plots", ".torchspectral-report"}
    report = json.loads((out / "report.json").read_text())
    assert len(report["runs"]) == 8
    assert report["settings"]["n_boot"] == 20
    # The calibrated default: a ΔSAS interval around the estimate where SAS is identified, else the reason why not.
    for run in report["runs"]:
        if "sas_imbalance" in run["intervals"]:
            low, high = run["intervals"]["sas_imbalance"]
            assert (
                low <= run["metrics"]["sas_imbalance"] <= high
                and run["interval_methods"]["sas_imbalance"] == "iterated_normal"
            )
        else:
            assert "not identified" in run["no_interval"]["sas_imbalance"]
        assert "cka_linear_unbiased" in run["intervals"] and "cka_linear" in run["no_interval"]
    assert set(report["cross_run"]) == {"domain_comparison", "imbalance_tests", "q_sweep_by_domain",
                                        "retrieval_correlations"}  # fmt: skip
    for png in report["plots"].values():
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
    assert len(report["plots"]) == 4
    csv_lines = (out / "runs.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith("model,dataset,domain")
    markdown = (out / "report.md").read_text()
    sections = ("## Runs", "## Which modality is the bottleneck?", "## Metrics without an interval",
                "## Where the time went", "![imbalance]")  # fmt: skip
    for section in sections:
        assert section in markdown
    # The report leads with the verdict; at n = 300, d = 256 every run is too small for it, and says so.
    assert markdown.index("## Which modality is the bottleneck?") < markdown.index("## Runs")
    for run in report["runs"]:
        verdict = run["verdict"]
        assert {"bottleneck", "statistic", "estimate", "low", "high", "reason"} <= set(verdict)
        assert verdict["bottleneck"] == "inconclusive" and "too few" in verdict["reason"] and verdict["low"] is None
        assert f"**{run['model']} / {run['dataset']}** ({run['domain']}): **inconclusive** — n = 300" in markdown
    assert _leftovers(tmp_path) == []


def test_paper_preset_adds_the_metrics_it_changes(demo_manifest, tmp_path) -> None:
    out = tmp_path / "report"
    args = ["audit", str(demo_manifest), "--out", str(out), "--quiet", "--presets", "default,paper", "--n-boot", "0"]
    assert main(args) == 0
    run = json.loads((out / "report.json").read_text())["runs"][0]
    assert {"paper/svcca", "paper/coral", "paper/mmd"} <= set(run["metrics"])
    assert run["intervals"] == {}


def test_sas_n_boot_flag_sets_the_sas_intervals_apart(demo_manifest, tmp_path) -> None:
    out = tmp_path / "report"
    args = ["--n-boot", "0", "--sas-n-boot", "10", "--interval", "percentile"]  # one method: every SAS metric has one
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", *args]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["n_boot"] == 0 and report["settings"]["sas_n_boot"] == 10
    intervals = report["runs"][0]["intervals"]
    assert set(intervals) == {"sas_x_to_y", "sas_y_to_x", "sas_symmetric", "sas_imbalance"}


def test_manifest_sas_bootstrap_applies_unless_the_flag_overrides_it(demo_manifest, tmp_path) -> None:
    text = demo_manifest.read_text()
    assert "[audit]\n" in text
    manifest = demo_manifest.with_name("sas-off.toml")
    manifest.write_text(text.replace("[audit]\n", "[audit]\nsas_bootstrap = 0\n", 1))
    out = tmp_path / "report"
    assert main(["audit", str(manifest), "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["sas_n_boot"] == 0 and report["settings"]["n_boot"] == 20
    assert "coral" in report["runs"][0]["intervals"] and "sas_imbalance" not in report["runs"][0]["intervals"]
    again = tmp_path / "again"
    assert main(["audit", str(manifest), "--out", str(again), "--quiet", "--sas-n-boot", "10"]) == 0
    assert json.loads((again / "report.json").read_text())["settings"]["sas_n_boot"] == 10


@pytest.mark.parametrize(
    ("flag", "value"), [("--n-boot", "1"), ("--n-boot", "-4"), ("--sas-n-boot", "1"), ("--sas-n-boot", "-2")]
)
def test_bad_replicate_counts_are_input_errors(demo_manifest, tmp_path, capsys, flag, value) -> None:
    out = tmp_path / "report"
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", flag, value]) == 2
    err = capsys.readouterr().err
    assert f"{flag} must be 0 (no intervals) or ≥ 2, got {value}" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and _leftovers(tmp_path) == []


def test_existing_output_is_refused_and_force_replaces_only_a_previous_report(demo_manifest, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", "--n-boot", "0"]) == 2
    assert "already exists" in capsys.readouterr().err
    # --force never deletes a folder that is not a torchspectral report.
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", "--n-boot", "0", "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "replaces only a previous torchspectral report" in err and len(err.splitlines()) == 1
    assert (out / "keep.txt").read_text() == "mine" and _leftovers(tmp_path) == []
    report = tmp_path / "previous"
    assert main(["audit", str(demo_manifest), "--out", str(report), "--quiet", "--n-boot", "0"]) == 0
    # A file the previous report did not write is never deleted: --force refuses until it is moved out.
    (report / "stale.txt").write_text("added after the previous report")
    assert main(["audit", str(demo_manifest), "--out", str(report), "--quiet", "--n-boot", "0", "--force"]) == 2
    assert "stale.txt" in capsys.readouterr().err and (report / "stale.txt").exists()
    (report / "stale.txt").unlink()
    assert main(["audit", str(demo_manifest), "--out", str(report), "--quiet", "--n-boot", "0", "--force"]) == 0
    assert (report / "report.json").exists()
    assert _leftovers(tmp_path) == []


def _manifest(folder: Path, image: str, text: str) -> Path:
    path = folder / "manifest.toml"
    path.write_text(f'[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "medical"\nimage = "{image}"\ntext = "{text}"\n')
    return path


@pytest.mark.parametrize(
    ("image", "text", "problem"),
    [
        (np.full((50, 8), np.nan, np.float32), np.ones((50, 8), np.float32), "non-finite"),
        (np.full((50, 8), 1e20, np.float32), np.ones((50, 8), np.float32), "overflow float32"),
        (np.ones((50, 8), np.float32), np.ones((40, 8), np.float32), "40"),
    ],
)
def test_bad_inputs_give_one_line_and_no_output(tmp_path, capsys, image, text, problem) -> None:
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "text.npy", text)
    out = tmp_path / "report"
    assert main(["audit", str(_manifest(tmp_path, "image.npy", "text.npy")), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("torchspectral audit: error:"), err
    assert problem in err.lower() or problem in err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_missing_file_and_malformed_manifest(tmp_path, capsys) -> None:
    out = tmp_path / "report"
    assert main(["audit", str(_manifest(tmp_path, "absent.npy", "text.npy")), "--out", str(out), "--quiet"]) == 2
    assert "absent.npy" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[[run]\nmodel = ")
    assert main(["audit", str(bad), "--out", str(out), "--quiet"]) == 2
    assert "bad.toml" in capsys.readouterr().err
    assert not out.exists()


def test_a_metric_failure_exits_1_without_a_report(tmp_path, capsys) -> None:
    g = torch.Generator().manual_seed(0)
    save_file({"image": torch.randn(64, 8, generator=g), "text": torch.ones(64, 8)}, str(tmp_path / "pairs.st"))
    (tmp_path / "pairs.st").rename(tmp_path / "pairs.safetensors")
    manifest = tmp_path / "manifest.toml"
    manifest.write_text('[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "x"\nembeddings = "pairs.safetensors"\n')
    out = tmp_path / "report"
    assert main(["audit", str(manifest), "--out", str(out), "--quiet", "--n-boot", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("torchspectral audit: error: run m / d:") and len(err.splitlines()) == 1
    assert not out.exists() and _leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_nothing(demo_manifest, tmp_path, monkeypatch, capsys) -> None:
    # A write failure is one line naming the file and the OS error, with its own exit status (it was a traceback).
    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.plots, "plot_q_sweep", broken)
    out = tmp_path / "report"
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", "--n-boot", "0"]) == EXIT_WRITE_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("torchspectral audit: error:"), err
    assert "No space left on device" in err and "q_sweep.png" in err and str(out) in err, err
    assert not out.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["report.json", "runs.csv", "report.md"])
def test_a_failed_file_write_is_one_line_and_an_old_report_is_kept(demo_manifest, tmp_path, monkeypatch, capsys, name):
    out = tmp_path / "report"
    assert main(["audit", str(demo_manifest), "--out", str(out), "--quiet", "--n-boot", "0"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    original = Path.open

    def full_disk(self, *args, **kwargs):
        handle = original(self, *args, **kwargs)
        if self.name == name and ".partial-" in str(self.parent):

            def write(*_):
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr(Path, "open", full_disk)  # Path.write_text opens through it too
    args = ["audit", str(demo_manifest), "--out", str(out), "--quiet", "--n-boot", "0", "--force"]
    assert main(args) == EXIT_WRITE_FAILED
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and "No space left on device" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # the old report, untouched
    assert _leftovers(tmp_path) == []


def test_demo_recovers_the_planted_facts(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    # n = 1,000: the verdict needs 6 rows per active dimension in each quarter (d = 256 → 26 dimensions, n ≥ 624).
    assert main(["demo", "--out", str(out), "--n", "1000", "--n-boot", "20", "--quiet"]) == 0
    stdout = capsys.readouterr().out
    assert "planted direction RECOVERED" in stdout and "## Runs" in stdout
    runs = json.loads((out / "report.json").read_text())["runs"]
    for run in runs:
        verdict = run["verdict"]
        assert verdict["bottleneck"] == ("text" if run["domain"] == "medical" else "none"), verdict
        if run["domain"] == "medical":
            assert verdict["low"] > 0 and verdict["statistic"] == "subspace_sas_imbalance"
        else:
            assert verdict["low"] <= 0 <= verdict["high"]
    assert (out / "demo-manifest.toml").exists()
    width, height = struct.unpack(">II", (out / "plots" / "imbalance.png").read_bytes()[16:24])
    assert width > 300 and height > 200
