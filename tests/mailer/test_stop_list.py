"""Consent: a phone on the stop list is never in an audience, one that opts out after its mailing's
audience was resolved is skipped at send time (cancelled, with the reason), and the list is kept
through the UI, the API and the CSV import, with a record of every change."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from engine import scheduling
from mailer.importing import import_clients
from mailer.models import (
    OPTED_OUT_WHY,
    MailingCounts,
    MessageStatus,
    OptOutSource,
    StopEntry,
)
from tests.engine.conftest import drain

pytestmark = pytest.mark.django_db


def test_opting_out_is_idempotent_and_taking_off_keeps_the_record(django_user_model):
    user = django_user_model.objects.create_user("mira")
    entry, new = StopEntry.opt_out("79161234567", OptOutSource.UI, "asked by phone", user=user)
    again, new_again = StopEntry.opt_out("79161234567", OptOutSource.API)
    assert new and not new_again and again.pk == entry.pk and again.source == OptOutSource.UI
    assert StopEntry.opt_in("79161234567", "asked to get offers again", user=user)
    assert not StopEntry.opt_in("79161234567", "twice")
    entry.refresh_from_db()
    assert (
        entry.removed_at and entry.removed_by == user and entry.removal_reason == "asked to get offers again"
    )
    # Opting out again is a new entry; the old one stays as history.
    StopEntry.opt_out("79161234567", OptOutSource.IMPORT)
    assert StopEntry.objects.filter(phone="79161234567").count() == 2
    assert StopEntry.objects.standing().get(phone="79161234567").source == OptOutSource.IMPORT


def test_one_standing_entry_per_phone_is_the_database_s_rule():
    StopEntry.objects.create(phone="79161234567", source=OptOutSource.UI)
    with pytest.raises(IntegrityError):
        StopEntry.objects.create(phone="79161234567", source=OptOutSource.API)


def test_an_opted_out_client_is_never_in_an_audience(make_client, make_mailing, now):
    keep, leave = make_client(tag="vip"), make_client(tag="vip")
    StopEntry.opt_out(leave.phone, OptOutSource.UI)
    mailing = make_mailing(filter_tags=["vip"])
    assert list(mailing.matching_clients()) == [keep]
    assert mailing.filtered_clients().count() == 2
    scheduling.tick(now)
    assert list(mailing.messages.values_list("client_id", flat=True)) == [keep.pk]


def test_one_who_opts_out_after_the_audience_is_skipped_at_send_time(
    make_client, make_mailing, make_deliverer, provider, now
):
    a, b, c = make_client(), make_client(), make_client()
    mailing = make_mailing()
    scheduling.tick(now)  # the audience is resolved: three messages
    assert mailing.messages.count() == 3
    StopEntry.opt_out(b.phone, OptOutSource.API, "replied STOP")
    drain(make_deliverer())
    by_client = dict(mailing.messages.values_list("client_id", "status"))
    assert by_client == {a.pk: MessageStatus.SENT, b.pk: MessageStatus.CANCELLED, c.pk: MessageStatus.SENT}
    assert mailing.messages.get(client=b).last_error == OPTED_OUT_WHY
    # Never at the gateway, and the counts agree with the rows.
    assert sorted(provider.record.phones.values()) == sorted([int(a.phone), int(c.phone)])
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
    assert MailingCounts.objects.get(mailing=mailing).cancelled == 1


CSV = """phone,tag,opted_out
79161234567,vip,yes
79261234567,vip,
79031234567,vip,нет
79051234567,vip,1
79061234567,vip,maybe
"""


def test_the_import_puts_phones_on_the_stop_list():
    report = import_clients(CSV, all_or_nothing=False)
    assert report.created == 4 and report.opted_out == 2
    assert [(e.row, e.field) for e in report.errors] == [(6, "opted_out")]
    standing = StopEntry.objects.standing()
    assert set(standing.values_list("phone", flat=True)) == {"79161234567", "79051234567"}
    assert set(standing.values_list("source", flat=True)) == {OptOutSource.IMPORT}
    # The same file again adds no second entry; "no" never takes a phone off (that needs a reason).
    import_clients(CSV, all_or_nothing=False)
    assert standing.count() == 2
    StopEntry.opt_out("79031234567", OptOutSource.UI)
    import_clients(CSV, all_or_nothing=False)
    assert standing.filter(phone="79031234567").exists()


@pytest.mark.parametrize("state", [None, "removed", "all", "standing"])
def test_the_dashboard_and_the_api_list_the_same_entries_for_a_state(state):
    """Both filtersets take `state` (and its default, what stands now) from one place."""
    from django.http import QueryDict

    from dashboard.filters import StopListFilter as PageFilter
    from mailer.api.views import StopListFilter as ApiFilter

    StopEntry.opt_out("79161234567", OptOutSource.UI)
    StopEntry.opt_out("79261234567", OptOutSource.UI)
    StopEntry.opt_in("79261234567", "consented")
    query = QueryDict(mutable=True)
    if state:
        query["state"] = state
    queryset = StopEntry.objects.all()
    api = ApiFilter(query, queryset=queryset)
    assert api.is_valid()
    expected = {None: {"79161234567"}, "standing": {"79161234567"}, "removed": {"79261234567"}}
    phones = expected.get(state, {"79161234567", "79261234567"})
    assert {e.phone for e in api.qs} == phones
    # The page has no "standing" choice: its empty choice is that (a refused one shows it too).
    page = PageFilter(query or None, queryset=queryset)
    assert {e.phone for e in page.qs} == phones
