"""The audit split across processes (torch.distributed ranks): each rank reads and analyses every W-th run, rank 0
writes. (The ranks of retrieval results are another thing: :mod:`torchspectral.pairwise.retrieval_counts`.)

Every step that can fail on one rank only (the output location, on rank 0; reading a rank's input files) ends
with the ranks exchanging their verdicts (``all_gather_object``), so an error anywhere is the same error on
every rank, not a rank waiting forever in a collective. The communication is that of
:mod:`torchspectral.distributed.collectives` over the default process group. A run whose analysis fails is a
:class:`~torchspectral.audit.records.RunFailure` on the rank that ran it and travels to rank 0 like any result,
so the report is the one-process report: the runs in manifest order, the failed ones listed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torchspectral.audit.errors import AuditInputError, AuditWriteError
from torchspectral.audit.records import RunFailure, RunResult
from torchspectral.distributed import require_initialised
from torchspectral.distributed.collectives import gather_objects, group_rank_world


class RankSplit:
    """Which runs this rank takes and how the ranks agree; ``distributed=False``: one process, no collective."""

    def __init__(self, distributed: bool) -> None:
        self.distributed = distributed
        self.group: Any = None  # one process: no collective
        if distributed:
            require_initialised("torchspectral audit --distributed")
            import torch.distributed as dist

            self.group = dist.group.WORLD
        self.rank, self.world = group_rank_world(self.group)

    def mine(self, items: Sequence[Any]) -> list[tuple[int, Any]]:
        """(manifest index, item) of the runs this rank takes: index ≡ rank (mod W)."""
        return [(i, item) for i, item in enumerate(items) if i % self.world == self.rank]

    def everyone(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order."""
        return gather_objects(value, self.group)

    def agreed(self, step: Callable[[], Any]) -> Any:
        """``step()`` on this rank; if it raised on any rank, the same error on every rank: an
        :class:`AuditInputError` or :class:`AuditWriteError` as itself (its message, naming the rank), any other
        error as a :class:`RuntimeError` with its type and message."""
        try:
            value, error = step(), None
        except AuditInputError as caught:
            value, error = None, ("input", str(caught))
        except AuditWriteError as caught:
            value, error = None, ("write", str(caught))
        except Exception as caught:  # not an audit error: still never a hang on the other ranks
            value, error = None, ("other", f"{type(caught).__name__}: {caught}")
            if not self.distributed:
                raise
        for rank, verdict in enumerate(self.everyone(error)):
            if verdict is not None:
                kind, message = verdict
                where = "" if self.world == 1 else f" (on rank {rank})"
                raise {"input": AuditInputError, "write": AuditWriteError}.get(kind, RuntimeError)(message + where)
        return value

    @contextlib.contextmanager
    def on_rank_zero(self, make: Callable[[], Any]) -> Iterator[Any]:
        """Enter the context ``make()`` (the report's destination) on rank 0 only, its errors shared with every
        rank; the other ranks get None."""
        manager = self.agreed(lambda: _entered(make()) if self.rank == 0 else None)
        if manager is None:
            yield None
            return
        context, value = manager
        with _exiting(context):
            yield value

    def gather_runs(
        self, local: Sequence[tuple[int, RunResult | RunFailure]]
    ) -> tuple[list[RunResult], list[RunFailure]]:
        """Every rank's analysed runs, back in manifest order (results and failures)."""
        rows = [(i, "failed" if isinstance(r, RunFailure) else "ok", r.to_dict()) for i, r in local]
        merged = sorted(row for part in self.everyone(rows) for row in part)
        results = [RunResult.from_dict(d) for _, kind, d in merged if kind == "ok"]
        failures = [RunFailure(**d) for _, kind, d in merged if kind == "failed"]
        return results, failures


def _entered(context: Any) -> tuple[Any, Any]:
    return context, context.__enter__()


@contextlib.contextmanager
def _exiting(context: Any) -> Iterator[None]:
    try:
        yield
    except BaseException as error:
        if not context.__exit__(type(error), error, error.__traceback__):
            raise
    else:
        context.__exit__(None, None, None)
