from django.contrib import admin
from django.urls import include, path

from mailer import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics, name="metrics"),
    path("healthz", monitoring.healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    path("accounts/", include("accounts.urls")),
    path("", include("dashboard.urls")),
]
