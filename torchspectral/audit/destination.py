"""Where an audit's report goes: vetted before any input is read, staged, published atomically, never destructive.

Rules (each broken rule is an :class:`~torchspectral.audit.errors.AuditInputError`, raised before anything is
created, moved or removed):

* ``out`` must not be, contain or lie inside the manifest or any input file, and must not be ``/``, the
  current directory or one of its ancestors (replacing those would pull the ground from under the caller).
* An existing ``out`` is replaced only with ``force=True``, and only when it is itself a previous report and
  holds nothing else: a directory whose marker file :data:`REPORT_MARKER` lists the files and folders that
  report wrote, and in which every entry is one of them (:func:`check_replaceable`). A file a user added, a
  listed name turned into a link or folder, a marker that lists nothing (forged, or from a version that did not
  list its files): refused, nothing removed. ``--force`` never deletes anything a report did not write.
* The parent must be writable: the staging directory ``.<out name>.partial-XXXX`` is created next to ``out``
  at once (with missing parent folders), so an unwritable location fails in a second, not after the analysis.

The report is written into the staging directory, which is renamed onto ``out`` when complete; a replaced
report is moved aside first and deleted only after the swap. Whatever interrupts the audit before then
(an error, Ctrl-C, SIGTERM) removes the staging directory and any parent folders this module created, so no
partial report is ever left. Staging and retired directories of earlier audits that were killed outright
(SIGKILL, power loss) carry the marker with their owner's process id and are removed on the next start once
that process is gone.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from torchspectral.audit.errors import AuditInputError, AuditWriteError, os_reason

__all__ = [
    "REPORT_MARKER",
    "AuditInterrupted",
    "ReportDestination",
    "check_replaceable",
    "is_report",
    "terminate_as_exception",
]

REPORT_MARKER = ".torchspectral-report"
_STAGING, _RETIRED = ".partial-", ".old-"


class AuditInterrupted(BaseException):
    """SIGTERM arrived (SIGINT raises KeyboardInterrupt): unwinds like Ctrl-C so the staging directory is removed.

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def is_report(path: Path) -> bool:
    """True when ``path`` is a directory written by this module (it holds the report marker)."""
    return path.is_dir() and not path.is_symlink() and (path / REPORT_MARKER).is_file()


