"""The audit's user-facing errors: :class:`AuditInputError` for bad input (manifest, settings, embedding files,
output location) and :class:`AuditWriteError` for a report that could not be written."""

from __future__ import annotations

import errno

__all__ = ["AuditInputError", "AuditWriteError", "os_reason"]


class AuditInputError(ValueError):
    """One-line, user-facing: names the file (and where relevant the run and key) and the problem.

    The CLI prints ``str(error)`` without a traceback and exits with status 2, so the message must say
    everything a user needs to fix the input. Subclasses :class:`ValueError` so library callers that
    already catch ``ValueError`` keep working.
    """


class AuditWriteError(OSError):
    """The report could not be written (a full disk, a file size limit, a folder made read-only meanwhile).

    One line naming the report, the file and the operating system's error, e.g. ``--out runs/report: cannot
    write plots/q_sweep.png: No space left on device (ENOSPC); nothing was written``. Raised after the staging
    directory is removed (a previous report is left as it was), so nothing partial is left behind. The CLI prints
    ``str(error)`` without a traceback and exits with status 4. Subclasses :class:`OSError` so library callers
    that already catch ``OSError`` keep working.
    """


def os_reason(error: OSError) -> str:
    """The operating system's words for ``error`` and its errno name, e.g. ``File too large (EFBIG)``.

    Args:
        error: any OSError (``strerror`` and ``errno`` may be unset, e.g. when raised with a message alone).

    Returns:
        One line: ``strerror (ENAME)`` when the errno is known, else the error's own message or type name.
    """
    code = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    lines = str(error).strip().splitlines()
    text = error.strerror or (lines[0] if lines else type(error).__name__)
    return f"{text} ({code})" if code and code not in text else text
