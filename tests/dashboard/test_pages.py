"""Every page renders for a viewer, shows mutate buttons only to managers, and answers htmx with a fragment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from mailer.models import GatewayState, MailingState, Message, MessageStatus
from tests.dashboard.conftest import HTMX

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailing(make_client, make_mailing):
    mailing = make_mailing(text="Spring sale", filter_tags=["vip"])
    for i, status in enumerate(
        [MessageStatus.SENT, MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.PENDING]
    ):
        client = make_client(tag="vip")
        Message.objects.create(
            mailing=mailing,
            client=client,
            status=status,
            sent_at=timezone.now() - timedelta(minutes=i) if status == MessageStatus.SENT else None,
            last_error="gateway said no" if status == MessageStatus.FAILED else "",
        )
    return mailing


PAGES = ["/", "/mailings/", "/statistics/", "/clients/"]


@pytest.mark.parametrize("url", PAGES)
def test_pages_need_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("url", PAGES)
def test_user_without_role_is_refused(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_viewer_sees_pages_without_mutate_buttons(viewer_client, mailing, url):
    response = viewer_client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "New mailing" not in html
    assert "Add client" not in html
    assert "Import from Excel or CSV" not in html


def test_viewer_detail_has_no_controls(viewer_client, mailing):
    html = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert "Spring sale" in html
    for label in ("Pause", "Cancel mailing", "Delete", "Duplicate", ">Edit<"):
        assert label not in html


def test_manager_detail_has_controls(manager_client, mailing):
    html = manager_client.get(f"/mailings/{mailing.pk}/").content.decode()
    for label in ("Pause", "Cancel mailing", "Delete", "Duplicate", ">Edit<"):
        assert label in html
    assert "Resume" not in html  # only for a paused mailing


def test_manager_sees_create_buttons(manager_client, mailing):
    assert "New mailing" in manager_client.get("/mailings/").content.decode()
    html = manager_client.get("/clients/").content.decode()
    assert "Add client" in html and "Import from Excel or CSV" in html


def test_home_shows_running_progress_and_polls(viewer_client, mailing):
    mailing.state = MailingState.RUNNING
    mailing.save()
    html = viewer_client.get("/").content.decode()
    assert 'hx-trigger="every 2s"' in html
    assert 'aria-valuenow="75"' in html  # 3 of 4 messages done
    assert "accepted by the gateway 2" in html and "not accepted 1" in html and "waiting 1" in html
    assert "/min" in html  # two sent in the last five minutes
    live = viewer_client.get("/live/", **HTMX)
    assert live.status_code == 200
    assert "<html" not in live.content.decode()
    assert 'hx-trigger="every 2s"' in live.content.decode()


def test_live_stops_polling_when_nothing_runs(viewer_client, mailing):
    response = viewer_client.get("/live/", **HTMX)
    assert response.status_code == 286
    assert "Nothing is running." in response.content.decode()
    assert "hx-trigger" not in response.content.decode()
    assert 'hx-trigger="every 2s"' not in viewer_client.get("/").content.decode()


def test_home_lists_upcoming_and_provider_problems(viewer_client, make_mailing):
    make_mailing(
        text="Tomorrow's news",
        start_at=timezone.now() + timedelta(days=1),
        end_at=timezone.now() + timedelta(days=2),
    )
    state = GatewayState.get()
    state.auth_error = "401 Unauthorized"
    state.breaker_open_until = timezone.now() + timedelta(minutes=5)
    state.last_error = "HTTP 503 from gateway"
    state.last_error_at = timezone.now()
    state.save()
    html = viewer_client.get("/").content.decode()
    assert "Tomorrow&#x27;s news" in html
    assert "refused our token" in html and "401 Unauthorized" in html
    assert "Too many failures" in html
    assert "HTTP 503 from gateway" in html


def test_home_hourly_chart_counts_sent_messages(viewer_client, mailing):
    html = viewer_client.get("/").content.decode()
    assert "<svg" in html
    # The two sent messages (same hour or neighbours) appear as bar tooltips.
    assert html.count("messages</title></rect>") == 72
    assert ": 2 messages</title>" in html or html.count(": 1 messages</title>") == 2


def test_mailing_list_filters_and_htmx_fragment(viewer_client, make_mailing):
    make_mailing(text="Alpha promo")
    make_mailing(text="Beta promo", state=MailingState.PAUSED)
    html = viewer_client.get("/mailings/?q=alpha").content.decode()
    assert "Alpha promo" in html and "Beta promo" not in html
    html = viewer_client.get("/mailings/?state=paused").content.decode()
    assert "Beta promo" in html and "Alpha promo" not in html
    fragment = viewer_client.get("/mailings/?state=paused", **HTMX).content.decode()
    assert fragment.lstrip().startswith('<div id="table"')
    assert "<nav" not in fragment and "Beta promo" in fragment


def test_mailing_list_rows(viewer_client, make_mailing, settings):
    # Rows are rendered by dashboard_tables.table_cells, not the library's row template.
    settings.TIME_ZONE = "Europe/Moscow"
    start = datetime(2026, 3, 1, 6, 30, tzinfo=UTC)
    mailing = make_mailing(
        text="<b>Spring</b> sale", start_at=start, end_at=start + timedelta(days=1), state=MailingState.PAUSED
    )
    html = viewer_client.get("/mailings/").content.decode()
    assert f'<td ><a href="/mailings/{mailing.pk}/">{mailing.pk}</a></td>' in html
    assert 'class="cell-text text-truncate"><a href' in html  # the column's td attrs
    assert "&lt;b&gt;Spring&lt;/b&gt; sale" in html and "<b>Spring" not in html
    assert '<span class="badge text-bg-warning">Paused</span>' in html
    assert "<td >2026-03-01 09:30</td>" in html  # the server's time zone


def test_mailing_list_date_filter(viewer_client, make_mailing, now):
    make_mailing(text="Old one", start_at=now - timedelta(days=10), end_at=now - timedelta(days=9))
    # An hour ahead, not the default minute ago: run just after midnight, that was "yesterday".
    make_mailing(text="New one", start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2))
    day = (now - timedelta(days=1)).date().isoformat()
    html = viewer_client.get(f"/mailings/?start_from={day}").content.decode()
    assert "New one" in html and "Old one" not in html
    html = viewer_client.get(f"/mailings/?start_to={day}").content.decode()
    assert "Old one" in html and "New one" not in html


def test_mailing_list_sorts_and_pages(viewer_client, make_mailing, now):
    for i in range(30):
        make_mailing(
            text=f"Mailing number {i:02d}", start_at=now + timedelta(hours=i), end_at=now + timedelta(days=2)
        )
    first = viewer_client.get("/mailings/").content.decode()
    assert "Mailing number 29" in first and "Mailing number 00" not in first  # newest start first
    second = viewer_client.get("/mailings/?page=2", **HTMX).content.decode()
    assert "Mailing number 00" in second and "Mailing number 29" not in second
    ascending = viewer_client.get("/mailings/?sort=start_at").content.decode()
    assert "Mailing number 00" in ascending and "Mailing number 29" not in ascending
    assert 'hx-boost="true"' in first  # sort and page links swap the table only


def test_detail_counts_chart_and_messages(viewer_client, mailing):
    html = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert "accepted by the gateway 2" in html and "not accepted 1" in html and "waiting 1" in html
    assert "gateway said no" in html
    assert "Messages sent per minute" in html and "<svg" in html
    failed = viewer_client.get(f"/mailings/{mailing.pk}/?status=failed", **HTMX).content.decode()
    assert failed.lstrip().startswith('<div id="messages"')
    assert failed.count("badge text-bg-danger") == 1 and "text-bg-success" not in failed


def test_detail_phone_search(viewer_client, mailing):
    phone = mailing.messages.order_by("id").first().client.phone
    html = viewer_client.get(f"/mailings/{mailing.pk}/?phone={phone}", **HTMX).content.decode()
    assert phone in html
    others = [m.client.phone for m in mailing.messages.order_by("id")[1:]]
    assert not any(p in html for p in others)


def test_detail_summary_polls_only_while_running(viewer_client, mailing):
    target = {**HTMX, "HTTP_HX_TARGET": "summary"}
    mailing.state = MailingState.PAUSED
    mailing.save()
    assert viewer_client.get(f"/mailings/{mailing.pk}/", **target).status_code == 286
    # Scheduled and due: the engine starts it at its next tick, so the page keeps asking.
    mailing.state = MailingState.SCHEDULED
    mailing.save()
    assert viewer_client.get(f"/mailings/{mailing.pk}/", **target).status_code == 200
    mailing.state = MailingState.RUNNING
    mailing.save()
    response = viewer_client.get(f"/mailings/{mailing.pk}/", **target)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="summary"') and 'hx-trigger="every 2s"' in html


def test_statistics_counts_and_date_filter(viewer_client, mailing, make_mailing, now):
    make_mailing(text="Last month", start_at=now - timedelta(days=30), end_at=now - timedelta(days=29))
    html = viewer_client.get("/statistics/").content.decode()
    assert "Spring sale" in html and "Last month" in html
    day = (now - timedelta(days=2)).date().isoformat()
    fragment = viewer_client.get(f"/statistics/?start_from={day}", **HTMX).content.decode()
    assert "Spring sale" in fragment and "Last month" not in fragment
    assert fragment.lstrip().startswith('<div id="table"')
    # The row's counts: total 4, pending 1, sent 2, failed 1, expired 0, cancelled 0.
    row = fragment.split("Spring sale")[1].split("</tr>")[0]
    assert [c.split(">")[-1] for c in row.split("</td>")[4:10]] == ["4", "1", "2", "1", "0", "0"]
    # The accepted rate: 2 sent of 4.
    assert row.split("</td>")[10].split(">")[-1] == "50.0 %"
    # Totals over the filtered mailings load after the page (hx-trigger="load").
    assert f'hx-get="/statistics/totals/?start_from={day}"' in fragment
    # A parameter named like an attribute of the query (urlencode) does not replace the query.
    tricked = viewer_client.get(f"/statistics/?start_from={day}&urlencode=x", **HTMX).content.decode()
    assert f'hx-get="/statistics/totals/?start_from={day}&amp;urlencode=x"' in tricked
    # The export links, outside the table, come along with the filtered table (out of band).
    assert 'id="export-overview"' in fragment and 'hx-swap-oob="true"' in fragment
    assert f'href="/statistics/mailings.csv?start_from={day}"' in fragment
    totals = viewer_client.get(f"/statistics/totals/?start_from={day}", **HTMX).content.decode()
    assert '<div class="small text-body-secondary">Total</div><strong>4</strong>' in totals
    assert '<div class="small text-body-secondary">Accepted by the gateway</div><strong>2</strong>' in totals
    assert '<div class="small text-body-secondary">Accepted, %</div><strong>50.0 %</strong>' in totals
    everything = viewer_client.get("/statistics/totals/", **HTMX).content.decode()
    assert '<div class="small text-body-secondary">Total</div><strong>4</strong>' in everything


@pytest.mark.parametrize("url", ["/mailings/", "/clients/", "/statistics/"])
def test_big_tables_never_count_everything(viewer_client, mailing, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert viewer_client.get(url).status_code == 200
    # LazyPaginator: no COUNT(*) over the table; the statistics read the kept counts and never
    # the messages. The clients' page counts the clients the filters match, once (the marketer
    # asks "how many?"): a client table is thousands to a million rows, never the messages'.
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    if url == "/clients/":
        assert len(counts) == 1 and '"mailer_client"' in counts[0] and "mailer_message" not in counts[0]
    else:
        assert counts == []
    if url == "/statistics/":
        assert not [q["sql"] for q in queries if '"mailer_message"' in q["sql"]]


def test_message_table_does_not_count(viewer_client, mailing):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        viewer_client.get(f"/mailings/{mailing.pk}/?status=sent", **HTMX)
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]


def test_history_restore_gets_the_whole_page(viewer_client, mailing):
    headers = {**HTMX, "HTTP_HX_HISTORY_RESTORE_REQUEST": "true"}
    html = viewer_client.get("/mailings/?state=scheduled", **headers).content.decode()
    assert "<html" in html and 'id="table"' in html


def test_a_purged_mailing_says_so_on_its_page(viewer_client, make_mailing, now):
    mailing = make_mailing()
    from mailer.models import MailingCounts

    MailingCounts.objects.filter(mailing=mailing).update(purged_at=now)
    html = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
    assert "after the retention period; the counts are kept" in html


def test_state_colours_come_from_one_table(viewer_client, mailing):
    """The detail page's badge, the tables' badges and the progress bar take their colours from
    dashboard.tables.COLOURS."""
    from dashboard import tables

    tables.COLOURS["paused"], tables.COLOURS["sent"] = "dark", "info"
    try:
        mailing.pause()
        detail = viewer_client.get(f"/mailings/{mailing.pk}/").content.decode()
        listed = viewer_client.get("/mailings/").content.decode()
    finally:
        tables.COLOURS["paused"], tables.COLOURS["sent"] = "warning", "success"
    assert 'class="badge fs-6 state-paused text-bg-dark"' in detail
    assert '<span class="badge text-bg-dark">Paused</span>' in listed
    assert '<span class="badge text-bg-info">Accepted by the gateway</span>' in detail  # the messages table
    assert '<div class="progress-bar bg-info">' in detail and "bg-success" not in detail


def test_every_colour_a_template_names_is_in_the_table():
    """A state's colour named in a template ("import.done"|colour) is a key of COLOURS: a
    misspelt one would fall back to "light" unseen."""
    import re
    from pathlib import Path

    from django.conf import settings

    from dashboard import tables

    text = "".join(p.read_text() for p in Path(settings.BASE_DIR, "templates").rglob("*.html"))
    named = set(re.findall(r"""["']([\w.]+)["']\|colour""", text))
    assert {"client.opted_out", "import.done", "gateway.ok", "token.expired", "user.locked_out"} <= named
    assert named <= set(tables.COLOURS)


def test_other_states_take_their_colours_from_the_table_too(manager_client, make_client, monkeypatch):
    from dashboard import tables
    from mailer.models import OptOutSource, StopEntry

    for key in ("client.opted_out", "gateway.ok"):
        monkeypatch.setitem(tables.COLOURS, key, "dark")
    client = make_client()
    StopEntry.opt_out(client.phone, OptOutSource.UI)
    assert (
        '<span class="badge text-bg-dark">opted out</span>'
        in manager_client.get("/clients/").content.decode()
    )
    page = manager_client.get(f"/clients/{client.pk}/").content.decode()
    assert '<span class="badge text-bg-dark">opted out</span>' in page
    assert '<span class="badge text-bg-dark">OK</span>' in manager_client.get("/").content.decode()
