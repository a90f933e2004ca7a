"""Spool files: what the web takes in bursts (clicks, delivery receipts) written down without
waiting for a lock, for a sender to take into the database in bulk.

Each web process appends to a file of its own in the spool's directory (`append`: one write, so a
line is whole and in the kernel's hands once it returns; a killed process loses nothing). A sender
sets the files being written aside (`set_aside`: a rename, the next write starts a new file) and
takes in those set aside at least SETTLE ago (`ready`): a write that began before the rename has
landed by then.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

# A file is taken in once its name has been ".ready" this long.
SETTLE = 1.0
# The spool settings' value for a table instead of files (MAILER_CLICK_SPOOL, MAILER_RECEIPT_SPOOL).
DATABASE = "database"

_made: set[Path] = set()


def append(directory: str, lines: list[str]) -> None:
    """Append `lines` (each without its newline) to this process's file in `directory`."""
    where = Path(directory)
    if where not in _made:
        where.mkdir(parents=True, exist_ok=True)
        _made.add(where)
    path = where / f"{socket.gethostname()}-{os.getpid()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(f"{line}\n" for line in lines).encode())
    finally:
        os.close(fd)


def ready(directory: str, now: float | None = None) -> list[Path]:
    """The files of `directory` set aside at least SETTLE ago, oldest first."""
    where = Path(directory)
    if not where.is_dir():
        return []
    now = now or time.time()
    settled = []
    for path in sorted(where.glob("*.ready")):
        renamed = int(path.suffixes[-2].lstrip(".")) / 1e9 if len(path.suffixes) >= 2 else 0
        if now - renamed >= SETTLE:
            settled.append(path)
    return settled


def set_aside(directory: str) -> None:
    """Rename the files being written to `<name>.<ns>.ready`: the next write starts a new file."""
    where = Path(directory)
    if not where.is_dir():
        return
    for path in where.glob("*.log"):
        try:
            path.rename(path.with_name(f"{path.stem}.{time.time_ns()}.ready"))
        except FileNotFoundError:
            pass


def lines(path: Path) -> list[str]:
    """The lines of a file set aside (FileNotFoundError if another sender took it meanwhile)."""
    return path.read_text(errors="replace").splitlines()
