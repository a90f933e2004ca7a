"""Import clients from CSV or Excel, in the background: the file is kept in the database, a worker
checks every row, then writes, and the page (or the API) follows its progress and shows the report.

Used by the REST API (`POST /api/v1/clients/import/`) and the dashboard's import page, which both
call `start_import`; `run_import` is the django-q2 task.

The file: CSV text or an .xlsx workbook (its first bytes say which: a zip is a workbook), a header
row naming the columns. `phone` is required; `tag` (default empty), `timezone` (default
MAILER_DEFAULT_CLIENT_TIMEZONE, the rows given it counted) and `opted_out` are optional; column
order is free; the header may name them in Russian too (COLUMN_NAMES: Телефон, Метка, Часовой
пояс, Отписан), in any case. `name` (Имя) and each declared custom field (ClientField, by its key or
its label) are optional too; a blank cell of theirs keeps what the client has. Columns without a
name are ignored, other unknown ones are an error that names them.
Rows are numbered as a spreadsheet shows them: the header is row 1, the first client row 2.
- CSV as Excel saves it (_detect_format, at the upload): separated by ",", ";" or a tab (the one
  the header line has most of), UTF-8 with or without a byte order mark if the first piece of the
  file (1 MB) is UTF-8, else Windows-1251 (Russian Excel's plain "CSV"). A row further on that is
  not text of that encoding is an error of that row, not of the file. No value may hold a line
  break, so a quoted value that runs on past its line is an error of that row.
- .xlsx: the first sheet, read by openpyxl in read-only mode (streamed, through the seekable
  _StoredFile); a number cell reads as its digits (79161234567 stored as a float), TRUE as 1; rows
  keep Excel's numbers, skipped rows included.
Errors say the machine name of their column (`field`, for the API) and the row's phone as typed;
the page and the errors file name the column in the reader's language (column_label).

What an upload may cost is bounded by caps checked as the file is read, each refusing the file with
a message naming the cap: at most MAILER_IMPORT_MAX_MB, no line over MAILER_IMPORT_MAX_LINE bytes, a
header of at most MAILER_IMPORT_MAX_COLUMNS columns (one 8 MB header of 2.8 million columns once
took the worker to 500 MB); a workbook within the XLSX_* bounds (its unpacked size against zip
bombs, its shared strings, its directory, each sheet row's XML). The upload is refused at once
(the page's form, the API's 400); the worker and the page's preview read the stored file through
the same caps (a sheet row's XML is checked as it is read: past the header, by the worker).

`opted_out`: yes (1, true, yes, да) puts the phone on the stop list (source "import"); no or empty
changes nothing, as taking a phone off the stop list needs a reason (the stop-list page or API).

Duplicates:
- the same phone twice in the file: the later row is an error ("duplicate of row N");
- a phone already in the database: the client is updated with the row's tag and timezone, so a
  corrected file can simply be imported again.

How it runs, with bounded memory (a million rows in well under 300 MB, docs/benchmarks.md):
1. Check: the whole file is read once, as a stream, and every row validated; the report says what
   the import will do (new, updated, unchanged) and lists the errors. Nothing is written.
2. A check (`write=False`, the page's "Check") stops there, errors or not (state checked): the
   report says what importing would do and the user may go on (`confirm`) unless all_or_nothing
   and errors forbid it. With `all_or_nothing` and any error, an import stops there: nothing
   written. Otherwise (and, after a check, once the user confirms) it writes in chunks of CHUNK rows. Each chunk is one
   transaction that also records the last row written, so a worker killed midway leaves a
   consistent state and the next run (`resume_imports`, every minute) goes on from that row: no
   row is lost or counted twice. Other users see the clients appear chunk by chunk. After
   WORKER_STOPS such deaths the import fails, saying so, instead of killing workers for ever.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import IO
from xml.etree.ElementTree import ParseError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext_lazy

from accounts.models import Profile
from mailer import windows
from mailer.models import (
    ATTRIBUTE_MAX,
    CONSENT_SOURCE_MAX,
    NAME_MAX,
    AuditEntry,
    Client,
    ClientField,
    ClientImport,
    ImportChunk,
    ImportState,
    OptOutSource,
    StopEntry,
    consent_problem,
    default_client_timezone,
    name_key,
    normalize_phone,
    operator_code_of,
    parse_moment,
    phone_problem,
    printable_problem,
    tag_problem,
    timezone_problem,
)

COLUMNS = ("phone", "name", "tag", "timezone", "opted_out", "consent_at", "consent_source")
# The header names each column goes by, compared case-insensitively, "_" as a space: the English
# ones and those a Russian marketer types.
COLUMN_NAMES = {
    "phone": ("phone", "телефон", "номер телефона"),
    "name": ("name", "имя", "фио"),
    "tag": ("tag", "метка", "тег"),
    "timezone": ("timezone", "time zone", "часовой пояс"),
    "opted_out": ("opted_out", "отписан"),
    "consent_at": ("consent_at", "согласие", "дата согласия"),
    "consent_source": ("consent_source", "источник согласия"),
}
# A column as the reader's page and errors file name it (RowError.field stays the machine name).
COLUMN_LABELS = {
    "phone": pgettext_lazy("import column", "phone"),
    "name": pgettext_lazy("import column", "name"),
    "tag": pgettext_lazy("import column", "tag"),
    "timezone": pgettext_lazy("import column", "timezone"),
    "opted_out": pgettext_lazy("import column", "opted_out"),
    "consent_at": pgettext_lazy("import column", "consent_at"),
    "consent_source": pgettext_lazy("import column", "consent_source"),
}
SEPARATORS = (",", ";", "\t")  # the first of the most frequent in the header line; "," if none
ENCODINGS = {"utf-8": "UTF-8", "cp1251": "Windows-1251"}  # a CSV file's, as found at its start
XLSX_MAGIC = b"PK\x03\x04"  # a zip archive, which an .xlsx workbook is
XLS_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary Excel (.xls)
# An .xlsx workbook's bounds, beside MAILER_IMPORT_MAX_MB on the file itself (a zip bomb packs
# gigabytes in a few kilobytes; zipfile never unpacks more than a part's declared size): its parts
# unpacked (images aside) at most XLSX_EXPANSION times MAILER_IMPORT_MAX_MB (a sheet's XML takes
# five to ten times the bytes of the same rows in CSV); the shared strings, which openpyxl keeps in
# memory, at most MAILER_IMPORT_MAX_MB; a directory of at most XLSX_DIRECTORY bytes (zipfile keeps
# an object for each part); and no row of a sheet's XML over XLSX_ROW_LINES times
# MAILER_IMPORT_MAX_LINE (the XML parser holds a whole row before openpyxl gives its cells).
XLSX_EXPANSION = 10
XLSX_DIRECTORY = 2**20
XLSX_ROW_LINES = 16
YES, NO = (
    frozenset({"1", "true", "yes", "y", "да", "д"}),
    frozenset({"", "0", "false", "no", "n", "нет", "н"}),
)
# Chunks keep each IN list and INSERT under SQLite's limit on query parameters.
CHUNK = 2000
PIECE_BYTES = 2**20  # the stored file's pieces
ERRORS_KEPT = 10_000  # errors stored for the page, the API and the downloadable report
LEASE = timedelta(seconds=60)  # a worker holding an import renews it at every piece it reads
# An import whose worker died this often fails: it may well be what kills them.
WORKER_STOPS = 3


@dataclass(frozen=True)
class RowError:
    row: int  # 1 = header; 0 = the file as a whole
    field: str  # a column name, or "" when the whole row/file is at fault
    message: str
    phone: str = ""  # the row's phone as typed, for the errors file


def column_label(name: str) -> str:
    """A column as the reader calls it (a name of the file's own is shown as it is)."""
    return str(COLUMN_LABELS.get(name, name))


def error_rows(errors: list[RowError]) -> Iterator[tuple[int, str, str, str]]:
    """The errors as the page and the errors file show them: row, phone as typed, column, problem."""
    for e in errors:
        yield e.row, e.phone, column_label(e.field), e.message


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    opted_out: int = 0  # rows that put their phone on the stop list
    consented: int = 0  # rows that recorded the client's consent (a new one, or another date)
    default_timezone: int = 0  # rows without a time zone, given MAILER_DEFAULT_CLIENT_TIMEZONE
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    # True when rows were written (the report of an all-or-nothing import with errors says False).
    written: bool = False

    def add_error(self, error: RowError) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(error)

    @classmethod
    def of(cls, imp: ClientImport) -> ImportReport:
        return cls(
            created=imp.created,
            updated=imp.updated,
            unchanged=imp.unchanged,
            opted_out=imp.opted_out,
            consented=imp.consented,
            default_timezone=imp.default_timezone,
            errors=[RowError(*e) for e in imp.errors],
            error_count=imp.error_count,
            written=imp.written,
        )

    def stored_errors(self) -> list[list]:
        """The errors as ClientImport.errors keeps them (`of` reads them back)."""
        return [[e.row, e.field, e.message, *([e.phone] if e.phone else [])] for e in self.errors]

    def as_dict(self, errors: int = 1000) -> dict:
        """The shape the API answers and the page shows: counts and the first `errors` errors."""
        return {
            "written": self.written,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "opted_out": self.opted_out,
            "consented": self.consented,
            "default_timezone": self.default_timezone,
            "error_count": self.error_count,
            "errors": [
                {"row": e.row, "phone": e.phone, "field": e.field, "message": e.message}
                for e in self.errors[:errors]
            ],
        }


class ImportRefused(Exception):
    """The file can't be taken at all (a cap); nothing is stored, or the import fails."""


# What importing clients needs, whichever door (the dashboard's pages, the API): an import both
# creates clients and updates the ones it finds.
PERMISSIONS = ("mailer.add_client", "mailer.change_client")


def max_bytes() -> int:
    return settings.MAILER_IMPORT_MAX_MB * 2**20


def size_problem(size: int) -> str | None:
    """Why a file of `size` bytes can't be imported (over MAILER_IMPORT_MAX_MB), else None: the
    page's form asks before the upload is stored, start_import while it stores (the API's door)."""
    if size > max_bytes():
        return _("The file is larger than %(mb)s MB; split it.") % {"mb": settings.MAILER_IMPORT_MAX_MB}
    return None


# Storing and starting ----------------------------------------------------------------------------


def start_import(
    upload: IO[bytes],
    *,
    user=None,
    filename: str = "",
    all_or_nothing: bool = True,
    write: bool = True,
    enqueue: bool = True,
    via: str = "ui",
) -> ClientImport:
    """Keep the file in the database and queue the task that imports it (once this commits).
    Raises ImportRefused, storing nothing, for a file over a cap (its size, a line's length, the
    header's columns, a workbook's unpacked size) or one that is neither CSV nor .xlsx."""
    with transaction.atomic():
        imp = ClientImport.objects.create(
            created_by=user, filename=filename[:200], all_or_nothing=all_or_nothing, write=write
        )
        size = 0
        lines: _LineCap | None = None
        first = b""
        for seq, piece in enumerate(iter(lambda: upload.read(PIECE_BYTES), b"")):
            size += len(piece)
            if problem := size_problem(size):
                raise ImportRefused(problem)
            if seq == 0:
                first = piece
                if not piece.startswith(XLSX_MAGIC):
                    lines = _LineCap()  # lines: in a CSV file only
            if lines:
                lines.feed(piece)
            ImportChunk.objects.create(client_import=imp, seq=seq, data=piece)
        imp.size = size
        _detect_format(imp, first, filename)
        try:
            next(_records(imp), None)  # the header, for its columns (and a workbook's bounds)
        except csv.Error:
            pass  # the worker's check reports it with the rest
        imp.save(update_fields=["size", "file_format", "encoding", "separator"])
        changes = {
            "filename": [None, imp.filename],
            "size": [None, size],
            "all_or_nothing": [None, all_or_nothing],
        }
        AuditEntry.record(user, "import_started", imp, changes, via=via)
        if enqueue:
            transaction.on_commit(lambda: _enqueue(imp.pk))
    return imp


def _enqueue(import_id: int) -> None:
    from django_q.tasks import async_task

    # Its own timeout: a million rows take a minute or two, more than the cluster's default.
    async_task("mailer.tasks.run_import", import_id, timeout=3600)


def confirm(imp: ClientImport, by=None) -> bool:
    """The user's go-ahead after a check; False if there is nothing it could write."""
    if not imp.can_write:
        return False
    with transaction.atomic():
        if not ClientImport.objects.filter(pk=imp.pk, state=ImportState.CHECKED).update(
            state=ImportState.WRITING, write=True
        ):
            return False
        AuditEntry.record(by, "import_confirmed", imp, {"state": [ImportState.CHECKED, ImportState.WRITING]})
        transaction.on_commit(lambda: _enqueue(imp.pk))
    return True


def import_clients(file_or_text: str | bytes | IO, *, all_or_nothing: bool) -> ImportReport:
    """Check and write a file now, in this process (tests, scripts); returns the report."""
    data = file_or_text.read() if hasattr(file_or_text, "read") else file_or_text
    if isinstance(data, str):
        data = data.encode()
    imp = start_import(io.BytesIO(data), all_or_nothing=all_or_nothing, enqueue=False)
    run_import(imp.pk)
    imp.refresh_from_db()
    return ImportReport.of(imp)


# The task --------------------------------------------------------------------------------------


def run_import(import_id: int) -> str:
    """Check, then write (if asked and allowed). Safe to run twice: a second run finds the import
    held (its lease) or finished, and a run after a crash goes on from the last row written."""
    now = timezone.now()
    held = ClientImport.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        pk=import_id,
        state__in=ClientImport.RUNNING,
    ).update(lease_until=now + LEASE)
    if not held:
        return "not due"
    imp = ClientImport.objects.get(pk=import_id)
    try:
        if imp.state in (ImportState.QUEUED, ImportState.CHECKING):
            _check(imp)
        if imp.state == ImportState.WRITING:
            _write(imp)
    except ImportRefused as e:
        # Stored before a cap was lowered: refused here as the upload would be now.
        _fail(imp, RowError(0, "", str(e)))
    ClientImport.objects.filter(pk=imp.pk).update(lease_until=None)
    return imp.state


