"""The audit manifest: parsing, path resolution, settings, and one clear error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import expect_audit_error

from torchspectral.audit.manifest import DEFAULT_Q_GRID, AuditSettings, Manifest, RunSpec, load_manifest

FILES = ("img.safetensors", "txt.safetensors", "c2i.npy", "both.pt", "sub/other.npy")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    # load_manifest only checks that the files exist; their content is the readers' business.
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def write(folder: Path, text: str, name: str = "audit.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


RUN_A = """
[[run]]
model = "clip"
dataset = "roco"
domain = "medical"
image = "img.safetensors"
text = "txt.safetensors"
caption_to_image = "c2i.npy"
"""

RUN_B = """
[[run]]
model = "clip"
dataset = "coco"
domain = "natural"
embeddings = "both.pt"
"""


def expect_error(path: Path, *fragments: str) -> str:
    return expect_audit_error(lambda: load_manifest(path), *fragments)


def test_two_runs_with_defaults(folder: Path) -> None:
    manifest = load_manifest(write(folder, RUN_A + RUN_B))
    assert isinstance(manifest, Manifest)
    assert manifest.path == folder / "audit.toml"
    assert manifest.settings == AuditSettings()
    assert manifest.settings.n_boot == 200 and manifest.settings.seed == 0  # the B the harness calibrated at
    assert manifest.settings.presets == ("default",) and manifest.settings.top_k_pairs == 5
    assert 0.1 in manifest.settings.q_grid and manifest.settings.q_grid == DEFAULT_Q_GRID
    assert list(DEFAULT_Q_GRID) == sorted(DEFAULT_Q_GRID) and DEFAULT_Q_GRID[-1] == 1.0
    first, second = manifest.runs
    assert first == RunSpec(
        model="clip",
        dataset="roco",
        domain="medical",
        image=folder / "img.safetensors",
        text=folder / "txt.safetensors",
        caption_to_image=folder / "c2i.npy",
        embeddings=None,
    )
    assert first.name == "clip / roco"
    assert second.embeddings == folder / "both.pt" and second.image is None and second.text is None
    assert second.caption_to_image is None and second.domain == "natural"


def test_paths_relative_to_the_manifest_not_the_cwd(folder: Path, tmp_path_factory, monkeypatch) -> None:
    (folder / "sub" / "audit.toml").write_text(
        '[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "x"\nembeddings = "other.npy"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    manifest = load_manifest(str(folder / "sub" / "audit.toml"))
    assert manifest.runs[0].embeddings == folder / "sub" / "other.npy"


def test_absolute_paths_and_relative_manifest_path(folder: Path, monkeypatch) -> None:
    absolute = folder / "both.pt"
    write(folder, f'[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "x"\nembeddings = "{absolute}"\n')
    monkeypatch.chdir(folder)
    manifest = load_manifest("audit.toml")
    assert manifest.path.is_absolute() and manifest.runs[0].embeddings == absolute


def test_settings_table(folder: Path) -> None:
    text = (
        '[audit]\nbootstrap = 200\nseed = 7\npresets = ["default", "paper"]\nq = [0.5, 0.1, 0.1, 1]\ntop_k_pairs = 3\n'
    )
    settings = load_manifest(write(folder, text + RUN_A)).settings
    assert settings == AuditSettings(
        n_boot=200, seed=7, presets=("default", "paper"), q_grid=(0.1, 0.5, 1.0), top_k_pairs=3
    )
    # The table can come after the runs too (TOML does not care); zero replicates means no intervals.
    assert load_manifest(write(folder, RUN_A + "[audit]\nbootstrap = 0\n")).settings.n_boot == 0


def test_missing_manifest(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.toml", str(tmp_path / "nope.toml"), "manifest not found")
    expect_error(tmp_path, "manifest is not a file")


def test_bad_toml_includes_the_parser_message(folder: Path) -> None:
    path = write(folder, '[[run]]\nmodel = "clip\n')
    expect_error(path, str(path), "invalid TOML", "line 2")


def test_not_utf8(folder: Path) -> None:
    path = folder / "audit.toml"
    path.write_bytes(b'[[run]]\nmodel = "\xff"\n')
    expect_error(path, "invalid TOML", "UTF-8")


def test_no_runs(folder: Path) -> None:
    expect_error(write(folder, "[audit]\nseed = 1\n"), "no runs")
    expect_error(write(folder, ""), "no runs")
    expect_error(write(folder, "run = []\n"), "no runs")
    expect_error(write(folder, "run = 3\n"), "'run' must be an array of tables")


@pytest.mark.parametrize("key", ["model", "dataset", "domain"])
def test_missing_label(folder: Path, key: str) -> None:
    text = "\n".join(line for line in RUN_A.splitlines() if not line.startswith(f"{key} ="))
    expect_error(write(folder, RUN_B + text), "[[run]] #2", f"missing key {key!r}")


def test_empty_label(folder: Path) -> None:
    expect_error(
        write(folder, RUN_A.replace('domain = "medical"', 'domain = "  "')), "[[run]] #1", "'domain' must not be empty"
    )


def test_wrong_types(folder: Path) -> None:
    expect_error(
        write(folder, RUN_A.replace('model = "clip"', "model = 3")), "key 'model' must be a string", "integer 3"
    )
    expect_error(
        write(folder, RUN_B.replace('embeddings = "both.pt"', 'embeddings = ["both.pt"]')),
        "key 'embeddings' must be a file path string",
        "array",
    )
    expect_error(
        write(folder, "[audit]\nbootstrap = true\n" + RUN_A), "[audit]", "'bootstrap' must be an integer", "boolean"
    )
    expect_error(write(folder, '[audit]\nseed = "0"\n' + RUN_A), "[audit]", "'seed' must be an integer", "string")
    expect_error(write(folder, "[audit]\nbootstrap = -1\n" + RUN_A), "'bootstrap' must be ≥ 0")
    expect_error(write(folder, "[audit]\nq = [0.1, 0]\n" + RUN_A), "key 'q'", "(0, 1]", "0")
    expect_error(write(folder, "[audit]\nq = [0.1, 1.5]\n" + RUN_A), "key 'q'", "1.5")
    expect_error(write(folder, "[audit]\nq = []\n" + RUN_A), "key 'q' must be a non-empty array")
    expect_error(write(folder, "[audit]\npresets = [1]\n" + RUN_A), "'presets' must be a non-empty array of strings")
    expect_error(write(folder, '[audit]\npresets = ["fast"]\n' + RUN_A), "unknown preset 'fast'", "default", "paper")
    expect_error(write(folder, "audit = 1\n" + RUN_A), "'audit' must be a table")


def test_n_boot_is_an_alias_of_bootstrap(folder: Path) -> None:
    assert load_manifest(write(folder, "[audit]\nn_boot = 20\n" + RUN_A)).settings.n_boot == 20
    expect_error(write(folder, "[audit]\nn_boot = 20\nbootstrap = 10\n" + RUN_A), "not both")
    expect_error(write(folder, "[audit]\nn_boot = 2.5\n" + RUN_A), "key 'n_boot' must be an integer")


def test_single_preset_string_is_accepted(folder: Path) -> None:
    assert load_manifest(write(folder, '[audit]\npresets = "paper"\n' + RUN_A)).settings.presets == ("paper",)


def test_unknown_keys_are_named(folder: Path) -> None:
    expect_error(write(folder, "[audit]\nbootstap = 10\n" + RUN_A), "[audit]", "unknown key 'bootstap'")
    expect_error(write(folder, RUN_A + 'captions = "x"\n'), "[[run]] #1", "unknown key 'captions'")
    expect_error(write(folder, "[runs]\nmodel = 1\n" + RUN_A), "unknown top-level key 'runs'")


def test_both_image_text_and_embeddings(folder: Path) -> None:
    expect_error(
        write(folder, RUN_A.replace("caption_to_image", "embeddings").replace("c2i.npy", "both.pt")),
        "[[run]] #1 (clip / roco)",
        "either 'embeddings' or 'image' + 'text', not both",
    )


def test_neither_image_text_nor_embeddings(folder: Path) -> None:
    expect_error(write(folder, '[[run]]\nmodel = "m"\ndataset = "d"\ndomain = "x"\n'), "[[run]] #1", "no embeddings")


def test_image_without_text_and_text_without_image(folder: Path) -> None:
    expect_error(write(folder, RUN_A.replace('text = "txt.safetensors"', "")), "key 'image' given without 'text'")
    expect_error(write(folder, RUN_A.replace('image = "img.safetensors"', "")), "key 'text' given without 'image'")


def test_caption_to_image_with_combined_file(folder: Path) -> None:
    expect_error(
        write(folder, RUN_B + 'caption_to_image = "c2i.npy"\n'), "'caption_to_image' goes with 'image' + 'text'"
    )


def test_duplicate_run(folder: Path) -> None:
    message = expect_error(
        write(folder, RUN_A + RUN_B + RUN_A.replace("medical", "other")), "[[run]] #3", "duplicate run"
    )
    assert "model = 'clip', dataset = 'roco'" in message and "already [[run]] #1" in message


def test_referenced_file_not_found(folder: Path) -> None:
    path = write(folder, RUN_A.replace("c2i.npy", "c2i_typo.npy"))
    expect_error(
        path, str(path), "[[run]] #1", "key 'caption_to_image'", "file not found", str(folder / "c2i_typo.npy")
    )
    expect_error(write(folder, RUN_B.replace("both.pt", "sub")), "key 'embeddings'", "not a file", str(folder / "sub"))


def test_interval_ritz_rank_and_sas_bootstrap_settings(folder: Path) -> None:
    text = '[audit]\ninterval = "basic"\nritz_rank = 50\nsas_bootstrap = 0\n'
    settings = load_manifest(write(folder, text + RUN_A)).settings
    assert settings.interval == "basic" and settings.ritz_rank == 50 and settings.sas_n_boot == 0
    defaults = load_manifest(write(folder, RUN_A)).settings
    # Exact SAS replicates, as many as the other metrics', unless asked otherwise.
    assert defaults.interval == "calibrated" and defaults.ritz_rank == 0 and defaults.sas_n_boot is None
    expect_error(write(folder, "[audit]\nsas_bootstrap = -5\n" + RUN_A), "key 'sas_bootstrap' must be ≥ 0")
    expect_error(write(folder, "[audit]\nsas_bootstrap = true\n" + RUN_A), "key 'sas_bootstrap' must be an integer")
    expect_error(write(folder, "[audit]\nsas_bootstrap = 1.5\n" + RUN_A), "key 'sas_bootstrap' must be an integer")
    expect_error(write(folder, "[audit]\nsas_bootstrap = 1\n" + RUN_A), "key 'sas_bootstrap' must be 0", "≥ 2")
    expect_error(write(folder, "[audit]\nbootstrap = 1\n" + RUN_A), "key 'bootstrap' must be 0", "≥ 2")
    expect_error(
        write(folder, '[audit]\ninterval = "studentized"\n' + RUN_A), "key 'interval' must be one of", "'studentized'"
    )
    expect_error(write(folder, "[audit]\ninterval = 3\n" + RUN_A), "key 'interval'")
    expect_error(write(folder, "[audit]\nritz_rank = -1\n" + RUN_A), "key 'ritz_rank' must be ≥ 0")
    expect_error(write(folder, "[audit]\nritz_rank = 1.5\n" + RUN_A), "key 'ritz_rank' must be an integer")
