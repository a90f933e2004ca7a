"""Links of a client's own: each address of a text sent as MAILER_LINK_BASE/<code>, and the
{unsubscribe} page's /u/<code>; clicks counted per mailing and per client.

- The engine gives each message its codes (`assign`) when it first sends it, and the same ones
  again on a retry: one code per address per message, random (`new_code`: 10 characters of
  [0-9A-Za-z], 62^10 of them), never sequential. A Link row has no key to its message, so the
  links of a mailing whose messages retention deleted still work.
- `GET /l/<code>` (`follow`) looks the code up, counts the click and answers with the address.
  The targets are only the addresses the engine found in texts: nothing in the request is one.
- A click is written down and counted by a sender within two seconds (`fold`: Clicker,
  ClickMinute, MailingCounts.clicks and clickers), so that a burst of clicks never queues on the
  rows they all change. MAILER_CLICK_SPOOL says where: a directory (SQLite's default), each web
  process appending to a file of its own, so that a click never waits for the engine's write lock
  (each file is counted in one transaction that records its name, FoldedSpool: never twice, even
  if the sender dies before deleting it); `database` (PostgreSQL's default), a row of SpooledClick (an
  unlogged table), deleted in the transaction that counts it; empty, counted at once (`count`).
- Nothing about the clicker is kept but the time: no address, no browser, no cookie.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from mailer import bulk, sms, spool
from mailer.models import (
    Clicker,
    ClickMinute,
    FoldedSpool,
    Link,
    LinkKind,
    MailingCounts,
    OptOutSource,
    PersonalText,
    SentMinute,
    SpooledClick,
    StopEntry,
)

logger = logging.getLogger("mailer.links")

# An address: http:// or https:// up to a space (or a character a text puts around one). A
# placeholder (\x00, the engine's {unsubscribe} before its link is known) ends one too.
URL_RE = re.compile(r"https?://[^\s<>\"'«»\x00]+", re.IGNORECASE)
# Punctuation that ends a sentence after an address belongs to the sentence.
TRAILING = ".,;:!?)]}»'\""
ALPHABET = string.digits + string.ascii_letters
CODE_LENGTH = 10
CODE_RE = r"[0-9A-Za-z]{8,16}"
SAMPLE_CODE = "x" * CODE_LENGTH
# The {unsubscribe} variable's value until its link is known.
UNSUBSCRIBE_MARK = "\x00"
FOLDED_KEPT = timedelta(days=1)
# How many of SpooledClick's clicks one transaction counts.
FOLD_BATCH = 5000


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def addresses(text: str) -> list[tuple[int, int]]:
    """Where the addresses of `text` are: (start, end) of each, trailing punctuation left out."""
    spans = []
    for match in URL_RE.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in TRAILING:
            end -= 1
        spans.append((match.start(), end))
    return spans


def short_url(code: str) -> str:
    return f"{settings.MAILER_LINK_BASE}/{code}"


def unsubscribe_url(code: str) -> str:
    return f"{settings.SITE_URL}/u/{code}"


def shortened(text: str, codes: list[str]) -> str:
    """`text` with its i-th address as the short link of codes[i]."""
    out, at = [], 0
    for (start, end), code in zip(addresses(text), codes, strict=True):
        out += [text[at:start], short_url(code)]
        at = end
    return "".join(out) + text[at:]


def finished(
    text: str, track: bool, unsubscribe_code: str = SAMPLE_CODE, codes: list[str] | None = None
) -> str:
    """A rendered text as it is sent: its addresses as short links (when `track`; of `codes`, or
    sample ones for counting its length) and {unsubscribe} as its page's link."""
    if track:
        text = shortened(text, codes if codes is not None else [SAMPLE_CODE] * len(addresses(text)))
    return text.replace(UNSUBSCRIBE_MARK, unsubscribe_url(unsubscribe_code))


