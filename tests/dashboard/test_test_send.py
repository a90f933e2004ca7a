""" "Send a test" on the mailing form and on a mailing's page: queued by the page, sent by a sender
through the gateway stand-in, the answer shown where the button was; refusals say why."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from engine import testsends
from mailer.models import GatewayState, TestSend, TestSendState
from tests.dashboard.conftest import HTMX
from tests.engine.conftest import make_deliverer, provider  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def test_from_the_form_before_saving(manager_client, manager, make_deliverer, provider):  # noqa: F811
    form = manager_client.get("/mailings/new/").content.decode()
    assert 'id="send-test" formaction="/mailings/test-send/"' in form
    response = manager_client.post(
        "/mailings/test-send/", {"text": "Autumn sale\r\n-20%", "test_phones": "+7 916 123-45-67"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="test-send-state">Waiting for a sender<' in html
    test = TestSend.objects.get()
    assert (test.text, test.phones, test.created_by, test.mailing) == (
        "Autumn sale\n-20%",
        ["79161234567"],
        manager,
        None,
    )
    assert f'hx-get="/mailings/test-sends/{test.pk}/" hx-trigger="every 1s"' in html
    deliverer = make_deliverer()
    testsends.run_due(deliverer)  # a sender's next loops: sent, then its answers recorded
    testsends.collect(deliverer, wait=5)
    polled = manager_client.get(f"/mailings/test-sends/{test.pk}/", **HTMX)
    assert polled.status_code == 286  # done: htmx stops polling
    html = polled.content.decode()
    assert 'id="test-send-state">Sent to the gateway<' in html
    assert "79161234567: <span" in html and "accepted by the gateway" in html
    assert provider.record.accepted[test.gateway_id(0)] == 1


def test_from_a_mailing_s_page_with_its_text(manager_client, make_mailing, make_deliverer, provider):  # noqa: F811
    mailing = make_mailing(text="Spring sale")
    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert f'action="/mailings/{mailing.pk}/test-send/"' in page
    # Without JavaScript: a plain POST, then the test send's own page.
    response = manager_client.post(f"/mailings/{mailing.pk}/test-send/", {"test_phones": "79261234567"})
    test = TestSend.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/mailings/test-sends/{test.pk}/"
    assert test.text == "Spring sale" and test.mailing == mailing
    deliverer = make_deliverer(token="wrong")
    testsends.run_due(deliverer)
    testsends.collect(deliverer, wait=5)
    own_page = manager_client.get(response["Location"]).content.decode()
    assert "not accepted" in own_page and "auth: HTTP 401: token refused" in own_page
    # Recorded on the mailing's page: when, who, to whom, the outcome.
    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert 'id="test-sends"' in page and "79261234567" in page and "manager" in page


def test_refusals_say_why(manager_client):
    html = manager_client.post("/mailings/test-send/", {"text": "Hi", "test_phones": "12345"}, **HTMX)
    assert "12345: Phone must be 11 digits" in html.content.decode()
    GatewayState.objects.update_or_create(
        pk=1, defaults={"breaker_open_until": timezone.now() + timedelta(seconds=60)}
    )
    html = manager_client.post("/mailings/test-send/", {"text": "Hi", "test_phones": "79161234567"}, **HTMX)
    assert "Not sent: the gateway failed again and again: sending is paused until" in html.content.decode()
    plain = manager_client.post("/mailings/test-send/", {"text": "", "test_phones": "79161234567"})
    assert plain.status_code == 302 and plain["Location"] == "/mailings/new/"
    assert not TestSend.objects.exists()


def test_a_queued_test_nobody_takes_says_so(manager_client, manager):
    test = TestSend.objects.create(
        text="x",
        phones=["79161234567"],
        created_by=manager,
        created_at=timezone.now() - timedelta(seconds=30),
    )
    html = manager_client.get(f"/mailings/test-sends/{test.pk}/", **HTMX).content.decode()
    assert "is the worker running?" in html and test.state == TestSendState.QUEUED


def test_viewers_may_not_send_tests(viewer_client, make_mailing):
    mailing = make_mailing()
    assert (
        viewer_client.post("/mailings/test-send/", {"text": "x", "test_phones": "79161234567"}).status_code
        == 403
    )
    assert 'id="test-send-box"' not in viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()


def test_a_viewer_sees_no_test_sends_on_a_mailing_s_page(viewer_client, manager, make_mailing):
    mailing = make_mailing(text="Spring sale")
    test = TestSend.objects.create(text="x", phones=["79161234567"], created_by=manager, mailing=mailing)

    page = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()

    assert 'id="test-sends"' not in page and "79161234567" not in page
    assert viewer_client.get(f"/mailings/test-sends/{test.pk}/").status_code == 403
