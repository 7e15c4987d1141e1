"""A campaign's folders, I/O: where its working files and its reports live, under the data
folder ``tasks/runtime.py`` names (every worker shares it), and whether a folder takes a file.

It is NOT where the data folder is chosen (``runtime.data_dir``), nor what goes in the folders
(``tasks/rows_file.py``, the reporting modules). No Prefect.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tasks import runtime


def state_dir(campaign_id: str) -> Path:
    """The campaign's working files (its rows), under the data folder every worker shares."""
    return runtime.state_dir() / campaign_id


def report_dir(campaign_id: str) -> Path:
    """The campaign's reports, under the data folder every worker shares."""
    return runtime.reports_dir() / campaign_id


def unwritable(folder: Path) -> str | None:
    """Why a folder the campaign writes to cannot take a file (None: it can). Checked before
    the first send: a report that cannot be written after sending hides what was sent."""
    probe = folder / f".probe.{os.getpid()}.{threading.get_ident()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"cannot write to {folder}: {exc.strerror or type(exc).__name__}"
    return None


__all__ = ["report_dir", "state_dir", "unwritable"]
