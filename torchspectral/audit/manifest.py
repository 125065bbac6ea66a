"""The audit manifest: a TOML file listing the runs (one model on one dataset each) and the audit settings.

Format::

    [audit]                            # optional; every key optional
    bootstrap = 200                    # bootstrap replicates for the confidence intervals (0 = none);
                                       # `n_boot` is accepted as another name for it
    seed = 0                           # seed of the bootstrap resampling
    presets = ["default", "paper"]     # alignment_report presets to compute
    q = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0]   # SAS quantile grid of the q-sweep, each in (0, 1]
    top_k_pairs = 5                    # best/worst pairs listed by instance-level SAS
    interval = "calibrated"            # "calibrated" (default): each metric's calibrated interval, none where no
                                       # method is (docs/uncertainty.md#calibration); or one method for every metric
                                       # (torchspectral.uncertainty.INTERVAL_METHODS): "percentile", "basic",
                                       # "normal", "bca", "jackknife" or "iterated_normal"
    sas_bootstrap = 200                # replicates for the SAS intervals (default: `bootstrap`; 0 = none):
                                       # exact SAS replicates cost ≈0.3 s each at n = 5,000, d = 768 on a CPU
    ritz_rank = 0                      # > 0: approximate SAS replicates by Rayleigh–Ritz in the top-k
                                       # eigenvectors (fast, but measured off by ~1 interval width; 0 = exact)

    [[run]]
    model = "clip-vit-b32"
    dataset = "roco-test"
    domain = "medical"                 # free label; the cross-run statistics compare domains
    image = "roco_clip_img.safetensors"
    text = "roco_clip_txt.safetensors"
    caption_to_image = "roco_c2i.npy"  # optional: caption j belongs to image caption_to_image[j]

    [[run]]
    model = "clip-vit-b32"
    dataset = "coco-5k"
    domain = "natural"
    embeddings = "coco_clip.pt"        # one file holding both towers (see torchspectral.audit.readers)

Each run names either ``image`` and ``text`` (and optionally ``caption_to_image``), or ``embeddings``
alone. Relative paths are relative to the manifest's folder; ``~`` is expanded. Every referenced file
must exist when the manifest is loaded, so a typo fails in a second, not after an hour of earlier runs.
Unknown keys are errors (a misspelt ``bootstap`` would otherwise silently run the default).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchspectral.audit.errors import AuditInputError
from torchspectral.functional.report import PRESETS
from torchspectral.uncertainty import INTERVAL_METHODS
from torchspectral.uncertainty.calibrated import CALIBRATED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["DEFAULT_Q_GRID", "SEED_MAX", "AuditSettings", "Manifest", "RunSpec", "check_overrides", "load_manifest"]

# Dense at small q, where the paper finds most of the information (its Exp. 3), and includes 0.1, the
# paper's (and the package's) default, so the sweep always contains the headline value.
# Bootstrap replicates per run: the count at which the calibrated intervals were measured against known truth
# (benchmarks/calibration/coverage_default.py runs ts.bootstrap at B = 200).
DEFAULT_N_BOOT = 200
DEFAULT_Q_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

_RUN_KEYS = ("model", "dataset", "domain", "image", "text", "caption_to_image", "embeddings")
_SETTING_KEYS = (
    "bootstrap", "n_boot", "sas_bootstrap", "seed", "presets", "q", "top_k_pairs", "interval", "ritz_rank",
)  # fmt: skip
_TOP_KEYS = ("audit", "run")

# The largest seed: a TOML integer's range (64-bit signed). The bootstrap seeds its generators with the seed plus
# small offsets, which stay within the range torch.Generator.manual_seed accepts (up to 2**64 - 1).
SEED_MAX = 2**63 - 1


@dataclass(frozen=True)
class AuditSettings:
    """The ``[audit]`` table. Field ← TOML key: ``n_boot`` ← ``bootstrap`` (or ``n_boot``), ``sas_n_boot`` ←
    ``sas_bootstrap`` (None: the same as ``n_boot``), ``q_grid`` ← ``q``, the others by their own name."""

    n_boot: int = DEFAULT_N_BOOT
    sas_n_boot: int | None = None
    seed: int = 0
    presets: tuple[str, ...] = ("default",)
    q_grid: tuple[float, ...] = DEFAULT_Q_GRID
    top_k_pairs: int = 5
    interval: str = CALIBRATED
    ritz_rank: int = 0


@dataclass(frozen=True)
class RunSpec:
    """One ``[[run]]`` table; paths are absolute. Either ``image`` and ``text`` are set, or ``embeddings``."""

    model: str
    dataset: str
    domain: str
    image: Path | None = None
    text: Path | None = None
    caption_to_image: Path | None = None
    embeddings: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.model} / {self.dataset}"

    @property
    def files(self) -> tuple[Path, ...]:
        """The input files this run reads (the report may never be written over any of them)."""
        paths = (self.image, self.text, self.caption_to_image, self.embeddings)
        return tuple(path for path in paths if path is not None)


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest: its own (absolute) path, the settings and the runs in file order."""

    path: Path
    settings: AuditSettings = field(default_factory=AuditSettings)
    runs: tuple[RunSpec, ...] = ()


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest. Raises :class:`AuditInputError` (one line naming file, run and key).

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "e.pt").write_bytes(b"")
        0
        >>> _ = (folder / "audit.toml").write_text('[[run]]\\nmodel = "m"\\ndataset = "d"\\ndomain = "x"\\n'
        ...                                      'embeddings = "e.pt"\\n')
        >>> manifest = load_manifest(folder / "audit.toml")
        >>> manifest.runs[0].name, manifest.runs[0].embeddings.name, manifest.settings.n_boot
        ('m / d', 'e.pt', 200)
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise AuditInputError(f"{path}: manifest not found")
    if not path.is_file():
        raise AuditInputError(f"{path}: manifest is not a file")
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise AuditInputError(f"{path}: invalid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise AuditInputError(f"{path}: invalid TOML: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise AuditInputError(f"{path}: cannot read manifest: {error.strerror or error}") from None

    _reject_unknown(document, _TOP_KEYS, f"{path}: unknown top-level key", "")
    settings = _parse_settings(path, document.get("audit", {}))

    tables = document.get("run")
    if tables is None:
        raise AuditInputError(f"{path}: no runs: add at least one [[run]] table")
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise AuditInputError(f"{path}: 'run' must be an array of tables, written [[run]]")
    if not tables:
        raise AuditInputError(f"{path}: no runs: add at least one [[run]] table")

    runs: list[RunSpec] = []
    seen: dict[tuple[str, str], int] = {}
    for index, table in enumerate(tables, start=1):
        run = _parse_run(path, index, table)
        key = (run.model, run.dataset)
        if key in seen:
            raise AuditInputError(
                f"{path}: [[run]] #{index}: duplicate run model = {run.model!r}, dataset = {run.dataset!r} "
                f"(already [[run]] #{seen[key]})"
            )
        seen[key] = index
        runs.append(run)
    return Manifest(path=path, settings=settings, runs=tuple(runs))


def _reject_unknown(table: dict[str, Any], allowed: tuple[str, ...], where: str, suffix: str) -> None:
    for key in table:
        if key not in allowed:
            raise AuditInputError(f"{where} {key!r}{suffix} (allowed: {', '.join(allowed)})")


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


# ---------------------------------------------------------------------------------------------- settings
# Each check takes the setting's name as the user wrote it ("--seed", or "<manifest>: [audit]: key 'seed'") and
# raises AuditInputError naming it and the bad value; the manifest and the command line share them.
def _integer(value: Any, name: str, minimum: int, maximum: int | None = None) -> int:
    # bool is a subclass of int in Python; `bootstrap = true` is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise AuditInputError(f"{name} must be an integer, got {_type_name(value)} {value!r}")
    if value < minimum:
        raise AuditInputError(f"{name} must be ≥ {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise AuditInputError(f"{name} must be ≤ {maximum}, got {value}")
    return value


def _replicates(value: Any, name: str) -> int:
    value = _integer(value, name, 0)
    if value == 1:  # one replicate has no spread: an interval needs at least two
        raise AuditInputError(f"{name} must be 0 (no intervals) or ≥ 2, got 1")
    return value


def _replicates_flag(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise AuditInputError(f"{name} must be 0 (no intervals) or ≥ 2, got {value}")
    return _replicates(value, name)


def _seed(value: Any, name: str) -> int:
    return _integer(value, name, 0, SEED_MAX)


def _presets(value: Any, name: str) -> tuple[str, ...]:
    presets = [value] if isinstance(value, str) else value
    if not isinstance(presets, list | tuple) or not presets or not all(isinstance(p, str) for p in presets):
        raise AuditInputError(f"{name} must be a non-empty array of strings, got {value!r}")
    for preset in presets:
        if preset not in PRESETS:
            raise AuditInputError(f"{name}: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    return tuple(dict.fromkeys(presets))  # drop repeats, keep order


def _interval(value: Any, name: str) -> str:
    if value not in (CALIBRATED, *INTERVAL_METHODS):
        raise AuditInputError(f"{name} must be one of {', '.join((CALIBRATED, *INTERVAL_METHODS))}, got {value!r}")
    return value


def check_overrides(
    *,
    n_boot: Any = None,
    sas_n_boot: Any = None,
    seed: Any = None,
    presets: Any = None,
    interval: Any = None,
) -> dict[str, Any]:
    """Validate the settings given on the command line (or to :func:`~torchspectral.audit.run.run_audit`), which
    override the manifest's ``[audit]`` table, by the rules the manifest's own values follow.

    Args:
        n_boot, sas_n_boot: bootstrap replicates, 0 (no intervals) or ≥ 2; None: not given.
        seed: an integer in [0, :data:`SEED_MAX`]; None: not given.
        presets: a non-empty list of known presets (:data:`torchspectral.functional.report.PRESETS`), repeats
            dropped; None: not given.
        interval: ``"calibrated"`` or one of :data:`torchspectral.uncertainty.INTERVAL_METHODS`; None: not given.

    Returns:
        The given settings, checked (presets as a tuple), under the keys above; those not given are absent.

    Raises:
        AuditInputError: one line naming the flag (``--seed``, …) and the bad value.
    """
    checks = {
        "n_boot": ("--n-boot", _replicates_flag),
        "sas_n_boot": ("--sas-n-boot", _replicates_flag),
        "seed": ("--seed", _seed),
        "presets": ("--presets", _presets),
        "interval": ("--interval", _interval),
    }
    given = {"n_boot": n_boot, "sas_n_boot": sas_n_boot, "seed": seed, "presets": presets, "interval": interval}
    return {key: checks[key][1](value, checks[key][0]) for key, value in given.items() if value is not None}


def _parse_settings(path: Path, table: Any) -> AuditSettings:
    if not isinstance(table, dict):
        raise AuditInputError(f"{path}: 'audit' must be a table, written [audit]")
    _reject_unknown(table, _SETTING_KEYS, f"{path}: [audit]: unknown key", "")
    where = f"{path}: [audit]"

    def key(name: str) -> str:
        return f"{where}: key {name!r}"

    # `n_boot` (the field's own name, which the CLI flag --n-boot mirrors) is accepted as an alias.
    if "bootstrap" in table and "n_boot" in table:
        raise AuditInputError(f"{where}: give 'bootstrap' or its alias 'n_boot', not both")
    n_boot_key = "n_boot" if "n_boot" in table else "bootstrap"
    n_boot = _replicates(table.get(n_boot_key, AuditSettings.n_boot), key(n_boot_key))
    sas_n_boot = _replicates(table["sas_bootstrap"], key("sas_bootstrap")) if "sas_bootstrap" in table else None
    seed = _seed(table.get("seed", AuditSettings.seed), key("seed"))
    top_k_pairs = _integer(table.get("top_k_pairs", AuditSettings.top_k_pairs), key("top_k_pairs"), 0)
    ritz_rank = _integer(table.get("ritz_rank", AuditSettings.ritz_rank), key("ritz_rank"), 0)
    presets = _presets(table.get("presets", list(AuditSettings.presets)), key("presets"))

    q = table.get("q", list(AuditSettings.q_grid))
    if not isinstance(q, list) or not q:
        raise AuditInputError(f"{where}: key 'q' must be a non-empty array of numbers in (0, 1], got {q!r}")
    for value in q:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value <= 1.0:
            raise AuditInputError(f"{where}: key 'q': every value must be a number in (0, 1], got {value!r}")
    # The sweep is plotted as a curve: sorted and without repeats.
    q_grid = tuple(sorted({float(value) for value in q}))

    interval = _interval(table.get("interval", AuditSettings.interval), key("interval"))

    return AuditSettings(
        n_boot=n_boot,
        sas_n_boot=sas_n_boot,
        seed=seed,
        presets=presets,
        q_grid=q_grid,
        top_k_pairs=top_k_pairs,
        interval=interval,
        ritz_rank=ritz_rank,
    )


def _parse_run(path: Path, index: int, table: dict[str, Any]) -> RunSpec:
    where = f"{path}: [[run]] #{index}"
    _reject_unknown(table, _RUN_KEYS, f"{where}: unknown key", "")

    labels: dict[str, str] = {}
    for key in ("model", "dataset", "domain"):
        if key not in table:
            raise AuditInputError(f"{where}: missing key {key!r}")
        value = table[key]
        if not isinstance(value, str):
            raise AuditInputError(f"{where}: key {key!r} must be a string, got {_type_name(value)} {value!r}")
        if not value.strip():
            raise AuditInputError(f"{where}: key {key!r} must not be empty")
        labels[key] = value.strip()
    where = f"{where} ({labels['model']} / {labels['dataset']})"

    given = {key for key in ("image", "text", "caption_to_image", "embeddings") if key in table}
    if "embeddings" in given and given & {"image", "text"}:
        raise AuditInputError(
            f"{where}: give either 'embeddings' or 'image' + 'text', not both "
            f"(found {', '.join(sorted(given - {'caption_to_image'}))})"
        )
    if "embeddings" in given and "caption_to_image" in given:
        raise AuditInputError(
            f"{where}: key 'caption_to_image' goes with 'image' + 'text'; "
            "a combined 'embeddings' file carries its own caption_to_image"
        )
    if "embeddings" not in given:
        if not given & {"image", "text"}:
            raise AuditInputError(f"{where}: no embeddings: give 'image' + 'text' files, or one 'embeddings' file")
        if "image" in given and "text" not in given:
            raise AuditInputError(f"{where}: key 'image' given without 'text'")
        if "text" in given and "image" not in given:
            raise AuditInputError(f"{where}: key 'text' given without 'image'")

    files = {key: _resolve(path, where, key, table[key]) for key in sorted(given)}
    return RunSpec(**labels, **files)


def _resolve(manifest: Path, where: str, key: str, value: Any) -> Path:
    if not isinstance(value, str):
        raise AuditInputError(f"{where}: key {key!r} must be a file path string, got {_type_name(value)} {value!r}")
    if not value.strip():
        raise AuditInputError(f"{where}: key {key!r} must not be empty")
    file = Path(value).expanduser()
    if not file.is_absolute():
        file = manifest.parent / file
    if not file.exists():
        raise AuditInputError(f"{where}: key {key!r}: file not found: {file}")
    if not file.is_file():
        raise AuditInputError(f"{where}: key {key!r}: not a file: {file}")
    return file