def resume_imports() -> list[int]:
    """Every minute (tasks.housekeeping): queue again an import whose worker died (its lease ran
    out), which then goes on from where it got; at the WORKER_STOPS-th death, fail it instead."""
    resumed = []
    for imp in ClientImport.objects.filter(state__in=ClientImport.RUNNING, lease_until__lt=timezone.now()):
        stops = imp.worker_stops + 1
        given_up = stops >= WORKER_STOPS
        # Each death counted once, however many housekeepers look. Without a lease it waits for its
        # next run, not counted again while the queue is busy; failed, no run takes it up.
        dead = ClientImport.objects.filter(pk=imp.pk, state=imp.state, lease_until=imp.lease_until)
        if not dead.update(
            lease_until=None, worker_stops=stops, state=ImportState.FAILED if given_up else imp.state
        ):
            continue
        if given_up:
            message = ngettext(
                "The worker stopped %(count)s time while importing this file, so the import was "
                "given up. Import the file again; if that stops too, tell an administrator.",
                "The worker stopped %(count)s times while importing this file, so the import was "
                "given up. Import the file again; if that stops too, tell an administrator.",
                stops,
            ) % {"count": stops}
            _fail(imp, RowError(0, "", message))
        else:
            _enqueue(imp.pk)
            resumed.append(imp.pk)
    return resumed


