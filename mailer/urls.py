from django.contrib import admin
from django.urls import include, path

from mailer import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics, name="metrics"),
    path("healthz", monitoring.healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    path("accounts/", include("accounts.urls")),
    # Auth0 single sign-on: the start is /sso/login/auth0/, the callback /sso/complete/auth0/.
    path("sso/", include("social_django.urls", namespace="social")),
    path("", include("dashboard.urls")),
]