def assign(wanted: dict[int, tuple[int, int | None, str, list[str], bool]]) -> dict[int, dict]:
    """The codes of messages about to be sent: {message id: (mailing id, client id, phone, the
    addresses of its text, whether it has an {unsubscribe})} -> {message id: {"links": [codes],
    "unsubscribe": code}}. A retry gets the codes of the first attempt (an address changed since
    gets a new one); missing ones are made, in one transaction."""
    existing = {}
    for code, kind, message_id, position, url in Link.objects.filter(message_id__in=wanted).values_list(
        "code", "kind", "message_id", "position", "url"
    ):
        existing[(message_id, kind, position)] = (code, url)
    for _attempt in range(3):
        rows = []
        for message_id, (mailing_id, client_id, phone, urls, unsubscribe) in wanted.items():
            need = [(LinkKind.CLICK, i, url) for i, url in enumerate(urls)]
            need += [(LinkKind.UNSUBSCRIBE, 0, "")] if unsubscribe else []
            for kind, position, url in need:
                have = existing.get((message_id, kind, position))
                if have is None or have[1] != url:
                    rows.append(
                        Link(
                            code=new_code(),
                            kind=kind,
                            mailing_id=mailing_id,
                            message_id=message_id,
                            client_id=client_id,
                            phone=phone,
                            position=position,
                            url=url,
                        )
                    )
        if not rows:
            break
        with transaction.atomic():
            stale = [
                (r.message_id, r.kind, r.position)
                for r in rows
                if (r.message_id, r.kind, r.position) in existing
            ]
            for message_id, kind, position in stale:  # its address changed (the text was edited)
                Link.objects.filter(message_id=message_id, kind=kind, position=position).delete()
            Link.objects.bulk_create(rows, ignore_conflicts=True)
        # A code drawn twice (one in 62^10) was ignored: read back what is there, make the rest.
        for row in Link.objects.filter(code__in=[r.code for r in rows]).values_list(
            "code", "kind", "message_id", "position", "url"
        ):
            existing[(row[2], row[1], row[3])] = (row[0], row[4])
    codes = {}
    for message_id, (_mailing, _client, _phone, urls, unsubscribe) in wanted.items():
        codes[message_id] = {
            "links": [existing[(message_id, LinkKind.CLICK, i)][0] for i in range(len(urls))],
            "unsubscribe": existing[(message_id, LinkKind.UNSUBSCRIBE, 0)][0] if unsubscribe else None,
        }
    return codes


def unsubscribe(link: Link) -> bool:
    """The client of an {unsubscribe} link leaves the mailings: their phone on the stop list
    (source "link", the mailing named), counted for the mailing, in one transaction. False if it
    was on the list already."""
    with transaction.atomic():
        _entry, new = StopEntry.opt_out(
            link.phone, OptOutSource.LINK, reason=f"unsubscribe link of mailing #{link.mailing_id}"
        )
        if new:
            MailingCounts.objects.filter(mailing_id=link.mailing_id).update(
                unsubscribed=F("unsubscribed") + 1
            )
    return new


def own_texts(messages) -> dict[int, PersonalText]:
    """The texts of messages whose text is their own (Mailing.per_message), from (message id,
    mailing, client id, phone, name, field values, whether it goes now) each: variables filled in,
    each address as the message's own short link and {unsubscribe} as its page's (`assign`: the
    codes of an earlier attempt, else new ones; made only for a message that goes now). A message
    whose client can have none (a value missing) is not in it."""
    rendered: dict[int, tuple] = {}
    wanted = {}
    for message_id, mailing, client_id, phone, name, attributes, goes in messages:
        if (text := mailing.text_for(name, attributes)) is None:
            continue
        rendered[message_id] = (mailing, text)
        urls = [text[start:end] for start, end in addresses(text)] if mailing.track_links else []
        unsubscribe = UNSUBSCRIBE_MARK in text
        if goes and (urls or unsubscribe):
            wanted[message_id] = (mailing.pk, client_id, phone, urls, unsubscribe)
    codes = assign(wanted) if wanted else {}
    own = {}
    for message_id, (mailing, text) in rendered.items():
        given = codes.get(message_id, {})
        text = finished(
            text, mailing.track_links, given.get("unsubscribe") or SAMPLE_CODE, given.get("links")
        )
        own[message_id] = PersonalText(message_id=message_id, text=text, parts=sms.measure(text).parts)
    return own