def first_rows(imp: ClientImport, n: int) -> tuple[list[str], list[list[str]]]:
    """The header and the first `n` rows as they are in the file, for the page (not validated;
    nothing for a file over the caps)."""
    records = _records(imp)
    try:
        header = next(records, None) or []
        rows = [row or [] for _, row in zip(range(n), records, strict=False)]
    except (csv.Error, ImportRefused):
        return [], []
    return header[:20], [row[:20] for row in rows]


def _fail(imp: ClientImport, error: RowError) -> None:
    report = ImportReport.of(imp)
    report.add_error(error)
    imp.state, imp.finished_at = ImportState.FAILED, timezone.now()
    imp.errors, imp.error_count = report.stored_errors(), report.error_count
    imp.written = imp.rows_written > 0  # a worker that died while writing had written some
    imp.save(update_fields=["state", "finished_at", "errors", "error_count", "written"])


def _renew(imp: ClientImport, **progress) -> None:
    ClientImport.objects.filter(pk=imp.pk).update(lease_until=timezone.now() + LEASE, **progress)


class _LineCap:
    """Refuses a line of more than MAILER_IMPORT_MAX_LINE bytes, fed the file piece by piece before
    anything reads the piece's lines: csv and the text reader hold a whole line, however long. It
    looks for line breaks a line's length apart, not at every line, so a file of many short lines
    is checked as fast as one of a few long lines. A break is "\n", "\r" or "\r\n", as csv has it."""

    def __init__(self) -> None:
        self.limit = settings.MAILER_IMPORT_MAX_LINE
        self.line = 1  # the number of the line the next piece starts in
        self.run = 0  # bytes of that line in the pieces before
        self.cr = False  # the last piece ended in "\r" (a "\n" first in this one is the same break)

    def feed(self, piece: bytes) -> None:
        start = -self.run  # where the current line starts, from this piece's first byte
        while start + self.limit < len(piece):
            # A line within the limit has its break at most `limit` bytes after its start.
            window = (max(start, 0), start + self.limit + 1)
            last = max(piece.rfind(b"\n", *window), piece.rfind(b"\r", *window))
            if last < 0:
                message = ngettext(
                    "Line %(line)s is longer than the limit of %(limit)s byte.",
                    "Line %(line)s is longer than the limit of %(limit)s bytes.",
                    self.limit,
                )
                raise ImportRefused(
                    message % {"line": self.line + self._breaks(piece, window[0]), "limit": self.limit}
                )
            start = last + 1
        last = max(piece.rfind(b"\n", max(start, 0)), piece.rfind(b"\r", max(start, 0)))
        self.run = len(piece) - (last + 1 if last >= 0 else start)
        self.line += self._breaks(piece, len(piece))
        self.cr = piece.endswith(b"\r")

    def _breaks(self, piece: bytes, end: int) -> int:
        """Line breaks in piece[:end]."""
        crlf = piece.count(b"\r\n", 0, end) + (self.cr and end > 0 and piece.startswith(b"\n"))
        return piece.count(b"\n", 0, end) + piece.count(b"\r", 0, end) - crlf


