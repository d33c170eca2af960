"""Errors that name the file and the problem, so a user can fix their copy of a data set."""
from __future__ import annotations


class HarnessError(Exception):
    """Base of the errors the CLI reports in one line instead of a traceback."""


class DataError(HarnessError):
    """A data item (video, annotation line, split file) that cannot be used: the run records it and goes on."""

    def __init__(self, path: str, problem: str, line: int | None = None):
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class MissingDataError(HarnessError):
    """A whole data set, split file or weight file is absent: the run cannot start (the message says where to get it)."""


class CapabilityError(HarnessError):
    """A task asks of a model something the model cannot do."""

