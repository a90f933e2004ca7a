"""A link of their own, and clicks: every address of a text is sent as MAILER_LINK_BASE/<code>,
one random code per message and address; GET /l/<code> counts the click (once per client among
the clickers) and redirects to the address the text had; nothing else is kept."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from wsgiref.util import setup_testing_defaults

import psycopg
import pytest
import requests
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from mailer import links, public, reports, sms, spool, wsgi
from mailer.models import (
    Clicker,
    ClickMinute,
    FoldedSpool,
    Link,
    Mailing,
    MailingCounts,
    Message,
    MessageStatus,
    PersonalText,
    SpooledClick,
)
from tests.engine.conftest import drain

TEXT = "Распродажа: https://shop.example/sale?utm=sms. Каталог — http://shop.example/c/зима!"
SHORT = re.compile(r"http://testserver/l/([0-9A-Za-z]{10})")


def test_an_address_ends_before_the_sentence_s_punctuation():
    text = "См. https://a.example/x?y=1. И (http://b.example/p), «https://c.example»! http://d.example/ok"
    assert [text[a:b] for a, b in links.addresses(text)] == [
        "https://a.example/x?y=1",
        "http://b.example/p",
        "https://c.example",
        "http://d.example/ok",
    ]


def test_the_length_counts_the_short_link(now, settings, db):
    settings.MAILER_LINK_BASE = "https://s.example/l"
    long = "https://shop.example/" + "a" * 150
    mailing = Mailing.objects.create(text=f"Sale {long}", start_at=now, end_at=now + timedelta(hours=1))
    assert mailing.sms_parts == 1  # "Sale https://s.example/l/xxxxxxxxxx", not 171 characters
    mailing.track_links = False
    mailing.save()
    assert mailing.sms_parts == sms.measure(mailing.text).parts == 2


@pytest.fixture
def sent(make_client, make_deliverer, provider, now, settings):
    settings.MAILER_LINK_BASE = "http://testserver/l"
    clients = [make_client(name=n) for n in ("Анна", "Пётр", "Ян")]
    mailing = Mailing.objects.create(text=TEXT, start_at=now, end_at=now + timedelta(hours=1))
    drain(make_deliverer(), now)
    return mailing, clients, provider


@pytest.mark.django_db
def test_each_message_carries_codes_of_its_own(sent):
    mailing, clients, provider = sent
    assert len(provider.record.texts) == 3
    codes = set()
    for message_id, text in provider.record.texts.items():
        found = SHORT.findall(text)
        assert len(found) == 2 and text == SHORT.sub("{}", text).format(
            *(f"http://testserver/l/{c}" for c in found)
        )
        assert text.startswith("Распродажа: http://testserver/l/") and text.endswith("!")
        codes |= set(found)
        assert PersonalText.objects.get(message_id=message_id).text == text  # the exact record
        mine = Link.objects.filter(message_id=message_id).order_by("position")
        assert [(link.code, link.url) for link in mine] == list(
            zip(found, ["https://shop.example/sale?utm=sms", "http://shop.example/c/зима"], strict=True)
        )
    assert len(codes) == 6  # random, one per message and address
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3


@pytest.mark.django_db
def test_a_click_redirects_counts_once_per_client_and_sets_no_cookie(sent, client, manager_client):
    mailing, clients, _provider = sent
    anna = Link.objects.filter(client_id=clients[0].pk).order_by("position")
    first, second = anna
    response = client.get(f"/l/{first.code}")
    assert response.status_code == 302 and response["Location"] == "https://shop.example/sale?utm=sms"
    assert not response.cookies and response["Cache-Control"] == "no-store"
    client.get(f"/l/{second.code}")
    client.get(f"/l/{first.code}")
    other = Link.objects.filter(client_id=clients[1].pk).first()
    client.get(f"/l/{other.code}")
    assert client.head(f"/l/{other.code}").status_code == 302  # a link checker's HEAD: not a click

    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (4, 2)
    person = Clicker.objects.get(mailing=mailing, phone=clients[0].phone)
    assert person.clicks == 3 and person.first_at <= person.last_at
    assert sum(ClickMinute.objects.filter(mailing=mailing).values_list("clicks", flat=True)) == 4
    page = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert "4 clicks, clients who clicked: 2 · 66.7 % of those it was sent to" in page
    assert 'id="clicks-chart"' in page and f"/mailings/{mailing.pk}/clickers.csv" in page
    rows = b"".join(manager_client.get(f"/mailings/{mailing.pk}/clickers.csv").streaming_content).decode(
        "utf-8-sig"
    )
    assert rows.splitlines()[0] == "Phone,First click,Last click,Clicks" and f"{clients[0].phone}," in rows
    statistics = manager_client.get("/statistics/").content.decode()
    assert "Click rate, %" in statistics and "66.7 %" in statistics
    report = reports.build(timezone.now() - timedelta(days=1), timezone.now() + timedelta(days=1))
    assert "clicks 4, clients who clicked 2, click rate 66.7 %" in report.text
    header, row = report.csv.splitlines()[:2]
    assert header.endswith(
        'Clicks,Clients who clicked,Unsubscribed,"Click rate, %",Delivered,Not delivered,No receipt yet,"Delivered, %"'
    )
    assert row.endswith(",4,2,0,66.7,0,0,3,")  # no receipts yet: no delivery rate
    assert "<td>66.7</td><td>0</td><td>0</td><td>0</td><td>3</td><td>–</td></tr>" in report.html


def wsgi_get(path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    """`path` through the WSGI application gunicorn serves (mailer/wsgi.py): status, headers, body."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_ACCEPT_LANGUAGE": "ru"}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))

    body = wsgi.application(environ, start_response)
    try:
        content = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return answer["status"], answer["headers"], content