# Clicks ------------------------------------------------------------------------------------------


# A click's one read, written out: building it with the ORM took ten times as long as running it
# (150 µs against 15 on SQLite), a quarter of a click's time in bench/clicks.py.
_URL_OF = f"SELECT url FROM {Link._meta.db_table} WHERE code = %s AND kind = %s"


def url_of(code: str) -> str | None:
    """Where the click link `code` goes; None for a code we never gave (or an {unsubscribe} one)."""
    return _one_row(_URL_OF, [code, LinkKind.CLICK.value])


def _one_row(sql: str, params: list) -> str | None:
    """The first column of `sql`'s first row (bulk.fetch: no health check before it)."""
    rows = bulk.fetch(sql, params)
    return rows[0][0] if rows else None


# On PostgreSQL a click is one statement: the link's address read and the click written down
# together, one round trip and one commit.
_FOLLOW = (
    f"WITH link AS (SELECT url FROM {Link._meta.db_table} WHERE code = %s AND kind = %s), "
    f"spooled AS (INSERT INTO {SpooledClick._meta.db_table} (code, at) SELECT %s, %s FROM link) "
    "SELECT url FROM link"
)


def follow(code: str) -> str | None:
    """A click on /l/<code>: counted, and the address it goes to; None for a code we never gave."""
    at = timezone.now()
    if settings.MAILER_CLICK_SPOOL == spool.DATABASE and connection.vendor == "postgresql":
        return _one_row(_FOLLOW, [code, LinkKind.CLICK.value, code, at])
    url = url_of(code)
    if url is None:
        return None
    if settings.MAILER_CLICK_SPOOL == spool.DATABASE:
        SpooledClick.objects.create(code=code, at=at)
    elif settings.MAILER_CLICK_SPOOL:
        _spool(code, at)
    else:
        count([(code, at)])
    return url


def _spool(code: str, at: datetime) -> None:
    """Append the click to this process's spool file (mailer/spool.py)."""
    spool.append(settings.MAILER_CLICK_SPOOL, [f"{code} {at.timestamp():.3f}"])


def fold(now: float | None = None) -> int:
    """A sender's, every tick: count the spool files that have settled, each in one transaction
    with its name (FoldedSpool), then delete them; then set the files being written aside (a
    rename: the next click starts a new one). Returns the clicks counted."""
    if settings.MAILER_CLICK_SPOOL == spool.DATABASE:
        return _fold_table()
    if not settings.MAILER_CLICK_SPOOL:
        return 0
    counted = 0
    for path in spool.ready(settings.MAILER_CLICK_SPOOL, now):
        try:
            clicks = _read(path)
        except FileNotFoundError:
            continue  # the other sender counted it meanwhile
        try:
            with transaction.atomic():
                FoldedSpool.objects.create(name=path.name)
                count(clicks)
        except IntegrityError:
            pass  # counted already (another sender, or this one before it died)
        else:
            counted += len(clicks)
        path.unlink(missing_ok=True)
    spool.set_aside(settings.MAILER_CLICK_SPOOL)
    if counted:
        FoldedSpool.objects.filter(folded_at__lt=timezone.now() - FOLDED_KEPT).delete()
    return counted


