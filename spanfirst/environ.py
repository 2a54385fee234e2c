"""Putting environment variables back the way they were."""

from __future__ import annotations

import os


def restore(saved: dict[str, str | None]) -> None:
    """Set each variable back to its saved value; a saved None means it was unset."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