@pytest.mark.django_db(transaction=True)  # as it runs: no test's transaction around it
def test_a_click_is_answered_before_django_makes_a_request_as_the_view_answers(sent, rf):
    mailing, clients, _provider = sent
    code = Link.objects.filter(client_id=clients[0].pk, position=1).first().code
    before = REGISTRY.get_sample_value("mailer_http_request_seconds_count", {"view": "link"}) or 0
    status, headers, body = wsgi_get(f"/l/{code}")
    view = public.link(rf.get(f"/l/{code}"), code)
    assert (status, body, view.status_code) == ("302 Found", b"", 302)
    assert headers["Location"] == view["Location"] == "http://shop.example/c/%D0%B7%D0%B8%D0%BC%D0%B0"
    for header in ("Cache-Control", "Referrer-Policy"):
        assert headers[header] == view[header], header
    assert "Set-Cookie" not in headers and "Content-Security-Policy" not in headers  # no middleware
    assert REGISTRY.get_sample_value("mailer_http_request_seconds_count", {"view": "link"}) == before + 1
    assert MailingCounts.objects.get(mailing=mailing).clicks == 2  # the WSGI's and the view's
    # Anything else is Django's: a HEAD (not counted), an unknown code and its page in Russian.
    assert wsgi_get(f"/l/{code}", method="HEAD")[0] == "302 Found"
    status, headers, body = wsgi_get("/l/NoSuchCode1")
    assert status.startswith("404") and "Ссылка не найдена" in body.decode()
    assert MailingCounts.objects.get(mailing=mailing).clicks == 2


@pytest.mark.django_db(transaction=True)  # as it runs: no test's transaction around it
def test_a_click_whose_statement_failed_goes_to_the_view_which_tries_once_more(sent, monkeypatch):
    mailing, clients, _provider = sent
    code = Link.objects.filter(client_id=clients[0].pk).first().code
    follow, failed = links.follow, []

    def fails_once(code: str) -> str | None:
        if not failed:
            failed.append(code)
            raise OperationalError("the database went away")
        return follow(code)

    monkeypatch.setattr(links, "follow", fails_once)
    assert wsgi_get(f"/l/{code}")[0] == "302 Found" and failed == [code]
    assert MailingCounts.objects.get(mailing=mailing).clicks == 1


@pytest.mark.django_db
def test_an_unknown_code_is_a_plain_404_in_the_reader_s_language(client):
    for code in ("NoSuchCode1", "short", "../../etc", "a" * 40):
        response = client.get(f"/l/{code}", HTTP_ACCEPT_LANGUAGE="ru")
        assert response.status_code == 404 and not response.cookies, code
    assert "Ссылка не найдена" in response.content.decode()
    assert "Link not found" in client.get("/l/NoSuchCode1", HTTP_ACCEPT_LANGUAGE="en").content.decode()


@pytest.mark.django_db
def test_links_keep_working_after_retention_deleted_the_messages(sent, client, now):
    mailing, _clients, _provider = sent
    code = Link.objects.filter(mailing=mailing).first().code
    Mailing.objects.filter(pk=mailing.pk).update(state="finished", finished_at=now - timedelta(days=40))
    MailingCounts.purge_old_messages(days=30)
    assert not Message.objects.filter(mailing=mailing).exists()
    assert client.get(f"/l/{code}").status_code == 302
    assert MailingCounts.objects.get(mailing=mailing).clicks == 1


