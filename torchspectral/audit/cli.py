"""The `torchspectral` command line: `audit`, `embed` and `demo`.

* ``torchspectral audit MANIFEST --out DIR``: every metric over the manifest's runs, the cross-run
  statistics and the plots, written atomically to DIR (see :mod:`torchspectral.audit`).
* ``torchspectral embed --model DIR --data DIR --out FILE``: embeddings from a local transformers model.
* ``torchspectral demo [--out DIR]``: the audit over planted synthetic embeddings (what ``make demo`` runs).

Errors in the input (manifest, files, settings, output location) print one line naming the problem and exit
with status 2 before anything is written. A run the metrics reject is listed in the report's "Failed runs"
section and the audit exits with status 3; when no run succeeds it exits with status 1 and writes nothing.
A report that cannot be written (a full disk, a file size limit) is one line naming the file and the OS error,
status 4, and nothing left behind. SIGINT/SIGTERM exit with 130/143 and leave nothing behind (see
``EXIT_STATUSES``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torchspectral as ts
from torchspectral.audit.destination import AuditInterrupted, check_replaceable, terminate_as_exception
from torchspectral.audit.errors import AuditInputError, AuditWriteError
from torchspectral.audit.run import AnalysisError, run_audit
from torchspectral.uncertainty import INTERVAL_METHODS
from torchspectral.uncertainty.calibrated import CALIBRATED

__all__ = ["AnalysisError", "build_parser", "main", "run_audit"]  # run_audit: re-exported for earlier imports

# Exit statuses (documented in `torchspectral audit --help` and docs/audit.md#exit-statuses).
EXIT_OK = 0
EXIT_ALL_RUNS_FAILED = 1  # no run could be analysed: nothing written
EXIT_INPUT_ERROR = 2  # bad manifest, file, setting or --out: nothing read past it, nothing touched or written
EXIT_SOME_RUNS_FAILED = 3  # report written for the runs that succeeded; the others are in its "Failed runs"
EXIT_WRITE_FAILED = 4  # the report could not be written (disk full, file size limit): nothing written
EXIT_STATUSES = f"""exit status:
  {EXIT_OK}  every run analysed, report written
  {EXIT_ALL_RUNS_FAILED}  no run could be analysed (each reason on stderr); nothing written
  {EXIT_INPUT_ERROR}  bad manifest, input file, setting or --out (one line on stderr); nothing touched or written
  {EXIT_SOME_RUNS_FAILED}  report written for the runs that succeeded; the failed ones are listed in its "Failed runs"
     section and on stderr
  {EXIT_WRITE_FAILED}  the report could not be written (disk full, file size limit, …): one line on stderr naming
     the file and the OS error; nothing written (a previous report is left as it was)
  130/143  interrupted by SIGINT/SIGTERM; nothing written (the staging directory is removed)"""


def _audit_command(args: argparse.Namespace) -> int:
    presets = args.presets.split(",") if args.presets else None
    with _process_group(args.distributed, args.owns_process) as rank:
        outcome = _run(args, presets)
    if rank != 0:  # rank 0 speaks for the audit; every rank returns the same status
        return EXIT_SOME_RUNS_FAILED if outcome.failures else EXIT_OK
    print(f"torchspectral audit: report written to {outcome.report}/report.md")
    for failure in outcome.failures:
        print(f"torchspectral audit: run {failure.name} failed: {failure.reason}", file=sys.stderr)
    return EXIT_SOME_RUNS_FAILED if outcome.failures else EXIT_OK


@contextlib.contextmanager
def _process_group(distributed: bool, owns_process: bool = False) -> Iterator[int]:
    """This process's rank; with ``--distributed``, in the process group torchrun's environment describes
    (joined here, and left at the end, unless the caller had already joined one).

    When the block ends, every rank has passed the audit's last collective, so the outcome (report published, or
    the same error everywhere) is settled on every rank. torchrun stops the remaining workers with SIGTERM as soon
    as one exits non-zero (status 3 when a run failed); with ``owns_process`` (the command line, not a library
    caller) SIGTERM is then ignored while this process exits, so every rank exits with the settled status.
    """
    if not distributed:
        yield 0
        return
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield dist.get_rank()
        return
    if "RANK" not in os.environ:
        raise AuditInputError("--distributed needs torchrun (or RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set)")
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield dist.get_rank()
    finally:
        if owns_process and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        dist.destroy_process_group()


def _run(args: argparse.Namespace, presets: list[str] | None):
    return run_audit(
        args.manifest,
        args.out,
        force=args.force,
        n_boot=args.n_boot,
        sas_n_boot=args.sas_n_boot,
        seed=args.seed,
        presets=presets,
        device=args.device,
        interval=args.interval,
        progress=not args.quiet,
        distributed=args.distributed,
    )


# ---------------------------------------------------------------------------------------------- demo
def _demo_command(args: argparse.Namespace) -> int:
    from torchspectral.demo import write_demo_inputs

    out = Path(args.out)
    if out.exists() or out.is_symlink():
        check_replaceable(out, flag="--out")  # the demo replaces only a previous report, and nothing added to it
    started = time.perf_counter()
    print("torchspectral demo: the full audit over planted synthetic image–text embeddings")
    print(f"4 models × 2 datasets (natural, medical), n = {args.n} pairs, d = 256. Generator: torchspectral/demo.py")
    with tempfile.TemporaryDirectory(prefix="torchspectral-demo-") as inputs:
        manifest = write_demo_inputs(inputs, n=args.n, seed=args.seed, n_boot=args.n_boot)
        run_audit(manifest, out, force=True, progress=not args.quiet, attach={"demo-manifest.toml": manifest})
    report = (out / "report.md").read_text(encoding="utf-8")
    print(report)
    recovered = _planted_facts(out)
    print(f"Report: {out}/report.md, plots in {out}/plots ({time.perf_counter() - started:.1f} s)")
    return 0 if recovered else 1


def _planted_facts(out: Path) -> bool:
    """Print whether the report's verdicts recovered what the demo planted; True when they did: every medical run
    says "text is the bottleneck" (its interval of the subspace imbalance above 0) and every natural run "none"."""
    import json

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    runs = report["runs"]
    verdicts = {
        domain: [r["verdict"]["bottleneck"] for r in runs if r["domain"] == domain] for domain in ("medical", "natural")
    }
    recovered = all(v == "text" for v in verdicts["medical"]) and all(v == "none" for v in verdicts["natural"])
    print("Planted: in the medical dataset the text tower misses 45% of the image's factors and carries its")
    print("own style subspace, so the text is the bottleneck for every model; in the natural dataset both towers")
    print("see the same factors (no imbalance). Less noise makes a stronger model (higher rSum).")
    print(
        f"Verdicts: medical {', '.join(verdicts['medical'])}; natural {', '.join(verdicts['natural'])} → planted "
        f"direction {'RECOVERED' if recovered else 'NOT recovered'} (expected: text in medical, none in natural)."
    )
    return recovered


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchspectral", description=ts.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    audit = commands.add_parser(
        "audit",
        help="every metric over a manifest of models × datasets",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("manifest", help="TOML manifest with one [[run]] table per model × dataset")
    audit.add_argument(
        "--out",
        required=True,
        help="report directory to create (written atomically; never an input, the current directory or above it)",
    )
    audit.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it is a previous torchspectral report holding only what that report wrote "
        "(never anything else)",
    )
    audit.add_argument(
        "--n-boot",
        type=int,
        default=None,
        help="bootstrap replicates (0 = no intervals); the SAS intervals use as many unless sas_bootstrap or "
        "--sas-n-boot says otherwise",
    )
    audit.add_argument(
        "--sas-n-boot", type=int, default=None, help="bootstrap replicates for the SAS intervals (default: --n-boot)"
    )
    audit.add_argument(
        "--interval",
        choices=(CALIBRATED, *INTERVAL_METHODS),
        default=None,
        help="bootstrap interval method (default: calibrated, each metric's own; docs/uncertainty.md#calibration)",
    )
    audit.add_argument("--seed", type=int, default=None, help="bootstrap seed, 0 … 2**63 − 1 (default: 0)")
    audit.add_argument("--presets", default=None, help="comma-separated report presets, e.g. default,paper")
    audit.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    audit.add_argument("--quiet", action="store_true", help="no progress bars")
    audit.add_argument(
        "--distributed",
        action="store_true",
        help="split the runs across the ranks of torch.distributed (launch with torchrun --nproc_per_node=W; "
        "one device per rank); rank 0 writes the report",
    )
    audit.set_defaults(handler=_audit_command)

    from torchspectral.audit.embed import add_embed_parser

    add_embed_parser(commands)

    demo = commands.add_parser("demo", help="the full audit over planted synthetic embeddings")
    demo.add_argument("--out", default="demo-report", help="report directory (default: ./demo-report)")
    demo.add_argument("--n", type=int, default=2_000, help="pairs per run (default 2000)")
    demo.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates per run (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.owns_process = argv is None  # the console script / `python -m torchspectral`, not a library call
    if args.command == "demo" and args.n < 16:
        parser.error("--n must be at least 16")
    try:
        with terminate_as_exception():
            return args.handler(args)
    except (AuditInputError, FileExistsError) as error:
        print(f"torchspectral {args.command}: error: {error}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except AuditWriteError as error:
        print(f"torchspectral {args.command}: error: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except AnalysisError as error:
        for failure in error.failures:
            print(f"torchspectral {args.command}: error: run {failure.name}: {failure.reason}", file=sys.stderr)
        return EXIT_ALL_RUNS_FAILED
    except (KeyboardInterrupt, AuditInterrupted) as error:
        signum = error.signum if isinstance(error, AuditInterrupted) else signal.SIGINT
        print(f"torchspectral {args.command}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
