"""SQLite, the embedded default: Django's backend, with its writers taking turns.

SQLite lets one connection write at a time. One that finds the database locked waits in SQLite's
busy handler, which sleeps and tries again, further and further apart (up to 100 ms). While the
engine sends at full speed its short write transactions follow each other so closely that a web
request's write kept missing the gaps between them: p99 1.4 s for saving a client (issue 27).

So here every write takes a turn first, at two lock files beside the database (flock, which every
process and thread with its own connection sees): `<db>-queue`, where at most one writer waits,
and `<db>-write`, held from BEGIN to COMMIT (or around a single write in autocommit). A writer
that has just committed cannot take the next turn before the one already waiting: it queues
behind it. A write waits at most the connection's busy timeout (OPTIONS["timeout"]) for its turn,
then fails as SQLite would ("database is locked"); SQLite's own lock stays underneath, for anything
that writes without a turn (the sqlite3 shell, an older process during a deploy).

The engine's senders yield (`Turn.yields`): while anyone else waits for a turn (a staff member's
save), they do not queue. Without that, the senders' several writers and the web's raced for each
free place in the queue, and a save lost that race again and again (once for 0.7 s) while the
web was short of CPU. Each writer that does not yield holds `<db>-waiting` shared while it waits;
a sender queues only once nobody holds it, so a save waits for at most one transaction of each of
the senders' connections (those already queued or queueing when it began to wait).
"""

from __future__ import annotations

import contextlib
import fcntl
import time

from django.db.backends.sqlite3 import base, features
from django.db.utils import OperationalError

Database = base.Database

# A waiting writer looks again this often (seconds): its wait ends within this of its turn.
POLL = 0.001
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Turn:
    """Turns at writing for every connection to one database file."""

    # Whether this connection's writes let every other waiting writer go first: the engine's
    # senders set it for their process (engine.worker).
    yields = False

    def __init__(self, path: str, timeout: float) -> None:
        self.timeout = timeout
        self._queue = open(f"{path}-queue", "a")  # open as long as its connection
        self._write = open(f"{path}-write", "a")
        self._waiting = open(f"{path}-waiting", "a")
        self.held = False

    def take(self) -> None:
        deadline = time.monotonic() + self.timeout
        if self.yields:  # only once no other writer waits
            self._lock(self._waiting, deadline)
            fcntl.flock(self._waiting, fcntl.LOCK_UN)
        else:  # others yield while this one waits (a yielding writer's look above is brief)
            fcntl.flock(self._waiting, fcntl.LOCK_SH)
        try:
            self._lock(self._queue, deadline)
            try:
                self._lock(self._write, deadline)
            finally:
                fcntl.flock(self._queue, fcntl.LOCK_UN)
        finally:
            if not self.yields:
                fcntl.flock(self._waiting, fcntl.LOCK_UN)
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            fcntl.flock(self._write, fcntl.LOCK_UN)

    def close(self) -> None:
        self.give_back()
        self._queue.close()
        self._write.close()
        self._waiting.close()

    @staticmethod
    def _lock(file, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError("database is locked (no turn to write in time)") from None
                time.sleep(POLL)


class Connection(Database.Connection):
    turn: Turn | None = None


class Cursor(base.SQLiteCursorWrapper):
    """A write in autocommit (a single statement outside a transaction) takes its turn around it."""

    def execute(self, query, params=None):
        with self._turn(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self._turn(query):
            return super().executemany(query, param_list)

    @contextlib.contextmanager
    def _turn(self, query: str):
        turn = self.connection.turn
        if (
            turn is None
            or self.connection.in_transaction
            or not query.lstrip()[:7].upper().startswith(WRITES)
        ):
            yield
            return
        turn.take()
        try:
            yield
        finally:
            turn.give_back()


class DatabaseFeatures(features.DatabaseFeatures):
    # RETURNING: audience resolution, the engine's writes and the clicks count exactly what their
    # statements wrote. Django checks this at the first connection (NotSupportedError, naming it).
    minimum_database_version = (3, 35)


class DatabaseWrapper(base.DatabaseWrapper):
    features_class = DatabaseFeatures

    def get_connection_params(self):
        return {**super().get_connection_params(), "factory": Connection}

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db():
            connection.turn = Turn(self.settings_dict["NAME"], conn_params.get("timeout", 5.0))
        return connection

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=Cursor)

    def _start_transaction_under_autocommit(self):
        turn = self.connection.turn
        if turn is None:
            return super()._start_transaction_under_autocommit()
        turn.take()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            turn.give_back()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._give_back()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._give_back()

    def _close(self):
        turn = self.connection.turn if self.connection is not None else None
        try:
            return super()._close()
        finally:
            if turn is not None:
                turn.close()

    def _give_back(self) -> None:
        if self.connection is not None and self.connection.turn is not None:
            self.connection.turn.give_back()
