"""Every dashboard page, given hostile query parameters, answers without a server error.

The URLs come from the URLconf, so a page added later is fuzzed too; the parameter names are those
the pages read (their filters, paging, ordering, the duplicate's `from`, the audience preview's).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dashboard.filters import ClientFilter, MailingFilter, MessageFilter, StatsFilter, StopListFilter
from tests.dashboard.conftest import HTMX

PARAMS = sorted(
    {
        *MailingFilter.base_filters,
        *StatsFilter.base_filters,
        *ClientFilter.base_filters,
        *MessageFilter.base_filters,
        *StopListFilter.base_filters,
        *("page", "per_page", "sort", "from", "filter_tags", "filter_operator_codes", "new_tags", "text"),
    }
)
VALUES = [
    "²",
    "①",
    "٣",
    "100000000000000000000",
    "1e20",
    "-1",
    "0",
    "",
    "0001-01-01",
    "9999-12-31",
    "\x00",
    "%00",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "x" * 5000,
]


def _dashboard_urls(ids: dict[str, int]) -> list[str]:
    """Every dashboard URL, with ids of existing objects: `pk` by the page's kind, other
    parameters by their name (test_send_id, entry_id)."""
    resolver = get_resolver().url_patterns
    dashboard = next(p for p in resolver if isinstance(p, URLResolver) and p.namespace == "dashboard")
    urls = []
    for pattern in dashboard.url_patterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {}
        for name in pattern.pattern.converters:
            if name != "pk":
                kwargs[name] = ids[name]
            elif pattern.name.startswith("client-import"):
                kwargs[name] = ids["import"]
            else:
                kwargs[name] = ids["client" if pattern.name.startswith("client") else "mailing"]
        urls.append(reverse(f"dashboard:{pattern.name}", kwargs=kwargs))
    return urls


def import_clients_later(text: str):
    """An import that was checked and waits for its go-ahead, with an error to report."""
    import io

    from mailer.importing import run_import, start_import

    imp = start_import(io.BytesIO(text.encode()), all_or_nothing=False, write=False, enqueue=False)
    run_import(imp.pk)
    return imp


@pytest.fixture
def site(db, make_client, make_mailing, now):
    from mailer.models import Message, MessageStatus, StopEntry, TestSend

    client = make_client(tag="vip")
    mailing = make_mailing(start_at=now + timedelta(days=1), end_at=now + timedelta(days=2))
    Message.objects.create(mailing=mailing, client=client, status=MessageStatus.SENT, sent_at=now)
    imp = import_clients_later("phone,tag\n79161234567,vip\n12,x\n")
    test = TestSend.objects.create(text="x", phones=[client.phone])
    entry, _ = StopEntry.opt_out(client.phone, "ui")
    return {
        "mailing": mailing.pk,
        "client": client.pk,
        "import": imp.pk,
        "test_send_id": test.pk,
        "entry_id": entry.pk,
    }


def test_no_page_fails_on_hostile_query_parameters(client, admin_user, site):
    client.force_login(admin_user)
    urls = _dashboard_urls(site)
    failures = []
    for url in urls:
        for value in VALUES:
            # Every parameter at once, then each alone (a bad one must not hide behind another).
            queries = [dict.fromkeys(PARAMS, value)] + [{name: value} for name in PARAMS]
            for query in queries:
                for headers in ({}, HTMX | {"HTTP_HX_TARGET": "summary"}):
                    response = client.get(url, query, **headers)
                    if response.status_code >= 500:
                        failures.append((url, query if len(query) == 1 else "all", value[:20]))
                    if hasattr(response, "streaming_content"):
                        b"".join(response.streaming_content)  # a CSV fails while it streams
    assert not failures, failures[:20]


def test_a_page_size_is_capped(viewer_client, make_client):
    from dashboard.views import MAX_PER_PAGE

    for _ in range(MAX_PER_PAGE + 5):
        make_client()
    response = viewer_client.get("/clients/", {"per_page": "100000"})
    assert response.status_code == 200
    assert len(response.context["table"].page.object_list) == MAX_PER_PAGE


@pytest.mark.parametrize("url", ["/mailings/", "/clients/", "/statistics/"])
def test_a_page_past_any_end_shows_the_first(viewer_client, make_mailing, make_client, url):
    make_mailing()
    make_client()
    for page in ("100000000000000000000", "999999999"):
        response = viewer_client.get(url, {"page": page})
        assert response.status_code == 200
        assert len(response.context["table"].page.object_list) == 1
        assert response.context["table"].page.number == 1


def test_other_scripts_digits_are_searched_as_text(viewer_client, make_mailing):
    mailing = make_mailing(text="Скидка 50² на всё")
    response = viewer_client.get("/mailings/", {"q": "²"})
    assert response.status_code == 200
    assert [row.record for row in response.context["table"].page.object_list] == [mailing]
    assert viewer_client.get("/statistics/totals/", {"q": "①"}).status_code == 200


def test_duplicate_from_a_non_number_is_a_blank_form(manager_client):
    response = manager_client.get("/mailings/new/", {"from": "²"})
    assert response.status_code == 200
    assert response.context["form"].initial == {}


def test_a_search_day_out_of_range_is_a_form_error(viewer_client, make_mailing):
    make_mailing()
    response = viewer_client.get("/mailings/", {"start_to": "9999-12-31"})
    assert response.status_code == 200
    assert "start_to" in response.context["filter"].form.errors
