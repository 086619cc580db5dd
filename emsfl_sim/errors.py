"""User-facing input errors.

Every bad input is reported as one line naming the file, the field (or line)
and what is expected, e.g.::

    scenarios/x.yaml: link.elevation_mask_deg: must be between 0 and 90 degrees (got 95)

The CLI prints ``str(error)`` and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations

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
