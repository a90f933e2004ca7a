"""Who gets the CPU first on a host that runs the Procfile's lines side by side (Linux).

Linux shares the CPU between sessions (autogroups) before it shares it between their processes,
and a process manager (honcho, systemd) starts each Procfile line in a session of its own; a
session's niceness is its weight. Three kinds of work meet there, and when the cores are all busy
they get them in this order:

1. `public` (niceness 0): short links, unsubscribe pages and delivery receipts, which come in
   bursts from outside and must be answered during a send (docs/benchmarks.md, "Clicks").
2. The engine's senders (MAILER_SENDER_NICE) and the staff's site, `web` (MAILER_WEB_NICE, the
   same by default): they share what the public leaves half and half, so that four staff members
   working without a pause still leave the engine most of its rate, and a mailing's send still
   leaves them pages within a fraction of a second (issue 27, "The staff's requests while the
   engine sends").

In containers each one's cgroup is weighed instead (the orchestrator's CPU shares), and this
changes nothing outside it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def lower(niceness: int) -> None:
    """This process's niceness, and its session's when a process manager started it (no
    terminal): not a terminal's session, which holds the shell it was started from."""
    if not niceness:
        return
    os.nice(niceness)
    try:
        open("/dev/tty").close()  # only whether there is one
    except OSError:  # no terminal: the session is this process's own
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(niceness))