def check_replaceable(path: str | Path, flag: str = "--force") -> None:
    """Check that ``path`` is a previous report that may be replaced as a whole: a real directory whose marker
    lists what the report wrote (``files`` and ``folders``, relative POSIX paths) and that holds nothing else.

    Args:
        path: the existing output directory.
        flag: how the message names the option that asked for the replacement.

    Raises:
        AuditInputError: one line naming ``path`` and the first thing that is not the report's (nothing touched).
    """
    path = Path(path)
    untouched = "so nothing was touched"
    if not is_report(path):
        raise AuditInputError(
            f"{flag} replaces only a previous torchspectral report (a directory holding {REPORT_MARKER}); "
            f"{path} is not one, {untouched}"
        )
    try:
        marker = json.loads((path / REPORT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = None
    listed = _listing(marker)
    if listed is None:
        raise AuditInputError(
            f"{flag}: {path / REPORT_MARKER} does not list the files a torchspectral report wrote (altered, or "
            f"from an older version), {untouched}; remove {path} yourself or choose another --out"
        )
    files, folders = listed
    try:
        for root, dirs, names in os.walk(path, onerror=_raise):
            for name in sorted(dirs + names):
                entry = Path(root) / name
                relative = entry.relative_to(path).as_posix()
                if relative == REPORT_MARKER:
                    continue
                if entry.is_symlink():
                    ours = False
                elif entry.is_dir():
                    ours = relative in folders
                else:
                    ours = entry.is_file() and relative in files
                if not ours:
                    raise AuditInputError(
                        f"{flag}: {path} holds {relative}, which the previous report did not write, {untouched}; "
                        "move it out or choose another --out"
                    )
    except OSError as error:
        raise AuditInputError(f"{flag}: cannot list {path}: {os_reason(error)}, {untouched}") from None


def _listing(marker: object) -> tuple[set[str], set[str]] | None:
    """The (files, folders) a finished report's marker lists; None when it lists none (not a finished report)."""
    if not isinstance(marker, dict) or marker.get("tool") != "torchspectral":
        return None
    files, folders = marker.get("files"), marker.get("folders")
    if not isinstance(files, list) or not isinstance(folders, list) or not files:
        return None
    if not all(isinstance(name, str) for name in files + folders):
        return None
    return set(files), set(folders)


def _raise(error: OSError) -> None:
    raise error


def _contents(folder: Path) -> tuple[list[str], list[str]]:
    """The files and folders under ``folder`` (relative POSIX paths, sorted; the marker itself left out)."""
    files, folders = [], []
    for root, dirs, names in os.walk(folder, onerror=_raise):
        for name in dirs:
            folders.append((Path(root) / name).relative_to(folder).as_posix())
        for name in names:
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if relative != REPORT_MARKER:
                files.append(relative)
    return sorted(files), sorted(folders)


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`AuditInterrupted` (the default would kill without cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; a library caller keeps its own
        return

    def handler(signum, frame):
        raise AuditInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:  # a handler set within the block (SIG_IGN) is kept
            signal.signal(signal.SIGTERM, previous)


class ReportDestination:
    """The vetted output directory of one audit. Use as a context manager around the whole audit.

    Example::

        with ReportDestination(out, force=False, inputs=[manifest, *files]) as destination:
            ...  # read, analyse, write files into destination.staging
            destination.publish()

    Leaving the block without :meth:`publish` (an exception, an interrupt) removes the staging directory.
    """

    def __init__(self, out: str | Path, *, force: bool, inputs: Iterable[str | Path]) -> None:
        self.out = Path(out)
        self.force = force
        self.staging: Path | None = None
        self._created_parents: list[Path] = []
        self._vet(list(inputs))

    # -- vetting ---------------------------------------------------------------------------------------
    def _vet(self, inputs: list[str | Path]) -> None:
        out = self.out
        target = out.resolve()
        here = Path.cwd().resolve()
        if target == here or target in here.parents:  # "/" and "." land here
            what = "the current directory" if target == here else "a folder that holds the current directory"
            raise AuditInputError(f"--out {out}: refusing to write the report over {what}; name a new directory")
        if out.name in ("", ".", ".."):
            raise AuditInputError(f"--out {out}: name a new report directory, not {str(out)!r}")
        for given in inputs:
            path = Path(given).resolve()
            if target == path or target in path.parents:
                raise AuditInputError(
                    f"--out {out}: would replace the input {given}; the report must go to a directory of its own"
                )
            if path in target.parents:
                raise AuditInputError(f"--out {out}: lies inside the input {given}; choose a directory elsewhere")
        if out.is_symlink() or out.exists():
            if not self.force:
                raise AuditInputError(
                    f"output directory {out} already exists (pass --force to replace a previous report)"
                )
            check_replaceable(out)

    # -- staging ---------------------------------------------------------------------------------------
    def __enter__(self) -> ReportDestination:
        parent = self.out.parent
        missing = []
        probe = parent
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        try:
            for folder in reversed(missing):
                folder.mkdir()
                self._created_parents.append(folder)
            _remove_stale(parent, self.out.name)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}{_STAGING}", dir=parent))
            _mark(self.staging)
        except OSError as error:
            self._cleanup()
            reason = error.strerror or type(error).__name__
            raise AuditInputError(f"--out {self.out}: cannot create the report there: {reason}") from None
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._cleanup()

    @contextmanager
    def writing(self) -> Iterator[Path]:
        """Around the writing of the report's files into :attr:`staging` (yielded): an :class:`OSError` (a full
        disk, a file size limit) becomes one :class:`~torchspectral.audit.errors.AuditWriteError` naming ``out``,
        the file and the OS error. Leaving the ``with`` block of the destination then removes the staging folder.

        Raises:
            AuditWriteError: a write into the staging directory failed.
        """
        if self.staging is None:
            raise RuntimeError("ReportDestination.writing: used outside its `with` block")
        try:
            yield self.staging
        except AuditWriteError as error:  # already names the file (torchspectral.audit.output)
            raise self._write_error(str(error)) from None
        except OSError as error:
            raise self._write_error(f"cannot write the report: {os_reason(error)}") from None

    def _write_error(self, what: str) -> AuditWriteError:
        kept = "; the previous report is unchanged" if self.out.exists() else ""
        return AuditWriteError(f"--out {self.out}: {what}; nothing was written{kept}")

    def publish(self) -> Path:
        """Move the complete report from staging onto ``out`` (replacing a previous report only after the swap).

        Raises:
            AuditInputError: ``out`` appeared or changed while the audit ran (nothing replaced).
            AuditWriteError: the report could not be moved into place (a previous report is put back).
        """
        if self.staging is None:
            raise RuntimeError("ReportDestination.publish: used outside its `with` block")
        out = self.out
        try:
            # A finished report: no owner process (never taken for stale staging), and the list of what it wrote,
            # which is all a later --force may remove.
            _mark(self.staging, owner=None, contents=_contents(self.staging))
        except OSError as error:
            raise self._write_error(f"cannot write {REPORT_MARKER}: {os_reason(error)}") from None
        if out.is_symlink() or out.exists():
            # Checked again: the first check was before the analysis, and the folder may have changed since.
            if not self.force:
                raise AuditInputError(f"{out} appeared while the audit ran; not replacing it")
            try:
                check_replaceable(out)
            except AuditInputError as error:
                raise AuditInputError(f"{out} changed while the audit ran: {error}") from None
            try:
                retired = Path(tempfile.mkdtemp(prefix=f".{out.name}{_RETIRED}", dir=out.parent))
                try:
                    _mark(retired)
                    os.replace(out, retired / out.name)
                    try:
                        os.replace(self.staging, out)
                    except OSError:
                        os.replace(retired / out.name, out)  # put the previous report back
                        raise
                finally:
                    shutil.rmtree(retired, ignore_errors=True)
            except OSError as error:
                raise self._write_error(f"cannot move the report into place: {os_reason(error)}") from None
        else:
            try:
                os.replace(self.staging, out)
            except OSError as error:
                raise self._write_error(f"cannot move the report into place: {os_reason(error)}") from None
        self.staging = None
        self._created_parents = []
        return out

    def _cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        for folder in reversed(self._created_parents):
            try:
                folder.rmdir()  # only if still empty: never a folder someone else filled meanwhile
            except OSError:
                break
        self._created_parents = []


def _mark(folder: Path, owner: int | None = -1, contents: tuple[list[str], list[str]] | None = None) -> None:
    """Write the marker; ``owner`` is the process that may still be writing into ``folder`` (default: this one);
    ``contents``, the (files, folders) of a finished report."""
    content: dict = {"tool": "torchspectral", "owner_pid": os.getpid() if owner == -1 else owner}
    if contents is not None:
        content["files"], content["folders"] = contents
    (folder / REPORT_MARKER).write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")


def _remove_stale(parent: Path, name: str) -> None:
    """Remove staging/retired folders of ``name`` left by audits that died (their owner process is gone)."""
    for prefix in (f".{name}{_STAGING}", f".{name}{_RETIRED}"):
        for folder in parent.glob(f"{glob.escape(prefix)}*"):
            if not is_report(folder):
                continue  # not ours: never touched
            try:
                owner = json.loads((folder / REPORT_MARKER).read_text(encoding="utf-8")).get("owner_pid")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(owner, int) and owner > 0 and not _alive(owner):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True
