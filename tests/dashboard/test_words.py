"""Words that mean what they say: a message's status is what the gateway did with it, a waiting
message says what it waits for and until when, and the gateway's own words are marked as its."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import translation

from dashboard.tables import waiting_why
from mailer.models import ENDED_WHY, MailingState, Message, MessageStatus, reason_text

RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}
# 02:00 in Kamchatka (UTC+12)
NIGHT = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


@pytest.fixture
def waiting(make_client, make_mailing):
    def make(state=MailingState.RUNNING, attempts=0, next_attempt_at=NIGHT, **mailing) -> Message:
        mailing.setdefault("start_at", NIGHT - timedelta(hours=1))
        mailing.setdefault("end_at", NIGHT + timedelta(days=1))
        m = make_mailing(state=state, **mailing)
        client = make_client(timezone="Asia/Kamchatka")
        return Message.objects.create(
            mailing=m, client=client, attempts=attempts, next_attempt_at=next_attempt_at
        )

    return make


def test_a_waiting_message_says_what_for_and_until_when(waiting):
    with translation.override("en"):
        window = waiting(window_start=time(9), window_end=time(21))
        assert waiting_why(window, NIGHT) == "until 09:00 client's time, in 7\xa0hours"
        retry = waiting(attempts=2, next_attempt_at=NIGHT + timedelta(minutes=5))
        assert waiting_why(retry, NIGHT).endswith("in 5\xa0minutes")
        assert waiting_why(retry, NIGHT).startswith("retry at ")
        assert waiting_why(waiting(), NIGHT) == "its turn in the queue"
        assert waiting_why(waiting(state=MailingState.PAUSED), NIGHT) == "the mailing is paused"
        later = waiting(state=MailingState.SCHEDULED, start_at=NIGHT + timedelta(hours=3))
        assert waiting_why(later, NIGHT).startswith("until the mailing starts, ")
    with translation.override("ru"):
        assert waiting_why(window, NIGHT) == "ждёт 09:00 по времени клиента, через 7\xa0часов"


def test_a_retry_inside_the_window_is_a_retry(waiting):
    """A message that failed at 10:00 client's time and retries a minute later waits for the retry,
    not for a window that is open."""
    day = NIGHT + timedelta(hours=8)  # 10:00 in Kamchatka
    msg = waiting(
        attempts=1, next_attempt_at=day + timedelta(minutes=2), window_start=time(9), window_end=time(21)
    )
    with translation.override("en"):
        assert waiting_why(msg, day).startswith("retry at ")


def test_the_mailing_page_names_statuses_for_what_they_are(manager_client, waiting, make_mailing):
    msg = waiting(window_start=time(9), window_end=time(21))
    Message.objects.filter(pk=msg.pk).update(
        status=MessageStatus.FAILED, last_error="HTTP 400: invalid phone"
    )
    html = manager_client.get(f"/mailings/{msg.mailing_id}/", **RU).content.decode()
    assert "Не принято" in html and "Шлюз: HTTP 400: invalid phone" in html
    # "Delivered" is what a receipt says (its filter offers it), never what the gateway's answer was.
    rows = html.split("<tbody")[1].split("</tbody>")[0]
    assert "Доставлено" not in rows and "Не доставлено" not in rows


def test_reasons_are_in_the_reader_s_language():
    with translation.override("ru"):
        assert reason_text(ENDED_WHY) == "рассылка закончилась раньше, чем сообщение удалось отправить"
        assert reason_text("HTTP 500") == "Шлюз: HTTP 500"
        assert reason_text("") == ""


def test_the_audit_log_shows_dates_times_and_zones_as_people_write_them():
    from django.utils import timezone

    from mailer.audit import changes_text

    changes = {
        "start_at": ["2026-12-04T14:30:00+00:00", "2026-12-05T06:00:00+00:00"],
        "window_start": [None, "10:00:00"],
        "timezone": ["UTC", "Asia/Yekaterinburg"],
    }
    with translation.override("ru"), timezone.override("Europe/Moscow"):
        text = changes_text(changes)
    assert "04.12.2026 17:30 → 05.12.2026 09:00" in text
    assert "– → 10:00" in text and "10:00:00" not in text
    assert "Екатеринбург (UTC+5)" in text


def test_error_pages_speak_the_reader_s_language(client, manager_client):
    page = manager_client.get("/no/such/page/", **RU)
    assert page.status_code == 404 and "Страница не найдена" in page.content.decode()
    from django.test import RequestFactory

    from mailer.api.errors import server_error

    with translation.override("ru"):
        failed = server_error(RequestFactory().get("/mailings/"))
    assert failed.status_code == 500 and "Что-то пошло не так" in failed.content.decode()
    assert client.get("/favicon.ico").status_code == 301


def test_a_test_send_s_answers_are_in_the_reader_s_language(manager_client, manager):
    from mailer.models import TestSend, TestSendState

    test = TestSend.objects.create(
        text="Привет",
        phones=["79161234567", "79261234567", "79031234567"],
        created_by=manager,
        state=TestSendState.DONE,
        results=[
            {"phone": "79161234567", "ok": True, "answer": "", "seconds": 0.01},
            {"phone": "79261234567", "ok": False, "answer": "HTTP 400: invalid phone", "seconds": 0.02},
            {"phone": "79031234567", "ok": False, "answer": "", "why": "номер в стоп-листе"},
        ],
    )
    html = manager_client.get(f"/mailings/test-sends/{test.pk}/", **RU).content.decode()
    assert 'принято шлюзом</span> <span class="text-body-secondary">за 0,01 с' in html
    assert "(Шлюз: HTTP 400: invalid phone)" in html
    assert 'не отправлено</span> <span class="text-body-secondary">(номер в стоп-листе)' in html
    assert "HTTP 200" not in html


def test_numbers_have_one_format_on_every_page(manager_client, make_mailing):
    from mailer.models import MailingCounts

    mailing = make_mailing(text="Скидка")
    MailingCounts.objects.update_or_create(mailing=mailing, defaults={"sent": 1420, "failed": 3592})
    for url in ("/statistics/", "/statistics/totals/", f"/mailings/{mailing.pk}/"):
        html = manager_client.get(url, **RU).content.decode()
        assert ">1420<" not in html and " 1420 " not in html and "5012" not in html, url
        assert "1\xa0420" in html or "5\xa0012" in html, url


def test_the_clients_page_says_how_many_match(manager_client, make_client):
    for tag in ("vip", "vip", "new"):
        make_client(tag=tag)
    assert "Под фильтры подходят 3 клиента." in manager_client.get("/clients/", **RU).content.decode()
    html = manager_client.get("/clients/?tag=vip", **RU).content.decode()
    assert "Под фильтры подходят 2 клиента." in html


def test_the_audience_box_says_which_tags_and_operators_are_chosen(manager_client, make_client):
    make_client(tag="vip")
    html = manager_client.get("/mailings/audience/", {"text": "x"}, **RU).content.decode()
    assert "Метки: все (ничего не отмечено) · Операторы: все (ничего не отмечено)" in html
    html = manager_client.get(
        "/mailings/audience/", {"text": "x", "filter_tags": "vip"}, **RU
    ).content.decode()
    assert "Метки: vip · Операторы: все" in html
