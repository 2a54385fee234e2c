"""Errors about user input that name where the problem is."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file, the line (or row) and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, message: str, unit: str = "line") -> None:
        self.path, self.line, self.field = str(path), line, field
        where = self.path
        if line is not None:
            where += f", {unit} {line}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class DataWarning(UserWarning):
    """Input that reads, but probably not as meant (e.g. a tag column left unread)."""
