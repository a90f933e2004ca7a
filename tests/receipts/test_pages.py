"""What the marketer sees of receipts: the mailing's page (per message, per operator, the reasons,
the chart), Statistics, the home page, the daily report, and the numbers that no longer answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.test import Client as Browser

from mailer import reports
from mailer.models import AuditEntry, Client, Mailing
from tests.conftest import user_with_role
from tests.receipts.conftest import AUTH

RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}
T0 = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)


def post(batch: list[dict]) -> None:
    response = Browser().post(
        "/api/v1/gateway/receipts/", json.dumps(batch), content_type="application/json", **AUTH
    )
    assert response.status_code == 200, response.content


def receipts_for(ids: dict[str, int]) -> list[dict]:
    """900's both delivered; 912's one undelivered, one rejected."""
    said = {
        "79000000001": ("delivered", ""),
        "79000000002": ("delivered", ""),
        "79120000001": ("undelivered", "absent subscriber"),
        "79120000002": ("rejected", "sender name not registered"),
    }
    return [
        {"id": ids[phone], "status": status, "at": T0.isoformat(), "error": error}
        for phone, (status, error) in said.items()
    ]


@pytest.fixture
def browser(db, django_user_model):
    browser = Browser()
    browser.force_login(user_with_role(django_user_model, "manager"))
    return browser


@pytest.mark.django_db
def test_the_mailing_page_shows_delivery_per_operator_and_why(sent, browser):
    mailing, ids = sent("Распродажа")
    post(receipts_for(ids))
    html = browser.get(f"/mailings/{mailing.pk}/", **RU).content.decode()
    assert "доставлено 2, не доставлено 2, без отчёта о доставке 0" in html
    assert "доставлено 50,0 % принятых" in html
    operators = html.split('id="operators"')[1]
    # The failing operator first, in red.
    assert operators.index("912") < operators.index("900")
    assert '<tr class="table-danger"><td>912</td>' in operators
    assert "Отклонено оператором: «sender name not registered» — 1" in operators
    assert "Не доставлено: «absent subscriber» — 1" in operators
    assert 'id="delivery-chart"' in html
    # Per message, what the receipt said; and the filter by it.
    assert "absent subscriber" in html.split("<tbody")[-1]
    only = browser.get(f"/mailings/{mailing.pk}/?delivery_status=rejected", **RU).content.decode()
    rows = only.split("<tbody")[-1]
    assert "79120000002" in rows and "79120000001" not in rows


@pytest.mark.django_db
def test_statistics_home_and_the_daily_report_show_delivery(sent, browser, now):
    mailing, ids = sent("Распродажа")
    post(receipts_for(ids))
    page = browser.get("/statistics/", **RU).content.decode()
    assert "Доставлено, %" in page and "50,0 %" in page
    response = browser.get("/statistics/mailings.csv", **RU)
    csv = b"".join(response.streaming_content).decode("utf-8-sig").splitlines()
    assert csv[0].endswith(";Доставлено;Не доставлено;Без отчёта;Доставлено, %")
    assert csv[1].endswith(";2;2;0;50,0")
    report = reports.build(now.replace(hour=0), now.replace(hour=23, minute=59))
    assert "delivered 2, not delivered 2, no receipt yet 0, delivery rate 50.0 %" in report.text
    Mailing.objects.filter(pk=mailing.pk).update(state="running")
    home = browser.get("/", **RU).content.decode()
    assert "доставлено 2 · не доставлено 2 · без отчёта 0 · 50,0 %" in home


@pytest.mark.django_db
def test_a_manager_sees_the_numbers_that_no_longer_answer_and_puts_one_back(
    sent, browser, settings, django_user_model
):
    settings.MAILER_UNDELIVERED_LIMIT = 1
    mailing, ids = sent("Распродажа")
    post(receipts_for(ids))
    silent = Client.objects.get(phone="79120000001")  # the rejected one is not counted
    assert list(Client.objects.filter(undeliverable_at__isnull=False)) == [silent]
    page = browser.get("/clients/undeliverable/", **RU).content.decode()
    assert "Недоступные номера" in page and "79120000001" in page and "79120000002" not in page
    assert "Недоступные номера" in browser.get("/clients/", **RU).content.decode()
    client_page = browser.get(f"/clients/{silent.pk}/", **RU).content.decode()
    assert 'id="undeliverable"' in client_page and "Исключён из рассылок с" in client_page
    audience = browser.get("/mailings/audience/", **RU).content.decode()
    assert "1 клиент с недоступным номером не войдёт." in audience
    # A viewer may look, not put back.
    viewer = Browser()
    viewer.force_login(user_with_role(django_user_model, "viewer"))
    assert viewer.post(f"/clients/{silent.pk}/put-back/").status_code == 403
    response = browser.post(f"/clients/{silent.pk}/put-back/", **RU)
    assert response.status_code == 302 and response["Location"] == "/clients/undeliverable/"
    silent.refresh_from_db()
    assert (silent.undeliverable_at, silent.undelivered_in_row) == (None, 0)
    entry = AuditEntry.objects.get(action="deliverable")
    assert (entry.object_id, entry.via) == (str(silent.pk), "ui")
    assert "79120000001" in Mailing(text="x", start_at=T0, end_at=T0).matching_clients().values_list(
        "phone", flat=True
    )


@pytest.mark.django_db
def test_the_demo_s_mailings_have_receipts_and_one_operator_failing():
    from django.core.management import call_command

    from mailer.models import MailingCounts, MailingState, OperatorCounts

    call_command("seed_demo", clients=600, verbosity=0)
    finished = MailingCounts.objects.filter(mailing__state=MailingState.FINISHED, sent__gt=0)
    assert finished and all(c.delivered > 0 and c.delivered + c.undelivered <= c.sent for c in finished)
    rates = {}
    for o in OperatorCounts.objects.filter(delivered__gt=0):
        done = rates.setdefault(o.operator_code, [0, 0])
        done[0], done[1] = done[0] + o.delivered, done[1] + o.accepted
    worst = min(rates, key=lambda code: rates[code][0] / rates[code][1])
    assert worst == "950"
    for counts in finished:
        assert MailingCounts.reconcile(counts.mailing_id, repair=False) is None