def _fold_table() -> int:
    """Count the clicks of SpooledClick, FOLD_BATCH at a time, each batch deleted in the
    transaction that counts it; rows another sender is counting are left to it (skip locked)."""
    counted = 0
    while True:
        with transaction.atomic():
            rows = list(
                SpooledClick.objects.select_for_update(skip_locked=True)
                .order_by("id")
                .values_list("id", "code", "at")[:FOLD_BATCH]
            )
            if rows:
                SpooledClick.objects.filter(id__in=[row[0] for row in rows]).delete()
                count([(code, at) for _id, code, at in rows])
        counted += len(rows)
        if len(rows) < FOLD_BATCH:
            return counted


def _read(path: Path) -> list[tuple[str, datetime]]:
    clicks = []
    for line in spool.lines(path):
        code, _, stamp = line.partition(" ")
        try:
            clicks.append((code, datetime.fromtimestamp(float(stamp), UTC)))
        except ValueError:
            logger.warning("%s: a line that is not a click: %r", path.name, line[:80])
    return clicks


# A clicker or a minute written in one statement for many: inserted, or added to when there.
# `excluded` is the row the statement meant to insert (PostgreSQL and SQLite alike).
_NEW_CLICKERS = (
    f"INSERT INTO {Clicker._meta.db_table} (mailing_id, phone, client_id, first_at, last_at, clicks) "
    "VALUES {values} ON CONFLICT (mailing_id, phone) DO NOTHING RETURNING mailing_id, phone"
)
_MORE_CLICKS = (
    f"INSERT INTO {Clicker._meta.db_table} AS c (mailing_id, phone, client_id, first_at, last_at, clicks) "
    "VALUES {values} ON CONFLICT (mailing_id, phone) DO UPDATE SET clicks = c.clicks + excluded.clicks, "
    "first_at = {least}(c.first_at, excluded.first_at), last_at = {greatest}(c.last_at, excluded.last_at)"
)


def count(clicks: list[tuple[str, datetime]]) -> None:
    """Count clicks (code, when) in one transaction: each clicker (first and last click, how many),
    each minute, and the mailing's clicks and clickers. A code no link has is left out.

    A few statements for the lot, whatever their number: the clickers new to their mailing are
    inserted first (and counted from what the insert returns: exact when another sender inserts
    the same clicker meanwhile, whose insert waits for this one), then the others get their
    clicks added, and each minute likewise. Rows go in one order (mailing, phone), so two senders
    never wait for each other in a circle."""
    by_code = {
        code: rest
        for code, *rest in Link.objects.filter(code__in={code for code, _ in clicks}).values_list(
            "code", "mailing_id", "client_id", "phone"
        )
    }
    people: dict[tuple[int, str], list] = {}
    minutes: Counter = Counter()
    total: Counter = Counter()
    for code, at in clicks:
        if code not in by_code:
            continue
        mailing_id, client_id, phone = by_code[code]
        person = people.setdefault((mailing_id, phone), [client_id, at, at, 0])
        person[1], person[2], person[3] = min(person[1], at), max(person[2], at), person[3] + 1
        minutes[(mailing_id, SentMinute.of(at))] += 1
        total[mailing_id] += 1
    if not people:
        return
    stamp = connection.ops.adapt_datetimefield_value
    rows = [
        (mailing_id, phone, client_id, stamp(first), stamp(last), n)
        for (mailing_id, phone), (client_id, first, last, n) in sorted(people.items())
    ]
    least, greatest = bulk.least_greatest()
    with transaction.atomic():
        new = set(bulk.execute(_NEW_CLICKERS, rows))
        bulk.execute(
            _MORE_CLICKS, [row for row in rows if row[:2] not in new], least=least, greatest=greatest
        )
        rows = [(m, stamp(minute), n) for (m, minute), n in sorted(minutes.items())]
        bulk.add(ClickMinute, ("mailing_id", "minute"), ("clicks",), rows)
        newcomers = Counter(mailing_id for mailing_id, _phone in new)
        for mailing_id in sorted(total):
            MailingCounts.objects.filter(mailing_id=mailing_id).update(
                clicks=F("clicks") + total[mailing_id], clickers=F("clickers") + newcomers[mailing_id]
            )
