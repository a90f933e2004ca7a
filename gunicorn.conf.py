"""gunicorn's settings, read from the directory it starts in by every way the web runs here (the
Procfiles, the Dockerfile); its command line and WEB_CONCURRENCY still win."""

import os

# Sync workers, one request at a time each. A worker also waits after each answer for the client
# to close the connection (gunicorn's graceful close), so it is idle part of the time: twice the
# cores plus one, as gunicorn's docs advise. With two, clicks on PostgreSQL left a quarter of this
# machine's two cores idle (docs/benchmarks.md, "Clicks").
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)) + 1)
