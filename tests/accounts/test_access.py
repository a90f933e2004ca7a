"""docs/security.md's access table is the rule: every URL in the URLconf has a row, and every row is
requested as every role, with the answer the cell says.

Cells: `✓` the view ran (no 401/403/404/405 and no detour to a login page), `✓ (NNN)` it ran and
answered NNN, `login` a redirect to a login page, a number that status. A new view without a row
fails `test_every_url_has_a_row`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.roles import ADMIN, MANAGER, VIEWER
from mailer.models import Client, ClientField, ClientImport, ImportState, Mailing, StopEntry, TestSend
from tests.conftest import enable_auth0, user_with_role

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROLES = ["anonymous", "no role", VIEWER, MANAGER, ADMIN]
ADMIN_SITE = "admin/ …"


def table_rows() -> list[dict]:
    text = DOC.read_text()
    table = text.split("<!-- access-table")[1].split("<!-- /access-table -->")[0]
    rows = []
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 2 + len(ROLES) or not cells[0].startswith("`"):
            continue
        pattern = cells[0].split("`")[1]
        for method in cells[1].split(","):
            rows.append(
                {"pattern": pattern, "method": method.strip(), **dict(zip(ROLES, cells[2:], strict=True))}
            )
    return rows


def url_patterns(patterns=None, prefix: str = "") -> list[str]:
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            # The Django admin is one row here; its model-by-model rules are in test_admin_access.py.
            found += [ADMIN_SITE] if route == "admin/" else url_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            found.append(route)
    return found


ROWS = table_rows()


def test_every_url_has_a_row_and_every_row_a_url():
    in_table = {row["pattern"] for row in ROWS}
    in_urlconf = set(url_patterns())

    assert in_urlconf - in_table == set(), "views without a rule in docs/security.md"
    assert in_table - in_urlconf == set(), "rules for views that do not exist"


@pytest.fixture
def world(db, django_user_model, settings):
    """What the URLs' ids point at, and a signed-in client per role (settings as with Auth0 on)."""
    enable_auth0(settings, "tenant.example", "id", "secret")
    settings.MAILER_READY_HEARTBEAT_SECONDS = 0
    settings.MAILER_RECEIPT_TOKEN = "the-gateway-s-own"  # a staff session is no way in
    other = user_with_role(django_user_model, VIEWER, "someone-else")
    users = {
        role: user_with_role(django_user_model, role, f"the-{role}") for role in (VIEWER, MANAGER, ADMIN)
    }
    users["no role"] = django_user_model.objects.create_user("no-role", password="pw")
    now = timezone.now()

    def ids() -> dict[str, str]:
        # Fresh objects for every request: a DELETE by one role must not decide another's answer.
        return {
            "mailing": str(
                Mailing.objects.create(
                    text="x", start_at=now + timedelta(hours=1), end_at=now + timedelta(hours=2)
                ).pk
            ),
            "client": str(Client.objects.create(phone=f"79{Client.objects.count():09d}", timezone="UTC").pk),
            "user": str(other.pk),
            "token": str(ApiToken.issue(other, "theirs")[0].pk),
            "import": str(ClientImport.objects.create(state=ImportState.DONE).pk),
            "test_send": str(TestSend.objects.create(text="x", phones=["79161234567"]).pk),
            "stop": str(StopEntry.opt_out("79169990000", "ui")[0].pk),
            "field": str(ClientField.objects.create(key=f"f{ClientField.objects.count()}", label="x").pk),
        }

    return users, ids


def concrete(pattern: str, ids: dict[str, str]) -> str:
    if pattern == ADMIN_SITE:
        return "/admin/"
    kind = (
        "import"
        if "clients/import/<" in pattern
        else "field"
        if "clients/fields/<" in pattern
        else "client"
        if "clients/" in pattern
        else "mailing"
    )
    values = {
        "pk": ids[kind],
        "import_id": ids["import"],
        "test_send_id": ids["test_send"],
        "phone": "79169990000",
        "entry_id": ids["stop"],
        "user_id": ids["user"],
        "token_id": ids["token"],
        "backend": "auth0",
        "code": "NoSuchCode1",
        "path": "nothing/",
    }
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], pattern)
    url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], url)
    return "/" + url.replace("^", "").replace("$", "")


def check(cell: str, response, where: str) -> None:
    status, location = response.status_code, response.get("Location", "")
    to_login = status == 302 and location.startswith(("/accounts/login/", "/admin/login/"))
    if cell == "login":
        assert to_login, where
    elif cell.startswith("✓"):
        exact = re.search(r"\((\d+)\)", cell)
        if exact:
            assert status == int(exact.group(1)), where
        else:
            assert status not in (401, 403, 404, 405) and not to_login, where
    else:
        assert status == int(cell), where


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row['method']} {row['pattern']}")
def test_each_role_gets_what_the_table_says(world, row):
    users, ids = world
    shared = ids()
    for role in ROLES:
        client = APIClient()
        if role != "anonymous":
            client.force_login(users[role])
        url = concrete(row["pattern"], shared if row["method"] == "GET" else ids())
        data = {} if row["method"] == "GET" else None
        response = getattr(client, row["method"].lower())(url, data, REMOTE_ADDR="127.0.0.1")
        check(
            row[role],
            response,
            f"{row['method']} {url} as {role}: {response.status_code} {response.get('Location', '')}",
        )
