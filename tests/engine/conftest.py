from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections

from accounts.models import hash_token
from engine import scheduling
from engine.delivery import Deliverer, EngineConfig
from engine.sending import Gateway
from mailer.models import GatewayState
from standin.gateway import Behaviour, FakeProvider

TOKEN = "test-provider-token"
ROOT = Path(__file__).resolve().parents[2]


def config(**overrides) -> EngineConfig:
    values = dict(
        batch_size=50,
        concurrency=16,
        request_timeout=5.0,
        lease=timedelta(seconds=60),
        max_attempts=10,
        retry_base=0.01,
        retry_max=0.05,
        breaker_threshold=5,
        breaker_seconds=15.0,
        rate_limit=0.0,
    )
    values.update(overrides)
    return EngineConfig(**values)


@pytest.fixture
def provider(settings):
    fake = FakeProvider(Behaviour(token=TOKEN, seed=7)).start_in_thread()
    settings.MAILER_PROVIDER_URL = fake.url
    settings.MAILER_PROVIDER_TOKEN = TOKEN
    yield fake
    fake.stop()


@pytest.fixture
def make_deliverer(provider):
    made = []

    def make(owner: str = "w1", token: str = TOKEN, **overrides) -> Deliverer:
        conf = config(**overrides)
        deliverer = Deliverer(owner, conf, Gateway(provider.url, token, conf.concurrency))
        deliverer.token_hash = hash_token(token)
        made.append(deliverer)
        return deliverer

    yield make
    for deliverer in made:
        if not deliverer.loop.is_closed():
            deliverer.close()


def drain(deliverer: Deliverer, now=None, rounds: int = 200) -> int:
    """Run rounds until one finds nothing to do; returns the messages handled."""
    handled = 0
    for _ in range(rounds):
        scheduling.tick(now)
        done = deliverer.run_batch(now)
        handled += done
        if not done:
            time.sleep(0.06)  # retries are due after ~10-50 ms
            scheduling.tick(now)
            if not deliverer.run_batch(now):
                return handled
    return handled


def _worker_main(provider_url: str, owner: str, overrides: dict, seconds: float) -> None:
    """A separate worker process: a fresh Deliverer looping on the shared test database."""

    connections.close_all()
    conf = config(**overrides)
    deliverer = Deliverer(owner, conf, Gateway(provider_url, TOKEN, conf.concurrency))
    deadline = time.monotonic() + seconds
    idle = 0
    while time.monotonic() < deadline and idle < 20:
        scheduling.tick()
        if deliverer.run_batch():
            idle = 0
        else:
            idle += 1
            time.sleep(0.05)
    deliverer.close()
    connections.close_all()


def start_worker(
    provider_url: str, owner: str, seconds: float = 30.0, **overrides
) -> multiprocessing.Process:
    connections.close_all()  # the child must open its own connection
    process = multiprocessing.get_context("fork").Process(
        target=_worker_main, args=(provider_url, owner, overrides, seconds), daemon=True
    )
    process.start()
    return process


def kill(process: multiprocessing.Process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.join(5)


@pytest.fixture(autouse=True)
def _fresh_provider_state(db):
    GatewayState.objects.all().delete()


def seed_clients(n: int) -> None:
    """`n` clients of operator 901 in UTC with consent to advertising, for the mailings of the
    tests that run real worker processes."""
    from mailer.models import Client
    from tests.conftest import CONSENTED

    Client.objects.bulk_create(
        (
            Client(
                phone=f"7901{i:07d}",
                operator_code="901",
                timezone="UTC",
                consent_at=CONSENTED,
                consent_source="test",
            )
            for i in range(n)
        ),
        batch_size=5000,
    )


def database_url() -> str:
    """The test database as a DATABASE_URL, for worker processes started as commands."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def run_worker(provider_url: str, log, **env) -> subprocess.Popen:
    """`manage.py run_worker` in its own process group, on the test database."""
    environ = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MAILER_PROVIDER_URL": provider_url,
        "MAILER_PROVIDER_TOKEN": TOKEN,
        "LOG_LEVEL": "WARNING",
        **{key: str(value) for key, value in env.items()},
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_worker"],
        env=environ,
        cwd=ROOT,
        start_new_session=True,
        stdout=log,
        stderr=log,
    )


def stop_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(20)


def wait_for(condition, seconds: float, every: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())
