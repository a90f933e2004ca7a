"""Pieces the benchmarks share. They run as scripts (`python bench/<name>.py`), so they import this
from their own folder: `from common import ...`."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(group: int) -> float:
    """CPU time (user + system) of the live processes of a process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def seeded(db: str, name: str, clients: int, **env: str) -> None:
    """A new database (var/<name>.sqlite3, or mailer_<name> on PostgreSQL), migrated, with the
    demo's `clients` and no mailings; Django set up on it in this process, with `env` besides (in
    this process's environment, which the processes it starts inherit)."""
    if db == "sqlite":
        path = ROOT / "var" / f"{name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        for sql in (f"DROP DATABASE IF EXISTS mailer_{name}", f"CREATE DATABASE mailer_{name}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
        url = f"postgres://postgres@127.0.0.1:5432/mailer_{name}"
    os.environ.update(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "MAILER_PROVIDER_TOKEN": "t",
            "DJANGO_SETTINGS_MODULE": "mailer.settings",
            **env,
        }
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True)
    subprocess.run(
        [*manage, "seed_demo", "--clients", str(clients), "--no-mailings"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import django

    django.setup()


def lineup(web_port: int, gateway_port: int, token: str) -> dict[str, str]:
    """The environment of the Procfile's web and worker with the stand-in, for `seeded`."""
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the Procfile's python, gunicorn
        "WEB_PORT": str(web_port),
        "MAILER_PROVIDER_URL": f"http://127.0.0.1:{gateway_port}",
        "MAILER_PROVIDER_TOKEN": token,
        "MAILER_QUIET_HOURS": "",
        "LOG_LEVEL": "INFO",
    }


def start_gateway(env: dict, port: int, token: str) -> subprocess.Popen:
    """The gateway's stand-in at 0 ms, in its own group."""
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "fake_provider",
            "--port",
            str(port),
            "--token",
            token,
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for_senders(senders: int = 2, seconds: float = 60) -> None:
    """Until the worker's senders beat (Django set up on the bench's database)."""
    from mailer.models import WorkerHeartbeat

    deadline = time.monotonic() + seconds
    while WorkerHeartbeat.objects.count() < senders and time.monotonic() < deadline:
        time.sleep(0.5)


def at_full_speed(text: str, start_in: float, sent: int):
    """A service mailing to every client, starting in `start_in` seconds: it and its counts row,
    once the engine sends it at full speed (its audience resolved and `sent` accepted)."""
    from datetime import timedelta

    from django.utils import timezone

    from mailer.models import Mailing, MailingCounts, MailingKind

    start_at = timezone.now() + timedelta(seconds=start_in)
    mailing = Mailing.objects.create(
        kind=MailingKind.SERVICE, text=text, start_at=start_at, end_at=start_at + timedelta(hours=1)
    )
    counts = MailingCounts.objects.filter(mailing=mailing)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
        not counts.exists()
        or counts.get().sent < sent
        or Mailing.objects.filter(pk=mailing.pk, resolved_version=0).exists()
    ):
        time.sleep(0.1)
    return mailing, counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def start(command: str, env: dict, log: Path) -> subprocess.Popen:
    """A Procfile line, as a process manager runs it: through the shell, in its own group."""
    out = open(log, "w")
    return subprocess.Popen(
        ["sh", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def percentile(ordered: list[float], share: float) -> float:
    """The value a `share` (0.5, 0.99) of the `ordered` values are at or below (nearest rank)."""
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


def triple(values: list[float], fmt: str) -> str:
    """min / **median** / max of several runs, each as `fmt` writes it; "-" for none."""
    if not values:
        return "-"
    return (
        f"{fmt.format(min(values))} / **{fmt.format(statistics.median(values))}** / {fmt.format(max(values))}"
    )


def logged(logs: list[Path], needle: str) -> list[str]:
    """The lines of the logs (those there are) that hold `needle`, each with its log's name."""
    return [
        f"{log.name}: {line}"
        for log in logs
        if log.exists()
        for line in log.read_text().splitlines()
        if needle in line
    ]
