"""The new-mailing form: a start and an end shown and editable, "Send now", and a window whose
empty fields look empty."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from mailer.models import Mailing

RU = {"HTTP_ACCEPT_LANGUAGE": "ru"}


def test_a_new_mailing_shows_a_start_and_an_end_a_day_later(manager_client):
    form = manager_client.get("/mailings/new/").context["form"]
    start, end = form.initial["start_at"], form.initial["end_at"]
    assert timedelta(0) < start - timezone.now() <= timedelta(minutes=10)
    assert end - start == timedelta(days=1)
    html = manager_client.get("/mailings/new/", **RU).content.decode()
    assert "Отправить сейчас" in html
    # The window's fields hold no pale 09:00 that reads as a value.
    assert 'placeholder="09:00"' not in html and 'placeholder="21:00"' not in html


def test_send_now_starts_at_the_moment_of_saving(manager_client):
    before = timezone.now().replace(microsecond=0)
    end = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    response = manager_client.post(
        "/mailings/new/", {"text": "Скидка", "start_at": "", "start_now": "on", "end_at": end}
    )
    assert response.status_code == 302
    mailing = Mailing.objects.get()
    assert before <= mailing.start_at <= timezone.now()


def test_no_start_and_no_send_now_is_the_form_s_error(manager_client):
    end = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    response = manager_client.post("/mailings/new/", {"text": "Скидка", "start_at": "", "end_at": end}, **RU)
    assert response.status_code == 200 and not Mailing.objects.exists()
    assert "Укажите начало или отметьте «Отправить сейчас»." in response.content.decode()
