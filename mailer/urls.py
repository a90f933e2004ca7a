from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    # Auth0 single sign-on: the start is /sso/login/auth0/, the callback /sso/complete/auth0/.
    path("sso/", include("social_django.urls", namespace="social")),
    path("", include("dashboard.urls")),
]
