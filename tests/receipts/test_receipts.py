"""Delivery receipts: POST /api/v1/gateway/receipts/ takes them (all or none, safe to repeat and
to reorder), a sender applies them, and the counts follow: per mailing, per operator, per reason."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client as Browser

from mailer import receipts
from mailer.models import (
    AuditEntry,
    Client,
    DeliveryMinute,
    DeliveryReason,
    Mailing,
    MailingCounts,
    Message,
    MessageStatus,
    OperatorCounts,
    SpooledReceipt,
)
from tests.conftest import user_with_role
from tests.receipts.conftest import AUTH, TOKEN

URL = "/api/v1/gateway/receipts/"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def post(body, **headers) -> tuple[int, dict]:
    response = Browser().post(URL, json.dumps(body), content_type="application/json", **(headers or AUTH))
    return response.status_code, response.json()


def receipt(message_id: int, status: str = "delivered", at: datetime = T0, **more) -> dict:
    return {"id": message_id, "status": status, "at": at.isoformat(), **more}


def counts(mailing) -> tuple[int, int]:
    row = MailingCounts.objects.get(mailing=mailing)
    return row.delivered, row.undelivered


@pytest.mark.django_db
def test_the_door_is_shut_without_the_token_and_asks_for_it(settings):
    settings.MAILER_RECEIPT_TOKEN = ""
    assert post([receipt(1)])[0] == 404
    settings.MAILER_RECEIPT_TOKEN = TOKEN
    for headers in ({"HTTP_X": "y"}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": TOKEN}):
        response = Browser().post(URL, "[]", content_type="application/json", **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_receipt_is_kept_on_its_message_and_counted(sent):
    mailing, ids = sent()
    status, body = post(
        [
            receipt(ids["79000000001"]),
            receipt(ids["79120000001"], "undelivered", error="absent subscriber"),
            receipt(ids["79120000002"], "rejected", error="sender name not registered"),
        ]
    )
    assert (status, body) == (200, {"received": 3, "unknown": 0, "unknown_ids": []})
    message = Message.objects.get(pk=ids["79120000001"])
    assert (message.status, message.delivery_status, message.delivered_at, message.delivery_error) == (
        MessageStatus.SENT,  # still "accepted by the gateway"
        "undelivered",
        T0,
        "absent subscriber",
    )
    assert counts(mailing) == (1, 2)
    split = {o.operator_code: (o.accepted, o.delivered, o.undelivered) for o in OperatorCounts.objects.all()}
    assert split == {"900": (2, 1, 0), "912": (2, 0, 2)}
    assert sorted(DeliveryReason.objects.values_list("status", "error", "messages")) == [
        ("rejected", "sender name not registered", 1),
        ("undelivered", "absent subscriber", 1),
    ]
    assert list(DeliveryMinute.objects.values_list("minute", "delivered")) == [(T0, 1)]


@pytest.mark.django_db
def test_repeated_and_out_of_order_receipts_keep_the_latest(sent):
    mailing, ids = sent()
    first = ids["79000000001"]
    post([receipt(first, "delivered", T0 + timedelta(minutes=5))])
    post([receipt(first, "undelivered", T0)])  # older: changes nothing
    post([receipt(first, "delivered", T0 + timedelta(minutes=5))])  # a repeat: nothing
    assert counts(mailing) == (1, 0)
    # A later one replaces it, and the counts move with it.
    post([receipt(first, "expired", T0 + timedelta(hours=1))])
    assert counts(mailing) == (0, 1)
    assert Message.objects.get(pk=first).delivery_status == "expired"
    assert DeliveryMinute.objects.get().delivered == 0
    assert OperatorCounts.objects.get(operator_code="900").undelivered == 1
    # In one batch too: the latest of a message's receipts wins, whatever their order.
    second = ids["79000000002"]
    post([receipt(second, "delivered", T0 + timedelta(minutes=2)), receipt(second, "undelivered", T0)])
    assert Message.objects.get(pk=second).delivery_status == "delivered"
    assert counts(mailing) == (1, 1)


@pytest.mark.django_db
def test_unknown_ids_are_counted_and_the_rest_taken(sent, caplog):
    mailing, ids = sent()
    status, body = post([receipt(ids["79000000001"]), receipt(999_999_999), receipt(999_999_998)])
    assert (status, body) == (200, {"received": 3, "unknown": 2, "unknown_ids": [999_999_998, 999_999_999]})
    assert counts(mailing) == (1, 0)
    assert "2 receipts for messages we don't know" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad, field",
    [
        ({"status": "sent"}, "status"),
        ({"id": "x"}, "id"),
        ({"id": 0}, "id"),
        ({"at": "yesterday"}, "at"),
        ({"at": "2026-12-01T09:00:00"}, "at"),  # no offset
        ({"at": "2999-01-01T00:00:00Z"}, "at"),  # the future
        ({"at": "2024-01-01T12:99:00Z"}, "at"),  # no such minute
        ({"at": "0001-01-01T00:00:00+01:00"}, "at"),  # more than a year ago
        ({"error": ["a", "list"]}, "error"),
    ],
)
def test_a_bad_item_is_named_by_index_and_nothing_of_the_batch_is_written(sent, settings, bad, field):
    settings.MAILER_RECEIPT_SPOOL = "database"
    mailing, ids = sent()
    batch = [receipt(ids["79000000001"]), receipt(ids["79000000002"]) | bad]
    status, body = post(batch)
    assert status == 400
    assert list(body["items"]) == ["1"] and field in body["items"]["1"], body
    assert "Nothing of this batch was written" in body["detail"]
    assert not SpooledReceipt.objects.exists()
    assert counts(mailing) == (0, 0)


@pytest.mark.django_db
def test_a_single_receipt_empty_and_oversized_batches(sent):
    mailing, ids = sent()
    assert post(receipt(ids["79000000001"]))[0] == 200  # one, not in a list
    assert counts(mailing) == (1, 0)
    assert post({"id": 1, "status": "lost", "at": T0.isoformat()}) == (
        400,
        {"status": ["One of: delivered, undelivered, expired, rejected."]},
    )
    assert post([])[0] == 400
    status, body = post([receipt(ids["79000000001"])] * (receipts.MAX_BATCH + 1))
    assert status == 400 and "1000" in body["detail"]
    assert Browser().post(URL, "{", content_type="application/json", **AUTH).status_code == 400
    # A long error is kept cut, not refused; what no database stores (NUL, a lone surrogate) is a 400.
    post([receipt(ids["79000000002"], "undelivered", error="x" * 5000)])
    assert len(Message.objects.get(pk=ids["79000000002"]).delivery_error) == receipts.ERROR_MAX
    for bad in ("off\x00line", "lone \udb28"):
        status, body = post([receipt(ids["79120000001"], "undelivered", error=bad)])
        assert status == 400 and "error" in body["items"]["0"]


@pytest.mark.django_db
@pytest.mark.parametrize("spool", ["database", "directory"])
def test_a_spooled_receipt_is_applied_by_a_sender_once(sent, settings, tmp_path, spool):
    settings.MAILER_RECEIPT_SPOOL = "database" if spool == "database" else str(tmp_path / "receipts")
    mailing, ids = sent()
    batch = [receipt(ids["79000000001"]), receipt(ids["79120000001"], "undelivered")]
    assert post(batch)[0] == 200
    assert post(batch)[0] == 200  # the gateway sent it twice
    assert counts(mailing) == (0, 0)  # not yet: a sender applies them
    later = datetime.now().timestamp() + 10
    receipts.fold(now=later)  # sets the files aside...
    receipts.fold(now=later)  # ...and applies them
    assert counts(mailing) == (1, 1)
    assert not SpooledReceipt.objects.exists()
    assert not list(tmp_path.glob("receipts/*"))


@pytest.mark.django_db
def test_a_receipt_before_its_message_is_written_down_waits_for_it(
    make_client, now, settings, receipts_on, make_mailing
):
    settings.MAILER_RECEIPT_SPOOL = "database"
    make_client(phone="79000000001")
    mailing = make_mailing()
    from engine.scheduling import resolve_audience

    resolve_audience(mailing, now)
    message = mailing.messages.get()  # pending: the gateway's answer is not written down yet
    assert post([receipt(message.pk, at=now)])[0] == 200
    receipts.fold()
    assert SpooledReceipt.objects.count() == 1  # it waits
    message.status, message.sent_at = MessageStatus.SENT, now
    message.save()
    receipts.fold()
    assert not SpooledReceipt.objects.exists()
    assert counts(mailing) == (1, 0)


@pytest.mark.django_db
def test_a_number_that_stops_answering_is_left_out_of_later_audiences(sent, settings, make_mailing, now):
    settings.MAILER_UNDELIVERED_LIMIT = 3
    silent = Client.objects.none()
    for n in range(3):
        mailing, ids = sent(f"Offer {n}")
        post(
            [
                receipt(ids["79000000001"], "undelivered"),
                receipt(ids["79000000002"], "delivered" if n else "expired"),
            ]
        )
        post([receipt(ids["79120000001"], "rejected")])  # the operator's refusal: not the number's
        silent = Client.objects.filter(undeliverable_at__isnull=False)
        assert silent.exists() == (n == 2)
    assert list(silent.values_list("phone", flat=True)) == ["79000000001"]
    entry = AuditEntry.objects.get(action="undeliverable")
    assert (entry.object_id, entry.via) == (str(silent.get().pk), "engine")
    # The next mailing leaves them out, and its preview says how many.
    mailing = make_mailing()
    assert "79000000001" not in mailing.matching_clients().values_list("phone", flat=True)
    assert mailing.audience_counts()["undeliverable"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_stand_in_posts_receipts_through_the_real_web_server(
    make_client, live_server, settings, now, django_user_model
):
    """The whole loop over HTTP: the engine sends to the stand-in, which posts a receipt for each
    message to the web (operator 912 failing), which takes them; the counts follow."""
    from accounts.models import hash_token
    from engine.delivery import Deliverer
    from engine.sending import Gateway
    from standin.gateway import Behaviour, FakeProvider
    from tests.engine.conftest import TOKEN as GATEWAY_TOKEN
    from tests.engine.conftest import config, drain

    settings.MAILER_RECEIPT_TOKEN = TOKEN
    behaviour = Behaviour(
        token=GATEWAY_TOKEN,
        receipts_url=f"{live_server.url}{URL}",
        receipts_token=TOKEN,
        receipts_delay=0.1,
        undelivered={"912": 1.0},
        seed=3,
    )
    fake = FakeProvider(behaviour).start_in_thread()
    try:
        for n in range(6):
            make_client(phone=f"7{'900' if n % 2 else '912'}000000{n}")
        mailing = Mailing.objects.create(text="Hello", start_at=now, end_at=now + timedelta(hours=1))
        conf = config()
        deliverer = Deliverer("w1", conf, Gateway(fake.url, GATEWAY_TOKEN, conf.concurrency))
        deliverer.token_hash = hash_token(GATEWAY_TOKEN)
        try:
            drain(deliverer, now)
        finally:
            deliverer.close()
        deadline = time.monotonic() + 15
        while sum(fake.record.receipts.values()) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fake.record.receipts == {"delivered": 3, "undelivered": 3}
        assert fake.record.receipt_failures == 0
        assert counts(mailing) == (3, 3)
        split = {
            o.operator_code: (o.accepted, o.delivered, o.undelivered) for o in OperatorCounts.objects.all()
        }
        assert split == {"900": (3, 3, 0), "912": (3, 0, 3)}
        viewer = Browser()
        viewer.force_login(user_with_role(django_user_model, "viewer"))
        stats_ = viewer.get(f"/api/v1/mailings/{mailing.pk}/stats/").json()
        assert (
            stats_["delivered"],
            stats_["undelivered"],
            stats_["no_receipt"],
            stats_["delivery_rate"],
        ) == (
            3,
            3,
            0,
            50.0,
        )
        assert stats_["operators"][0] == {
            "operator_code": "912",
            "accepted": 3,
            "delivered": 0,
            "undelivered": 3,
            "no_receipt": 0,
            "delivery_rate": 0.0,
        }
        assert stats_["undelivered_reasons"] == [
            {"status": "undelivered", "error": "absent subscriber", "messages": 3}
        ]
    finally:
        fake.stop()


def wsgi_post(body: bytes, token: str = TOKEN) -> tuple[str, dict, bytes]:
    """POST `body` to the receipts address through the WSGI application gunicorn serves."""
    import io

    from mailer import wsgi

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": URL,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REMOTE_ADDR": "127.0.0.1",
    }
    answer: list = []
    out = b"".join(wsgi.application(environ, lambda status, headers: answer.extend([status, dict(headers)])))
    return answer[0], answer[1], out


@pytest.mark.django_db(transaction=True)
def test_good_receipts_are_taken_before_django_and_the_rest_answered_by_the_view(sent):
    """The fast path (receipts.first) answers a 200 itself: no request id, as Django's middleware
    gives every request it sees; anything else gets Django's answer, the same words."""
    mailing, ids = sent()
    good = json.dumps([receipt(ids["79000000001"]), receipt(ids["79120000001"], "expired")]).encode()
    status, headers, out = wsgi_post(good)
    assert (status, json.loads(out)) == ("200 OK", {"received": 2, "unknown": 0, "unknown_ids": []})
    assert "X-Request-ID" not in headers
    assert counts(mailing) == (1, 1)
    bad = json.dumps([receipt(ids["79000000002"]), receipt(ids["79000000002"]) | {"status": "sent"}]).encode()
    status, headers, out = wsgi_post(bad)
    assert status.startswith("400") and "X-Request-ID" in headers
    assert json.loads(out)["items"] == {
        "1": {"status": ["One of: delivered, undelivered, expired, rejected."]}
    }
    assert wsgi_post(good, token="wrong")[0].startswith("401")
    assert wsgi_post(b"{nope")[0].startswith("400")
    assert wsgi_post(b"[" * 100_000 + b"]" * 100_000)[0].startswith("400")  # too deep for json
    assert counts(mailing) == (1, 1)
