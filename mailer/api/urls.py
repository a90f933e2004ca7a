from __future__ import annotations

from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from mailer.api import views

app_name = "api"

router = SimpleRouter(use_regex_path=False)
router.register("clients", views.ClientViewSet, basename="client")
router.register("mailings", views.MailingViewSet, basename="mailing")
router.register("stop-list", views.StopListViewSet, basename="stop-list")

urlpatterns = [
    path("stats/", views.StatsView.as_view(), name="stats"),
    path("audit/", views.AuditView.as_view(), name="audit"),
    path("client-fields/", views.ClientFieldsView.as_view(), name="client-fields"),
    path("gateway/receipts/", views.ReceiptsView.as_view(), name="receipts"),
    # Any id reaches the view, so that a malformed one gets the API's JSON 404, not Django's HTML one.
    re_path(
        r"^mailings/(?P<pk>[^/]+)/messages/$", views.MailingMessagesView.as_view(), name="mailing-messages"
    ),
    *router.urls,
    # Anything else under /api/v1/ (including malformed ids): the API's JSON 404, not Django's HTML page.
    re_path(r"^(?P<path>[\s\S]*)$", views.not_found),
]