def test_a_retry_gets_the_codes_of_the_first_attempt(make_client, make_mailing):
    client = make_client()
    mailing = make_mailing(text="x")
    message = Message.objects.create(mailing=mailing, client=client)
    wanted = {
        message.pk: (mailing.pk, client.pk, client.phone, ["https://a.example", "https://b.example"], True)
    }
    first = links.assign(wanted)
    assert links.assign(wanted) == first
    assert len({*first[message.pk]["links"], first[message.pk]["unsubscribe"]}) == 3


@pytest.mark.django_db
def test_track_links_off_sends_the_text_as_written(make_client, make_deliverer, provider, now):
    make_client()
    Mailing.objects.create(text=TEXT, track_links=False, start_at=now, end_at=now + timedelta(hours=1))
    drain(make_deliverer(), now)
    assert list(provider.record.texts.values()) == [TEXT]
    assert not Link.objects.exists() and not PersonalText.objects.exists()


@pytest.mark.django_db
def test_the_spool_counts_each_click_once_even_if_a_sender_dies(sent, client, settings, tmp_path):
    mailing, clients, _provider = sent
    settings.MAILER_CLICK_SPOOL = str(tmp_path)
    code = Link.objects.filter(client_id=clients[0].pk).first().code
    assert client.get(f"/l/{code}").status_code == 302
    client.get(f"/l/{code}")
    assert MailingCounts.objects.get(mailing=mailing).clicks == 0  # in the spool, not counted yet
    assert links.fold() == 0  # set aside
    [ready] = tmp_path.glob("*.ready")
    copy = ready.read_bytes()
    assert links.fold() == 0  # not settled yet
    assert links.fold(now=time.time() + 2) == 2
    assert not list(tmp_path.iterdir())
    # A sender that died after counting, before deleting: the file comes back, is not counted again.
    ready.write_bytes(copy)
    assert links.fold(now=time.time() + 2) == 0 and not ready.exists()
    assert FoldedSpool.objects.filter(name=ready.name).exists()
    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (2, 1)


@pytest.mark.django_db
def test_a_spool_file_the_other_sender_counted_meanwhile_is_passed_over(settings, tmp_path, monkeypatch):
    settings.MAILER_CLICK_SPOOL = str(tmp_path)
    (tmp_path / "host-1.123.ready").write_text("")
    read = links._read

    def counted_meanwhile(path):
        path.unlink()
        return read(path)

    monkeypatch.setattr(links, "_read", counted_meanwhile)
    assert links.fold(now=time.time() + 2) == 0  # no FileNotFoundError: the sender's round goes on


@pytest.mark.django_db(transaction=True)  # two connections, each its own transaction
def test_two_senders_counting_the_same_clickers_at_once_count_each_once(sent):
    """The second waits for the first's new clickers and adds its clicks to them."""
    mailing, clients, _provider = sent
    anna, peter, jan = (Link.objects.filter(client_id=c.pk).first().code for c in clients)
    now = timezone.now()
    second_started = threading.Event()

    def second() -> None:
        second_started.set()
        try:
            links.count([(peter, now), (jan, now + timedelta(seconds=1))])
        finally:
            connection.close()

    thread = threading.Thread(target=second)
    with transaction.atomic():
        links.count([(anna, now), (peter, now - timedelta(minutes=1))])
        thread.start()
        second_started.wait(5)
        time.sleep(0.5)  # the second's insert of Пётр waits for this transaction
    thread.join(30)
    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (4, 3)
    peter_row = Clicker.objects.get(mailing=mailing, phone=clients[1].phone)
    assert (peter_row.clicks, peter_row.first_at, peter_row.last_at) == (2, now - timedelta(minutes=1), now)
    assert sum(ClickMinute.objects.filter(mailing=mailing).values_list("clicks", flat=True)) == 4


@pytest.mark.django_db
def test_the_database_spool_counts_each_click_once(sent, client, settings):
    mailing, clients, _provider = sent
    settings.MAILER_CLICK_SPOOL = spool.DATABASE
    anna, peter = (Link.objects.filter(client_id=c.pk).first().code for c in clients[:2])
    for code in (anna, anna, peter):
        assert client.get(f"/l/{code}").status_code == 302
    assert client.get("/l/NoSuchCode1").status_code == 404  # nothing written down for it
    assert MailingCounts.objects.get(mailing=mailing).clicks == 0  # written down, not counted yet
    assert SpooledClick.objects.count() == 3
    assert links.fold() == 3 and links.fold() == 0
    assert not SpooledClick.objects.exists()
    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (3, 2)


