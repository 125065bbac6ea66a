"""`AuditInputError`: the one exception the audit raises for bad user input (manifest, embedding files, data)."""

from __future__ import annotations


class AuditInputError(ValueError):
    """One-line, user-facing: names the file (and where relevant the run and key) and the problem.

    The CLI prints ``str(error)`` without a traceback and exits with status 2, so the message must say
    everything a user needs to fix the input. Subclasses :class:`ValueError` so library callers that
    already catch ``ValueError`` keep working.
    """
