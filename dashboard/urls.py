from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.home, name="home"),
    path("live/", views.home_live, name="home-live"),
    path("mailings/", views.mailing_list, name="mailing-list"),
    path("mailings/new/", views.mailing_create, name="mailing-create"),
    path("mailings/audience/", views.mailing_audience, name="mailing-audience"),
    path("mailings/<int:pk>/", views.mailing_detail, name="mailing-detail"),
    path("mailings/<int:pk>/edit/", views.mailing_edit, name="mailing-edit"),
    path("mailings/<int:pk>/delete/", views.mailing_delete, name="mailing-delete"),
    path("mailings/<int:pk>/messages.csv", views.mailing_messages_csv, name="mailing-messages-csv"),
    path("mailings/<int:pk>/pause/", views.mailing_control, {"action": "pause"}, name="mailing-pause"),
    path("mailings/<int:pk>/resume/", views.mailing_control, {"action": "resume"}, name="mailing-resume"),
    path("mailings/<int:pk>/cancel/", views.mailing_control, {"action": "cancel"}, name="mailing-cancel"),
    path("statistics/", views.statistics, name="statistics"),
    path("statistics/totals/", views.statistics_totals, name="statistics-totals"),
    path("statistics/mailings.csv", views.statistics_csv, name="statistics-csv"),
    path("clients/", views.client_list, name="client-list"),
    path("clients/new/", views.client_create, name="client-create"),
    path("clients/import/", views.client_import, name="client-import"),
    path("clients/import/<int:pk>/", views.client_import_detail, name="client-import-detail"),
    path("clients/import/<int:pk>/confirm/", views.client_import_confirm, name="client-import-confirm"),
    path("clients/import/<int:pk>/errors.csv", views.client_import_report, name="client-import-report"),
    path("clients/<int:pk>/", views.client_edit, name="client-edit"),
    path("clients/<int:pk>/delete/", views.client_delete, name="client-delete"),
]