class _StoredFile(io.RawIOBase):
    """The stored file as a binary file, read from its pieces: in order for a CSV file, or with
    seeks for zipfile (which reads a workbook's directory at its end first). The piece holding the
    position is fetched when needed, one piece kept, each by a query of its own: a cursor left open
    across the writes would, on SQLite, keep a read snapshot that makes the next write fail at once
    ("database is locked") when someone else wrote meanwhile. With `line_cap` (a CSV file, read in
    order), each piece passes the line cap before any of it is read. `on_piece` is told how far the
    reading got at each piece (a worker renews its lease there: a file of errors or blank lines may
    be read for minutes without a row to write)."""

    def __init__(
        self, imp: ClientImport, on_piece: Callable[[int], None] | None = None, *, line_cap: bool = False
    ) -> None:
        self.imp = imp
        self.on_piece = on_piece
        self.lines = _LineCap() if line_cap else None
        self.position = 0
        self.seq = -1
        self.piece = memoryview(b"")
        self.piece_size = 0  # every piece's but the last's

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.imp.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def _fetch(self, seq: int) -> None:
        piece = bytes(
            ImportChunk.objects.filter(client_import=self.imp, seq=seq).values_list("data", flat=True).first()
            or b""
        )
        if self.lines and seq > self.seq:  # in order: each piece once
            self.lines.feed(piece)
        self.seq, self.piece = seq, memoryview(piece)
        if self.on_piece:
            self.on_piece(self.position)

    def readinto(self, target) -> int:
        if self.position >= self.imp.size:
            return 0
        if not self.piece_size:
            self._fetch(0)
            self.piece_size = len(self.piece)
        seq = self.position // self.piece_size
        if seq != self.seq:
            self._fetch(seq)
        start = self.position - seq * self.piece_size
        n = min(len(target), len(self.piece) - start)
        if n <= 0:
            return 0
        target[:n] = self.piece[start : start + n]  # a view: no copy
        self.position += n
        return n


def _text(stream: _StoredFile) -> io.TextIOWrapper:
    """The CSV file's text in its encoding. utf-8-sig: Excel's "CSV UTF-8" starts with a byte order
    mark. A byte that is not of the encoding reads as U+FFFD, which makes its row an error (_rows):
    a file found UTF-8 at its start may turn out otherwise further on. newline="": as csv wants it."""
    encoding = "utf-8-sig" if stream.imp.encoding == "utf-8" else stream.imp.encoding
    return io.TextIOWrapper(io.BufferedReader(stream), encoding=encoding, errors="replace", newline="")


def _detect_format(imp: ClientImport, first: bytes, filename: str = "") -> None:
    """What the stored file is, from its first piece (`first`): an .xlsx workbook (a zip), else a
    CSV file, UTF-8 if its first piece is (a character split at the piece's end allowed), else
    Windows-1251 (Russian Excel's plain "CSV"); its separator is the one its header line has most
    of. Sets the import's file_format, encoding and separator; ImportRefused for anything else."""
    if first.startswith(XLSX_MAGIC):
        imp.file_format = "xlsx"
        return
    if first.startswith(XLS_MAGIC):
        raise ImportRefused(_("This is an old Excel workbook (.xls): save it as .xlsx, or as CSV."))
    # Text has no NUL bytes (one in a value is that row's error); UTF-16 and binaries are full of them.
    if filename.lower().endswith(".xlsx") or first.count(b"\x00") > len(first) // 16:
        raise ImportRefused(_("The file is neither CSV text nor an Excel workbook (.xlsx)."))
    imp.file_format = "csv"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(first, final=len(first) == imp.size)
        imp.encoding = "utf-8"
    except UnicodeDecodeError:
        imp.encoding = "cp1251"
    header = _text(_StoredFile(imp, line_cap=True)).readline()  # within the line cap
    imp.separator = max(SEPARATORS, key=header.count) if any(s in header for s in SEPARATORS) else ","


def format_label(imp: ClientImport) -> str:
    """What the file was found to be, for the report: "CSV, Windows-1251, separator ;"."""
    if imp.file_format == "xlsx":
        return _("Excel workbook (.xlsx), its first sheet")
    separator = {"\t": _("tab")}.get(imp.separator, imp.separator)
    return _("CSV, %(encoding)s, separator %(separator)s") % {
        "encoding": ENCODINGS.get(imp.encoding, imp.encoding),
        "separator": separator,
    }


@dataclass
class _Row:
    row: int
    phone: str
    tag: str
    timezone: str
    opted_out: bool = False
    default_zone: bool = False  # no time zone given: MAILER_DEFAULT_CLIENT_TIMEZONE
    consent_at: datetime | None = None  # empty: the client's consent stays as it is
    consent_source: str = ""
    name: str = ""  # empty: the client's name stays as it is
    attributes: dict = field(default_factory=dict)  # the custom fields given; the others stay


class _RowSpansLines(Exception):
    pass