@pytest.mark.django_db
def test_the_database_spool_is_unlogged_on_postgresql():
    """A click's insert writes no WAL, so its commit waits for no flush to disk: what a burst of
    clicks beside the engine's commits needs (bench/clicks.py). The price, in README: clicks not yet
    counted are lost if the database server crashes, as the file spool's are if the host does."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no unlogged tables (its spool is a file)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpersistence FROM pg_class WHERE oid = %s::regclass", [SpooledClick._meta.db_table]
        )
        assert cursor.fetchone() == ("u",)


@pytest.mark.django_db(transaction=True)
def test_a_click_on_a_connection_the_database_dropped_is_answered_on_a_new_one(sent, client, settings):
    """A click skips Django's health check (a round trip as dear as the click): a connection the
    database dropped (a restart, a failover) fails the click's statement, which runs once more."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server whose restart drops a connection")
    settings.MAILER_CLICK_SPOOL = spool.DATABASE
    code = Link.objects.filter(client_id=sent[1][0].pk).first().code
    assert client.get(f"/l/{code}").status_code == 302
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname="postgres"
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    assert client.get(f"/l/{code}").status_code == 302
    assert SpooledClick.objects.filter(code=code).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_click_through_the_real_web_server_counts_once(
    make_client, make_deliverer, provider, live_server, settings
):
    now = timezone.now()
    settings.MAILER_LINK_BASE = f"{live_server.url}/l"
    make_client()
    mailing = Mailing.objects.create(
        text="Sale https://shop.example/", start_at=now, end_at=now + timedelta(hours=1)
    )
    drain(make_deliverer(), now)
    [text] = provider.record.texts.values()
    short = text.removeprefix("Sale ")
    response = requests.get(short, allow_redirects=False, timeout=10)
    assert (response.status_code, response.headers["Location"]) == (302, "https://shop.example/")
    assert "Set-Cookie" not in response.headers
    requests.get(short, allow_redirects=False, timeout=10)  # the same client again
    counts = MailingCounts.objects.get(mailing=mailing)
    assert (counts.clicks, counts.clickers) == (2, 1)


@pytest.mark.django_db
def test_unsubscribe_asks_first_and_a_post_puts_the_phone_on_the_stop_list(
    make_client, make_deliverer, provider, now, client, settings
):
    from mailer.models import OptOutSource, StopEntry

    anna = make_client("79161234567", name="Анна")
    mailing = Mailing.objects.create(
        text="{name|Клиент}, скидка 10%. Отписаться: {unsubscribe}",
        start_at=now,
        end_at=now + timedelta(hours=1),
    )
    drain(make_deliverer(), now)
    [text] = provider.record.texts.values()
    code = re.search(r"/u/([0-9A-Za-z]{10})$", text).group(1)
    assert text.startswith("Анна, скидка 10%. Отписаться: ")

    page = client.get(f"/u/{code}", HTTP_ACCEPT_LANGUAGE="ru")
    assert page.status_code == 200 and not page.cookies  # a GET (a link scanner's) changes nothing
    assert "+7 916 ***-**-67" in page.content.decode() and 'id="confirm"' in page.content.decode()
    assert not StopEntry.objects.exists()

    done = client.post(f"/u/{code}", HTTP_ACCEPT_LANGUAGE="en")
    assert done.status_code == 200 and not done.cookies and "You are unsubscribed" in done.content.decode()
    entry = StopEntry.objects.standing().get(phone=anna.phone)
    assert entry.source == OptOutSource.LINK and f"mailing #{mailing.pk}" in entry.reason
    client.post(f"/u/{code}")  # again: counted once
    assert MailingCounts.objects.get(mailing=mailing).unsubscribed == 1
    assert client.get(f"/u/{code}").content.decode().count('id="done"') == 1
    assert client.post("/u/NoSuchCode1").status_code == 404
    # A click link's code is not an unsubscribe code, nor the other way round.
    assert client.get(f"/l/{code}").status_code == 404


def test_the_demo_has_a_personal_mailing_with_its_clicks(db):
    from django.core.management import call_command

    call_command("seed_demo", clients=400, verbosity=0)
    mailing = Mailing.objects.get(text__startswith="{name|Добрый день}")
    counts = MailingCounts.objects.get(mailing=mailing)
    assert counts.sent > 20 and 0 < counts.clickers < counts.sent and counts.clicks >= counts.clickers
    own = PersonalText.objects.filter(message__mailing=mailing)
    assert own.count() == counts.sent
    texts = own.values_list("text", flat=True)
    assert all("на зимнюю коллекцию: http" in t and "/l/" in t for t in texts)
    assert any(t.startswith("Добрый день, ") for t in texts) and any(
        not t.startswith("Добрый день, ") for t in texts
    )
    assert MailingCounts.reconcile(mailing.pk, repair=False) is None
