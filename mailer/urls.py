from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from mailer import monitoring

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics, name="metrics"),
    path("healthz", monitoring.healthz, name="healthz"),
    path("readyz", monitoring.readyz, name="readyz"),
    path("accounts/", include("accounts.urls")),
    # Auth0 single sign-on: the start is /sso/login/auth0/, the callback /sso/complete/auth0/.
    path("sso/", include("social_django.urls", namespace="social")),
    path("api/v1/", include("mailer.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs pages are for a browser: without a session they redirect to the login page.
    path("docs/", login_required(SpectacularSwaggerView.as_view(url_name="schema")), name="swagger-ui"),
    path("redoc/", login_required(SpectacularRedocView.as_view(url_name="schema")), name="redoc"),
    path("", include("dashboard.urls")),
]