class _Lines:
    """The text's lines for csv.reader. csv asks for another line before it has given the row it
    reads when a quoted value runs on past the line: then this stops it, and the row is an error
    (no column may hold a line break); csv would join lines until a quote closes the value."""

    __slots__ = ("text", "given", "rows")

    def __init__(self, text: io.TextIOWrapper) -> None:
        self.text = text
        self.given = 0  # lines given to csv
        self.rows = 0  # lines of the rows csv has given back

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.given > self.rows:
            raise _RowSpansLines
        line = self.text.readline()
        if not line:
            raise StopIteration
        self.given += 1
        return line


def _records(imp: ClientImport, on_piece: Callable[[int], None] | None = None) -> Iterator[list[str] | None]:
    """The file's rows, the header first, row N of the file the Nth: as csv reads them, or a
    workbook's first sheet's as text (_sheet_records); None for a row whose quoted value runs on
    past its line. ImportRefused for a header of more than MAILER_IMPORT_MAX_COLUMNS columns (and,
    from the stream, for a line over MAILER_IMPORT_MAX_LINE bytes, before csv sees it)."""
    if imp.file_format == "xlsx":
        records = _sheet_records(_StoredFile(imp, on_piece))
    else:
        records = _csv_records(_StoredFile(imp, on_piece, line_cap=True), imp.separator)
    header = next(records, _END)
    if header is _END:
        return
    if header and len(header) > settings.MAILER_IMPORT_MAX_COLUMNS:
        message = ngettext(
            "The header has %(count)s column, more than the limit of %(limit)s.",
            "The header has %(count)s columns, more than the limit of %(limit)s.",
            len(header),
        )
        raise ImportRefused(message % {"count": len(header), "limit": settings.MAILER_IMPORT_MAX_COLUMNS})
    yield header
    yield from records


_END = object()


def _csv_records(stream: _StoredFile, separator: str) -> Iterator[list[str] | None]:
    lines = _Lines(_text(stream))
    reader = csv.reader(lines, delimiter=separator)  # after an error from its lines, it starts afresh
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except _RowSpansLines:
            values = None
        lines.rows = lines.given
        yield values


class _RowCap(io.RawIOBase):
    """A worksheet's XML as openpyxl reads it, refused where more than `limit` bytes pass without
    a row's tag: the XML parser holds a row's whole element (every cell) before openpyxl sees it.
    No "<!" either (a DTD's entities, CDATA: Excel writes none, and they could hide rows' tags)."""

    TAG = re.compile(rb"<(?:/?(?:[A-Za-z_][\w.-]*:)?row[\s/>]|!)")

    def __init__(self, part: IO[bytes], limit: int) -> None:
        self.part, self.limit = part, limit
        self.offset = 0  # of self.tail's first byte in the part
        self.tail = b""  # the last bytes seen, for a tag split between reads
        self.last = 0  # where the last tag was

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.part.close()
        super().close()

    def readinto(self, target) -> int:
        data = self.part.read(len(target))
        seen = self.tail + data
        for match in self.TAG.finditer(seen):
            if match.group() == b"<!":
                raise ImportRefused(_("The workbook's sheet holds XML that Excel never writes (<!...)."))
            at = self.offset + match.start()
            if at - self.last > self.limit:
                break
            self.last = max(self.last, at)
        if self.offset + len(seen) - self.last > self.limit:
            message = _("A row of the sheet takes more than %(limit)s bytes of XML; split the sheet.")
            raise ImportRefused(message % {"limit": self.limit})
        keep = min(len(seen), 64)
        self.offset += len(seen) - keep
        self.tail = seen[len(seen) - keep :]
        target[: len(data)] = data
        return len(data)


def _workbook_refused(reason: object) -> ImportRefused:
    return ImportRefused(_("Not a readable Excel workbook (.xlsx): %(error)s.") % {"error": reason})


def _open_workbook(stream: _StoredFile):
    """The workbook, read only, after its bounds (XLSX_*) are checked; ImportRefused else."""
    from openpyxl.reader.excel import ExcelReader

    stream.seek(-min(stream.imp.size, 2**16 + 22), io.SEEK_END)
    end = stream.read()
    at = end.rfind(b"PK\x05\x06")  # the end of the central directory
    if at < 0:
        raise _workbook_refused(_("no zip directory"))
    directory = int.from_bytes(end[at + 12 : at + 16], "little")
    if directory > XLSX_DIRECTORY or end[max(at - 20, 0) : at].startswith(b"PK\x06\x07"):  # zip64
        raise _workbook_refused(_("too many parts"))

    class Archive(zipfile.ZipFile):
        def open(self, name, mode="r", *args, **kwargs):
            part = super().open(name, mode, *args, **kwargs)
            if mode == "r" and str(getattr(name, "filename", name)).startswith("xl/worksheets/"):
                limit = XLSX_ROW_LINES * settings.MAILER_IMPORT_MAX_LINE
                return io.BufferedReader(_RowCap(part, limit))
            return part

    stream.seek(0)
    archive = Archive(stream)
    parts = archive.infolist()
    unpacked = sum(p.file_size for p in parts if not p.filename.startswith("xl/media/"))
    strings = sum(p.file_size for p in parts if p.filename.lower().endswith("sharedstrings.xml"))
    if unpacked > XLSX_EXPANSION * max_bytes() or strings > max_bytes():
        message = _(
            "Unpacked, the workbook takes %(mb)s MB, more than the limit of %(limit)s MB "
            "(shared strings at most %(strings)s MB); save its first sheet as CSV, or split it."
        )
        raise ImportRefused(
            message
            % {
                "mb": unpacked // 2**20 if unpacked > XLSX_EXPANSION * max_bytes() else strings // 2**20,
                "limit": XLSX_EXPANSION * settings.MAILER_IMPORT_MAX_MB,
                "strings": settings.MAILER_IMPORT_MAX_MB,
            }
        )
    stream.seek(0)
    reader = ExcelReader(stream, read_only=True, data_only=True, keep_links=False)
    reader.archive = archive  # its parts through the row cap
    reader.read()
    return reader.wb


