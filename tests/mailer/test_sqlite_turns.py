"""SQLite's writers take turns (mailer/backends/sqlite3): a writer that waits gets the next turn,
before the one that just committed can write again; a turn not had in time is an error."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from mailer.backends.sqlite3.base import Turn
from mailer.models import Client

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own writers"),
]


def in_thread(target) -> threading.Thread:
    """`target` in a thread of its own, on its own connection (closed after)."""

    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_waiting_write_goes_before_the_next_transaction_of_the_one_that_just_wrote():
    """The engine's transactions follow each other closely; a web request's single write that
    waits for one of them goes next, not after the engine's next (SQLite's own busy handler,
    polling further and further apart, let it miss gap after gap)."""
    holding, waiting = threading.Event(), threading.Event()

    def engine() -> None:
        with transaction.atomic():
            Client.objects.create(phone="79000000001", tag="engine")
            holding.set()
            waiting.wait(10)
            time.sleep(0.2)  # the web's write waits for its turn meanwhile
        with transaction.atomic():  # at once: its next transaction
            Client.objects.create(phone="79000000003", tag="engine")

    def web() -> None:
        holding.wait(10)
        waiting.set()
        Client.objects.create(phone="79000000002", tag="web")  # autocommit: a turn of its own

    threads = [in_thread(engine), in_thread(web)]
    for thread in threads:
        thread.join(20)
    assert list(Client.objects.order_by("id").values_list("tag", flat=True)) == ["engine", "web", "engine"]


def test_a_turn_not_had_within_the_timeout_is_the_databases_locked_error(tmp_path):
    held = Turn(str(tmp_path / "db.sqlite3"), timeout=5)
    held.take()
    other = Turn(str(tmp_path / "db.sqlite3"), timeout=0.1)
    with pytest.raises(OperationalError, match="database is locked"):
        other.take()
    held.give_back()
    other.take()  # free again
    assert other.held
    other.close()
    held.close()


def test_reads_take_no_turn_and_a_failed_transaction_gives_its_turn_back():
    Client.objects.create(phone="79000000001", tag="a")
    with pytest.raises(ValueError), transaction.atomic():
        Client.objects.create(phone="79000000002", tag="b")
        raise ValueError
    assert not connection.connection.turn.held
    read = []
    with transaction.atomic():
        Client.objects.create(phone="79000000003", tag="c")
        # Another connection reads meanwhile (WAL): no turn needed.
        in_thread(lambda: read.append(Client.objects.count())).join(5)
    assert read == [1] and Client.objects.count() == 2


def test_an_sqlite_without_returning_is_refused_by_name(monkeypatch):
    from django.db import NotSupportedError

    connection.check_database_version_supported()  # this machine's is new enough
    monkeypatch.setattr(type(connections["default"]), "get_database_version", lambda self: (3, 34, 1))
    with pytest.raises(NotSupportedError, match=r"SQLite 3\.35 or later is required \(found 3\.34\.1\)"):
        connection.check_database_version_supported()


def test_the_engines_writers_let_a_waiting_save_go_first():
    """Writers that yield (the engine's senders) write one transaction after another; a writer
    that does not (a staff member's save) waits for at most one transaction of each, however
    often they race it for the next turn."""
    done = threading.Event()

    def engine(n: int) -> None:
        connection.ensure_connection()
        connection.connection.turn.yields = True
        while not done.is_set():
            with transaction.atomic():
                Client.objects.create(phone=f"7901{n}{Client.objects.count():06d}", tag="engine")
                time.sleep(0.03)

    passed = []  # per save: the engine's transactions committed while it waited

    def web() -> None:
        for i in range(15):
            before = Client.objects.filter(tag="engine").count()
            saved = Client.objects.create(phone=f"7902{i:07d}", tag="web")
            passed.append(Client.objects.filter(tag="engine", id__lt=saved.id).count() - before)
            time.sleep(0.01)

    engines = [in_thread(lambda n=n: engine(n)) for n in range(4)]
    time.sleep(0.1)
    in_thread(web).join(30)
    done.set()
    for thread in engines:
        thread.join(10)
    assert len(passed) == 15
    # At most one transaction of each yielding writer: those already queued or queueing when the
    # save began to wait (none of them can come twice).
    assert max(passed) <= 4, passed
