"""Demo data: N realistic clients and a few mailings in various states.

Deterministic (a fixed random seed, phones derived from the row number) and idempotent: running it
again inserts only what is missing, so it is safe in the quick start on every launch.
"""

from __future__ import annotations

import random
from datetime import time, timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.roles import ADMIN, set_role
from mailer.models import (
    Client,
    Mailing,
    MailingCounts,
    MailingState,
    Message,
    MessageStatus,
    operator_code_of,
)

OPERATORS = ["900", "901", "903", "905", "910", "915", "916", "925", "926", "950", "977", "999"]
TAGS = ["retail", "vip", "wholesale", "new", "loyal", "b2b", ""]
TIMEZONES = [
    "Europe/Moscow",
    "Europe/Kaliningrad",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Vladivostok",
    "Asia/Kamchatka",
    "Europe/London",
    "America/New_York",
    "UTC",
]
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
            tag, tz = rng.choice(TAGS), rng.choice(TIMEZONES)
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
                    created_at=now,
                    updated_at=now,
                )
            )
            if len(batch) >= CHUNK:
                created += self._insert(batch)
                batch = []
        created += self._insert(batch)
        self.stdout.write(f"Clients: {created} created, {Client.objects.count()} in all.")

    @staticmethod
    def _insert(batch: list[Client]) -> int:
        if not batch:
            return 0
        with transaction.atomic():
            Client.objects.bulk_create(batch, ignore_conflicts=True)
        return len(batch)

    def seed_mailings(self, username: str) -> None:
        User = get_user_model()
        author = User.objects.get(username=username)
        now = timezone.now().replace(second=0, microsecond=0)
        demos = [
            # (text, start offset, length, tags, codes, window, state)
            (
                "Welcome back! Your loyalty points are waiting.",
                -timedelta(days=2),
                timedelta(hours=6),
                ["loyal"],
                [],
                None,
                MailingState.FINISHED,
            ),
            (
                "VIP preview: the winter collection opens tomorrow.",
                timedelta(minutes=1),
                timedelta(days=1),
                ["vip"],
                [],
                (time(9), time(21)),
                MailingState.SCHEDULED,
            ),
            (
                "Wholesale price list for December is out.",
                timedelta(days=3),
                timedelta(days=1),
                ["wholesale", "b2b"],
                ["916", "926"],
                None,
                MailingState.SCHEDULED,
            ),
            (
                "Weekend sale: -20% on everything.",
                -timedelta(days=1),
                timedelta(hours=12),
                [],
                ["900"],
                None,
                MailingState.CANCELLED,
            ),
        ]
        for text, offset, length, tags, codes, window, state in demos:
            if Mailing.objects.filter(text=text).exists():
                continue
            mailing = Mailing.objects.create(
                text=text,
                start_at=now + offset,
                end_at=now + offset + length,
                filter_tags=tags,
                filter_operator_codes=codes,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                state=state,
                created_by=author,
            )
            if state == MailingState.FINISHED:
                self._fake_history(mailing)
            elif state == MailingState.CANCELLED:
                mailing.finished_at = mailing.start_at
                mailing.save(update_fields=["finished_at"])
        self.stdout.write(f"Mailings: {Mailing.objects.count()} in all.")

    @staticmethod
    def _fake_history(mailing: Mailing) -> None:
        """A finished mailing with a realistic outcome, so statistics have something to show."""
        rng = random.Random(mailing.pk)
        statuses = [MessageStatus.SENT] * 90 + [MessageStatus.FAILED] * 4 + [MessageStatus.EXPIRED] * 6
        rows = []
        for client_id in mailing.matching_clients().values_list("id", flat=True)[:20_000].iterator():
            status = rng.choice(statuses)
            sent = mailing.start_at + timedelta(seconds=rng.randint(1, 3600))
            rows.append(
                Message(
                    mailing=mailing,
                    client_id=client_id,
                    status=status,
                    created_at=mailing.start_at,
                    sent_at=sent if status == MessageStatus.SENT else None,
                    attempts=1 if status != MessageStatus.EXPIRED else 0,
                    last_error="HTTP 400: invalid phone" if status == MessageStatus.FAILED else "",
                    # The text each attempted message carried: its parts are the SMS billed.
                    sent_text_id=mailing.current_text_id if status != MessageStatus.EXPIRED else None,
                )
            )
        with transaction.atomic():
            Message.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)
            mailing.started_at = mailing.start_at
            mailing.finished_at = mailing.end_at
            mailing.resolved_version = mailing.audience_version
            mailing.save(update_fields=["started_at", "finished_at", "resolved_version"])
            MailingCounts.reconcile(mailing.pk)  # the rows were written in bulk: count them once
