"""`run_audit`: a manifest in, a report directory out — the audit's whole flow, without the command line.

Order of work, so that a mistake costs seconds and never a file:

1. read the manifest, vet the output location against it and every input it names, and create the staging
   directory (:class:`~torchspectral.audit.destination.ReportDestination`) — before any embedding is read;
2. read and validate every run's files (a bad file is an input error: nothing is analysed or written);
3. analyse each run; a run the metrics reject (constant embeddings, too few pairs, …) is recorded as a
   :class:`~torchspectral.audit.records.RunFailure` with its one-line reason, and the audit goes on;
4. write the report of the runs that succeeded (with a "Failed runs" section) and publish it atomically.

When no run succeeds there is nothing to report: :class:`AnalysisError` lists every failure and nothing is written.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from torchspectral.audit.destination import ReportDestination, terminate_as_exception
from torchspectral.audit.errors import AuditInputError, AuditWriteError, os_reason
from torchspectral.audit.process_ranks import RankSplit
from torchspectral.audit.records import RunFailure

__all__ = ["AnalysisError", "AuditOutcome", "run_audit"]

_REPORT_NAMES = ("report.json", "runs.csv", "report.md", "plots")


class AnalysisError(RuntimeError):
    """No run of the audit could be analysed; ``failures`` says why for each (nothing was written)."""

    def __init__(self, failures: Sequence[RunFailure]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(f"run {f.name}: {f.reason}" for f in self.failures))


@dataclass(frozen=True)
class AuditOutcome:
    """What :func:`run_audit` wrote: the report directory and the runs it could not analyse (listed in it)."""

    report: Path
    failures: list[RunFailure] = field(default_factory=list)


def run_audit(
    manifest_path: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    n_boot: int | None = None,
    sas_n_boot: int | None = None,
    seed: int | None = None,
    presets: Sequence[str] | None = None,
    device: str | None = None,
    interval: str | None = None,
    progress: bool = True,
    distributed: bool = False,
    attach: Mapping[str, str | Path] | None = None,
) -> AuditOutcome:
    """Read every run of the manifest, analyse it and write the report directory ``out``.

    Keyword arguments override the manifest's ``[audit]`` settings. ``force`` replaces ``out`` only when it is a
    previous report (see :mod:`torchspectral.audit.destination`).

    ``distributed=True`` (call it on every rank of an initialised torch.distributed group, e.g. under torchrun):
    rank r reads and analyses the runs r, r + W, …, on its own device (``cuda:LOCAL_RANK`` when CUDA is
    there), and rank 0 writes the one report, the same as one process writes (:mod:`torchspectral.audit.process_ranks`;
    the timings are rank 0's). Every rank returns the same outcome and raises the same errors.

    ``attach`` maps a file name in the report to a file copied there (the demo attaches the manifest it
    generated); like every file of the report it is listed in the report's marker, so ``--force`` may replace it.

    Raises:
        AuditInputError: bad manifest, settings, input file or output location (nothing touched or written).
        AnalysisError: every run failed analysis (nothing written).
        AuditWriteError: the report could not be written (full disk, file size limit, …): nothing written, a
            previous report left as it was.
        AuditInterrupted / KeyboardInterrupt: SIGTERM / SIGINT (the staging directory is removed first).
    """
    from tqdm.auto import tqdm

    from torchspectral.audit.analysis import analyse_run
    from torchspectral.audit.manifest import check_overrides, load_manifest
    from torchspectral.audit.output import write_report_files
    from torchspectral.audit.readers import read_run

    attach = dict(attach or {})
    for name in attach:
        if not isinstance(name, str) or Path(name).name != name or name.startswith(".") or name in _REPORT_NAMES:
            raise ValueError(f"run_audit: attach: {name!r} must be a plain file name not used by the report")
    # Every setting is checked before any input is read: the overrides here, the manifest's when it is loaded.
    split = RankSplit(distributed)
    given = check_overrides(n_boot=n_boot, sas_n_boot=sas_n_boot, seed=seed, presets=presets, interval=interval)
    device = split.agreed(lambda: resolve_device(device, split))
    manifest = load_manifest(manifest_path)
    settings = manifest.settings
    n_boot = given.get("n_boot", settings.n_boot)
    # SAS replicates: --sas-n-boot, else the manifest's `sas_bootstrap`, else the same count as the other metrics.
    sas_n_boot = given.get("sas_n_boot", n_boot if settings.sas_n_boot is None else settings.sas_n_boot)
    seed = given.get("seed", settings.seed)
    presets = given.get("presets", settings.presets)
    interval = given.get("interval", settings.interval)
    inputs = [manifest.path, *(path for spec in manifest.runs for path in spec.files)]
    progress = progress and split.rank == 0

    def destination_here() -> ReportDestination:
        return ReportDestination(out, force=force, inputs=inputs)

    with terminate_as_exception(), split.on_rank_zero(destination_here) as destination:
        stage_seconds: dict[str, float] = {}
        started = time.perf_counter()
        mine = split.mine(manifest.runs)
        pairs_of_runs = split.agreed(
            lambda: [read_run(spec) for _, spec in tqdm(mine, desc="reading", unit="run", disable=not progress)]
        )
        stage_seconds["reading inputs"] = time.perf_counter() - started

        started = time.perf_counter()
        results, failures = [], []
        analysed: list[tuple[int, object]] = []  # (manifest index, result or failure) of this rank's runs
        work = [(i, spec, pairs) for (i, spec), pairs in zip(mine, pairs_of_runs, strict=True)]
        for i, spec, pairs in tqdm(work, desc="analysing", unit="run", disable=not progress):
            try:
                results.append(
                    analyse_run(
                        spec.model,
                        spec.dataset,
                        spec.domain,
                        pairs.image.to(device),
                        pairs.text.to(device),
                        pairs.caption_to_image.to(device),
                        presets=presets,
                        n_boot=n_boot,
                        sas_n_boot=sas_n_boot,
                        seed=seed,
                        q_grid=settings.q_grid,
                        top_k=settings.top_k_pairs,
                        interval=interval,
                        ritz_rank=settings.ritz_rank,
                    )
                )
            except Exception as error:  # one bad run never sinks the others: it is listed with its reason
                failures.append(RunFailure(spec.model, spec.dataset, spec.domain, _reason(error)))
                analysed.append((i, failures[-1]))
            else:
                analysed.append((i, results[-1]))
        results, failures = split.gather_runs(analysed)
        stage_seconds["analysing runs"] = time.perf_counter() - started
        if not results:
            raise AnalysisError(failures)
        used = {"n_boot": n_boot, "sas_n_boot": sas_n_boot, "interval": interval, "seed": seed}
        used.update({"presets": list(presets), "device": device, "ritz_rank": settings.ritz_rank})
        used.update({"q_grid": list(settings.q_grid), "top_k_pairs": settings.top_k_pairs})

        def write() -> Path | None:
            if destination is None:  # not rank 0: rank 0 writes the report
                return None
            with destination.writing() as staging:
                write_report_files(
                    staging,
                    results,
                    manifest=manifest.path,
                    settings=used,
                    stage_seconds=stage_seconds,
                    failures=failures,
                )
                for name, source in attach.items():
                    try:
                        shutil.copyfile(source, staging / name)
                    except OSError as error:
                        raise AuditWriteError(f"cannot write {name}: {os_reason(error)}") from None
            return destination.publish()

        # Every rank waits here until rank 0 has published the report (or failed to): no rank returns, and so no
        # launcher tears the job down (torchrun stops every worker once one exits non-zero), while it is written.
        published = split.agreed(write)
        return AuditOutcome(Path(out) if published is None else published, failures)


def resolve_device(device: str | torch.device | None, split: RankSplit | None = None) -> str:
    """The torch device the audit computes on, checked before any input is read.

    Args:
        device: a torch device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, …); None: ``cuda`` when CUDA is
            available (``cuda:LOCAL_RANK`` on each rank of a distributed audit), else ``cpu``.
        split: the audit's ranks (for the default device of a distributed audit); None: one process.

    Returns:
        The device name.

    Raises:
        AuditInputError: ``device`` is not a torch device, is the meta device (it holds no values), or is not
            available here (``cuda`` without CUDA, a CUDA index beyond the GPUs present, …).
    """
    if device is None:
        if not torch.cuda.is_available():
            return "cpu"
        if split is not None and split.distributed:
            return f"cuda:{os.environ.get('LOCAL_RANK', split.rank % torch.cuda.device_count())}"
        return "cuda"
    name = str(device)
    try:
        parsed = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise AuditInputError(f"--device {name!r} is not a torch device; use e.g. cpu, cuda or cuda:1") from None
    if parsed.type == "meta":
        raise AuditInputError(f"--device {name!r}: the meta device holds no values; use e.g. cpu or cuda")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise AuditInputError(f"--device {name!r}: CUDA is not available here; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise AuditInputError(f"--device {name!r}: this machine has CUDA devices cuda:0 … cuda:{count - 1}")
    try:
        torch.empty(1, device=parsed)  # the device can hold a tensor here (mps, xpu, … included)
    except Exception as error:  # torch raises RuntimeError or AssertionError by backend
        raise AuditInputError(f"--device {name!r} is not available here: {_first_line(error)}") from None
    return name


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _reason(error: Exception) -> str:
    """One line: the metric's own message (a ValueError names the problem), else the exception type too."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else "(no message)"
    return message if isinstance(error, ValueError) else f"{type(error).__name__}: {message}"
