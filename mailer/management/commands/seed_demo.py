"""Demo data: N clients across Russia's time zones and a few mailings in various states, in
Russian, as a Russian marketer would write them.

The history is what the engine would have written: each mailing created, started and finished (or
cancelled) through the model's own transitions, with their audit entries moved to when they
happened; its messages as delivery leaves them (status, sent_at inside the run, attempts,
sent_text, last_error), first tried when the client's window opened (the engine's
first_attempt_at); and its kept counts (MailingCounts, SentMinute, MailingText.sent) counted once
from the rows (MailingCounts.reconcile), as the bulk insert counted nothing.

Deterministic (a fixed random seed, phones derived from the row number) and idempotent: running it
again inserts only what is missing, so it is safe in the quick start on every launch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from tqdm import tqdm

from accounts.roles import ADMIN, set_role
from engine.scheduling import closed_why, first_attempt_at
from mailer import links, receipts
from mailer.models import (
    ENDED_WHY,
    Approval,
    AuditEntry,
    Client,
    ClientField,
    DeliveryStatus,
    Link,
    LinkKind,
    Mailing,
    MailingCounts,
    MailingKind,
    MailingState,
    Message,
    MessageStatus,
    PersonalText,
    name_key,
    operator_code_of,
)

# The operator whose subscribers the demo's receipts often say were refused.
FAILING = "950"
OPERATORS = ["900", "901", "903", "905", "910", "915", "916", "925", "926", "950", "977", "999"]
# As a Russian shop tags its clients, and where they live: Moscow's zone mostly, then the others
# west to east (weights, not shares).
TAGS = {"лояльные": 25, "новые": 20, "москва": 20, "vip": 8, "опт": 7, "": 20}
TIMEZONES = {
    "Europe/Kaliningrad": 4,
    "Europe/Moscow": 60,
    "Europe/Samara": 5,
    "Asia/Yekaterinburg": 9,
    "Asia/Omsk": 3,
    "Asia/Novosibirsk": 7,
    "Asia/Krasnoyarsk": 4,
    "Asia/Irkutsk": 3,
    "Asia/Vladivostok": 3,
    "Asia/Kamchatka": 2,
}
MOSCOW = ZoneInfo("Europe/Moscow")
CITIES = {
    "Europe/Kaliningrad": "Калининград",
    "Europe/Moscow": "Москва",
    "Europe/Samara": "Самара",
    "Asia/Yekaterinburg": "Екатеринбург",
    "Asia/Omsk": "Омск",
    "Asia/Novosibirsk": "Новосибирск",
    "Asia/Krasnoyarsk": "Красноярск",
    "Asia/Irkutsk": "Иркутск",
    "Asia/Vladivostok": "Владивосток",
    "Asia/Kamchatka": "Петропавловск-Камчатский",
}
NAMES = [
    "Анна", "Мария", "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Екатерина", "Юлия",
    "Александр", "Сергей", "Дмитрий", "Андрей", "Алексей", "Иван", "Михаил", "Николай", "Павел", "Артём",
]  # fmt: skip
# Earlier versions of this command wrote these; a demo database that still has them is brought
# up to date once (upgrade_old_demo).
OLD_TEXTS = [
    "Welcome back! Your loyalty points are waiting.",
    "VIP preview: the winter collection opens tomorrow.",
    "Wholesale price list for December is out.",
    "Weekend sale: -20% on everything.",
]
OLD_TAGS = {"retail": "", "vip": "vip", "wholesale": "опт", "new": "новые", "loyal": "лояльные", "b2b": "опт"}
OLD_TIMEZONES = ["Europe/London", "America/New_York", "UTC"]
# How the demo's history was sent: messages a second per mailing (the stand-in's pace with two
# senders, roughly), and what the gateway answered the ones it refused.
RATE = 4.0
REFUSED = 'http_4xx: HTTP 400: {"code": 400, "message": "invalid request"}'
CHUNK = 5000


def demo_phone(n: int) -> str:
    """The n-th demo phone: an operator code and a 7-digit subscriber number, both from n."""
    return f"7{OPERATORS[n % len(OPERATORS)]}{(n * 7919) % 10_000_000:07d}"


class Command(BaseCommand):
    help = "Create demo clients, mailings and a demo login (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=1000, help="How many clients (default 1000).")
        parser.add_argument("--no-mailings", action="store_true", help="Clients only.")
        parser.add_argument("--user", default="demo", help="Demo login; its password is the same word.")

    def handle(self, *args, clients: int, no_mailings: bool, user: str, **options):
        self.seed_user(user)
        self.upgrade_old_demo()
        self.seed_clients(clients)
        if not no_mailings:
            self.seed_mailings(user)

    def seed_user(self, username: str) -> None:
        User = get_user_model()
        account, created = User.objects.get_or_create(username=username)
        if created:
            account.set_password(username)
            account.save()
        set_role(account, ADMIN)
        self.stdout.write(f"Demo login: {username} / {username}" if created else f"Demo login: {username}")

    def seed_clients(self, count: int) -> None:
        rng = random.Random(42)
        # One pass over the existing phones, then insert only the missing ones in chunks.
        existing = set(Client.objects.values_list("phone", flat=True).iterator(chunk_size=10_000))
        now = timezone.now()
        batch: list[Client] = []
        created = 0
        for n in tqdm(range(count), desc="clients", unit="client", disable=count < CHUNK, file=self.stderr):
            tag = rng.choices(list(TAGS), weights=list(TAGS.values()))[0]
            tz = rng.choices(list(TIMEZONES), weights=list(TIMEZONES.values()))[0]
            # Clients of some standing: none joined after the demo's oldest mailing.
            joined = now - timedelta(days=8 + rng.randint(0, 400), seconds=rng.randint(0, 86_399))
            phone = demo_phone(n)
            if phone in existing:
                continue
            existing.add(phone)
            batch.append(
                Client(
                    phone=phone,
                    operator_code=operator_code_of(phone),
                    tag=tag,
                    timezone=tz,
                    created_at=joined,
                    updated_at=joined,
                )
            )
            if len(batch) >= CHUNK:
                created += self._insert(batch)
                batch = []
        created += self._insert(batch)
        self.stdout.write(f"Clients: {created} created, {Client.objects.count()} in all.")
        self.seed_consent()
        self.seed_details()

    def seed_details(self) -> None:
        """Names for most clients, and two custom fields (Город, by the client's zone; Промокод,
        for the vip) that the demo's texts can use: {name|клиент}, {city}. For the clients that
        have no field yet (every demo zone has its city)."""
        ClientField.objects.get_or_create(key="city", defaults={"label": "Город"})
        ClientField.objects.get_or_create(key="promo_code", defaults={"label": "Промокод"})
        rows = Client.objects.filter(attributes={}).order_by("id").values_list("id", "timezone", "tag")
        batch: list[Client] = []
        for pk, tz, tag in rows.iterator(chunk_size=CHUNK):
            name = NAMES[pk % len(NAMES)] if pk % 10 else ""  # every tenth gave no name
            attributes = {"city": CITIES[tz]} if tz in CITIES else {}
            if tag == "vip":
                attributes["promo_code"] = f"VIP{pk * 7919 % 10_000:04d}"
            batch.append(Client(pk=pk, name=name, name_search=name_key(name), attributes=attributes))
            if len(batch) >= CHUNK:
                Client.objects.bulk_update(batch, ["name", "name_search", "attributes"], batch_size=500)
                batch = []
        Client.objects.bulk_update(batch, ["name", "name_search", "attributes"], batch_size=500)
        self.stdout.write(
            "Client fields: Город (city), Промокод (promo_code); names for nine clients in ten."
        )

    def seed_consent(self) -> None:
        """Most clients agreed to advertising when they joined (a form on the site, a paper form at
        the till), not all: every seventh has no consent on record. Once, and for a database seeded
        before consent was recorded too."""
        if Client.objects.filter(consent_at__isnull=False).exists():
            return
        clients = Client.objects.annotate(seventh=F("id") % 7, third=F("id") % 3).exclude(seventh=0)
        with transaction.atomic():
            clients.filter(third=0).update(consent_at=F("created_at"), consent_source="анкета на кассе")
            clients.exclude(third=0).update(consent_at=F("created_at"), consent_source="форма на сайте")
        self.stdout.write(
            f"Consent to advertising: {Client.objects.filter(consent_at__isnull=False).count()}."
        )

    @staticmethod
    def _insert(batch: list[Client]) -> int:
        if not batch:
            return 0
        joined = {client.phone: client.created_at for client in batch}
        with transaction.atomic():
            Client.objects.bulk_create(batch, ignore_conflicts=True)
            # created_at is auto_now_add, so the insert wrote now: give each client its own date.
            ids = dict(Client.objects.filter(phone__in=joined).values_list("phone", "id"))
            for client in batch:
                client.pk = ids[client.phone]
                client.created_at = client.updated_at = joined[client.phone]
            Client.objects.bulk_update(batch, ["created_at", "updated_at"], batch_size=500)
        return len(batch)

    def upgrade_old_demo(self) -> None:
        """A demo database seeded by an earlier version (English mailings and tags, zones outside
        Russia) gets this version's: its old mailings go, its clients get Russian tags and zones.
        Once: the old mailings are how it is recognised."""
        old = Mailing.objects.filter(text__in=OLD_TEXTS)
        if not old.exists():
            return
        with transaction.atomic():
            old.delete()
            for before, after in OLD_TAGS.items():
                Client.objects.filter(tag=before).update(tag=after)
            Client.objects.filter(timezone__in=OLD_TIMEZONES).update(timezone="Europe/Moscow")
        self.stdout.write("The demo data of an earlier version was brought up to date.")

    def seed_mailings(self, username: str) -> None:
        author = get_user_model().objects.get(username=username)
        now = timezone.now().replace(second=0, microsecond=0)
        today = now.astimezone(MOSCOW).date()

        def moscow(days: int, hour: int, minute: int = 0) -> datetime:
            """A moment `days` from today, at a Moscow wall-clock time: when a marketer plans."""
            return datetime.combine(today + timedelta(days=days), time(hour, minute), tzinfo=MOSCOW)

        window = (time(10), time(21))
        demos = [
            Demo(  # a campaign by the clients' local window: Moscow's wait for 10:00, the east's don't
                "Скидка 20% на всё до воскресенья! Ваш магазин",
                created=moscow(-4, 16, 20),
                start=moscow(-3, 9),
                end=moscow(-3, 21),
                tags=["лояльные"],
                window=window,
                state=MailingState.FINISHED,
            ),
            Demo(  # two SMS parts: more than 70 Cyrillic characters
                "Новая коллекция уже в магазинах! Покажите это SMS на кассе и получите подарок к "
                "покупке. Ваш магазин",
                created=moscow(-7, 11, 5),
                start=moscow(-6, 12),
                end=moscow(-5, 12),
                tags=["vip", "москва"],
                state=MailingState.FINISHED,
            ),
            Demo(  # late in Moscow's day: in the east the window never opened before the end
                "Только сегодня до 21:00: второй кофе в подарок. Ваша кофейня",
                created=moscow(-1, 17, 40),
                start=moscow(-1, 18),
                end=moscow(-1, 20),
                tags=["новые"],
                window=window,
                state=MailingState.FINISHED,
            ),
            Demo(  # starts two minutes after the demo does: the worker sends it before your eyes
                "VIP-вечер: закрытый показ зимней коллекции завтра с 19:00. Ждём вас!",
                created=now - timedelta(hours=1),
                start=now + timedelta(minutes=2),
                end=now + timedelta(days=1),
                tags=["vip"],
                state=MailingState.SCHEDULED,
            ),
            Demo(
                "Оптовый прайс на январь готов: скидки до 15% при заказе от 50 000 ₽. Ваш менеджер",
                created=now - timedelta(minutes=30),
                start=moscow(3, 10),
                end=moscow(4, 10),
                tags=["опт"],
                codes=["916", "926"],
                state=MailingState.SCHEDULED,
            ),
            Demo(  # a service message, not advertising: no consent asked, sent in the east's night too
                "Магазин на Тверской 8 декабря закрыт на инвентаризацию. Ждём вас 9 декабря!",
                created=moscow(-2, 19, 50),
                start=moscow(-2, 20, 30),
                end=moscow(-1, 20, 30),
                tags=["москва"],
                kind=MailingKind.SERVICE,
                state=MailingState.FINISHED,
            ),
            Demo(  # each client's own text and link: who clicked, and when
                "{name|Добрый день}, скидки до 30% на зимнюю коллекцию: https://shop.example.ru/winter",
                created=moscow(-2, 10, 5),
                start=moscow(-2, 11),
                end=moscow(-2, 21),
                tags=["лояльные", "москва"],
                state=MailingState.FINISHED,
            ),
            Demo(  # called off the morning it was to go
                "Выходные −20% на всё! Только в субботу и воскресенье.",
                created=moscow(-3, 15, 10),
                start=moscow(-1, 12),
                end=moscow(-1, 21),
                codes=["900"],
                state=MailingState.CANCELLED,
                cancelled=moscow(-1, 10, 15),
            ),
        ]
        for demo in demos:
            if not Mailing.objects.filter(text=demo.text).exists():
                self._seed_mailing(demo, author)
        self.stdout.write(f"Mailings: {Mailing.objects.count()} in all.")

    @staticmethod
    def _seed_mailing(demo: Demo, author) -> None:
        """The mailing as its author created it, then what happened to it, through the model's own
        transitions; each audit entry is then moved to when it happened."""
        mailing = Mailing(
            text=demo.text,
            kind=demo.kind,
            start_at=demo.start,
            end_at=demo.end,
            filter_tags=demo.tags,
            filter_operator_codes=demo.codes,
            window_start=demo.window[0] if demo.window else None,
            window_end=demo.window[1] if demo.window else None,
            created_by=author,
        )
        with transaction.atomic():
            mailing.full_clean()
            mailing.save_by(author)
            Mailing.objects.filter(pk=mailing.pk).update(created_at=demo.created, updated_at=demo.created)
            mailing.texts.update(created_at=demo.created)
            _moved(mailing, "created", demo.created)
            if demo.state == MailingState.CANCELLED:
                mailing.cancel(by=author)
                Mailing.objects.filter(pk=mailing.pk).update(
                    finished_at=demo.cancelled, updated_at=demo.cancelled
                )
                _moved(mailing, "cancelled", demo.cancelled)
            elif demo.state == MailingState.FINISHED:
                # History from before any MAILER_APPROVAL_ABOVE: it went without asking.
                Mailing.objects.filter(pk=mailing.pk).update(approval=Approval.NOT_NEEDED, approval_sms=None)
                mailing.refresh_from_db()
                _history(mailing)


@dataclass
class Demo:
    text: str
    created: datetime
    start: datetime
    end: datetime
    state: str
    tags: list[str] | None = None
    codes: list[str] | None = None
    window: tuple[time, time] | None = None
    cancelled: datetime | None = None
    kind: str = MailingKind.ADVERTISING

    def __post_init__(self) -> None:
        self.tags, self.codes = self.tags or [], self.codes or []


def _own_texts_and_clicks(mailing: Mailing, sent: list[Message], rng: random.Random) -> None:
    """What the engine keeps of a personal mailing with a link (each client's text, their links),
    and the clicks that came: one client in five, within hours of their SMS, a few twice."""
    clients = Client.objects.in_bulk([row.client_id for row in sent])
    own = links.own_texts(
        (row.pk, mailing, row.client_id, clients[row.client_id].phone, clients[row.client_id].name,
         clients[row.client_id].attributes, True)
        for row in sent
    )  # fmt: skip
    PersonalText.objects.bulk_create(own.values(), batch_size=CHUNK)
    code = dict(
        Link.objects.filter(mailing=mailing, kind=LinkKind.CLICK, position=0).values_list(
            "message_id", "code"
        )
    )
    clicks = []
    for row in sent:
        if rng.random() < 0.2:
            at = row.sent_at + timedelta(minutes=rng.expovariate(1 / 30))
            clicks.append((code[row.pk], at))
            if rng.random() < 0.25:
                clicks.append((code[row.pk], at + timedelta(minutes=rng.randint(5, 300))))
    links.count(clicks)


def _receipts(sent: list[Message], rng: random.Random) -> None:
    """What the gateway's delivery receipts said, applied as the engine applies them: most
    delivered within seconds; FAILING's subscribers often refused (a sender name that operator has
    not registered); a few phones off or out of reach; now and then no receipt at all."""
    operators = dict(
        Client.objects.filter(pk__in=[row.client_id for row in sent]).values_list("pk", "operator_code")
    )
    given = []
    for row in sent:
        roll = rng.random()
        if roll < 0.01:
            continue
        status, error = DeliveryStatus.DELIVERED, ""
        if operators.get(row.client_id) == FAILING and roll < 0.45:
            status, error = DeliveryStatus.REJECTED, "sender name not registered"
        elif roll < 0.04:
            status, error = DeliveryStatus.UNDELIVERED, "absent subscriber"
        elif roll < 0.05:
            status = DeliveryStatus.EXPIRED
        given.append(
            receipts.Receipt(row.pk, status, row.sent_at + timedelta(seconds=rng.randint(2, 40)), error)
        )
    receipts.apply(given)


def _moved(mailing: Mailing, action: str, at: datetime) -> None:
    AuditEntry.objects.filter(object_type="mailing", object_id=str(mailing.pk), action=action).update(at=at)


def _history(mailing: Mailing) -> None:
    """A finished mailing as the engine would have left it: started a few seconds after its start,
    each client's message created then and first tried when the client's window opened
    (first_attempt_at, the engine's own rule), sent at RATE a second, a few refused by the gateway
    or sent on a second attempt; finished once nothing was left, or at its end."""
    rng = random.Random(mailing.pk)
    started = mailing.start_at + timedelta(seconds=rng.randint(1, 3))
    assert mailing.start(started)
    text_id = mailing.current_text_id
    audience = list(mailing.matching_clients().order_by("id").values_list("id", "timezone")[:20_000])
    firsts = {tz: first_attempt_at(mailing, tz, started) for tz in {tz for _, tz in audience}}
    queue = sorted(audience, key=lambda row: (firsts[row[1]] or mailing.end_at, row[0]))
    rows, cursor, last = [], started, started
    for client_id, tz in queue:
        first = firsts[tz]
        row = Message(mailing_id=mailing.pk, client_id=client_id, created_at=started, next_attempt_at=first)
        rows.append(row)
        if first is None:  # known when the audience was resolved: never queued
            row.status, row.last_error, row.next_attempt_at = (
                MessageStatus.EXPIRED,
                closed_why(mailing, tz, started),
                mailing.end_at,
            )
            continue
        at = max(cursor, first) + timedelta(milliseconds=rng.randint(0, 400))
        cursor = at + timedelta(seconds=1 / RATE)
        roll = rng.random()
        if roll < 0.03:  # retried after the gateway's 5xx, sent the second time
            at += timedelta(seconds=rng.randint(2, 20))
        if at >= mailing.end_at:
            row.status, row.last_error = MessageStatus.EXPIRED, ENDED_WHY
            continue
        row.attempts, row.sent_text_id, row.next_attempt_at = (2 if roll < 0.03 else 1), text_id, at
        if 0.03 <= roll < 0.05:
            row.status, row.last_error = MessageStatus.FAILED, REFUSED
        else:
            row.status, row.sent_at = MessageStatus.SENT, at
        last = max(last, at)
    ended = any(row.last_error == ENDED_WHY for row in rows)
    finished = mailing.end_at if ended else last + timedelta(seconds=rng.randint(1, 2))
    Message.objects.bulk_create(rows, batch_size=CHUNK)
    if mailing.per_message():
        _own_texts_and_clicks(mailing, [row for row in rows if row.status == MessageStatus.SENT], rng)
    # The bulk insert counted nothing: count the rows once, as the engine's writes would have.
    MailingCounts.reconcile(mailing.pk)
    _receipts([row for row in rows if row.status == MessageStatus.SENT], rng)
    MailingCounts.objects.filter(mailing=mailing).update(no_consent=mailing.without_consent())
    Mailing.objects.filter(pk=mailing.pk).update(resolved_version=F("audience_version"))
    assert mailing.finish(finished)
    _moved(mailing, "started", started)
    _moved(mailing, "finished", finished)
