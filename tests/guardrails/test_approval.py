"""MAILER_APPROVAL_ABOVE: a mailing of more SMS than that (its parts times its audience) starts
only once a second person approves it: a manager or an admin, never its author."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import scheduling
from mailer.models import Approval, AuditEntry, Mailing, MailingError, MailingState, SelfApproval, StaleEdit
from tests.conftest import load_settings, user_with_role
from tests.engine.conftest import drain
from tests.guardrails.conftest import HTMX

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SHORT = "Sale"  # one part
LONG = "Распродажа! " * 10  # 120 UCS-2 characters: two parts


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.MAILER_APPROVAL_ABOVE = 4


@pytest.fixture
def clients(make_client):
    return [make_client() for _ in range(3)]


@pytest.fixture
def second(django_user_model):
    """Another manager: a second person."""
    return user_with_role(django_user_model, "manager", "second")


@pytest.fixture
def big(clients, manager):
    """3 clients × 2 parts = 6 SMS, over 4: waits; due since a minute ago. Created by the manager."""
    mailing = Mailing(
        text=LONG, start_at=NOW - timedelta(minutes=1), end_at=NOW + timedelta(hours=1), created_by=manager
    )
    mailing.save_by(manager)
    return mailing


def actions(mailing: Mailing) -> list[str]:
    return list(
        AuditEntry.objects.filter(object_type="mailing", object_id=str(mailing.pk))
        .order_by("at", "id")
        .values_list("action", flat=True)
    )


def test_above_the_threshold_it_waits_and_does_not_start_when_its_time_comes(big):
    assert (big.approval, big.approval_sms, big.approval_audience) == (Approval.WAITING, 6, 3)
    scheduling.tick(NOW)
    big.refresh_from_db()
    assert big.state == MailingState.SCHEDULED and not big.messages.exists()


@pytest.mark.django_db
def test_the_estimate_is_parts_times_audience(clients, settings):
    # 3 × 1 part = 3: not above 4; 2 parts: 6, above; exactly at the threshold: not above.
    assert Mailing.objects.create(text=SHORT, start_at=NOW, end_at=NOW + timedelta(hours=1)).approval == (
        Approval.NOT_NEEDED
    )
    settings.MAILER_APPROVAL_ABOVE = 6
    at_it = Mailing.objects.create(text=LONG, start_at=NOW, end_at=NOW + timedelta(hours=1))
    assert (at_it.approval, at_it.approval_sms) == (Approval.NOT_NEEDED, None)
    scheduling.tick(NOW)
    at_it.refresh_from_db()
    assert at_it.state == MailingState.RUNNING and at_it.messages.count() == 3


@pytest.mark.django_db
def test_zero_asks_for_every_mailing_and_empty_for_none(clients, settings):
    settings.MAILER_APPROVAL_ABOVE = 0
    tiny = Mailing.objects.create(
        text=SHORT, start_at=NOW, end_at=NOW + timedelta(hours=1), filter_tags=["none"]
    )
    assert (tiny.approval, tiny.approval_sms) == (
        Approval.WAITING,
        0,
    )  # reaches nobody yet: asked all the same
    settings.MAILER_APPROVAL_ABOVE = None
    huge = Mailing.objects.create(text=LONG * 8, start_at=NOW, end_at=NOW + timedelta(hours=1))
    assert huge.approval == Approval.NOT_NEEDED
    scheduling.tick(NOW)
    assert Mailing.objects.get(pk=huge.pk).state == MailingState.RUNNING
    assert Mailing.objects.get(pk=tiny.pk).state == MailingState.SCHEDULED


def test_the_author_may_not_approve_a_viewer_may_not_a_second_manager_does(big, manager, api, client, second):
    with pytest.raises(SelfApproval):
        big.approve(manager)
    answer = api.post(f"/api/v1/mailings/{big.pk}/approve/")
    assert answer.status_code == 403 and "a second person approves it" in answer.json()["detail"]
    viewer = user_with_role(type(manager), "viewer")
    client.force_login(viewer)
    assert client.post(f"/mailings/{big.pk}/approve/").status_code == 403
    big.refresh_from_db()
    assert big.approval == Approval.WAITING

    client.force_login(second)
    page = client.get(f"/mailings/{big.pk}/").content.decode()
    assert 'id="approval-controls"' in page and "≈ 6 SMS: 2 × 3 clients" in page
    answer = client.post(f"/mailings/{big.pk}/approve/", {"revision": big.revision})
    assert answer.status_code == 302
    big.refresh_from_db()
    assert (big.approval, big.decided_by, big.state) == (Approval.APPROVED, second, MailingState.SCHEDULED)
    scheduling.tick(NOW)  # its time has come: the next tick starts it
    big.refresh_from_db()
    assert big.state == MailingState.RUNNING and big.messages.count() == 3
    assert actions(big) == ["created", "approval_asked", "approved", "started"]
    with pytest.raises(MailingError, match="does not wait for approval"):
        big.approve(second)  # once


def test_whoever_made_the_change_that_asked_may_not_approve_it(clients, manager, second, django_user_model):
    mailing = Mailing.objects.create(
        text=SHORT, start_at=NOW, end_at=NOW + timedelta(hours=1), created_by=manager
    )
    assert mailing.approval == Approval.NOT_NEEDED
    mailing.text = LONG
    mailing.save_edit(mailing.revision, by=second)
    assert (mailing.approval, mailing.approval_asked_by) == (Approval.WAITING, second)
    for author in (manager, second):
        with pytest.raises(SelfApproval):
            mailing.approve(author)
    mailing.approve(user_with_role(django_user_model, "admin", "third"))
    assert mailing.approval == Approval.APPROVED


def test_the_page_tells_the_author_it_waits(big, manager_client, manager):
    page = manager_client.get(f"/mailings/{big.pk}/").content.decode()
    assert "It waits for a second person's approval" in page
    assert 'id="approval-controls"' not in page


def test_a_refusal_says_why_and_keeps_it_from_starting(big, second):
    from tests.api.conftest import _client_for

    api = _client_for(second)
    answer = api.post(f"/api/v1/mailings/{big.pk}/refuse/", {}, format="json")
    assert answer.status_code == 400 and "reason" in answer.json()
    answer = api.post(f"/api/v1/mailings/{big.pk}/refuse/", {"reason": "Wrong price"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["approval"] | {"decided_at": None} == {
        "state": "refused",
        "sms": 6,
        "asked_by": "manager",
        "decided_by": "second",
        "decided_at": None,
        "refusal_reason": "Wrong price",
    }
    scheduling.tick(NOW)
    big.refresh_from_db()
    assert big.state == MailingState.SCHEDULED and not big.messages.exists()
    assert api.post(f"/api/v1/mailings/{big.pk}/approve/").status_code == 409  # decided
    entry = AuditEntry.objects.get(action="refused", object_id=str(big.pk))
    assert entry.actor == second and entry.changes["refusal_reason"] == [None, "Wrong price"]


def test_a_refusal_in_the_dashboard_needs_a_reason(big, second, client):
    client.force_login(second)
    client.post(f"/mailings/{big.pk}/refuse/", {"revision": big.revision, "reason": " "})
    big.refresh_from_db()
    assert big.approval == Approval.WAITING
    response = client.post(
        f"/mailings/{big.pk}/refuse/", {"revision": big.revision, "reason": "Typo"}, **HTMX
    )
    assert "Typo" in response.content.decode()  # the summary, re-rendered
    big.refresh_from_db()
    assert (big.approval, big.refusal_reason) == (Approval.REFUSED, "Typo")


def test_changing_what_it_sends_after_approval_asks_again(big, second, api):
    big.approve(second)
    etag = api.get(f"/api/v1/mailings/{big.pk}/")["ETag"]
    # Its end: the approval stands.
    end = (NOW + timedelta(hours=2)).isoformat()
    answer = api.patch(f"/api/v1/mailings/{big.pk}/", {"end_at": end}, format="json", HTTP_IF_MATCH=etag)
    assert answer.json()["approval"]["state"] == "approved"
    # Its text: asked again, by its editor.
    answer = api.patch(f"/api/v1/mailings/{big.pk}/", {"text": LONG + "!"}, format="json")
    assert answer.json()["approval"]["state"] == "waiting"
    assert answer.json()["approval"]["asked_by"] == "manager"
    scheduling.tick(NOW)
    big.refresh_from_db()
    assert big.state == MailingState.SCHEDULED
    assert actions(big)[1:] == ["approval_asked", "approved", "edited", "edited", "approval_withdrawn"]
    # A filter that brings it under the threshold: none needed, it starts.
    answer = api.patch(f"/api/v1/mailings/{big.pk}/", {"filter": {"tags": ["few"]}}, format="json")
    assert answer.json()["approval"] == {
        "state": "not_needed",
        "sms": None,
        "asked_by": None,
        "decided_by": None,
        "decided_at": None,
        "refusal_reason": "",
    }
    assert actions(big)[-1] == "approval_not_needed"


def test_an_edit_of_a_running_mailing_that_asks_again_holds_it(big, second, api, django_user_model):
    big.approve(second)
    scheduling.tick(NOW)
    big.refresh_from_db()
    assert big.state == MailingState.RUNNING
    answer = api.patch(f"/api/v1/mailings/{big.pk}/", {"kind": "service"}, format="json")
    assert (answer.json()["state"], answer.json()["approval"]["state"]) == ("scheduled", "waiting")
    assert actions(big)[-3:] == ["edited", "approval_withdrawn", "held"]
    scheduling.tick(NOW)
    assert Mailing.objects.get(pk=big.pk).state == MailingState.SCHEDULED
    big.refresh_from_db()
    big.approve(user_with_role(django_user_model, "admin", "third"))
    scheduling.tick(NOW)
    assert Mailing.objects.get(pk=big.pk).state == MailingState.RUNNING


def test_an_approval_is_of_what_the_approver_read(big, second, api):
    read = big.revision
    big.text = LONG + "?"
    big.save_edit(read)
    with pytest.raises(StaleEdit):
        big.approve(second, revision=read)
    from tests.api.conftest import _client_for

    answer = _client_for(second).post(f"/api/v1/mailings/{big.pk}/approve/", HTTP_IF_MATCH=f'"{read}"')
    assert answer.status_code == 412
    big.refresh_from_db()
    assert big.approval == Approval.WAITING


def test_approvers_see_what_awaits_approval_first(big, clients, manager_client, second, client, api):
    Mailing.objects.create(text=SHORT, start_at=NOW, end_at=NOW + timedelta(hours=1))  # needs none
    home = manager_client.get("/").content.decode()
    assert 'id="awaiting-approval"' in home and "yours: another person approves it" in home
    listing = manager_client.get("/mailings/").content.decode()
    assert "1 mailing awaits a second person's approval." in listing
    waiting = manager_client.get("/mailings/?approval=waiting").content.decode()
    assert f'href="/mailings/{big.pk}/"' in waiting and "Sale" not in waiting
    assert '<span class="badge text-bg-warning">Waiting for approval</span>' in waiting
    assert [m["id"] for m in api.get("/api/v1/mailings/?approval=waiting").json()["results"]] == [big.pk]
    client.force_login(user_with_role(type(second), "viewer"))
    assert 'id="awaiting-approval"' not in client.get("/").content.decode()


@pytest.mark.django_db
def test_nothing_is_delivered_before_approval_and_everything_once_after(
    clients, manager, second, make_deliverer, provider
):
    mailing = Mailing.objects.create(
        text=LONG, start_at=NOW, end_at=NOW + timedelta(hours=1), created_by=manager
    )
    deliverer = make_deliverer()
    drain(deliverer, NOW)
    assert not provider.record.accepted
    mailing.approve(second)
    drain(deliverer, NOW + timedelta(seconds=1))
    assert set(provider.record.accepted) == set(mailing.messages.values_list("pk", flat=True))
    assert len(provider.record.accepted) == 3 and set(provider.record.accepted.values()) == {1}


@pytest.mark.parametrize(("value", "parsed"), [("", "None"), ("off", "None"), ("0", "0"), ("25000", "25000")])
def test_approval_setting(value, parsed):
    result = load_settings("MAILER_APPROVAL_ABOVE", MAILER_APPROVAL_ABOVE=value)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == parsed


@pytest.mark.parametrize("value", ["-1", "lots", "1e4"])
def test_a_bad_approval_setting_stops_the_start(value):
    result = load_settings("MAILER_APPROVAL_ABOVE", MAILER_APPROVAL_ABOVE=value)
    assert result.returncode != 0 and "MAILER_APPROVAL_ABOVE" in result.stderr


def test_the_approval_block_in_russian(big, second, client):
    client.force_login(second)
    page = client.get(f"/mailings/{big.pk}/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Ждёт одобрения" in page and "≈ 6 SMS: 2 × 3 клиента, подсчитано при запросе одобрения" in page
    assert ">Одобрить</button>" in page and ">Отклонить</button>" in page


def test_the_form_says_before_saving_that_it_will_need_approval(clients, manager_client, settings):
    query = {"text": LONG, "start_at": NOW.isoformat(), "end_at": (NOW + timedelta(hours=1)).isoformat()}
    html = manager_client.get("/mailings/audience/", query, **HTMX).content.decode()
    assert '≈ <strong id="sms-estimate">6</strong> SMS' in html
    assert "A second person must approve it before it starts: it is over 4 SMS." in html
    html = manager_client.get("/mailings/audience/", query | {"text": SHORT}, **HTMX).content.decode()
    assert "A second person must approve it" not in html  # 3 SMS


def test_a_mailing_whose_audience_grew_past_the_threshold_is_weighed_again_at_its_start(make_client, manager):
    """Saved for 3 clients × 1 part (under 4), then a file of 2 more is imported: at its start it
    is 5 SMS, so it waits for approval instead of going."""
    for _ in range(3):
        make_client()
    mailing = Mailing(text=SHORT, start_at=NOW - timedelta(minutes=1), end_at=NOW + timedelta(hours=1))
    mailing.save_by(manager)
    assert mailing.approval == Approval.NOT_NEEDED
    make_client(), make_client()
    scheduling.tick(NOW)
    mailing.refresh_from_db()
    assert (mailing.state, mailing.approval, mailing.approval_sms) == (
        MailingState.SCHEDULED,
        Approval.WAITING,
        5,
    )
    assert not mailing.messages.exists()
    entry = AuditEntry.objects.get(object_id=str(mailing.pk), action="approval_asked")
    assert (entry.via, entry.actor_name) == ("engine", "")


def test_the_author_s_home_page_says_which_upcoming_mailing_was_refused(
    clients, manager, manager_client, second
):
    later = datetime.now(UTC) + timedelta(days=1)
    mailing = Mailing(text=LONG, start_at=later, end_at=later + timedelta(hours=1), created_by=manager)
    mailing.save_by(manager)
    home = manager_client.get("/").content.decode()
    assert f"#{mailing.pk} " in home and "Waiting for approval</span>" in home
    mailing.refuse(second, "Wrong price")
    assert "Refused</span>" in manager_client.get("/").content.decode()
