from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("live/", views.home_live, name="home-live"),
    path("mailings/", views.mailing_list, name="mailing-list"),
    path("mailings/new/", views.mailing_create, name="mailing-create"),
    path("mailings/audience/", views.mailing_audience, name="mailing-audience"),
    path("mailings/test-send/", views.test_send, name="test-send"),
    path("mailings/test-sends/<int:test_send_id>/", views.test_send_detail, name="test-send-detail"),
    path("mailings/<int:pk>/", views.mailing_detail, name="mailing-detail"),
    path("mailings/<int:pk>/test-send/", views.test_send, name="mailing-test-send"),
    path("mailings/<int:pk>/edit/", views.mailing_edit, name="mailing-edit"),
    path("mailings/<int:pk>/delete/", views.mailing_delete, name="mailing-delete"),
    # The same view for both formats, so both get the same permission.
    path(
        "mailings/<int:pk>/messages.csv",
        views.mailing_messages_export,
        {"kind": "csv"},
        name="mailing-messages-csv",
    ),
    path(
        "mailings/<int:pk>/messages.xlsx",
        views.mailing_messages_export,
        {"kind": "xlsx"},
        name="mailing-messages-xlsx",
    ),
    path("mailings/<int:pk>/pause/", views.mailing_control, {"action": "pause"}, name="mailing-pause"),
    path("mailings/<int:pk>/resume/", views.mailing_control, {"action": "resume"}, name="mailing-resume"),
    path("mailings/<int:pk>/cancel/", views.mailing_control, {"action": "cancel"}, name="mailing-cancel"),
    path("mailings/<int:pk>/approve/", views.mailing_approval, {"action": "approve"}, name="mailing-approve"),
    path("mailings/<int:pk>/refuse/", views.mailing_approval, {"action": "refuse"}, name="mailing-refuse"),
    path("statistics/", views.statistics, name="statistics"),
    path("statistics/totals/", views.statistics_totals, name="statistics-totals"),
    path("statistics/mailings.csv", views.statistics_export, {"kind": "csv"}, name="statistics-csv"),
    path("statistics/mailings.xlsx", views.statistics_export, {"kind": "xlsx"}, name="statistics-xlsx"),
    path("audit/", views.audit_log, name="audit"),
    path("stop-list/", views.stop_list, name="stop-list"),
    path("stop-list/add/", views.stop_list_add, name="stop-list-add"),
    path("stop-list/<int:entry_id>/remove/", views.stop_list_remove, name="stop-list-remove"),
    path("clients/", views.client_list, name="client-list"),
    path("clients/new/", views.client_create, name="client-create"),
    path("clients/import/", views.client_import, name="client-import"),
    path("clients/import/<int:pk>/", views.client_import_detail, name="client-import-detail"),
    path("clients/import/<int:pk>/confirm/", views.client_import_confirm, name="client-import-confirm"),
    path("clients/import/<int:pk>/errors.csv", views.client_import_report, name="client-import-report"),
    path("clients/<int:pk>/", views.client_edit, name="client-edit"),
    path("clients/<int:pk>/delete/", views.client_delete, name="client-delete"),
]
