"""examples/close_the_gap.py runs end to end on real encoders and reports sane numbers.

It checks the structure and sanity of what the example measures, never which loss wins: the example
reports what it measures, whatever it shows. Needs the `examples` extra and the Noto Color Emoji font;
in CI (CI=true) a missing one fails with the install command, elsewhere the test is skipped with it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "close_the_gap.py"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def load_example():
    spec = importlib.util.spec_from_file_location("close_the_gap", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(example) -> None:
    problems = example.missing_resources()
    if problems:
        message = "examples/close_the_gap.py cannot run: " + "; ".join(problems)
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.mark.slow
def test_close_the_gap_runs_and_reports_sane_numbers(example, tmp_path: Path) -> None:
    require(example)
    out = tmp_path / "results.json"
    returned = example.main(["--epochs", "60", "--seed", "0", "--json", str(out)])
    results = json.loads(out.read_text())
    assert results == json.loads(json.dumps(returned, ensure_ascii=False))

    assert results["n_pairs"] > 1000, "expected the ~1,400 single-codepoint emoji of Noto Color Emoji"
    assert results["n_train"] + results["n_heldout"] == results["n_pairs"]
    assert results["n_heldout"] >= 300
    assert set(results["runs"]) == {"init", "clip", "gap_closing"}
    keys = {
        "modality_gap",
        "true_pair_cosine",
        "i2t_r1",
        "i2t_r10",
        "t2i_r1",
        "t2i_r10",
        "sas_image_to_text",
        "sas_text_to_image",
    }
    for name, run in results["runs"].items():
        assert set(run) == keys, name
        assert all(math.isfinite(v) for v in run.values()), (name, run)
        assert 0 <= run["modality_gap"] <= 2, (name, run)
        assert -1 <= run["true_pair_cosine"] <= 1, (name, run)
        assert all(0 <= run[k] <= 1 for k in ("i2t_r1", "i2t_r10", "t2i_r1", "t2i_r10")), (name, run)
        assert run["i2t_r1"] <= run["i2t_r10"] and run["t2i_r1"] <= run["t2i_r10"], (name, run)
        assert 0 <= run["sas_image_to_text"] <= 1 and 0 <= run["sas_text_to_image"] <= 1, (name, run)
    for name in ("clip", "gap_closing"):  # training learned something that transfers to unseen emoji
        run = results["runs"][name]
        assert run["i2t_r10"] > 3 * results["chance_r10"], (name, run)
        assert run["t2i_r10"] > 3 * results["chance_r10"], (name, run)
        assert math.isfinite(results["final_train_loss"][name])
    assert all(math.isfinite(s) and s >= 0 for s in results["seconds"].values())


def test_missing_font_is_reported_with_the_install_command(example, tmp_path: Path) -> None:
    with pytest.raises(example.MissingResource, match="fonts-noto-color-emoji"):
        example.find_font(str(tmp_path / "no-such-font.ttf"))
    assert any("fonts-noto-color-emoji" in p for p in example.missing_resources(str(tmp_path / "none.ttf")))


@pytest.mark.parametrize("in_ci", [True, False])
def test_missing_resource_fails_in_ci_and_skips_elsewhere(example, monkeypatch, in_ci: bool) -> None:
    monkeypatch.setattr(example, "missing_resources", lambda: ["the font is missing; apt-get install it"])
    monkeypatch.setattr(sys.modules[__name__], "IN_CI", in_ci)
    outcome = pytest.fail.Exception if in_ci else pytest.skip.Exception
    with pytest.raises(outcome, match="apt-get install it"):
        require(example)


def test_table_lists_every_run_and_metric(example) -> None:
    run = dict.fromkeys([key for key, _, _ in example.ROWS], 0.5)
    table = example.table({"init": run, "clip": run, "gap_closing": run}).splitlines()
    assert len(table) == 2 + len(example.ROWS)
    assert "CLIPLoss" in table[0] and "GapClosingLoss" in table[0]
    assert all(line.count("|") == 5 for line in table)
