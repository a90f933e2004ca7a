from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import timedelta

import pytest
from django.db import connections

from accounts.models import hash_token
from mailer import scheduling
from mailer.delivery import Deliverer, EngineConfig
from mailer.fake_provider import Behaviour, FakeProvider
from mailer.models import GatewayState
from mailer.sending import Gateway

TOKEN = "test-provider-token"


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