def _cell_text(value: object) -> str:
    """A cell as the CSV file would have it: 79161234567 typed as a number (a float, maybe) as its
    digits, TRUE as 1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _sheet_records(stream: _StoredFile) -> Iterator[list[str]]:
    """The first sheet's rows as text, trailing empty cells dropped; an empty row for each row the
    sheet skips, so that row N is Excel's row N."""
    try:
        workbook = _open_workbook(stream)
        try:
            if not workbook.worksheets:
                raise _workbook_refused(_("no sheet"))
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()  # not the size the file claims: every row there is
            for row in sheet.iter_rows(values_only=True):
                values = [_cell_text(v) for v in row]
                while values and not values[-1]:
                    values.pop()
                yield values
        finally:
            workbook.close()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ParseError,
        KeyError,
        ValueError,
        TypeError,
        OSError,
    ) as e:
        raise _workbook_refused(e) from e


def _spans_lines() -> str:
    return _("A quoted value runs on past the end of its line; no value may hold a line break.")


class _PhoneRows:
    """Phone -> the row it first came in, for the file's duplicates: an open-addressing hash table
    in one array of 8-byte slots (phone and row packed), sized for the most rows the file can hold.
    A dict took ~100 bytes a row, 450 MB for a 50 MB file of bare phones; this takes 11 to 22
    bytes for each row the file could hold (64 MB at 50 MB)."""

    BASE = 79_000_000_000 - 1  # a valid phone is 79XXXXXXXXX: 1 to 10**9 from here, never 0 (empty)

    def __init__(self, size: int) -> None:
        most = size // 12 + 1  # the shortest row with a phone: its 11 digits and a line break
        bits = max(most * 4 // 3, 1023).bit_length()  # at most three quarters full
        self.shift, self.mask = 64 - bits, (1 << bits) - 1
        self.slots = array("q", [0]) * (1 << bits)

    def _slot(self, key: int) -> int:
        i = (key * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF) >> self.shift  # Fibonacci hashing
        while self.slots[i] and self.slots[i] >> 32 != key:
            i = (i + 1) & self.mask
        return i

    def get(self, phone: int) -> int | None:
        return self.slots[self._slot(phone - self.BASE)] & 0xFFFFFFFF or None

    def add(self, phone: int, row: int) -> None:
        key = phone - self.BASE
        self.slots[self._slot(key)] = key << 32 | row


def _header_key(name: str) -> str:
    """A header name as columns are compared: in any case, "_" as a space, spaces single."""
    return " ".join(name.replace("_", " ").split()).casefold()


def _column(name: str, fields: dict[str, str]) -> str:
    """The column a header names (COLUMN_NAMES), or a custom field's key (`fields`: by key or
    label), else the name as given, stripped."""
    key = _header_key(name)
    return _COLUMNS_BY_NAME.get(key) or fields.get(key) or name.strip()


def _field_names() -> dict[str, str]:
    """The custom fields by the header names they go by (key and label, as _column compares them)."""
    return {_header_key(name): key for key, label in ClientField.declared().items() for name in (label, key)}


_COLUMNS_BY_NAME = {_header_key(n): column for column, names in COLUMN_NAMES.items() for n in names}


def _rows(
    imp: ClientImport, report: ImportReport, on_piece: Callable[[int], None] | None = None
) -> Iterator[_Row]:
    """The valid rows, in file order; every problem goes into the report. Memory: a few bytes per
    row, for duplicates (_PhoneRows)."""
    records = _records(imp, on_piece)
    try:
        header = next(records, [])
    except csv.Error as e:
        report.add_error(RowError(1, "", _("Not a readable CSV file: %(error)s.") % {"error": e}))
        return
    if header is None:
        report.add_error(RowError(1, "", _spans_lines()))
        return
    if not any(h.strip() for h in header):
        report.add_error(RowError(1, "", _("The file is empty; the first row must name the columns.")))
        return
    fields = _field_names()
    keys = set(fields.values())
    names = [_column(h, fields) for h in header]
    for name in names:
        # An unnamed column (a spreadsheet's trailing comma) is ignored.
        if name and name not in COLUMNS and name not in keys:
            message = _("Unknown column %(name)s; the columns are %(columns)s.") % {
                "name": repr(name[:64]),
                "columns": ", ".join([*(column_label(c) for c in COLUMNS), *sorted(keys)]),
            }
            report.add_error(RowError(1, name[:64], message))
    if "phone" not in names:
        report.add_error(RowError(1, "phone", _("The header must have a phone column.")))
    named = [n for n in names if n]
    if len(set(named)) != len(named):
        report.add_error(RowError(1, "", _("A column is named twice.")))
    if report.error_count:
        return

    index = {name: i for i, name in enumerate(names)}
    seen = _PhoneRows(imp.size)
    zone = windows.zone(Profile.of(imp.created_by).zone if imp.created_by else settings.TIME_ZONE)
    not_text = _(
        "The row holds bytes that are not %(encoding)s text, which the file's start is; save the "
        "whole file in one encoding (best: CSV UTF-8)."
    ) % {"encoding": ENCODINGS.get(imp.encoding, imp.encoding)}
    row_number = 1
    try:
        for values in records:
            row_number += 1
            if values is None:
                report.add_error(RowError(row_number, "", _spans_lines()))
                continue
            if not any(v.strip() for v in values):
                continue  # blank lines, e.g. at the end of the file
            typed = values[index["phone"]][:64] if index["phone"] < len(values) else ""
            if len(values) > len(names):
                message = _too_many_values(len(values), len(names))
                report.add_error(RowError(row_number, "", message, typed))
                continue
            if imp.file_format == "csv" and any("\ufffd" in v for v in values):
                report.add_error(RowError(row_number, "", not_text, typed))
                continue
            values += [""] * (len(names) - len(values))  # short rows: missing values are empty
            phone = normalize_phone(values[index["phone"]])
            tag = values[index["tag"]].strip() if "tag" in index else ""
            tz = values[index["timezone"]].strip() if "timezone" in index else ""
            default_zone = not tz
            tz = tz or default_client_timezone()
            opt = values[index["opted_out"]].strip().lower() if "opted_out" in index else ""
            errors = []
            if opt not in YES | NO:
                message = _("Give yes or no (1 or 0, true or false, да or нет), or leave it empty.")
                errors.append(RowError(row_number, "opted_out", message, typed))
            if problem := phone_problem(phone):
                errors.append(RowError(row_number, "phone", problem, typed))
            elif first := seen.get(int(phone)):
                message = _("Duplicate of row %(row)s.") % {"row": first}
                errors.append(RowError(row_number, "phone", message, typed))
            if problem := tag_problem(tag):
                errors.append(RowError(row_number, "tag", problem, typed))
            if problem := timezone_problem(tz):
                errors.append(RowError(row_number, "timezone", problem, typed))
            consent_at, source, problems = _consent(imp, values, index, zone)
            errors += [RowError(row_number, name, problem, typed) for name, problem in problems]
            # A blank name or field keeps what the client has.
            details = {key: values[index[key]].strip() for key in ("name", *keys) if key in index}
            details = {key: value for key, value in details.items() if value}
            for key, value in details.items():
                if problem := printable_problem(value, NAME_MAX if key == "name" else ATTRIBUTE_MAX):
                    errors.append(RowError(row_number, key, problem, typed))
            name = details.pop("name", "")
            if errors:
                for error in errors:
                    report.add_error(error)
                continue
            seen.add(int(phone), row_number)
            yield _Row(
                row_number, phone, tag, tz, opt in YES, default_zone, consent_at, source, name, details
            )
    except csv.Error as e:
        report.add_error(RowError(row_number, "", _("Not a readable CSV line: %(error)s.") % {"error": e}))


def _consent(
    imp: ClientImport, values: list[str], index: dict[str, int], zone: tzinfo
) -> tuple[datetime | None, str, list]:
    """A row's consent (when, how) and the problems with it, by column. A time without a zone is
    the uploader's (`zone`), as they typed it; without a source, it is the import's file; a
    source without a date is a mistake."""
    typed = values[index["consent_at"]].strip() if "consent_at" in index else ""
    source = values[index["consent_source"]].strip() if "consent_source" in index else ""
    if not typed:
        problems = (
            [("consent_source", _("A source of consent needs its date (consent_at)."))] if source else []
        )
        return None, "", problems
    consent_at = parse_moment(typed, zone)
    if consent_at is None:
        return (
            None,
            "",
            [("consent_at", _("Not a date: write it as 01.12.2026, 01.12.2026 10:30 or 2026-12-01."))],
        )
    problems = [("consent_at", problem)] if (problem := consent_problem(consent_at)) else []
    source = source or f"import {imp.filename or f'#{imp.pk}'}"
    if len(source) > CONSENT_SOURCE_MAX:
        problems.append(("consent_source", _("At most %(n)s characters.") % {"n": CONSENT_SOURCE_MAX}))
    return consent_at, source[:CONSENT_SOURCE_MAX], problems


def _too_many_values(values: int, columns: int) -> str:
    """E.g. "3 values for 2 columns." Both numbers take their plural form in Russian; English says
    "columns" for 1 too, as it always did (and there are always 2 values or more)."""
    values_text = ngettext("%(count)s value", "%(count)s values", values) % {"count": values}
    return ngettext("%(values)s for %(count)s columns.", "%(values)s for %(count)s columns.", columns) % {
        "values": values_text,
        "count": columns,
    }


def _batches(rows: Iterator[_Row]) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing(batch: list[_Row]) -> dict[str, tuple]:
    """The known clients of the batch: phone -> (id, tag, timezone, consent_at, consent_source,
    name, attributes)."""
    clients = Client.objects.filter(phone__in=[r.phone for r in batch]).values_list(
        "phone", "id", "tag", "timezone", "consent_at", "consent_source", "name", "attributes"
    )
    return {phone: rest for phone, *rest in clients}


def _check(imp: ClientImport) -> None:
    ClientImport.objects.filter(pk=imp.pk).update(state=ImportState.CHECKING)
    report = ImportReport()
    on_piece = lambda position: _renew(imp, bytes_checked=position)  # noqa: E731
    valid = 0
    for batch in _batches(_rows(imp, report, on_piece)):
        valid += len(batch)
        sorted_out = _sort_out(batch)
        report.created += len(sorted_out.new)
        report.updated += sorted_out.updated
        report.unchanged += sorted_out.unchanged
        report.consented += sorted_out.consented
        report.opted_out += sum(r.opted_out for r in batch)
        report.default_timezone += sum(r.default_zone for r in batch)
    imp.bytes_checked = imp.size
    imp.created, imp.updated, imp.unchanged = report.created, report.updated, report.unchanged
    imp.opted_out, imp.default_timezone = report.opted_out, report.default_timezone
    imp.consented = report.consented
    imp.errors = report.stored_errors()
    imp.error_count = report.error_count
    imp.rows_to_write = valid
    if not imp.write:
        # A check: the report says what importing would do, errors or not, and waits for the
        # user, who may import the good rows (all or nothing off) or fix the file.
        imp.state = ImportState.CHECKED
        imp.save()
        return
    if report.error_count and imp.all_or_nothing:
        # What was done: nothing.
        imp.created = imp.updated = imp.unchanged = imp.opted_out = imp.default_timezone = imp.consented = 0
    if report.error_count and imp.all_or_nothing or not valid:
        imp.state, imp.finished_at = (
            (ImportState.FAILED if report.error_count else ImportState.DONE),
            timezone.now(),
        )
        imp.written = not report.error_count
    else:
        imp.state = ImportState.WRITING
    imp.save()


def _write(imp: ClientImport) -> None:
    """Write the valid rows after `written_through`, a chunk per transaction."""
    report = ImportReport()  # errors were reported by the check; counts come from imp
    if not imp.written_through:
        # The counts now say what was done, not what the check expected.
        imp.created = imp.updated = imp.unchanged = imp.opted_out = imp.rows_written = 0
        imp.default_timezone = imp.consented = 0
        imp.save(
            update_fields=[
                *("created", "updated", "unchanged", "opted_out", "consented", "default_timezone"),
                "rows_written",
            ]
        )
    rows = (r for r in _rows(imp, report, lambda _: _renew(imp)) if r.row > imp.written_through)
    for batch in _batches(rows):
        for attempt in range(3):
            try:
                with transaction.atomic():
                    counts = _write_batch(batch, imp)
                    imp.created += counts[0]
                    imp.updated += counts[1]
                    imp.unchanged += counts[2]
                    imp.opted_out += counts[3]
                    imp.consented += counts[4]
                    imp.default_timezone += sum(r.default_zone for r in batch)
                    imp.rows_written += len(batch)
                    imp.written_through = batch[-1].row
                    held = ClientImport.objects.filter(pk=imp.pk, state=ImportState.WRITING).update(
                        created=imp.created,
                        updated=imp.updated,
                        unchanged=imp.unchanged,
                        opted_out=imp.opted_out,
                        consented=imp.consented,
                        default_timezone=imp.default_timezone,
                        rows_written=imp.rows_written,
                        written_through=imp.written_through,
                        lease_until=timezone.now() + LEASE,
                    )
                    if not held:
                        raise RuntimeError(f"import #{imp.pk} is no longer being written")
                break
            except IntegrityError:
                # Someone created one of these phones between our look-up and our insert: look again.
                if attempt == 2:
                    raise
    imp.state, imp.written, imp.finished_at = ImportState.DONE, True, timezone.now()
    imp.save(update_fields=["state", "written", "finished_at"])


@dataclass
class _SortedOut:
    """What the import does with a batch's rows, for the check and the writes alike."""

    new: list[_Row] = field(default_factory=list)
    # Known clients to change, grouped by their new (tag, timezone): an import usually has a
    # handful of tags and zones, so one UPDATE ... WHERE id IN (...) each (bulk_update's per-row
    # CASE was slow).
    changed: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # Known clients whose consent the row records (a first one, or another date or source).
    consent: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    consenting: list[str] = field(default_factory=list)  # the phones whose consent it records
    # Known clients whose name or custom fields the row changes: id -> (name, attributes).
    details: dict[int, tuple[str, dict]] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def updated(self) -> int:
        changed = {pk for ids in self.changed.values() for pk in ids}
        return len(changed | set(self.consent) | set(self.details))

    @property
    def consented(self) -> int:
        return len(self.consenting)


def _sort_out(batch: list[_Row]) -> _SortedOut:
    existing = _existing(batch)
    out = _SortedOut()
    for r in batch:
        known = existing.get(r.phone)
        if known is None:
            out.new.append(r)
            if r.consent_at:
                out.consenting.append(r.phone)
            continue
        pk, tag, tz, consent_at, consent_source, name, attributes = known
        if (tag, tz) != (r.tag, r.timezone):
            out.changed.setdefault((r.tag, r.timezone), []).append(pk)
        details = (r.name or name, attributes | r.attributes)
        if details != (name, attributes):
            out.details[pk] = details
        if r.consent_at and (consent_at, consent_source) != (r.consent_at, r.consent_source):
            out.consent[pk] = (r.consent_at, r.consent_source)
            out.consenting.append(r.phone)
        elif (tag, tz) == (r.tag, r.timezone) and pk not in out.details:
            out.unchanged += 1
    return out


def _write_batch(batch: list[_Row], imp: ClientImport) -> tuple[int, int, int, int, int]:
    out = _sort_out(batch)
    now = timezone.now()
    Client.objects.bulk_create(
        [
            Client(
                phone=r.phone,
                operator_code=operator_code_of(r.phone),
                tag=r.tag,
                timezone=r.timezone,
                consent_at=r.consent_at,
                consent_source=r.consent_source,
                name=r.name,
                name_search=name_key(r.name),
                attributes=r.attributes,
            )
            for r in out.new
        ]
    )
    Client.objects.bulk_update(
        [
            Client(pk=pk, name=name, name_search=name_key(name), attributes=attributes, updated_at=now)
            for pk, (name, attributes) in out.details.items()
        ],
        ["name", "name_search", "attributes", "updated_at"],
        batch_size=500,
    )
    for (tag, tz), ids in out.changed.items():
        Client.objects.filter(pk__in=ids).update(tag=tag, timezone=tz, updated_at=now)
    Client.objects.bulk_update(
        [
            Client(pk=pk, consent_at=at, consent_source=how, updated_at=now)
            for pk, (at, how) in out.consent.items()
        ],
        ["consent_at", "consent_source", "updated_at"],
        batch_size=500,
    )
    # The record of consent, one audit entry per chunk (as for opt-outs): whose consent the file
    # gave, in the chunk's transaction; each client keeps when and how on its row.
    if out.consenting:
        changes = {"phones": [None, out.consenting], "filename": [None, imp.filename]}
        AuditEntry.record(imp.created_by, "consent_given", imp, changes, via="import")
    # Opt-outs: a phone already on the stop list keeps its entry (the partial unique constraint
    # ignores the duplicate), so a file imported twice adds nothing the second time.
    opting = [r.phone for r in batch if r.opted_out]
    if opting:
        # One audit entry per chunk (up to CHUNK phones), in the chunk's transaction.
        AuditEntry.record(
            imp.created_by,
            "opted_out",
            imp,
            {"phones": [None, opting]},
            via="import",
            object_type="stop_list",
        )
    StopEntry.objects.bulk_create(
        [
            StopEntry(
                phone=phone,
                source=OptOutSource.IMPORT,
                reason=f"import #{imp.pk}",
                created_by_id=imp.created_by_id,
                created_at=now,
            )
            for phone in opting
        ],
        ignore_conflicts=True,
    )
    return len(out.new), out.updated, out.unchanged, len(opting), out.consented
