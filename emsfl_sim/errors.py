"""User-facing input errors.

Every bad input is reported as one line naming the file, the field (or line)
and what is expected, e.g.::

    scenarios/x.yaml: link.elevation_mask_deg: must be between 0 and 90 degrees (got 95)

The CLI prints ``str(error)`` and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import errno
from pathlib import Path


class InputError(ValueError):
    """A problem with user input (scenario, TLE, data or model files).

    Parameters
    ----------
    message:
        What is wrong and what is expected (the fix), without the location.
    file:
        The file the bad value came from, if any.
    field:
        Dotted field path (``link.elevation_mask_deg``) or ``line 12`` for text files.
    """

    def __init__(self, message: str, file: str | Path | None = None, field: str | None = None) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.field = field
        super().__init__(self.format())

    def format(self) -> str:
        """The one-line form ``FILE: FIELD: MESSAGE`` (missing parts omitted)."""
        parts = [p for p in (self.file, self.field) if p]
        return ": ".join([*parts, self.message])

    def with_file(self, file: str | Path) -> InputError:
        """Return a copy located in ``file`` unless it already names a file."""
        if self.file is not None:
            return self
        return InputError(self.message, file=file, field=self.field)


#: What went wrong and what to do, per ``errno`` of an OSError on a path.
_OS_ERROR_FIXES = {
    errno.EACCES: "permission denied; choose a path you can write to or change its permissions",
    errno.EPERM: "permission denied; choose a path you can write to or change its permissions",
    errno.EROFS: "read-only file system; choose a path on a writable disk",
    errno.EEXIST: "a file is in the way where a folder is needed; remove it or choose another path",
    errno.ENOTDIR: "a part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "is a folder, not a file; give a file name inside it",
    errno.ENOSPC: "no space left on the device; free some space or choose a path on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or choose a path on another disk",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
}


def os_error(exc: OSError, path: str | Path | None = None, field: str | None = None) -> InputError:
    """The one-line InputError for an OSError on ``path`` (default: the error's own file name).

    The message says what went wrong in plain words (permission denied, a file in the
    way of a folder, a full disk) and what to do about it.
    """
    where = path if path is not None else exc.filename
    fix = _OS_ERROR_FIXES.get(exc.errno or -1) or f"{exc.strerror or exc}; check the path"
    return InputError(fix, file=where, field=field)


def not_a_file(path: str | Path, what: str, hint: str = "check the path", named: bool = False) -> str | None:
    """Why ``path`` is not an existing ``what`` file (a folder, or missing), or None when it is one.

    The one wording of every "file expected" check, so a folder is never reported as
    missing. ``named`` puts the path in the text (when the error line names another file).
    """
    p = Path(path)
    if p.is_file():
        return None
    subject = f"{p} " if named else ""
    if p.is_dir():
        return f"{subject}is a folder, not a {what}; give a file inside it"
    return f"{subject}not found; {hint}" if named else f"{what} not found; {hint}"
