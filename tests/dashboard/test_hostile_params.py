"""Every dashboard page, given hostile query parameters, answers without a server error.

The URLs come from the URLconf, so a page added later is requested too. READS says which query
parameters each page reads, and is checked against what the pages ask `request.GET` for, so a
parameter a page starts to read can't go unfuzzed. Walking every page x parameter x value x htmx
mode took minutes; instead every page gets every parameter at once in each mode (the values rotated,
so each request carries them all), and every parameter gets every value alone, on each page that
reads it in turn.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dashboard import filters
from tests.dashboard.conftest import HTMX

TABLE = {"page", "per_page", "sort"}  # views._paginate, and the table's ordering
READS = {
    "mailing-list": {*filters.MailingFilter.base_filters, *TABLE},
    "mailing-create": {"from"},  # "Duplicate"
    "mailing-audience": {
        *("filter_tags", "new_tags", "filter_operator_codes", "text"),
        *("kind", "start_at", "start_now", "end_at", "window_start", "window_end", "track_links"),
        *(
            "audience_key",
            "audience_count",
            "stop_list_count",
            "no_consent_count",
            "undeliverable_count",
            "capped_count",
        ),
    },
    "mailing-detail": {*filters.MessageFilter.base_filters, *TABLE},
    "mailing-messages-csv": {*filters.MessageFilter.base_filters, "sep"},
    "mailing-messages-xlsx": {*filters.MessageFilter.base_filters},
    "mailing-clickers-csv": {"sep"},
    "statistics": {*filters.StatsFilter.base_filters, *TABLE},
    "statistics-totals": {*filters.StatsFilter.base_filters},
    "statistics-csv": {*filters.StatsFilter.base_filters, "sep"},
    "statistics-xlsx": {*filters.StatsFilter.base_filters},
    "audit": {*filters.AuditFilter.base_filters, *TABLE},
    "stop-list": {*filters.StopListFilter.base_filters, *TABLE},
    "client-list": {*filters.ClientFilter.base_filters, *TABLE},
    "undeliverable": TABLE,
    "client-import-report": {"sep"},
}  # Every other page reads none.
PARAMS = sorted(set().union(*READS.values()))
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
# The whole page, the fragment htmx swaps in, and the mailing's polled summary (another branch).
MODES = {"page": {}, "fragment": HTMX, "summary": HTMX | {"HTTP_HX_TARGET": "summary"}}


def _dashboard_urls() -> list[URLPattern]:
    resolver = get_resolver().url_patterns
    dashboard = next(p for p in resolver if isinstance(p, URLResolver) and p.namespace == "dashboard")
    return dashboard.url_patterns


URL_NAMES = [pattern.name for pattern in _dashboard_urls()]


def _url(name: str, ids: dict[str, int]) -> str:
    """The page's URL with ids of existing objects: `pk` by the page's kind, other parameters by
    their name (test_send_id, entry_id)."""
    pattern = next(p for p in _dashboard_urls() if p.name == name)
    kwargs = {}
    for arg in pattern.pattern.converters:
        if arg != "pk":
            kwargs[arg] = ids[arg]
        elif name.startswith("client-import"):
            kwargs[arg] = ids["import"]
        else:
            kwargs[arg] = ids["client" if name.startswith("client") else "mailing"]
    return reverse(f"dashboard:{name}", kwargs=kwargs)


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


@pytest.fixture
def asked(monkeypatch) -> set[str]:
    """The names the pages ask request.GET for (present or not)."""
    names: set[str] = set()

    class RecordingQueryDict(QueryDict):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.built = True  # filling itself in asks too

        def _ask(self, key: str) -> None:
            if getattr(self, "built", False):
                names.add(key)

        def __getitem__(self, key):
            self._ask(key)
            return super().__getitem__(key)

        def get(self, key, default=None):
            self._ask(key)
            return super().get(key, default)

        def getlist(self, key, default=None):
            self._ask(key)
            return super().getlist(key, default)

        def __contains__(self, key) -> bool:
            self._ask(key)
            return super().__contains__(key)

    # request.GET is built by WSGIRequest from this module's QueryDict.
    monkeypatch.setattr("django.core.handlers.wsgi.QueryDict", RecordingQueryDict)
    return names


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def _get(client, url: str, query: dict[str, str], mode: str) -> None:
    """`url` with `query`; an exception or a 5xx fails, saying which request."""
    try:
        response = client.get(url, query, **MODES[mode])
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)  # a CSV fails while it streams, an .xlsx is sent from a file
    except Exception as e:
        raise AssertionError(f"{url} {mode} {_short(query)} raised") from e
    assert response.status_code < 500, f"{url} {mode} {_short(query)}: {response.status_code}"


def _short(query: dict[str, str]) -> dict[str, str]:
    return {name: value[:20] for name, value in query.items()}


@pytest.mark.parametrize("name", URL_NAMES)
def test_no_page_fails_on_every_parameter_at_once(staff, site, asked, name):
    url = _url(name, site)
    for turn, mode in enumerate(MODES):
        # Every value in each request: parameter i gets value i + 5 x turn.
        query = {param: VALUES[(i + 5 * turn) % len(VALUES)] for i, param in enumerate(PARAMS)}
        _get(staff, url, query, mode)
    assert asked == READS.get(name, set()), f"{name} reads {sorted(asked)}; READS says otherwise"


@pytest.mark.parametrize("param", PARAMS)
def test_no_page_fails_on_a_hostile_value_alone(staff, site, asked, param):
    """Each value without the others, so that no bad one hides behind another, on each page that
    reads the parameter in turn, as a whole page and as a fragment."""
    turns = [(name, mode) for mode in ("page", "fragment") for name in READS if param in READS[name]]
    for i, value in enumerate(VALUES):
        name, mode = turns[i % len(turns)]
        asked.clear()
        _get(staff, _url(name, site), {param: value}, mode)
        assert param in asked, f"{name} ({mode}) did not read {param}"


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
    assert set(response.context["form"].initial) == {"start_at", "end_at"}  # the defaults only


def test_a_search_day_out_of_range_is_a_form_error(viewer_client, make_mailing):
    make_mailing()
    response = viewer_client.get("/mailings/", {"start_to": "9999-12-31"})
    assert response.status_code == 200
    assert "start_to" in response.context["filter"].form.errors
